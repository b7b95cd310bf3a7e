-- The engine's command table. The C host calls cli.main(name, args): a command returns
-- an exit status, or nothing when it has scheduled work on the loop (it then calls
-- host.exit itself).
require "workflow" -- registers the rule-field validators of the steps after ACTIVE
local reload = require "daemon.reload"
local console = require "console.console"

local M = {}

local commands = {
  check = require "cmd.check", eval = require "cmd.eval", test = require "cmd.test", run = require "cmd.run",
  replay = require "cmd.replay", ["repl-serve"] = require "cmd.repl-serve", journal = require "cmd.journal",
  setup = require "cmd.setup",
}

function M.main(name, args)
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

-- Hot reload entry points called by the host (host/lua/reload.c). The state that adopts
-- the daemon also takes the console (the REPL/status socket) over.
M.reload_prepare = reload.prepare
M.reload_quiesce = reload.quiesce
M.reload_adopt = function(snapshot)
  local ok = reload.adopt(snapshot)
  console.start()
  return ok
end
M.reload_abort = reload.abort
M.reload_report = reload.report

return M
