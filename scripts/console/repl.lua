-- The REPL and status service behind the control socket (C side: host/lua/lib/control.c).
-- Each connection gets its own environment: its globals persist between chunks but never
-- leak into the engine's. A chunk runs in a task, so calls that wait (aws.call) work; the
-- client's Ctrl-C sends "cancel", which abandons the wait: the task goes on in the
-- daemon, but its result is dropped (generation check) and the prompt comes back.
-- A chunk runs under an instruction bound (host.bounded, ROTATOR_REPL_INSTRUCTIONS,
-- default 1e9) whose hook also reads the connection: Ctrl-C interrupts a running chunk
-- (`while true do end`). Nothing typed here can end or wedge the daemon: os.exit,
-- os.execute, host.exit, control.close, debug.sethook and collectgarbage("stop") raise
-- an error saying so, io is not reachable, and load takes text chunks only.
local control = require "control"
local task = require "engine.task"
local pretty = require "engine.pretty"
local host = require "host"
local clock = require "clock"
local json = require "json"
local sandbox = require "policy.sandbox"

local M = { started_at = clock.now(), helpers = {}, status_sources = {} }
local sessions = {}

-- Register a helper visible in every REPL session and listed by help().
function M.helper(name, doc, fn)
  M.helpers[name] = { doc = doc, fn = fn }
end

-- Modules add fields to `rotator status` with fn() -> table of fields.
function M.status_source(name, fn)
  M.status_sources[name] = fn
end

-- Text a helper returns to be shown as is (pretty-printing uses __tostring).
function M.text(s)
  return setmetatable({}, { __tostring = function() return s end })
end

local REPL_LIMIT = tonumber(os.getenv("ROTATOR_REPL_INSTRUCTIONS") or "") or 1e9

local function refuse(what, why)
  return function() error(("%s is not available in the REPL: %s"):format(what, why), 2) end
end

-- A view of module t with the listed functions replaced by refusals.
local function guarded(t, name, refusals)
  local view = {}
  for k, v in pairs(t) do view[k] = v end
  for k, why in pairs(refusals) do view[k] = refuse(name .. "." .. k, why) end
  return sandbox.readonly(view, name)
end

local STOPS = "it would stop the daemon (use kill -TERM or systemctl stop)"
local GUARDS = {
  os = function() return guarded(os, "os", { exit = STOPS,
    execute = "it would block the daemon's loop until the command ends" }) end,
  host = function() return guarded(host, "host", { exit = STOPS }) end,
  control = function() return guarded(control, "control", { close = "it would close the socket this REPL talks through" }) end,
  debug = function() return guarded(debug, "debug", { sethook = "it would remove the bound that lets Ctrl-C interrupt a chunk",
    getregistry = "it reaches the daemon's internals unguarded" }) end,
}
local GC_OK = { count = true, collect = true, step = true, isrunning = true }

local function new_env(conn)
  local env, views = {}, {}
  local function view(name)
    if not views[name] then views[name] = GUARDS[name]() end
    return views[name]
  end
  env.print = function(...)
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    control.send(conn, "output", table.concat(parts, "\t", 1, parts.n) .. "\n")
  end
  env.io = nil
  env.require = function(name)
    if name == "io" then error("io is not available in the REPL: the daemon's stdin and files are not yours to block on", 2) end
    if GUARDS[name] then return view(name) end
    return require(name)
  end
  env.load = function(chunk, chunkname, mode, fenv)
    if (mode ~= nil and mode ~= "t") or (type(chunk) == "string" and chunk:byte(1) == 27) then
      error("load: the REPL loads text chunks only (a bad binary chunk can crash the daemon)", 2)
    end
    return load(chunk, chunkname, "t", fenv == nil and env or fenv)
  end
  env.loadfile = function(path, mode, fenv)
    if mode ~= nil and mode ~= "t" then error("loadfile: the REPL loads text chunks only", 2) end
    return loadfile(path, "t", fenv == nil and env or fenv)
  end
  env.dofile = function(path) return assert(env.loadfile(path))() end
  env.collectgarbage = function(opt, ...)
    opt = opt or "collect"
    if not GC_OK[opt] then error(("collectgarbage('%s') is not available in the REPL: it changes the daemon's collector"):format(tostring(opt)), 2) end
    return collectgarbage(opt, ...)
  end
  env.coroutine = sandbox.bounded_coroutine()
  env.package = nil
  env._G = env
  return setmetatable(env, {
    __index = function(_, k)
      local h = M.helpers[k]
      if h then return h.fn end
      if k == "io" then error("io is not available in the REPL: the daemon's stdin and files are not yours to block on", 2) end
      if k == "package" then error("package is not available in the REPL: use require", 2) end
      if GUARDS[k] then return view(k) end
      return _G[k]
    end,
  })
