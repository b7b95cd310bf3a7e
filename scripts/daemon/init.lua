-- The daemon's state: the active policy set, the journal, the workflows and the intake.
-- With a queue (--queue-url or ROTATOR_QUEUE_URL) the intake long-polls it; without one
-- the daemon idles (but still finishes the workflows the journal holds). A reload swaps
-- the rule list the intake reads for each new record; running workflows keep the rule
-- they started with (found again by label in the new set).
--
-- Start: with a queue, the start-up checks (daemon/preflight.lua) come first: the region,
-- the credentials and the queue (GetQueueAttributes). A permanent problem ends the process
-- (exit 1) with one message naming the setting or resource and the next step; a transient
-- one is retried with backoff, logged (startup.waiting) and shown in status (`startup`).
-- Then unfinished workflows in the journal (state directory) resume from their last
-- recorded step before the intake takes new work, and the service manager hears READY=1.
-- Hot reload (daemon/reload.lua, host/lua/reload.c): quiesce stops receiving, lets our AWS calls
-- finish, parks every workflow at a step boundary and hands their documents, the SQS
-- claims and the ReceiveMessage still in flight over; adopt re-arms them in the new state.
-- Dormant workflows (a long wait, the document durable: workflow/dormant.lua) cross as
-- compact entries only (ids and wake times), not documents, and are not re-armed: they
-- wake from the journal when due. The same holds for the journal's waiting workflows at
-- start, so neither a reload nor a restart does per-workflow work for them in one turn.
-- Bounded by ROTATOR_QUIESCE_TIMEOUT (default 60 s, past the longest AWS call): what still
-- moves then restarts its step from its last journaled boundary in the new state
-- (idempotent, see workflow/restore.lua). A stop that began meanwhile stops the adopting state too.
-- Scheduled restore tests (schedule/init.lua) start once the journal resumed, and again in
-- the state that adopts a reload (their state is in the journal).
local log = require "log"
local host = require "host"
local clock = require "clock"
local timer = require "timer"
local rules = require "policy.rules"
local policies = require "policy.loader"
local services = require "aws.services"
local workflow = require "workflow"
local intake = require "daemon.intake"
local store = require "daemon.store"
local preflight = require "daemon.preflight"
local schedule = require "schedule"
local metrics = require "engine.metrics"
local task = require "engine.task"
local health = require "daemon.health"
local reconcile = require "reconcile"
local pace = require "reconcile.pace"

-- M.reconcile: the periodic reconcile (opts.reconcile_every seconds; off when nil): the
-- last run, how many stale pointers it found, and the running total (a counter).
local M = { policies = nil, rules = {}, started = false, startup = { state = "starting" },
  reconcile = { runs = 0, stale_total = 0 },
  quiesce_timeout = tonumber(os.getenv("ROTATOR_QUIESCE_TIMEOUT") or "") or 60 }

-- What `rotator check` warns of, once per load, in the log.
local function log_warnings(set, list)
  local warnings = set and set.warnings or {}
  if list[1] and list[1]._default then warnings = policies.lint(list[1]) end
  for _, w in ipairs(warnings) do
    local at, msg = w:match("^(.-): warning: (.*)$")
    log.warn("policy.warning", { at = at or "?", warning = msg or w })
  end
end

-- Returns true, or nil and a message when the default rule (env/flags) is invalid.
function M.set_policies(set, flags)
  local list, err = rules.effective(set, flags or (M.opts and M.opts.flags))
  if not list then return nil, err end
  M.policies, M.rules = set, list
  log_warnings(set, list)
  return true
end

-- Signal hooks belong to the running state: a reloaded state registers its own.
-- A reload before the start-up checks passed would hand a queue nobody checked to the new
-- state (and systemd does not reload a unit that is still activating): refused, logged.
local function register_hooks()
  host.on_signal("HUP", function()
    if M.startup.state ~= "ready" then
      log.warn("reload.refused", { reason = "still starting (" .. tostring(M.startup.state)
        .. "); send SIGHUP again once daemon.ready is logged", queue = M.startup.queue })
      return
    end
    host.reload()
  end)
  host.on_signal("TERM", M.stop)
end

