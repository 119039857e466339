-- Resume: remove sendconnector.io/paused.
if obj.metadata.annotations ~= nil then
  obj.metadata.annotations["sendconnector.io/paused"] = nil
end
return obj
