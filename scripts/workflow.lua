-- The rotation workflow, with the original state machine's states:
--   Restore Backup -> SSM Parameter Provided? -> Wait for Restore -> Check Restore Status
--   -> Restore Complete? -> Update SSM Parameter -> Complete | Error
-- M.run(rec, rule, ctx) runs inside a task and returns the workflow document:
--   { WorkflowId, BackupSnsMessage, SourcePattern, ReplacementPattern, SSMParameterName,
--     TargetTableName, RestoreTableFromBackupOutput, DescribeTableOutput,
--     UpdateSSMParameterOutput, Steps = { {State, Started, Seconds, RequestId, Error}... },
--     Status = "Complete" | "Error", Error }
-- ctx.svc is a services object (services.lua); ctx.dry_run plans without waiting.
--
-- Idempotency: the restore is keyed by the target name (derived from the backup's start
-- time). On TableAlreadyExistsException we DescribeTable: a RestoreSummary.SourceBackupArn
-- equal to this job's recovery point means the restore is ours (redelivery, restart) and
-- we carry on waiting; anything else fails the workflow naming the other table's source.
-- Backup-managed recovery points use StartRestoreJob with IdempotencyToken = backup job id.
--
-- SSM never goes backwards: before PutParameter we read the parameter; when its value is a
-- table ARN whose name ends with Rotator's "-YYYYMMDD-HH-mm-ss" suffix, that suffix is the
-- backup start time of the copy it points to, and a newer one is kept (Update skipped,
-- logged). Updates of one parameter are serialised inside the process, so two workflows of
-- one daemon cannot interleave read and write. (Several daemons on one queue could still
-- race in that window; run one per queue.)
local log = require "log"
local task = require "task"
local clock = require "clock"
local rules = require "rules"
local N = require "notification"

local M = {}

M.defaults = {
  first_poll = 5,              -- first DescribeTable after 5 s ...
  max_poll = 60,               -- ... backing off to every 60 s
  poll_factor = 2,
  deadline = 24 * 3600,        -- overall wait limit
  max_concurrent = 50,         -- concurrent restores (account limit is about 50)
  restores_per_second = 10,    -- RestoreTableFromBackup calls per second
  limit_backoff = 120,         -- LimitExceededException: requeue after 2 min ...
  limit_backoff_max = 900,     -- ... doubling up to 15 min
}

M.config = {}
function M.configure(over)
  for k, v in pairs(M.defaults) do M.config[k] = v end
  local env = {
    first_poll = "ROTATOR_WAIT_FIRST", max_poll = "ROTATOR_WAIT_MAX", deadline = "ROTATOR_WAIT_DEADLINE",
    max_concurrent = "ROTATOR_MAX_RESTORES", restores_per_second = "ROTATOR_RESTORES_PER_SECOND",
    limit_backoff = "ROTATOR_LIMIT_BACKOFF", limit_backoff_max = "ROTATOR_LIMIT_BACKOFF_MAX",
  }
  for k, name in pairs(env) do
    local v = tonumber(os.getenv(name) or "")
    if v then M.config[k] = v end
  end
  for k, v in pairs(over or {}) do M.config[k] = v end
  return M.config
end
M.configure()

---------------------------------------------------------------- admission
local slots = { active = 0, waiting = {} }
local next_restore_at = 0

