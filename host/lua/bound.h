/* Instruction bounds for code the engine does not trust to finish: operator policies
 * (their top level and every hook call) and REPL chunks. A C count hook (lua_sethook),
 * so coroutines created under a bound inherit it; each thread carries the serial of its
 * bound in its extra space. Over budget, the code fails with "file:line: policy exceeded
 * N instructions"; a pending SIGTERM/SIGINT or a cancel frame from the REPL client
 * interrupts it the same way, and a caught error is raised again at once, so a pcall in
 * the bounded code cannot swallow it. */
#ifndef ROTATOR_LUA_BOUND_H
#define ROTATOR_LUA_BOUND_H
#include <lua.h>
#include <stdint.h>

/* host.bounded(opts, fn, ...) -> true, results... | false, err
 *   opts = {limit = N instructions, what = "policy", conn = control connection id whose
 *           cancel frame interrupts, traceback = true}
 * Yields inside fn (an AWS call from a hook) go through: the bound stays with the thread. */
int bound_lua_call(lua_State *L);

/* host.bound_adopt(co): co (a coroutine the bounded code created or resumes) counts
 * against the caller's bound; outside any bound, co is unbounded. */
int bound_lua_adopt(lua_State *L);

/* host.bound_sliced(co): did coroutine co, just resumed, yield only because the reload's
 * loading slice is over? (Cleared by the call.) Its resumer then yields too, after
 * host.bound_sliced(coroutine.running(), true), and resumes co again when resumed. */
int bound_lua_sliced(lua_State *L);

/* A zeroed extra space for a fresh state's main thread (coroutines copy it). */
void bound_init_state(lua_State *L);

/* The control socket registers how to ask "did the client of connection id send a
 * cancel frame (or go away)?", polled from the hook. */
void bound_set_cancel_poll(int (*poll)(lua_Integer conn));

/* During a reload the candidate's loading thread yields to the loop (from the hook,
 * where it can) once loop_now_ms() passes until_ms; NULL turns it off. */
void bound_set_slice(lua_State *thread, uint64_t until_ms);

#endif
