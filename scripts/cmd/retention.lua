-- rotator retention --explain RULE|SOURCE: what retention would do now, table by table.
local host = require "host"
local args = require "engine.args"
local task = require "engine.task"
local policies = require "policy.loader"
local rules = require "policy.rules"
local services = require "aws.services"
local retention = require "after.retention"

local usage = [==[
usage: rotator retention --explain RULE|SOURCE_TABLE

Prints every table retention would consider for the rule (or for the source table's
rule), one line each, with the reason it is kept or deleted: DELETE lines are exactly the
DeleteTable calls the next run would make with the SSM parameter where it is now (a
workflow plans with the parameter as it will be after its own update). Only reads
(ListTables, DescribeTable, ListTagsOfResource, GetParameter); deletes nothing.

A table is deleted only when it carries rotator:source, rotator:rule and
rotator:backup-job for this source and rule, its RestoreSummary shows it was restored
from a backup of that source, its name is the rule's name for the source plus the
"-YYYYMMDD-HH-mm-ss" suffix, it is ACTIVE, not deletion-protected, not the parameter's
target; at most retention.max_deletes (default 2) per run, and never one whose deletion
would leave fewer than `keep` ACTIVE copies.

Exit status: 0 listed, 1 an AWS read failed, 2 bad usage, policies or rule.

Examples:
  rotator retention --explain staging
  rotator --policies /etc/rotator/policies retention --explain orders-production
]==]

local SPEC = { ["--explain"] = "string", ["--source-pattern"] = "string", ["--replacement-pattern"] = "string",
  ["--ssm-parameter-name"] = "string", ["--default-rule"] = "string" }

local function load_rules(opts)
  local files, lerr = policies.list(host.config.policies_dir)
  if not files then return nil, lerr end
  local set, errs = policies.load(files)
  if not set then return nil, table.concat(errs, "\n") end
  return rules.effective(set, opts)
end

local function run(argv)
  local opts, pos = args.parse(argv, SPEC, "retention")
  if not opts then io.stderr:write("rotator retention: ", pos, "\n") return 2 end
  if not opts.explain or #pos > 0 then io.stderr:write(usage) return 2 end
  local list, err = load_rules(opts)
  if not list then
    io.stderr:write(tostring(err), "\nrotator retention: the rules are not usable (policies or the default rule); fix them (rotator check)\n")
    return 2
  end
  task.spawn(function()
    -- dry_run: a mutating call, were one ever made here, is printed, never sent
    local svc = services.new({ dry_run = true, emit = function(l) io.stderr:write("unexpected: ", l, "\n") end })
    local ok, rows, info = pcall(retention.explain, opts.explain, { rules = list, svc = svc })
    if not ok or not rows then
      local msg = tostring(ok and info or rows)
      io.stderr:write("rotator retention: ", msg, "\n")
      io.stdout:flush()
      local bad_rule = ok and (msg:match("^no rule named") or msg:match("has no retention policy"))
      return host.exit(bad_rule and 2 or 1)
    end
    io.stdout:write(retention.explain_text(rows, info), "\n")
    io.stdout:flush()
    host.exit(0)
  end)
end

return { summary = "explain which restored copies retention keeps or deletes, and why", usage = usage, run = run }
