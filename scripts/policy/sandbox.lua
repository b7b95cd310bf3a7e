-- Environments for operator policies. Each policy file runs in its own _ENV:
--   * reads and writes of undeclared globals fail loudly with file:line;
--   * `require` reaches only the engine's public modules (re, json, clock, timer, log),
--     each a read-only view, and `string`, `table`, `math`, `utf8`, `os` (time, date,
--     clock, getenv) are read-only views of copies taken when the engine loaded, so a
--     policy can change nothing the engine or another policy uses;
--   * no io, no debug, no setmetatable; `load` takes text only and defaults to the
--     policy's own environment; collectgarbage only counts; `coroutine` is bounded;
--   * its top level and every hook call run under an instruction bound in C
--     (host.bounded), which coroutines inherit, which a pcall cannot swallow, and which a
--     pending SIGTERM interrupts. ROTATOR_POLICY_INSTRUCTIONS sets the budget.
-- Every refusal is an error with the policy's file:line.
local host = require "host"
local log = require "log"
local timer = require "timer"
local re = require "re"
local json = require "json"
local clock = require "clock"
local metrics = require "engine.metrics"

local M = {}

local function budget()
  local n = tonumber(os.getenv("ROTATOR_POLICY_INSTRUCTIONS") or "")
  if n and n >= 1 and n == math.floor(n) then return n end
  return 50000000
end

M.LOAD_INSTRUCTION_LIMIT = budget() -- each policy file's top level
M.HOOK_INSTRUCTION_LIMIT = M.LOAD_INSTRUCTION_LIMIT -- each call of a policy hook

local function copy(t, leave_out)
  local c = {}
  for k, v in pairs(t) do if not (leave_out and leave_out[k]) then c[k] = v end end
  return c
end

-- A read-only view of t: writes raise with the writer's file:line; pairs works.
local function readonly(t, name, only)
  return setmetatable({}, {
    __index = only and function(_, k)
      local v = t[k]
      if v == nil then error(("%s.%s is not available to a policy (only %s)"):format(name, tostring(k), only), 2) end
      return v
    end or t,
    __newindex = function(_, k)
      error(("%s is read-only in a policy (%s.%s): use a local"):format(name, name, tostring(k)), 2)
    end,
    __pairs = function() return next, t, nil end,
    __len = function() return #t end,
    __metatable = false,
  })
end
M.readonly = readonly

-- Copies taken now, before any policy runs: string.dump is left out (no binary chunks).
local STRING = copy(string, { dump = true })
local TABLE, MATH, UTF8 = copy(table), copy(math), copy(utf8)
local OS = { time = os.time, date = os.date, clock = os.clock, getenv = os.getenv }

local function refuse(what, why)
  return function() error(("%s is not available to a policy%s"):format(what, why or ""), 2) end
end

---------------------------------------------------------------- bounded calls
-- Run fn(...) under the policy budget: true, results... or false, "file:line: message".
function M.call(fn, ...)
  local res = table.pack(host.bounded({ limit = M.HOOK_INSTRUCTION_LIMIT, what = "policy" }, fn, ...))
  if not res[1] then metrics.inc("rotator_policy_hook_failures_total") end
  return table.unpack(res, 1, res.n)
end

-- coroutine for policies: a coroutine counts against the bound of the code that
-- creates or resumes it; only a coroutine the policy created can be resumed, yielded
-- from or closed (a yield from a hook would park its workflow with nobody to wake it).
local function bounded_coroutine()
  local mine = setmetatable({}, { __mode = "k" })
  local C = {}
  function C.create(f)
    local co = coroutine.create(f)
    mine[co] = true
    return co
  end
  local function own(co, what)
    if not mine[co] then error(("coroutine.%s: not a coroutine this policy created"):format(what), 3) end
  end
  -- During a reload the hook yields a coroutine when the loading slice is over; pass
  -- that yield up to the loop and carry on where it stopped.
  local function resume(co, ...)
    host.bound_adopt(co)
    local res = table.pack(coroutine.resume(co, ...))
    while res[1] and host.bound_sliced(co) do
      host.bound_sliced(coroutine.running(), true)
      coroutine.yield()
      host.bound_adopt(co)
      res = table.pack(coroutine.resume(co))
    end
    return res
  end
  function C.resume(co, ...)
    own(co, "resume")
    local res = resume(co, ...)
    return table.unpack(res, 1, res.n)
  end
  function C.wrap(f)
    local co = C.create(f)
    return function(...)
      local res = resume(co, ...)
      if not res[1] then error(res[2], 0) end
      return table.unpack(res, 2, res.n)
    end
  end
  function C.yield(...)
    own(coroutine.running(), "yield")
    return coroutine.yield(...)
  end
  function C.status(co) own(co, "status") return coroutine.status(co) end
  function C.close(co) own(co, "close") return coroutine.close(co) end
  C.running, C.isyieldable = coroutine.running, coroutine.isyieldable
  return readonly(C, "coroutine")