-- The journal, unless this is a dry run (planned calls must not count as done). A state
-- that adopts a reload opens the file this process checked at start (no second check).
local function open_store(opts, adopting)
  if opts.dry_run then return nil end
  local s, err = store.open(nil, { checked = adopting })
  if not s then return nil, tostring(err) end
  s:compact_every()
  s:checkpoint_every()
  return s
end

local function context(opts, store)
  return {
    svc = services.new({ dry_run = opts.dry_run }),
    store = store,
    rules = function() return M.rules end,
    dry_run = opts.dry_run or false,
    queue_url = opts.queue_url,
  }
end

-- Re-arm documents (journal or snapshot): restores already started first, so they take
-- their owed admission slots before new ones queue.
local function rearm_all(docs, ctx, quiet)
  table.sort(docs, function(a, b)
    local wa, wb = a.Phase ~= "Restore Backup", b.Phase ~= "Restore Backup"
    if wa ~= wb then return wa end
    return (a.StartedAt or 0) < (b.StartedAt or 0)
  end)
  local before = workflow.dormant_count(ctx)
  for _, doc in ipairs(docs) do workflow.rearm(doc, workflow.rule_for(doc, M.rules), ctx, quiet, true) end
  local dormant = workflow.dormant_count(ctx) - before
  return #docs, #docs - dormant, dormant
end

