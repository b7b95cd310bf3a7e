/* Copying a JSON-shaped value between two Lua states (see transfer.h). The copy runs
 * under lua_pcall in the destination, so running out of memory there unwinds cleanly;
 * the source is only read with calls that never raise (lua_next, lua_rawget on tables,
 * lua_checkstack), so no error can ever jump across the two states. */
#include "lua/transfer.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 1000
#define PATH_SHOWN 12
#define ARRAY_MT "rotator.json.array"   /* the marks of lib/json.c, by registry name */
#define OBJECT_MT "rotator.json.object"

typedef struct {
  int key_type;   /* LUA_TSTRING or LUA_TNUMBER */
  const char *s;  /* string key (valid while the source table is on the stack) */
  lua_Integer i;  /* integer key */
  double f;       /* float key */
  int is_int;
} path_step;

typedef struct {
  lua_State *from, *to;
  int depth;
  const char *why; /* set on a refusal, before raising in `to` */
  path_step path[PATH_SHOWN];
} xfer_t;

static void copy_value(xfer_t *x, int idx);

static void refuse(xfer_t *x, const char *why) {
  x->why = why;
  luaL_error(x->to, "%s", why);
}

/* The __jsontype mark of the table at idx in `from`: "array", "object" or NULL. */
static const char *mark_of(lua_State *L, int idx) {
  const char *kind = NULL;
  if (!lua_getmetatable(L, idx)) return NULL;
  lua_pushliteral(L, "__jsontype"); /* interned short string: no allocation */
  if (lua_rawget(L, -2) == LUA_TSTRING) {
    const char *t = lua_tostring(L, -1);
    kind = strcmp(t, "array") == 0 ? "array" : strcmp(t, "object") == 0 ? "object" : NULL;
  }
  lua_pop(L, 2);
  return kind;
}

static void note_key(xfer_t *x, int key) {
  if (x->depth > PATH_SHOWN) return;
  path_step *p = &x->path[x->depth - 1];
  p->key_type = lua_type(x->from, key);
  if (p->key_type == LUA_TSTRING) p->s = lua_tostring(x->from, key);
  else if ((p->is_int = lua_isinteger(x->from, key))) p->i = lua_tointeger(x->from, key);
  else p->f = (double)lua_tonumber(x->from, key);
}

static void copy_table(xfer_t *x, int idx) {
  lua_State *from = x->from, *to = x->to;
  if (x->depth >= MAX_DEPTH) refuse(x, "nesting deeper than 1000 levels (a cycle?)");
  if (!lua_checkstack(from, 4)) refuse(x, "the source stack cannot grow");
  luaL_checkstack(to, 4, "transfer: nesting too deep");
  x->depth++;
  /* Sized up front: growing a table key by key rehashes it at every power of two. */
  int total = 0, narr = (int)lua_rawlen(from, idx);
  lua_pushnil(from);
  while (lua_next(from, idx)) {
    lua_pop(from, 1);
    total++;
  }
  if (narr > total) narr = total;
  lua_createtable(to, narr, total - narr);
  const char *mark = mark_of(from, idx);
  if (mark) luaL_setmetatable(to, mark[0] == 'a' ? ARRAY_MT : OBJECT_MT);
  lua_pushnil(from);
  while (lua_next(from, idx)) {
    int key = lua_gettop(from) - 1;
    int kt = lua_type(from, key);
    if (kt != LUA_TSTRING && kt != LUA_TNUMBER) refuse(x, "a table key that is neither a string nor a number");
    note_key(x, key);
    if (kt == LUA_TSTRING) {
      size_t n;
      const char *s = lua_tolstring(from, key, &n); /* a string already: no conversion */
      lua_pushlstring(to, s, n);
    } else if (lua_isinteger(from, key)) {
      lua_pushinteger(to, lua_tointeger(from, key));
    } else {
      lua_pushnumber(to, lua_tonumber(from, key));
    }
    copy_value(x, key + 1);
    lua_rawset(to, -3);
    lua_pop(from, 1);
  }
  x->depth--;
}

static void copy_value(xfer_t *x, int idx) {
  lua_State *from = x->from, *to = x->to;
  switch (lua_type(from, idx)) {
  case LUA_TNIL: lua_pushnil(to); break;
  case LUA_TBOOLEAN: lua_pushboolean(to, lua_toboolean(from, idx)); break;
  case LUA_TNUMBER:
    if (lua_isinteger(from, idx)) lua_pushinteger(to, lua_tointeger(from, idx));
    else lua_pushnumber(to, lua_tonumber(from, idx));
    break;
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(from, idx, &n);
    lua_pushlstring(to, s, n);
    break;
  }
  case LUA_TTABLE: copy_table(x, idx); break;
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(from, idx) == NULL) { /* json.null */
      lua_pushlightuserdata(to, NULL);
      break;
    }
    /* fall through */
  default: refuse(x, lua_typename(from, lua_type(from, idx)));
  }
}

static int copy_protected(lua_State *to) {
  xfer_t *x = lua_touserdata(to, 1);
  int idx = (int)lua_tointeger(to, 2);
  lua_settop(to, 0);
  copy_value(x, idx);
  return 1;
}

/* "cannot encode a function value at $.workflows[3].Steps": the words of json.encode,
 * for the same refusal. */
static void put_path(const xfer_t *x, char *err, size_t len, const char *why) {
  int type_name = strchr(why, ' ') == NULL; /* "function", "userdata", "thread" */
  size_t n = (size_t)snprintf(err, len, "cannot encode %s%s%s at $", type_name ? "a " : "", why,
                              type_name ? " value" : "");
  for (int i = 0; i < x->depth && i < PATH_SHOWN && n < len; i++) {
    const path_step *p = &x->path[i];
    if (p->key_type == LUA_TSTRING) n += (size_t)snprintf(err + n, len - n, ".%s", p->s);
    else if (p->key_type == LUA_TNUMBER && p->is_int) n += (size_t)snprintf(err + n, len - n, "[%lld]", (long long)p->i);
    else if (p->key_type == LUA_TNUMBER) n += (size_t)snprintf(err + n, len - n, "[%g]", p->f);
  }
  if (x->depth > PATH_SHOWN && n < len) snprintf(err + n, len - n, "...");
}

int transfer_value(lua_State *from, int idx, lua_State *to, char *err, size_t errlen) {
  xfer_t x;
  memset(&x, 0, sizeof x);
  x.from = from, x.to = to;
  idx = lua_absindex(from, idx);
  if (!lua_checkstack(from, 8) || !lua_checkstack(to, 4)) {
    snprintf(err, errlen, "cannot encode the value: out of stack space");
    return -1;
  }
  int top = lua_gettop(from);
  /* Nothing in `to` becomes garbage while it copies: no collector steps meanwhile. */
  int was_running = lua_gc(to, LUA_GCISRUNNING);
  lua_gc(to, LUA_GCSTOP);
  lua_pushcfunction(to, copy_protected);
  lua_pushlightuserdata(to, &x);
  lua_pushinteger(to, idx);
  int rc = lua_pcall(to, 2, 1, 0);
  if (was_running) lua_gc(to, LUA_GCRESTART);
  if (rc == LUA_OK) return 0;
  if (x.why) put_path(&x, err, errlen, x.why);
  else snprintf(err, errlen, "cannot encode the value: %s", lua_tostring(to, -1) ? lua_tostring(to, -1) : "error");
  lua_pop(to, 1);
  lua_settop(from, top);
  return -1;
}
