-- rotator test FILE...: run Lua test files inside the real host, printing TAP.
local testing = require "engine.testing"
local args = require "engine.args"

local usage = [[
usage: rotator test [--timeout SEC] FILE...

Each FILE returns a table of test name -> function. Tests run one at a time, each in its
own task (so they may sleep or wait for AWS calls); a test fails by raising. Output is
TAP, for prove. Operators can test their own policies the same way.

Example:
  rotator test tests/lua/re_test.lua
  prove --exec 'rotator test' tests/lua/*_test.lua
]]

local function run(argv)
  local opts, files = args.parse(argv, { ["--timeout"] = "string" }, "test")
  if not opts then io.stderr:write("rotator test: ", files, "\n") return 2 end
  if #files == 0 then io.stderr:write(usage) return 2 end
  testing.run(files, tonumber(opts.timeout) or 30)
end

return { summary = "run Lua test files inside the host", usage = usage, run = run }
