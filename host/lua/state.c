/* Lua state set-up and the pcall gateway (after lua.c's docall/msghandler). */
#include "lua/state.h"

#include <lauxlib.h>
#include <lualib.h>
#include <string.h>

#include "core/log.h"
#include "lua/alloc.h"
#include "lua/bound.h"
#include "lua/modules.h"

static const char HOST_KEY = 'h'; /* address used as a light-userdata registry key */

host_t *host_from_lua(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &HOST_KEY);
  host_t *h = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return h;
}

/* Message handler: turn any error into "message\nstack traceback:...". Non-string errors
 * with __tostring use it; others are described by type. */
int lstate_msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

int lstate_pcall(lua_State *L, int nargs, int nresults) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, lstate_msghandler);
  lua_insert(L, base);
  int status = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  return status;
}

int lstate_callback(lua_State *L, int nargs, const char *what) {
  int top = lua_gettop(L) - nargs - 1;
  int status = lstate_pcall(L, nargs, 0);
  if (status != LUA_OK) {
    log_kv_t kv[] = {{"in", what}, {"error", lua_tostring(L, -1)}};
    log_event(LOG_ERROR, "lua.error", kv, 2);
  }
  lua_settop(L, top);
  return status == LUA_OK ? 0 : -1;
}

int lstate_require(lua_State *L, const char *name) {
  lua_getglobal(L, "require");
  lua_pushstring(L, name);
  if (lstate_pcall(L, 1, 1) != LUA_OK) return -1;
  return 0;
}

static void preload(lua_State *L, const char *name, lua_CFunction open) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, open);
  lua_setfield(L, -2, name);
  lua_pop(L, 1);
}

/* Scripts are found only in the scripts folder: a stray module in the working directory
 * or LUA_PATH must not shadow the engine. */
static void set_package_path(lua_State *L, const char *dir) {
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", dir, dir);
  lua_setfield(L, -2, "path");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
}

static int open_all(lua_State *L) {
  host_t *h = lua_touserdata(L, 1);
  bound_init_state(L);
  luaL_openlibs(L);
  lua_pushlightuserdata(L, h);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &HOST_KEY);
  preload(L, "re", luaopen_rotator_re);
  preload(L, "json", luaopen_rotator_json);
  preload(L, "clock", luaopen_rotator_clock);
  preload(L, "timer", luaopen_rotator_timer);
  preload(L, "log", luaopen_rotator_log);
  preload(L, "host", luaopen_rotator_host);
  preload(L, "journal", luaopen_rotator_journal);
  preload(L, "control", luaopen_rotator_control);
  preload(L, "jsonstream", luaopen_rotator_jsonstream);
  preload(L, "aws_core", luaopen_rotator_aws_core);
  preload(L, "metrics", luaopen_rotator_metrics);
  set_package_path(L, h->scripts_dir);
  return 0;
}

lua_State *lstate_owner(lua_State *L) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  lua_State *main = lua_tothread(L, -1);
  lua_pop(L, 1);
  return main;
}

int lstate_is_current(lua_State *L) {
  host_t *h = host_from_lua(L);
  return h && h->L && h->L == lstate_owner(L);
}

static const char ADOPT_KEY = 'a'; /* registry: C functions to run when the state is adopted */

void lstate_on_adopt(lua_State *L, lua_CFunction fn) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &ADOPT_KEY);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &ADOPT_KEY);
  }
  lua_pushcfunction(L, fn);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  lua_pop(L, 1);
}

void lstate_adopted(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &ADOPT_KEY) != LUA_TTABLE) { lua_pop(L, 1); return; }
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    lstate_callback(L, 0, "adopt");
  }
  lua_pop(L, 1);
}

lua_State *lstate_new(host_t *h) {
  lua_State *L = lalloc_newstate();
  if (!L) return NULL;
  lua_pushcfunction(L, open_all);
  lua_pushlightuserdata(L, h);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) { /* only memory errors can land here */
    log_msg(LOG_ERROR, "lua.init", "%s", lua_tostring(L, -1));
    lua_close(L);
    return NULL;
  }
  return L;
}
