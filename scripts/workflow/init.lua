-- The rotation workflow, with the original state machine's states:
--   Restore Backup -> SSM Parameter Provided? -> Wait for Restore -> Check Restore Status
--   -> Restore Complete? -> Update SSM Parameter -> Complete | Error
--
-- A workflow is a document (JSON-able, journaled) plus a driver task. doc.Phase names
-- the step the workflow stands at; the driver runs one step at a time and every step
-- boundary is a place where the workflow can be journaled, parked (hot reload) and later
-- re-armed from the document alone (same step, remaining wait):
--   Restore Backup       admission slot, pacing, RestoreTableFromBackup / StartRestoreJob
--   Wait for Restore     sleep until doc.NextPollAt, then Check Restore Status
--   Restore Complete     after-ACTIVE hook (and issue 7's post-restore/validation)
--   Update SSM Parameter GetParameter + PutParameter (never backwards)
--   Complete | Error     final
--
--   M.start(rec, rule, ctx) -> wf      new workflow, journaled ("Accepted"), driven in a task
--   M.rearm(doc, rule, ctx[, quiet]) -> wf  carry on from a document (journal or reload snapshot)
--   M.await(wf) -> doc                 wait (inside a task) until it is Complete or Error
--   M.run(rec, rule, ctx) -> doc       start + await (replay, tests)
--   M.live[id]                         workflows driven by this state
--   M.quiesce(cb) / M.snapshot()       park every workflow at a step boundary (reload)
-- ctx: { svc (services.lua), store (store.lua, optional: nil journals nothing), dry_run }
--
-- Durability: every transition is journaled (ctx.store:record, fsync'd) before anything
-- depends on it: the restore's output before the first DescribeTable, Complete before the
-- intake deletes the SQS message. A crash between a restore call and its record is
-- harmless: the resumed step calls again, gets TableAlreadyExistsException, and finds the
-- table restored from this job's recovery point (DescribeTable RestoreSummary) -> ours.
-- Backup-managed recovery points use StartRestoreJob with IdempotencyToken = backup job id.
--
-- Parking (after rspamd's lua_thread_pool): each workflow carries a generation. Parking
-- cancels its timer or queue place and bumps the generation; a wake-up (timer, slot
-- hand-over, late AWS completion) that carries an older generation is dropped, never
-- resumed. A workflow inside a step (an AWS call in flight) parks at the end of the step.
--
-- SSM never goes backwards: before PutParameter we read the parameter; when its value is a
-- table ARN whose name ends with Rotator's "-YYYYMMDD-HH-mm-ss" suffix, that suffix is the
-- backup start time of the copy it points to, and a newer one is kept (Update skipped,
-- logged). Updates of one parameter are serialised inside the process.
local log = require "log"
local task = require "engine.task"
local timer = require "timer"
local clock = require "clock"
local rules = require "policy.rules"
local N = require "workflow.notification"

local M = { live = {} }

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

local FINAL = { Complete = true, Error = true }

---------------------------------------------------------------- blocking with generations
local parking = nil -- while quiescing: { cb = fn } (see M.quiesce)

local function park_forever()
  while true do coroutine.yield() end
end

-- Block the workflow's task until wake(wf, gen) or parking; `undo` removes it from
-- whatever would wake it (timer, queue).
local function block(wf, where, undo)
  local gen = wf.gen
  wf.where, wf.undo, wf.co = where, undo, coroutine.running()
  coroutine.yield()
  if wf.gen ~= gen then return park_forever() end
  wf.where, wf.undo = "step", nil
end

local function wake(wf, gen)
  task.defer(function()
    if wf.gen ~= gen or wf.parked then
      log.debug("workflow.stale_wakeup", { workflow = wf.doc.WorkflowId, gen = gen, now = wf.gen })
      return
    end
    task.resume(wf.co)
  end)
end

local function note_parked(wf)
  wf.parked = true
  if parking then parking.check() end
end

-- Park a workflow that waits (timer, slot, lock) right away.
local function park_blocked(wf)
  if wf.undo then wf.undo() end
  wf.undo = nil
  wf.gen = wf.gen + 1
  note_parked(wf)
end

-- Step boundary: park here while a reload quiesces.
local function boundary(wf)
  if wf.gen ~= wf.born or parking then
    wf.gen = wf.gen + 1
    note_parked(wf)
    return park_forever()
  end
end

local function sleep(wf, seconds)
  local gen = wf.gen
  local t = timer.after(math.max(seconds, 0), function() wake(wf, gen) end)
  block(wf, "sleep", function() t:cancel() end)
end

---------------------------------------------------------------- admission
local slots, next_restore_at, locks

local function reset_admission()
  slots = { active = 0, waiting = {} }
  next_restore_at = 0
  locks = {}
end
reset_admission()

local function dequeue(list, wf)
  for i, x in ipairs(list) do
    if x == wf then table.remove(list, i) return end
  end
end

-- force: the restore already started, so the slot is owed (re-armed after a reload/crash).
local function acquire_slot(wf, force)
  if force or slots.active < M.config.max_concurrent then
    slots.active = slots.active + 1
    wf.slot = true
    return
  end
  slots.waiting[#slots.waiting + 1] = wf
  block(wf, "admission", function() dequeue(slots.waiting, wf) end)
end

local function release_slot(wf)
  if not wf.slot then return end
  wf.slot = nil
  local nxt = table.remove(slots.waiting, 1)
  if nxt then
    nxt.slot = true -- handed over
    wake(nxt, nxt.gen)
  else
    slots.active = slots.active - 1
  end
end

function M.admission() return { active = slots.active, waiting = #slots.waiting } end

-- Seconds to wait so restore calls keep to restores_per_second (the turn is reserved).
local function pace_delay(ctx)
  if ctx.dry_run then return 0 end
  local now = clock.mono()
  local at = math.max(now, next_restore_at)
  next_restore_at = at + 1 / M.config.restores_per_second
  return at - now
end

-- One in-process lock per SSM parameter; waiting for it is a step boundary.
local function lock(wf, name)
  local q = locks[name]
  if not q then locks[name] = {} return end
  q[#q + 1] = wf
  block(wf, "lock", function() dequeue(q, wf) end)
end

local function unlock(name)
  local q = locks[name]
  if not q then return end
  local nxt = table.remove(q, 1)
  if nxt then wake(nxt, nxt.gen) else locks[name] = nil end
end

---------------------------------------------------------------- the document
local function copy_record(rec)
  local r = {}
  for k, v in pairs(rec) do if type(v) ~= "function" then r[k] = v end end
  return r
end

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
    WaitForActive = rule.wait_for_active ~= false,
    Record = copy_record(rec),
    StartedAt = clock.now(),
    Attempt = 1,
    Phase = "Restore Backup",
    Steps = {},
  }
end

local function step(doc, state)
  local s = { State = state, Started = clock.rfc3339(clock.now()), _t0 = clock.mono() }
  doc.Steps[#doc.Steps + 1] = s
  return s
end

local function done(s, request_id, err)
  if s._t0 then s.Seconds = math.floor((clock.mono() - s._t0) * 1000 + 0.5) / 1000 end
  s._t0 = nil
  s.RequestId = request_id
  if err then s.Error = tostring(err) end
end

local function fields(doc, extra)
  local f = { workflow = doc.WorkflowId, source = doc.SourceTableName, target = doc.TargetTableName }
  for k, v in pairs(extra or {}) do f[k] = v end
  return f
end

local function rid_of(err) return type(err) == "table" and err.request_id or nil end

-- Raise out of the state machine into Error.
local Failure = {}
local function fail(msg, request_id) error(setmetatable({ msg = msg, request_id = request_id }, Failure), 0) end

-- Journal the transition; nothing that depends on it happens before this returns.
local function record(ctx, wf, what)
  if not ctx.store then return end
  local ok, err = ctx.store:record(wf.doc, what)
  if not ok then fail("journal: cannot record " .. what .. ": " .. tostring(err)) end
end

-- AWS call from a step. A workflow parked or superseded meanwhile drops the result.
local function call(ctx, wf, s, service, action, params)
  local gen = wf.gen
  local res, rid = ctx.svc:call(service, action, params)
  if wf.gen ~= gen then return park_forever() end
  if res then return res, rid end
  if s then done(s, rid_of(rid), rid) end
  return nil, rid
end

local function past_deadline(doc)
  return clock.now() - doc.StartedAt > M.config.deadline
end

---------------------------------------------------------------- Restore Backup
local function restore_params(wf, target)
  local rec, rule = wf.doc.Record, wf.rule
  local overrides, err = rules.restore_overrides(rule, { table_name = rec.table_name, target = target,
    backup_job_id = rec.backup_job_id })
  if not overrides then fail(err) end
  local p = { TargetTableName = target, BackupArn = rec.recovery_point_arn }
  for k, v in pairs(overrides) do p[k] = v end
  return p
end

-- Is an existing table of that name restored from our recovery point? true, desc | false, why
local function ours(ctx, wf, target)
  local res, rid = call(ctx, wf, nil, "dynamodb", "DescribeTable", { TableName = target })
  if not res then return nil, "DescribeTable failed: " .. tostring(rid) end
  local t = res.Table or {}
  local src = t.RestoreSummary and t.RestoreSummary.SourceBackupArn
  if src == wf.doc.RecoveryPointArn then return true, t, rid end
  return false, ("table %s already exists and was not restored from this backup (its source: %s)")
    :format(target, tostring(src or "not a restore"))
end

-- LimitExceededException: back in the queue, minutes-scale backoff (survives reloads).
local function requeue(ctx, wf, err)
  local doc = wf.doc
  if past_deadline(doc) then fail("gave up after LimitExceededException until the deadline: " .. tostring(err)) end
  doc.LimitRetries = (doc.LimitRetries or 0) + 1
  local wait = math.min(M.config.limit_backoff * 2 ^ (doc.LimitRetries - 1), M.config.limit_backoff_max)
  doc.RetryAt = clock.now() + wait
  record(ctx, wf, "Restore Requeued")
  log.warn("restore.requeued", fields(doc, { reason = tostring(err), retry_in = wait, request_id = rid_of(err) }))
end

local function restore_started(ctx, wf, what)
  local doc = wf.doc
  doc.Phase = (doc.SSMParameterName or doc.WaitForActive) and "Wait for Restore" or "Complete"
  if ctx.dry_run and doc.Phase == "Wait for Restore" then doc.Phase = "Restore Complete" end
  doc.NextPollAt = clock.now() + M.config.first_poll
  doc.PollInterval = M.config.first_poll
  doc.RetryAt = nil
  record(ctx, wf, what)
end

local function restore_dynamodb(ctx, wf)
  local doc = wf.doc
  local s = step(doc, "Restore Backup")
  local res, rid = call(ctx, wf, s, "dynamodb", "RestoreTableFromBackup", restore_params(wf, doc.TargetTableName))
  if res then
    done(s, rid)
    doc.RestoreTableFromBackupOutput = res
    doc.TableArn = res.TableDescription and res.TableDescription.TableArn
    restore_started(ctx, wf, "Restore Started")
    log.info("restore.started", fields(doc, { request_id = rid, backup = doc.RecoveryPointArn }))
    return
  end
  local code = type(rid) == "table" and rid.code or nil
  if code == "TableAlreadyExistsException" then
    local mine, t, drid = ours(ctx, wf, doc.TargetTableName)
    if not mine then fail(t or ("table %s exists"):format(doc.TargetTableName), rid.request_id) end
    doc.TableArn = t.TableArn
    doc.DescribeTableOutput = { Table = t }
    restore_started(ctx, wf, "Restore Already Started")
    log.info("restore.already_started", fields(doc, { request_id = drid, status = t.TableStatus,
      reason = "table exists, restored from this backup (redelivery or restart)" }))
  elseif code == "LimitExceededException" then
    requeue(ctx, wf, rid)
  else
    fail("RestoreTableFromBackup failed: " .. tostring(rid), rid_of(rid))
  end
end

local function restore_backup_job(ctx, wf)
  local doc, rule, rec = wf.doc, wf.rule, wf.doc.Record
  if not rule.iam_role_arn then
    fail(("recovery point %s is AWS Backup-managed: rule %s needs iam_role_arn for StartRestoreJob")
      :format(rec.recovery_point_arn, rules.label(rule)))
  end
  local s = step(doc, "Restore Backup")
  local res, rid = call(ctx, wf, s, "backup", "StartRestoreJob", {
    RecoveryPointArn = rec.recovery_point_arn, IamRoleArn = rule.iam_role_arn,
    IdempotencyToken = rec.backup_job_id, ResourceType = "DynamoDB",
    Metadata = { targetTableName = doc.TargetTableName },
  })
  if res then
    done(s, rid)
    doc.StartRestoreJobOutput = res
    doc.RestoreJobId = res.RestoreJobId
    local _, region, account = N.arn_parts(rec.resource_arn)
    local partition = N.arn_parts(rec.recovery_point_arn)
    doc.TableArn = ("arn:%s:dynamodb:%s:%s:table/%s"):format(partition or "aws", region or "", account or "",
      doc.TargetTableName)
    restore_started(ctx, wf, "Restore Started")
    log.info("restore.started", fields(doc, { request_id = rid, restore_job = res.RestoreJobId,
      backup = rec.recovery_point_arn }))
  elseif type(rid) == "table" and rid.code == "LimitExceededException" then
    requeue(ctx, wf, rid)
  else
    fail("StartRestoreJob failed: " .. tostring(rid), rid_of(rid))
  end
end

local function step_restore(ctx, wf)
  local doc = wf.doc
  if doc.RetryAt and doc.RetryAt > clock.now() then return doc.RetryAt - clock.now() end
  if not wf.paced then
    wf.paced = true
    local d = pace_delay(ctx)
    if d > 0 then return d end
  end
  wf.paced = nil
  if doc.Record.restore_via == N.RESTORE_BACKUP then
    restore_backup_job(ctx, wf)
  else
    restore_dynamodb(ctx, wf)
  end
end

---------------------------------------------------------------- Wait / Check Restore Status
local function next_poll(ctx, wf, what)
  local doc = wf.doc
  doc.PollInterval = math.min((doc.PollInterval or M.config.first_poll) * M.config.poll_factor, M.config.max_poll)
  doc.NextPollAt = clock.now() + doc.PollInterval
  record(ctx, wf, what)
end

local function check_restore_job(ctx, wf, s)
  local doc = wf.doc
  local res, rid = call(ctx, wf, s, "backup", "DescribeRestoreJob", { RestoreJobId = doc.RestoreJobId })
  if not res then
    if not (type(rid) == "table" and rid.retryable) then fail("DescribeRestoreJob failed: " .. tostring(rid)) end
    return next_poll(ctx, wf, "Check Restore Status")
  end
  done(s, rid)
  doc.DescribeRestoreJobOutput = res
  if res.Status == "COMPLETED" then
    if res.CreatedResourceArn then doc.TableArn = res.CreatedResourceArn end
    doc.RestoreJobCompleted = true
  elseif res.Status ~= "PENDING" and res.Status ~= "RUNNING" then
    fail(("restore job %s is %s: %s"):format(doc.RestoreJobId, tostring(res.Status), tostring(res.StatusMessage)), rid)
  end
  next_poll(ctx, wf, "Check Restore Status")
end

local function check_table(ctx, wf, s)
  local doc = wf.doc
  local res, rid = call(ctx, wf, s, "dynamodb", "DescribeTable", { TableName = doc.TargetTableName })
  if not res then
    local code = type(rid) == "table" and rid.code
    -- A just-started restore may not be visible yet; throttling and 5xx are transient.
    if not (code == "ResourceNotFoundException" or (type(rid) == "table" and rid.retryable)) then
      fail("DescribeTable failed: " .. tostring(rid), rid_of(rid))
    end
    log.warn("restore.status_unavailable", fields(doc, { reason = tostring(rid), request_id = rid_of(rid) }))
    return next_poll(ctx, wf, "Check Restore Status")
  end
  done(s, rid)
  doc.DescribeTableOutput = res
  local status = res.Table and res.Table.TableStatus
  s.TableStatus = status
  log.info("restore.status", fields(doc, { status = status, request_id = rid }))
  if status == "ACTIVE" then
    doc.TableArn = res.Table.TableArn or doc.TableArn
    doc.Phase = "Restore Complete"
    record(ctx, wf, "Restore Complete")
    log.info("restore.complete", fields(doc, { table_arn = doc.TableArn, request_id = rid }))
  elseif status == "CREATING" or status == "UPDATING" then
    next_poll(ctx, wf, "Check Restore Status")
  else
    fail(("table %s is %s, not ACTIVE"):format(doc.TargetTableName, tostring(status)), rid)
  end
end

local function step_wait(ctx, wf)
  local doc = wf.doc
  if past_deadline(doc) then
    fail(("table %s not ACTIVE after %d s (deadline)"):format(doc.TargetTableName, M.config.deadline))
  end
  local left = (doc.NextPollAt or 0) - clock.now()
  if left > 0 then
    if not wf.waiting then wf.waiting = step(doc, "Wait for Restore") end
    return left
  end
  if wf.waiting then done(wf.waiting) wf.waiting = nil end
  local s = step(doc, "Check Restore Status")
  if doc.RestoreJobId and not doc.RestoreJobCompleted then return check_restore_job(ctx, wf, s) end
  check_table(ctx, wf, s)
end

---------------------------------------------------------------- Restore Complete (after ACTIVE)
local function after_active_hook(ctx, wf)
  local doc, rule = wf.doc, wf.rule
  if not rule.after_active then return end
  local s = step(doc, "After Active Hook")
  local ok, err = require("policy.sandbox").call(rule.after_active, {
    workflow = doc.WorkflowId, table_name = doc.TargetTableName, table_arn = doc.TableArn,
    source_table = doc.SourceTableName, backup_job_id = doc.BackupJobId, dry_run = ctx.dry_run,
    call = function(service, action, params) return ctx.svc:call(service, action, params) end,
  })
  done(s, nil, not ok and err or nil)
  if not ok then fail(("after_active hook of rule %s failed: %s"):format(doc.Rule, tostring(err))) end
end

-- After ACTIVE, before the SSM update. (Issue 7: post-restore settings and validation
-- are called here, after the hook.)
local function step_restore_complete(ctx, wf)
  local doc = wf.doc
  after_active_hook(ctx, wf)
  local set_ok, set_err, set_rid = require("after.post_restore").after_active(ctx, doc, wf.rule, doc.Record)
  if not set_ok then fail(set_err, set_rid) end
  doc.Phase = doc.SSMParameterName and "Update SSM Parameter" or "Complete"
  record(ctx, wf, "After Active")
end

---------------------------------------------------------------- Update SSM Parameter
-- The backup start time behind the current parameter value, or nil when unknown.
local function current_start(value)
  local name = type(value) == "string" and (value:match(":table/([%w_.-]+)$") or value)
  return name and rules.start_from_name(name)
end

local function put_ssm(ctx, wf, s)
  local doc, name = wf.doc, wf.doc.SSMParameterName
  local cur, rid = call(ctx, wf, nil, "ssm", "GetParameter", { Name = name })
  if cur then
    local value = cur.Parameter and cur.Parameter.Value
    local cur_start = current_start(value)
    if cur_start and cur_start > math.floor(doc.Record.start_epoch) then
      done(s, rid)
      doc.UpdateSSMParameterOutput = { Skipped = true, Reason = "parameter points at a newer backup", Current = value }
      log.warn("ssm.kept_newer", fields(doc, { parameter = name, current = value, request_id = rid }))
      return
    end
  elseif type(rid) == "table" and rid.code ~= "ParameterNotFound" and rid.code ~= "DryRunOffline" then
    done(s, rid.request_id, rid)
    fail("GetParameter " .. name .. " failed: " .. tostring(rid), rid.request_id)
  end
  local res, prid = call(ctx, wf, nil, "ssm", "PutParameter", { Name = name, Value = doc.TableArn, Type = "String", Overwrite = true })
  if not res then
    done(s, rid_of(prid), prid)
    fail("PutParameter " .. name .. " failed: " .. tostring(prid), rid_of(prid))
  end
  done(s, prid)
  doc.UpdateSSMParameterOutput = res
  log.info("ssm.updated", fields(doc, { parameter = name, value = doc.TableArn, request_id = prid }))
end

local function step_ssm(ctx, wf)
  local doc, name = wf.doc, wf.doc.SSMParameterName
  lock(wf, name)
  local ok, err = pcall(put_ssm, ctx, wf, step(doc, "Update SSM Parameter"))
  unlock(name)
  if not ok then error(err, 0) end
  -- (Issue 7: retention runs here, after the SSM update.)
  require("after.retention").after_switch(ctx, doc, wf.rule)
  doc.Phase = "Complete"
end

---------------------------------------------------------------- the driver
local STEPS = {
  ["Restore Backup"] = step_restore,
  ["Wait for Restore"] = step_wait,
  ["Restore Complete"] = step_restore_complete,
  ["Update SSM Parameter"] = step_ssm,
}

local SLOT_PHASES = { ["Restore Backup"] = true, ["Wait for Restore"] = true }

local function admit(ctx, wf)
  local phase = wf.doc.Phase
  if ctx.dry_run then return end
  if SLOT_PHASES[phase] and not wf.slot then acquire_slot(wf, phase ~= "Restore Backup") end
end

local function machine(ctx, wf)
  local doc = wf.doc
  if not doc.TargetTableName then
    local target, err = rules.target_name(wf.rule, doc.Record)
    if not target then fail(err) end
    doc.TargetTableName = target
  end
  while not FINAL[doc.Phase] do
    local fn = STEPS[doc.Phase] or fail("unknown workflow phase " .. tostring(doc.Phase))
    boundary(wf)
    admit(ctx, wf)
    boundary(wf)
    local delay = fn(ctx, wf)
    if not SLOT_PHASES[doc.Phase] then release_slot(wf) end
    if delay then
      boundary(wf)
      sleep(wf, delay)
    end
  end
end

local function finish(ctx, wf, ok, e)
  local doc = wf.doc
  release_slot(wf)
  doc.Seconds = math.floor((clock.now() - doc.StartedAt) * 1000 + 0.5) / 1000
  if ok then
    doc.Status, doc.Phase = "Complete", "Complete"
    log.info("workflow.complete", fields(doc, { table_arn = doc.TableArn, parameter = doc.SSMParameterName,
      seconds = doc.Seconds }))
  else
    doc.Status, doc.Phase, doc.Error = "Error", "Error", e.msg
    log.error("workflow.failed", fields(doc, { error = e.msg, request_id = e.request_id }))
    -- Any failure alerts, once per workflow (alerts.lua deduplicates); an alert that cannot
    -- be published is logged and never changes the outcome.
    if wf.rule then
      pcall(require("after.alerts").workflow_failed, ctx, doc, wf.rule, { msg = e.msg, request_id = e.request_id })
    end
  end
  if ctx.store then
    local seq, err = ctx.store:record(doc, doc.Status)
    if not seq then
      -- Not durable: the message must not be deleted; the job runs again (idempotently).
      doc.Status, doc.Error = "Error", "journal: cannot record the outcome: " .. tostring(err)
    end
  end
end

local function drive(ctx, wf)
  local ok, e = xpcall(machine, function(x)
    if getmetatable(x) == Failure then return x end
    return { msg = debug.traceback(tostring(x), 2) }
  end, ctx, wf)
  if wf.gen ~= wf.born then return end -- superseded (reload abort re-armed it)
  finish(ctx, wf, ok, e)
  if M.live[wf.id] == wf then M.live[wf.id] = nil end
  wf.finished = true
  for _, f in ipairs(wf.waiters) do f:set(wf.doc) end
  wf.waiters = {}
  if parking then parking.check() end
end

local function spawn(ctx, wf)
  M.live[wf.id] = wf
  task.spawn(drive, ctx, wf)
  return wf
end

local function handle(doc, rule)
  return { id = doc.WorkflowId, doc = doc, rule = rule, gen = 0, born = 0, where = "step", waiters = {} }
end

function M.start(rec, rule, ctx)
  local wf = handle(new_doc(rec, rule), rule)
  if ctx.store then
    local ok, err = ctx.store:record(wf.doc, "Accepted")
    if not ok then
      wf.doc.Status, wf.doc.Phase, wf.doc.Error = "Error", "Error", "journal: " .. tostring(err)
      wf.finished = true
      return wf
    end
  end
  log.info("workflow.accepted", fields(wf.doc, { backup = rec.recovery_point_arn, rule = wf.doc.Rule }))
  return spawn(ctx, wf)
end

-- Carry a workflow on from its document: the same step, the remaining wait.
-- quiet: a reload handover (summarised by the daemon) logs each at debug level only.
function M.rearm(doc, rule, ctx, quiet)
  local wf = handle(doc, rule)
  doc.Status, doc.Error = nil, nil
  if doc.Phase == "Wait for Restore" and not ctx.dry_run then acquire_slot(wf, true) end
  log[quiet and "debug" or "info"]("workflow.rearmed", fields(doc, { phase = doc.Phase, rule = rules.label(rule),
    wait = doc.Phase == "Wait for Restore" and math.max(0, (doc.NextPollAt or 0) - clock.now()) or nil }))
  return spawn(ctx, wf)
end

function M.await(wf)
  if wf.finished then return wf.doc end
  local f = task.future()
  wf.waiters[#wf.waiters + 1] = f
  return f:wait()
end

-- Run one record under one rule. Never raises; returns the document.
function M.run(rec, rule, ctx)
  return M.await(M.start(rec, rule, ctx))
end

-- The rule a document was started with (by label), else the first that matches its
-- source table, else a rule rebuilt from the document (no hooks: the restore started).
function M.rule_for(doc, list)
  for _, r in ipairs(list or {}) do
    if rules.label(r) == doc.Rule and r.source_pattern == doc.SourcePattern then return r end
  end
  local r = rules.match(list or {}, doc.SourceTableName or "")
  if r then return r end
  return { name = doc.Rule, source_pattern = doc.SourcePattern, replacement = doc.ReplacementPattern,
    ssm_parameter = doc.SSMParameterName, wait_for_active = doc.WaitForActive }
end

---------------------------------------------------------------- quiesce (hot reload)
-- Park every live workflow at a step boundary; cb() once all are parked or finished.
-- Returns a function that reports what is still moving ({ids}).
function M.quiesce(cb)
  local called = false
  parking = {}
  local function moving()
    local ids = {}
    for id, wf in pairs(M.live) do if not wf.parked and not wf.finished then ids[#ids + 1] = id end end
    return ids
  end
  function parking.check()
    if called or parking.bulk or next(moving()) then return end
    called = true
    cb()
  end
  parking.bulk = true -- one check after the loop, not one per workflow
  for _, wf in pairs(M.live) do
    if wf.where ~= "step" and not wf.parked then park_blocked(wf) end
  end
  parking.bulk = nil
  parking.check()
  return moving
end

-- The documents of every live workflow (parked or still moving: a step in flight
-- restarts from its last journaled boundary).
function M.snapshot()
  local docs = {}
  for _, wf in pairs(M.live) do
    wf.gen = wf.gen + 1 -- anything still moving in this state is dropped from now on
    if wf.waiting then done(wf.waiting) wf.waiting = nil end
    docs[#docs + 1] = wf.doc
  end
  table.sort(docs, function(a, b) return (a.StartedAt or 0) < (b.StartedAt or 0) end)
  return docs
end

-- Reload aborted (or a fresh state): forget the parked handles, take work again.
function M.reset()
  parking = nil
  M.live = {}
  reset_admission()
end

return M
