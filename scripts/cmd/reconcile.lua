-- rotator reconcile [--dry-run] [--rule NAME]: find stale SSM pointers once, print the plan,
-- and (without --dry-run) restore the newest backup of each.
local host = require "host"
local args = require "engine.args"
local task = require "engine.task"
local rules = require "policy.rules"
local services = require "aws.services"
local workflow = require "workflow"
local reconcile = require "reconcile"
local pace = require "reconcile.pace"
local store = require "daemon.store"

local usage = [==[
usage: rotator reconcile [--dry-run] [--rule NAME] [--rate CALLS_PER_SECOND]

Catches up on lost notifications. For every table ListTables names whose rule is in scope
(the first rule whose source_pattern matches; a rule's select = { tags = {...} } narrows
it to tables carrying those tags), finds the newest completed backup (DynamoDB ListBackups
and AWS Backup ListRecoveryPointsByResource, page by page) and the copy the rule's SSM
parameter points at (the copy's name carries its backup's start time). A pointer behind
the newest backup, with no workflow for that backup running or in the journal, gets the
workflow a notification would have started: same workflow id (the backup job id; the
backup ARN for a plain DynamoDB backup), so a notification arriving later attaches to it
and restores nothing twice. Older backups in between are skipped: one restore, not one
per missed notification.

One line per table: rule, source, pointer (the copy's name; "none" when the parameter
does not exist), newest backup (start time and job id or backup ARN), action (restore ->
TARGET, none, error) and the reason; then a summary line.

Without --dry-run the restores run here, journaled in the state directory, and the
command waits for them; it refuses while a daemon holds the state directory (the daemon
reconciles itself: rotator run --reconcile-every 6h). List and describe calls are paced
by a token bucket (--rate, default 5 a second, ROTATOR_RECONCILE_RATE).

Options:
  --dry-run         print the plan; start nothing (reads only)
  --rule NAME       only the tables of this rule
  --rate N          list/describe calls per second (0: unpaced)
  --source-pattern, --replacement-pattern, --ssm-parameter-name, --default-rule
                    the default rule, as for rotator run

Exit status: 0 nothing failed; 1 a read or a restore failed; 2 bad usage, policies or
rule, or the state directory is in use.

Examples:
  rotator reconcile --dry-run
  rotator reconcile --rule staging
]==]

local SPEC = { ["--dry-run"] = "bool", ["--rule"] = "string", ["--rate"] = "string",
  ["--source-pattern"] = "string", ["--replacement-pattern"] = "string",
  ["--ssm-parameter-name"] = "string", ["--default-rule"] = "string" }

local function file_exists(path)
  local f = path and io.open(path, "r")
  if f then f:close() return true end
  return false
end

-- The journal: a dry run reads it when there is one (a daemon may hold it: WAL readers do
-- not block it); a real run takes the state directory like the daemon does.
local function open_journal(dry_run)
  local dir, derr = store.default_state_dir()
  if not dir then return nil, derr end
  if dry_run then
    if not file_exists(store.path(dir)) then return false end
    return store.open(nil)
  end
  host.mkdir(dir)
  local ok, lerr, pid = host.lock_state_dir(dir)
  if not ok then
    return nil, tostring(lerr) .. (pid and " (a daemon runs there and reconciles itself: rotator run "
      .. "--reconcile-every 6h; or see its plan with rotator reconcile --dry-run)" or ""), true
  end
  return store.open(nil)
end

local function run(argv)
  local opts, pos = args.parse(argv, SPEC, "reconcile")
  if not opts then io.stderr:write("rotator reconcile: ", pos, "\n") return 2 end
  if #pos > 0 then io.stderr:write(usage) return 2 end
  local rate = tonumber(opts.rate or os.getenv("ROTATOR_RECONCILE_RATE") or "5")
  if not rate or rate < 0 then io.stderr:write("rotator reconcile: --rate must be a number >= 0\n") return 2 end
  local list, err = rules.load_effective(host.config.policies_dir, opts)
  if not list then
    io.stderr:write(tostring(err), "\nrotator reconcile: the rules are not usable (policies or the default rule); fix them (rotator check)\n")
    return 2
  end
  local journal, jerr, busy = open_journal(opts.dry_run)
  if journal == nil then
    io.stderr:write("rotator reconcile: journal: ", tostring(jerr), "\n")
    return busy and 2 or 1
  end
  local ctx = { svc = services.new({ dry_run = opts.dry_run, emit = function() end }), store = journal or nil,
    rules = function() return list end, dry_run = opts.dry_run or false }
  task.spawn(function()
    local summary, rerr, kind = reconcile.run(ctx, { rule = opts.rule, plan_only = opts.dry_run,
      pace = pace.new(rate, math.max(1, math.ceil(rate))),
      on_row = function(row) io.stdout:write(reconcile.row_text(row), "\n") io.stdout:flush() end })
    if not summary then
      io.stderr:write("rotator reconcile: ", tostring(rerr), "\n")
      return host.exit(kind == "usage" and 2 or 1)
    end
    local failed = summary.errors
    for _, wf in ipairs(summary.workflows) do
      local doc = workflow.await(wf)
      if doc.Status ~= "Complete" then failed = failed + 1 end
      io.stdout:write(("workflow=%s target=%s status=%s%s\n"):format(doc.WorkflowId, tostring(doc.TargetTableName),
        tostring(doc.Status), doc.Error and (" error=%q"):format(doc.Error) or ""))
    end
    io.stdout:write(("reconcile: %d tables, %d in scope, %d stale, %d restores %s, %d errors\n"):format(
      summary.tables, summary.matched, summary.stale, opts.dry_run and summary.stale or summary.started,
      opts.dry_run and "planned" or "run", summary.errors))
    io.stdout:flush()
    host.exit(failed > 0 and 1 or 0)
  end)
end

return { summary = "restore the newest backup where a lost notification left the SSM parameter behind",
  usage = usage, run = run }
