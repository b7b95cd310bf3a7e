-- Alerts: a failed workflow publishes one message to the SNS topic its rule names
-- (rule.alert_topic_arn; the documented IAM policy allows sns:Publish on
-- arn:aws:sns:*:*:rotator-alerts). The message is JSON: workflow, rule, source table,
-- target table, the failed step, the error and the AWS request id.
-- One alert per workflow id (backup job) per ctx (the daemon's, or a dry run's own): a
-- redelivered, failing again message does not page twice, and a dry run's planned alert
-- never silences a real one.
--   M.workflow_failed(ctx, doc, rule, { step =, msg =, request_id = }) -> published?
--   M.match_failed(ctx, rule, rec, failure) -> published?  a rule's pattern could not be
--     matched against a notification's table (rules.match's failure); no workflow started
--   M.daemon_alert(svc, topic, body) -> published?   a daemon-level alert (daemon/health.lua:
--                                 failing for longer than --alert-after, and recovered)
local log = require "log"
local json = require "json"
local H = require "workflow.doc"

local M = { max_remembered = 1000 }

function M.validate_rule(rule)
  local a = rule.alert_topic_arn
  if a ~= nil and not a:match("^arn:[%w-]+:sns:[%w-]+:%d+:[%w_-]+$") then
    return ("alert_topic_arn %q is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"):format(a)
  end
end

-- The alerts this ctx has published: { sent = {id = true}, order = {ids} }.
local function memo(ctx)
  local m = ctx.alerted
  if not m then
    m = { sent = {}, order = {} }
    ctx.alerted = m
  end
  return m
end

local function remember(m, id)
  m.sent[id] = true
  m.order[#m.order + 1] = id
  if #m.order > M.max_remembered then m.sent[table.remove(m.order, 1)] = nil end
end

local function last_failed_step(doc)
  for i = #(doc.Steps or {}), 1, -1 do
    if doc.Steps[i].Error then return doc.Steps[i].State end
  end
end

-- The alert's body (pure).
function M.message(doc, failure)
  return {
    event = "rotator.workflow.failed",
    workflow = doc.WorkflowId, rule = doc.Rule, source_table = doc.SourceTableName,
    table = doc.TargetTableName, step = failure.step or last_failed_step(doc),
    error = failure.msg, request_id = failure.request_id, backup_job = doc.BackupJobId,
    recovery_point = doc.RecoveryPointArn,
  }
end

local function subject(doc)
  local s = ("Rotator: restore of %s failed"):format(tostring(doc.SourceTableName))
  return (s:gsub("[^\32-\126]", "?")):sub(1, 100)
end

function M.workflow_failed(ctx, doc, rule, failure)
  local topic = rule.alert_topic_arn
  if not topic or doc.AlertPublished then return false end
  local id = doc.WorkflowId or tostring(doc)
  local m = memo(ctx)
  if m.sent[id] then
    log.info("alert.suppressed", H.fields(doc, { reason = "already alerted for this workflow", topic = topic }))
    return false
  end
  local body = M.message(doc, failure or {})
  local res, rid = ctx.svc:call("sns", "Publish", { TopicArn = topic, Subject = subject(doc),
    Message = assert(json.encode(body)) })
  if not res then
    log.error("alert.failed", H.fields(doc, { topic = topic, error = tostring(rid), request_id = H.rid(rid) }))
    return false
  end
  remember(m, id)
  doc.AlertPublished = { TopicArn = topic, MessageId = res.MessageId }
  log.info("alert.published", H.fields(doc, { topic = topic, sns_message_id = res.MessageId, request_id = rid,
    step = body.step }))
  return true
end

function M.match_failed(ctx, rule, rec, failure)
  local doc = { WorkflowId = rec.backup_job_id or rec.recovery_point_arn, Rule = rule.name or rule._where,
    SourceTableName = rec.table_name, BackupJobId = rec.backup_job_id, RecoveryPointArn = rec.recovery_point_arn }
  return M.workflow_failed(ctx, doc, rule, { step = "Match Rule",
    msg = ("source_pattern %q: %s"):format(tostring(failure.pattern), tostring(failure.error)) })
end

local DAEMON_SUBJECTS = {
  ["rotator.daemon.failing"] = "Rotator: the daemon is failing",
  ["rotator.daemon.recovered"] = "Rotator: the daemon recovered",
}

function M.daemon_alert(svc, topic, body)
  local subject = DAEMON_SUBJECTS[body.event] or "Rotator: daemon health"
  local res, rid = svc:call("sns", "Publish", { TopicArn = topic, Subject = subject,
    Message = assert(json.encode(body)) })
  if not res then
    log.error("alert.failed", { event = body.event, topic = topic, error = tostring(rid), request_id = H.rid(rid) })
    return false
  end
  log.info("alert.published", { event = body.event, topic = topic, message_id = res.MessageId, request_id = rid })
  return true
end

return M
