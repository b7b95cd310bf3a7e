/* Lua-owned byte buffers; see lua/lbuf.h. */
#include "lua/lbuf.h"

#include <lauxlib.h>
#include <string.h>

#define LBUF_MT "rotator.buffer"

static int lbuf_gc(lua_State *L) {
  buf_free(luaL_checkudata(L, 1, LBUF_MT));
  return 0;
}

buf_t *lbuf_push(lua_State *L) {
  buf_t *b = lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  if (luaL_newmetatable(L, LBUF_MT)) {
    lua_pushcfunction(L, lbuf_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return b;
}

void lbuf_put(lua_State *L, buf_t *b, const void *p, size_t n) {
  if (buf_append(b, p, n) < 0) luaL_error(L, "out of memory building a string of %zu bytes", b->len + n);
}

int lbuf_sink(void *b, const char *p, size_t n) { return buf_append(b, p, n); }

void lbuf_to_string(lua_State *L, buf_t *b) {
  lua_pushlstring(L, b->data ? b->data : "", b->len);
  buf_free(b);
  lua_remove(L, -2);
}
