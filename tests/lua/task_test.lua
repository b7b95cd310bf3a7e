-- engine/task.lua: every wait owns its coroutine's generation. A waker wakes its own wait
-- once; a cancelled wait never resumes; a resume from code that does not own the wait is
-- ignored and the wait goes on.
local T = require "engine.testing"
local task = require "engine.task"
local timer = require "timer"

-- A task that waits once (arm given) and records what it got.
local function waiter(arm)
  local got = { n = 0 }
  got.co = task.spawn(function()
    got.vals = table.pack(task.wait(arm))
    got.n = got.n + 1
  end)
  return got
end

return {
  a_waker_wakes_its_wait_once_and_a_second_wake_is_stale = function()
    local wake
    local got = waiter(function(w) wake = w end)
    T.eq(task.waiting(got.co), true)
    T.eq(wake("a", 1), true)
    T.eq({ got.n, got.vals[1], got.vals[2] }, { 1, "a", 1 })
    T.eq(wake("b"), false, "a second wake-up is stale")
    T.eq(got.n, 1)
  end,

  a_stale_waker_of_an_earlier_wait_never_resumes_the_next = function()
    local wakers, steps = {}, {}
    local co = task.spawn(function()
      for i = 1, 2 do steps[i] = task.wait(function(w) wakers[i] = w end) end
    end)
    T.eq(wakers[1]("first"), true)
    T.eq(wakers[1]("late"), false, "the first wait's waker is spent")
    T.eq(task.waiting(co), true, "the second wait still waits")
    T.eq(steps, { "first" })
    T.eq(wakers[2]("second"), true)
    T.eq(steps, { "first", "second" })
  end,

  a_cancelled_wait_runs_its_cleanup_and_never_resumes = function()
    local wake, cleaned = nil, 0
    local got = waiter(function(w) wake = w return function() cleaned = cleaned + 1 end end)
    T.eq(task.cancel(got.co), true)
    T.eq(cleaned, 1)
    T.eq(wake("x"), false, "the waker of a cancelled wait is stale")
    T.eq(got.n, 0)
    T.eq(task.cancel(got.co), false, "nothing left to cancel")
    T.eq(coroutine.status(got.co), "suspended")
  end,

  a_cancelled_sleep_never_resumes = function()
    local woke = false
    local co = task.spawn(function() task.sleep(0.02) woke = true end)
    T.eq(task.cancel(co), true)
    task.sleep(0.08)
    T.eq(woke, false)
    T.eq(task.waiting(co), false)
  end,

  a_sleep_wakes_after_its_time = function()
    local woke = false
    task.spawn(function() task.sleep(0.01) woke = true end)
    task.sleep(0.05)
    T.eq(woke, true)
  end,

  a_foreign_resume_does_not_end_the_wait = function()
    local wake
    local got = waiter(function(w) wake = w end)
    assert(coroutine.resume(got.co, "junk", 42)) -- not through the waker
    T.eq(got.n, 0, "the wait goes on")
    T.eq(task.waiting(got.co), true)
    wake("real")
    T.eq({ got.n, got.vals[1] }, { 1, "real" })
  end,

  a_wake_before_the_yield_returns_at_once = function()
    local got = waiter(function(w) w("now") end)
    T.eq({ got.n, got.vals[1] }, { 1, "now" })
  end,

  future_wait_ignores_foreign_resumes_and_cancel_detaches_it = function()
    local f, got = task.future(), {}
    local co = task.spawn(function() got.v = f:wait() end)
    assert(coroutine.resume(co))
    T.eq(got.v, nil)
    f:set("value")
    task.sleep(0.02)
    T.eq(got.v, "value")
    local g, late = task.future(), nil
    local co2 = task.spawn(function() late = g:wait() end)
    task.cancel(co2)
    g:set("too late")
    task.sleep(0.02)
    T.eq(late, nil, "a cancelled future wait never resumes")
  end,

  a_timer_woken_wait_cancelled_first_stays_parked = function()
    local fired = false
    local co = task.spawn(function()
      task.wait(function(w)
        timer.after(0.01, function() fired = w() end) -- not cancelled by the cleanup on purpose
      end)
      error("must not run")
    end)
    task.cancel(co)
    task.sleep(0.05)
    T.eq(fired, false, "the timer fired into a stale waker")
  end,

  a_task_starts_with_a_copy_of_its_parents_log_context = function()
    local seen = {}
    local parent = task.spawn(function()
      task.set_context({ message_id = "m-1" })
      task.spawn(function()
        task.set_context({ workflow = "wf-1" })
        seen.child = task.context()
      end)
      seen.parent = task.context()
    end)
    T.eq(coroutine.status(parent), "dead")
    T.eq(seen.child, { message_id = "m-1", workflow = "wf-1" })
    T.eq(seen.parent, { message_id = "m-1" }, "the child's fields stay its own")
    T.eq(task.context(), nil, "the test's own task has none")
  end,
}
