-- timer: ordering, cancellation, every(), errors in callbacks, <close>.
local timer = require "timer"
local task = require "engine.task"
local T = require "engine.testing"
local sandbox = require "policy.sandbox"

local tests = {}

function tests.after_fires_in_due_order()
  local seen, done = {}, task.future()
  timer.after(0.03, function() seen[#seen + 1] = "c"; done:set() end)
  timer.after(0.01, function() seen[#seen + 1] = "a" end)
  timer.after(0.02, function() seen[#seen + 1] = "b" end)
  done:wait()
  T.eq(seen, { "a", "b", "c" })
end

function tests.equal_delays_fire_in_creation_order()
  local seen, done = {}, task.future()
  for i = 1, 5 do timer.after(0.01, function() seen[#seen + 1] = i; if i == 5 then done:set() end end) end
  done:wait()
  T.eq(seen, { 1, 2, 3, 4, 5 })
end

function tests.cancel_prevents_firing()
  local fired = false
  local t = timer.after(0.01, function() fired = true end)
  T.eq(t:pending(), true)
  T.eq(t:cancel(), true, "cancel reports it was pending")
  T.eq(t:cancel(), false, "second cancel reports nothing to cancel")
  task.sleep(0.03)
  T.eq(fired, false)
end

function tests.every_repeats_until_cancelled()
  local n, done = 0, task.future()
  local t
  t = timer.every(0.005, function()
    n = n + 1
    if n == 3 then t:cancel(); done:set() end
  end)
  done:wait()
  task.sleep(0.02)
  T.eq(n, 3)
end

function tests.error_in_callback_is_contained()
  local after = task.future()
  timer.after(0, function() error("deliberate test error") end)
  timer.after(0.01, function() after:set("still running") end)
  T.eq(after:wait(), "still running")
end

function tests.close_cancels_on_scope_exit()
  local fired = false
  do
    local t <close> = timer.after(0.01, function() fired = true end)
    T.eq(t:pending(), true)
  end
  task.sleep(0.03)
  T.eq(fired, false)
end

function tests.bad_arguments_raise()
  T.raises(function() timer.after(-1, function() end) end, "seconds must be >= 0")
  T.raises(function() timer.after(1, "nope") end, "function expected")
end

-- A policy's timer callbacks run under the policy budget: a looping one fails (logged
-- with its file:line) and the loop, and the policy's other timers, go on.
function tests.policy_timer_callbacks_are_bounded()
  local path = os.tmpname() .. "-timer.lua"
  local f = assert(io.open(path, "w"))
  f:write([[
local timer = require "timer"
local st = { ran = 0 }
timer.after(0, function()
  while true do end
end)
local t
t = timer.every(0.005, function() st.ran = st.ran + 1 if st.ran == 3 then t:cancel() end end)
st.pending = t:pending()
return st
]])
  f:close()
  local st, err = sandbox.run_file(path, sandbox.env(path))
  os.remove(path)
  assert(st, err)
  T.eq(st.pending, true)
  local start = require("clock").mono()
  while st.ran < 3 and require("clock").mono() - start < 10 do task.sleep(0.01) end
  T.eq(st.ran, 3, "the policy's other timer kept firing after the looping one failed")
end

function tests.policy_timer_refuses_a_non_function()
  local path = os.tmpname() .. "-timer2.lua"
  local f = assert(io.open(path, "w"))
  f:write('require("timer").after(1, "nope")\n')
  f:close()
  local res, err = sandbox.run_file(path, sandbox.env(path))
  os.remove(path)
  T.eq(res, nil)
  assert(err:find("timer2.lua:1: timer: function expected", 1, true), err)
end

return tests
