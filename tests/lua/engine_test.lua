-- The engine's own helpers: tasks/futures, the policy sandbox, args, pretty, host.
local task = require "engine.task"
local sandbox = require "policy.sandbox"
local args = require "engine.args"
local pretty = require "engine.pretty"
local host = require "host"
local T = require "engine.testing"

local tests = {}

local function write_tmp(name, text)
  local path = os.tmpname() .. "-" .. name
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

function tests.future_set_before_wait()
  local f = task.future()
  f:set(1, nil, 3)
  local a, b, c = f:wait()
  T.eq({ a, b, c }, { 1, nil, 3 })
end

function tests.future_is_resolved_once()
  local f = task.future()
  T.eq(f:set("first"), true)
  T.eq(f:set("second"), false)
  T.eq(f:wait(), "first")
end

function tests.sandbox_rejects_unknown_globals_with_file_line()
  local path = write_tmp("typo.lua", "local x = 1\nreturn mispelled_name\n")
  local res, err = sandbox.run_file(path, sandbox.env(path))
  os.remove(path)
  T.eq(res, nil)
  assert(err:find("typo.lua:2: unknown global 'mispelled_name'", 1, true), err)
end

function tests.sandbox_rejects_global_assignment()
  local path = write_tmp("assign.lua", "leak = 1\n")
  local res, err = sandbox.run_file(path, sandbox.env(path))
  os.remove(path)
  T.eq(res, nil)
  assert(err:find("assign.lua:1: assignment to global 'leak'", 1, true), err)
  T.eq(rawget(_G, "leak"), nil, "nothing leaked into the engine's globals")
end

local function policy_error(name, text, limit)
  local path = write_tmp(name, text)
  local res, err = sandbox.run_file(path, sandbox.env(path), limit)
  os.remove(path)
  T.eq(res, nil, name .. " must fail")
  return err, path
end

function tests.sandbox_bounds_an_endless_loop()
  local err = policy_error("spin.lua", "local n = 0\nwhile true do n = n + 1 end\n", 100000)
  assert(err:find("spin.lua:2: policy exceeded 100000 instructions", 1, true), err)
end

function tests.sandbox_bounds_a_loop_inside_a_coroutine()
  local err = policy_error("co.lua", "coroutine.wrap(function()\n  while true do end\nend)()\n", 100000)
  assert(err:find("co.lua:2: policy exceeded 100000 instructions", 1, true), err)
end

function tests.sandbox_bound_cannot_be_swallowed_by_pcall()
  local err = policy_error("swallow.lua", "while true do\n  pcall(function() while true do end end)\nend\n", 100000)
  assert(err:find("swallow.lua:%d: policy exceeded 100000 instructions"), err)
  err = policy_error("resume.lua", "while true do coroutine.resume(coroutine.create(function() while true do end end)) end\n", 100000)
  assert(err:find("resume.lua:1: policy exceeded", 1, true), err)
end

function tests.sandbox_escapes_are_refused_with_file_line()
  local cases = {
    { 'require("os")', "require 'os': a policy can require only" },
    { 'require("io")', "require 'io'" },
    { 'require("debug")', "require 'debug'" },
    { 'require("host")', "require 'host'" },
    { 'os.execute("true")', "os.execute is not available to a policy" },
    { 'os.exit(3)', "os.exit is not available to a policy" },
    { 'io.open("/etc/passwd")', "unknown global 'io'" },
    { 'debug.sethook()', "unknown global 'debug'" },
    { 'load(string.dump(print))', "" },
    { 'load("\\27Lua")', "never binary ones" },
    { 'load("return 1", "x", "b")', "text chunks only" },
    { 'collectgarbage("stop")', "collectgarbage('stop') is not available" },
    { 'setmetatable({}, { __gc = function() while true do end end })', "setmetatable is not available" },
    { 'rawset(string, "upper", print)', "rawset is not available" },
    { 'coroutine.yield()', "not a coroutine this policy created" },
  }
  for i, c in ipairs(cases) do
    local err, path = policy_error("escape" .. i .. ".lua", "local x = 1\n" .. c[1] .. "\n")
    assert(err:find(path .. ":2:", 1, true) and err:find(c[2], 1, true), c[1] .. " -> " .. err)
  end
end

function tests.sandbox_load_runs_in_the_policy_env()
  local err = policy_error("load.lua", 'load("return os.execute")()()\n')
  assert(err:find("os.execute is not available", 1, true), err)
