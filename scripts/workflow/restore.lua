-- Restore Backup: RestoreTableFromBackup (DynamoDB backups) or StartRestoreJob (AWS
-- Backup-managed recovery points: the point and its table confirmed first by
-- recovery_point.lua; Metadata targetTableName and the rule's encryption; IdempotencyToken
-- from the workflow id and attempt, so a redelivery or a restart gets the same job back;
-- CopySourceTagsToRestoredResource with rule.copy_source_tags). A crash between the
-- call and its record is harmless: the resumed step calls again, gets
-- TableAlreadyExistsException, and finds the table restored from this job's recovery
-- point (DescribeTable RestoreSummary) -> ours. LimitExceededException puts the workflow
-- back in the queue with a minutes-scale backoff that survives reloads.
--   M.step(ctx, wf, admission) -> delay | nil
local log = require "log"
local clock = require "clock"
local rules = require "policy.rules"
local N = require "workflow.notification"
local config = require "workflow.config"
local D = require "workflow.doc"
local S = require "workflow.step"
local recovery_point = require "workflow.recovery_point"

local M = {}

local function restore_params(wf, target)
  local rec, rule = wf.doc.Record, wf.rule
  -- (what a restore hook is called with: built only for a rule that has one)
  local overrides, err = rules.restore_overrides(rule, type(rule.restore) == "function" and
    { table_name = rec.table_name, target = target, backup_job_id = rec.backup_job_id } or nil)
  if not overrides then D.fail(err) end
  local p = { TargetTableName = target, BackupArn = rec.recovery_point_arn }
  for k, v in pairs(overrides) do p[k] = v end
  return p
end

-- Is an existing table of that name restored from our recovery point? true, desc | false, why
local function ours(ctx, wf, target)
  local res, rid = S.call(ctx, wf, nil, "dynamodb", "DescribeTable", { TableName = target })
  if not res then return nil, "DescribeTable failed: " .. tostring(rid) end
  local t = res.Table or {}
  local src = t.RestoreSummary and t.RestoreSummary.SourceBackupArn
  if src == wf.doc.RecoveryPointArn then return true, t, rid end
  return false, ("table %s already exists and was not restored from this backup (its source: %s)")
    :format(target, tostring(src or "not a restore"))
end

local function requeue(ctx, wf, err)
  local doc, c = wf.doc, config.values
  if S.past_deadline(doc) then D.fail("gave up after LimitExceededException until the deadline: " .. tostring(err)) end
  doc.LimitRetries = (doc.LimitRetries or 0) + 1
  local wait = math.min(c.limit_backoff * 2 ^ (doc.LimitRetries - 1), c.limit_backoff_max)
  doc.RetryAt = clock.now() + wait
  S.record(ctx, wf, "Restore Requeued")
  log.warn("restore.requeued", D.fields(doc, { reason = tostring(err), retry_in = wait, request_id = D.rid(err) }))
end

-- The end of a restore call that failed: back in the queue on LimitExceeded, else fail.
local function refused(ctx, wf, action, err)
  if D.code(err) == "LimitExceededException" then return requeue(ctx, wf, err) end
  D.fail(action .. " failed: " .. tostring(err), D.rid(err))
end

local function started(ctx, wf, what)
  local doc = wf.doc
  doc.Phase = (doc.SSMParameterName or doc.WaitForActive) and "Wait for Restore" or "Complete"
  if ctx.dry_run and doc.Phase == "Wait for Restore" then doc.Phase = "Restore Complete" end
  doc.NextPollAt = clock.now() + config.values.first_poll
  doc.PollInterval = config.values.first_poll
  doc.RestoreStartedAt = doc.RestoreStartedAt or clock.now()
  doc.RetryAt = nil
  S.record(ctx, wf, what)
  doc._durable_poll = doc.NextPollAt -- journaled: the first wait may be held dormant (driver.lua)
end

local function already_started(ctx, wf, err)
  local doc = wf.doc
  local mine, t, drid = ours(ctx, wf, doc.TargetTableName)
  if not mine then D.fail(t or ("table %s exists"):format(doc.TargetTableName), D.rid(err)) end
  doc.TableArn = t.TableArn
  doc.DescribeTableOutput = { Table = t }
  started(ctx, wf, "Restore Already Started")
  log.info("restore.already_started", D.fields(doc, { request_id = drid, status = t.TableStatus,
    reason = "table exists, restored from this backup (redelivery or restart)" }))
end

local function restore_dynamodb(ctx, wf)
  local doc = wf.doc
  local s = D.step(doc, "Restore Backup")
  local res, rid = S.call(ctx, wf, s, "dynamodb", "RestoreTableFromBackup", restore_params(wf, doc.TargetTableName))
  if not res then
    if D.code(rid) == "TableAlreadyExistsException" then return already_started(ctx, wf, rid) end
    return refused(ctx, wf, "RestoreTableFromBackup", rid)
  end
  D.done(s, rid)
  doc.RestoreTableFromBackupOutput = res
  doc.TableArn = res.TableDescription and res.TableDescription.TableArn
  started(ctx, wf, "Restore Started")
  if log.enabled("info") then
    log.info("restore.started", D.fields(doc, { request_id = rid, backup = doc.RecoveryPointArn }))
  end
