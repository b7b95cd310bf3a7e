-- Post-restore settings, once the restored table is ACTIVE and before the SSM parameter
-- switches. RestoreTableFromBackup carries no TTL, tags, PITR or deletion protection over,
-- so a rule re-applies them; each is a step in the workflow history:
--   Tag Table              always: rotator:source, rotator:backup-job, rotator:rule (what
--                          retention trusts) plus rule.tags
--   Copy TTL               rule.copy_ttl = true: DescribeTimeToLive on the source, then
--                          UpdateTimeToLive on the copy (skipped when already equal)
--   Point-in-time Recovery rule.pitr = true|false: UpdateContinuousBackups
--   Copy Stream, Copy Contributor Insights, Copy Auto Scaling
--                          rule.carry_over (carry_over.lua): what no restore carries over
--   Validate Restore       rule.validation (validation.lua)
--   Deletion Protection    rule.deletion_protection = true|false: UpdateTable (last, so a
--                          copy that failed validation stays deletable by retention)
--   Copy Resource Policy   rule.carry_over "resource_policy" (carry_over.lua), last: a
--                          policy that narrows access cannot lock the steps before it out
--   M.after_active(ctx, doc, rule, rec)   returns, or raises the step's failure (doc.fail)
-- A failed step fails the workflow (SSM not switched; a redelivery re-applies them all:
-- every step is idempotent); the workflow records the Error and publishes the one alert.
local log = require "log"
local H = require "workflow.doc"
local retention = require "after.retention"
local validation = require "after.validation"
local carry_over = require "after.carry_over"

local M = {}

-- Validator for the rule fields (called from rules.validate): nil or a message.
function M.validate_rule(rule)
  local msg = carry_over.validate_rule(rule)
  if msg then return msg end
  if rule.tags ~= nil then
    for k, v in pairs(rule.tags) do
      if type(k) ~= "string" or type(v) ~= "string" then return "tags must map strings to strings" end
      if k:sub(1, 8) == "rotator:" then return ("tags: '%s' is reserved (rotator:* tags are Rotator's)"):format(k) end
      if k:sub(1, 4) == "aws:" then return ("tags: '%s' is reserved by AWS"):format(k) end
    end
  end
end

local function tags_for(doc, rule)
  local list = {
    { Key = retention.TAG_SOURCE, Value = doc.SourceTableName },
    { Key = retention.TAG_JOB, Value = doc.BackupJobId },
    { Key = retention.TAG_RULE, Value = doc.Rule },
  }
  if not rule.tags then return list end
  local extra = {}
  for k in pairs(rule.tags) do extra[#extra + 1] = k end
  table.sort(extra)
  for _, k in ipairs(extra) do list[#list + 1] = { Key = k, Value = rule.tags[k] } end
  return list
end

-- Each setter: ctx, doc, rule, s -> true | nil, err. s is the step (for notes).
local function tag_table(ctx, doc, rule, s)
  local tags = tags_for(doc, rule)
  local res, rid = ctx.svc:call("dynamodb", "TagResource", { ResourceArn = doc.TableArn, Tags = tags })
  if not res then return nil, rid end
  s.Tags = #tags
  return true, rid
end

local function ttl_of(ctx, name)
  local res, err = ctx.svc:call("dynamodb", "DescribeTimeToLive", { TableName = name })
  if not res then return nil, err end
  return res.TimeToLiveDescription or {}, err
end

local function copy_ttl(ctx, doc, _, s)
  local src, err = ttl_of(ctx, doc.SourceTableName)
  if not src then
    if H.code(err) == "DryRunOffline" then s.Skipped = "offline dry run: source TTL unknown" return true end
    return nil, err
  end
  local on = src.TimeToLiveStatus == "ENABLED" or src.TimeToLiveStatus == "ENABLING"
  if not on then s.Skipped = "source has no TTL" return true end
  s.AttributeName = src.AttributeName
  if not ctx.dry_run then
    local cur, cerr = ttl_of(ctx, doc.TargetTableName)
    if not cur then return nil, cerr end
    if (cur.TimeToLiveStatus == "ENABLED" or cur.TimeToLiveStatus == "ENABLING") and cur.AttributeName == src.AttributeName then
      s.Skipped = "already set"
      return true
    end
  end
  local res, rid = ctx.svc:call("dynamodb", "UpdateTimeToLive", { TableName = doc.TargetTableName,
    TimeToLiveSpecification = { Enabled = true, AttributeName = src.AttributeName } })
  if not res then return nil, rid end
  return true, rid
end

local function set_pitr(ctx, doc, rule)
  local res, rid = ctx.svc:call("dynamodb", "UpdateContinuousBackups", { TableName = doc.TargetTableName,
    PointInTimeRecoverySpecification = { PointInTimeRecoveryEnabled = rule.pitr } })
  if not res then return nil, rid end
  return true, rid
end

local function set_protection(ctx, doc, rule, s)
  local t = doc.DescribeTableOutput and doc.DescribeTableOutput.Table
  if t and (t.DeletionProtectionEnabled or false) == rule.deletion_protection then
    s.Skipped = "already " .. tostring(rule.deletion_protection)
    return true
  end
  local res, rid = ctx.svc:call("dynamodb", "UpdateTable", { TableName = doc.TargetTableName,
    DeletionProtectionEnabled = rule.deletion_protection })
  if not res then return nil, rid end
  return true, rid
end

local function run_step(ctx, doc, rule, state, fn, rec)
  local s = H.step(doc, state)
  local ok, rid = fn(ctx, doc, rule, s, rec)
  if not ok then
    H.done(s, H.rid(rid), rid)
    return nil, ("%s failed on %s: %s"):format(state, tostring(doc.TargetTableName), tostring(rid)), H.rid(rid)
  end
  H.done(s, rid ~= "dry-run" and rid or nil)
  if log.enabled("info") then
    log.info("post_restore.applied", H.fields(doc, { step = state, request_id = s.RequestId,
      skipped = s.Skipped, dry_run = ctx.dry_run or nil }))
  end
  return true
end

local TAG, TTL, PITR = { "Tag Table", tag_table }, { "Copy TTL", copy_ttl }, { "Point-in-time Recovery", set_pitr }
local VALIDATE, PROTECTION = { "Validate Restore", validation.step }, { "Deletion Protection", set_protection }

local function steps(rule)
  local list = { TAG }
  if rule.copy_ttl then list[#list + 1] = TTL end
  if rule.pitr ~= nil then list[#list + 1] = PITR end
  -- (carry_over's step lists share a memo of one run: built only for a rule that has them)
  local carry = rule.carry_over ~= nil and next(rule.carry_over) ~= nil
  local carried, memo
  if carry then
    carried, memo = carry_over.steps_before_validation(rule)
    table.move(carried, 1, #carried, #list + 1, list)
  end
  list[#list + 1] = VALIDATE
  if rule.deletion_protection ~= nil then list[#list + 1] = PROTECTION end
  if carry then
    local last = carry_over.steps_last(rule, memo)
    table.move(last, 1, #last, #list + 1, list)
  end
  return list
end

-- Call site: table ACTIVE, SSM not yet switched.
function M.after_active(ctx, doc, rule, rec)
  for _, st in ipairs(steps(rule)) do
    local ok, msg, rid = run_step(ctx, doc, rule, st[1], st[2], rec)
    if not ok then
      log.error("post_restore.failed", H.fields(doc, { step = st[1], error = msg, request_id = rid }))
      H.fail(msg, rid)
    end
  end
end

return M
