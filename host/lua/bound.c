/* Instruction bounds (see bound.h). Each bound is a userdata kept in a weak-valued
 * registry table under its serial while it runs; the bounded thread's extra space holds
 * the serial, so the hook finds its bound without a lookup by thread, and a coroutine the
 * bounded code creates is adopted explicitly (host.bound_adopt). A bound nests: the outer
 * one keeps counting while an inner one runs on the same thread. */
#include "lua/bound.h"

#include <lauxlib.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/host.h"
#include "core/loop.h"
#include "lua/state.h"

#define BOUND_STEP 1000    /* instructions between two looks at the budget */
#define BOUND_POLL 100000  /* instructions between two looks at signals and the client */

_Static_assert(LUA_EXTRASPACE >= sizeof(uintptr_t), "the extra space holds a bound serial");

enum { RUNNING, OVER_BUDGET, STOPPING, CANCELLED };

typedef struct {
  uintptr_t serial, prev;  /* prev: the bound this one nests in on the same thread */
  lua_Integer limit, used, polled, conn;
  int why;
  char what[32];
} bound_t;

static const char ACTIVE_KEY = 'b';
static uintptr_t next_serial;
static int (*cancel_poll)(lua_Integer conn);
static lua_State *slice_thread; /* yields to the loop when its slice is over (reload) */
static uint64_t slice_until_ms;
static lua_State *sliced; /* a policy coroutine yielded for the slice: its resumer passes it up */

void bound_set_cancel_poll(int (*poll)(lua_Integer)) { cancel_poll = poll; }

void bound_set_slice(lua_State *thread, uint64_t until_ms) {
  slice_thread = thread;
  slice_until_ms = until_ms;
}

static uintptr_t get_serial(lua_State *L) {
  uintptr_t s;
  memcpy(&s, lua_getextraspace(L), sizeof s);
  return s;
}

static void set_serial(lua_State *L, uintptr_t s) { memcpy(lua_getextraspace(L), &s, sizeof s); }

void bound_init_state(lua_State *L) {
  memset(lua_getextraspace(L), 0, LUA_EXTRASPACE);
  lua_newtable(L);
  lua_newtable(L);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &ACTIVE_KEY);
}

static bound_t *lookup(lua_State *L, uintptr_t serial) {
  if (!serial) return NULL;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &ACTIVE_KEY);
  lua_rawgeti(L, -1, (lua_Integer)serial);
  bound_t *b = lua_touserdata(L, -1);
  lua_pop(L, 2);
  return b;
}

static void set_active(lua_State *L, uintptr_t serial, int idx) {
  idx = lua_absindex(L, idx);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &ACTIVE_KEY);
  if (idx) lua_pushvalue(L, idx);
  else lua_pushnil(L);
  lua_rawseti(L, -2, (lua_Integer)serial);
  lua_pop(L, 1);
}

/* "file:line: " of the innermost Lua function with a line outside the engine's own
 * scripts (the policy or REPL line, not the wrapper it called), else of the innermost
 * one with a line, or "". */
static void where(lua_State *L, char *buf, size_t n) {
  host_t *h = host_from_lua(L);
  size_t dlen = h && h->scripts_dir ? strlen(h->scripts_dir) : 0;
  lua_Debug d;
  buf[0] = '\0';
  for (int lvl = 0; lua_getstack(L, lvl, &d); lvl++) {
    if (!lua_getinfo(L, "Sl", &d) || d.currentline <= 0) continue;
    int engine = dlen && d.source[0] == '@' && strncmp(d.source + 1, h->scripts_dir, dlen) == 0;
    if (!buf[0] || !engine) snprintf(buf, n, "%s:%d: ", d.short_src, d.currentline);
    if (!engine) return;
  }
}

static void hook(lua_State *L, lua_Debug *ar);

static int raise_error(lua_State *L, bound_t *b) {
  char at[256];
  where(L, at, sizeof at);
  lua_sethook(L, hook, LUA_MASKCOUNT, 1); /* caught by a pcall: raised again at once */
  switch (b->why) {
    case OVER_BUDGET:
      lua_pushfstring(L, "%s%s exceeded %I instructions", at, b->what, (LUAI_UACINT)b->limit);
      break;
    case STOPPING:
      lua_pushfstring(L, "%s%s interrupted: the daemon is stopping (SIGTERM/SIGINT)", at, b->what);
      break;
    default:
      lua_pushfstring(L, "%s%s interrupted (Ctrl-C)", at, b->what);
  }
  return lua_error(L);
}

