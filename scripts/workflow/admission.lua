-- Admission: at most config.max_concurrent restores in flight (a slot from Restore Backup
-- until the table is ACTIVE) and restore calls paced to config.restores_per_second.
-- One admission per registry (per ctx). Waiting for a slot is a step boundary.
local task = require "engine.task"
local config = require "workflow.config"

local M = {}
local Admission = {}
Admission.__index = Admission

function M.new()
  return setmetatable({ active = 0, waiting = {}, next_restore_at = 0 }, Admission)
end

local function dequeue(list, entry)
  for i, x in ipairs(list) do
    if x == entry then table.remove(list, i) return end
  end
end

-- force: the restore already started, so the slot is owed (re-armed after a reload/crash).
-- block(wf, where, arm) waits as the workflow's step helpers do.
function Admission:acquire(wf, force, block)
  if force or self.active < config.values.max_concurrent then
    self.active = self.active + 1
    wf.slot = true
    return
  end
  block(wf, "admission", function(wake)
    local entry = { wf = wf, wake = wake }
    self.waiting[#self.waiting + 1] = entry
    return function() dequeue(self.waiting, entry) end
  end)
end

-- n slots owed to workflows without a handle (dormant: workflow/dormant.lua); one comes
-- back with release({ slot = true }).
function Admission:hold(n)
  self.active = self.active + (n or 1)
end

function Admission:release(wf)
  if not wf.slot then return end
  wf.slot = nil
  local nxt = table.remove(self.waiting, 1)
  if nxt then
    nxt.wf.slot = true -- handed over
    task.defer(function() nxt.wake() end)
  else
    self.active = self.active - 1
  end
end

function Admission:counts()
  return { active = self.active, waiting = #self.waiting }
end

-- Seconds to wait so restore calls keep to restores_per_second (the turn is reserved).
function Admission:pace_delay(clock_now)
  local at = math.max(clock_now, self.next_restore_at)
  self.next_restore_at = at + 1 / config.values.restores_per_second
  return at - clock_now
end

return M
