-- The daemon's metrics: every family declared here (names, help, labels, buckets), and
-- the calls the engine uses to count. The registry itself is the host's (require
-- "metrics", host/core/metrics.c): one per process, so counts go on across reloads; a
-- reloaded state declares the same families again and gets the same ones.
--   M.inc(name [, labels] [, n])  M.set(name, labels, v)  M.observe(name, labels, v)
-- These never raise: an error (a label with too many values, a typo in a name) is logged
-- once per metric and the count is lost, never the work that counted it.
-- Conventions: rotator_ prefix, base units (seconds, bytes), counters end in _total,
-- timestamps are Unix seconds (_timestamp_seconds).
local core = require "metrics"
local log = require "log"

local M = {}

-- Buckets in seconds: AWS calls (ms to a 20 s long poll), restores and workflows (a
-- minute to a day), journal appends (an fsync: 100 us to a second).
local AWS_BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25 }
local LONG_BUCKETS = { 1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400 }
local FSYNC_BUCKETS = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1 }

M.FAMILIES = {
  { "counter", "rotator_workflows_finished_total", "Workflows finished since start, by outcome (complete, error) and rule.", { "outcome", "rule" } },
  { "gauge", "rotator_workflows", "Workflows running in this daemon now, by state (workflow phase) and rule.", { "state", "rule" } },
  { "histogram", "rotator_restore_duration_seconds", "From the restore's start to the restored table being ACTIVE.", { "rule" }, LONG_BUCKETS },
  { "histogram", "rotator_workflow_duration_seconds", "Whole workflow, from the notification to Complete or Error.", { "rule", "outcome" }, LONG_BUCKETS },
  { "counter", "rotator_aws_calls_total", "AWS calls finished, by service, action and outcome (ok, error).", { "service", "action", "outcome" } },
  { "counter", "rotator_aws_call_errors_total", "AWS calls that failed, by service, action and error code.", { "service", "action", "code" } },
  { "histogram", "rotator_aws_call_duration_seconds", "AWS call latency, all attempts included.", { "service", "action" }, AWS_BUCKETS },
  { "counter", "rotator_aws_retries_total", "AWS request attempts retried (standard retry mode), by service and action.", { "service", "action" } },
  { "counter", "rotator_aws_throttles_total", "AWS responses that were throttling errors, by service and action.", { "service", "action" } },
  { "gauge", "rotator_aws_calls_in_flight", "AWS calls in flight now, not counting the SQS long poll.", nil },
  { "gauge", "rotator_sqs_long_polls_in_flight", "SQS ReceiveMessage long polls open now (0 or 1).", nil },
  { "counter", "rotator_sqs_receive_errors_total", "SQS ReceiveMessage calls that failed, by error code.", { "code" } },
  { "counter", "rotator_sqs_messages_received_total", "SQS messages received.", nil },
  { "counter", "rotator_sqs_messages_deleted_total", "SQS messages deleted (every record finished or was skipped).", nil },
  { "counter", "rotator_sqs_messages_left_total", "SQS messages left for redelivery (a workflow failed).", nil },
  { "counter", "rotator_sqs_messages_unparsable_total", "SQS messages that did not parse (left for the redrive policy).", nil },
  { "gauge", "rotator_sqs_last_receive_timestamp_seconds", "When a ReceiveMessage last succeeded (Unix time; 0 = never).", nil },
  { "gauge", "rotator_ssm_last_update_timestamp_seconds", "When the SSM parameter was last written (Unix time), by parameter.", { "parameter" } },
  { "counter", "rotator_reloads_total", "Policy reloads, by result (ok, failed).", { "result" } },
  { "histogram", "rotator_journal_append_duration_seconds", "Journal appends, fsync included.", nil, FSYNC_BUCKETS },
  { "counter", "rotator_journal_append_errors_total", "Journal appends that failed (the step was not acknowledged).", nil },
  { "counter", "rotator_journal_commits_total", "Journal commits (one fsync each); several records of one loop turn share one.", nil },
  { "counter", "rotator_journal_records_total", "Journal records (workflow transitions) committed.", nil },
  { "gauge", "rotator_journal_size_bytes", "Journal database size on disk (the SQLite file and its WAL).", nil },
  { "counter", "rotator_policy_hook_failures_total", "Policy hook calls that raised or ran past their bound.", nil },
  { "counter", "rotator_reconcile_runs_total", "Reconcile runs, by result (ok, failed).", { "result" } },
  { "counter", "rotator_reconcile_stale_total", "SSM pointers reconcile found behind the newest backup (a restore started), by rule.", { "rule" } },
  { "gauge", "rotator_schedule_next_firing_timestamp_seconds", "When each scheduled restore test fires next (Unix time), by rule.", { "rule" } },
  { "gauge", "rotator_health", "Daemon health: 0 ok, 1 degraded, 2 failing.", nil },
  { "gauge", "rotator_health_problems", "Daemon-level problems present now (1), by problem.", { "problem", "severity" } },
  { "gauge", "rotator_build_info", "Always 1; the version as a label.", { "version" } },
}

for _, f in ipairs(M.FAMILIES) do core[f[1]](f[2], f[3], f[4], f[5]) end

local warned = {}
local function guard(name, ok, res, err)
  if ok and res then return true end
  if not warned[name] then
    warned[name] = true
    log.warn("metrics.error", { metric = name, error = tostring(ok and err or res),
      result = "this count is lost; later errors of this metric are not logged" })
  end
  return false
end

function M.inc(name, labels, n) return guard(name, pcall(core.inc, name, labels, n or 1)) end
function M.set(name, labels, v) return guard(name, pcall(core.set, name, labels, v)) end
function M.observe(name, labels, v) return guard(name, pcall(core.observe, name, labels, v)) end
function M.clear(name) return guard(name, pcall(function() core.clear(name) return true end)) end

M.render = core.render
M.snapshot = core.snapshot
M.listen = core.listen
M.address = core.address
M.hooks = core.hooks

return M
