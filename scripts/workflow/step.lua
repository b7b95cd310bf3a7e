-- What every workflow step uses to touch the outside: journal a transition, call AWS,
-- wait. wf is the workflow's handle ({doc, rule, gen, born, where, co, ...}, see
-- driver.lua). A handle's generation moves when a reload parks or snapshots it; an AWS
-- answer that comes back to an older generation is dropped and the task parks.
local task = require "engine.task"
local clock = require "clock"
local config = require "workflow.config"
local D = require "workflow.doc"

local M = {}

-- Journal the transition; nothing that depends on it happens before this returns.
function M.record(ctx, wf, what)
  if not ctx.store then return end
  local ok, err = ctx.store:record(wf.doc, what)
  if not ok then D.fail("journal: cannot record " .. what .. ": " .. tostring(err)) end
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
