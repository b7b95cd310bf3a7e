/* Setting fields of the table at the stack top, shared by the Lua bindings. */
#ifndef ROTATOR_LUA_FIELDS_H
#define ROTATOR_LUA_FIELDS_H
#include <lua.h>

/* t[k] = v; a NULL string leaves the field unset (nil). */
static inline void lfield_str(lua_State *L, const char *k, const char *v) {
  if (!v) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

static inline void lfield_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static inline void lfield_num(lua_State *L, const char *k, lua_Number v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

#endif
