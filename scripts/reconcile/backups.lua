-- The newest completed backup of a table, from both places a DynamoDB backup lives:
--   * DynamoDB's own backups: ListBackups (TableName, BackupType; paginated by
--     ExclusiveStartBackupArn), BackupStatus AVAILABLE;
--   * AWS Backup recovery points: ListRecoveryPointsByResource (paginated by NextToken),
--     Status COMPLETED; the backup job id (the workflow id a notification carries) comes
--     from ListBackupJobs (ByResourceArn, ByState COMPLETED) matched on RecoveryPointArn.
-- Pages are read one at a time and only the best candidate so far is kept, so a table with
-- thousands of backups costs one page of memory.
--
--   local backups = require "reconcile.backups"
--   local b, err = backups.newest(ctx, "orders-production", { pace = bucket })
--   -- b = { arn, kind = "dynamodb"|"backup", start_epoch, start_time (RFC 3339),
--   --       table_name, table_arn, job_id (nil for a plain DynamoDB backup),
--   --       id (the workflow id: job id, else the backup ARN), pages, seen }
--   -- nil, nil: no completed backup; nil, err: a read failed (err names the call)
-- ctx: { svc } (services.lua). opts: { pace (a reconcile.pace bucket, optional),
--   table_arn (saves a DescribeTable when a name is given), backup_type ("USER": what
--   ListBackups lists; AWS Backup's own are read as recovery points), sources = { dynamodb
--   = bool, backup = bool } (both by default), same_within (seconds, default 120: a
--   DynamoDB backup and a recovery point this close are one backup seen twice, and the
--   recovery point, which has a job id, wins) }.
-- Also: backups.record(b) -> the notification record (workflow/notification.lua's shape)
-- a workflow is started from.
local clock = require "clock"
local pace = require "reconcile.pace"
local N = require "workflow.notification"

local M = {}

local function call(ctx, opts, service, action, params)
  return pace.call(opts.pace, ctx.svc, service, action, params)
end

local function epoch_of(v)
  if type(v) == "number" then return v end
  if type(v) == "string" then return tonumber(v) or clock.parse_rfc3339(v) end
end

-- Is a better than b? Newer wins; within same_within, a recovery point wins.
local function better(a, b, same_within)
  if not b then return true end
  if math.abs(a.start_epoch - b.start_epoch) <= same_within and a.kind ~= b.kind then
    return a.kind == "backup"
  end
  return a.start_epoch > b.start_epoch
end

local function table_arn(ctx, opts, name)
  if opts.table_arn then return opts.table_arn end
  local res, err = call(ctx, opts, "dynamodb", "DescribeTable", { TableName = name })
  if not res then return nil, err end
  return res.Table and res.Table.TableArn
end

-- The two lists, page by page (M.each below).
local function each_dynamodb(ctx, opts, name, out, keep)
  local start
  repeat
    local res, err = call(ctx, opts, "dynamodb", "ListBackups", { TableName = name,
      BackupType = opts.backup_type or "USER", TimeRangeLowerBound = opts.lower,
      ExclusiveStartBackupArn = start, Limit = opts.page })
    if not res then return nil, err, "ListBackups" end
    out.pages = out.pages + 1
    for _, s in ipairs(res.BackupSummaries or {}) do
      out.seen = out.seen + 1
      local at = epoch_of(s.BackupCreationDateTime)
      if s.BackupStatus == "AVAILABLE" and at and (not opts.lower or at >= opts.lower) then
        keep({ arn = s.BackupArn, kind = "dynamodb", start_epoch = at, table_arn = s.TableArn })
      end
    end
    start = res.LastEvaluatedBackupArn
  until not start
  return true
end

local function each_backup(ctx, opts, arn, out, keep)
  local token
  repeat
    local res, err = call(ctx, opts, "backup", "ListRecoveryPointsByResource",
      { ResourceArn = arn, NextToken = token, MaxResults = opts.page })
    if not res then return nil, err, "ListRecoveryPointsByResource" end
    out.pages = out.pages + 1
    for _, rp in ipairs(res.RecoveryPoints or {}) do
      out.seen = out.seen + 1
      local at = epoch_of(rp.CreationDate)
      if rp.Status == "COMPLETED" and at and (not opts.lower or at >= opts.lower) then
        keep({ arn = rp.RecoveryPointArn, kind = "backup", start_epoch = at, table_arn = arn })
      end
    end
    token = res.NextToken
  until not token or token == ""
  return true
end

-- Every completed backup of table `name` (ARN `arn`, needed for AWS Backup's list; without
-- it only DynamoDB's own backups are read), page by page: keep(b) sees each
-- { arn, kind = "dynamodb"|"backup", start_epoch, table_arn }. opts: pace, backup_type
-- (ListBackups' BackupType, default "USER"), lower (epoch: only backups made since),
-- page (page size), sources ({ dynamodb =, backup = }, both by default), out ({ pages,
-- seen } counters). Returns true, or nil, err, the call that failed.
function M.each(ctx, name, arn, opts, keep)
  local sources = opts.sources or { dynamodb = true, backup = true }
  local out = opts.out or { pages = 0, seen = 0 }
  if sources.dynamodb then
    local ok, err, action = each_dynamodb(ctx, opts, name, out, keep)
    if not ok then return nil, err, action end
  end
  if sources.backup and arn then
    local ok, err, action = each_backup(ctx, opts, arn, out, keep)
    if not ok then return nil, err, action end
  end
  return true
end

local function newest_of(ctx, opts, name, arn, out, kind)
  local best
  local ok, err = M.each(ctx, name, arn, { pace = opts.pace, backup_type = opts.backup_type, out = out,
    sources = { dynamodb = kind == "dynamodb", backup = kind == "backup" } }, function(b)
    if not best or b.start_epoch > best.start_epoch then best = b end
  end)
  if not ok then return nil, err end
  return best
end

-- The backup job that made a recovery point (jobs created from a minute before the
-- point on): its id and creation time (the StartTime its notification carries), or nil.
function M.job_id(ctx, table_arn_value, rp_arn, since_epoch, opts)
  opts = opts or {}
  local token
  repeat
    local res, err = call(ctx, opts, "backup", "ListBackupJobs", { ByResourceArn = table_arn_value,
      ByState = "COMPLETED", ByCreatedAfter = since_epoch and clock.rfc3339(math.floor(since_epoch) - 60) or nil,
      NextToken = token })
    if not res then return nil, err end
    for _, j in ipairs(res.BackupJobs or {}) do
      if j.RecoveryPointArn == rp_arn then return j.BackupJobId, epoch_of(j.CreationDate) end
    end
    token = res.NextToken
  until not token or token == ""
  return nil
end

function M.newest(ctx, table_arn_or_name, opts)
  opts = opts or {}
  local sources = opts.sources or { dynamodb = true, backup = true }
  local name = N.table_name(table_arn_or_name) or table_arn_or_name
  local arn = N.table_name(table_arn_or_name) and table_arn_or_name or opts.table_arn
  local out = { pages = 0, seen = 0 }
  local best
  if sources.dynamodb then
    local b, err = newest_of(ctx, opts, name, nil, out, "dynamodb")
    if err then return nil, err end
    best = b
    arn = arn or (b and b.table_arn)
  end
  if sources.backup then
    if not arn then
      local a, err = table_arn(ctx, opts, name)
      if not a then return nil, err or ("DescribeTable of " .. name .. " gave no TableArn") end
      arn = a
    end
    local b, err = newest_of(ctx, opts, name, arn, out, "backup")
    if err then return nil, err end
    if b and better(b, best, opts.same_within or 120) then best = b end
  end
  if not best then return nil, nil end
  best.table_name, best.table_arn = name, best.table_arn or arn
  best.pages, best.seen = out.pages, out.seen
  if best.kind == "backup" or best.arn:match("^arn:[%w-]+:backup:") then
    local id, at = M.job_id(ctx, best.table_arn, best.arn, best.start_epoch, opts)
    if not id and at then return nil, at end
    -- the notification names the copy after the job's start: so does reconcile
    best.job_id, best.start_epoch = id, id and at or best.start_epoch
  end
  best.id = best.job_id or best.arn
  best.start_time = clock.rfc3339(best.start_epoch)
  return best
end

-- The record a notification of that backup would have produced.
function M.record(b)
  return {
    backup_job_id = b.id, recovery_point_arn = b.arn, resource_arn = b.table_arn,
    table_name = b.table_name, start_time = b.start_time, start_epoch = b.start_epoch,
    restore_via = b.arn:match("^arn:[%w-]+:backup:") and N.RESTORE_BACKUP or N.RESTORE_DYNAMODB,
    state = "COMPLETED", notes = {}, reconciled = true,
  }
end

return M
