-- Reconcile: the level-triggered side of Rotator. A notification can be lost (a daemon
-- down past the queue's retention, a wrong subscription filter, a purged dead-letter
-- queue); then the SSM parameter silently stays on an old copy. Reconcile looks:
--   for every table ListTables names (page by page) whose first matching rule is in scope
--   (and, with the rule's `select = { tags = {...} }`, that carries every tag), it finds
--   the newest completed backup (reconcile/backups.lua) and the copy the rule's SSM
--   parameter points at (the restored table's name embeds its backup's start time:
--   rules.start_from_name). When the pointer is behind and no workflow for that backup is
--   running or journaled, it starts the workflow as if the notification had arrived: same
--   record, same workflow id (the backup job id; a plain DynamoDB backup, which no
--   notification announces, by its ARN). A late notification of that backup then attaches
--   to it, or finds it Complete in the journal, and restores nothing a second time.
--
--   local reconcile = require "reconcile"
--   local summary = reconcile.run(ctx, { rule = "staging", plan_only = true, on_row = print_row })
-- ctx: the daemon's (or a command's) workflow ctx: { svc, store, rules = fn, dry_run }.
-- opts: { rule = NAME (only tables whose rule this is), plan_only (start nothing),
--   on_row = fn(row) (each table as it is decided), pace = reconcile.pace bucket,
--   on_start = fn(wf, row) (each workflow started), stopped = fn() -> true to stop early
--   (the daemon is stopping) }.
-- A row: { rule, source, pointer (table name or "none"/"missing"), pointer_epoch,
--   newest (backup or nil), action = "restore" | "none" | "error", reason, target, id }.
-- Returns { tables, matched, stale, started, errors, workflows = {wf...}, seconds } or nil,
-- err (ListTables failed: nothing can be decided).
local log = require "log"
local clock = require "clock"
local pace = require "reconcile.pace"
local rules = require "policy.rules"
local workflow = require "workflow"
local backups = require "reconcile.backups"
local metrics = require "engine.metrics"

local M = {}

local function call(ctx, opts, service, action, params)
  return pace.call(opts.pace, ctx.svc, service, action, params)
end

-- The copy the parameter points at: name, epoch | "none" (no parameter), nil | nil, err.
local function pointer(ctx, opts, cache, name)
  if cache[name] then return cache[name][1], cache[name][2] end
  local res, err = call(ctx, opts, "ssm", "GetParameter", { Name = name })
  local copy, at
  if res then
    local value = res.Parameter and res.Parameter.Value or ""
    copy = value:match(":table/([%w_.-]+)$") or value
    at = rules.start_from_name(copy)
  elseif type(err) == "table" and err.code == "ParameterNotFound" then
    copy = "none"
  else
    return nil, nil, err
  end
  cache[name] = { copy, at }
  return copy, at
end

local function tags_match(ctx, opts, arn, want)
  local have, token = {}, nil
  repeat
    local res, err = call(ctx, opts, "dynamodb", "ListTagsOfResource", { ResourceArn = arn, NextToken = token })
    if not res then return nil, err end
    for _, t in ipairs(res.Tags or {}) do have[t.Key] = t.Value end
    token = res.NextToken
  until not token
  for k, v in pairs(want) do
    if have[k] ~= v then return false end
  end
  return true
end

-- Is a workflow for this backup running here or in the journal? reason | nil
local function known(ctx, id)
  if workflow.find(ctx, id) then return "a workflow for this backup is running" end
  local row = ctx.store and ctx.store:get(id)
  if not row then return nil end
  if not row.finished then return "a workflow for this backup is in the journal (it resumes)" end
  if row.doc.Status == "Complete" then return "the journal has this backup's workflow Complete" end
  return ("the journal has this backup's workflow in %s (%s): it is retried when its notification "
    .. "is redelivered, or run `rotator redrive`"):format(tostring(row.doc.Status), tostring(row.doc.Error))
end

