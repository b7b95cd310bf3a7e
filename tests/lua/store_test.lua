-- store.lua and the journal module: recording documents, resume lists, the backup-job
-- key, history, compaction, read-only readers, the default state directory.
local store = require "daemon.store"
local journal = require "journal"
local json = require "json"
local T = require "engine.testing"

local tests = {}

local function tmpdir()
  local p = os.tmpname() -- creates a file; use its name for a fresh folder beneath it
  os.remove(p)
  return p .. "-store"
end

local function wipe(dir)
  for _, f in ipairs { "journal.db", "journal.db-wal", "journal.db-shm" } do os.remove(dir .. "/" .. f) end
  os.remove(dir)
end

local function doc(job, status)
  return { WorkflowId = job, BackupJobId = job, SourceTableName = "orders-production",
           Status = status, Steps = json.array {}, _t0 = 12.5 }
end

function tests.record_get_and_history()
  local dir = tmpdir()
  local s <close> = assert(store.open(dir))
  local d = doc("job-a")
  T.eq(type(assert(s:record(d, "Restore Backup"))), "number", "record returns a sequence number")
  d.RestoreTableFromBackupOutput = { TableDescription = { TableName = "orders-staging" } }
  assert(s:record(d, "Wait for Restore"))
  local w = s:get("job-a")
  T.eq(w.state, "Wait for Restore")
  T.eq(w.source, "orders-production")
  T.eq(w.backup_job, "job-a")
  T.eq(w.finished, false)
  T.eq(w.doc.RestoreTableFromBackupOutput.TableDescription.TableName, "orders-staging")
  T.eq(w.doc._t0, nil, "process-local keys are not journaled")
  T.eq(json.encode(w.doc.Steps), "[]", "an empty array stays an array")
  local h = s:history("job-a")
  T.eq(#h, 2)
  T.eq(h[1].step, "Restore Backup")
  T.eq(h[1].doc.RestoreTableFromBackupOutput, nil, "history keeps each step's document")
  T.eq(s:find_by_backup_job("job-a").id, "job-a")
  T.eq(s:get("nope"), nil)
  s:close()
  wipe(dir)
end

function tests.unfinished_lists_what_to_resume()
  local dir = tmpdir()
  local s <close> = assert(store.open(dir))
  assert(s:record(doc("job-1"), "Restore Backup"))
  assert(s:record(doc("job-2"), "Restore Backup"))
  assert(s:record(doc("job-2", "Complete"), "Complete"))
  assert(s:record(doc("job-3", "Error"), "Error"))
  assert(s:record(doc("job-4"), "Wait for Restore"))
  local ids = {}
  for _, w in ipairs(s:unfinished()) do ids[#ids + 1] = w.id end
  T.eq(ids, { "job-1", "job-4" }, "unfinished, oldest first")
  s:close()
  local again <close> = assert(store.open(dir))
  T.eq(#again:unfinished(), 2, "unfinished workflows survive a restart")
  again:close()
  wipe(dir)
end

function tests.one_workflow_per_backup_job()
  local dir = tmpdir()
  local s <close> = assert(store.open(dir))
  assert(s:record(doc("job-x"), "Restore Backup"))
  local d = doc("job-x")
  d.WorkflowId = "someone-else"
  local seq, err = s:record(d, "Restore Backup")
  T.eq(seq, nil)
  assert(err:find("job%-x") and err:find("journal.db"), err)
  T.eq(store.workflow_id("job-x"), "job-x")
  s:close()
  wipe(dir)
end

function tests.module_functions_use_the_open_store()
  local dir = tmpdir()
  local s <close> = assert(store.open(dir))
  assert(store.record({ id = "w1", backup_job = "b1", state = "Started" }, "start"))
  T.eq(store.get("w1").state, "Started")
  T.eq(#store.history("w1"), 1)
  s:close()
  T.raises(function() store.get("w1") end, "not open")
  wipe(dir)
end

function tests.record_rejects_documents_without_id()
  local dir = tmpdir()
  local s <close> = assert(store.open(dir))
  T.raises(function() s:record({ Status = "x" }, "step") end, "no id")
  local seq, err = s:record({ id = "f", fn = print }, "step")
  T.eq(seq, nil)
  assert(err:find("cannot be journaled"), err)
  s:close()
  wipe(dir)
end

function tests.compaction_keeps_recent_history()
  local dir = tmpdir()
  local s <close> = assert(store.open(dir, { keep_finished = 3, retain = false }))
  for i = 1, 10 do
    local d = doc("c" .. i)
    assert(s:record(d, "Restore Backup"))
    d.Status = "Complete"
    assert(s:record(d, "Complete"))
  end
  assert(s:record(doc("live"), "Restore Backup"))
  local res = assert(s:compact())
  T.eq(res.transitions_deleted, 14)
  local w, t = s:counts()
  T.eq({ w, t }, { 11, 7 }, "latest documents kept, history only for 3 + live")
  T.eq(s:get("c1").doc.Status, "Complete", "a compacted workflow keeps its latest document")
  res = assert(s:compact { retain = 0, now = os.time() + 10 })
  T.eq(res.workflows_deleted, 7)
  T.eq(#s:unfinished(), 1, "live workflows are never compacted")
  s:close()
  wipe(dir)
end

function tests.compact_every_runs_on_the_loop()
  local dir = tmpdir()
  local s <close> = assert(store.open(dir, { keep_finished = 0, retain = false }))
  assert(s:record(doc("e1", "Complete"), "Complete"))
  local t = s:compact_every(0.01)
  require("engine.task").sleep(0.05)
  T.eq(select(2, s:counts()), 0, "the timer compacted")
  T.eq(t:pending(), true)
  s:close()
  T.eq(t:pending(), false, "close stops the timer")
  wipe(dir)
end

function tests.readonly_reader_beside_a_writer()
  local dir = tmpdir()
  local s <close> = assert(store.open(dir))
  assert(s:record(doc("r1"), "Restore Backup"))
  local r <close> = assert(store.open(dir, { readonly = true }))
  T.eq(r:get("r1").state, "Restore Backup")
  assert(s:record(doc("r2"), "Restore Backup"))
  T.eq(#r:unfinished(), 2, "the reader sees later commits")
  local seq, err = r:record(doc("r3"), "x")
  T.eq(seq, nil)
  assert(err:find("read%-only"), err)
  r:close()
  s:close()
  wipe(dir)
end

function tests.journal_module_basics()
  local dir = tmpdir()
  local j = assert(journal.open(dir .. "/journal.db"))
  T.eq(tostring(j):match("^journal%("), "journal(")
  T.eq(j:append("w", "s", { a = 1 }, { finished = true }), 1)
  T.eq(j:get("w").finished, true)
  T.eq(j:list { limit = 1 }[1].id, "w")
  T.raises(function() j:append("w", "s", 42) end, "table expected")
  j:close()
  T.raises(function() j:get("w") end, "closed")
  j:close() -- closing twice is harmless
  local none, err = journal.open(dir .. "/missing/journal.db", { readonly = true })
  T.eq(none, nil)
  assert(err:find("missing/journal.db", 1, true), err)
  wipe(dir)
end

function tests.default_state_dir_is_documented_order()
  local dir = assert(store.default_state_dir())
  local configured = require("host").config.state_dir
  if configured then
    T.eq(dir, configured)
  elseif journal.getuid() == 0 then
    T.eq(dir, "/var/lib/rotator")
  else
    assert(dir:match("/rotator$"), dir)
  end
  T.eq(store.path("/x"), "/x/journal.db")
end

-- Run fn(i) in n tasks started in one loop turn; returns once all have returned.
local function in_tasks(n, fn)
  local task = require "engine.task"
  local left, done = n, task.future()
  for i = 1, n do
    task.spawn(function()
      fn(i)
      left = left - 1
      if left == 0 then done:set() end
    end)
  end
  done:wait()
end

-- Tasks that record in the same loop turn share one transaction: N workflows of two
-- transitions each take two commits, and each task gets its own sequence number only
-- once its record is durable (read back from a second connection).
function tests.group_commit_shares_one_commit_per_turn()
  local dir = tmpdir()
  local s <close> = assert(store.open(dir))
  local n, seqs = 20, {}
  local reader = assert(journal.open(dir .. "/journal.db", { readonly = true }))
  local durable_when_acked = true
  in_tasks(n, function(i)
    local d = doc("grp-" .. i)
    for _, step in ipairs { "Accepted", "Restore Started" } do
      local seq = assert(s:record_wait(d, step))
      seqs[#seqs + 1] = seq
      local h = reader:history("grp-" .. i)
      if not (h and h[#h] and h[#h].seq == seq) then durable_when_acked = false end
    end
  end)
  reader:close()
  T.eq(s.records, 2 * n, "every transition recorded")
  T.eq(s.commits, 2, "one commit per loop turn, not one per record")
  T.eq(durable_when_acked, true, "each record is readable from another connection when its task resumes")
  table.sort(seqs)
  for i = 2, #seqs do T.eq(seqs[i] ~= seqs[i - 1], true, "distinct sequence numbers") end
  T.eq(#s:history("grp-7"), 2)
  s:close()
  wipe(dir)
end

-- A record the journal refuses (a second workflow for one backup job) fails alone; the
-- other records of its batch commit.
function tests.group_commit_refuses_one_record_alone()
  local dir = tmpdir()
  local s <close> = assert(store.open(dir))
  assert(s:record(doc("job-x"), "Accepted")) -- synchronous path: its own commit
  local clash = doc("other")
  clash.WorkflowId, clash.BackupJobId = "wf-other", "job-x"
  local docs, results = { doc("job-y"), clash, doc("job-z") }, {}
  in_tasks(3, function(i) results[i] = table.pack(s:record_wait(docs[i], "Accepted")) end)
  T.eq(type(results[1][1]), "number", "the record before the refused one commits")
  T.eq(results[2][1], nil, "the clashing record is refused")
  T.eq(results[2][3], "constraint")
  T.eq(type(results[3][1]), "number", "the record after the refused one commits")
  T.eq(s:get("wf-other"), nil, "nothing of the refused record was written")
  T.eq(s:get("job-z").state, "Accepted")
  T.eq(s.commits, 2, "the synchronous record, then one batch")
  s:close()
  wipe(dir)
end

-- Closing the store writes the records still queued for the turn.
function tests.close_writes_the_queued_records()
  local task = require "engine.task"
  local dir = tmpdir()
  local s = assert(store.open(dir))
  local got
  task.spawn(function() got = s:record_wait(doc("job-q"), "Accepted") end)
  T.eq(got, nil, "still queued")
  s:close()
  T.eq(type(got), "number", "the close committed it and resumed the task")
  local r <close> = assert(store.open(dir))
  T.eq(r:get("job-q").state, "Accepted")
  r:close()
  wipe(dir)
end

return tests