local function resume_journal(ctx)
  if not ctx.store then return 0 end
  local rows, err = ctx.store:unfinished()
  if not rows then return nil, "journal: " .. tostring(err) end
  local docs = {}
  for _, r in ipairs(rows) do
    if r.doc.journal_error then
      log.error("journal.unreadable", { workflow = r.id, error = r.doc.journal_error })
    else
      r.doc._durable_poll = r.doc.NextPollAt -- it is the journal's: a long wait can be dormant
      docs[#docs + 1] = r.doc
    end
  end
  rows = nil
  local n, active, dormant = rearm_all(docs, ctx)
  docs = nil
  if dormant > 0 then host.release_memory() end -- the documents were read for this moment only
  if n > 0 then
    log.info("journal.resumed", { workflows = n, active = active, dormant = dormant, journal = ctx.store:path() })
  end
  return n
end

local function ready(opts, ctx)
  log.info("daemon.ready", {
    pid = host.pid and host.pid() or nil,
    policies = #M.policies.files,
    rules = #M.rules,
    default_rule = #M.policies.rules == 0 and #M.rules > 0,
    queue = opts.queue_url or "none",
    dry_run = opts.dry_run or false,
    journal = ctx.store and ctx.store:path() or "none (dry run)",
  })
  if #M.rules == 0 then
    log.warn("daemon.no_rules", { reason = "no policy rules and no SOURCE_PATTERN: every notification is skipped" })
  end
end

---------------------------------------------------------------- reconcile
-- One reconcile run (never two at once): stale pointers get their workflow in ctx.
local function reconcile_once(ctx)
  local r = M.reconcile
  if r.running then
    log.info("reconcile.skipped", { reason = "the previous run is still going" })
    return
  end
  r.running = true
  local ok, summary, err = pcall(reconcile.run, ctx, { pace = r.pace,
    stopped = function() return not M.started or host.stopping() or M.reconcile.quiescing == true end })
  r.running = false
  r.runs, r.last_run = r.runs + 1, clock.rfc3339(math.floor(clock.now()))
  metrics.inc("rotator_reconcile_runs_total", { result = (ok and summary) and "ok" or "failed" })
  if not ok or not summary then
    r.last_error = tostring(ok and err or summary)
    log.error("reconcile.failed", { error = r.last_error, next = "the next run tries again in " .. tostring(r.every) .. " s" })
    return
  end
  r.last_error, r.last_stale, r.last_tables = nil, summary.stale, summary.matched
  r.stale_total = r.stale_total + summary.stale
end

-- At start (first = true) and every reconcile_every seconds after.
local function start_reconcile(ctx, opts, first)
  local every = opts.reconcile_every
  if not every then return end
  local r = M.reconcile
  r.every = every
  r.pace = r.pace or pace.new(opts.reconcile_rate or 5, math.max(1, math.ceil(opts.reconcile_rate or 5)))
  if r.timer then r.timer:cancel() end
  r.timer = timer.every(every, function() task.spawn(reconcile_once, ctx) end)
  if first then task.spawn(reconcile_once, ctx) end
end

-- Start serving. `handover` (from a reload) carries workflows and claims instead of the
-- journal. Returns true, or nil and a message (the journal cannot be opened).
function M.start(opts, handover)
  if not handover then
    -- One daemon per state directory: a second one would share the journal and the socket.
    local dir = store.default_state_dir()
    if dir then
      host.mkdir(dir)
      local ok, lerr, pid = host.lock_state_dir(dir)
      if not ok then return nil, lerr, pid and 2 or nil end
    end
  end
  local store, err = open_store(opts, handover ~= nil)
  if err then return nil, err end
  register_hooks()
  M.started, M.opts = true, opts
  local ctx = context(opts, store)
  M.ctx = ctx
  if handover then health.adopt(handover.health) end
  health.configure({ svc = ctx.svc, topics = M.alert_topics(opts), alert_after = opts.alert_after })
  if handover then
    M.startup = { state = "ready", queue = opts.queue_url, since = clock.now() }
    ready(opts, ctx)
    local d = workflow.adopt_dormant(ctx, handover.dormant) -- their slots first: they are owed
    local n, active, dormant = rearm_all(handover.workflows or {}, ctx, true)
    if not opts.dry_run then schedule.start(ctx, M.rules) end
    log.info("reload.adopted", { workflows = n + d, active = active, dormant = dormant + d,
      claims = #(handover.claims or {}),
      receive = handover.receive and tostring(handover.receive) or "none" })
    if opts.queue_url then intake.adopt(ctx, handover.claims, handover.receive) end
    start_reconcile(ctx, opts, false)
    return true
  end
  host.watchdog()
  if not opts.queue_url then return M.serve(ctx, opts) end
  M.startup = { state = "checking", queue = opts.queue_url, since = clock.now(), attempts = 0 }
  task.spawn(function()
    local report = preflight.wait(ctx.svc, opts.queue_url, function(r, attempt, delay)
      M.startup = { state = "waiting for the queue", queue = opts.queue_url, since = M.startup.since,
        attempts = attempt, error = r.message, retry_in = delay }
      log.warn("startup.waiting", { check = r.failed, queue = opts.queue_url, attempt = attempt, retry_in = delay,
        error = r.message })
      host.notify("status", ("waiting for the queue (attempt %d, retry in %ds): %s"):format(attempt, delay, r.message))
    end, function() return not M.started or host.stopping() end)
    if not M.started or host.stopping() then return end
    if not report.ok then
      M.startup = { state = "failed", queue = opts.queue_url, error = report.message }
      log.error("startup.failed", { check = report.failed, queue = opts.queue_url, error = report.message,
        exit = 1 })
      host.exit(1)
      return
    end
    log.info("startup.checked", { queue = opts.queue_url, attempts = M.startup.attempts + 1,
      region = report.checks[1].detail, credentials = report.checks[2].detail })
    local ok, serr = M.serve(ctx, opts)
    if not ok then
      io.stderr:write("rotator run: ", tostring(serr), "\n")
      host.exit(2)
    end
  end)
  return true
end

-- The checks passed (or there is no queue to check): resume the journal, tell the service
-- manager, take work.
function M.serve(ctx, opts)
  ready(opts, ctx)
  local ok, rerr = resume_journal(ctx)
  if not ok then return nil, rerr end
  -- Scheduled restore tests, once the journal's workflows are live again (a firing or a
  -- copy waiting for deletion finds its workflow). A dry run schedules nothing.
  if not opts.dry_run then schedule.start(ctx, M.rules) end
  M.startup = { state = "ready", queue = opts.queue_url, since = clock.now() }
  -- The service manager (Type=notify) hears READY once, at the first start: after a
  -- reload the host reports the end of the reload itself.
  host.notify("ready", string.format("serving: %d rules, %s", #M.rules,
    opts.queue_url and ("queue " .. opts.queue_url) or "no queue configured"))
  start_reconcile(ctx, opts, true)
  if not opts.queue_url then
    log.warn("intake.idle", { reason = "no queue configured (--queue-url or ROTATOR_QUEUE_URL)" })
  else
    intake.adopt(ctx)
  end
  -- Start-up leaves the garbage of loading the policies and the journal behind, and the
  -- daemon may then idle for hours: collect it now and give the freed heap back.
  host.release_memory()
  return true
