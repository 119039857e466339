-- Argo CD health of a sendconnector.io resource (SendConnector and MailboxBinding alike),
-- from its kstatus conditions (Ready, Reconciling, Stalled) and observedGeneration.
--   Healthy      Ready=True for the current generation
--   Progressing  no status yet, a generation not yet observed, or Reconciling=True
--   Degraded     Stalled=True (OVH refused; nothing changes until the spec or a Secret does)
--   Suspended    Ready=False with reason Paused (annotation sendconnector.io/paused)
local hs = {}

local function condition(conditions, type)
  for _, c in ipairs(conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    if c.reason ~= nil and c.reason ~= "" then
      return c.reason .. ": " .. c.message
    end
    return c.message
  end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end

if obj.status == nil or obj.status.conditions == nil or #obj.status.conditions == 0 then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report a status"
  return hs
end

local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = obj.status.conditions
local ready = condition(conditions, "Ready")
local reconciling = condition(conditions, "Reconciling")
local stalled = condition(conditions, "Stalled")

-- A condition written for an older generation says nothing about the current spec.
local function current(c)
  return c ~= nil and (generation == nil or c.observedGeneration == nil or c.observedGeneration >= generation)
end

if current(stalled) and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "Stalled")
  return hs
end

if current(ready) and ready.status == "False" and ready.reason == "Paused" then
  hs.status = "Suspended"
  hs.message = describe(ready, "Paused")
  return hs
end

if current(ready) and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end

hs.status = "Progressing"
if current(reconciling) and reconciling.status == "True" then
  hs.message = describe(reconciling, "Reconciling")
else
  hs.message = describe(ready, "Waiting for the Ready condition")
end
return hs
