-- Validation of a restored copy before the SSM parameter switches (post_restore step
-- "Validate Restore"). rule.validation = {
--   item_count = true,           restored items (Scan COUNT, exact) == the backup's
--                                (DescribeBackup SourceTableDetails.ItemCount)
--   item_count_tolerance = 0.01, allowed relative difference (AWS's backup ItemCount is
--                                approximate: refreshed about every six hours)
--   key_schema = true,           restored KeySchema == the backup's
--   check = function(ctx) ... end  policy check: ctx = {table_name, table_arn, source_table,
--                                backup_arn, workflow, dry_run, call(service, action, params)};
--                                return true, or false/nil and a reason; an error fails too
--   report_to_backup = true,     restore jobs (StartRestoreJob): PutRestoreValidationResult
--                                (the default for restore jobs; false turns it off)
-- }
-- A failure fails the workflow: the SSM parameter keeps the previous copy. A dry run
-- (no table yet) records the step as skipped.
local log = require "log"
local H = require "workflow.doc"
local sandbox = require "policy.sandbox"

local M = {}

local KNOWN = { item_count = "boolean", item_count_tolerance = "number", key_schema = "boolean",
  check = "function", report_to_backup = "boolean" }

function M.validate_rule(rule)
  local v = rule.validation
  if v == nil then return end
  for k, val in pairs(v) do
    local want = KNOWN[k]
    if not want then return ("validation: unknown field '%s'"):format(tostring(k)) end
    if type(val) ~= want then return ("validation.%s must be a %s"):format(k, want) end
  end
  local tol = v.item_count_tolerance
  if tol and (tol < 0 or tol >= 1) then return "validation.item_count_tolerance is a fraction in [0, 1)" end
end

---------------------------------------------------------------- comparisons (pure)
local function key_set(schema)
  local t = {}
  for _, k in ipairs(schema or {}) do t[#t + 1] = tostring(k.AttributeName) .. ":" .. tostring(k.KeyType) end
  table.sort(t)
  return table.concat(t, ",")
end

-- nil when equal, else the reason.
function M.compare_key_schema(restored, backup)
  local a, b = key_set(restored), key_set(backup)
  if a ~= b then return ("key schema differs: restored [%s], backup [%s]"):format(a, b) end
end

function M.compare_count(restored, backup, tolerance)
  if type(backup) ~= "number" then return ("the backup reports no ItemCount (%s)"):format(tostring(backup)) end
  local diff = math.abs(restored - backup)
  if diff <= (tolerance or 0) * backup then return end
  return ("restored item count %d differs from the backup's %d"):format(restored, backup)
end

---------------------------------------------------------------- AWS reads
local function scan_count(ctx, name)
  local n, start, rid = 0, nil, nil
  repeat
    local res, err = ctx.svc:call("dynamodb", "Scan", { TableName = name, Select = "COUNT", ExclusiveStartKey = start })
    if not res then return nil, err end
    n, start, rid = n + (res.Count or 0), res.LastEvaluatedKey, err
  until not start
  return n, rid
end

local function backup_details(ctx, doc)
  local arn = doc.RecoveryPointArn
  if not arn or not arn:match("^arn:[%w-]+:dynamodb:") then return nil, nil, "recovery point is AWS Backup-managed" end
  local res, err = ctx.svc:call("dynamodb", "DescribeBackup", { BackupArn = arn })
  if not res then return nil, err end
  return (res.BackupDescription or {}).SourceTableDetails or {}, err
end

local function run_check(ctx, doc, fn)
  local ok, res, why = sandbox.call(fn, {
    table_name = doc.TargetTableName, table_arn = doc.TableArn, source_table = doc.SourceTableName,
    backup_arn = doc.RecoveryPointArn, workflow = doc.WorkflowId, dry_run = ctx.dry_run,
    call = function(service, action, params) return ctx.svc:call(service, action, params) end,
  })
  if not ok then return ("check function failed: %s"):format(tostring(res)) end
  if not res then return ("check function: %s"):format(tostring(why or "returned false")) end
end

-- Every configured comparison: nil when all pass, else reason, request id.
local function failures(ctx, doc, v, s)
  local src, err, skipped = nil, nil, nil
  if v.item_count or v.key_schema then
    src, err, skipped = backup_details(ctx, doc)
    if not src and not skipped then return "DescribeBackup failed: " .. tostring(err), H.rid(err) end
    s.Skipped = skipped
  end
  if src and v.key_schema then
    local t = doc.DescribeTableOutput and doc.DescribeTableOutput.Table or {}
    local why = M.compare_key_schema(t.KeySchema, src.KeySchema)
    if why then return why end
  end
  if src and v.item_count then
    local n, cerr = scan_count(ctx, doc.TargetTableName)
    if not n then return "Scan (COUNT) failed: " .. tostring(cerr), H.rid(cerr) end
    s.ItemCount, s.BackupItemCount = n, src.ItemCount
    local why = M.compare_count(n, src.ItemCount, v.item_count_tolerance)
    if why then return why end
  end
  if v.check then return run_check(ctx, doc, v.check) end
end

---------------------------------------------------------------- AWS Backup restore jobs
-- PutRestoreValidationResult for a restore job (restJson: PUT /restore-jobs/{id}/validations).
function M.report(ctx, doc, status, message)
  local params = { RestoreJobId = doc.RestoreJobId, ValidationStatus = status,
    ValidationStatusMessage = message and message:sub(1, 1000) or nil }
  local res, rid = ctx.svc:call("backup", "PutRestoreValidationResult", params)
  if res then
    log.info("validation.reported", H.fields(doc, { restore_job = doc.RestoreJobId, status = status, request_id = rid }))
  else
    log.warn("validation.report_failed", H.fields(doc, { restore_job = doc.RestoreJobId, error = tostring(rid),
      request_id = H.rid(rid) }))
  end
  return res, rid
end

-- post_restore step: ctx, doc, rule, s -> true | nil, err
function M.step(ctx, doc, rule, s)
  local v = rule.validation
  if not v then s.Skipped = "no validation configured" return true end
  if ctx.dry_run then s.Skipped = "dry run: no table to validate" return true end
  local why, rid = failures(ctx, doc, v, s)
  if v.report_to_backup ~= false and doc.RestoreJobId then
    M.report(ctx, doc, why and "FAILED" or "SUCCESSFUL", why or "Rotator validation passed")
  end
  if why then
    log.error("validation.failed", H.fields(doc, { reason = why, request_id = rid }))
    return nil, setmetatable({ request_id = rid }, { __tostring = function() return why end })
  end
  log.info("validation.passed", H.fields(doc, { item_count = s.ItemCount }))
  return true
end

return M
