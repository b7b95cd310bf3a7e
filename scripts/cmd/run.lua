-- rotator run: the daemon. Loads policies (a startup error is fatal), then serves until
-- SIGTERM/SIGINT. SIGHUP reloads the policies: the new set replaces the old only if it
-- loads and validates completely; otherwise the old one keeps running.
local host = require "host"
local log = require "log"
local args = require "engine.args"
local policies = require "policy.loader"
local daemon = require "daemon"
local console = require "console.console"
local task = require "engine.task"
local services = require "aws.services"
local preflight = require "daemon.preflight"
local store = require "daemon.store"
local probe = require "daemon.probe"
local D = require "workflow.doc"

local usage = [==[
usage: rotator run [--queue-url URL] [--dry-run] [--preflight] [--reconcile-every 6h]
                  [--source-pattern RE --replacement-pattern T [--ssm-parameter-name N]]
                  [--default-rule first|last|off]
                  [--metrics-listen HOST:PORT [--metrics-listen-any]]
                  [--alert-after DURATION] [--alert-topic ARN]

Runs the daemon. Policies load from the policies folder (--policies); a policy error at
start is fatal (exit 2). `kill -HUP` reloads them; a broken reload keeps the old ones and
logs the error with file:line. `kill -TERM` stops taking work, lets in-flight work finish
(up to --stop-timeout) and exits 0.

At start, with a queue, the daemon resolves the region and the credentials and asks the
queue for its attributes (sqs:GetQueueAttributes) before it takes work or tells systemd
READY=1. What waiting cannot heal ends it at once (exit 1) with one message naming the
setting or resource and the next step: no region, no credentials anywhere in the chain
(each provider tried is listed), credentials refused, the queue missing (create it with
`rotator setup --topic-arn ...`), access denied (the IAM action missing). Network errors,
timeouts, throttling and 5xx are retried with backoff (1 s doubling to 30 s), each retry
logged as startup.waiting and shown in `rotator status` (startup).

--preflight runs the same checks once, without waiting for anything to heal (a network
error fails it too), prints one line per check and exits: 0 when every check passed, 1
naming what failed. It takes no work and needs no lock on the state directory.

Every workflow step is journaled (fsync'd) in the state directory (--state-dir) before
its effect is acknowledged; on start, unfinished workflows resume from their last step.
Several daemons may share one queue: the SQS message is the claim, and a job abandoned
by a dead instance resumes on another idempotently.

Options:
  --queue-url URL   SQS queue subscribed to the AWS Backup topic (ROTATOR_QUEUE_URL)
  --preflight       check policies, state directory, region, credentials and queue;
                    print the results and exit (0: all passed, 1: something failed)
  --reconcile-every DURATION
                    reconcile at start and then every DURATION ("6h", "30m"; default
                    off; ROTATOR_RECONCILE_EVERY): a pointer a lost notification left
                    behind gets its newest backup restored (see rotator reconcile --help)
  --reconcile-rate N
                    reconcile's list/describe calls per second (default 5;
                    ROTATOR_RECONCILE_RATE)
  --dry-run         make no mutating AWS call; print each planned call as JSON
                    (messages are received but not deleted: they come back)
  --source-pattern, --replacement-pattern, --ssm-parameter-name
                    the default rule when no policy declares one (else from
                    SOURCE_PATTERN, REPLACEMENT_PATTERN, SSM_PARAMETER_NAME)
  --default-rule first|last|off
                    when those settings AND policy rules exist (else the start is
                    refused, exit 2): first = the default rule is evaluated before
                    the policy rules, last = after them, off = it is dropped
                    (ROTATOR_DEFAULT_RULE)
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
ROTATOR_MAX_MESSAGES (100: SQS messages held at once; the intake stops receiving there),
ROTATOR_QUIESCE_TIMEOUT (60: how long a reload waits for AWS calls in flight),
ROTATOR_DORMANT_AFTER (5: a wait for a table at least this long holds the workflow
as a compact entry and reads its document back from the journal when it is due)

Exit status: 0 stopped by SIGTERM/SIGINT; 1 a start-up check failed (region, credentials,
queue); 2 bad usage, the policies or the default rule, or the state directory is in use.

Examples:
  rotator run --queue-url https://sqs.us-east-1.amazonaws.com/123456789012/rotator
  rotator run --reconcile-every 6h --queue-url https://sqs.us-east-1.amazonaws.com/123456789012/rotator
  rotator run --preflight --queue-url https://sqs.us-east-1.amazonaws.com/123456789012/rotator
  rotator run --queue-url "$QUEUE" --metrics-listen 127.0.0.1:9464 --alert-after 10m
]==]

