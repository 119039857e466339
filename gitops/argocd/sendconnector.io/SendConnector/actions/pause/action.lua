-- Pause: the operator makes no OVH write while sendconnector.io/paused is "true".
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["sendconnector.io/paused"] = "true"
return obj
