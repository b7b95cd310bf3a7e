-- The driver: one task per workflow runs the state machine one step at a time,
--   Restore Backup (restore.lua) -> Wait for Restore (wait.lua) -> Restore Complete (the
--   rule's after_active hook, then after/post_restore) -> Update SSM Parameter (ssm.lua,
--   then after/retention) -> Complete | Error
-- Every step boundary is a place where the workflow can be journaled, parked (hot reload)
-- and later re-armed from the document alone. A step fails by raising doc.fail; the
-- driver records Error, journals it and publishes the one alert (after/alerts).
--   M.spawn(ctx, wf)   drive wf in a new task;  M.handle(doc, rule) -> wf
--   M.park_blocked(reg, wf)  park a workflow that waits (timer, slot, lock) right away
--
-- Dormancy (workflow/dormant.lua holds the entries): when the next step is a sleep of at
-- least config.dormant_after seconds in Wait for Restore, and the document is durable
-- (doc._durable_poll == doc.NextPollAt: wait.lua sets it once the poll is journaled, the
-- journal loader once the document came from the journal), the task ends without
-- finishing the workflow: its coroutine, timer and document are dropped and only an entry
-- (id, wake time, start of the wait, rule) stays, holding its admission slot. At its wake
-- time M.wake loads the document from the journal (one read) and resumes it as a restart
-- does, its wait step re-opened where it began, the slot carried over. Anything that
-- looks a workflow up (M.lookup) sees a dormant one as a proxy handle: waiting on it
-- (workflow.await), or naming the message that holds it, carries over to the woken task.
-- A dry run (no journal) keeps every workflow in memory.
--   M.dormant_of(ctx) -> set     M.can_sleep_dormant(ctx, doc, delay) -> bool
--   M.make_dormant(ctx, doc, rule[, since])   M.lookup(ctx, id) -> wf | proxy | nil
local log = require "log"
local host = require "host"
local timer = require "timer"
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
local config = require "workflow.config"
local dormant = require "workflow.dormant"

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

local DORMANT = {}

function M.can_sleep_dormant(ctx, doc, delay)
  return ctx.store ~= nil and not ctx.dry_run and doc.Phase == "Wait for Restore" and not doc.JournalPending
    and doc._durable_poll ~= nil and doc._durable_poll == doc.NextPollAt
    and delay >= config.values.dormant_after
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
      if wf.slot and M.can_sleep_dormant(ctx, doc, delay) then return DORMANT end
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
  -- this task's lines and AWS calls carry it (and the message that held it while dormant)
  wf.log = task.set_context({ workflow = wf.id, message_id = wf.log and wf.log.message_id or nil })
  local ok, e = xpcall(machine, function(x)
    if D.is_failure(x) then return x end
    return { msg = debug.traceback(tostring(x), 2) }
  end, rule_ctx(ctx, wf.rule), reg, wf)
  if wf.gen ~= wf.born then return end -- superseded (reload abort re-armed it)
  if ok and e == DORMANT then return M.go_dormant(ctx, reg, wf) end
  finish(ctx, reg, wf, ok, e)
  if reg.live[wf.id] == wf then reg.live[wf.id] = nil end
  wf.finished = true
  for _, f in ipairs(wf.waiters) do f:set(wf.doc) end
  wf.waiters = {}
  if reg.parking then reg.parking.check() end
end

---------------------------------------------------------------- dormancy
-- The wall-clock start of the wait the document's open wait step stands for (or now).
local function wait_since(doc)
  local s = D.open_step(doc, "Wait for Restore")
  if s then return clock.now() - (clock.mono() - s._t0) end
  return clock.now()
end

local function proxy(reg, id)
  local p = reg.proxies[id]
  if not p then
    p = { id = id, dormant = true, waiters = {}, log = {}, gen = 0, born = 0, where = "dormant" }
    reg.proxies[id] = p
  end
  return p
end

function M.dormant_of(ctx)
  local reg = registry.of(ctx)
  if not reg.dormant then
    reg.dormant = dormant.new(function(id, at, since, rule)
      local ok, err = xpcall(M.wake, debug.traceback, ctx, id, at, since, rule)
      if not ok then log.error("workflow.wake_crashed", { workflow = id, error = tostring(err) }) end
    end)
    if reg.parking then reg.dormant:pause() end
  end
  return reg.dormant
end

-- A workflow or the proxy of a dormant one (its doc read from the journal when asked).
local PROXY_DOC = { __index = function(p, k)
  if k ~= "doc" then return nil end
  local store = p.store
  local row = store and store:get(p.id)
  return row and row.doc or { WorkflowId = p.id, Phase = "Wait for Restore" }
end }

function M.lookup(ctx, id)
  local reg = registry.of(ctx)
  local wf = reg.live[id]
  if wf then return wf end
  if reg.dormant and reg.dormant:has(id) then
    local p = proxy(reg, id)
    p.store = ctx.store
    return setmetatable(p, PROXY_DOC)
  end
end

-- Hold doc dormant (its slot is owed: counted in admission here).
function M.make_dormant(ctx, doc, rule, since)
  registry.of(ctx).admission:hold()
  M.dormant_of(ctx):put(doc.WorkflowId, doc.NextPollAt, since or wait_since(doc), rule)
end

