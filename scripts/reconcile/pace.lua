-- A token bucket that paces read calls (ListTables, ListBackups, DescribeTable, ...) so a
-- reconcile of a large account stays inside the account's API limits while the daemon's
-- own workflows keep their share.
--   local b = pace.new(5, 10)   -- 5 calls a second, bursts of up to 10
--   b:take()                    -- inside a task: returns at once or sleeps until a token
--   b.waited                    -- seconds spent waiting so far
--   pace.call(b, svc, service, action, params)   b:take() (b may be nil), then svc:call
-- rate <= 0 (or nil) turns pacing off.
local clock = require "clock"
local task = require "engine.task"

local M = {}

local Bucket = {}
Bucket.__index = Bucket

function M.new(rate, burst)
  rate = tonumber(rate) or 0
  burst = math.max(1, tonumber(burst) or math.max(1, math.ceil(rate)))
  return setmetatable({ rate = rate, burst = burst, tokens = burst, at = clock.mono(), waited = 0, taken = 0 }, Bucket)
end

function Bucket:refill()
  local now = clock.mono()
  self.tokens = math.min(self.burst, self.tokens + (now - self.at) * self.rate)
  self.at = now
end

function Bucket:take()
  self.taken = self.taken + 1
  if self.rate <= 0 then return end
  self:refill()
  while self.tokens < 1 do
    local wait = (1 - self.tokens) / self.rate
    self.waited = self.waited + wait
    task.sleep(wait)
    self:refill()
  end
  self.tokens = self.tokens - 1
end

function M.call(bucket, svc, service, action, params)
  if bucket then bucket:take() end
  return svc:call(service, action, params)
end

return M
