-- The rotation workflow, with the original state machine's states:
--   Restore Backup -> SSM Parameter Provided? -> Wait for Restore -> Check Restore Status
--   -> Restore Complete? -> Update SSM Parameter -> Complete | Error
-- A workflow is a document (doc.lua: JSON-able, journaled) plus a driver task
-- (driver.lua); each state has its file (restore.lua, wait.lua, ssm.lua, and after/ for
-- the steps after ACTIVE). This file is the public API:
--   M.start(rec, rule, ctx) -> wf      new workflow, journaled ("Accepted"), driven in a task
--   M.rearm(doc, rule, ctx[, quiet[, bulk]]) -> wf  carry on from a document (journal or
--                                      reload snapshot; a long wait is re-armed dormant)
--   M.await(wf) -> doc                 wait (inside a task) until it is Complete or Error
--   M.run(rec, rule, ctx) -> doc       start + await (replay, tests)
--   M.find(ctx, id) -> wf | nil        the workflow of that id driven for this ctx (a
--                                      dormant one's proxy handle: driver.lua)
--   M.quiesce(ctx, cb) / M.snapshot(ctx) / M.reset(ctx)   park every workflow (reload)
--   M.snapshot_dormant(ctx) / M.adopt_dormant(ctx, h)   the dormant entries' handover
--   M.each_running(ctx, fn(id, phase, rule_label))   live and dormant workflows (status, metrics)
-- ctx: { svc (services.lua), store (store.lua, optional: nil journals nothing), dry_run,
--        workflows (registry.lua: made on first use) }. The registry of live workflows,
-- admission slots and SSM locks belongs to the ctx, so a dry run (its own ctx) never
-- attaches to a real workflow; a dry run's document is marked and never re-armed as real.
--
-- Durability: every transition is journaled (ctx.store:record, fsync'd) before anything
-- depends on it: the restore's output before the first DescribeTable, Complete before the
-- intake deletes the SQS message.
--
-- Parking: each workflow handle carries a generation. Parking cancels its wait
-- (task.cancel: timer, queue place or lock) and bumps the generation; an AWS completion
-- that carries an older generation is dropped, never resumed. A workflow inside a step
-- (an AWS call in flight) parks at the end of the step.
--
-- Dormant workflows (driver.lua, dormant.lua): a workflow that sleeps long in Wait for
-- Restore with its document durable is held as a compact entry, not a task. A reload
-- hands over only those entries (ids, wake times, wait starts, rule labels: arrays the
-- host copies cheaply), never their documents, and re-arms only the active workflows;
-- so a reload costs O(active + entries), and the per-entry part is a few table stores.
-- Re-arming from the journal (restart) makes dormant entries too, not tasks.
local log = require "log"
local task = require "engine.task"
local clock = require "clock"
local rules = require "policy.rules"
local config = require "workflow.config"
local D = require "workflow.doc"
local registry = require "workflow.registry"
local driver = require "workflow.driver"
local S = require "workflow.step"
local post_restore = require "after.post_restore"
local validation = require "after.validation"
local retention = require "after.retention"
local alerts = require "after.alerts"

local M = {}

-- The steps after ACTIVE validate the rule fields they own.
for _, m in ipairs({ post_restore, validation, retention, alerts }) do rules.add_field_validator(m.validate_rule) end

M.defaults = config.defaults
M.config = config.values
M.configure = config.configure

function M.find(ctx, id)
  return driver.lookup(ctx, id)
end

-- fn(id, phase, rule label) for every unfinished workflow of ctx, dormant ones included.
function M.each_running(ctx, fn)
  local reg = registry.of(ctx)
  for id, wf in pairs(reg.live) do
    if not wf.finished then fn(id, wf.doc.Phase or "Accepted", wf.doc.Rule or "") end
  end
  if reg.dormant then
    reg.dormant:each(function(id, _, _, rule)
      fn(id, "Wait for Restore", type(rule) == "table" and rules.label(rule) or rule or "")
    end)
  end
end

-- How many workflows of ctx are dormant.
function M.dormant_count(ctx)
  local reg = registry.of(ctx)
  return reg.dormant and reg.dormant.count or 0
end

function M.admission(ctx)
  return registry.of(ctx).admission:counts()
end

function M.start(rec, rule, ctx)
  local wf = driver.handle(D.new(rec, rules.label(rule), rule, ctx.dry_run), rule)
  if ctx.store then
    -- Listed while the record may wait for the journal: a duplicate notification for the
    -- job attaches to this workflow instead of starting a second one.
    local live = registry.of(ctx).live
    live[wf.id] = wf
    local doc = wf.doc
    local ok, err = S.journal(ctx.store, doc, "Accepted")
    if not ok then
      if live[wf.id] == wf then live[wf.id] = nil end
      doc.Status, doc.Phase, doc.Error = "Error", "Error", "journal: " .. tostring(err)
      wf.finished = true
      for _, f in ipairs(wf.waiters) do f:set(doc) end
      return wf
    end
  end
  if log.enabled("info") then
    log.info("workflow.accepted", D.fields(wf.doc, { backup = rec.recovery_point_arn, rule = wf.doc.Rule }))
  end
  return driver.spawn(ctx, wf)
end

-- Carry a workflow on from its document: the same step, the remaining wait.
-- quiet: a reload handover (summarised by the daemon) logs each at debug level only.
-- A document never changes mode: a dry run's is not re-armed by a real ctx, nor the reverse.
-- A waiting document that is durable (from the journal, or marked so by wait.lua) and
-- sleeps long is held dormant; bulk (many at once: a restart or a reload) then returns
-- nothing instead of its proxy handle.
function M.rearm(doc, rule, ctx, quiet, bulk)
  local wf = driver.handle(doc, rule)
  if D.is_dry_run(doc) ~= (ctx.dry_run == true) then
    log.error("workflow.not_rearmed", D.fields(doc, { phase = doc.Phase, dry_run_doc = D.is_dry_run(doc),
      reason = "a document is re-armed only in the mode it was planned in (dry run or real)" }))
    wf.finished, wf.refused = true, true
    return wf
  end
  doc.Status, doc.Error = nil, nil
  if driver.can_sleep_dormant(ctx, doc, (doc.NextPollAt or 0) - clock.now()) then
    driver.make_dormant(ctx, doc, rule)
    log.debug("workflow.rearmed", D.fields(doc, { phase = doc.Phase, rule = rules.label(rule), dormant = true,
      wait = math.max(0, doc.NextPollAt - clock.now()) }))
    if bulk then return nil end
    return driver.lookup(ctx, doc.WorkflowId)
  end
  local reg = registry.of(ctx)
  if doc.Phase == "Wait for Restore" and not ctx.dry_run then reg.admission:acquire(wf, true) end
  log[quiet and "debug" or "info"]("workflow.rearmed", D.fields(doc, { phase = doc.Phase, rule = rules.label(rule),
    wait = doc.Phase == "Wait for Restore" and math.max(0, (doc.NextPollAt or 0) - clock.now()) or nil }))
  return driver.spawn(ctx, wf)
end

-- Without a task: waiter:set(doc) is called when the workflow ends. If it has ended
-- already, returns true, doc instead (waiter is not called).
function M.on_done(wf, waiter)
  while wf.successor do wf = wf.successor() end -- it went dormant, or woke (driver.lua)
  if wf.finished then return true, wf.doc end
  wf.waiters[#wf.waiters + 1] = waiter
  return false
end

function M.await(wf)
  local f = task.future()
  local ended, doc = M.on_done(wf, f)
  if ended then return doc end
  return f:wait()
end

-- Run one record under one rule. Never raises; returns the document.
function M.run(rec, rule, ctx)
  return M.await(M.start(rec, rule, ctx))
end

-- The rule a document was started with (by label), else the first that matches its
-- source table, else a rule rebuilt from the document (no hooks: the restore started).
M.rule_for = driver.rule_for

---------------------------------------------------------------- quiesce (hot reload)
-- Park every live workflow of ctx at a step boundary; cb() once all are parked or
-- finished. Returns a function that reports what is still moving ({ids}).
function M.quiesce(ctx, cb)
  local reg = registry.of(ctx)
  local called, parking = false, {}
  reg.parking = parking
  local function moving()
    local ids = {}
    for id, wf in pairs(reg.live) do if not wf.parked and not wf.finished then ids[#ids + 1] = id end end
    return ids
  end
  function parking.check()
    if called or parking.bulk or next(moving()) then return end
    called = true
    cb()
  end
  if reg.dormant then reg.dormant:pause() end -- no wake while parking: they are handed over
  parking.bulk = true -- one check after the loop, not one per workflow
  for _, wf in pairs(reg.live) do
    if wf.where ~= "step" and not wf.parked then driver.park_blocked(reg, wf) end
  end
  parking.bulk = nil
  parking.check()
  return moving
end

-- The documents of every live workflow of ctx (parked or still moving: a step in flight
-- restarts from its last journaled boundary). A wait in progress stays one open step:
-- the re-armed workflow carries it on (wait.lua), so reloads add no history.
function M.snapshot(ctx)
  local docs = {}
  for _, wf in pairs(registry.of(ctx).live) do
    wf.gen = wf.gen + 1 -- anything still moving in this state is dropped from now on
    docs[#docs + 1] = wf.doc
  end
  table.sort(docs, function(a, b) return (a.StartedAt or 0) < (b.StartedAt or 0) end)
  return docs
end

-- The dormant entries of ctx as arrays for the handover (rule tables become labels).
function M.snapshot_dormant(ctx)
  local reg = registry.of(ctx)
  if not reg.dormant then return { ids = {} } end
  return reg.dormant:export(rules.label)
end

-- The new state takes the entries over; each holds its admission slot. Returns how many.
function M.adopt_dormant(ctx, h)
  if not (h and h.ids and #h.ids > 0) then return 0 end
  local set = driver.dormant_of(ctx)
  local n = set:import(h)
  registry.of(ctx).admission:hold(n)
  return n
end

-- Reload aborted: forget the parked handles of ctx, take work again.
function M.reset(ctx)
  local reg = ctx.workflows
  if reg and reg.dormant then reg.dormant:close() end
  ctx.workflows = registry.new()
end

return M
