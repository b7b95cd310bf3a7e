/* `log` module: log.debug/info/warn/error(event, fields) write one structured line.
 * fields is an optional table of key → value. Values keep their Lua types in JSON mode:
 * numbers and booleans are written bare, json.null as null, strings as strings; tables
 * are summarised as "[table]". Keys are written sorted, so lines are stable; every string
 * key is written, however many. Secret-looking keys are redacted by log.c whatever the
 * caller passes.
 *   log.enabled(level) -> boolean   would a line at that level be written? A caller whose
 *   fields cost something to build (a table per line) asks first:
 *     if log.enabled("info") then log.info("restore.started", D.fields(doc, {...})) end */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "lua/modules.h"

static int cmp_field(const void *a, const void *b) {
  return strcmp(((const log_field_t *)a)->key, ((const log_field_t *)b)->key);
}

static size_t count_fields(lua_State *L, int idx) {
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    if (lua_type(L, -2) == LUA_TSTRING) n++;
    lua_pop(L, 1);
  }
  return n;
}

/* The string keys of the table at idx into f (room for max). Converted values are kept
 * referenced by a holding table left on the stack, so the pointers stay valid until we
 * return. */
static size_t collect_fields(lua_State *L, int idx, log_field_t *f, size_t max) {
  size_t n = 0;
  lua_newtable(L);
  int hold = lua_gettop(L), slot = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    if (n < max && lua_type(L, -2) == LUA_TSTRING) {
      f[n].key = lua_tostring(L, -2);
      switch (lua_type(L, -1)) {
        case LUA_TSTRING:
          f[n] = (log_field_t){f[n].key, lua_tostring(L, -1), LOG_T_STR};
          break;
        case LUA_TBOOLEAN:
          f[n] = (log_field_t){f[n].key, lua_toboolean(L, -1) ? "true" : "false", LOG_T_BOOL};
          break;
        case LUA_TLIGHTUSERDATA:
          if (lua_touserdata(L, -1) == NULL) { /* json.null */
            f[n] = (log_field_t){f[n].key, NULL, LOG_T_NULL};
            break;
          }
          /* fallthrough */
        case LUA_TNUMBER:
        default:
          f[n].type = lua_type(L, -1) == LUA_TNUMBER ? LOG_T_NUM : LOG_T_STR;
          f[n].val = luaL_tolstring(L, -1, NULL);
          lua_rawseti(L, hold, ++slot);
          break;
        case LUA_TTABLE:
          f[n] = (log_field_t){f[n].key, "[table]", LOG_T_STR};
          break;
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
  log_field_t *f = NULL;
  size_t n = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    size_t max = count_fields(L, 2);
    f = lua_newuserdatauv(L, (max ? max : 1) * sizeof *f, 0); /* freed by the GC, also on error */
    n = collect_fields(L, 2, f, max);
  }
  if (n) qsort(f, n, sizeof *f, cmp_field);
  log_fields(lvl, event, f, n);
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

static int l_enabled(lua_State *L) {
  log_level_t lvl;
  if (log_parse_level(luaL_checkstring(L, 1), &lvl) < 0)
    return luaL_argerror(L, 1, "expected debug, info, warn or error");
  lua_pushboolean(L, lvl >= log_get_level());
  return 1;
}

static int l_format(lua_State *L) {
  lua_pushstring(L, log_get_format() == LOG_JSON ? "json" : "text");
  return 1;
}

static const luaL_Reg funcs[] = {{"debug", l_debug}, {"info", l_info}, {"warn", l_warn},
                                 {"error", l_error}, {"level", l_level}, {"format", l_format},
                                 {"enabled", l_enabled},
                                 {NULL, NULL}};

int luaopen_rotator_log(lua_State *L) {
  luaL_newlib(L, funcs);
  return 1;
}
