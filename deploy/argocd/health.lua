-- Argo CD health check for byollm.io/LLMConfig
-- (argocd-cm key: resource.customizations.health.byollm.io_LLMConfig).
--
-- Reads the operator's kstatus conditions, each computed at status.observedGeneration:
--   Ready (True: serving the current spec)          -> Healthy
--   Reconciling (True: still getting there)         -> Progressing
--   Stalled (True: needs a change by someone)       -> Degraded
-- A spec change not yet observed is Progressing. Objects whose status predates Reconciling
-- and Stalled are judged from the detail conditions: False for one of STALLED_REASONS
-- (the operator's conditions.STALLED_REASONS; a test keeps both lists equal) is Degraded.
-- Plain Lua 5.1 with the base, string and table libraries only (Argo CD's gopher-lua).

local STALLED_REASONS = {
  ApplyRefused = true,
  EndpointNotFound = true,
  InvalidCredentials = true,
  InvalidSpec = true,
  ProgressDeadlineExceeded = true,
  SecretKeyNotFound = true,
  SecretNotFound = true,
  SecretNotOptedIn = true,
  UnsealFailed = true,
  UpstreamBlocked = true,
}
local DETAILS = {"SecretSynced", "RouterAvailable", "CredentialsValid"}

local hs = {status = "Progressing", message = "Waiting for the byollm operator"}
if obj.status == nil or obj.status.conditions == nil then
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration ~= generation then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local by = {}
for _, c in ipairs(obj.status.conditions) do
  if c.type ~= nil then
    by[c.type] = c
  end
end

-- a condition computed from the current spec (an older one says nothing about it)
local function current(c)
  return c ~= nil and (generation == nil or c.observedGeneration == nil
    or c.observedGeneration == generation)
end

local function describe(c)
  return (c.reason or "") .. ": " .. (c.message or "")
end

local stalled = by["Stalled"]
if current(stalled) and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

local reconciling = by["Reconciling"]
if current(reconciling) and reconciling.status == "True" then
  hs.message = describe(reconciling)
  return hs
end

local ready = by["Ready"]
if not current(ready) then
  hs.message = "Waiting for the operator to evaluate generation " .. tostring(generation)
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = "Serving " .. (obj.status.mode or "?") .. ": " .. (ready.message or "")
  return hs
end

for _, t in ipairs(DETAILS) do
  local c = by[t]
  if current(c) and c.status == "False" and STALLED_REASONS[c.reason] then
    hs.status = "Degraded"
    hs.message = t .. " " .. describe(c)
    return hs
  end
end

hs.message = describe(ready)
return hs
