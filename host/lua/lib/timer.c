/* `timer` module: timer.after(seconds, fn) and timer.every(seconds, fn) on the host loop.
 * Each returns a handle with :cancel() (true if it was still pending), :pending(), and
 * __close, so `local t <close> = timer.after(...)` cancels on scope exit.
 * An armed timer keeps its handle alive through a registry reference; a fired one-shot
 * timer or a cancelled one drops it. Callbacks run through the pcall gateway: an error
 * is logged with its traceback and, for `every`, the timer keeps running. */
#include <lauxlib.h>
#include <math.h>

#include "lua/state.h"
#include "lua/modules.h"

#define TIMER_MT "rotator.timer"

typedef struct {
  loop_timer_t t;
  host_t *h;
  uint64_t interval_ms; /* 0 for a one-shot timer */
  int fnref;            /* the callback */
  int selfref;          /* keeps the handle alive while armed */
} ltimer_t;

static uint64_t seconds_arg(lua_State *L, int idx) {
  lua_Number s = luaL_checknumber(L, idx);
  luaL_argcheck(L, s >= 0 && isfinite(s) && s < 1e9, idx, "seconds must be >= 0 and finite");
  return (uint64_t)llround(s * 1000.0);
}

static void disarm(lua_State *L, ltimer_t *lt) {
  loop_timer_stop(lt->h->loop, &lt->t);
  luaL_unref(L, LUA_REGISTRYINDEX, lt->selfref);
  lt->selfref = LUA_NOREF;
}

static void on_fire(loop_t *loop, loop_timer_t *t, void *ud) {
  ltimer_t *lt = ud;
  lua_State *L = lt->h->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, lt->selfref); /* keep alive during the call */
  if (lt->interval_ms) {
    if (loop_timer_start(loop, t, lt->interval_ms) < 0) disarm(L, lt);
  } else {
    disarm(L, lt);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, lt->fnref);
  lua_pushvalue(L, -2);
  lstate_callback(L, 1, "timer");
  lua_pop(L, 1);
}

static int start(lua_State *L, int repeat) {
  uint64_t ms = seconds_arg(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  ltimer_t *lt = lua_newuserdatauv(L, sizeof *lt, 0);
  *lt = (ltimer_t){.h = host_from_lua(L), .fnref = LUA_NOREF, .selfref = LUA_NOREF};
  loop_timer_init(&lt->t, on_fire, lt);
  luaL_setmetatable(L, TIMER_MT);
  lua_pushvalue(L, 2);
  lt->fnref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (repeat) lt->interval_ms = ms ? ms : 1; /* every(0) would spin: at least 1 ms */
  if (loop_timer_start(lt->h->loop, &lt->t, ms) < 0) return luaL_error(L, "timer: out of memory");
  lua_pushvalue(L, -1);
  lt->selfref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static int t_after(lua_State *L) { return start(L, 0); }
static int t_every(lua_State *L) { return start(L, 1); }

static int t_cancel(lua_State *L) {
  ltimer_t *lt = luaL_checkudata(L, 1, TIMER_MT);
  int was = loop_timer_armed(&lt->t);
  disarm(L, lt);
  lua_pushboolean(L, was);
  return 1;
}

static int t_pending(lua_State *L) {
  ltimer_t *lt = luaL_checkudata(L, 1, TIMER_MT);
  lua_pushboolean(L, loop_timer_armed(&lt->t));
  return 1;
}

static int t_gc(lua_State *L) {
  ltimer_t *lt = luaL_checkudata(L, 1, TIMER_MT);
  loop_timer_stop(lt->h->loop, &lt->t);
  luaL_unref(L, LUA_REGISTRYINDEX, lt->fnref);
  lt->fnref = LUA_NOREF;
  return 0;
}

static int t_tostring(lua_State *L) {
  ltimer_t *lt = luaL_checkudata(L, 1, TIMER_MT);
  lua_pushfstring(L, "timer(%s, %s)", lt->interval_ms ? "every" : "after",
                  loop_timer_armed(&lt->t) ? "pending" : "done");
  return 1;
}

static int t_count(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)loop_timer_count(host_from_lua(L)->loop));
  return 1;
}

static const luaL_Reg methods[] = {
    {"cancel", t_cancel}, {"pending", t_pending}, {NULL, NULL}};
static const luaL_Reg metamethods[] = {
    {"__gc", t_gc}, {"__close", t_cancel}, {"__tostring", t_tostring}, {NULL, NULL}};
static const luaL_Reg funcs[] = {
    {"after", t_after}, {"every", t_every}, {"count", t_count}, {NULL, NULL}};

int luaopen_rotator_timer(lua_State *L) {
  luaL_newmetatable(L, TIMER_MT);
  luaL_setfuncs(L, metamethods, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
