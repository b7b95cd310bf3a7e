-- rotator repl-serve FD: the private engine behind `rotator repl --local` (internal).
-- Serves the REPL on an inherited socket with the policies loaded, until it closes.
local host = require "host"
local repl = require "console.repl"
local policies = require "policy.loader"

local usage = "usage: rotator repl-serve FD   (internal: started by `rotator repl --local`)\n"

local function run(argv)
  local fd = tonumber(argv[1])
  if not fd then io.stderr:write(usage) return 2 end
  local files = policies.list(host.config.policies_dir) or {}
  local _, errs = policies.load(files)
  for _, e in ipairs(errs or {}) do io.stderr:write("warning: policy not loaded: ", e, "\n") end
  repl.adopt(fd, function() host.exit(0) end)
end

return { usage = usage, run = run }
