-- Coroutines for asynchronous work. C never resumes a coroutine: it calls back, and
-- this module resumes. Completions are always delivered from the loop (task.defer), never
-- inside the call that started the work, so a coroutine is never resumed while running.
local timer = require "timer"
local log = require "log"

local M = {}

local function report(co, ok, err)
  if not ok then
    log.error("task.failed", { error = debug.traceback(co, tostring(err)) })
  end
end

-- Resume a suspended coroutine; errors inside it are logged with its traceback.
function M.resume(co, ...)
  if coroutine.status(co) ~= "suspended" then return false end
  local ok, err = coroutine.resume(co, ...)
  report(co, ok, err)
  return ok
end

-- Run fn(...) in a new coroutine now; returns the coroutine.
function M.spawn(fn, ...)
  local co = coroutine.create(fn)
  M.resume(co, ...)
  return co
end

-- Call fn from the loop on its next turn.
function M.defer(fn)
  timer.after(0, fn)
end

local function current()
  local co, main = coroutine.running()
  if main then error("this call waits, so it must run inside a task (task.spawn)", 3) end
  return co
end

function M.sleep(seconds)
  local co = current()
  timer.after(seconds, function() M.resume(co) end)
  return coroutine.yield()
end

-- A one-shot result that one task can wait for. set() may be called from anywhere,
-- including before anybody waits; the waiter is resumed on the next loop turn.
function M.future()
  local f = { done = false }
  function f:set(...)
    if self.done then return false end
    self.done, self.vals = true, table.pack(...)
    local w = self.waiter
    if w then
      self.waiter = nil
      M.defer(function() M.resume(w) end)
    end
    return true
  end
  function f:wait()
    if not self.done then
      self.waiter = current()
      coroutine.yield()
    end
    return table.unpack(self.vals, 1, self.vals.n)
  end
  return f
end

return M
