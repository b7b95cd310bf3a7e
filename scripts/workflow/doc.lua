-- The workflow document: a JSON-able table, journaled at every transition, from which a
-- workflow can be re-armed alone. Its steps ({State, Started, Seconds, RequestId, Error})
-- and the log fields every workflow event carries are written here once, for the
-- workflow's own steps and the steps after ACTIVE (post_restore, validation, retention,
-- alerts).
--   M.new(rec, rule_label, rule, dry_run) -> doc   the document of a new workflow
--   M.step(doc, state) -> s / M.done(s, request_id, err)   one history step
--   M.open_step(doc, state) -> s | nil   the last step, if still open in that state
--   M.fail(msg, request_id)    a step that fails the workflow raises this (M.Failure);
--                              the driver turns it into Error, once, with one alert
-- A dry run's document says so (DryRun = true): it is never re-armed as a real one.
local clock = require "clock"
local task = require "engine.task"

local M = {}

-- The copy is made with room for a notification record's fields (notification.lua), so
-- filling it does not rehash it at every power of two; any other field is copied too.
local function copy_record(rec)
  local r = { message = rec.message, message_id = rec.message_id, notification_time = rec.notification_time,
    backup_job_id = rec.backup_job_id, copy_job_id = rec.copy_job_id, job_type = rec.job_type,
    event_type = rec.event_type, recovery_point_arn = rec.recovery_point_arn, resource_arn = rec.resource_arn,
    table_name = rec.table_name, state = rec.state, start_time = rec.start_time, start_epoch = rec.start_epoch,
    restore_via = rec.restore_via, notes = rec.notes }
  for k, v in pairs(rec) do
    if type(v) == "function" then r[k] = nil else r[k] = v end
  end
  return r
end

function M.new(rec, label, rule, dry_run)
  return {
    WorkflowId = rec.backup_job_id,
    BackupJobId = rec.backup_job_id,
    BackupSnsMessage = rec.message,
    SourceTableName = rec.table_name,
    RecoveryPointArn = rec.recovery_point_arn,
    BackupStartTime = rec.start_time,
    Rule = label,
    SourcePattern = rule.source_pattern,
    ReplacementPattern = rule.replacement,
    SSMParameterName = rule.ssm_parameter,
    WaitForActive = rule.wait_for_active ~= false,
    Record = copy_record(rec),
    StartedAt = clock.now(),
    Attempt = 1,
    Phase = "Restore Backup",
    Steps = {},
    DryRun = dry_run or nil,
  }
end

-- Is the document a dry run's? (a plan: nothing it "did" happened)
function M.is_dry_run(doc)
  return doc.DryRun == true
end

function M.step(doc, state)
  -- (the nil fields only give the table room for what done() and the step add: a
  -- constructor sizes the table for every field it names, and nil values are not stored)
  local s = { State = state, Started = clock.rfc3339(clock.now()), _t0 = clock.mono(), Seconds = nil,
    RequestId = nil, Skipped = nil }
  doc.Steps = doc.Steps or {}
  doc.Steps[#doc.Steps + 1] = s
  return s
end

-- The document's last step if it is still open (not done, its start on this machine's
-- monotonic clock) and of that state; nil otherwise.
function M.open_step(doc, state)
  local s = doc.Steps and doc.Steps[#doc.Steps]
  if s and s.State == state and s._t0 and not s.Seconds and s._t0 <= clock.mono() then return s end
end

function M.done(s, request_id, err)
  if s._t0 then s.Seconds = math.floor((clock.mono() - s._t0) * 1000 + 0.5) / 1000 end
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

-- The log fields of a workflow event: extra (a fresh table literal at every call site,
-- so it is filled in place) plus the workflow's ids; extra's own values win.
function M.fields(doc, extra)
  local f = extra or {}
  if f.workflow == nil then f.workflow = doc.WorkflowId end
  if f.source == nil then f.source = doc.SourceTableName end
  if f.target == nil then f.target = doc.TargetTableName end
  if f.message_id == nil then
    local c = task.context()
    f.message_id = c and c.message_id
  end
  return f
end

-- A step failure: raised out of the step into the driver, which records Error.
M.Failure = {}
M.Failure.__tostring = function(e) return e.msg end
function M.fail(msg, request_id)
  error(setmetatable({ msg = msg, request_id = request_id }, M.Failure), 0)
end

function M.is_failure(x)
  return getmetatable(x) == M.Failure
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
