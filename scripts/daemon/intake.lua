-- Intake: from notifications to workflows.
--   M.handle_records(recs, ctx, where [, opts])  run every record (skips logged), in
--                                 parallel; returns ok (no workflow ended in Error) and docs
--   M.start(ctx)                 long-poll SQS until the daemon stops
--   M.quiesce(cb) / M.snapshot() / M.adopt(ctx, claims)   hot reload (daemon.lua)
-- The SQS message is the durable claim on a job: while its workflows run, its visibility
-- is renewed (ChangeMessageVisibility heartbeats); it is deleted only when every record
-- finished (Complete, journaled first) or was deliberately skipped. A message whose
-- workflow failed is left: it comes back after its visibility timeout and the failed
-- workflow is retried from the step that failed (idempotently) until the queue's redrive
-- policy moves it to the dead-letter queue. A message that does not parse is logged with
-- its id and reason and left for the redrive policy.
-- A message redelivered for a job (workflow id = backup job id) that is already Complete
-- is deleted without a second restore; one for a workflow running here is attached to it
-- (kept invisible, deleted when it completes) and starts no second run.
-- ctx: { svc, store (optional), rules = function() -> current rule list, dry_run, queue_url }
local log = require "log"
local task = require "engine.task"
local timer = require "timer"
local clock = require "clock"
local host = require "host"
local N = require "workflow.notification"
local rules = require "policy.rules"
local workflow = require "workflow"

local M = {
  visibility = tonumber(os.getenv("ROTATOR_VISIBILITY_TIMEOUT") or "") or 300,
  heartbeat = tonumber(os.getenv("ROTATOR_HEARTBEAT") or "") or 120,
  max_messages_inflight = 100,
  stats = { received = 0, deleted = 0, left = 0, unparsable = 0 },
  claims = {},   -- message id -> { msg, last_beat (wall), beat (timer), parked }
}

local busy = 0        -- our own SQS calls in flight (heartbeats, deletes)
local quiescing = nil -- { check = fn } while a reload parks the intake

---------------------------------------------------------------- records -> workflows
local function skipped(rec, where, reason)
  log.info("notification.skipped", { reason = reason, message_id = where, table = rec.table_name,
    backup_job = rec.backup_job_id })
  return true
end

-- A job the journal already knows: Complete -> done; Error -> retry (redelivery) or not.
local function known(row, rule, ctx, where, opts)
  local doc = row.doc
  if not row.finished then
    return nil, workflow.rearm(doc, workflow.rule_for(doc, ctx.rules()), ctx)
  end
  if doc.Status == "Complete" then
    log.info("message.already_complete", { message_id = where, workflow = doc.WorkflowId,
      target = doc.TargetTableName, reason = "journal: workflow finished; no second restore" })
    return true, doc
  end
  if not opts.retry then return false, doc end
  doc.Attempt = (doc.Attempt or 1) + 1
  doc.Phase = doc.FailedPhase or "Restore Backup"
  doc.StartedAt, doc.RetryAt, doc.Error, doc.Status = clock.now(), nil, nil, nil
  log.warn("workflow.retry", { message_id = where, workflow = doc.WorkflowId, attempt = doc.Attempt,
    phase = doc.Phase, target = doc.TargetTableName })
  return nil, workflow.rearm(doc, rule, ctx)
end

local function handle_record(rec, ctx, where, opts)
  if rec.skip then return skipped(rec, where, rec.skip) end
  for _, note in ipairs(rec.notes or {}) do
    log.warn("notification.note", { note = note, message_id = where, backup_job = rec.backup_job_id })
  end
  local rule = rules.match(ctx.rules(), rec.table_name)
  if not rule then return skipped(rec, where, "no rule matches table " .. rec.table_name) end
  rec.backup_job_id = rec.backup_job_id or rec.recovery_point_arn
  local wf = workflow.find(ctx, rec.backup_job_id)
  if wf then
    log.info("message.attached", { message_id = where, workflow = wf.id, target = wf.doc.TargetTableName,
      reason = "workflow already running here; no second run" })
  else
    local row = ctx.store and ctx.store:get(rec.backup_job_id)
    if row then
      local ok, doc_or_wf = known(row, rule, ctx, where, opts or {})
      if ok ~= nil then return ok, doc_or_wf end
      wf = doc_or_wf
    else
      wf = workflow.start(rec, rule, ctx)
    end
  end
  local doc = workflow.await(wf)
  return doc.Status == "Complete", doc
end

