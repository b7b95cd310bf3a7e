/* libFuzzer harness: the Lua JSON codec (lua/lib/json.c) in an embedded Lua state.
 * Differential: whatever json.decode accepts re-encodes to text a strict RFC 8259
 * validator (below) accepts, and decode(encode(v)) encodes to the same text again. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lua/modules.h"

/* ---- a strict validator: RFC 8259 grammar, nothing more ---- */
typedef struct { const char *s; size_t n, i; int depth; } v_t;
static int v_value(v_t *v);
static void v_ws(v_t *v) { while (v->i < v->n && strchr(" \t\r\n", v->s[v->i]) && v->s[v->i]) v->i++; }
static int v_lit(v_t *v, const char *w) {
  size_t k = strlen(w);
  if (v->n - v->i < k || memcmp(v->s + v->i, w, k) != 0) return 0;
  v->i += k;
  return 1;
}
static int v_digits(v_t *v) {
  size_t b = v->i;
  while (v->i < v->n && v->s[v->i] >= '0' && v->s[v->i] <= '9') v->i++;
  return v->i > b;
}
static int v_number(v_t *v) {
  if (v->i < v->n && v->s[v->i] == '-') v->i++;
  if (v->i < v->n && v->s[v->i] == '0') v->i++;
  else if (!v_digits(v)) return 0;
  if (v->i < v->n && v->s[v->i] == '.') { v->i++; if (!v_digits(v)) return 0; }
  if (v->i < v->n && (v->s[v->i] == 'e' || v->s[v->i] == 'E')) {
    v->i++;
    if (v->i < v->n && (v->s[v->i] == '+' || v->s[v->i] == '-')) v->i++;
    if (!v_digits(v)) return 0;
  }
  return 1;
}
static int v_string(v_t *v) {
  if (v->i >= v->n || v->s[v->i] != '"') return 0;
  for (v->i++; v->i < v->n; v->i++) {
    unsigned char c = (unsigned char)v->s[v->i];
    if (c == '"') { v->i++; return 1; }
    if (c < 0x20) return 0;
    if (c == '\\') {
      if (++v->i >= v->n) return 0;
      c = (unsigned char)v->s[v->i];
      if (c == 'u') {
        if (v->n - v->i < 5) return 0;
        for (int k = 1; k <= 4; k++) if (!strchr("0123456789abcdefABCDEF", v->s[v->i + k]) || !v->s[v->i + k]) return 0;
        v->i += 4;
      } else if (!strchr("\"\\/bfnrt", c) || !c) return 0;
    }
  }
  return 0;
}
static int v_seq(v_t *v, char close, int obj) {
  v->i++;
  if (++v->depth > 10000) return 0;
  v_ws(v);
  if (v->i < v->n && v->s[v->i] == close) { v->i++; v->depth--; return 1; }
  for (;;) {
    v_ws(v);
    if (obj) { if (!v_string(v)) return 0; v_ws(v); if (!v_lit(v, ":")) return 0; }
    if (!v_value(v)) return 0;
    v_ws(v);
    if (v_lit(v, ",")) continue;
    if (v->i < v->n && v->s[v->i] == close) { v->i++; v->depth--; return 1; }
    return 0;
  }
}
static int v_value(v_t *v) {
  v_ws(v);
  if (v->i >= v->n) return 0;
  switch (v->s[v->i]) {
  case '{': return v_seq(v, '}', 1);
  case '[': return v_seq(v, ']', 0);
  case '"': return v_string(v);
  case 't': return v_lit(v, "true");
  case 'f': return v_lit(v, "false");
  case 'n': return v_lit(v, "null");
  default: return v_number(v);
  }
}
static int strict_valid(const char *s, size_t n) {
  v_t v = {s, n, 0, 0};
  if (!v_value(&v)) return 0;
  v_ws(&v);
  return v.i == n;
}

/* ---- the codec under test ---- */
static lua_State *L;

static const char *encode_top(size_t *len) {
  lua_getfield(L, 1, "encode");
  lua_pushvalue(L, -2);
  if (lua_pcall(L, 1, 2, 0) != LUA_OK || lua_isnil(L, -2)) return NULL;
  lua_pop(L, 1);
  return lua_tolstring(L, -1, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L) {
    L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "json", luaopen_rotator_json, 0); /* stack: [1] = json */
  }
  lua_settop(L, 1);
  lua_getfield(L, 1, "decode");
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 2, 0) != LUA_OK) abort(); /* decode reports, never raises */
  if (lua_isnil(L, -2)) { lua_settop(L, 1); return 0; }
  lua_pop(L, 1);                                         /* [2] = value */
  if (!strict_valid((const char *)data, size)) abort(); /* accepted what RFC 8259 refuses */
  size_t n1, n2;
  const char *e1 = encode_top(&n1);                      /* [3] = text */
  if (!e1) { lua_settop(L, 1); return 0; }               /* e.g. a number beyond 2^63 */
  if (!strict_valid(e1, n1)) abort();
  lua_getfield(L, 1, "decode");
  lua_pushvalue(L, 3);
  if (lua_pcall(L, 1, 2, 0) != LUA_OK || lua_isnil(L, -2)) abort();
  lua_pop(L, 1);                                         /* [4] = value again */
  const char *e2 = encode_top(&n2);
  if (!e2 || n1 != n2 || memcmp(e1, e2, n1) != 0) abort();
  lua_settop(L, 1);
  return 0;
}
