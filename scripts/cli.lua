-- The engine's command table. The C host calls cli.main(name, args): a command returns
-- an exit status, or nothing when it has scheduled work on the loop (it then calls
-- host.exit itself).
local M = {}

local NAMES = { "check", "eval", "test", "run", "replay", "repl-serve", "journal", "setup", "redrive" }
local commands = {}

local function load_commands()
  if next(commands) then return end
  for _, name in ipairs(NAMES) do commands[name] = require("cmd." .. name) end
end

function M.main(name, args)
  require "policy.rules" -- registers the rule validators before any policy loads
  load_commands()
  local cmd = commands[name]
  if not cmd then
    io.stderr:write(("rotator: unknown command '%s'. Run `rotator --help` for the list.\n"):format(name))
    return 2
  end
  if args[1] == "--help" or args[1] == "-h" then
    io.stdout:write(cmd.usage)
    return 0
  end
  return cmd.run(args)
end

-- Hot reload entry points called by the host (host/lua/reload.c).
local reload = require "engine.reload"
M.reload_prepare = reload.prepare
M.reload_quiesce = reload.quiesce
M.reload_adopt = reload.adopt
M.reload_abort = reload.abort
M.reload_report = reload.report

return M
