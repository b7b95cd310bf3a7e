-- What monitoring sees of the daemon: the gauges refreshed at each scrape, readiness,
-- and the health and in-flight figures `rotator status` shows.
--   M.install()             this state's /metrics and /readyz hooks (the running state's answer)
--   M.listen(addr, any)     start the HTTP listener (host/svc/metrics_http.c): address, or nil, msg
--   M.collect()             refresh the gauges (workflows by state and rule, calls in flight,
--                           journal size, health)
--   M.ready() -> ok, reason policies loaded, journal writable, last receive recent
--   M.workflows() / M.inflight() / M.last_errors(workflow_errors)   status fields
local host = require "host"
local metrics = require "engine.metrics"
local aws = require "aws"
local workflow = require "workflow"
local daemon = require "daemon"
local intake = require "daemon.intake"
local health = require "daemon.health"
local schedule = require "schedule"

local M = {}

local RANK_VALUE = { ok = 0, degraded = 1, failing = 2 }

-- Live workflows of the daemon's ctx, dormant ones included: { {state, rule, n} }
-- counted by phase and rule.
local function live_counts()
  local out, by = {}, {}
  local ctx = daemon.ctx
  if not ctx then return out end
  workflow.each_running(ctx, function(_, phase, label)
    local state, rule = tostring(phase), tostring(label)
    local key = state .. "\0" .. rule
    local c = by[key]
    if not c then
      c = { state = state, rule = rule, n = 0 }
      by[key] = c
      out[#out + 1] = c
    end
    c.n = c.n + 1
  end)
  return out
end

function M.collect()
  metrics.clear("rotator_workflows")
  for _, c in ipairs(live_counts()) do metrics.set("rotator_workflows", { state = c.state, rule = c.rule }, c.n) end
  local calls, polls = aws.in_flight()
  metrics.set("rotator_aws_calls_in_flight", nil, calls)
  metrics.set("rotator_sqs_long_polls_in_flight", nil, polls)
  local store = daemon.ctx and daemon.ctx.store
  if store then metrics.set("rotator_journal_size_bytes", nil, store:size()) end
  metrics.clear("rotator_schedule_next_firing_timestamp_seconds")
  for label, st in pairs(schedule.running or {}) do
    if type(st.next) == "number" then
      metrics.set("rotator_schedule_next_firing_timestamp_seconds", { rule = label }, st.next)
    end
  end
  metrics.set("rotator_health", nil, RANK_VALUE[health.state()])
  metrics.clear("rotator_health_problems")
  for _, p in ipairs(health.problems()) do
    metrics.set("rotator_health_problems", { problem = p.problem, severity = p.severity }, 1)
  end
  metrics.clear("rotator_build_info")
  metrics.set("rotator_build_info", { version = tostring(host.config.version or "unknown") }, 1)
end

function M.ready()
  if not daemon.started or not daemon.policies then return false, "policies not loaded" end
  if health.has("journal") then return false, "journal not writable: " .. tostring(health.problems_by_name.journal.error) end
  if health.state() == "failing" then
    local p = health.problems()[1]
    return false, p.problem .. " failing since " .. p.since .. ": " .. tostring(p.error)
  end
  if daemon.opts and daemon.opts.queue_url then return intake.ready() end
  return true
end

function M.install()
  metrics.hooks({ collect = M.collect, ready = M.ready })
end

function M.listen(addr, any)
  return metrics.listen(addr, any)
end

-- status: workflows by state (running now, by phase and by rule, and how many of them
-- are dormant: workflow/dormant.lua; finished since start by outcome; the journal's totals).
function M.workflows(journal_counts)
  local running, by_rule, total = {}, {}, 0
  for _, c in ipairs(live_counts()) do
    running[c.state] = (running[c.state] or 0) + c.n
    by_rule[c.rule] = (by_rule[c.rule] or 0) + c.n
    total = total + c.n
  end
  local finished = {}
  local fam = metrics.snapshot().rotator_workflows_finished_total
  for _, s in ipairs(fam and fam.series or {}) do
    finished[s.labels.outcome] = (finished[s.labels.outcome] or 0) + math.tointeger(s.value)
  end
  return { running = total, dormant = daemon.ctx and workflow.dormant_count(daemon.ctx) or 0, by_state = running,
    by_rule = by_rule, finished = finished, journal = journal_counts }
end

-- status: AWS calls in flight apart from the SQS long poll; messages this daemon holds.
function M.inflight()
  local calls, polls = aws.in_flight()
  return { aws_calls = calls, long_poll = polls, messages = intake.claims_count(), holds = host.inflight() }
end

-- status: daemon-level problems first, then the given workflow errors.
function M.last_errors(workflow_errors)
  local out = {}
  for _, p in ipairs(health.problems()) do out[#out + 1] = p end
  for _, e in ipairs(workflow_errors or {}) do out[#out + 1] = e end
  return out
end

return M
