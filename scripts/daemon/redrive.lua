-- Redrive: put the notifications of a dead-letter queue back through the workflow.
--   M.dlq_of(svc, queue_url) -> dlq_url | nil, msg   the queue's RedrivePolicy target
--   M.run(ctx, opts, print) -> counts                one message at a time:
--     opts: { dlq_url, source_url, dry_run, limit, to_source }
--     print(line): where each message's description and outcome go
-- Each message is shown (table, backup, the rule it matches now, the journal's last word
-- on its job), then, unless dry_run:
--   * run here: the records go through intake.handle_records with the journal, as the
--     daemon runs them; the message is deleted from the dead-letter queue only when every
--     record finished (Complete, journaled) or was deliberately skipped;
--   * to_source: sent to the source queue (body and attributes), then deleted.
-- One message is claimed at a time, its visibility renewed while it runs: if redrive is
-- killed, the message in hand returns to the dead-letter queue after its visibility
-- timeout and the others were never taken. A job done before the kill is not done twice:
-- the journal holds it Complete and the intake deletes its redelivery without a restore.
-- Messages left (failed, unparsable, or all of them in a dry run) are made visible again
-- at the end.
local log = require "log"
local json = require "json"
local timer = require "timer"
local task = require "engine.task"
local rules = require "policy.rules"
local intake = require "daemon.intake"
local store = require "daemon.store"
local N = require "workflow.notification"

local M = {}

local function errtext(err)
  return tostring(type(err) == "table" and (err.message or err.code) or err)
end

-- The dead-letter queue named by queue_url's RedrivePolicy.
function M.dlq_of(svc, queue_url)
  local res, err = svc:call("sqs", "GetQueueAttributes", { QueueUrl = queue_url, AttributeNames = { "RedrivePolicy" } })
  if not res then return nil, ("GetQueueAttributes on %s failed: %s"):format(queue_url, errtext(err)) end
  local policy = res.Attributes and res.Attributes.RedrivePolicy
  if not policy then
    return nil, ("%s has no RedrivePolicy (no dead-letter queue); give one with --queue DLQ_URL"):format(queue_url)
  end
  local p = json.decode(policy) or {}
  local arn = p.deadLetterTargetArn
  local account, name = tostring(arn):match("^arn:[%w-]+:sqs:[%w-]+:(%d+):(.+)$")
  if not name then return nil, ("%s: RedrivePolicy has no usable deadLetterTargetArn (%s)"):format(queue_url, tostring(arn)) end
  local url, uerr = svc:call("sqs", "GetQueueUrl", { QueueName = name, QueueOwnerAWSAccountId = account })
  if not url then return nil, ("GetQueueUrl for %s failed: %s"):format(arn, errtext(uerr)) end
  return url.QueueUrl
end

-- What the journal knows of a record's job: "Error in Restore Backup: ..." or nil.
local function journal_says(ctx, rec)
  local s = ctx.store
  local job = rec.backup_job_id or rec.recovery_point_arn -- the intake's key too
  if not s or not job then return nil end
  local row = s:get(store.workflow_id(job))
  if not row then return "no journal entry" end
  local d = row.doc or {}
  local state = tostring(d.Status or row.state or "running")
  if d.Error then
    return ("%s%s: %s"):format(state, d.FailedPhase and (" in " .. d.FailedPhase) or "", tostring(d.Error))
  end
  return state
end

local function describe(ctx, msg, recs, print)
  local count = msg.Attributes and msg.Attributes.ApproximateReceiveCount
  print(("message %s (received %s times):"):format(msg.MessageId, tostring(count or "?")))
  for _, rec in ipairs(recs) do
    if rec.skip then
      print(("  skip: %s (table %s)"):format(rec.skip, tostring(rec.table_name)))
    else
      local rule, failure = rules.match(ctx.rules(), rec.table_name)
      local now = rule and rules.label(rule) or "none (would be skipped)"
      if failure then now = "cannot tell (" .. failure.message .. ")" end
      print(("  table %s, backup %s, rule now: %s; journal: %s"):format(rec.table_name,
        tostring(rec.recovery_point_arn), now, journal_says(ctx, rec) or "not open"))
    end
  end
end

local function sqs(ctx, action, params)
  local res, err = ctx.svc:call("sqs", action, params)
  if not res then
    log.error("redrive.sqs_failed", { action = action, queue = params.QueueUrl, error = errtext(err) })
  end
  return res, err