-- Every record in its own task; waits for all. Returns ok, docs.
function M.handle_records(recs, ctx, where, opts)
  local futures = {}
  for i, rec in ipairs(recs) do
    local f = task.future()
    futures[i] = f
    task.spawn(function()
      local ok, a, b = xpcall(handle_record, debug.traceback, rec, ctx, where, opts)
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

---------------------------------------------------------------- the claim
local function sqs(ctx, action, params)
  params.QueueUrl = ctx.queue_url
  busy = busy + 1
  local res, err = ctx.svc:call("sqs", action, params)
  busy = busy - 1
  if quiescing then quiescing.check() end
  return res, err
end

local function heartbeat(ctx, claim)
  if quiescing or claim.parked then return end
  claim.last_beat = clock.now()
  task.spawn(function()
    local res, err = sqs(ctx, "ChangeMessageVisibility",
      { ReceiptHandle = claim.msg.ReceiptHandle, VisibilityTimeout = M.visibility })
    if not res then
      log.warn("message.heartbeat_failed", { message_id = claim.msg.MessageId, error = tostring(err),
        request_id = type(err) == "table" and err.request_id or nil })
    end
  end)
end

-- Heartbeats on the message's own rhythm: the first one due `heartbeat` after the last.
local function start_beats(ctx, claim)
  local first = math.max(0, M.heartbeat - (clock.now() - claim.last_beat))
  claim.beat = timer.after(first, function()
    heartbeat(ctx, claim)
    if not claim.parked and not claim.done then
      claim.beat = timer.every(M.heartbeat, function() heartbeat(ctx, claim) end)
    end
  end)
end

local function stop_beats(claim)
  if claim.beat then claim.beat:cancel() end
  claim.beat = nil
end

local function delete(ctx, msg)
  local res, err = sqs(ctx, "DeleteMessage", { ReceiptHandle = msg.ReceiptHandle })
  if res then
    M.stats.deleted = M.stats.deleted + 1
    log.info("message.deleted", { message_id = msg.MessageId, request_id = err })
  else
    log.error("message.delete_failed", { message_id = msg.MessageId, error = tostring(err),
      request_id = type(err) == "table" and err.request_id or nil })
  end
end

-- opts: { last_beat = wall time of the last heartbeat (re-armed claims), retry = bool }
local function handle_message(msg, ctx, opts)
  local hold <close> = host.hold()
  local id = msg.MessageId
  local recs, why = N.parse(msg)
  if not recs then
    M.stats.unparsable = M.stats.unparsable + 1
    log.warn("message.unparsable", { message_id = id, reason = why, result = "left for the redrive policy" })
    return
  end
  local claim = { msg = msg, last_beat = opts.last_beat or clock.now() }
  M.claims[id] = claim
  start_beats(ctx, claim)
  local ok = M.handle_records(recs, ctx, id, { retry = opts.retry })
  if claim.parked then return end -- a reload took the claim over
  claim.done = true
  stop_beats(claim)
  if quiescing then claim.parked = true quiescing.check() return end -- the new state deletes it
  M.claims[id] = nil
  if not ok then
    M.stats.left = M.stats.left + 1
    log.warn("message.left", { message_id = id, reason = "a workflow failed; the queue will redeliver it" })
    return
  end
  delete(ctx, msg)
end

local function spawn_message(msg, ctx, opts)
  task.spawn(function()
    local ok, e = xpcall(handle_message, debug.traceback, msg, ctx, opts)
    if not ok then
      M.claims[msg.MessageId] = nil
      log.error("message.crashed", { message_id = msg.MessageId, error = e })
    end
  end)
end

local function inflight()
  local n = 0
  for _ in pairs(M.claims) do n = n + 1 end
  return n
end

---------------------------------------------------------------- receiving
-- ReceiveMessage that a reload can cancel. Messages SQS handed to a cancelled receive
-- come back after their visibility timeout.
local function receive(ctx)
  local f = task.future()
  M.receive_future = f
  M.cancel_receive = ctx.svc:call_cb("sqs", "ReceiveMessage", { QueueUrl = ctx.queue_url, WaitTimeSeconds = 20,
    MaxNumberOfMessages = 10, MessageAttributeNames = { "All" }, AttributeNames = { "All" },
    VisibilityTimeout = M.visibility }, nil, function(res, err) f:set(res, err) end)
  local res, err = f:wait()
  M.cancel_receive, M.receive_future = nil, nil
  return res, err
end

local function poll_loop(ctx)
  local backoff = 1
  while not M.stopping and not host.stopping() do
    if inflight() >= M.max_messages_inflight then
      task.sleep(1)
    else
      local res, err = receive(ctx)
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
          spawn_message(msg, ctx, { retry = true })
        end
      end
    end
  end
  log.info("intake.stopped", { inflight = inflight() })
end

function M.start(ctx)
  M.stopping = false
  log.info("intake.started", { queue = ctx.queue_url, visibility = M.visibility, heartbeat = M.heartbeat })
  task.spawn(poll_loop, ctx)
end

-- Graceful stop: take no new message. The long poll is cancelled rather than waited for
-- (up to 20 s); a message SQS hands to it returns after its visibility timeout.
function M.stop()
  M.stopping = true
  if M.cancel_receive then
    M.cancel_receive()
    M.cancel_receive = nil
    log.info("intake.receive_cancelled", { reason = "stop" })
    if M.receive_future then M.receive_future:set(nil, "stopping") end
  end
end

---------------------------------------------------------------- hot reload
-- Stop receiving (the long poll is cancelled), stop heartbeats, let our SQS calls in
-- flight finish; cb() then. Returns a function reporting how many calls are in flight.
function M.quiesce(cb)
  M.stopping = true
  if M.cancel_receive then
    M.cancel_receive()
    M.cancel_receive = nil
    log.info("intake.receive_cancelled", { reason = "reload" })
  end
  for _, claim in pairs(M.claims) do
    stop_beats(claim)
    claim.parked = true
  end
  local called = false
  quiescing = {}
  function quiescing.check()
    if called or busy > 0 then return end
    called = true
    cb()
  end
  quiescing.check()
  return function() return busy end
end

-- The claims to hand over: the SQS message (with its receipt handle) and its last beat.
function M.snapshot()
  local out = {}
  for _, claim in pairs(M.claims) do
    out[#out + 1] = { msg = claim.msg, last_beat = claim.last_beat }
  end
  return out
end

-- Take claims over (after workflow.rearm): each message attaches to its workflows again.
function M.adopt(ctx, claims)
  quiescing, M.claims, busy = nil, {}, 0
  for _, c in ipairs(claims or {}) do
    spawn_message(c.msg, ctx, { last_beat = c.last_beat, retry = false })
  end
  if ctx.queue_url then M.start(ctx) end
end

return M