local SPEC = {
  ["--queue-url"] = "string", ["--dry-run"] = "bool", ["--preflight"] = "bool", ["--source-pattern"] = "string",
  ["--replacement-pattern"] = "string", ["--ssm-parameter-name"] = "string", ["--default-rule"] = "string",
  ["--metrics-listen"] = "string", ["--metrics-listen-any"] = "bool", ["--alert-after"] = "string",
  ["--alert-topic"] = "string",
  ["--reconcile-every"] = "string", ["--reconcile-rate"] = "string",
}

local function load_policies()
  local files, err = policies.list(host.config.policies_dir)
  if not files then return nil, { err } end
  return policies.load(files)
end

local function line(name, ok, detail)
  io.stdout:write(("%-12s %-4s %s\n"):format(name, ok == nil and "skip" or ok and "ok" or "FAIL", detail))
end

-- A writable state directory (the journal and the control socket live there).
local function state_dir_check()
  local dir, derr = store.default_state_dir()
  if not dir then return false, derr end
  local ok, err = host.mkdir(dir)
  if not ok then return false, tostring(err) .. ": set --state-dir or ROTATOR_STATE_DIR to a folder this user may write" end
  local probe = dir .. "/.preflight-" .. tostring(host.pid())
  local f, ferr = io.open(probe, "w")
  if not f then return false, tostring(ferr) .. ": give this user write access, or another --state-dir" end
  f:close()
  os.remove(probe)
  return true, dir .. " (writable)"
end

local function preflight_run(set, queue_url)
  task.spawn(function()
    local failed = {}
    line("policies", true, ("%d files, %d rules in force (%s)"):format(#set.files, #daemon.rules, host.config.policies_dir))
    local sok, sdetail = state_dir_check()
    line("state dir", sok, sdetail)
    if not sok then failed[#failed + 1] = "state directory" end
    if not queue_url then
      line("queue", false, "not configured: give --queue-url or set ROTATOR_QUEUE_URL (`rotator setup --topic-arn ...` "
        .. "prints it)")
      failed[#failed + 1] = "queue (not configured)"
    else
      local report = preflight.check(services.new({}), queue_url)
      for _, c in ipairs(report.checks) do line(c.name, c.ok, c.detail) end
      if not report.ok then
        failed[#failed + 1] = report.failed == "queue" and ("queue " .. queue_url) or report.failed
      end
    end
    if #failed == 0 then
      io.stdout:write("preflight: all checks passed\n")
      io.stdout:flush()
      return host.exit(0)
    end
    io.stdout:write("preflight failed: ", table.concat(failed, ", "), "\n")
    io.stdout:flush()
    host.exit(1)
  end)
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
  local queue_url = opts.queue_url or os.getenv("ROTATOR_QUEUE_URL")
  if queue_url == "" then queue_url = nil end
  if opts.preflight then return preflight_run(set, queue_url) end
  local alert_after, aerr = args.duration(opts.alert_after or os.getenv("ROTATOR_ALERT_AFTER") or "5m", "--alert-after")
  if not alert_after then io.stderr:write("rotator run: ", aerr, "\n") return 2 end
  local every_text = opts.reconcile_every or os.getenv("ROTATOR_RECONCILE_EVERY")
  local every, everr
  if every_text and every_text ~= "" and every_text ~= "off" then
    every, everr = D.duration(tonumber(every_text) or every_text)
    if not every then io.stderr:write("rotator run: --reconcile-every: ", everr, "\n") return 2 end
  end
  local rate = tonumber(opts.reconcile_rate or os.getenv("ROTATOR_RECONCILE_RATE") or "5")
  if not rate or rate < 0 then io.stderr:write("rotator run: --reconcile-rate must be a number >= 0\n") return 2 end
  local listen = opts.metrics_listen or os.getenv("ROTATOR_METRICS_LISTEN")
  if listen and listen ~= "" then
    local addr, lerr = probe.listen(listen, opts.metrics_listen_any)
    if not addr then io.stderr:write("rotator run: ", lerr, "\n") return 2 end
    log.info("metrics.listening", { address = addr, paths = "/metrics /healthz /readyz" })
  end
  local started, serr = daemon.start({ queue_url = queue_url,
    dry_run = opts.dry_run, flags = opts, alert_after = alert_after,
    alert_topic = opts.alert_topic or os.getenv("ROTATOR_ALERT_TOPIC"),
    reconcile_every = every, reconcile_rate = rate })
  if not started then
    io.stderr:write("rotator run: ", tostring(serr), "\n")
    return 2
  end
  console.start() -- the REPL/status socket (a reloaded state takes it over: cli.lua)
end

return { summary = "run the daemon: poll the queue, restore, update SSM", usage = usage, run = run }