static int stop_pending(void) {
  sigset_t set;
  if (sigpending(&set) < 0) return 0;
  return sigismember(&set, SIGTERM) == 1 || sigismember(&set, SIGINT) == 1;
}

/* Charge one step to b and every bound it nests in; the first one that trips, or NULL. */
static bound_t *charge(lua_State *L, bound_t *b) {
  bound_t *tripped = NULL;
  for (bound_t *o = b; o; o = lookup(L, o->prev)) {
    if (o->why == RUNNING) {
      o->used += BOUND_STEP;
      if (o->used > o->limit) o->why = OVER_BUDGET;
      else if (o->used - o->polled >= BOUND_POLL) {
        o->polled = o->used;
        if (stop_pending()) o->why = STOPPING;
        else if (o->conn && cancel_poll && cancel_poll(o->conn)) o->why = CANCELLED;
      }
    }
    if (o->why != RUNNING && !tripped) tripped = o;
  }
  return tripped;
}

static void hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  bound_t *b = lookup(L, get_serial(L));
  if (!b) { /* the bound ended, or this thread was never adopted: not ours to count */
    set_serial(L, 0);
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  bound_t *tripped = charge(L, b);
  if (tripped) raise_error(L, tripped);
  if (slice_thread && loop_now_ms() >= slice_until_ms && lua_isyieldable(L)) {
    if (L != slice_thread) sliced = L; /* a coroutine of the policy: see bound_lua_sliced */
    lua_yield(L, 0);
  }
}

static void arm(lua_State *L, uintptr_t serial) {
  set_serial(L, serial);
  if (serial) lua_sethook(L, hook, LUA_MASKCOUNT, BOUND_STEP);
  else lua_sethook(L, NULL, 0, 0);
}

/* Stack: [1] the bound, [2] the message handler if ctx, then results or the error. */
static int finish(lua_State *L, int status, lua_KContext ctx) {
  bound_t *b = lua_touserdata(L, 1);
  set_active(L, b->serial, 0);
  arm(L, lookup(L, b->prev) ? b->prev : 0);
  if (ctx) lua_remove(L, 2);
  lua_pushboolean(L, status == LUA_OK || status == LUA_YIELD);
  lua_replace(L, 1);
  if (status == LUA_OK || status == LUA_YIELD) return lua_gettop(L);
  lua_settop(L, 2);
  return 2;
}

static lua_Integer opt_int(lua_State *L, const char *k, lua_Integer def) {
  lua_getfield(L, 1, k);
  lua_Integer v = luaL_optinteger(L, -1, def);
  lua_pop(L, 1);
  return v;
}

int bound_lua_call(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_Integer limit = opt_int(L, "limit", 50000000), conn = opt_int(L, "conn", 0);
  luaL_argcheck(L, limit > 0, 1, "limit must be a positive number of instructions");
  lua_getfield(L, 1, "traceback");
  int traceback = lua_toboolean(L, -1);
  lua_getfield(L, 1, "what");
  bound_t *b = lua_newuserdatauv(L, sizeof *b, 0);
  *b = (bound_t){.serial = ++next_serial, .prev = get_serial(L), .limit = limit, .conn = conn};
  snprintf(b->what, sizeof b->what, "%s", luaL_optstring(L, -2, "policy"));
  lua_replace(L, 1); /* [1] bound, [2] fn, [3..] args, then what, traceback */
  lua_pop(L, 2);
  set_active(L, b->serial, 1);
  if (traceback) {
    lua_pushcfunction(L, lstate_msghandler);
    lua_insert(L, 2);
  }
  int nargs = lua_gettop(L) - (traceback ? 3 : 2);
  arm(L, b->serial);
  int status = lua_pcallk(L, nargs, LUA_MULTRET, traceback ? 2 : 0, traceback, finish);
  return finish(L, status, traceback);
}

int bound_lua_sliced(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTHREAD);
  lua_State *co = lua_tothread(L, 1);
  if (lua_toboolean(L, 2)) { /* the resumer yields in turn: mark it for its own resumer */
    sliced = L;
    return 0;
  }
  lua_pushboolean(L, sliced == co);
  if (sliced == co) sliced = NULL;
  return 1;
}

int bound_lua_adopt(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTHREAD);
  lua_State *co = lua_tothread(L, 1);
  uintptr_t s = get_serial(L);
  arm(co, lookup(L, s) ? s : 0);
  return 0;
}
