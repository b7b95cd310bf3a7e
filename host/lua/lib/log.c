/* `log` module: log.debug/info/warn/error(event, fields) write one structured line.
 * fields is an optional table of key → value (strings, numbers, booleans; tables are
 * JSON-ish summarised as "[table]"). Keys are written sorted, so lines are stable.
 * Secret-looking keys are redacted by log.c whatever the caller passes. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "lua/modules.h"

#define LOG_MAX_FIELDS 64

static int cmp_kv(const void *a, const void *b) {
  return strcmp(((const log_kv_t *)a)->key, ((const log_kv_t *)b)->key);
}

/* Collect the string keys of the table at idx. Converted values are kept referenced by
 * a holding table left on the stack, so the pointers stay valid until we return. */
static size_t collect_fields(lua_State *L, int idx, log_kv_t *kv) {
  size_t n = 0;
  lua_newtable(L);
  int hold = lua_gettop(L), slot = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    if (n < LOG_MAX_FIELDS && lua_type(L, -2) == LUA_TSTRING) {
      kv[n].key = lua_tostring(L, -2);
      if (lua_type(L, -1) == LUA_TTABLE) {
        kv[n].val = "[table]";
      } else {
        kv[n].val = luaL_tolstring(L, -1, NULL);
        lua_rawseti(L, hold, ++slot);
      }
      n++;
    }
    lua_pop(L, 1);
  }
  return n;
}

static int emit(lua_State *L, log_level_t lvl) {
  const char *event = luaL_checkstring(L, 1);
  if (lvl < log_get_level()) return 0;
  log_kv_t kv[LOG_MAX_FIELDS];
  size_t n = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    n = collect_fields(L, 2, kv);
  }
  qsort(kv, n, sizeof *kv, cmp_kv);
  log_event(lvl, event, kv, n);
  return 0;
}

static int l_debug(lua_State *L) { return emit(L, LOG_DEBUG); }
static int l_info(lua_State *L) { return emit(L, LOG_INFO); }
static int l_warn(lua_State *L) { return emit(L, LOG_WARN); }
static int l_error(lua_State *L) { return emit(L, LOG_ERROR); }

static int l_level(lua_State *L) {
  if (!lua_isnoneornil(L, 1)) {
    log_level_t lvl;
    if (log_parse_level(luaL_checkstring(L, 1), &lvl) < 0)
      return luaL_argerror(L, 1, "expected debug, info, warn or error");
    log_set_level(lvl);
  }
  lua_pushstring(L, log_level_name(log_get_level()));
  return 1;
}

static int l_format(lua_State *L) {
  lua_pushstring(L, log_get_format() == LOG_JSON ? "json" : "text");
  return 1;
}

static const luaL_Reg funcs[] = {{"debug", l_debug}, {"info", l_info}, {"warn", l_warn},
                                 {"error", l_error}, {"level", l_level}, {"format", l_format},
                                 {NULL, NULL}};

int luaopen_rotator_log(lua_State *L) {
  luaL_newlib(L, funcs);
  return 1;
}
