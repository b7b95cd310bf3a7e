-- rotator replay FILE|- [--dry-run]: run the intake on notification files.
local host = require "host"
local log = require "log"
local args = require "engine.args"
local json = require "json"
local task = require "engine.task"
local policies = require "policy.loader"
local rules = require "policy.rules"
local services = require "aws.services"
local intake = require "daemon.intake"
local N = require "workflow.notification"

local usage = [==[
usage: rotator replay [--dry-run] [--source-pattern RE --replacement-pattern T
                      [--ssm-parameter-name NAME]] FILE|- ...

Feeds notification files (an SQS message, an SNS envelope, a {"Records":[...]} document,
an EventBridge event, the bare message text, or one JSON notification per line) through
the same intake and workflow as the daemon. `-` reads stdin.

--dry-run makes no mutating call and prints each planned call as one JSON line on stdout:
  {"call":"dynamodb.RestoreTableFromBackup","input":{...}}
It needs no network and no credentials: it plans from the notification and the policies
alone (waiting for ACTIVE and the SSM ordering check are skipped). Logs go to stderr.

Without policy rules, the default rule comes from SOURCE_PATTERN, REPLACEMENT_PATTERN and
SSM_PARAMETER_NAME (or the flags), as in the original tool.

Exit status: 0 all done or skipped, 1 a workflow failed, 2 bad input or policies.

Examples:
  rotator replay --dry-run notification.json
  SOURCE_PATTERN='(?i)-production$' REPLACEMENT_PATTERN=-staging rotator replay --dry-run - < msg.json
]==]

local SPEC = {
  ["--dry-run"] = "bool", ["--source-pattern"] = "string", ["--replacement-pattern"] = "string",
  ["--ssm-parameter-name"] = "string",
}

local function read_input(path)
  if path == "-" then return io.stdin:read("a") end
  return host.read_file(path)
end

-- A file holds one notification, or (when it does not parse whole) one per line.
local function parse_text(text)
  local recs, err = N.parse(text)
  if recs then return { recs } end
  local batches, any = {}, false
  for line in text:gmatch("[^\n]+") do
    if line:match("%S") then
      local r, lerr = N.parse(line)
      if not r then return nil, err end
      any = true
      batches[#batches + 1] = r
      local _ = lerr
    end
  end
  if not any then return nil, err end
  return batches
end

local function load_rules(opts)
  local files = policies.list(host.config.policies_dir) or {}
  local set, errs = policies.load(files)
  if not set then return nil, table.concat(errs, "\n") end
  local list, err = rules.effective(set, opts)
  if not list then return nil, err end
  return list
end

local function run(argv)
  local opts, files = args.parse(argv, SPEC, "replay")
  if not opts then io.stderr:write("rotator replay: ", files, "\n") return 2 end
  if #files == 0 then io.stderr:write(usage) return 2 end
  local list, err = load_rules(opts)
  if not list then io.stderr:write(err, "\n", "rotator replay: policies did not load\n") return 2 end
  if #list == 0 then log.warn("replay.no_rules", { reason = "no policy rules and no SOURCE_PATTERN: every record is skipped" }) end
  local ctx = {
    svc = services.new({ dry_run = opts.dry_run, offline = opts.dry_run }),
    rules = function() return list end,
    dry_run = opts.dry_run or false,
  }
  task.spawn(function()
    local status = 0
    for _, path in ipairs(files) do
      local text, rerr = read_input(path)
      local batches, perr
      if text then batches, perr = parse_text(text) end
      if not text or not batches then
        log.error("replay.unparsable", { file = path, reason = rerr or perr })
        status = 2
      else
        for i, recs in ipairs(batches) do
          local ok = intake.handle_records(recs, ctx, path .. (#batches > 1 and (":" .. i) or ""))
          if not ok and status == 0 then status = 1 end
        end
      end
    end
    io.stdout:flush()
    host.exit(status)
  end)
  local _ = json
end

return { summary = "feed a notification file through the workflow (--dry-run plans only)", usage = usage, run = run }
