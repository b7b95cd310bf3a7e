-- Intake: from notifications to workflows.
--   M.handle_records(recs, ctx)  run every record (skips logged), in parallel; returns
--                                 ok (no workflow ended in Error) and the documents
--   M.start(ctx)                 long-poll SQS until the daemon stops
-- The SQS message is the durable claim on a job: while its workflows run, its visibility
-- is renewed (ChangeMessageVisibility heartbeats); it is deleted only when every record
-- finished (Complete) or was deliberately skipped. A message whose workflow failed is
-- left: it comes back after its visibility timeout and is retried (idempotently) until the
-- queue's redrive policy moves it to the dead-letter queue. A message that does not parse
-- is logged with its id and reason and left for the redrive policy.
-- ctx: { svc, rules = function() -> current rule list, dry_run, queue_url }
local log = require "log"
local task = require "task"
local timer = require "timer"
local host = require "host"
local N = require "notification"
local rules = require "rules"
local workflow = require "workflow"

local M = {
  visibility = tonumber(os.getenv("ROTATOR_VISIBILITY_TIMEOUT") or "") or 300,
  heartbeat = tonumber(os.getenv("ROTATOR_HEARTBEAT") or "") or 120,
  max_messages_inflight = 100,
  stats = { received = 0, deleted = 0, left = 0, unparsable = 0 },
}

local function handle_record(rec, ctx, where)
  if rec.skip then
    log.info("notification.skipped", { reason = rec.skip, message_id = where, table = rec.table_name,
      backup_job = rec.backup_job_id })
    return true
  end
  for _, note in ipairs(rec.notes or {}) do
    log.warn("notification.note", { note = note, message_id = where, backup_job = rec.backup_job_id })
  end
  local rule = rules.match(ctx.rules(), rec.table_name)
  if not rule then
    log.info("notification.skipped", { reason = "no rule matches table " .. rec.table_name, message_id = where,
      table = rec.table_name, backup_job = rec.backup_job_id })
    return true
  end
  local doc = workflow.run(rec, rule, ctx)
  return doc.Status == "Complete", doc
end

-- Every record in its own task; waits for all. Returns ok, docs.
function M.handle_records(recs, ctx, where)
  local futures = {}
  for i, rec in ipairs(recs) do
    local f = task.future()
    futures[i] = f
    task.spawn(function()
      local ok, a, b = xpcall(handle_record, debug.traceback, rec, ctx, where)
      if not ok then
        log.error("record.crashed", { message_id = where, backup_job = rec.backup_job_id, error = a })
        f:set(false)
      else
        f:set(a, b)
      end
    end)
  end
  local all_ok, docs = true, {}
  for _, f in ipairs(futures) do
    local ok, doc = f:wait()
    if not ok then all_ok = false end
    docs[#docs + 1] = doc
  end
  return all_ok, docs
end

local function sqs(ctx, action, params)
  params.QueueUrl = ctx.queue_url
  return ctx.svc:call("sqs", action, params)
end

local function handle_message(msg, ctx)
  local hold <close> = host.hold()
  local id = msg.MessageId
  local recs, why = N.parse(msg)
  if not recs then
    M.stats.unparsable = M.stats.unparsable + 1
    log.warn("message.unparsable", { message_id = id, reason = why, result = "left for the redrive policy" })
    return
  end
  local beat = timer.every(M.heartbeat, function()
    task.spawn(function()
      local res, err = sqs(ctx, "ChangeMessageVisibility",
        { ReceiptHandle = msg.ReceiptHandle, VisibilityTimeout = M.visibility })
      if not res then log.warn("message.heartbeat_failed", { message_id = id, error = tostring(err) }) end
    end)
  end)
  local ok = M.handle_records(recs, ctx, id)
  beat:cancel()
  if not ok then
    M.stats.left = M.stats.left + 1
    log.warn("message.left", { message_id = id, reason = "a workflow failed; the queue will redeliver it" })
    return
  end
  local res, err = sqs(ctx, "DeleteMessage", { ReceiptHandle = msg.ReceiptHandle })
  if res then
    M.stats.deleted = M.stats.deleted + 1
    log.info("message.deleted", { message_id = id, request_id = err })
  else
    log.error("message.delete_failed", { message_id = id, error = tostring(err),
      request_id = type(err) == "table" and err.request_id or nil })
  end
end

local inflight = 0

local function poll_loop(ctx)
  local backoff = 1
  while not M.stopping and not host.stopping() do
    if inflight >= M.max_messages_inflight then
      task.sleep(1)
    else
      local res, err = sqs(ctx, "ReceiveMessage", { WaitTimeSeconds = 20, MaxNumberOfMessages = 10,
        MessageAttributeNames = { "All" }, AttributeNames = { "All" }, VisibilityTimeout = M.visibility })
      if M.stopping or host.stopping() then break end -- unprocessed messages return after their timeout
      if not res then
        log.error("intake.receive_failed", { error = tostring(err), retry_in = backoff,
          request_id = type(err) == "table" and err.request_id or nil })
        task.sleep(backoff)
        backoff = math.min(backoff * 2, 60)
      else
        backoff = 1
        for _, msg in ipairs(res.Messages or {}) do
          M.stats.received = M.stats.received + 1
          inflight = inflight + 1
          task.spawn(function()
            local ok, e = xpcall(handle_message, debug.traceback, msg, ctx)
            if not ok then log.error("message.crashed", { message_id = msg.MessageId, error = e }) end
            inflight = inflight - 1
          end)
        end
      end
    end
  end
  log.info("intake.stopped", { inflight = inflight })
end

function M.start(ctx)
  M.stopping = false
  log.info("intake.started", { queue = ctx.queue_url, visibility = M.visibility, heartbeat = M.heartbeat })
  task.spawn(poll_loop, ctx)
end

function M.stop()
  M.stopping = true
end

return M
