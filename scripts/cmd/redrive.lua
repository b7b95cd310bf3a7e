-- rotator redrive: the dead-letter queue's notifications back through the workflow.
local host = require "host"
local log = require "log"
local args = require "engine.args"
local task = require "engine.task"
local policies = require "policy.loader"
local rules = require "policy.rules"
local services = require "aws.services"
local store = require "daemon.store"
local redrive = require "daemon.redrive"

local usage = [==[
usage: rotator redrive [--dry-run] [--limit N] [--queue DLQ_URL] [--queue-url URL] [--to-source]
                       [--source-pattern RE --replacement-pattern T [--ssm-parameter-name N]]
                       [--default-rule first|last|off]

Reads the dead-letter queue of the configured queue (--queue-url or ROTATOR_QUEUE_URL, as
`rotator run` takes it; the dead-letter queue is found from its RedrivePolicy, or given
with --queue) and shows each message's notification: table, backup, the rule it matches
now and what the journal knows of its job (why it failed before). Then, unless
--dry-run, each message in turn is
  * run here, through the same intake, policies and journal as the daemon (default);
    it is deleted from the dead-letter queue only once its workflow completed (journaled)
    or it was deliberately skipped; or
  * with --to-source, sent back to the source queue for the running daemon, then deleted
    from the dead-letter queue.
A message whose workflow fails again, or that is not a notification, stays in the
dead-letter queue. Safe to kill: one message is taken at a time and comes back after its
visibility timeout (ROTATOR_VISIBILITY_TIMEOUT); a job already done is not done twice
(the journal knows it Complete). A daemon running on the same state directory may keep
running.

Options:
  --dry-run       show, change nothing (messages stay in the dead-letter queue)
  --limit N       at most N messages
  --queue URL     the dead-letter queue (default: from the queue's RedrivePolicy)
  --queue-url URL the source queue (ROTATOR_QUEUE_URL)
  --to-source     move the messages to the source queue instead of running them here

Exit status: 0 every message done or skipped; 1 a workflow or an SQS call failed;
2 bad usage, policies or queue configuration; 3 a message was not a notification.

Example:
  rotator redrive --dry-run --queue-url https://sqs.us-east-1.amazonaws.com/123456789012/rotator-backup-events
  rotator redrive --limit 10
]==]

local SPEC = {
  ["--dry-run"] = "bool", ["--limit"] = "string", ["--queue"] = "string", ["--queue-url"] = "string",
  ["--to-source"] = "bool", ["--source-pattern"] = "string", ["--replacement-pattern"] = "string",
  ["--ssm-parameter-name"] = "string", ["--default-rule"] = "string",
}

local function fail(msg)
  io.stderr:write("rotator redrive: ", msg, "\n")
  return 2
end

local function load_rules(opts)
  local files, ferr = policies.list(host.config.policies_dir)
  if not files then return nil, ferr end
  local set, errs = policies.load(files)
  if not set then return nil, table.concat(errs, "\n") end
  return rules.effective(set, opts)
end

local function run(argv)
  local opts, pos = args.parse(argv, SPEC, "redrive")
  if not opts then return fail(pos) end
  if #pos > 0 then return fail("unexpected argument '" .. pos[1] .. "' (see rotator redrive --help)") end
  local limit = opts.limit and tonumber(opts.limit)
  if opts.limit and not (limit and limit >= 1 and limit == math.floor(limit)) then
    return fail("--limit needs a whole number of messages, at least 1")
  end
  local source = opts.queue_url or os.getenv("ROTATOR_QUEUE_URL")
  if not source and (opts.to_source or not opts.queue) then
    return fail("no queue: give --queue-url (or ROTATOR_QUEUE_URL) as for rotator run, or the dead-letter queue with --queue")
  end
  local list, rerr = load_rules(opts)
  if not list then return fail(tostring(rerr) .. "\nthe rules are not usable (policies or the default rule); fix them (rotator check) first") end
  local s
  if opts.dry_run then
    s = store.open(nil, { readonly = true }) -- only to tell why a job failed; may not exist
  else
    local serr
    s, serr = store.open(nil)
    if not s then return fail("journal: " .. tostring(serr) .. " (redrive records every step; check --state-dir)") end
  end
  local ctx = {
    svc = services.new({ dry_run = opts.dry_run }),
    store = s,
    rules = function() return list end,
    dry_run = opts.dry_run or false,
  }
  task.spawn(function()
    local dlq = opts.queue
    if not dlq then
      local err
      dlq, err = redrive.dlq_of(ctx.svc, source)
      if not dlq then io.stderr:write("rotator redrive: ", err, "\n") host.exit(2) return end
    end
    local counts = redrive.run(ctx, { dlq_url = dlq, source_url = source, dry_run = opts.dry_run,
      limit = limit, to_source = opts.to_source }, function(line) io.stdout:write(line, "\n") io.stdout:flush() end)
    if log.format() == "json" then -- a summary, typed, at the level its counts call for
      log[(counts.failed > 0 or counts.bad > 0) and "warn" or "info"]("redrive.summary", { queue = dlq,
        messages = counts.messages, done = counts.done, skipped = counts.skipped, bad = counts.bad,
        failed = counts.failed, dry_run = opts.dry_run or false, planned = opts.dry_run and counts.planned or nil })
    else
      io.stderr:write(("rotator redrive: %s: %d messages: %d done, %d skipped, %d bad, %d failed%s\n"):format(
        dlq, counts.messages, counts.done, counts.skipped, counts.bad, counts.failed,
        opts.dry_run and (" (dry run: %d shown, none changed)"):format(counts.planned) or ""))
    end
    if s then s:close() end
    host.exit(counts.failed > 0 and 1 or counts.bad > 0 and 3 or 0)
  end)
end

return { summary = "run the dead-letter queue's notifications through the workflow again (--dry-run shows them)", usage = usage, run = run }
