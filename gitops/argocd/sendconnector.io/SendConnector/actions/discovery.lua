-- Argo CD resource actions of a sendconnector.io resource: pause, resume, reconcile now.
local actions = {}
local paused = obj.metadata ~= nil and obj.metadata.annotations ~= nil
  and obj.metadata.annotations["sendconnector.io/paused"] == "true"
actions["pause"] = {["disabled"] = paused}
actions["resume"] = {["disabled"] = not paused}
actions["reconcile"] = {["disabled"] = false}
return actions
