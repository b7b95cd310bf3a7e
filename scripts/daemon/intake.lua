-- Intake: from notifications to workflows.
--   M.handle_records(recs, ctx, where [, opts])  run every record (skips logged), in
--                                 parallel; returns ok (no workflow ended in Error) and docs
--   M.start(ctx)                 long-poll SQS until the daemon stops (ROTATOR_RECEIVE_WAIT,
--                                 1..20 s, default 20: the long poll's wait time)
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
-- A dry run deletes nothing, so its messages come back after their visibility timeout:
-- each is planned once per process; a redelivery is logged (message.already_planned) and
-- left alone.
-- ctx: { svc, store (optional), rules = function() -> current rule list, dry_run, queue_url }
local log = require "log"
local task = require "engine.task"
local timer = require "timer"
local clock = require "clock"
local host = require "host"
local N = require "workflow.notification"
local rules = require "policy.rules"
local workflow = require "workflow"
local aws = require "aws"
local preflight = require "daemon.preflight"
local alerts = require "after.alerts"
local metrics = require "engine.metrics"
local health = require "daemon.health"

local M = {
  visibility = tonumber(os.getenv("ROTATOR_VISIBILITY_TIMEOUT") or "") or 300,
  heartbeat = tonumber(os.getenv("ROTATOR_HEARTBEAT") or "") or 120,
  max_messages_inflight = tonumber(os.getenv("ROTATOR_MAX_MESSAGES") or "") or 100,
  stats = { received = 0, deleted = 0, left = 0, unparsable = 0, match_failed = 0 },
  claims = {},   -- message id -> { msg, last_beat (wall), beat (timer), parked }
  planned = {},  -- dry run: message id -> true once its plan was printed
  received = {}, -- messages received during a reload's quiesce, handed over unstarted
  recv = nil,    -- the ReceiveMessage in flight (see "receiving")
  last_receive = nil, -- wall time of the last successful ReceiveMessage
  started_at = nil,   -- wall time the poll loop first started
  gen = 0,       -- the poll loop's generation: a loop of an older one ends
  wait = 20,     -- the long poll's wait in seconds (receive_wait)
}

local busy = 0        -- our own SQS calls in flight (heartbeats, deletes)
local quiescing = nil -- { check = fn } while a reload parks the intake

---------------------------------------------------------------- records -> workflows
local function skipped(rec, where, reason)
  log.info("notification.skipped", { reason = reason, message_id = where, table = rec.table_name,
    backup_job = rec.backup_job_id })
  return true
end

-- A rule's pattern could not be matched against the table (PCRE2's match or depth
-- limit): the record is not run, and it fails, so its message is left for the
-- dead-letter queue; counted, logged with the rule, the pattern and the table, alerted.
local function match_failed(rec, failure, ctx, where)
  M.stats.match_failed = M.stats.match_failed + 1
  local rule = failure.rule
  log.error("notification.match_failed", { message_id = where, table = rec.table_name,
    backup_job = rec.backup_job_id, rule = rules.label(rule), rule_at = rule._where,
    pattern = failure.pattern, error = failure.error,
    result = "not restored; message left for the dead-letter queue",
    next = "simplify the pattern (rotator check warns on exponential backtracking), then redrive" })
  local ok, err = pcall(alerts.match_failed, ctx, rule, rec, failure)
  if not ok then log.error("alert.crashed", { message_id = where, table = rec.table_name, error = tostring(err) }) end
  return false
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

-- The record's workflow started (or attached to): nil, wf; or ok, doc when the record is
-- done already (skipped, unmatched, known Complete or failed).
local function start_record(rec, ctx, where, opts)
  if rec.skip then return skipped(rec, where, rec.skip) end
  for _, note in ipairs(rec.notes or {}) do
    log.warn("notification.note", { note = note, message_id = where, backup_job = rec.backup_job_id })
  end
  local rule, failure = rules.match(ctx.rules(), rec.table_name)
  if failure then return match_failed(rec, failure, ctx, where) end
  if not rule then return skipped(rec, where, "no rule matches table " .. rec.table_name) end
  rec.backup_job_id = rec.backup_job_id or rec.recovery_point_arn
  local wf = workflow.find(ctx, rec.backup_job_id)
  if wf then
    if wf.log then wf.log.message_id = where end -- its lines now name the message that holds it
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
  return nil, wf
