-- What every workflow step uses to touch the outside: journal a transition, call AWS,
-- wait. wf is the workflow's handle ({doc, rule, gen, born, where, co, ...}, see
-- driver.lua). A handle's generation moves when a reload parks or snapshots it; an AWS
-- answer that comes back to an older generation is dropped and the task parks.
local task = require "engine.task"
local clock = require "clock"
local config = require "workflow.config"
local D = require "workflow.doc"

local M = {}

-- Journal the transition; nothing that depends on it happens before this returns (the
-- record shares its commit and fsync with the other records of the loop turn). A
-- journal that cannot write (disk full, I/O error, read-only) does not fail the
-- workflow: the same append is retried in place until it is durable (store:record_wait).
-- While it waits, doc.JournalPending names the step, so a reload that hands the document
-- over records it first (M.flush_pending) before the workflow goes on. Only a document
-- the journal refuses (it cannot be encoded) fails the workflow.
function M.journal(store, doc, what)
  return store:record_wait(doc, what, function(waiting) doc.JournalPending = waiting and what or nil end)
end

function M.record(ctx, wf, what)
  if not ctx.store then return end
  local ok, err = M.journal(ctx.store, wf.doc, what)
  if not ok then D.fail("journal: cannot record " .. what .. ": " .. tostring(err)) end
end

-- A handed-over document whose last transition was never journaled: journal it now.
function M.flush_pending(ctx, wf)
  local what = wf.doc.JournalPending
  if not what then return end
  wf.doc.JournalPending = nil
  M.record(ctx, wf, what)
end

-- AWS call from a step: res, request_id | nil, err (and step s done with the error).
function M.call(ctx, wf, s, service, action, params)
  local gen = wf.gen
  local res, rid = ctx.svc:call(service, action, params)
  if wf.gen ~= gen then return task.park() end
  if res then return res, rid end
  if s then D.done(s, D.rid(rid), rid) end
  return nil, rid
end

-- Block the workflow's task (a cancellable task.wait): arm(wake) -> cleanup.
function M.block(wf, where, arm)
  wf.where = where
  task.wait(arm)
  wf.where = "step"
end

function M.sleep(wf, seconds)
  wf.where = "sleep"
  task.sleep(math.max(seconds, 0))
  wf.where = "step"
end

function M.past_deadline(doc)
  return clock.now() - doc.StartedAt > config.values.deadline
end

return M
