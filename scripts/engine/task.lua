-- Coroutines for asynchronous work. C never resumes a coroutine: it calls back, and
-- this module resumes. Completions are always delivered from the loop (task.defer), never
-- inside the call that started the work, so a coroutine is never resumed while running.
--
-- Every wait goes through M.wait, which owns the coroutine's generation (after rspamd's
-- lua_thread_pool resume_checked and openresty's per-sleep cleanup handler):
--   M.wait(arm) -> ...      arm(wake) starts what will call wake(...) and may return a
--                           cleanup function; M.wait returns wake's arguments
--   M.cancel(co) -> bool    abandon co's pending wait: its cleanup runs, its waker goes
--                           stale, and co is never resumed again by that wait
-- Each task may carry a log context: the fields (workflow, message_id) that every log
-- line of its work carries, AWS calls included (aws.lua passes it to the C client):
--   M.context() -> table|nil     the running task's context
--   M.set_context(fields) -> t   merge fields into it (a task spawned later starts with a
--                                copy of its parent's); returns the task's context table
-- A waker is good for one wake-up of the one wait that made it. Anything else (a late
-- timer, a second wake, a resume from code that does not own the wait) is dropped with a
-- debug line: a stale wake-up never resumes a coroutine, whichever module it comes from.
local timer = require "timer"
local log = require "log"

local M = {}

local pending = setmetatable({}, { __mode = "k" }) -- coroutine -> its one pending wait
local gens = setmetatable({}, { __mode = "k" })    -- coroutine -> generation of its last wait
local contexts = setmetatable({}, { __mode = "k" }) -- coroutine -> its log context

local function report(co, ok, err)
  if not ok then
    log.error("task.failed", { error = debug.traceback(co, tostring(err)) })
  end
end

local function resume(co, ...)
  local ok, err = coroutine.resume(co, ...)
  report(co, ok, err)
  return ok
end

-- Run fn(...) in a new coroutine now; returns the coroutine.
function M.spawn(fn, ...)
  local co = coroutine.create(fn)
  local parent = contexts[coroutine.running()]
  if parent then
    local c = { message_id = nil, workflow = nil } -- (room for the usual fields; nils are not stored)
    for k, v in pairs(parent) do c[k] = v end
    contexts[co] = c
  end
  resume(co, ...)
  return co
end

function M.context()
  return contexts[coroutine.running()]
end

function M.set_context(fields)
  local co, main = coroutine.running()
  if main then error("task.set_context: not inside a task", 2) end
  local c = contexts[co] or {}
  contexts[co] = c
  for k, v in pairs(fields) do c[k] = v end
  return c
end

-- Call fn from the loop on its next turn.
function M.defer(fn)
  timer.after(0, fn)
end

local function current(level)
  local co, main = coroutine.running()
  if main then error("this call waits, so it must run inside a task (task.spawn)", level or 3) end
  return co
end
M.current = current

local function stale(w, why)
  log.debug("task.stale_wakeup", { gen = w.gen, now = gens[w.co], reason = why })
  return false
end

-- Wake the wait w with values; true when it woke it, false when the wake-up was stale.
local function wake(w, ...)
  if pending[w.co] ~= w then return stale(w, w.woken and "woken already" or "wait cancelled") end
  pending[w.co] = nil
  w.woken, w.vals = true, table.pack(...)
  if coroutine.status(w.co) == "suspended" then resume(w.co) end
  return true
end

function M.wait(arm)
  local co = current()
  local gen = (gens[co] or 0) + 1
  gens[co] = gen
  local w = { co = co, gen = gen }
  pending[co] = w
  w.cleanup = arm(function(...) return wake(w, ...) end)
  while not w.woken do
    coroutine.yield()
    if not w.woken then log.debug("task.foreign_resume", { gen = gen }) end
  end
  return table.unpack(w.vals, 1, w.vals.n)
end

function M.cancel(co)
  local w = pending[co]
  if not w then return false end
  pending[co], gens[co] = nil, w.gen + 1
  if w.cleanup then w.cleanup() end
  return true
end

-- Is co inside a wait (that nothing has woken or cancelled yet)?
function M.waiting(co)
  return pending[co] ~= nil
end

-- A wait nothing wakes: the coroutine stays parked until dropped (or cancelled).
function M.park()
  return M.wait(function() end)
end

-- Sleep inside a task; cancelling the task's wait cancels the timer.
function M.sleep(seconds)
  return M.wait(function(wake_up)
    local t = timer.after(seconds, function() wake_up() end)
    return function() t:cancel() end
  end)
end

-- A one-shot result that one task can wait for. set() may be called from anywhere,
-- including before anybody waits; the waiter is resumed on the next loop turn.
function M.future()
  local f = { done = false }
  function f:set(...)
    if self.done then return false end
    self.done, self.vals = true, table.pack(...)
    local w = self.waker
    if w then
      self.waker = nil
      M.defer(function() w() end)
    end
    return true
  end
  function f:wait()
    if not self.done then
      M.wait(function(waker)
        self.waker = waker
        return function() if self.waker == waker then self.waker = nil end end
      end)
    end
    return table.unpack(self.vals, 1, self.vals.n)
  end
  return f
end

return M
