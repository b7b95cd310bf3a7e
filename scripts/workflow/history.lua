-- Workflow history helpers shared by the post-restore modules (post_restore, validation,
-- retention, alerts): steps with workflow.lua's shape ({State, Started, Seconds,
-- RequestId, Error}) and the log fields every event carries.
local clock = require "clock"

local M = {}

function M.step(doc, state)
  local s = { State = state, Started = clock.rfc3339(clock.now()), _t0 = clock.mono() }
  doc.Steps = doc.Steps or {}
  doc.Steps[#doc.Steps + 1] = s
  return s
end

function M.done(s, request_id, err)
  s.Seconds = math.floor((clock.mono() - (s._t0 or clock.mono())) * 1000 + 0.5) / 1000
  s._t0 = nil
  if request_id and request_id ~= "" then s.RequestId = request_id end
  if err then s.Error = tostring(err) end
  return s
end

-- The request id of an aws.call error (or nil).
function M.rid(err)
  return type(err) == "table" and err.request_id ~= "" and err.request_id or nil
end

function M.code(err)
  return type(err) == "table" and err.code or nil
end

function M.fields(doc, extra)
  local f = { workflow = doc.WorkflowId, source = doc.SourceTableName, target = doc.TargetTableName }
  for k, v in pairs(extra or {}) do f[k] = v end
  return f
end

-- "7d", "12h", "30m", "45s", "1d12h" or a number of seconds -> seconds; nil, why.
function M.duration(v)
  if type(v) == "number" then
    if v > 0 then return v end
    return nil, "a duration must be positive"
  end
  if type(v) ~= "string" or v == "" then return nil, "a duration is a number of seconds or a string like \"7d\"" end
  local units = { s = 1, m = 60, h = 3600, d = 86400, w = 604800 }
  local total, rest = 0, v
  while rest ~= "" do
    local n, u, tail = rest:match("^(%d+)([smhdw])(.*)$")
    if not n then return nil, ("duration %q: use <number><s|m|h|d|w>, e.g. \"7d\" or \"1d12h\""):format(v) end
    total, rest = total + tonumber(n) * units[u], tail
  end
  if total <= 0 then return nil, ("duration %q must be positive"):format(v) end
  return total
end

-- Table name from an ARN or a bare name.
function M.table_name(v)
  if type(v) ~= "string" then return nil end
  return v:match(":table/([%w_.-]+)$") or v
end

return M
