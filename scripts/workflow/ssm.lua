-- Update SSM Parameter, never backwards: before PutParameter we read the parameter; when
-- its value is a table ARN whose name ends with Rotator's "-YYYYMMDD-HH-mm-ss" suffix,
-- that suffix is the backup start time of the copy it points to, and a newer one is kept
-- (update skipped, logged). Updates of one parameter are serialised per registry (locks).
--   M.update(ctx, wf, locks, block)
local log = require "log"
local rules = require "policy.rules"
local D = require "workflow.doc"
local S = require "workflow.step"
local clock = require "clock"
local metrics = require "engine.metrics"

local M = {}

-- The backup start time behind the current parameter value, or nil when unknown.
local function current_start(value)
  local name = type(value) == "string" and (value:match(":table/([%w_.-]+)$") or value)
  return name and rules.start_from_name(name)
end

local function put(ctx, wf, s)
  local doc, name = wf.doc, wf.doc.SSMParameterName
  local cur, rid = S.call(ctx, wf, nil, "ssm", "GetParameter", { Name = name })
  if cur then
    local value = cur.Parameter and cur.Parameter.Value
    local cur_start = current_start(value)
    if cur_start and cur_start > math.floor(doc.Record.start_epoch) then
      D.done(s, rid)
      doc.UpdateSSMParameterOutput = { Skipped = true, Reason = "parameter points at a newer backup", Current = value }
      log.warn("ssm.kept_newer", D.fields(doc, { parameter = name, current = value, request_id = rid }))
      return
    end
  elseif D.code(rid) ~= "ParameterNotFound" and D.code(rid) ~= "DryRunOffline" and type(rid) == "table" then
    D.done(s, D.rid(rid), rid)
    D.fail("GetParameter " .. name .. " failed: " .. tostring(rid), D.rid(rid))
  end
  local res, prid = S.call(ctx, wf, nil, "ssm", "PutParameter", { Name = name, Value = doc.TableArn, Type = "String", Overwrite = true })
  if not res then
    D.done(s, D.rid(prid), prid)
    D.fail("PutParameter " .. name .. " failed: " .. tostring(prid), D.rid(prid))
  end
  D.done(s, prid)
  doc.UpdateSSMParameterOutput = res
  if not ctx.dry_run then metrics.set("rotator_ssm_last_update_timestamp_seconds", { parameter = name }, clock.now()) end
  if log.enabled("info") then
    log.info("ssm.updated", D.fields(doc, { parameter = name, value = doc.TableArn, request_id = prid }))
  end
end

function M.update(ctx, wf, locks)
  local name = wf.doc.SSMParameterName
  locks:lock(wf, name, S.block)
  local ok, err = pcall(put, ctx, wf, D.step(wf.doc, "Update SSM Parameter"))
  locks:unlock(name)
  if not ok then error(err, 0) end
end

return M
