-- Describe Recovery Point: before StartRestoreJob, what AWS Backup itself says about the
-- job a notification names, rather than the message's prose alone.
--   backup job:  DescribeBackupJob  -> State, RecoveryPointArn, BackupVaultName, ResourceArn
--   copy job:    DescribeCopyJob    -> State, DestinationRecoveryPointArn,
--                                      DestinationBackupVaultArn, ResourceArn
--   then         DescribeRecoveryPoint(vault, point) -> Status, ResourceArn, ResourceType
-- A record made from AWS Backup's own listing (a scheduled restore test, a reconciled
-- point without a backup job) has no job to describe: its point is used as listed.
-- AWS's answer wins over the prose. The prose is the fallback when a read is not permitted
-- (AccessDenied: a policy without the Describe actions), fails transiently after the
-- client's own retries (throttling, 5xx, timeouts), or is not made (offline dry run);
-- each fallback is logged with its reason. A permanent answer that contradicts the
-- notification fails the workflow before anything is restored: the job or point does not
-- exist here, the job is not COMPLETED, the point is not COMPLETED, or it holds another
-- table than the notification named (the rule was matched on that name).
-- A rule with assume_role_arn describes the job with the daemon's own credentials (the job
-- belongs to the account whose vault notified the daemon: a copy job runs in the source
-- account) and the recovery point, which sits in the role's account, with the role's.
--   M.resolve(ctx, wf)  fills doc.RecoveryPoint = { Arn, Vault, SourceArn, From } (journaled)
local log = require "log"
local D = require "workflow.doc"
local S = require "workflow.step"
local N = require "workflow.notification"

local M = {}

local FALLBACK_CODES = {
  AccessDeniedException = true, AccessDenied = true, UnauthorizedOperation = true,
  DryRunOffline = true,
}

local function fallback_ok(err)
  return type(err) == "table" and (FALLBACK_CODES[err.code] or err.retryable == true)
end

-- A read that may fall back to the prose: res | nil (fallback logged) ; raises otherwise.
local function read(ctx, wf, action, params, what)
  local doc = wf.doc
  local s = D.step(doc, action)
  local res, rid = S.call(ctx, wf, s, "backup", action, params)
  if res then D.done(s, rid) return res, rid end
  if fallback_ok(rid) then
    s.Fallback = "notification text"
    -- an offline dry run never reads: expected, not a warning
    log[D.code(rid) == "DryRunOffline" and "info" or "warn"]("recovery_point.prose_fallback", D.fields(doc, { call = "backup." .. action, error = tostring(rid),
      request_id = D.rid(rid), reason = "using the notification's text for " .. what }))
    return nil
  end
  D.fail(("%s of %s failed: %s (the notification names something AWS Backup does not confirm; "
    .. "check the account and Region Rotator runs in)"):format(action, what, tostring(rid)), D.rid(rid))
end

local function vault_of(arn)
  return type(arn) == "string" and arn:match(":backup%-vault:([^:/]+)$") or nil
end

-- How each job kind is described: the call, its id parameter, where the job sits in the
-- answer, and the answer's recovery point and vault fields.
local JOBS = {
  BACKUP_JOB = { action = "DescribeBackupJob", id = "BackupJobId", what = "backup job",
    job = function(res) return res end, point = "RecoveryPointArn", vault = "BackupVaultArn" },
  COPY_JOB = { action = "DescribeCopyJob", id = "CopyJobId", what = "copy job",
    job = function(res) return res.CopyJob end, point = "DestinationRecoveryPointArn",
    vault = "DestinationBackupVaultArn" },
}

local function describe_job(ctx, wf, point)
  if ctx.own_svc then ctx = setmetatable({ svc = ctx.own_svc }, { __index = ctx, __newindex = ctx }) end
  local rec = wf.doc.Record
  -- A scheduled restore test, or a reconciled point with no backup job found, took its
  -- recovery point from AWS Backup's own listing: there is no job to describe.
  if rec.scheduled or (rec.reconciled and rec.backup_job_id == rec.recovery_point_arn) then
    point.From = "listing"
    return
  end
  local kind = JOBS[rec.job_type or "BACKUP_JOB"] or JOBS.BACKUP_JOB
  local id = rec.copy_job_id or rec.backup_job_id
  local res, rid = read(ctx, wf, kind.action, { [kind.id] = id }, kind.what .. " " .. tostring(id))
  local job = res and kind.job(res)
  if not job then return end
  if job.State ~= "COMPLETED" then
    D.fail(("%s %s is %s, not COMPLETED: %s"):format(kind.what, id, tostring(job.State),
      tostring(job.StatusMessage or "no status message")), rid)
  end
  point.Arn = job[kind.point] or point.Arn
  point.Vault = vault_of(job[kind.vault])
  point.SourceArn = job.ResourceArn or point.SourceArn
  point.From = kind.action
end

function M.resolve(ctx, wf)
  local doc, rec = wf.doc, wf.doc.Record
  if doc.RecoveryPoint then return doc.RecoveryPoint end
  local point = { Arn = rec.recovery_point_arn, SourceArn = rec.resource_arn, From = "notification" }
  describe_job(ctx, wf, point)
  if point.Vault then
    local rp, rid = read(ctx, wf, "DescribeRecoveryPoint", { BackupVaultName = point.Vault,
      RecoveryPointArn = point.Arn }, "recovery point " .. tostring(point.Arn))
    if rp then
      if rp.Status and rp.Status ~= "COMPLETED" then
        D.fail(("recovery point %s is %s, not COMPLETED: %s"):format(point.Arn, rp.Status,
          tostring(rp.StatusMessage or "no status message")), rid)
      end
      point.SourceArn = rp.ResourceArn or point.SourceArn
      point.From = point.From .. "+DescribeRecoveryPoint"
    end
  end
  local table_name = N.table_name(point.SourceArn)
  if table_name ~= rec.table_name then
    D.fail(("recovery point %s holds %s, not the table %s the notification named (the rule matched %s); "
      .. "nothing restored"):format(tostring(point.Arn), tostring(point.SourceArn), tostring(rec.table_name),
      tostring(rec.table_name)))
  end
  if point.Arn ~= doc.RecoveryPointArn then
    log.warn("recovery_point.differs", D.fields(doc, { notification = doc.RecoveryPointArn, aws = point.Arn,
      reason = "AWS Backup's answer wins over the notification text" }))
    doc.RecoveryPointArn = point.Arn
  end
  doc.RecoveryPoint = point
  S.record(ctx, wf, "Recovery Point Described")
  log.info("recovery_point.described", D.fields(doc, { recovery_point = point.Arn, vault = point.Vault,
    source_arn = point.SourceArn, from = point.From }))
  return point
end

return M
