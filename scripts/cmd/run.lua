-- rotator run: the daemon. Loads policies (a startup error is fatal), then serves until
-- SIGTERM/SIGINT. SIGHUP reloads the policies: the new set replaces the old only if it
-- loads and validates completely; otherwise the old one keeps running.
local host = require "host"
local log = require "log"
local args = require "engine.args"
local policies = require "policy.loader"
local daemon = require "daemon"
local console = require "console.console"
local probe = require "daemon.probe"

local usage = [==[
usage: rotator run [--queue-url URL] [--dry-run]
                  [--source-pattern RE --replacement-pattern T [--ssm-parameter-name N]]
                  [--metrics-listen HOST:PORT [--metrics-listen-any]]
                  [--alert-after DURATION] [--alert-topic ARN]

Runs the daemon. Policies load from the policies folder (--policies); a policy error at
start is fatal (exit 2). `kill -HUP` reloads them; a broken reload keeps the old ones and
logs the error with file:line. `kill -TERM` stops taking work, lets in-flight work finish
(up to --stop-timeout) and exits 0.

Every workflow step is journaled (fsync'd) in the state directory (--state-dir) before
its effect is acknowledged; on start, unfinished workflows resume from their last step.
Several daemons may share one queue: the SQS message is the claim, and a job abandoned
by a dead instance resumes on another idempotently.

Options:
  --queue-url URL   SQS queue subscribed to the AWS Backup topic (ROTATOR_QUEUE_URL)
  --dry-run         make no mutating AWS call; print each planned call as JSON
                    (messages are received but not deleted: they come back)
  --source-pattern, --replacement-pattern, --ssm-parameter-name
                    the default rule when no policy declares one (else from
                    SOURCE_PATTERN, REPLACEMENT_PATTERN, SSM_PARAMETER_NAME)
  --metrics-listen HOST:PORT
                    serve GET /metrics (Prometheus), /healthz and /readyz there
                    (ROTATOR_METRICS_LISTEN; off by default; loopback only, e.g.
                    127.0.0.1:9464 or [::1]:9464)
  --metrics-listen-any
                    allow a non-loopback --metrics-listen address (no authentication:
                    put it behind a firewall)
  --alert-after DURATION
                    a daemon-level failure (every receive failing, credentials, the
                    journal) lasting this long publishes one alert, and one more when it
                    recovers (ROTATOR_ALERT_AFTER; default 5m)
  --alert-topic ARN the SNS topic for those alerts (ROTATOR_ALERT_TOPIC; default: every
                    alert_topic_arn the rules name)

Tuning (environment): ROTATOR_WAIT_FIRST (5), ROTATOR_WAIT_MAX (60),
ROTATOR_WAIT_DEADLINE (86400), ROTATOR_MAX_RESTORES (50),
ROTATOR_RESTORES_PER_SECOND (10), ROTATOR_LIMIT_BACKOFF (120),
ROTATOR_VISIBILITY_TIMEOUT (300), ROTATOR_HEARTBEAT (120),
ROTATOR_QUIESCE_TIMEOUT (60: how long a reload waits for AWS calls in flight)

Examples:
  rotator run --queue-url https://sqs.us-east-1.amazonaws.com/123456789012/rotator
  rotator run --queue-url "$QUEUE" --metrics-listen 127.0.0.1:9464 --alert-after 10m
]==]

local SPEC = {
  ["--queue-url"] = "string", ["--dry-run"] = "bool", ["--source-pattern"] = "string",
  ["--replacement-pattern"] = "string", ["--ssm-parameter-name"] = "string",
  ["--metrics-listen"] = "string", ["--metrics-listen-any"] = "bool", ["--alert-after"] = "string",
  ["--alert-topic"] = "string",
}

local function load_policies()
  local files, err = policies.list(host.config.policies_dir)
  if not files then return nil, { err } end
  return policies.load(files)
end

local function run(argv)
  local opts, pos = args.parse(argv, SPEC, "run")
  if not opts then io.stderr:write("rotator run: ", pos, "\n") return 2 end
  local set, errs = load_policies()
  if not set then
    for _, e in ipairs(errs) do io.stderr:write(e, "\n") end
    io.stderr:write("rotator run: policies did not load; fix them (rotator check) and start again\n")
    return 2
  end
  local ok, derr = daemon.set_policies(set, opts)
  if not ok then
    io.stderr:write("rotator run: ", derr, "\n")
    return 2
  end
  local alert_after, aerr = args.duration(opts.alert_after or os.getenv("ROTATOR_ALERT_AFTER") or "5m", "--alert-after")
  if not alert_after then io.stderr:write("rotator run: ", aerr, "\n") return 2 end
  local listen = opts.metrics_listen or os.getenv("ROTATOR_METRICS_LISTEN")
  if listen and listen ~= "" then
    local addr, lerr = probe.listen(listen, opts.metrics_listen_any)
    if not addr then io.stderr:write("rotator run: ", lerr, "\n") return 2 end
    log.info("metrics.listening", { address = addr, paths = "/metrics /healthz /readyz" })
  end
  local started, serr = daemon.start({ queue_url = opts.queue_url or os.getenv("ROTATOR_QUEUE_URL"),
    dry_run = opts.dry_run, flags = opts, alert_after = alert_after,
    alert_topic = opts.alert_topic or os.getenv("ROTATOR_ALERT_TOPIC") })
  if not started then
    io.stderr:write("rotator run: ", tostring(serr), "\n")
    return 2
  end
  console.start() -- the REPL/status socket (a reloaded state takes it over: cli.lua)
end

return { summary = "run the daemon: poll the queue, restore, update SSM", usage = usage, run = run }
