-- The workflow's timing and admission settings: defaults, then ROTATOR_* environment
-- variables, then what configure() is given (tests, benchmarks).
local M = {}

M.defaults = {
  first_poll = 5,              -- first DescribeTable after 5 s ...
  max_poll = 60,               -- ... backing off to every 60 s
  poll_factor = 2,
  deadline = 24 * 3600,        -- overall wait limit
  max_concurrent = 50,         -- concurrent restores (account limit is about 50)
  restores_per_second = 10,    -- RestoreTableFromBackup calls per second
  limit_backoff = 120,         -- LimitExceededException: requeue after 2 min ...
  limit_backoff_max = 900,     -- ... doubling up to 15 min
  dormant_after = 5,           -- a wait at least this long is held dormant (workflow/dormant.lua)
}

local ENV = {
  first_poll = "ROTATOR_WAIT_FIRST", max_poll = "ROTATOR_WAIT_MAX", deadline = "ROTATOR_WAIT_DEADLINE",
  max_concurrent = "ROTATOR_MAX_RESTORES", restores_per_second = "ROTATOR_RESTORES_PER_SECOND",
  limit_backoff = "ROTATOR_LIMIT_BACKOFF", limit_backoff_max = "ROTATOR_LIMIT_BACKOFF_MAX",
  dormant_after = "ROTATOR_DORMANT_AFTER",
}

M.values = {}

function M.configure(over)
  for k, v in pairs(M.defaults) do M.values[k] = v end
  for k, name in pairs(ENV) do
    local v = tonumber(os.getenv(name) or "")
    if v then M.values[k] = v end
  end
  for k, v in pairs(over or {}) do M.values[k] = v end
  return M.values
end
M.configure()

return M
