-- daemon/health.lua: the worst problem is the health; a problem keeps its `since` and
-- counts repeats; clear ends it; a snapshot carries problems and the failing episode
-- across a reload. And engine/metrics.lua counts into the host registry without raising.
local T = require "engine.testing"
local health = require "daemon.health"
local metrics = require "engine.metrics"

local tests = {}

local function reset()
  health.problems_by_name, health.episode = {}, nil
  health.configure({ svc = nil, topics = {} })
end

function tests.worst_problem_is_the_health()
  reset()
  T.eq(health.state(), "ok")
  health.set("receive", "degraded", "timeout")
  T.eq(health.state(), "degraded")
  health.set("journal", "failing", "disk full")
  T.eq(health.state(), "failing")
  local ps = health.problems()
  T.eq({ ps[1].problem, ps[2].problem }, { "journal", "receive" }, "worst first")
  health.clear("journal")
  T.eq(health.state(), "degraded")
  health.clear("receive")
  T.eq(health.state(), "ok")
  T.eq(#health.problems(), 0)
end

function tests.a_repeated_problem_keeps_since_and_counts()
  reset()
  health.set("receive", "degraded", "first")
  local since = health.problems()[1].since
  health.set("receive", "failing", "third")
  local p = health.problems()[1]
  T.eq({ p.since, p.count, p.error, p.severity }, { since, 2, "third", "failing" })
  T.eq(health.episode ~= nil, true, "failing starts an episode")
  health.clear("receive")
  T.eq(health.episode, nil, "and recovery ends it")
end

function tests.snapshot_and_adopt_carry_the_episode()
  reset()
  health.set("credentials", "failing", "expired")
  local snap = health.snapshot()
  reset()
  health.adopt(snap)
  T.eq(health.state(), "failing")
  T.eq(health.episode and health.episode.alerted, false)
  reset()
end

function tests.severity_is_checked()
  T.raises(function() health.set("x", "ok", "no") end, "severity")
end

function tests.metrics_never_raise_and_refuse_unknown_names()
  T.eq(metrics.inc("rotator_sqs_messages_received_total"), true)
  T.eq(metrics.inc("rotator_no_such_metric_total"), false, "an unknown metric is a logged miss, not an error")
  T.eq(metrics.set("rotator_workflows", { state = "x" }, 1), false, "a missing label is a miss too")
  local fam = metrics.snapshot().rotator_sqs_messages_received_total
  T.eq(fam.type, "counter")
  T.eq(fam.series[1].value >= 1, true)
end

return tests
