/* `timer` module: timer.after(seconds, fn) and timer.every(seconds, fn) on the host loop.
 * Each returns a handle with :cancel() (true if it was still pending), :pending(), and
 * __close, so `local t <close> = timer.after(...)` cancels on scope exit.
 * An armed timer keeps its handle alive through a registry reference; a fired one-shot
 * timer or a cancelled one drops it. Callbacks run through the pcall gateway: an error
 * is logged with its traceback and, for `every`, the timer keeps running.
 * A timer belongs to the state that armed it: its refs live in that state's registry and
 * it calls back only there. A candidate state (a reload being prepared) is inert: its
 * timers wait, pending, until the state is adopted, and start counting then. A timer
 * whose state was replaced is dropped with a debug line, never run in another state. */
#include <lauxlib.h>
#include <math.h>

#include "core/log.h"

#include "lua/state.h"
#include "lua/modules.h"

#define TIMER_MT "rotator.timer"

typedef struct {
  loop_timer_t t;
  host_t *h;
  lua_State *owner;     /* main thread of the state that armed it */
  uint64_t interval_ms; /* 0 for a one-shot timer */
  uint64_t delay_ms;    /* the first delay, kept while deferred */
  int deferred;         /* armed by a candidate state: starts when the state is adopted */
  int fnref;            /* the callback */
  int selfref;          /* keeps the handle alive while armed */
} ltimer_t;

static uint64_t seconds_arg(lua_State *L, int idx) {
  lua_Number s = luaL_checknumber(L, idx);
  luaL_argcheck(L, s >= 0 && isfinite(s) && s < 1e9, idx, "seconds must be >= 0 and finite");
  return (uint64_t)llround(s * 1000.0);
}

#define DEFER_KEY "rotator.timer.deferred" /* registry: timers waiting for adoption */

static void disarm(lua_State *L, ltimer_t *lt) {
  loop_timer_stop(lt->h->loop, &lt->t);
  lt->deferred = 0;
  luaL_unref(L, LUA_REGISTRYINDEX, lt->selfref);
  lt->selfref = LUA_NOREF;
}

static void on_fire(loop_t *loop, loop_timer_t *t, void *ud) {
  ltimer_t *lt = ud;
  lua_State *L = lt->owner;
  if (!lstate_is_current(L)) {
    log_msg(LOG_DEBUG, "timer.dropped", "a timer of a replaced Lua state fired: dropped, not run");
    disarm(L, lt);
    return;
  }
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
  *lt = (ltimer_t){.h = host_from_lua(L), .owner = lstate_owner(L), .delay_ms = ms,
                   .fnref = LUA_NOREF, .selfref = LUA_NOREF};
  loop_timer_init(&lt->t, on_fire, lt);
  luaL_setmetatable(L, TIMER_MT);
  lua_pushvalue(L, 2);
  lt->fnref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (repeat) lt->interval_ms = ms ? ms : 1; /* every(0) would spin: at least 1 ms */
  if (lstate_is_current(L)) {
    if (loop_timer_start(lt->h->loop, &lt->t, ms) < 0) return luaL_error(L, "timer: out of memory");
  } else { /* a candidate: remember it for adoption */
    lt->deferred = 1;
    luaL_getsubtable(L, LUA_REGISTRYINDEX, DEFER_KEY);
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
  }
  lua_pushvalue(L, -1);
  lt->selfref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

/* The state was adopted: start the timers it armed as a candidate. */
static int start_deferred(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, DEFER_KEY) != LUA_TTABLE) return 0;
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    ltimer_t *lt = luaL_checkudata(L, -1, TIMER_MT);
    lua_pop(L, 1);
    if (!lt->deferred) continue; /* cancelled meanwhile */
    lt->deferred = 0;
    if (loop_timer_start(lt->h->loop, &lt->t, lt->delay_ms) < 0) {
      disarm(L, lt);
      log_msg(LOG_ERROR, "timer.lost", "out of memory arming a timer of the adopted state");
    }
  }
  lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, DEFER_KEY);
  return 0;
}

static int t_after(lua_State *L) { return start(L, 0); }
static int t_every(lua_State *L) { return start(L, 1); }

static int t_cancel(lua_State *L) {
  ltimer_t *lt = luaL_checkudata(L, 1, TIMER_MT);
  int was = loop_timer_armed(&lt->t) || lt->deferred;
  disarm(L, lt);
  lua_pushboolean(L, was);
  return 1;
}

static int t_pending(lua_State *L) {
  ltimer_t *lt = luaL_checkudata(L, 1, TIMER_MT);
  lua_pushboolean(L, loop_timer_armed(&lt->t) || lt->deferred);
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
                  loop_timer_armed(&lt->t) || lt->deferred ? "pending" : "done");
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
  lstate_on_adopt(L, start_deferred);
  luaL_newlib(L, funcs);
  return 1;
}
