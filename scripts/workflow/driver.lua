-- The driver: one task per workflow runs the state machine one step at a time,
--   Restore Backup (restore.lua) -> Wait for Restore (wait.lua) -> Restore Complete (the
--   rule's after_active hook, then after/post_restore) -> Update SSM Parameter (ssm.lua,
--   then after/retention) -> Complete | Error
-- Every step boundary is a place where the workflow can be journaled, parked (hot reload)
-- and later re-armed from the document alone. A step fails by raising doc.fail; the
-- driver records Error, journals it and publishes the one alert (after/alerts).
--   M.spawn(ctx, wf)   drive wf in a new task;  M.handle(doc, rule) -> wf
--   M.park_blocked(reg, wf)  park a workflow that waits (timer, slot, lock) right away
local log = require "log"
local task = require "engine.task"
local clock = require "clock"
local rules = require "policy.rules"
local sandbox = require "policy.sandbox"
local D = require "workflow.doc"
local S = require "workflow.step"
local registry = require "workflow.registry"
local restore = require "workflow.restore"
local wait = require "workflow.wait"
local ssm = require "workflow.ssm"
local post_restore = require "after.post_restore"
local retention = require "after.retention"
local alerts = require "after.alerts"
local metrics = require "engine.metrics"

local M = {}

local FINAL = { Complete = true, Error = true }
local SLOT_PHASES = { ["Restore Backup"] = true, ["Wait for Restore"] = true }

local function note_parked(reg, wf)
  wf.parked = true
  if reg.parking then reg.parking.check() end
end

function M.park_blocked(reg, wf)
  task.cancel(wf.co) -- its cleanup takes it off the timer, queue or lock
  wf.gen = wf.gen + 1
  note_parked(reg, wf)
end

-- Step boundary: park here while a reload quiesces (or once superseded).
local function boundary(reg, wf)
  if wf.gen ~= wf.born or reg.parking then
    wf.gen = wf.gen + 1
    note_parked(reg, wf)
    return task.park()
  end
end

local function after_active_hook(ctx, wf)
  local doc, rule = wf.doc, wf.rule
  if not rule.after_active then return end
  local s = D.step(doc, "After Active Hook")
  local ok, err = sandbox.call(rule.after_active, {
    workflow = doc.WorkflowId, table_name = doc.TargetTableName, table_arn = doc.TableArn,
    source_table = doc.SourceTableName, backup_job_id = doc.BackupJobId, dry_run = ctx.dry_run,
    call = function(service, action, params) return ctx.svc:call(service, action, params) end,
  })
  D.done(s, nil, not ok and err or nil)
  if not ok then D.fail(("after_active hook of rule %s failed: %s"):format(doc.Rule, tostring(err))) end
end

local STEPS = {
  ["Restore Backup"] = function(ctx, wf, reg) return restore.step(ctx, wf, reg.admission) end,
  ["Wait for Restore"] = function(ctx, wf) return wait.step(ctx, wf) end,
  ["Restore Complete"] = function(ctx, wf)
    local doc = wf.doc
    after_active_hook(ctx, wf)
    post_restore.after_active(ctx, doc, wf.rule, doc.Record)
    doc.Phase = doc.SSMParameterName and "Update SSM Parameter" or "Complete"
    S.record(ctx, wf, "After Active")
  end,
  ["Update SSM Parameter"] = function(ctx, wf, reg)
    ssm.update(ctx, wf, reg.locks)
    retention.after_switch(ctx, wf.doc, wf.rule) -- never fails the workflow
    wf.doc.Phase = "Complete"
  end,
}

local function admit(ctx, reg, wf)
  local phase = wf.doc.Phase
  if ctx.dry_run then return end
  if SLOT_PHASES[phase] and not wf.slot then reg.admission:acquire(wf, phase ~= "Restore Backup", S.block) end
end