-- The row of one source table under its rule.
local function decide(ctx, opts, cache, rule, name)
  local row = { rule = rules.label(rule), source = name, pointer = "none", action = "none" }
  local arn
  if rule.select and rule.select.tags then
    local res, err = call(ctx, opts, "dynamodb", "DescribeTable", { TableName = name })
    if not res then row.action, row.reason = "error", "DescribeTable: " .. tostring(err) return row end
    arn = res.Table and res.Table.TableArn
    local ok, terr = tags_match(ctx, opts, arn, rule.select.tags)
    if ok == nil then row.action, row.reason = "error", "ListTagsOfResource: " .. tostring(terr) return row end
    if not ok then return nil end -- not selected: no row
  end
  local b, err = backups.newest(ctx, name, { pace = opts.pace, table_arn = arn })
  if err then row.action, row.reason = "error", tostring(err) return row end
  row.newest = b
  if not b then row.reason = "no completed backup" return row end
  row.id = b.id
  local rec = backups.record(b)
  local target, terr = rules.target_name(rule, rec)
  if not target then row.action, row.reason = "error", terr return row end
  row.target, row.rec = target, rec
  local behind
  if rule.ssm_parameter then
    local copy, at, perr = pointer(ctx, opts, cache, rule.ssm_parameter)
    if not copy then row.action, row.reason = "error", "GetParameter " .. rule.ssm_parameter .. ": " .. tostring(perr) return row end
    row.pointer, row.pointer_epoch = copy, at
    behind = not at or at < math.floor(b.start_epoch)
  else
    -- No pointer: the newest backup's copy exists, or it is owed.
    local res, derr = call(ctx, opts, "dynamodb", "DescribeTable", { TableName = target })
    if res then row.pointer = target
    elseif type(derr) == "table" and derr.code == "ResourceNotFoundException" then row.pointer = "missing"
    else row.action, row.reason = "error", "DescribeTable " .. target .. ": " .. tostring(derr) return row end
    behind = not res
  end
  if not behind then row.reason = "up to date" return row end
  local why = known(ctx, b.id)
  if why then row.reason = why return row end
  row.action, row.reason = "restore", "pointer behind the newest backup"
  return row
end

function M.run(ctx, opts)
  opts = opts or {}
  local t0 = clock.mono()
  local list = ctx.rules()
  local summary = { tables = 0, matched = 0, stale = 0, started = 0, errors = 0, workflows = {} }
  if opts.rule then
    local found = false
    for _, r in ipairs(list) do if rules.label(r) == opts.rule then found = true end end
    if not found then return nil, ("no rule named %q (rotator check lists the rules)"):format(opts.rule), "usage" end
  end
  local cache, start = {}, nil
  repeat
    local res, err = call(ctx, opts, "dynamodb", "ListTables", { ExclusiveStartTableName = start })
    if not res then return nil, "ListTables: " .. tostring(err) end
    for _, name in ipairs(res.TableNames or {}) do
      if opts.stopped and opts.stopped() then summary.stopped = true break end
      summary.tables = summary.tables + 1
      local rule = rules.match(list, name)
      if rule and (not opts.rule or rules.label(rule) == opts.rule) then
        local row = decide(ctx, opts, cache, rule, name)
        -- a stop or a reload may have begun during the reads: start nothing then
        if row and row.action == "restore" and not opts.plan_only and opts.stopped and opts.stopped() then
          summary.stopped = true
          break
        end
        if row then
          summary.matched = summary.matched + 1
          if row.action == "error" then
            summary.errors = summary.errors + 1
            log.error("reconcile.error", { rule = row.rule, table = name, error = row.reason,
              next = "check the permissions in the README's IAM policy; the next run tries again" })
          elseif row.action == "restore" then
            summary.stale = summary.stale + 1
            if not opts.plan_only then metrics.inc("rotator_reconcile_stale_total", { rule = row.rule }) end
            log.warn("reconcile.stale", { rule = row.rule, table = name, pointer = row.pointer, workflow = row.id,
              backup = row.newest.arn, backup_time = row.newest.start_time, target = row.target,
              result = opts.plan_only and "planned (dry run)" or "restoring" })
            if not opts.plan_only then
              local wf = workflow.start(row.rec, rule, ctx)
              summary.started = summary.started + 1
              summary.workflows[#summary.workflows + 1] = wf
              if opts.on_start then opts.on_start(wf, row) end
            end
          end
          if opts.on_row then opts.on_row(row) end
        end
      end
    end
    start = not summary.stopped and res.LastEvaluatedTableName or nil
  until not start
  summary.seconds = math.floor((clock.mono() - t0) * 1000 + 0.5) / 1000
  log.info("reconcile.done", { tables = summary.tables, matched = summary.matched, stale = summary.stale,
    started = summary.started, errors = summary.errors, seconds = summary.seconds,
    calls = opts.pace and opts.pace.taken or nil, dry_run = opts.plan_only or nil, stopped = summary.stopped })
  return summary
end

-- One plan line: rule, source, the pointer's copy, the newest backup, the action.
function M.row_text(row)
  local b = row.newest
  local newest = b and ("%s (%s %s)"):format(clock.rfc3339(math.floor(b.start_epoch)), b.job_id and "job" or "backup",
    b.job_id or b.arn) or "none"
  local action = row.action
  if action == "restore" then action = "restore -> " .. row.target end
  return ("rule=%s source=%s pointer=%s newest=%s action=%s reason=%q"):format(row.rule, row.source,
    row.pointer, newest, action, row.reason or "")
end

return M