end

-- lua.c's rules: an expression is shown as `return <expr>`; a syntax error at <eof>
-- means the chunk is not finished yet.
local function compile(src, env)
  local fn = load("return " .. src, "=stdin", "t", env)
  if fn then return fn end
  local err
  fn, err = load(src, "=stdin", "t", env)
  if fn then return fn end
  if err:sub(-5) == "<eof>" then return nil, nil, true end
  return nil, err
end

local function finish(conn, s, gen, res)
  if sessions[conn] ~= s or s.gen ~= gen then return end -- cancelled or gone
  s.busy = false
  if res[1] then
    control.send(conn, "result", res.n > 1 and pretty.values(table.unpack(res, 2, res.n)) or "")
  else
    control.send(conn, "error", tostring(res[2]))
  end
end

local function eval(conn, s, src)
  local fn, err, incomplete = compile(src, s.env)
  if incomplete then return control.send(conn, "incomplete") end
  if not fn then return control.send(conn, "error", err) end
  s.gen = s.gen + 1
  s.busy = true
  local gen = s.gen
  task.spawn(function()
    M.session = s -- helpers that stream into the session read this before they yield
    local res = table.pack(host.bounded({ limit = REPL_LIMIT, conn = conn, what = "chunk", traceback = true }, fn))
    finish(conn, s, gen, res)
  end)
  M.session = nil
end

local function cancel(conn, s)
  if not s.busy then return end
  s.gen, s.busy = s.gen + 1, false
  control.send(conn, "error", "interrupted: the wait was abandoned (work already started goes on in the daemon)")
end

function M.status()
  local st = {
    pid = host.pid and host.pid() or nil,
    version = host.config.version,
    uptime_s = math.floor(clock.now() - M.started_at),
    inflight = host.inflight(),
    stopping = host.stopping(),
  }
  for name, fn in pairs(M.status_sources) do
    local ok, v = pcall(fn)
    st[name] = ok and v or ("error: " .. tostring(v))
  end
  return st
end

local function status_text(st)
  local keys = {}
  for k in pairs(st) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do
    local v = st[k]
    if k == "metrics" then v = "(every figure: rotator status --json | jq .metrics, or GET /metrics)" end
    out[#out + 1] = ("%-16s %s"):format(k, type(v) == "table" and pretty.format(v):gsub("\n", "\n" .. (" "):rep(17)) or tostring(v))
  end
  return table.concat(out, "\n")
end

-- `status --check`: the health word first (the client's exit status comes from it), then
-- one line per daemon-level problem.
local function check_text(st)
  local lines = { tostring(st.health or "ok") }
  for _, e in ipairs(type(st.last_errors) == "table" and st.last_errors or {}) do
    if e.problem then
      lines[#lines + 1] = ("%s %s since %s: %s"):format(e.problem, e.severity, e.since, tostring(e.error))
    end
  end
  return table.concat(lines, "\n")
end

local function handle(conn, kind, payload)
  if kind == "closed" then sessions[conn] = nil return end
  local s = sessions[conn]
  if not s then
    s = { env = new_env(conn), gen = 0, conn = conn }
    s.print = s.env.print
    sessions[conn] = s
  end
  if kind == "eval" then eval(conn, s, payload)
  elseif kind == "cancel" then cancel(conn, s)
  elseif kind == "status" then
    local st = M.status()
    local text = payload == "json" and json.encode(st) or payload == "check" and check_text(st) or status_text(st)
    control.send(conn, "result", text)
  end
end

M.handle = handle

-- True once the session's connection has gone.
function M.closed(session)
  return sessions[session.conn] ~= session
end

M.helper("help", "help() lists these helpers", function()
  local names = {}
  for n in pairs(M.helpers) do names[#names + 1] = n end
  table.sort(names)
  local lines = { "Helpers (plus every module: require 're', 'json', 'aws', ...):" }
  for _, n in ipairs(names) do lines[#lines + 1] = ("  %-12s %s"):format(n, M.helpers[n].doc) end
  return M.text(table.concat(lines, "\n"))
end)

-- Listen on path (the daemon), or serve one inherited connection (repl --local).
function M.listen(path)
  return control.listen(path, handle)
end

function M.adopt(fd, on_close)
  local id
  id = control.adopt(fd, function(conn, kind, payload)
    handle(conn, kind, payload)
    if kind == "closed" and conn == id and on_close then on_close() end
  end)
  return id
end

return M