local function machine(ctx, reg, wf)
  local doc = wf.doc
  S.flush_pending(ctx, wf)
  if doc.Phase == "Error" then D.fail(doc.Error or "failed before a reload") end
  if not doc.TargetTableName then
    local target, err = rules.target_name(wf.rule, doc.Record)
    if not target then D.fail(err) end
    doc.TargetTableName = target
  end
  while not FINAL[doc.Phase] do
    local fn = STEPS[doc.Phase] or D.fail("unknown workflow phase " .. tostring(doc.Phase))
    boundary(reg, wf)
    admit(ctx, reg, wf)
    boundary(reg, wf)
    local delay = fn(ctx, wf, reg)
    if not SLOT_PHASES[doc.Phase] then reg.admission:release(wf) end
    if delay then
      boundary(reg, wf)
      S.sleep(wf, delay)
    end
  end
end

local function failed(ctx, wf, e)
  local doc = wf.doc
  doc.Status, doc.Phase, doc.Error = "Error", "Error", e.msg
  log.error("workflow.failed", D.fields(doc, { error = e.msg, request_id = e.request_id }))
  -- Any failure alerts, once per workflow (alerts.lua deduplicates); an alert that cannot
  -- be published is logged and never changes the outcome.
  if wf.rule then
    local ok, err = pcall(alerts.workflow_failed, ctx, doc, wf.rule, { msg = e.msg, request_id = e.request_id })
    if not ok then log.error("alert.crashed", D.fields(doc, { error = tostring(err) })) end
  end
end

local function finish(ctx, reg, wf, ok, e)
  local doc = wf.doc
  reg.admission:release(wf)
  doc.Seconds = math.floor((clock.now() - doc.StartedAt) * 1000 + 0.5) / 1000
  if ok then
    doc.Status, doc.Phase = "Complete", "Complete"
    if log.enabled("info") then
      log.info("workflow.complete", D.fields(doc, { table_arn = doc.TableArn, parameter = doc.SSMParameterName,
        seconds = doc.Seconds }))
    end
  else
    failed(ctx, wf, e)
  end
  if ctx.store then
    local seq, err = ctx.store:record_wait(doc, doc.Status)
    if not seq then
      -- Not durable: the message must not be deleted; the job runs again (idempotently).
      doc.Status, doc.Error = "Error", "journal: cannot record the outcome: " .. tostring(err)
    end
  end
  if not ctx.dry_run then
    local outcome = doc.Status == "Complete" and "complete" or "error"
    metrics.inc("rotator_workflows_finished_total", { outcome = outcome, rule = tostring(doc.Rule) })
    metrics.observe("rotator_workflow_duration_seconds", { rule = tostring(doc.Rule), outcome = outcome }, doc.Seconds)
  end
end

-- The ctx a rule's steps run with: with assume_role_arn, every AWS call of the workflow
-- signs with that role's credentials; journal, registry and alerts stay the daemon's, and
-- own_svc keeps the daemon's credentials for what lives in its own account (the job that
-- notified it: recovery_point.lua).
local function rule_ctx(ctx, rule)
  if not (rule and rule.assume_role_arn) then return ctx end
  return setmetatable({ svc = ctx.svc:as_role(rule.assume_role_arn, rule.external_id), own_svc = ctx.svc },
    { __index = ctx, __newindex = ctx })
end

local function drive(ctx, wf)
  local reg = registry.of(ctx)
  wf.co = coroutine.running()
  wf.log = task.set_context({ workflow = wf.id }) -- this task's lines and AWS calls carry it
  local ok, e = xpcall(machine, function(x)
    if D.is_failure(x) then return x end
    return { msg = debug.traceback(tostring(x), 2) }
  end, rule_ctx(ctx, wf.rule), reg, wf)
  if wf.gen ~= wf.born then return end -- superseded (reload abort re-armed it)
  finish(ctx, reg, wf, ok, e)
  if reg.live[wf.id] == wf then reg.live[wf.id] = nil end
  wf.finished = true
  for _, f in ipairs(wf.waiters) do f:set(wf.doc) end
  wf.waiters = {}
  if reg.parking then reg.parking.check() end
end

function M.spawn(ctx, wf)
  registry.of(ctx).live[wf.id] = wf
  task.spawn(drive, ctx, wf)
  return wf
end

function M.handle(doc, rule)
  return { id = doc.WorkflowId, doc = doc, rule = rule, gen = 0, born = 0, where = "step", waiters = {} }
end

return M