-- A burst of workflows gone dormant (a flood of notifications all waiting) leaves the
-- garbage of their documents and coroutines behind: once no workflow has gone dormant for
-- RELEASE_QUIET seconds after at least RELEASE_AFTER did, one full collection and
-- malloc_trim hand that peak back (host.release_memory), instead of keeping it for hours.
M.RELEASE_AFTER, M.RELEASE_QUIET = 512, 0.2
local gone_dormant, release_timer = 0, nil
local function release_check(seen)
  if gone_dormant ~= seen then -- still going dormant: wait for the burst to end
    local now = gone_dormant
    release_timer = timer.after(M.RELEASE_QUIET, function() release_check(now) end)
    return
  end
  release_timer, gone_dormant = nil, 0
  local bytes = host.release_memory()
  log.debug("workflow.memory_released", { lua_heap = bytes, dormant = seen })
end

local function note_dormant()
  gone_dormant = gone_dormant + 1
  if gone_dormant >= M.RELEASE_AFTER and not release_timer then
    local now = gone_dormant
    release_timer = timer.after(M.RELEASE_QUIET, function() release_check(now) end)
  end
end

function M.go_dormant(ctx, reg, wf)
  local doc, id = wf.doc, wf.id
  if reg.live[id] == wf then reg.live[id] = nil end
  wf.gen = wf.gen + 1 -- the dropped handle is stale from now on
  -- Who still holds the handle and awaits it later follows the workflow: its proxy while
  -- dormant, its next task once woken, or its final document from the journal.
  wf.successor = function()
    local nxt = M.lookup(ctx, id)
    if nxt then return nxt end
    local row = ctx.store:get(id)
    return { finished = true, doc = row and row.doc or { WorkflowId = id, Status = "Error", Phase = "Error",
      Error = "journal: no record of this workflow" } }
  end
  M.dormant_of(ctx):put(wf.id, doc.NextPollAt, wait_since(doc), wf.rule)
  -- The stale handle may stay referenced (an intake task awaiting it): it keeps neither
  -- the document nor its finished coroutine; its doc is read from the journal if asked.
  wf.doc, wf.co, wf.store = nil, nil, ctx.store
  setmetatable(wf, PROXY_DOC)
  if #wf.waiters > 0 or (wf.log and wf.log.message_id) then
    local p = proxy(reg, wf.id)
    for _, f in ipairs(wf.waiters) do p.waiters[#p.waiters + 1] = f end
    p.log.message_id = p.log.message_id or (wf.log and wf.log.message_id)
  end
  note_dormant()
  log.debug("workflow.dormant", D.fields(doc, { wake_at = clock.rfc3339(math.floor(doc.NextPollAt)) }))
  if reg.parking then reg.parking.check() end
end

local function wake_failed(reg, id, p, why)
  reg.admission:release({ slot = true })
  log.error("workflow.wake_failed", { workflow = id, error = why,
    next = "see `rotator journal show " .. id .. "`; a redelivered notification resumes it" })
  if p then
    local doc = { WorkflowId = id, Status = "Error", Phase = "Error", Error = why }
    p.finished, p.doc = true, doc
    for _, f in ipairs(p.waiters) do f:set(doc) end
  end
end

-- A dormant entry is due: its document from the journal, resumed in a new task.
function M.wake(ctx, id, _, since, rule)
  local reg = registry.of(ctx)
  local p = reg.proxies[id]
  reg.proxies[id] = nil
  local ok, row = pcall(ctx.store.get, ctx.store, id)
  if not ok or not row then
    -- Unreadable just now (or gone from under us): stay dormant, slot and waiters kept, and
    -- try again later rather than drop a workflow the journal may still hold.
    local retry = config.values.max_poll
    log.error("workflow.wake_retry", { workflow = id, error = ok and "no journal row for this workflow" or tostring(row),
      retry_in = retry, next = "check the state directory's journal (`rotator journal check`)" })
    if p then reg.proxies[id] = p end
    M.dormant_of(ctx):put(id, clock.now() + retry, since, rule)
    return
  end
  if row.finished or row.doc.journal_error or row.doc.Phase ~= "Wait for Restore" then
    return wake_failed(reg, id, p, row.doc.journal_error or ("journal: the workflow is "
      .. tostring(row.finished and "finished" or row.doc.Phase)))
  end
  local doc = row.doc
  doc._durable_poll = doc.NextPollAt
  local s = D.step(doc, "Wait for Restore") -- the wait it slept in, still open
  s.Started, s._t0 = clock.rfc3339(math.floor(since)), clock.mono() - math.max(0, clock.now() - since)
  if type(rule) ~= "table" then rule = M.rule_for(doc, ctx.rules and ctx.rules() or {}) end
  local wf = M.handle(doc, rule)
  wf.slot = true -- carried over from the dormant entry
  if p then
    wf.waiters, wf.log = p.waiters, p.log
    p.successor = function() return wf end -- a proxy awaited from now on follows the task
  end
  return M.spawn(ctx, wf)
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

function M.spawn(ctx, wf)
  registry.of(ctx).live[wf.id] = wf
  task.spawn(drive, ctx, wf)
  return wf
end

function M.handle(doc, rule)
  return { id = doc.WorkflowId, doc = doc, rule = rule, gen = 0, born = 0, where = "step", waiters = {} }
end

return M
