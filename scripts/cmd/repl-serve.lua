-- rotator repl-serve FD: the private engine behind `rotator repl --local` (internal).
-- Serves the REPL on an inherited socket with the policies loaded, until it closes.
local host = require "host"
local repl = require "console.repl"
local policies = require "policy.loader"

local usage = [[
usage: rotator repl-serve FD

Internal: the engine `rotator repl --local` starts on its end of a socketpair (FD).

Example (what `rotator repl --local` runs):
  rotator repl-serve 3
]]

local function run(argv)
  local fd = tonumber(argv[1])
  if not fd then io.stderr:write(usage) return 2 end
  local files = policies.list(host.config.policies_dir) or {}
  local _, errs = policies.load(files)
  for _, e in ipairs(errs or {}) do io.stderr:write("warning: policy not loaded: ", e, "\n") end
  repl.adopt(fd, function() host.exit(0) end)
end

return { hidden = true, usage = usage, run = run }
