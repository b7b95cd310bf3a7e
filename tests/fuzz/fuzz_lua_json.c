/* libFuzzer harness: the Lua JSON codec (lua/lib/json.c) in an embedded Lua state.
 * Differential against a strict RFC 8259 validator (below): json.decode accepts exactly
 * what the validator accepts, but for its documented limits (nesting beyond 1000 levels,
 * a lone UTF-16 surrogate); whatever it accepts re-encodes to valid text, and
 * decode(encode(v)) equals v (same values, same array/object marks; member order in
 * the text follows table iteration and is not compared). Against the host's member reader
 * (util/json_get.c): every top-level member (name up to 63 bytes, json_get's limit) of a
 * decoded object with unique names reads the same through json_get (strings equal, numbers and literals found, objects and
 * arrays refused). */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lua/modules.h"
#include "util/json_get.h"

/* ---- a strict validator: RFC 8259 grammar, nothing more ---- */
typedef struct { const char *s; size_t n, i; int depth; long top_members; } v_t;
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
    if (obj) { if (!v_string(v)) return 0; v_ws(v); if (!v_lit(v, ":")) return 0; if (v->depth == 1) v->top_members++; }
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
/* 1 when valid; *members: the number of members of a top-level object (-1 otherwise) */
static int strict_valid(const char *s, size_t n, long *members) {
  v_t v = {s, n, 0, 0, 0};
  if (!v_value(&v)) return 0;
  v_ws(&v);
  size_t b = 0;
  while (b < n && strchr(" \t\r\n", s[b]) && s[b]) b++;
  if (members) *members = b < n && s[b] == '{' ? v.top_members : -1;
  return v.i == n;
}

/* ---- the codec under test ---- */
static lua_State *L;
static int same_ref = LUA_NOREF;

static const char SAME[] =
    "local function same(a, b)\n"
    "  if type(a) ~= type(b) then return false end\n"
    "  if type(a) ~= 'table' then return a == b end\n"
    "  if getmetatable(a) ~= getmetatable(b) then return false end\n"
    "  for k, v in pairs(a) do if not same(v, b[k]) then return false end end\n"
    "  for k in pairs(b) do if a[k] == nil then return false end end\n"
    "  return true\n"
    "end\n"
    "return same\n";

static const char *encode_top(size_t *len) {
  lua_getfield(L, 1, "encode");
  lua_pushvalue(L, -2);
  if (lua_pcall(L, 1, 2, 0) != LUA_OK || lua_isnil(L, -2)) return NULL;
  lua_pop(L, 1);
  return lua_tolstring(L, -1, len);
}

/* The decoded object at index 2 against json_get on the same text. */
static void against_json_get(const char *text, size_t len, long members) {
  static char got[1 << 16];
  long keys = 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) keys++, lua_pop(L, 1);
  if (keys != members) return; /* a repeated name: the two readers may keep different ones */
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    size_t kn, vn;
    const char *k = lua_tolstring(L, -2, &kn);  /* keys of a decoded object are strings */
    if (k && kn == strlen(k) && kn < 64) { /* json_get looks up names of up to 63 bytes */
      int rc = json_get(text, len, k, got, sizeof got);
      int t = lua_type(L, -1);
      if (t == LUA_TSTRING) {
        const char *v = lua_tolstring(L, -1, &vn);
        if (vn == strlen(v) && vn < sizeof got && (rc != 0 || strcmp(got, v) != 0)) abort();
      } else if (t == LUA_TTABLE) {
        if (rc != -1) abort();
      } else if (rc != 0 && rc != JSON_GET_TOO_LONG) {
        abort(); /* numbers, true, false, null read as their text */
      }
    }
    lua_pop(L, 1);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L) {
    L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "json", luaopen_rotator_json, 0); /* stack: [1] = json */
    if (luaL_loadbuffer(L, SAME, sizeof SAME - 1, "=same") != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) abort();
    same_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_settop(L, 1);
  lua_getfield(L, 1, "decode");
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 2, 0) != LUA_OK) abort(); /* decode reports, never raises */
  long members;
  int valid = strict_valid((const char *)data, size, &members);
  if (lua_isnil(L, -2)) {
    const char *why = lua_tostring(L, -1);
    if (valid && (!why || (!strstr(why, "nesting deeper than 1000") && !strstr(why, "surrogate")))) abort();
    lua_settop(L, 1);
    return 0;
  }
  lua_pop(L, 1);                                         /* [2] = value */
  if (!valid) abort(); /* accepted what RFC 8259 refuses */
  if (members >= 0) against_json_get((const char *)data, size, members);
  size_t n1;
  const char *e1 = encode_top(&n1);                      /* [3] = text */
  if (!e1) { lua_settop(L, 1); return 0; }               /* e.g. a number beyond 2^63 */
  if (!strict_valid(e1, n1, NULL)) abort();
  lua_getfield(L, 1, "decode");
  lua_pushvalue(L, 3);
  if (lua_pcall(L, 1, 2, 0) != LUA_OK || lua_isnil(L, -2)) abort();
  lua_pop(L, 1);                                         /* [4] = value again */
  lua_rawgeti(L, LUA_REGISTRYINDEX, same_ref);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 4);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK || !lua_toboolean(L, -1)) abort();
  lua_settop(L, 1);
  return 0;
}