end

-- Keep the message invisible while its workflows run.
local function beat(ctx, opts, msg)
  return timer.every(intake.heartbeat, function()
    task.spawn(function()
      sqs(ctx, "ChangeMessageVisibility", { QueueUrl = opts.dlq_url, ReceiptHandle = msg.ReceiptHandle,
        VisibilityTimeout = intake.visibility })
    end)
  end)
end

local function attributes_for_send(attrs)
  local out = {}
  for k, v in pairs(attrs or {}) do
    out[k] = { DataType = v.DataType, StringValue = v.StringValue, BinaryValue = v.BinaryValue }
  end
  return next(out) and out or nil
end

-- One message: "done" | "skipped" | "failed" | "bad" | "planned"; deleted says whether it
-- left the dead-letter queue.
local function handle(ctx, opts, msg, print)
  local recs, why = N.parse(msg)
  if not recs then
    print(("message %s: not a notification (%s); left in the dead-letter queue"):format(msg.MessageId, tostring(why)))
    return "bad", false
  end
  describe(ctx, msg, recs, print)
  if opts.dry_run then return "planned", false end
  if opts.to_source then
    local sent = sqs(ctx, "SendMessage", { QueueUrl = opts.source_url, MessageBody = msg.Body,
      MessageAttributes = attributes_for_send(msg.MessageAttributes) })
    if not sent then print("  -> not sent to the source queue; left in the dead-letter queue") return "failed", false end
    local deleted = sqs(ctx, "DeleteMessage", { QueueUrl = opts.dlq_url, ReceiptHandle = msg.ReceiptHandle })
    print(("  -> sent to the source queue as %s%s"):format(tostring(sent.MessageId),
      deleted and "; deleted from the dead-letter queue" or "; NOT deleted from the dead-letter queue (the daemon will see it twice, once as a no-op)"))
    return "done", deleted ~= nil
  end
  local hb = beat(ctx, opts, msg)
  local ok, docs = intake.handle_records(recs, ctx, msg.MessageId, { retry = true })
  hb:cancel()
  if not ok then
    print("  -> a workflow failed (see the log); left in the dead-letter queue")
    return "failed", false
  end
  local deleted = sqs(ctx, "DeleteMessage", { QueueUrl = opts.dlq_url, ReceiptHandle = msg.ReceiptHandle })
  local outcome = #docs > 0 and "done" or "skipped"
  local targets = {}
  for _, d in ipairs(docs) do targets[#targets + 1] = tostring(d.TargetTableName) end
  print(("  -> %s%s; %s"):format(outcome, #targets > 0 and (" (" .. table.concat(targets, ", ") .. ")") or "",
    deleted and "deleted from the dead-letter queue" or "NOT deleted from the dead-letter queue (a rerun finds it done)"))
  if deleted then log.info("redrive.deleted", { message_id = msg.MessageId, outcome = outcome }) end
  return outcome, deleted ~= nil
end

function M.run(ctx, opts, print)
  local counts = { done = 0, skipped = 0, bad = 0, failed = 0, planned = 0, messages = 0 }
  local seen, kept = {}, {}
  local empty = 0
  while not opts.limit or counts.messages < opts.limit do
    local res = sqs(ctx, "ReceiveMessage", { QueueUrl = opts.dlq_url, MaxNumberOfMessages = 1, WaitTimeSeconds = 1,
      VisibilityTimeout = intake.visibility, AttributeNames = { "All" }, MessageAttributeNames = { "All" } })
    if not res then counts.failed = counts.failed + 1 break end
    local msg = (res.Messages or {})[1]
    if not msg then
      empty = empty + 1
      if empty >= 2 then break end
    elseif seen[msg.MessageId] then
      kept[#kept + 1] = msg -- released below; seen already
    else
      empty = 0
      seen[msg.MessageId] = true
      counts.messages = counts.messages + 1
      local outcome, deleted = handle(ctx, opts, msg, print)
      counts[outcome] = counts[outcome] + 1
      if not deleted then kept[#kept + 1] = msg end
    end
  end
  for _, msg in ipairs(kept) do
    sqs(ctx, "ChangeMessageVisibility", { QueueUrl = opts.dlq_url, ReceiptHandle = msg.ReceiptHandle, VisibilityTimeout = 0 })
  end
  return counts
end

return M