end

local function handle_record(rec, ctx, where, opts)
  local ok, x = start_record(rec, ctx, where, opts)
  if ok ~= nil then return ok, x end
  local doc = workflow.await(x)
  return doc.Status == "Complete", doc
end

local function handle_one(rec, ctx, where, opts)
  local ok, a, b = xpcall(handle_record, debug.traceback, rec, ctx, where, opts)
  if ok then return a, b end
  log.error("record.crashed", { message_id = where, backup_job = rec.backup_job_id, error = a })
  return false
end

-- Every record in its own task; waits for all. Returns ok, docs. A single record (the
-- usual message) runs in the calling task, which would only wait for it.
function M.handle_records(recs, ctx, where, opts)
  if #recs == 1 then
    local _, main = coroutine.running()
    if not main then task.set_context({ message_id = where }) end
    local ok, doc = handle_one(recs[1], ctx, where, opts)
    return ok and true or false, { doc }
  end
  local futures = {}
  for i, rec in ipairs(recs) do
    local f = task.future()
    futures[i] = f
    task.spawn(function()
      task.set_context({ message_id = where })
      f:set(handle_one(rec, ctx, where, opts))
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
    task.set_context({ message_id = claim.msg.MessageId, workflow = claim.workflow })
    local res, err = sqs(ctx, "ChangeMessageVisibility",
      { ReceiptHandle = claim.msg.ReceiptHandle, VisibilityTimeout = M.visibility })
    if not res then
      log.warn("message.heartbeat_failed", { message_id = claim.msg.MessageId, error = tostring(err),
        workflow = claim.workflow, request_id = type(err) == "table" and err.request_id or nil })
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

local function delete(ctx, msg, wfs)
  local res, err = sqs(ctx, "DeleteMessage", { ReceiptHandle = msg.ReceiptHandle })
  if res then
    M.stats.deleted = M.stats.deleted + 1
    metrics.inc("rotator_sqs_messages_deleted_total")
    log.info("message.deleted", { message_id = msg.MessageId, workflow = wfs, request_id = err })
  else
    log.error("message.delete_failed", { message_id = msg.MessageId, workflow = wfs, error = tostring(err),
      request_id = type(err) == "table" and err.request_id or nil })
  end
end

-- The workflow ids (backup job ids) of a message's records, comma-separated, or nil.
local function workflow_ids(recs)
  local ids = {}
  for _, rec in ipairs(recs) do
    local wid = not rec.skip and (rec.backup_job_id or rec.recovery_point_arn)
    if wid then ids[#ids + 1] = wid end
  end
  return #ids > 0 and table.concat(ids, ",") or nil
end

local settle, workflow_ended -- (below)

-- opts: { last_beat = wall time of the last heartbeat (re-armed claims), retry = bool }
local function handle_message(msg, ctx, opts)
  local hold <close> = host.hold()
  local id = msg.MessageId
  task.set_context({ message_id = id }) -- the lines and AWS calls of its records carry it
  local recs, why = N.parse(msg)
  if not recs then
    M.stats.unparsable = M.stats.unparsable + 1
    metrics.inc("rotator_sqs_messages_unparsable_total")
    log.warn("message.unparsable", { message_id = id, reason = why, result = "left for the redrive policy" })
    return
  end
  if ctx.dry_run and M.planned[id] then
    log.info("message.already_planned", { message_id = id, reason = "a dry run plans each message once" })
    return
  end
  local wfs = workflow_ids(recs)
  task.set_context({ workflow = wfs })
  local claim = { msg = msg, last_beat = opts.last_beat or clock.now(), workflow = wfs }
  M.claims[id] = claim
  start_beats(ctx, claim)
  if #recs > 1 then return settle(ctx, claim, M.handle_records(recs, ctx, id, { retry = opts.retry })) end
  -- The usual message, one record: the claim waits for its workflow without a task of
  -- its own (thousands may wait on tables being created); its hold keeps a stop waiting.
  local ok, done, x = xpcall(start_record, debug.traceback, recs[1], ctx, id, { retry = opts.retry })
  if not ok then
    log.error("record.crashed", { message_id = id, backup_job = recs[1].backup_job_id, error = done })
    return settle(ctx, claim, false)
  end
  if done ~= nil then return settle(ctx, claim, done) end
  claim.hold = host.hold()
  local ended, doc = workflow.on_done(x, { set = function(_, d) workflow_ended(ctx, claim, d) end })
  if ended then workflow_ended(ctx, claim, doc) end
end

-- A claim's message, once its records are done (ok: all Complete or skipped): deleted,
-- or left for redelivery. Runs in a task (the SQS call waits).
settle = function(ctx, claim, ok)
  local hold <close> = claim.hold
  claim.hold = nil
  local msg, wfs = claim.msg, claim.workflow
  local id = msg.MessageId
  if claim.parked then return end -- a reload took the claim over
  claim.done = true
  stop_beats(claim)
  if ctx.dry_run then M.planned[id] = true end
  if quiescing then claim.parked = true quiescing.check() return end -- the new state deletes it
  M.claims[id] = nil
  if not ok then
    M.stats.left = M.stats.left + 1
    metrics.inc("rotator_sqs_messages_left_total")
    log.warn("message.left", { message_id = id, workflow = wfs,
      reason = "a workflow failed (or its rule could not be matched); the queue will redeliver it" })
    return
  end
  delete(ctx, msg, wfs)
end

-- The workflow a one-record claim waits for ended (doc: its final document): the claim
-- is settled in a task of its own, from the loop (never inside the workflow's task).
workflow_ended = function(ctx, claim, doc)
  task.defer(function()
    task.spawn(function()
      task.set_context({ message_id = claim.msg.MessageId, workflow = claim.workflow })
      local ok, e = xpcall(settle, debug.traceback, ctx, claim, type(doc) == "table" and doc.Status == "Complete")
      if not ok then
        M.claims[claim.msg.MessageId] = nil
        if claim.hold then claim.hold:release() claim.hold = nil end
        log.error("message.crashed", { message_id = claim.msg.MessageId, error = e })
      end
    end)
  end)
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
-- The ReceiveMessage in flight (M.recv) is never cancelled: SQS keeps an abandoned long
-- poll open and hands it the next message, which then sits in flight with no reader for
-- its visibility timeout and gains a receive count. The call belongs to the host's AWS
-- client, so a reload hands it over to the new state (M.snapshot, M.adopt), and a stop
-- lets it finish (at most M.wait seconds) and takes what it returns as in-flight work.
local function receive_params(ctx)
  return { QueueUrl = ctx.queue_url, WaitTimeSeconds = M.wait, MaxNumberOfMessages = 10,
    MessageAttributeNames = { "All" }, AttributeNames = { "All" }, VisibilityTimeout = M.visibility }
end

-- r = { id, future, done, res, err, handed }: the callback records the answer at once, so
-- a snapshot taken before the poll loop resumes still sees it.
local function on_answer(r)
  return function(res, err)
    r.done, r.res, r.err = true, res, err
    r.future:set()
  end
end

local function open_receive(ctx)
  local r = { future = task.future() }
  local _, id = ctx.svc:call_cb("sqs", "ReceiveMessage", receive_params(ctx), nil, on_answer(r))
  r.id = id
  return r
end

-- A receive a reload handed over; nil if it is gone (it finished and nobody kept it).
local function adopt_receive(id)
  local r = { future = task.future(), id = id }
  if not aws.adopt(id, "sqs", "ReceiveMessage", on_answer(r)) then return nil end
  return r
end

local function take(ctx, res)
  for _, msg in ipairs(res.Messages or {}) do
    M.stats.received = M.stats.received + 1
    metrics.inc("rotator_sqs_messages_received_total")
    log.info("message.received", { message_id = msg.MessageId,
      receive_count = type(msg.Attributes) == "table" and msg.Attributes.ApproximateReceiveCount or nil })
    if quiescing then
      M.received[#M.received + 1] = { msg = msg, last_beat = clock.now(), fresh = true }
    else
      spawn_message(msg, ctx, { retry = true })
    end
  end
end

local function stopping() return M.stopping or host.stopping() or quiescing ~= nil end

-- The daemon's health follows the receives: a failed one is a problem (degraded; failing
-- from the FAILING_AFTER-th in a row), a successful one clears it. A credentials error
-- is a problem of its own.
M.FAILING_AFTER = 3
local CREDENTIAL_CODES = { CredentialsError = true, ExpiredToken = true, ExpiredTokenException = true,
  InvalidClientTokenId = true, UnrecognizedClientException = true, InvalidSignatureException = true,
  SignatureDoesNotMatch = true, AuthFailure = true }
local MISSING_QUEUE = { ["AWS.SimpleQueueService.NonExistentQueue"] = true, QueueDoesNotExist = true }

local function received_ok()
  M.last_receive = clock.now()
  metrics.set("rotator_sqs_last_receive_timestamp_seconds", nil, M.last_receive)
  health.clear("receive")
  health.clear("credentials")
end

local function receive_failed(err)
  local code = type(err) == "table" and err.code or "ClientError"
  local prev = health.problems_by_name.receive -- its count survives a reload, unlike this module
  local n = (prev and prev.count or 0) + 1
  metrics.inc("rotator_sqs_receive_errors_total", { code = code })
  health.set("receive", n >= M.FAILING_AFTER and "failing" or "degraded",
    ("ReceiveMessage failed %d time(s) in a row: %s"):format(n, tostring(err)),
    MISSING_QUEUE[code] and "the queue does not exist: check --queue-url, or create it" or nil)
  if CREDENTIAL_CODES[code] then
    health.set("credentials", "failing", tostring(err), "check the credential chain: rotator whoami")
  end
end

-- No new work while the journal cannot write: no receive is opened, so new messages stay
-- in the queue for later; claims already held keep their heartbeats and their workflows
-- wait for the journal. Logged once each way.
local function journal_failing(ctx)
  local failing = ctx.store ~= nil and ctx.store.healthy ~= nil and not ctx.store:healthy()
  if failing and not M.paused then
    M.paused = clock.now()
    log.warn("intake.paused", { reason = "the journal cannot write; no message is received until it can",
      journal = ctx.store:path(), inflight = inflight() })
  elseif not failing and M.paused then
    log.info("intake.resumed", { paused_seconds = math.floor((clock.now() - M.paused) * 10 + 0.5) / 10 })
    M.paused = nil
  end
  return failing
end

local function poll_loop(ctx, gen)
  local backoff = 1
  while gen == M.gen do
    local r = M.recv
    if not r and stopping() then break end
    if not r and (inflight() >= M.max_messages_inflight or journal_failing(ctx)) then
      task.sleep(1)
    else
      if not r then
        r = open_receive(ctx)
        M.recv = r
      end
      do
        local hold <close> = host.hold() -- a stop waits for the open poll and what it returns
        r.future:wait()
        if r.handed or gen ~= M.gen then break end -- a reload took this receive over
        M.recv = nil
        if r.res then take(ctx, r.res) end -- each message takes its own hold first
      end
      if r.res then
        backoff = 1
        received_ok()
      elseif not stopping() then
        local err = r.err
        receive_failed(err)
        local what, permanent, hint
        if type(err) == "table" then what, permanent, hint = preflight.classify(err, ctx.queue_url) end
        log.error("intake.receive_failed", { error = tostring(err), retry_in = backoff,
          request_id = type(err) == "table" and err.request_id or nil,
          problem = what, heals = permanent ~= nil and tostring(not permanent) or nil, next_step = permanent and hint or nil })
        task.sleep(backoff)
        backoff = math.min(backoff * 2, 60)
      end
    end
  end
  log.info("intake.stopped", { inflight = inflight() })
end

-- The long poll's wait: ROTATOR_RECEIVE_WAIT (default 20 s), and short enough that a stop
-- can wait for the open poll within --stop-timeout (2 s to spare).
local function receive_wait()
  local want = math.max(1, math.min(20, math.tointeger(tonumber(os.getenv("ROTATOR_RECEIVE_WAIT") or "")) or 20))
  local stop_ms = host.config and tonumber(host.config.stop_timeout_ms)
  local fits = stop_ms and math.max(1, stop_ms // 1000 - 2) or want
  if fits < want then
    log.warn("intake.receive_wait_capped", { wait = fits, wanted = want, stop_timeout_ms = stop_ms,
      reason = "a stop waits for the open long poll; raise --stop-timeout for longer polls" })
    return fits
  end
  return want
end

-- Ready: the last receive succeeded within `bound` seconds (default: the long poll's
-- wait + 30 s), or the poll loop started that recently and no receive failed yet (a
-- failing receive makes the daemon's health failing, which probe.lua refuses first).
-- Returns ok, reason.
function M.ready(bound)
  bound = bound or (M.wait + 30)
  local now = clock.now()
  if M.last_receive and now - M.last_receive <= bound then return true end
  local p = health.problems_by_name.receive
  if p then return false, "receive failing: " .. tostring(p.error) end
  if not M.last_receive and M.started_at and now - M.started_at <= bound then return true end
  return false, M.last_receive and ("no successful receive for %d s"):format(math.floor(now - M.last_receive))
    or "no successful receive yet"
end

-- Messages this state holds (claims), for status.
M.claims_count = inflight

function M.start(ctx)
  M.wait = receive_wait()
  M.stopping = false
  M.gen = M.gen + 1
  M.started_at = M.started_at or clock.now()
  log.info("intake.started", { queue = ctx.queue_url, visibility = M.visibility, heartbeat = M.heartbeat,
    wait = M.wait })
  task.spawn(poll_loop, ctx, M.gen)
end

-- Graceful stop: take no new receive. The long poll still open is not cancelled (SQS
-- would hand its next message to nobody): the stop waits for it, at most M.wait seconds,
-- and what it returns is handled like any message in flight.
function M.stop()
  M.stopping = true
  if M.recv then log.info("intake.stopping", { receive = "open", wait_max = M.wait }) end
end

---------------------------------------------------------------- hot reload
-- Stop receiving anew (the receive in flight goes on: M.snapshot hands it over), stop
-- heartbeats, let our SQS calls in flight finish; cb() then. Returns a function reporting
-- how many calls are in flight.
function M.quiesce(cb)
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

-- The claims to hand over (the SQS message with its receipt handle and its last beat;
-- fresh = received during the quiesce, not started yet) and the id of the receive still in
-- flight, released to the adopting state. The old poll loop ends.
function M.snapshot()
  local out = {}
  for _, claim in pairs(M.claims) do
    out[#out + 1] = { msg = claim.msg, last_beat = claim.last_beat }
  end
  for _, c in ipairs(M.received) do out[#out + 1] = c end
  M.received = {}
  local r, receive = M.recv, nil
  if r then
    M.recv, r.handed = nil, true
    if r.done then
      for _, msg in ipairs(r.res and r.res.Messages or {}) do
        M.stats.received = M.stats.received + 1
        metrics.inc("rotator_sqs_messages_received_total")
        log.info("message.received", { message_id = msg.MessageId, handed_over = true,
          receive_count = type(msg.Attributes) == "table" and msg.Attributes.ApproximateReceiveCount or nil })
        out[#out + 1] = { msg = msg, last_beat = clock.now(), fresh = true }
      end
    elseif r.id then
      if aws.release(r.id) then receive = r.id end
    end
    r.future:set()
  end
  return out, receive
end

-- Take claims over (after workflow.rearm): each message attaches to its workflows again;
-- fresh ones start like any received message. `receive`: the call id of a ReceiveMessage
-- in flight that the previous state released; its answer comes here.
function M.adopt(ctx, claims, receive)
  quiescing, M.claims, busy, M.received, M.recv = nil, {}, 0, {}, nil
  for _, c in ipairs(claims or {}) do
    spawn_message(c.msg, ctx, { last_beat = c.last_beat, retry = c.fresh or false })
  end
  if receive then
    M.recv = adopt_receive(math.tointeger(receive) or receive)
    log.info("intake.receive_adopted", { call = receive, result = M.recv and "pending" or "gone" })
  end
  if ctx.queue_url then M.start(ctx) end
end

return M