end

-- StartRestoreJob's DynamoDB Metadata from the rule: targetTableName, and the encryption
-- of rule.restore.SSESpecificationOverride (KMS + key ARN, or AWS's default key). The
-- other RestoreTableFromBackup overrides have no StartRestoreJob equivalent: refused.
local function restore_metadata(wf, target)
  local rec, rule = wf.doc.Record, wf.rule
  local overrides, err = rules.restore_overrides(rule, { table_name = rec.table_name, target = target,
    backup_job_id = rec.backup_job_id })
  if not overrides then D.fail(err) end
  local meta = { targetTableName = target }
  for k, v in pairs(overrides) do
    if k ~= "SSESpecificationOverride" then
      D.fail(("rule %s: restore override %s has no StartRestoreJob equivalent (recovery point %s is AWS "
        .. "Backup-managed); remove it, or set the table up in after_active"):format(rules.label(rule), k,
        rec.recovery_point_arn))
    end
    if type(v) ~= "table" then D.fail(("rule %s: SSESpecificationOverride must be a table"):format(rules.label(rule))) end
    if v.Enabled == false or (v.SSEType ~= nil and v.SSEType ~= "KMS") then
      meta.encryptionType = "Default"
    else
      local key = v.KMSMasterKeyId
      if type(key) ~= "string" or not key:match("^arn:") then
        D.fail(("rule %s: SSESpecificationOverride.KMSMasterKeyId must be a KMS key ARN for StartRestoreJob "
          .. "(kmsMasterKeyArn), got %s"):format(rules.label(rule), tostring(key)))
      end
      meta.encryptionType, meta.kmsMasterKeyArn = "KMS", key
    end
  end
  return meta
end

-- Same workflow, same attempt -> same token -> the same restore job (redelivery, restart,
-- a crash between the call and its journal record). A retry after a failed attempt is a
-- new attempt and gets a new job.
function M.idempotency_token(doc)
  return ("rotator-%s-%d"):format(doc.WorkflowId, doc.Attempt or 1)
end

local function restore_backup_job(ctx, wf)
  local doc, rule, rec = wf.doc, wf.rule, wf.doc.Record
  if not rule.iam_role_arn then
    D.fail(("recovery point %s is AWS Backup-managed: rule %s needs iam_role_arn for StartRestoreJob")
      :format(rec.recovery_point_arn, rules.label(rule)))
  end
  local point = recovery_point.resolve(ctx, wf)
  local params = {
    RecoveryPointArn = point.Arn, IamRoleArn = rule.iam_role_arn,
    IdempotencyToken = M.idempotency_token(doc), ResourceType = "DynamoDB",
    Metadata = restore_metadata(wf, doc.TargetTableName),
    CopySourceTagsToRestoredResource = rule.copy_source_tags or nil,
  }
  local s = D.step(doc, "Restore Backup")
  local res, rid = S.call(ctx, wf, s, "backup", "StartRestoreJob", params)
  if not res then
    if D.code(rid) == "AccessDeniedException" then
      D.fail(("StartRestoreJob failed: %s (grant the action named there to Rotator's identity; "
        .. "StartRestoreJob needs backup:StartRestoreJob on the recovery point and iam:PassRole on %s)")
        :format(tostring(rid), rule.iam_role_arn), D.rid(rid))
    end
    return refused(ctx, wf, "StartRestoreJob", rid)
  end
  D.done(s, rid)
  doc.StartRestoreJobOutput = res
  doc.RestoreJobId = res.RestoreJobId
  doc.RestoreJobCompleted = nil
  local _, region, account = N.arn_parts(point.SourceArn)
  local partition = N.arn_parts(point.Arn)
  doc.TableArn = ("arn:%s:dynamodb:%s:%s:table/%s"):format(partition or "aws", region or "", account or "",
    doc.TargetTableName)
  started(ctx, wf, "Restore Started")
  log.info("restore.started", D.fields(doc, { request_id = rid, restore_job = res.RestoreJobId,
    backup = point.Arn }))
end

function M.step(ctx, wf, admission)
  local doc = wf.doc
  if doc.RetryAt and doc.RetryAt > clock.now() then return doc.RetryAt - clock.now() end
  if not wf.paced then
    wf.paced = true
    local d = ctx.dry_run and 0 or admission:pace_delay(clock.mono())
    if d > 0 then return d end
  end
  wf.paced = nil
  if doc.Record.restore_via == N.RESTORE_BACKUP then
    restore_backup_job(ctx, wf)
  else
    restore_dynamodb(ctx, wf)
  end
end

return M
