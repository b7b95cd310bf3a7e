-- rotator eval 'CHUNK': run Lua in a fully loaded state and print the results.
local host = require "host"
local task = require "engine.task"
local pretty = require "engine.pretty"
local policies = require "policy.loader"

local usage = [[
usage: rotator eval 'CHUNK'

Runs CHUNK in a state with the engine and the policies loaded, inside a task (so calls
that wait work), and prints its results the way the REPL does. An expression is
evaluated as `return <expr>`. Exits 1 with a traceback if the chunk raises.

Examples:
  rotator eval '1 + 1'
  rotator eval 'require("re").replace("Orders-Production", "(?i)-production$", "-staging")'
  rotator eval 'return require("clock").format(0, "-20060102-15-04-05")'
]]

-- lua.c's trick: try the line as an expression first, then as statements.
local function compile(src)
  local fn = load("return " .. src, "=(eval)", "t")
  if fn then return fn end
  return load(src, "=(eval)", "t")
end

local function run(argv)
  if #argv ~= 1 then io.stderr:write(usage) return 2 end
  local fn, err = compile(argv[1])
  if not fn then io.stderr:write("rotator eval: ", err, "\n") return 1 end
  local files = policies.list(host.config.policies_dir) or {}
  local _, perrs = policies.load(files)
  if perrs then
    for _, e in ipairs(perrs) do io.stderr:write("warning: policy not loaded: ", e, "\n") end
  end
  task.spawn(function()
    local res = table.pack(xpcall(fn, debug.traceback))
    if not res[1] then
      io.stderr:write(tostring(res[2]), "\n")
      host.exit(1)
      return
    end
    if res.n > 1 then io.stdout:write(pretty.values(table.unpack(res, 2, res.n)), "\n") end
    host.exit(0)
  end)
end

return { summary = "run a Lua chunk in a fully loaded state and print the results", usage = usage, run = run }
