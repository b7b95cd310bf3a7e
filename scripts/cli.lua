-- The engine's commands. Each file scripts/cmd/NAME.lua is the command NAME; it returns
-- { summary = "one line for rotator --help", usage = "its --help text, with an example",
--   run = function(args) } and hidden = true for an internal command. Adding a command
-- is adding its file: `rotator --help` lists it (host/cli/main.c adds the C commands).
-- The C host calls cli.main(name, args): a command returns an exit status, or nothing
-- when it has scheduled work on the loop (it then calls host.exit itself).
local host = require "host"
local log = require "log"
require "workflow" -- registers the rule-field validators of the steps after ACTIVE
local reload = require "daemon.reload"
local console = require "console.console"

local M = {}

-- The command names found in scripts/cmd/, sorted; nil, message if the folder is unreadable.
local function names()
  local dir = host.config.scripts_dir .. "/cmd"
  local files, err = host.list_dir(dir)
  if not files then return nil, ("cannot list the commands in %s: %s"):format(dir, tostring(err)) end
  local out = {}
  for _, f in ipairs(files) do
    local name = f:match("^([%w][%w-]*)%.lua$")
    if name then out[#out + 1] = name end
  end
  return out
end

-- The module of command `name`, checked for its exports; nil, message if it has none.
-- (The one computed require in scripts/: command discovery, checked by modgraph_test.)
local function load_command(name)
  local cmd = require("cmd." .. name)
  local file = ("%s/cmd/%s.lua"):format(host.config.scripts_dir, name)
  if type(cmd) ~= "table" or type(cmd.run) ~= "function" or type(cmd.usage) ~= "string"
    or (not cmd.hidden and type(cmd.summary) ~= "string") then
    error(("%s: a command module returns { summary = string, usage = string, run = function }"):format(file), 0)
  end
  return cmd
end

-- { {name=, summary=}, ... } for `rotator --help`, hidden commands left out.
function M.commands()
  local list = assert(names())
  local out = {}
  for _, name in ipairs(list) do
    local cmd = load_command(name)
    if not cmd.hidden then out[#out + 1] = { name = name, summary = cmd.summary } end
  end
  return out
end

local function exists(name)
  for _, n in ipairs(assert(names())) do
    if n == name then return true end
  end
  return false
end

-- Under --log-format json, what a command writes to stderr (usage and startup errors,
-- policy errors) becomes JSON log lines too: each line one event cli.error (cli.warning
-- for a line that starts with "warning:"), so a log shipper never meets free text.
-- Installed when this module loads, so a state built by a reload has it as well.
local command -- the command's name, once M.main knows it
local function json_stderr()
  local real, pending = io.stderr, ""
  local function emit(line)
    if line == "" then return end
    if line:match("^warning:") then log.warn("cli.warning", { command = command, msg = line })
    else log.error("cli.error", { command = command, msg = line }) end
  end
  local proxy = {}
  function proxy.write(self, ...)
    for i = 1, select("#", ...) do pending = pending .. tostring((select(i, ...))) end
    local nl = pending:find("\n", 1, true)
    while nl do
      emit(pending:sub(1, nl - 1))
      pending = pending:sub(nl + 1)
      nl = pending:find("\n", 1, true)
    end
    return self
  end
  function proxy.flush(self)
    emit(pending)
    pending = ""
    return self
  end
  return setmetatable(proxy, { __index = function(_, k)
    return function(_, ...) return real[k](real, ...) end
  end })
end

if log.format() == "json" and io.type(io.stderr) == "file" then io.stderr = json_stderr() end

local function run(name, args)
  if not exists(name) then
    io.stderr:write(("rotator: unknown command '%s'. Run `rotator --help` for the list.\n"):format(name))
    return 2
  end
  local cmd = load_command(name)
  if args[1] == "--help" or args[1] == "-h" then
    io.stdout:write(cmd.usage)
    return 0
  end
  return cmd.run(args)
end

function M.main(name, args)
  command = name
  local code = run(name, args)
  if io.type(io.stderr) ~= "file" then io.stderr:flush() end
  return code
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