local function acquire_slot()
  if slots.active < M.config.max_concurrent then
    slots.active = slots.active + 1
    return
  end
  local f = task.future()
  slots.waiting[#slots.waiting + 1] = f
  f:wait() -- the releaser handed its slot over
end

local function release_slot()
  local f = table.remove(slots.waiting, 1)
  if f then f:set() else slots.active = slots.active - 1 end
end

function M.admission() return { active = slots.active, waiting = #slots.waiting } end

-- Space restore calls to restores_per_second.
local function pace(ctx)
  if ctx.dry_run then return end
  local now = clock.mono()
  local at = math.max(now, next_restore_at)
  next_restore_at = at + 1 / M.config.restores_per_second
  if at > now then task.sleep(at - now) end
end

-- One in-process lock per SSM parameter.
local locks = {}
local function with_lock(name, fn)
  local l = locks[name]
  if l then
    local f = task.future()
    l[#l + 1] = f
    f:wait()
  else
    locks[name] = {}
  end
  local res = table.pack(pcall(fn))
  local q = locks[name]
  local nxt = table.remove(q, 1)
  if nxt then nxt:set() else locks[name] = nil end
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

---------------------------------------------------------------- the document
local function new_doc(rec, rule)
  return {
    WorkflowId = rec.backup_job_id,
    BackupJobId = rec.backup_job_id,
    BackupSnsMessage = rec.message,
    SourceTableName = rec.table_name,
    RecoveryPointArn = rec.recovery_point_arn,
    BackupStartTime = rec.start_time,
    Rule = rules.label(rule),
    SourcePattern = rule.source_pattern,
    ReplacementPattern = rule.replacement,
    SSMParameterName = rule.ssm_parameter,
    Steps = {},
  }
end

local function step(doc, state)
  local s = { State = state, Started = clock.rfc3339(clock.now()), _t0 = clock.mono() }
  doc.Steps[#doc.Steps + 1] = s
  return s
end

local function done(s, request_id, err)
  s.Seconds = math.floor((clock.mono() - s._t0) * 1000 + 0.5) / 1000
  s._t0 = nil
  s.RequestId = request_id
  if err then s.Error = tostring(err) end
end

local function fields(doc, extra)
  local f = { workflow = doc.WorkflowId, source = doc.SourceTableName, target = doc.TargetTableName }
  for k, v in pairs(extra or {}) do f[k] = v end
  return f
end

-- Raise out of the state machine into Error.
local Failure = {}
local function fail(msg, request_id) error(setmetatable({ msg = msg, request_id = request_id }, Failure), 0) end

local function call(ctx, doc, s, service, action, params)
  local res, rid = ctx.svc:call(service, action, params)
  if res then return res, rid end
  local err = rid
  if s then done(s, type(err) == "table" and err.request_id or nil, err) end
  return nil, err
end

---------------------------------------------------------------- Restore Backup
local function restore_params(rec, rule, target)
  local overrides, err = rules.restore_overrides(rule, { table_name = rec.table_name, target = target,
    backup_job_id = rec.backup_job_id })
  if not overrides then fail(err) end
  local p = { TargetTableName = target, BackupArn = rec.recovery_point_arn }
  for k, v in pairs(overrides) do p[k] = v end
  return p
end

-- Is an existing table of that name restored from our recovery point? true, desc | false, why
local function ours(ctx, doc, target, rec)
  local res, rid = call(ctx, doc, nil, "dynamodb", "DescribeTable", { TableName = target })
  if not res then return nil, "DescribeTable failed: " .. tostring(rid) end
  local t = res.Table or {}
  local src = t.RestoreSummary and t.RestoreSummary.SourceBackupArn
  if src == rec.recovery_point_arn then return true, t, rid end
  return false, ("table %s already exists and was not restored from this backup (its source: %s)")
    :format(target, tostring(src or "not a restore"))
end

local function limit_backoff(ctx, doc, attempt, err)
  local wait = math.min(M.config.limit_backoff * 2 ^ (attempt - 1), M.config.limit_backoff_max)
  log.warn("restore.requeued", fields(doc, { reason = tostring(err), retry_in = wait,
    request_id = type(err) == "table" and err.request_id or nil }))
  task.sleep(wait)
end

local function restore_dynamodb(ctx, doc, rec, rule)
  local params = restore_params(rec, rule, doc.TargetTableName)
  local attempt = 0
  while true do
    attempt = attempt + 1
    pace(ctx)
    local s = step(doc, "Restore Backup")
    local res, rid = call(ctx, doc, s, "dynamodb", "RestoreTableFromBackup", params)
    if res then
      done(s, rid)
      doc.RestoreTableFromBackupOutput = res
      doc.TableArn = res.TableDescription and res.TableDescription.TableArn
      log.info("restore.started", fields(doc, { request_id = rid, backup = rec.recovery_point_arn }))
      return
    end
    local err = rid
    local code = type(err) == "table" and err.code or nil
    if code == "TableAlreadyExistsException" then
      local mine, t, drid = ours(ctx, doc, doc.TargetTableName, rec)
      if mine then
        doc.TableArn = t.TableArn
        doc.DescribeTableOutput = { Table = t }
        log.info("restore.already_started", fields(doc, { request_id = drid, status = t.TableStatus,
          reason = "table exists, restored from this backup (redelivery or restart)" }))
        return
      end
      fail(t or ("table %s exists"):format(doc.TargetTableName), err.request_id)
    elseif code == "LimitExceededException" then
      if clock.mono() - doc._t0 > M.config.deadline then fail("gave up after LimitExceededException until the deadline: " .. tostring(err)) end
      limit_backoff(ctx, doc, attempt, err)
    else
      fail("RestoreTableFromBackup failed: " .. tostring(err), code and err.request_id)
    end
  end
end

local function restore_backup_job(ctx, doc, rec, rule)
  if not rule.iam_role_arn then
    fail(("recovery point %s is AWS Backup-managed: rule %s needs iam_role_arn for StartRestoreJob")
      :format(rec.recovery_point_arn, rules.label(rule)))
  end
  local params = {
    RecoveryPointArn = rec.recovery_point_arn,
    IamRoleArn = rule.iam_role_arn,
    IdempotencyToken = rec.backup_job_id,
    ResourceType = "DynamoDB",
    Metadata = { targetTableName = doc.TargetTableName },
  }
  local attempt = 0
  while true do
    attempt = attempt + 1
    pace(ctx)
    local s = step(doc, "Restore Backup")
    local res, rid = call(ctx, doc, s, "backup", "StartRestoreJob", params)
    if res then
      done(s, rid)
      doc.StartRestoreJobOutput = res
      doc.RestoreJobId = res.RestoreJobId
      local _, region, account = N.arn_parts(rec.resource_arn)
      local partition = N.arn_parts(rec.recovery_point_arn)
      doc.TableArn = ("arn:%s:dynamodb:%s:%s:table/%s"):format(partition or "aws", region or "", account or "",
        doc.TargetTableName)
      log.info("restore.started", fields(doc, { request_id = rid, restore_job = res.RestoreJobId,
        backup = rec.recovery_point_arn }))
      return
    end
    local err = rid
    if type(err) == "table" and err.code == "LimitExceededException" then
      limit_backoff(ctx, doc, attempt, err)
    else
      fail("StartRestoreJob failed: " .. tostring(err), type(err) == "table" and err.request_id or nil)
    end
  end
end

---------------------------------------------------------------- Wait / Check Restore Status
local function poller()
  local interval = M.config.first_poll
  return function()
    task.sleep(interval)
    interval = math.min(interval * M.config.poll_factor, M.config.max_poll)
  end
end

local function wait_restore_job(ctx, doc)
  local wait = poller()
  while true do
    if clock.mono() - doc._t0 > M.config.deadline then fail("restore job did not finish before the deadline") end
    local s = step(doc, "Wait for Restore")
    wait()
    done(s)
    s = step(doc, "Check Restore Status")
    local res, rid = call(ctx, doc, s, "backup", "DescribeRestoreJob", { RestoreJobId = doc.RestoreJobId })
    if res then
      done(s, rid)
      doc.DescribeRestoreJobOutput = res
      if res.Status == "COMPLETED" then
        if res.CreatedResourceArn then doc.TableArn = res.CreatedResourceArn end
        return
      elseif res.Status ~= "PENDING" and res.Status ~= "RUNNING" then
        fail(("restore job %s is %s: %s"):format(doc.RestoreJobId, tostring(res.Status), tostring(res.StatusMessage)), rid)
      end
    elseif not (type(rid) == "table" and rid.retryable) then
      fail("DescribeRestoreJob failed: " .. tostring(rid))
    end
  end
end

local function wait_active(ctx, doc)
  local wait = poller()
  while true do
    if clock.mono() - doc._t0 > M.config.deadline then
      fail(("table %s not ACTIVE after %d s (deadline)"):format(doc.TargetTableName, M.config.deadline))
    end
    local s = step(doc, "Wait for Restore")
    wait()
    done(s)
    s = step(doc, "Check Restore Status")
    local res, rid = call(ctx, doc, s, "dynamodb", "DescribeTable", { TableName = doc.TargetTableName })
    if res then
      done(s, rid)
      doc.DescribeTableOutput = res
      local status = res.Table and res.Table.TableStatus
      s.TableStatus = status
      log.info("restore.status", fields(doc, { status = status, request_id = rid }))
      if status == "ACTIVE" then
        doc.TableArn = res.Table.TableArn or doc.TableArn
        return
      elseif status ~= "CREATING" and status ~= "UPDATING" then
        fail(("table %s is %s, not ACTIVE"):format(doc.TargetTableName, tostring(status)), rid)
      end
    else
      local code = type(rid) == "table" and rid.code
      -- A just-started restore may not be visible yet; throttling and 5xx are transient.
      if not (code == "ResourceNotFoundException" or (type(rid) == "table" and rid.retryable)) then
        fail("DescribeTable failed: " .. tostring(rid), type(rid) == "table" and rid.request_id or nil)
      end
      log.warn("restore.status_unavailable", fields(doc, { reason = tostring(rid),
        request_id = type(rid) == "table" and rid.request_id or nil }))
    end
  end
end

---------------------------------------------------------------- after-ACTIVE hook, SSM
local function after_active(ctx, doc, rule)
  if not rule.after_active then return end
  local s = step(doc, "After Active Hook")
  local ok, err = pcall(rule.after_active, {
    workflow = doc.WorkflowId, table_name = doc.TargetTableName, table_arn = doc.TableArn,
    source_table = doc.SourceTableName, backup_job_id = doc.BackupJobId, dry_run = ctx.dry_run,
    call = function(service, action, params) return ctx.svc:call(service, action, params) end,
  })
  done(s, nil, not ok and err or nil)
  if not ok then fail(("after_active hook of rule %s failed: %s"):format(doc.Rule, tostring(err))) end
end

-- The backup start time behind the current parameter value, or nil when unknown.
local function current_start(value)
  local name = type(value) == "string" and (value:match(":table/([%w_.-]+)$") or value)
  return name and rules.start_from_name(name)
end

local function update_ssm(ctx, doc, rec)
  local name = doc.SSMParameterName
  with_lock(name, function()
    local s = step(doc, "Update SSM Parameter")
    local cur, rid = ctx.svc:call("ssm", "GetParameter", { Name = name })
    if cur then
      local value = cur.Parameter and cur.Parameter.Value
      local cur_start = current_start(value)
      if cur_start and cur_start > math.floor(rec.start_epoch) then
        done(s, rid)
        doc.UpdateSSMParameterOutput = { Skipped = true, Reason = "parameter points at a newer backup", Current = value }
        log.warn("ssm.kept_newer", fields(doc, { parameter = name, current = value, request_id = rid }))
        return
      end
    elseif type(rid) == "table" and rid.code ~= "ParameterNotFound" and rid.code ~= "DryRunOffline" then
      done(s, rid.request_id, rid)
      fail("GetParameter " .. name .. " failed: " .. tostring(rid), rid.request_id)
    end
    local res, prid = ctx.svc:call("ssm", "PutParameter", { Name = name, Value = doc.TableArn, Type = "String", Overwrite = true })
    if not res then
      done(s, type(prid) == "table" and prid.request_id or nil, prid)
      fail("PutParameter " .. name .. " failed: " .. tostring(prid), type(prid) == "table" and prid.request_id or nil)
    end
    done(s, prid)
    doc.UpdateSSMParameterOutput = res
    log.info("ssm.updated", fields(doc, { parameter = name, value = doc.TableArn, request_id = prid }))
  end)
end

---------------------------------------------------------------- the machine
local function machine(ctx, doc, rec, rule)
  local target, err = rules.target_name(rule, rec)
  if not target then fail(err) end
  doc.TargetTableName = target
  if rec.restore_via == N.RESTORE_BACKUP then
    restore_backup_job(ctx, doc, rec, rule)
  else
    restore_dynamodb(ctx, doc, rec, rule)
  end
  -- SSM Parameter Provided?
  if not doc.SSMParameterName and rule.wait_for_active == false then return end
  if not ctx.dry_run then
    if doc.RestoreJobId then wait_restore_job(ctx, doc) end
    wait_active(ctx, doc)
    log.info("restore.complete", fields(doc, { table_arn = doc.TableArn }))
  end
  after_active(ctx, doc, rule)
  if doc.SSMParameterName then update_ssm(ctx, doc, rec) end
end

-- Run one record under one rule. Never raises; returns the document.
function M.run(rec, rule, ctx)
  local doc = new_doc(rec, rule)
  doc._t0 = clock.mono()
  local admitted = not ctx.dry_run
  if admitted then acquire_slot() end
  local ok, e = xpcall(machine, function(x)
    if getmetatable(x) == Failure then return x end
    return { msg = debug.traceback(tostring(x), 2) }
  end, ctx, doc, rec, rule)
  if admitted then release_slot() end
  doc.Seconds = math.floor((clock.mono() - doc._t0) * 1000 + 0.5) / 1000
  doc._t0 = nil
  if ok then
    doc.Status = "Complete"
    log.info("workflow.complete", fields(doc, { table_arn = doc.TableArn, parameter = doc.SSMParameterName,
      seconds = doc.Seconds }))
  else
    doc.Status, doc.Error = "Error", e.msg
    log.error("workflow.failed", fields(doc, { error = e.msg, request_id = e.request_id }))
  end
  return doc
end

return M
