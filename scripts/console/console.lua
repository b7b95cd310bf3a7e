-- The operator's console on a running daemon: the control socket (REPL and `rotator
-- status`), the REPL helpers, and the status fields. Started by `rotator run`
-- (cmd/run.lua) and, after a reload, by the state that adopted (cli.lua).
local repl = require "console.repl"
local host = require "host"
local log = require "log"
local clock = require "clock"
local json = require "json"
local aws = require "aws"
local services = require "aws.services"
local N = require "workflow.notification"
local retention = require "after.retention"
local daemon = require "daemon"
local intake = require "daemon.intake"
local store = require "daemon.store"
local reload_state = require "daemon.reload"
local rd = require "daemon.redrive"
local health = require "daemon.health"
local probe = require "daemon.probe"
local metrics = require "engine.metrics"
local schedule = require "schedule"

local M = {}

local function socket_path()
  return host.config.state_dir .. "/rotator.sock"
end

local function open_store()
  return store.current
end

-- One line per workflow, newest first.
local function workflows(filter)
  local s = open_store()
  if not s then return repl.text("no journal open (the daemon has no state directory?)") end
  local opts = { limit = 50 }
  if filter == "unfinished" then opts.unfinished = true end
  local rows, err = s:list(opts)
  if not rows then return repl.text("journal: " .. tostring(err)) end
  local lines = { ("%-40s %-12s %-28s %s"):format("workflow", "state", "source", "updated") }
  for _, r in ipairs(rows) do
    lines[#lines + 1] = ("%-40s %-12s %-28s %s"):format(r.id, tostring(r.state), tostring(r.source or ""),
      r.updated and clock.rfc3339(r.updated) or "")
  end
  if #rows == 0 then lines[#lines + 1] = "(none)" end
  return repl.text(table.concat(lines, "\n"))
end

local function show(id)
  local s = open_store()
  if not s then return nil, "no journal open" end
  local row = s:get(id)
  if not row then return nil, "no workflow " .. tostring(id) .. " (see workflows())" end
  local hist = s:history(id) or {}
  local steps = {}
  for _, h in ipairs(hist) do steps[#steps + 1] = { step = h.step, at = h.at and clock.rfc3339(h.at) } end
  return { id = row.id, state = row.state, document = row.doc, history = steps }
end

-- Feed a notification file through the policies as a dry run; returns the planned calls.
-- The dry run has its own ctx, so its own workflow registry: it plans its own run even
-- for a job the daemon is working on, and never joins the daemon's workflows.
local function dry_run(path)
  local text, err = host.read_file(path)
  if not text then return nil, err end
  local recs, perr = N.parse(text)
  if not recs then return nil, path .. ": " .. tostring(perr) end
  local planned = {}
  local ctx = {
    svc = services.new({ dry_run = true, offline = true, emit = function(line) planned[#planned + 1] = line end }),
    rules = function() return daemon.rules or {} end,
    dry_run = true,
  }
  intake.handle_records(recs, ctx, path)
  return repl.text(#planned > 0 and table.concat(planned, "\n") or "(no call planned: see the daemon log for the reason)")
end

-- The dead-letter queue back through this daemon's intake (as rotator redrive):
-- redrive{ dry_run = true, limit = N, queue = DLQ_URL }. Returns what was shown and done.
local function redrive(o)
  o = o or {}
  local ctx = daemon.ctx
  if not ctx then return nil, "the daemon is not started" end
  local source = daemon.opts and daemon.opts.queue_url
  local dlq = o.queue
  if not dlq then
    if not source then return nil, "the daemon has no queue: give redrive{ queue = DLQ_URL }" end
    local err
    dlq, err = rd.dlq_of(ctx.svc, source)
    if not dlq then return nil, err end
  end
  local lines = {}
  local run_ctx = { svc = ctx.svc, store = ctx.store, rules = ctx.rules, dry_run = o.dry_run or ctx.dry_run }
  local c = rd.run(run_ctx, { dlq_url = dlq, source_url = source, dry_run = run_ctx.dry_run, limit = o.limit,
    to_source = o.to_source }, function(line) lines[#lines + 1] = line end)
  lines[#lines + 1] = ("%d messages: %d done, %d skipped, %d bad, %d failed"):format(c.messages, c.done, c.skipped, c.bad, c.failed)
  return repl.text(table.concat(lines, "\n"))
end

-- Stream every AWS call to this REPL session until trace(false) or the session ends.
local function trace(on)
  local session = repl.session
  if not session then return nil, "trace() only works in a REPL session" end
  if on == false then
    aws.observers[session] = nil
    return repl.text("trace off")
  end
  aws.observers[session] = function(ev)
    if repl.closed(session) then aws.observers[session] = nil return end
    session.print(("aws %s.%s %s %dms%s%s"):format(ev.service, ev.action, ev.ok and "ok" or ("error " .. tostring(ev.code)),
      ev.ms, ev.request_id and " request_id=" or "", ev.request_id or ""))
  end
  return repl.text("trace on: every AWS call is shown here; trace(false) stops")
end

local function reload()
  if host.reload() then return repl.text("reload started: watch the log for reload.ok or reload.failed") end
  return nil, "a reload is already under way, or the daemon is stopping"
end

local function policy_files()
  local out = json.array({})
  for _, path in ipairs(daemon.policies and daemon.policies.files or {}) do
    local text = host.read_file(path)
    out[#out + 1] = { file = path, sha256 = text and host.sha256_hex(text) or "unreadable" }
  end
  return out
end

local function workflow_counts()
  local s = open_store()
  local journal
  if s and s.counts then
    local w, t = s:counts()
    journal = { workflows = w, transitions = t }
  end
  return probe.workflows(journal)
end

-- The journal's write health (store.lua): state ok | failing, kind, since, repeats.
local function journal_health()
  local s = open_store()
  if not s or not s.health_report then return { state = "none" } end
  return s:health_report()
end

-- The start-up checks: "checking", "waiting for the queue" (a transient problem, retried:
-- attempts, error, retry_in), "ready" or "failed".
local function startup()
  local st = daemon.startup or {}
  local out = {}
  for k, v in pairs(st) do out[k] = v end
  if type(st.since) == "number" then out.since = clock.rfc3339(st.since) end
  return out
end

local function workflow_errors()
  local out = json.array({})
  local st = daemon.startup or {}
  if st.error and st.state ~= "ready" then
    out[#out + 1] = { source = "startup", error = st.error, attempts = st.attempts,
      since = type(st.since) == "number" and clock.rfc3339(st.since) or nil }
  end
  local s = open_store()
  if not s then return out end
  local rows = s:list({ limit = 200 }) or {}
  for _, r in ipairs(rows) do
    if r.state == "Error" or r.state == "Failed" then
      local d = type(r.doc) == "table" and r.doc or {}
      out[#out + 1] = { workflow = r.id, error = d.Error or d.error or d.Cause, at = r.updated and clock.rfc3339(r.updated) }
      if #out == 5 then break end
    end
  end
  return out
end

-- Daemon-level problems (daemon/health.lua) first, then the last failed workflows.
-- Daemon-level problems (daemon/health.lua) first, then the last failed workflows. The
-- journal's problem names the file and the next step (store.lua's health report).
local function last_errors()
  local out = probe.last_errors(workflow_errors())
  local s = open_store()
  local h = s and s.health_report and s:health_report()
  for _, e in ipairs(out) do
    if e.problem == "journal" and h and h.state == "failing" then
      e.journal, e.kind, e.next = h.path, h.kind, h.next
    end
  end
  return json.array(out)
end

local function queue_stats()
  return intake.stats or {}
end

local function reconcile_status()
  local r = daemon.reconcile or {}
  if not r.every then return "off (rotator run --reconcile-every 6h)" end
  return { every = r.every, last_run = r.last_run or "not yet", last_stale = r.last_stale,
    stale_total = r.stale_total, runs = r.runs, running = r.running or false, last_error = r.last_error }
end

repl.helper("workflows", "workflows(['unfinished']) lists workflows from the journal", workflows)
repl.helper("show", "show(id) one workflow: state, document and step history", show)
repl.helper("dry_run", "dry_run(file) plans a notification file through the policies", dry_run)
repl.helper("redrive", "redrive{dry_run=, limit=, queue=, to_source=} the dead-letter queue through this daemon", redrive)
repl.helper("trace", "trace([false]) streams AWS calls into this session", trace)
repl.helper("reload", "reload() reloads scripts and policies (as kill -HUP)", reload)
repl.helper("status", "status() the daemon's status as a table", repl.status)
-- The same rows as `rotator retention --explain`, with the daemon's rules passed in.
local function retention_explain(which)
  local rows, info = retention.explain(which, { rules = daemon.rules or {},
    svc = services.new({ dry_run = true, emit = function() end }) })
  if not rows then return nil, info end
  return repl.text(retention.explain_text(rows, info))
end

repl.helper("retention", "retention(rule_or_source) every table retention considers, kept or deleted, and why",
  retention_explain)

repl.helper("restore_test", "restore_test(rule) runs a scheduled rule's restore test now (restore, validate, delete after keep_for)",
  schedule.fire_now)

repl.status_source("policies", policy_files)
repl.status_source("last_reload", function() return reload_state.last or "none since start" end)
repl.status_source("workflows", workflow_counts)
repl.status_source("startup", startup)
repl.status_source("last_errors", last_errors)
repl.status_source("journal", journal_health)
repl.status_source("queue", queue_stats)
repl.status_source("health", health.state)
repl.status_source("inflight", probe.inflight)
repl.status_source("metrics", function()
  probe.collect()
  return metrics.snapshot()
end)
repl.status_source("metrics_listen", function() return metrics.address() or "off" end)
repl.status_source("reconcile", reconcile_status)
repl.status_source("schedules", schedule.status)

function M.start()
  probe.install() -- this state answers /metrics and /readyz from now on
  local path = socket_path()
  local ok, err = host.mkdir(host.config.state_dir)
  if ok then ok, err = repl.listen(path) end
  if not ok then
    log.error("control.unavailable", { socket = path, error = err,
      hint = "rotator repl/status will not work; check --state-dir" })
    return nil, err
  end
  log.info("control.listening", { socket = path })
  return true
end

return M
