-- Wait for Restore / Check Restore Status: sleep until doc.NextPollAt, then DescribeTable
-- (and DescribeRestoreJob for AWS Backup restore jobs) until the table is ACTIVE, backing
-- off from config.first_poll to config.max_poll, within config.deadline.
--   M.step(ctx, wf) -> delay | nil
local log = require "log"
local clock = require "clock"
local config = require "workflow.config"
local D = require "workflow.doc"
local S = require "workflow.step"
local metrics = require "engine.metrics"

local M = {}

local function next_poll(ctx, wf, what)
  local doc, c = wf.doc, config.values
  doc.PollInterval = math.min((doc.PollInterval or c.first_poll) * c.poll_factor, c.max_poll)
  doc.NextPollAt = clock.now() + doc.PollInterval
  S.record(ctx, wf, what)
  doc._durable_poll = doc.NextPollAt -- journaled: the sleep may be held dormant (driver.lua)
end

local function retryable(err) return type(err) == "table" and err.retryable end

local function check_restore_job(ctx, wf, s)
  local doc = wf.doc
  local res, rid = S.call(ctx, wf, s, "backup", "DescribeRestoreJob", { RestoreJobId = doc.RestoreJobId })
  if not res then
    if not retryable(rid) then D.fail("DescribeRestoreJob failed: " .. tostring(rid)) end
    return next_poll(ctx, wf, "Check Restore Status")
  end
  D.done(s, rid)
  doc.DescribeRestoreJobOutput = res
  s.RestoreJobStatus = res.Status
  log.info("restore_job.status", D.fields(doc, { restore_job = doc.RestoreJobId, status = res.Status,
    percent_done = res.PercentDone, request_id = rid }))
  if res.Status == "COMPLETED" then
    if res.CreatedResourceArn then doc.TableArn = res.CreatedResourceArn end
    doc.RestoreJobCompleted = true
  elseif res.Status ~= "PENDING" and res.Status ~= "RUNNING" and res.Status ~= "CREATED" then
    D.fail(("restore job %s is %s: %s (AWS Backup's StatusMessage; see the job in the AWS Backup console, "
      .. "fix the cause, then redrive the message)"):format(doc.RestoreJobId, tostring(res.Status),
      tostring(res.StatusMessage or "no status message")), rid)
  end
  next_poll(ctx, wf, "Check Restore Status")
end

local function check_table(ctx, wf, s)
  local doc = wf.doc
  local res, rid = S.call(ctx, wf, s, "dynamodb", "DescribeTable", { TableName = doc.TargetTableName })
  if not res then
    -- A just-started restore may not be visible yet; throttling and 5xx are transient.
    if not (D.code(rid) == "ResourceNotFoundException" or retryable(rid)) then
      D.fail("DescribeTable failed: " .. tostring(rid), D.rid(rid))
    end
    log.warn("restore.status_unavailable", D.fields(doc, { reason = tostring(rid), request_id = D.rid(rid) }))
    return next_poll(ctx, wf, "Check Restore Status")
  end
  D.done(s, rid)
  doc.DescribeTableOutput = res
  local status = res.Table and res.Table.TableStatus
  s.TableStatus = status
  log.info("restore.status", D.fields(doc, { status = status, request_id = rid }))
  if status == "ACTIVE" then
    doc.TableArn = res.Table.TableArn or doc.TableArn
    doc.Phase = "Restore Complete"
    S.record(ctx, wf, "Restore Complete")
    if doc.RestoreStartedAt and not ctx.dry_run then
      metrics.observe("rotator_restore_duration_seconds", { rule = tostring(doc.Rule) }, clock.now() - doc.RestoreStartedAt)
    end
    log.info("restore.complete", D.fields(doc, { table_arn = doc.TableArn, request_id = rid }))
  elseif status == "CREATING" or status == "UPDATING" then
    next_poll(ctx, wf, "Check Restore Status")
  else
    D.fail(("table %s is %s, not ACTIVE"):format(doc.TargetTableName, tostring(status)), rid)
  end
end

function M.step(ctx, wf)
  local doc = wf.doc
  if S.past_deadline(doc) then
    D.fail(("table %s not ACTIVE after %d s (deadline)"):format(doc.TargetTableName, config.values.deadline))
  end
  local left = (doc.NextPollAt or 0) - clock.now()
  if left > 0 then
    -- A workflow handed over by a reload is still in the wait it was in: one step.
    if not wf.waiting then wf.waiting = D.open_step(doc, "Wait for Restore") or D.step(doc, "Wait for Restore") end
    return left
  end
  -- The wait is over: close its step (a workflow woken from dormancy or handed over by
  -- a reload carries it open in the document).
  local w = wf.waiting or D.open_step(doc, "Wait for Restore")
  if w then D.done(w) wf.waiting = nil end
  local s = D.step(doc, "Check Restore Status")
  if doc.RestoreJobId and not doc.RestoreJobCompleted then return check_restore_job(ctx, wf, s) end
  check_table(ctx, wf, s)
end

return M
