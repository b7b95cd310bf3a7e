-- One lock per SSM parameter, so updates of one parameter are serialised among the
-- workflows of one registry (per ctx). Waiting for a lock is a step boundary.
local task = require "engine.task"

local M = {}
local Locks = {}
Locks.__index = Locks

function M.new()
  return setmetatable({ queues = {} }, Locks)
end

local function dequeue(list, entry)
  for i, x in ipairs(list) do
    if x == entry then table.remove(list, i) return end
  end
end

-- block(wf, where, arm) waits as the workflow's step helpers do.
function Locks:lock(wf, name, block)
  local q = self.queues[name]
  if not q then self.queues[name] = {} return end
  block(wf, "lock", function(wake)
    local entry = { wf = wf, wake = wake }
    q[#q + 1] = entry
    return function() dequeue(q, entry) end
  end)
end

function Locks:unlock(name)
  local q = self.queues[name]
  if not q then return end
  local nxt = table.remove(q, 1)
  if nxt then task.defer(function() nxt.wake() end) else self.queues[name] = nil end
end

return M
