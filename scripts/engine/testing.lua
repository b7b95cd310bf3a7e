-- The test runner behind `rotator test`, and assertion helpers for test files:
--   local T = require "engine.testing"; T.eq(got, want); T.raises(fn, "pattern"); T.skip(reason)
local task = require "engine.task"
local timer = require "timer"
local host = require "host"
local pretty = require "engine.pretty"

local M = {}

local function deep_eq(a, b, seen)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  seen = seen or {}
  if seen[a] == b then return true end
  seen[a] = b
  for k, v in pairs(a) do if not deep_eq(v, b[k], seen) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

function M.eq(got, want, what)
  if not deep_eq(got, want) then
    error(("%s\n  got:  %s\n  want: %s"):format(what or "values differ", pretty.format(got),
      pretty.format(want)), 2)
  end
end

-- End the running test as skipped, with the reason (TAP "ok N - name # SKIP reason").
local Skip = {}
function M.skip(reason)
  error(setmetatable({ reason = reason }, Skip), 2)
end

function M.raises(fn, pattern, ...)
  local ok, err = pcall(fn, ...)
  if ok then error("expected an error matching '" .. pattern .. "', got none", 2) end
  if not tostring(err):find(pattern) then
    error(("error '%s' does not match '%s'"):format(tostring(err), pattern), 2)
  end
  return err
end

-- Run one test function in its own task; waits for it (or the timeout).
local function run_one(fn, timeout)
  local done = task.future()
  task.spawn(function()
    done:set(xpcall(fn, function(e)
      if getmetatable(e) == Skip then return e end
      return debug.traceback(e, 2)
    end))
  end)
  local t = timer.after(timeout, function() done:set(false, "timed out after " .. timeout .. " s") end)
  local ok, err = done:wait()
  t:cancel()
  return ok, err
end

local function sorted_names(suite)
  local names = {}
  for name, fn in pairs(suite) do if type(fn) == "function" then names[#names + 1] = name end end
  table.sort(names)
  return names
end

local function tap(n, ok, name, err)
  if not ok and getmetatable(err) == Skip then
    io.stdout:write(("ok %d - %s # SKIP %s\n"):format(n, name, tostring(err.reason):gsub("\n", " ")))
    return
  end
  io.stdout:write(("%sok %d - %s\n"):format(ok and "" or "not ", n, name))
  if not ok then io.stdout:write("# ", tostring(err):gsub("\n", "\n# "), "\n") end
  io.stdout:flush()
end

function M.run(files, timeout)
  task.spawn(function()
    local n, failed = 0, 0
    for _, file in ipairs(files) do
      local loaded, suite = pcall(dofile, file)
      if not loaded or type(suite) ~= "table" then
        n, failed = n + 1, failed + 1
        tap(n, false, file, loaded and "test file must return a table of functions" or suite)
      else
        for _, name in ipairs(sorted_names(suite)) do
          local ok, err = run_one(suite[name], timeout)
          n = n + 1
          if not ok and getmetatable(err) ~= Skip then failed = failed + 1 end
          tap(n, ok, file:match("([^/]+)%.lua$") .. ": " .. name, err)
        end
      end
    end
    io.stdout:write(("1..%d\n"):format(n))
    host.exit(failed > 0 and 1 or 0)
  end)
end

return M
