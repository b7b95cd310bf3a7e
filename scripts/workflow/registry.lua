-- What the workflows of one ctx share: the live workflows (by id), the dormant ones
-- (workflow/dormant.lua, made on first use by driver.lua, with the proxy handles of those
-- something waits on), the admission slots and restore pacing, the per-parameter SSM
-- locks, and the parking state of a reload.
-- A ctx owns its registry (ctx.workflows, made on first use), so a dry run (its own ctx)
-- never attaches to, queues behind or is parked with the daemon's workflows.
local admission = require "workflow.admission"
local locks = require "workflow.locks"

local M = {}

function M.new()
  return { live = {}, dormant = nil, proxies = {}, admission = admission.new(), locks = locks.new(), parking = nil }
end

function M.of(ctx)
  local r = ctx.workflows
  if not r then
    r = M.new()
    ctx.workflows = r
  end
  return r
end

return M
