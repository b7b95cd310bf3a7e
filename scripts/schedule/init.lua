-- Scheduled restore tests. A rule with `schedule` restores, at each firing, a recovery
-- point of every source table it matches and deletes the copy after `keep_for`:
--   schedule    = "cron(0 3 ? * SUN *)" | "rate(1 hour)"   (schedule/cron.lua)
--   schedule_tz = "Europe/Paris"         zone of a cron schedule (default UTC)
--   pick        = "latest" | "random within 7d"             (schedule/pick.lua)
--   keep_for    = "4h"                   how long the copy lives after its workflow ends
--                                        (default 0: deleted once validated)
--   update_ssm  = false                  true: the copy also becomes the SSM parameter's
--                                        target (then it is not deleted: retention retires it)
-- Each firing runs the ordinary workflow (restore, wait, post-restore, validation,
-- PutRestoreValidationResult for restore jobs, alerts) under a workflow id made from the
-- rule, the table and the firing time (M.workflow_id): a firing run twice finds its
-- workflow in the journal and does not restore again. The copy's name is the rule's name
-- for the source at the firing time. Its deletion is tag-guarded as retention's is
-- (after/retention.lua examine: rotator:* tags, RestoreSummary, name) and requires the
-- rotator:backup-job tag to be this firing's workflow id.
--
-- The journal holds one document per scheduled rule ("schedule:<rule>", recorded as
-- finished so it is never resumed as a workflow): LastFiring and the copies waiting for
-- deletion. At start, a rule whose last firing is older than its latest due slot fires
-- once for that slot (not once per slot missed); a rule never fired before starts with
-- its next slot.
--   M.validate_rule(rule)      the rule-field validator (rotator check, loader)
--   M.start(ctx, rules)        arm every scheduled rule (after the journal resumed)
--   M.stop()                   cancel the timers of this state
--   M.fire_now(rule)           run the rule's test now (on demand; REPL restore_test)
--   M.status()                 { [rule] = { schedule, zone, next, last, copies } }
local log = require "log"
local json = require "json"
local clock = require "clock"
local timer = require "timer"
local task = require "engine.task"
local rules = require "policy.rules"
local D = require "workflow.doc"
local N = require "workflow.notification"
local retention = require "after.retention"
local workflow = require "workflow"
local cron = require "schedule.cron"
local pick = require "schedule.pick"

local M = { running = {}, gen = 0 }

local OTHERS = { "schedule_tz", "pick", "keep_for", "update_ssm" }

function M.validate_rule(rule)
  if rule.schedule == nil then
    for _, f in ipairs(OTHERS) do
      if rule[f] ~= nil then return ("%s: only means something with schedule (e.g. schedule = \"rate(1 day)\")"):format(f) end
    end
    return
  end
  local _, err = cron.parse(rule.schedule, rule.schedule_tz)
  if err then return err end
  _, err = pick.parse(rule.pick)
  if err then return err end
  if rule.keep_for ~= nil then
    local secs, why = D.duration(rule.keep_for)
    if not secs and rule.keep_for ~= 0 then return "keep_for: " .. why end
    if rule.update_ssm then
      return "keep_for: a copy the SSM parameter points to (update_ssm = true) is not deleted; retention retires it"
    end
  end
  if rule.update_ssm and not rule.ssm_parameter then
    return "update_ssm: the rule has no ssm_parameter to update"
  end
end
rules.add_field_validator(M.validate_rule)

-- "schedule:<rule>:<table>:<firing time>": deterministic, so a restart or a second
-- attempt at the same firing maps to the same workflow.
function M.workflow_id(label, table_name, slot)
  return ("schedule:%s:%s:%s"):format(label, table_name, clock.format(slot, "20060102T150405Z"))
end

local function sleep(seconds)
  task.wait(function(wake)
    local t = timer.after(math.max(0, seconds), wake)
    return function() t:cancel() end
  end)
end

local function iso(e) return e and clock.rfc3339(e) or nil end

---------------------------------------------------------------- the journaled state
local function state_id(label) return "schedule:" .. label end

local function save(ctx, st, step)
  if not ctx.store then return true end
  local ok, err = ctx.store:record(st.doc, step)
  if not ok then log.error("schedule.journal_failed", { rule = st.label, step = step, error = tostring(err) }) end
  return ok, err
end

local function load(ctx, label)
  local row = ctx.store and ctx.store:get(state_id(label))
  local doc = row and row.doc
  if type(doc) ~= "table" or doc.journal_error then
    doc = { id = state_id(label), finished = true, Status = "Schedule", Rule = label }
  end
  doc.Copies = doc.Copies or {}
  return doc
end