end
M.bounded_coroutine = bounded_coroutine

---------------------------------------------------------------- modules
-- timer for policies: callbacks run under the policy budget; an error is logged with
-- the policy's file:line. A timer armed while a reload prepares fires in that state,
-- once it is adopted (host/lua/lib/timer.c).
local function policy_timer()
  local function wrap(fn)
    if type(fn) ~= "function" then error("timer: function expected", 3) end
    return function(...)
      local ok, err = M.call(fn, ...)
      if not ok then log.error("policy.timer_failed", { error = tostring(err) }) end
    end
  end
  return readonly({
    after = function(s, fn) return timer.after(s, wrap(fn)) end,
    every = function(s, fn) return timer.every(s, wrap(fn)) end,
  }, "timer")
end

local function policy_log()
  return readonly({ debug = log.debug, info = log.info, warn = log.warn, error = log.error }, "log")
end

local MODULES = {
  re = function() return readonly(re, "re") end,
  json = function() return readonly(json, "json") end,
  clock = function() return readonly(clock, "clock") end,
  timer = policy_timer,
  log = policy_log,
}

local function curated_require()
  local loaded = {}
  return function(name)
    if type(name) ~= "string" then error("require expects a module name", 2) end
    local open = MODULES[name]
    if not open then
      error(("require '%s': a policy can require only re, json, clock, timer and log"):format(name), 2)
    end
    loaded[name] = loaded[name] or open()
    return loaded[name]
  end
end

---------------------------------------------------------------- environments
local function strict_meta(name)
  return {
    __index = function(_, key)
      error(("unknown global '%s' in %s (declare it with `local`)"):format(tostring(key), name), 2)
    end,
    __newindex = function(_, key)
      error(("assignment to global '%s' in %s: use `local %s`"):format(tostring(key), name, tostring(key)), 2)
    end,
  }
end

local SAFE = {
  "assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget", "rawlen",
  "select", "tonumber", "tostring", "type", "xpcall", "print",
}

local GC_READ = { count = true, isrunning = true }

-- A fresh environment: the safe standard library and whatever `extra` adds (the policy
-- API). Unknown names raise.
function M.env(name, extra)
  local env = {}
  for _, k in ipairs(SAFE) do env[k] = _G[k] end
  env.string, env.table = readonly(STRING, "string"), readonly(TABLE, "table")
  env.math, env.utf8 = readonly(MATH, "math"), readonly(UTF8, "utf8")
  env.os = readonly(OS, "os", "os.time, os.date, os.clock, os.getenv")
  env.coroutine = bounded_coroutine()
  env.require = curated_require()
  env.load = function(chunk, chunkname, mode, fenv)
    if (mode ~= nil and mode ~= "t") or (type(chunk) == "string" and chunk:byte(1) == 27) then
      error("load: a policy loads text chunks only (mode \"t\"), never binary ones", 2)
    end
    return load(chunk, chunkname, "t", fenv == nil and env or fenv)
  end
  env.collectgarbage = function(opt, ...)
    opt = opt or "collect"
    if not GC_READ[opt] then error(("collectgarbage('%s') is not available to a policy"):format(tostring(opt)), 2) end
    return collectgarbage(opt, ...)
  end
  env.setmetatable, env.getmetatable = refuse("setmetatable"), refuse("getmetatable")
  env.rawset = refuse("rawset")
  env.dofile, env.loadfile = refuse("dofile"), refuse("loadfile")
  env.io = nil
  for k, v in pairs(extra or {}) do env[k] = v end
  env._G = env
  return setmetatable(env, strict_meta(name))
end

-- Load and run a file in env under the policy budget. Returns its first result (true
-- for none), or nil and "file:line: message".
function M.run_file(path, env, limit)
  local chunk, err = loadfile(path, "t", env)
  if not chunk then return nil, err end
  local ok, res = host.bounded({ limit = limit or M.LOAD_INSTRUCTION_LIMIT, what = "policy" }, chunk)
  if not ok then return nil, tostring(res) end
  return res == nil and true or res
end

return M
