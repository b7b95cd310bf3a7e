-- Environments for operator policies: each policy file runs in its own _ENV whose reads
-- and writes of undeclared globals fail loudly with file:line, so a typo cannot silently
-- turn into nil. Loading is bounded by an instruction count, so an endless loop in a
-- policy's top level fails the load instead of hanging the daemon or a reload.
local M = {}

M.LOAD_INSTRUCTION_LIMIT = 50000000

local SAFE = {
  "assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget", "rawlen",
  "rawset", "select", "tonumber", "tostring", "type", "xpcall", "require", "print",
  "string", "table", "math", "utf8", "coroutine",
}

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

-- A fresh environment: the safe standard library, os.time/os.date/os.getenv/os.clock, and
-- whatever `extra` adds (the policy API). Unknown names raise.
function M.env(name, extra)
  local env = {}
  for _, k in ipairs(SAFE) do env[k] = _G[k] end
  env.os = { time = os.time, date = os.date, getenv = os.getenv, clock = os.clock }
  for k, v in pairs(extra or {}) do env[k] = v end
  env._G = env
  return setmetatable(env, strict_meta(name))
end

local function bounded(fn, limit)
  debug.sethook(function()
    error("took more than " .. limit .. " instructions (endless loop?)", 2)
  end, "", limit)
  -- The message already starts with the policy's file:line; a traceback through the
  -- loader would only bury it.
  local ok, err = xpcall(fn, function(e) return tostring(e) end)
  debug.sethook()
  return ok, err
end

-- Load and run a file in env. Returns its first result, or nil and "file:line: message".
function M.run_file(path, env, limit)
  local chunk, err = loadfile(path, "t", env)
  if not chunk then return nil, err end
  local ok, res = bounded(chunk, limit or M.LOAD_INSTRUCTION_LIMIT)
  if not ok then return nil, res end
  return res == nil and true or res
end

return M