---------------------------------------------------------------- one firing
-- The source tables the rule matches (ListTables, every page), less Rotator's own copies.
local function matching_tables(svc, rule)
  local out, start = {}, nil
  repeat
    local res, err = svc:call("dynamodb", "ListTables", { ExclusiveStartTableName = start, Limit = 100 })
    if not res then return nil, "ListTables failed: " .. tostring(err) end
    for _, name in ipairs(res.TableNames or {}) do
      if not rules.start_from_name(name) and rules.match({ rule }, name) then out[#out + 1] = name end
    end
    start = res.LastEvaluatedTableName
  until not start
  return out
end

-- The rule a scheduled workflow runs: no SSM switch (nor retention) unless update_ssm.
local function test_rule(rule)
  local r = {}
  for k, v in pairs(rule) do r[k] = v end
  if not rule.update_ssm then r.ssm_parameter, r.retention = nil, nil end
  r.wait_for_active = true
  return r
end

local function add_copy(st, id, target, source)
  for _, c in ipairs(st.doc.Copies) do if c.workflow == id then return nil end end
  local c = { workflow = id, table = target, source = source }
  st.doc.Copies[#st.doc.Copies + 1] = c
  return c
end

local watch

local function start_one(ctx, st, name, slot)
  local id = M.workflow_id(st.label, name, slot)
  local f = { rule = st.label, source = name, slot = iso(slot), workflow = id }
  local known = workflow.find(ctx, id) or (ctx.store and ctx.store:get(id))
  if known then
    log.info("schedule.already_started", f)
    local doc = known.doc
    return doc and doc.TargetTableName and add_copy(st, id, doc.TargetTableName, name)
  end
  local d, derr = ctx.svc:call("dynamodb", "DescribeTable", { TableName = name })
  if not d then
    f.error = tostring(derr)
    log.error("schedule.source_unreadable", f)
    return nil
  end
  local arn = d.Table and d.Table.TableArn
  local p, why = pick.choose(ctx.svc, name, arn, st.pick, clock.now(), id)
  if not p then
    f.error = why
    log.error("schedule.no_recovery_point", f)
    return nil
  end
  local rec = {
    backup_job_id = id, recovery_point_arn = p.arn, resource_arn = arn, table_name = name,
    start_time = clock.rfc3339(slot), start_epoch = slot, state = "COMPLETED",
    restore_via = p.arn:match("^arn:[%w-]+:backup:") and N.RESTORE_BACKUP or N.RESTORE_DYNAMODB,
    message = ("scheduled restore test of %s (rule %s, firing %s, pick %s)"):format(name, st.label, iso(slot),
      st.rule.pick or "latest"),
    scheduled = { rule = st.label, slot = slot, recovery_point_created = p.created },
  }
  f.recovery_point, f.recovery_point_created = p.arn, iso(p.created)
  log.info("schedule.restoring", f)
  local wf = workflow.start(rec, test_rule(st.rule), ctx)
  if wf.finished then return nil end -- not journaled: logged by the workflow
  if st.rule.update_ssm then return nil end
  return add_copy(st, id, wf.doc.TargetTableName, name)
end

-- how: nil (on time), "missed" (owed since the daemon was down) or "on demand".
local function fire(ctx, st, slot, how)
  local gen = M.gen
  log.info("schedule.fired", { rule = st.label, slot = iso(slot), schedule = st.rule.schedule,
    missed = how == "missed" or nil, on_demand = how == "on demand" or nil })
  local names, err = matching_tables(ctx.svc, st.rule)
  local copies = {}
  if not names then
    log.error("schedule.list_failed", { rule = st.label, slot = iso(slot), error = err,
      result = "this firing restores nothing; the next one tries again" })
  else
    if #names == 0 then log.warn("schedule.no_source", { rule = st.label, slot = iso(slot),
      pattern = st.rule.source_pattern }) end
    for _, name in ipairs(names) do
      -- Stopped meanwhile (a reload quiesces, or the daemon stops): the adopting state
      -- meets this firing again (LastFiring not moved) and starts the rest.
      if M.gen ~= gen then return end
      local c = start_one(ctx, st, name, slot)
      if c then copies[#copies + 1] = c end
    end
  end
  if M.gen ~= gen then return end
  if how ~= "on demand" then -- an on-demand run is no slot of the schedule
    st.doc.LastFiring, st.doc.LastFiringAt = slot, iso(slot)
  end
  save(ctx, st, "Schedule Fired")
  for _, c in ipairs(copies) do watch(ctx, st, c) end
end

---------------------------------------------------------------- deleting the copy
local function drop_copy(st, c)
  for i, x in ipairs(st.doc.Copies) do if x == c then table.remove(st.doc.Copies, i) return end end
end

local function delete_copy(ctx, st, c)
  local f = { rule = st.label, workflow = c.workflow, table = c.table, source = c.source }
  local e, err = retention.examine(ctx.svc, c.table, { source = c.source, label = st.label, rule = st.rule })
  if e == false then
    log.info("schedule.copy_gone", f)
    return true
  end
  if not e then
    f.error, f.request_id = tostring(err), D.rid(err)
    log.warn("schedule.copy_unreadable", f)
    return false
  end
  local job = e.evidence and e.evidence.tags[retention.TAG_JOB]
  local why = (not e.proven and ("not provably this rule's copy: " .. tostring(e.why)))
    or (job ~= c.workflow and ("tag %s is '%s', not this firing's %s"):format(retention.TAG_JOB, tostring(job), c.workflow))
    or e.protect
  if why then
    f.reason = why
    log.warn("schedule.copy_kept", f)
    return true
  end
  c.Deleting = clock.rfc3339(clock.now())
  c.Evidence = e.evidence
  if not save(ctx, st, "Schedule Delete") then return false end
  local res, rid = ctx.svc:call("dynamodb", "DeleteTable", { TableName = c.table },
    { reason = "scheduled restore test copy past keep_for" })
  if not res then
    f.error, f.request_id = tostring(rid), D.rid(rid)
    log.error("schedule.delete_failed", f)
    return D.code(rid) == "ResourceNotFoundException"
  end
  f.request_id = rid
  log.info("schedule.copy_deleted", f)
  return true
end

local function ended(ctx, id)
  local wf = workflow.find(ctx, id)
  if wf then return workflow.await(wf) end
  local row = ctx.store and ctx.store:get(id)
  return row and row.doc
end

function watch(ctx, st, c)
  local gen = M.gen
  task.spawn(function()
    task.set_context({ workflow = c.workflow })
    if not c.DeleteAt then
      local doc = ended(ctx, c.workflow) or {}
      if M.gen ~= gen then return end
      c.Result = doc.Status or "unknown"
      c.DeleteAt = clock.now() + st.keep_for
      save(ctx, st, "Schedule Copy Ready")
      log.info("schedule.copy_ready", { rule = st.label, table = c.table, status = c.Result, error = doc.Error,
        delete_at = iso(math.floor(c.DeleteAt)) })
    end
    while M.gen == gen do
      local wait = c.DeleteAt - clock.now()
      if wait <= 0 then break end
      sleep(math.min(wait, 300))
    end
    if M.gen ~= gen then return end
    while M.gen == gen and not delete_copy(ctx, st, c) do sleep(60) end
    if M.gen ~= gen then return end
    drop_copy(st, c)
    save(ctx, st, "Schedule Copy Done")
  end)
end

---------------------------------------------------------------- the loop
local function loop(ctx, st)
  local gen = M.gen
  task.spawn(function()
    local last = st.doc.LastFiring
    local now = clock.now()
    if last then
      local owed = cron.latest(st.sched, last, now)
      if owed then fire(ctx, st, owed, "missed") end
    else
      -- Never fired: the schedule starts now (no firing for slots before it existed).
      st.doc.LastFiring, st.doc.LastFiringAt = math.floor(now), nil
      save(ctx, st, "Schedule Armed")
    end
    while M.gen == gen do
      st.next = cron.next(st.sched, math.max(st.doc.LastFiring or 0, math.floor(clock.now()) - 1))
      if not st.next then
        log.warn("schedule.ended", { rule = st.label, schedule = st.rule.schedule, reason = "no firing before 2200" })
        return
      end
      while M.gen == gen and clock.now() < st.next do sleep(math.min(st.next - clock.now(), 60)) end
      if M.gen ~= gen then return end
      fire(ctx, st, st.next, false)
    end
  end)
end

function M.start(ctx, list)
  M.stop()
  M.ctx = ctx
  local n = 0
  for _, rule in ipairs(list or {}) do
    if rule.schedule then
      local sched, err = cron.parse(rule.schedule, rule.schedule_tz)
      if not sched then
        log.error("schedule.invalid", { rule = rules.label(rule), error = err })
      else
        local label = rules.label(rule)
        local st = { label = label, rule = rule, sched = sched, pick = assert(pick.parse(rule.pick)),
          keep_for = rule.keep_for and D.duration(rule.keep_for) or 0, doc = load(ctx, label) }
        M.running[label] = st
        n = n + 1
        for _, c in ipairs(st.doc.Copies) do watch(ctx, st, c) end
        loop(ctx, st)
      end
    end
  end
  if n > 0 then log.info("schedule.armed", { rules = n }) end
  return n
end

-- Run a scheduled rule's test now (REPL `restore_test(rule)`), as a firing at this
-- second (a second call within the same second is the same firing). It does not move
-- the schedule's last firing.
function M.fire_now(label)
  local st = M.running[label]
  if not st then
    local names = {}
    for l in pairs(M.running) do names[#names + 1] = l end
    table.sort(names)
    return nil, ("no scheduled rule %q (scheduled: %s)"):format(tostring(label), #names > 0 and table.concat(names, ", ") or "none")
  end
  local slot = math.floor(clock.now())
  task.spawn(fire, M.ctx, st, slot, "on demand")
  return { rule = label, slot = iso(slot), workflow_prefix = ("schedule:%s:"):format(label) }
end

function M.stop()
  M.gen = M.gen + 1 -- every loop and watcher of the previous start ends at its next wake-up
  M.running = {}
end

function M.status()
  local out = {}
  for label, st in pairs(M.running) do
    out[label] = { schedule = st.rule.schedule, zone = st.sched.zone, next = iso(st.next),
      last = st.doc.LastFiringAt, copies = #st.doc.Copies, pick = st.rule.pick or "latest",
      keep_for = st.keep_for }
  end
  return setmetatable(out, json.object_mt)
end

return M