end

-- Daemon-level alerts go to --alert-topic, else to every topic the rules alert to.
function M.alert_topics(opts)
  if opts.alert_topic and opts.alert_topic ~= "" then return { opts.alert_topic } end
  local out, seen = {}, {}
  for _, r in ipairs(M.rules) do
    local t = r.alert_topic_arn
    if t and not seen[t] then seen[t], out[#out + 1] = true, t end
  end
  return out
end

function M.stop()
  log.info("daemon.stopping", { inflight = host.inflight() })
  host.notify("stopping", string.format("stopping: %d calls in flight", host.inflight()))
  M.started = false
  if M.reconcile.timer then M.reconcile.timer:cancel() M.reconcile.timer = nil end
  schedule.stop()
  intake.stop()
end

---------------------------------------------------------------- hot reload
local function progress(started, moving, calls)
  local ids = moving()
  log.info("reload.quiescing", { waiting_workflows = #ids, sqs_calls = calls(),
    seconds = math.floor((clock.mono() - started) * 10 + 0.5) / 10, workflows = table.concat(ids, ",", 1, math.min(#ids, 5)) })
end

-- Running state: stop taking work, park everything, done(state) with the handover.
function M.quiesce(done)
  M.reconcile.quiescing = true -- a run in progress starts no workflow the handover would miss
  local started = clock.mono()
  schedule.stop() -- no new firing while parking; the adopting state re-arms from the journal
  local pending, finished, ticker, deadline = 2, false, nil, nil
  local moving, calls
  local function finish(timed_out)
    if finished then return end
    finished = true
    if ticker then ticker:cancel() end
    if deadline then deadline:cancel() end
    if timed_out then
      log.warn("reload.quiesce_timeout", { seconds = M.quiesce_timeout, still_moving = #moving(), sqs_calls = calls(),
        result = "their steps restart from the last journaled boundary" })
    end
    if M.ctx and M.ctx.store and M.ctx.store.timer then M.ctx.store.timer:cancel() M.ctx.store.timer = nil end
    if M.reconcile.timer then M.reconcile.timer:cancel() M.reconcile.timer = nil end
    if M.ctx and M.ctx.store and M.ctx.store.ckpt_timer then M.ctx.store.ckpt_timer:cancel() M.ctx.store.ckpt_timer = nil end
    local claims, receive = intake.snapshot()
    M.handover = { opts = M.opts, workflows = workflow.snapshot(M.ctx or {}), claims = claims, receive = receive,
      health = health.snapshot(), dormant = workflow.snapshot_dormant(M.ctx or {}) }
    log.info("reload.quiesced", { workflows = #M.handover.workflows + #M.handover.dormant.ids,
      active = #M.handover.workflows, dormant = #M.handover.dormant.ids, claims = #M.handover.claims,
      receive = receive and tostring(receive) or "none", ms = math.floor((clock.mono() - started) * 1000 + 0.5) })
    done(M.handover)
  end
  local function one() pending = pending - 1 if pending == 0 then finish(false) end end
  calls = intake.quiesce(one)
  moving = workflow.quiesce(M.ctx or {}, one)
  if finished then return end
  ticker = timer.every(1, function() progress(started, moving, calls) end)
  deadline = timer.after(M.quiesce_timeout, function() finish(true) end)
end

-- New state: take the daemon over with the freshly validated policies.
function M.adopt(set, state)
  local ok, err = M.set_policies(set, state.opts.flags)
  if not ok then return nil, err end
  log.info("policies.loaded", { files = #set.files, rules = #M.rules })
  local started, serr = M.start(state.opts, state)
  if started and host.stopping() then M.stop() end -- the stop began during the reload
  return started, serr
end

-- Reload failed after quiesce: take the work again in this state, from the handover.
function M.resume()
  local h = M.handover
  if not h then return end
  M.handover = nil
  M.reconcile.quiescing = nil
  if M.ctx then workflow.reset(M.ctx) end
  if M.ctx and M.ctx.store then M.ctx.store:close() end
  local ok, err = M.start(h.opts, h)
  if not ok then log.error("reload.resume_failed", { error = err }) return end
  if host.stopping() then M.stop() end -- the stop began during the reload
end

return M
