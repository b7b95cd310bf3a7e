-- The workflow store: the durable journal (require "journal", SQLite in WAL mode with
-- synchronous=FULL) seen as workflow documents.
--
--   local store = require "daemon.store"
--   local s = assert(store.open())            -- the state directory's journal.db
--   assert(s:record(doc, "Restore Backup"))   -- returns after the record is fsync'd;
--                                             -- only then acknowledge the step's effect
--   s:record_wait(doc, "Restore Backup")      -- in a task: the same, sharing one commit
--                                             -- (one fsync) with the records of the
--                                             -- same loop turn (group commit)
--   for _, w in ipairs(s:unfinished()) do resume(w.doc) end
--
-- A workflow's id is its backup job id (store.workflow_id), so an SQS/SNS redelivery or a
-- restart maps to the same workflow, and the journal refuses a second workflow for one
-- backup job. Module-level functions (store.record(doc, step), store.unfinished(), ...)
-- act on the store opened last.
--
-- Document fields the store reads: id (or WorkflowId, or derived from the backup job),
-- backup_job (or BackupJobId), source (or SourceTableName), Status / state, finished.
-- Keys starting with "_" are process-local (monotonic timestamps, handles) and are not
-- journaled.
--
-- State directory, first that applies: --state-dir / ROTATOR_STATE_DIR; /var/lib/rotator
-- when running as root; $XDG_STATE_HOME/rotator; ~/.local/state/rotator.
--
-- Compaction (s:compact(), or s:compact_every(seconds) on a timer) keeps the full history
-- of the newest `keep_finished` finished workflows (default 100); older finished ones keep
-- only their latest document, and are dropped once not updated for `retain` seconds
-- (default 14 days, SQS's longest retention, so a late redelivery still finds the job).
-- Unfinished workflows are never compacted. The journal thus stays bounded by the live
-- workflows plus that history.
--
-- Write health (s.health, s:healthy(), s:health_report()): a failed append (disk full,
-- I/O error, a state directory turned read-only, a damaged file) turns the store
-- "failing": logged once (journal.write_failed, with the next step), then a count every
-- M.report_every seconds (journal.write_failing), and journal.recovered when an append
-- succeeds again. s:record_wait(doc, step) is what a workflow step uses: it retries the
-- same append in place (backoff M.retry.first .. M.retry.max seconds) until it is
-- durable, so nothing that depends on it (an AWS call, an SQS delete, an SSM move)
-- happens before; the intake starts no new work while the store is failing.
--
-- The WAL stays bounded: SQLite checkpoints every 64 pages and cuts the WAL file back to
-- 512 KiB (journal.c); s:checkpoint_every(seconds) also folds it in and truncates it when
-- the journal has been idle for a moment (M.defaults.idle).
local journal = require "journal"
local json = require "json"
local host = require "host"
local log = require "log"
local timer = require "timer"
local clock = require "clock"
local metrics = require "engine.metrics"
local health = require "daemon.health"
local task = require "engine.task"

local M = {}

M.FILE = "journal.db"
M.defaults = { keep_finished = 100, retain = 14 * 86400, compact_every = 3600, checkpoint_every = 10, idle = 2 }
M.retry = { first = tonumber(os.getenv("ROTATOR_JOURNAL_RETRY") or "") or 1, max = 30 }
M.report_every = 60
-- Group commit for records made inside tasks (Store:record_wait); ROTATOR_JOURNAL_GROUP=0
-- gives every record its own transaction and fsync (benchmarks compare the two).
M.group = os.getenv("ROTATOR_JOURNAL_GROUP") ~= "0"

-- What to do, by failure kind (journal.c journal_errkind).
local NEXT = {
  disk_full = "free space on the file system of the state directory; work resumes by itself",
  io_error = "check the disk of the state directory (dmesg, SMART); work resumes by itself once writes succeed",
  read_only = "make the state directory writable again (mount, permissions); work resumes by itself",
  no_access = "make the state directory and journal.db writable by this user again; work resumes by itself",
  corrupt = "stop the daemon, run `rotator journal check`, then `rotator journal quarantine`, and start it again",
}

local FINISHED = { Complete = true, Error = true, Skipped = true }

function M.default_state_dir()
  local configured = host.config.state_dir
  if configured and configured ~= "" then return configured end
  if journal.getuid() == 0 then return "/var/lib/rotator" end
  local xdg = os.getenv("XDG_STATE_HOME")
  if xdg and xdg:sub(1, 1) == "/" then return xdg .. "/rotator" end
  local home = os.getenv("HOME")
  if home and home ~= "" then return home .. "/.local/state/rotator" end
  return nil, "no state directory: set --state-dir or ROTATOR_STATE_DIR (HOME is not set)"
end

function M.path(state_dir)
  local dir, err = state_dir, nil
  if not dir then dir, err = M.default_state_dir() end
  if not dir then return nil, err end
  return dir .. "/" .. M.FILE
end

-- The idempotency key: one workflow per backup job.
function M.workflow_id(backup_job_id)
  assert(type(backup_job_id) == "string" and backup_job_id ~= "", "backup job id required")
  return backup_job_id
end

-- A copy without process-local ("_"-prefixed) keys, keeping json array/object marks.
local function snapshot(v, seen)
  if type(v) ~= "table" then return v end
  seen = seen or {}
  if seen[v] then error("store: the workflow document contains a cycle", 0) end
  seen[v] = true
  local out = {}
  for k, x in pairs(v) do
    if not (type(k) == "string" and k:sub(1, 1) == "_") then out[k] = snapshot(x, seen) end
  end
  seen[v] = nil
  return setmetatable(out, getmetatable(v))
end

local function meta_of(doc, step)
  local job = doc.backup_job or doc.BackupJobId
  local state = doc.state or doc.Status or step
  local finished = doc.finished == true or FINISHED[doc.Status] == true
  return {
    state = state,
    backup_job = job,
    source = doc.source or doc.SourceTableName,
    finished = finished,
  }
end

local function id_of(doc)
  local id = doc.id or doc.WorkflowId
  if not id and (doc.backup_job or doc.BackupJobId) then
    id = M.workflow_id(doc.backup_job or doc.BackupJobId)
  end
  return id
end

local function decode(row)
  if not row then return nil end
  local doc, err = json.decode(row.doc)
  if doc == nil then
    doc = { id = row.id, journal_error = "unreadable document: " .. tostring(err) }
  end
  row.doc = doc
  return row
end

local Store = {}
Store.__index = Store

-- The record's id, JSON text and listing fields, or nil, msg when it cannot be journaled.
local function prepare(doc, step)
  assert(type(doc) == "table", "store:record(doc, step): doc must be a table")
  assert(type(step) == "string" and step ~= "", "store:record(doc, step): step must be a string")
  local id = id_of(doc)
  if type(id) ~= "string" or id == "" then
    error("store:record: the document has no id (set doc.id or doc.BackupJobId)", 3)
  end
  local text, jerr = json.encode(snapshot(doc))
  if not text then return nil, "store: workflow " .. id .. " cannot be journaled: " .. jerr end
  return id, text, meta_of(doc, step)
end

-- Health and metrics after a failed append (or a failed batch, for its first record).
function Store:failed(id, step, err, kind, n)
  metrics.inc("rotator_journal_append_errors_total", nil, n or 1)
  health.set("journal", "failing", "journal append failed: " .. tostring(err),
    NEXT[kind] or ("check the state directory's disk (space, permissions): " .. tostring(self:path())))
  self:note_failure(id, step, err, kind)
  return nil, err, kind
end

-- After a commit of n records.
function Store:committed(n)
  self.commits, self.records = self.commits + 1, self.records + n
  metrics.inc("rotator_journal_commits_total")
  metrics.inc("rotator_journal_records_total", nil, n)
  health.clear("journal")
  self.last_write = clock.mono()
  self:note_success()
end

-- Record a transition: the document as it is after `step`. Returns the sequence number
-- once the record is durable, or nil, msg (then the step must not be acknowledged).
-- Synchronous: its own transaction and fsync (CLI commands, recovery, tests).
function Store:record(doc, step)
  local id, text, meta = prepare(doc, step)
  if not id then return nil, text, "encode" end
  local t0 = clock.mono()
  local seq, err, kind = self.j:append(id, step, text, meta)
  metrics.observe("rotator_journal_append_duration_seconds", nil, clock.mono() - t0)
  if not seq then return self:failed(id, step, err, kind) end
  self:committed(1)
  return seq
end

---------------------------------------------------------------- group commit
-- Inside a task, a record joins the records of the same loop turn: they are written at
-- the start of the next turn in one transaction and one fsync (Store:flush), and each
-- waiting task resumes only then, with its own sequence number or error. Nothing that
-- depends on a record happens before it is durable, as with Store:record.

-- Write the queued records in one batch: true, {seq | {nil, err, kind}} per record, or
-- nil, err, kind when the batch as a whole failed (none of it is durable).
local function write_batch(j, q)
  local ok, err, kind = j:begin()
  if not ok then return nil, err, kind end
  local res = {}
  for i, e in ipairs(q) do
    local seq, aerr, akind = j:append(e.id, e.step, e.text, e.meta)
    if seq then res[i] = seq
    elseif akind == "constraint" then res[i] = { aerr, akind } -- refused alone, the rest stands
    else j:rollback() return nil, aerr, akind end
  end
  ok, err, kind = j:commit()
  if not ok then return nil, err, kind end
  return true, res
end

function Store:flush()
  local q = self.queue
  self.queue = nil
  if not q or #q == 0 then return end
  -- Queued after the store closed (a task that ran on during shutdown): never written,
  -- so never acknowledged; the task stays parked and its step restarts from the last
  -- journaled boundary.
  if self.closed then return end
  local t0 = clock.mono()
  local pok, ok, res, kind = pcall(write_batch, self.j, q)
  if not pok then
    pcall(self.j.rollback, self.j) -- no batch may stay open for the next record
    ok, res, kind = nil, tostring(ok), "error"
  end
  metrics.observe("rotator_journal_append_duration_seconds", nil, clock.mono() - t0)
  if not ok then
    self:failed(q[1].id, q[1].step, res, kind, #q)
    for _, e in ipairs(q) do if e.wake then e.wake(nil, res, kind) end end
    return
  end
  local n = 0
  for _, r in ipairs(res) do if type(r) ~= "table" then n = n + 1 end end
  if n > 0 then self:committed(n) end
  for i, e in ipairs(q) do
    local r = res[i]
    if type(r) == "table" then self:failed(e.id, e.step, r[1], r[2]) end
    if e.wake then
      if type(r) == "table" then e.wake(nil, r[1], r[2]) else e.wake(r) end
    end
  end
end

-- Queue the record for this turn's batch and wait for its commit (inside a task).
-- on_wait(true) once queued, on_wait(false) once it returns.
function Store:record_group(doc, step, on_wait)
  local id, text, meta = prepare(doc, step)
  if not id then return nil, text, "encode" end
  local q = self.queue
  if not q then
    q = {}
    self.queue = q
    task.defer(function() self:flush() end)
  end
  local e = { id = id, step = step, text = text, meta = meta }
  q[#q + 1] = e
  if on_wait then on_wait(true) end
  local seq, err, kind = task.wait(function(wake)
    e.wake = wake
    return function() e.wake = nil end
  end)
  if on_wait then on_wait(false) end
  return seq, err, kind
end

-- Failures that waiting does not mend: the document itself is refused.
local PERMANENT = { encode = true, constraint = true }

-- Record, retrying the same append in place until it is durable (inside a task). A
-- refused document returns nil, msg at once. on_wait(true) before each wait and
-- on_wait(false) after it let the caller mark what it waits for. With M.group (the
-- default) inside a task the record joins the turn's group commit.
function Store:record_wait(doc, step, on_wait)
  local delay = M.retry.first
  local _, main = coroutine.running()
  local grouped = M.group and not main
  while true do
    local seq, err, kind
    if grouped and not self.closed then seq, err, kind = self:record_group(doc, step, on_wait)
    else seq, err, kind = self:record(doc, step) end
    if seq then return seq end
    if PERMANENT[kind] or self.closed then return nil, err, kind end
    if on_wait then on_wait(true) end
    task.sleep(delay)
    if on_wait then on_wait(false) end
    delay = math.min(delay * 2, M.retry.max)
  end
end

---------------------------------------------------------------- write health
function Store:note_failure(id, step, err, kind)
  local h = self.health
  h.failures, h.last_error, h.kind, h.last_failure = h.failures + 1, err, kind, clock.now()
  if h.ok then
    h.ok, h.since, h.repeats, h.reported = false, clock.now(), 0, clock.mono()
    log.error("journal.write_failed", { workflow = id, step = step, kind = kind, error = err,
      result = "nothing is acknowledged until it is journaled: the step waits and retries, no new work starts",
      next = NEXT[kind] or "check the state directory and journal.db; work resumes by itself once writes succeed" })
    return
  end
  h.repeats = h.repeats + 1
  if clock.mono() - h.reported >= M.report_every then
    h.reported = clock.mono()
    log.warn("journal.write_failing", { repeats = h.repeats, since = clock.rfc3339(h.since), kind = kind,
      workflow = id, step = step, error = err })
  end
end

function Store:note_success()
  local h = self.health
  if h.ok then return end
  log.warn("journal.recovered", { repeats = h.repeats, kind = h.kind,
    seconds = math.floor((clock.now() - h.since) * 10 + 0.5) / 10, result = "new work starts again" })
  h.ok, h.recovered, h.since = true, clock.now(), nil
end

function Store:healthy() return self.health.ok end

-- For `rotator status`: {state = "ok" | "failing", kind, since, repeats, failures, last_error, ...}.
function Store:health_report()
  local h = self.health
  local r = { state = h.ok and "ok" or "failing", path = self.j:path(), failures = h.failures,
    commits = self.commits, records = self.records }
  if not h.ok then
    r.kind, r.since, r.repeats, r.error = h.kind, clock.rfc3339(h.since), h.repeats, h.last_error
    r.next = NEXT[h.kind]
  elseif h.last_failure then
    r.last_failure, r.last_error = clock.rfc3339(h.last_failure), h.last_error
  end
  if h.recovered then r.recovered = clock.rfc3339(h.recovered) end
  return r
end

-- The workflow's latest row, its document decoded ({id, state, doc, finished, ...}).
function Store:get(id) return decode(self.j:get(id)) end
function Store:find_by_backup_job(job) return decode(self.j:find_backup_job(job)) end

-- Unfinished workflows, oldest update first: what a starting daemon resumes.
function Store:unfinished()
  local rows, err = self.j:list { unfinished = true }
  if not rows then return nil, err end
  local out = {}
  for i = #rows, 1, -1 do out[#out + 1] = decode(rows[i]) end
  return out
end

function Store:list(opts)
  local rows, err = self.j:list(opts)
  if not rows then return nil, err end
  for _, r in ipairs(rows) do decode(r) end
  return rows
end

function Store:history(id)
  local rows, err = self.j:history(id)
  if not rows then return nil, err end
  for _, r in ipairs(rows) do decode(r) end
  return rows
end

function Store:counts() return self.j:counts() end

function Store:compact(opts)
  opts = opts or {}
  local res, err = self.j:compact {
    keep_finished = opts.keep_finished or self.keep_finished,
    older_than = opts.retain or self.retain,
    now = opts.now,
  }
  if not res then
    log.error("journal.compact_failed", { error = err })
    return nil, err
  end
  if res.transitions_deleted > 0 or res.workflows_deleted > 0 then
    log.info("journal.compacted", res)
  end
  return res
end

-- Compact every `seconds` (default from the store's options) on the loop; returns the
-- timer (cancel it, or close the store, to stop).
function Store:compact_every(seconds)
  if self.timer then self.timer:cancel() end
  self.timer = timer.every(seconds or self.compact_interval, function() self:compact() end)
  return self.timer
end

-- Fold the WAL into the database and truncate it: {wal_frames, checkpointed, busy} or nil, msg.
function Store:checkpoint()
  local res, err = self.j:checkpoint()
  if not res then log.warn("journal.checkpoint_failed", { error = err }) end
  return res, err
end

-- Every `seconds`: checkpoint (TRUNCATE) once the journal was written and has then been
-- idle for M.defaults.idle seconds, and is healthy.
function Store:checkpoint_every(seconds)
  if self.ckpt_timer then self.ckpt_timer:cancel() end
  local done_at = nil
  self.ckpt_timer = timer.every(seconds or M.defaults.checkpoint_every, function()
    local last = self.last_write
    if not last or last == done_at or not self.health.ok then return end
    if clock.mono() - last < M.defaults.idle then return end
    if self:checkpoint() then done_at = last end
  end)
  return self.ckpt_timer
end

function Store:close()
  if self.queue and self.j and not self.closed then self:flush() end -- the turn's records first
  self.closed = true
  if self.timer then self.timer:cancel(); self.timer = nil end
  if self.ckpt_timer then self.ckpt_timer:cancel(); self.ckpt_timer = nil end
  if self.j then self.j:close() end
  if M.current == self then M.current = nil end
end

Store.__close = Store.close

function Store:path() return self.j:path() end

-- Bytes on disk: the database and its write-ahead log.
function Store:size()
  local total = 0
  for _, p in ipairs({ self:path(), self:path() .. "-wal" }) do
    local f = io.open(p, "rb")
    if f then
      total = total + (f:seek("end") or 0)
      f:close()
    end
  end
  return total
end

-- Open the store in state_dir (default: M.default_state_dir()). opts: keep_finished,
-- retain (seconds, or false to keep latest documents forever), compact_every (seconds),
-- readonly, checked (this process checked the file at its first open: a reload skips the
-- quick_check). Returns the store or nil, msg.
function M.open(state_dir, opts)
  opts = opts or {}
  local path, err = M.path(state_dir)
  if not path then return nil, err end
  local j, jerr = journal.open(path, { readonly = opts.readonly, checked = opts.checked })
  if not j then return nil, jerr end
  local retain = opts.retain
  if retain == nil then retain = M.defaults.retain end
  local s = setmetatable({
    j = j,
    keep_finished = opts.keep_finished or M.defaults.keep_finished,
    retain = retain,
    compact_interval = opts.compact_every or M.defaults.compact_every,
    health = { ok = true, failures = 0, repeats = 0 },
    commits = 0, records = 0, -- since open: records / commits is the group commit's gain
  }, Store)
  M.current = s
  return s
end

local function current()
  local s = M.current
  if not s then error("store: not open (call store.open first)", 3) end
  return s
end

function M.record(doc, step) return current():record(doc, step) end
function M.get(id) return current():get(id) end
function M.find_by_backup_job(job) return current():find_by_backup_job(job) end
function M.unfinished() return current():unfinished() end
function M.history(id) return current():history(id) end
function M.compact(opts) return current():compact(opts) end

return M
