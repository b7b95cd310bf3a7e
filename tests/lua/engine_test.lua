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

function tests.sandbox_bounds_an_endless_loop()
  local path = write_tmp("spin.lua", "while true do end\n")
  local res, err = sandbox.run_file(path, sandbox.env(path), 100000)
  os.remove(path)
  T.eq(res, nil)
  assert(err:find("spin.lua:1:", 1, true) and err:find("endless loop", 1, true), err)
end

function tests.sandbox_has_no_io_or_os_execute()
  local path = write_tmp("io.lua", "return os.execute\n")
  local res, err = sandbox.run_file(path, sandbox.env(path))
  os.remove(path)
  T.eq(res, true, "os.execute is absent, so the chunk returns nil")
  T.eq(err, nil)
  local p2 = write_tmp("io2.lua", "return io.open\n")
  local res2, err2 = sandbox.run_file(p2, sandbox.env(p2))
  os.remove(p2)
  T.eq(res2, nil)
  assert(err2:find("unknown global 'io'", 1, true), err2)
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