end

function tests.policy_cannot_change_the_engines_string_library()
  local err = policy_error("upper.lua", 'string.upper = function() return "patched" end\n')
  assert(err:find("upper.lua:1: string is read-only in a policy", 1, true), err)
  T.eq(("abc"):upper(), "ABC")
  T.eq(string.upper("abc"), "ABC")
  local err2 = policy_error("re.lua", 'local re = require "re"\nre.replace = print\n')
  assert(err2:find("re.lua:2: re is read-only", 1, true), err2)
  T.eq(require("re").replace("a-production", "-production$", "-x"), "a-x")
end

function tests.policy_sees_the_public_modules_read_only()
  local path = write_tmp("ok.lua", [[
local re, json, clock, log = require "re", require "json", require "clock", require "log"
local n = 0
for _ in pairs(string) do n = n + 1 end
return { upper = ("abc"):upper(), json = json.encode({ 1 }), n = n, t = type(os.time()),
  replaced = re.replace("a-production", "-production$", "-staging"), gc = type(collectgarbage("count")) }
]])
  local res, err = sandbox.run_file(path, sandbox.env(path))
  os.remove(path)
  assert(res, err)
  T.eq(res.upper, "ABC")
  T.eq(res.json, "[1]")
  T.eq(res.replaced, "a-staging")
  T.eq(res.t, "number")
  T.eq(res.gc, "number")
  assert(res.n > 10, "pairs(string) lists the copy")
end

function tests.bounded_hook_call_fails_and_the_caller_goes_on()
  local ok, err = host.bounded({ limit = 50000 }, function() while true do end end)
  T.eq(ok, false)
  assert(tostring(err):find("policy exceeded 50000 instructions", 1, true), err)
  local ok2, a, b = host.bounded({ limit = 50000 }, function(x) return x, "two" end, "one")
  T.eq({ ok2, a, b }, { true, "one", "two" })
  -- a hook that waits (ctx.call) yields through the bound
  local ok3, v = host.bounded({ limit = 50000 }, function() task.sleep(0.01) return "woke" end)
  T.eq({ ok3, v }, { true, "woke" })
  local n = 0
  for _ = 1, 200000 do n = n + 1 end -- no bound is left on this thread
  T.eq(n, 200000)
end

function tests.args_parse_flags_and_positionals()
  local opts, pos = args.parse({ "--dry-run", "file.json", "--queue-url=http://x", "--", "--literal" },
    { ["--dry-run"] = "bool", ["--queue-url"] = "string" }, "replay")
  T.eq(opts, { dry_run = true, queue_url = "http://x" })
  T.eq(pos, { "file.json", "--literal" })
  local bad, msg = args.parse({ "--nope" }, {}, "replay")
  T.eq(bad, nil)
  T.eq(msg, "unknown option '--nope' (see rotator replay --help)")
  local _, missing = args.parse({ "--queue-url" }, { ["--queue-url"] = "string" }, "run")
  T.eq(missing, "--queue-url needs a value (see rotator run --help)")
end

function tests.pretty_sorts_keys_and_marks_cycles()
  local t = { b = 1, a = { 1, 2 }, ["not ident"] = "x\ny" }
  t.self = t
  T.eq(pretty.format(t), '{\n  a = {\n    1,\n    2,\n  },\n  b = 1,\n  ["not ident"] = "x\\ny",\n  self = <cycle>,\n}')
  T.eq(pretty.values(1, nil, "s"), '1\tnil\t"s"')
end

function tests.host_list_dir_and_read_file()
  local dir = host.config.scripts_dir .. "/engine"
  local names = assert(host.list_dir(dir))
  local found = false
  for _, n in ipairs(names) do found = found or n == "task.lua" end
  T.eq(found, true)
  local missing, err = host.list_dir("/nonexistent-dir")
  T.eq(missing, nil)
  T.eq(err, "/nonexistent-dir: No such file or directory")
  assert(host.read_file(dir .. "/task.lua"):find("future", 1, true))
  local none, rerr = host.read_file("/nonexistent-file")
  T.eq(none, nil)
  T.eq(rerr, "/nonexistent-file: No such file or directory")
end

function tests.hold_counts_inflight_work()
  local before = host.inflight()
  local h = host.hold()
  T.eq(host.inflight(), before + 1)
  h:release()
  h:release() -- idempotent
  T.eq(host.inflight(), before)
end

return tests
