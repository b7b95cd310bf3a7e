-- rotator run: the daemon. Loads policies (a startup error is fatal), then serves until
-- SIGTERM/SIGINT. SIGHUP reloads the policies: the new set replaces the old only if it
-- loads and validates completely; otherwise the old one keeps running.
local host = require "host"
local log = require "log"
local args = require "args"
local policies = require "policies"
local daemon = require "daemon"

local usage = [[
usage: rotator run [--queue-url URL] [--dry-run]

Runs the daemon. Policies load from the policies folder (--policies); a policy error at
start is fatal (exit 2). `kill -HUP` reloads them; a broken reload keeps the old ones and
logs the error with file:line. `kill -TERM` stops taking work, lets in-flight work finish
(up to --stop-timeout) and exits 0.

Options:
  --queue-url URL   SQS queue subscribed to the AWS Backup topic (ROTATOR_QUEUE_URL)
  --dry-run         make no mutating AWS call; print each planned call as JSON

Example:
  rotator run --queue-url https://sqs.us-east-1.amazonaws.com/123456789012/rotator
]]

local SPEC = { ["--queue-url"] = "string", ["--dry-run"] = "bool" }

local function load_policies()
  local files, err = policies.list(host.config.policies_dir)
  if not files then return nil, { err } end
  return policies.load(files)
end

local function reload()
  local set, errs = load_policies()
  if not set then
    log.error("reload.failed", { error = table.concat(errs, "; "), result = "configuration not changed" })
    return
  end
  daemon.set_policies(set)
  log.info("reload.ok", { files = #set.files, rules = #set.rules })
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
  daemon.set_policies(set)
  host.on_signal("HUP", reload)
  host.on_signal("TERM", daemon.stop)
  daemon.start({ queue_url = opts.queue_url or os.getenv("ROTATOR_QUEUE_URL"), dry_run = opts.dry_run })
end

return { usage = usage, run = run }
