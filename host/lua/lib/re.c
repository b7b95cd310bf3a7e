/* require "re": PCRE2 regular expressions for policies, Go-flavoured.
 *
 *   re.compile(pattern [, flags])      -> regex object (raises on a bad pattern)
 *   re.match(subject, pattern [, flags])   -> match | nil
 *   re.test(subject, pattern [, flags])    -> boolean
 *   re.gmatch(subject, pattern [, flags])  -> iterator over matches
 *   re.find_all(subject, pattern [, flags])-> array of matches
 *   re.replace(subject, pattern, template [, flags]) -> string
 *   re.quote(s)                        -> pattern matching s literally (Go QuoteMeta)
 *   re.cache_stats()                   -> {hits=, misses=, size=, capacity=, evictions=}
 *   regex:match(subject [, init]) regex:test(subject) regex:gmatch(subject)
 *   regex:find_all(subject) regex:replace(subject, template) regex:pattern()
 *   regex:groups() -> number of capturing groups, {name = group number}
 *   regex:offsets(subject) -> nil | {s0, e0, s1, e1, ...}: the first match's
 *     0-based byte offsets, -1 for a group that did not take part (as Go's
 *     FindStringSubmatchIndex; for comparing with Go)
 *   regex objects support <close>, __gc and tostring().
 *
 * flags: letters from "imsxu" (i caseless, m multiline, s dotall, x extended,
 * u UTF-8). Inline (?i) etc. work as in Go. `$` without m matches only at the
 * very end of the subject, as in Go.
 *
 * A match is a table:
 *   [0]       the whole match
 *   [1]..[n]  numbered groups; false when the group did not take part
 *   name      each named group, also false when unset
 *   start     1-based index of the first byte (as string.find)
 *   stop      index of the last byte (start - 1 for an empty match)
 * start/stop win over groups named "start"/"stop" (reach those by number).
 *
 * gmatch/find_all list matches like Go's FindAll (an empty match right after
 * the previous match is skipped). replace has Go ReplaceAllString semantics:
 * every match is replaced; $1 ${1} $name ${name} $0 expand, $$ is '$', the
 * longest run of [A-Za-z0-9_] is the name ($1x is group "1x"), unknown or
 * unset groups expand to nothing and a malformed reference keeps its '$'.
 *
 * Errors: wrong argument types raise the usual "bad argument" errors; a bad
 * pattern raises `re: invalid pattern "<pattern>": <PCRE2 message> at offset N`;
 * a failed match (e.g. match limit exceeded) raises `re: <PCRE2 message>`.
 * Every match runs under RX_MATCH_LIMIT / RX_DEPTH_LIMIT (util/regex.h).
 *
 * Compiled patterns live in a per-state LRU cache keyed by (pattern, flags),
 * so re.match(s, "literal pattern") in a hot path compiles once. Each regex
 * object holds its own reference to the shared compilation, so closing one
 * object never affects another.
 */
#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>

#include "lua/lbuf.h"
#include "lua/modules.h"
#include "lua/fields.h"
#include "util/regex.h"

#define REGEX_MT "rotator.re.regex"
#define CACHE_MT "rotator.re.cache"
#define CACHE_CAPACITY 256
#define LOCAL_GROUPS 16 /* offsets of up to this many groups are copied on the C stack */

typedef struct {
  rx_cache_t *cache;
} cache_box_t;

/* Pushes s with control bytes as \xHH, for error messages. */
static const char *push_printable(lua_State *L, const char *s, size_t len) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f) {
      char hex[4] = {'\\', 'x', "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15]};
      luaL_addlstring(&b, hex, sizeof hex);
    } else {
      luaL_addchar(&b, (char)c);
    }
  }
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

static uint32_t check_flags(lua_State *L, int idx) {
  size_t len;
  uint32_t bits = 0;
  const char *s = luaL_optlstring(L, idx, "", &len);
  long bad = rx_parse_flags(s, len, &bits);
  if (bad >= 0)
    luaL_argerror(L, idx,
                  lua_pushfstring(L, "unknown regex flag '%c' (flags are letters from \"imsxu\")",
                                  s[bad]));
  return bits;
}

static void raise_match_error(lua_State *L, const rx_error_t *err) {
  luaL_error(L, "re: %s", err->msg);
}

/* ---- regex objects ---- */

static rx_t **push_slot(lua_State *L) {
  rx_t **slot = lua_newuserdatauv(L, sizeof *slot, 0);
  *slot = NULL;
  luaL_setmetatable(L, REGEX_MT);
  return slot;
}

static rx_t *check_regex(lua_State *L, int idx) {
  rx_t **slot = luaL_checkudata(L, idx, REGEX_MT);
  if (!*slot) luaL_error(L, "re: regex used after it was closed");
  return *slot;
}

/* Pushes a regex object for (pattern at pat_idx, flags at flags_idx) from the
 * cache in upvalue 1; raises on a bad pattern. */
static rx_t *push_cached(lua_State *L, int pat_idx, int flags_idx) {
  size_t len;
  const char *pat = luaL_checklstring(L, pat_idx, &len);
  uint32_t flags = check_flags(L, flags_idx);
  cache_box_t *box = lua_touserdata(L, lua_upvalueindex(1));
  rx_t **slot = push_slot(L);
  rx_error_t err;
  *slot = rx_cache_get(box->cache, pat, len, flags, &err);
  if (!*slot) {
    const char *shown = push_printable(L, pat, len);
    luaL_error(L, "re: invalid pattern \"%s\": %s", shown, err.msg);
  }
  return *slot;
}

/* ---- building match tables ---- */

/* Room for a copy of the match offsets, reserved before matching: building
 * the result allocates, an allocation may run finalizers, and a finalizer
 * could match with the same compiled pattern and overwrite its offsets.
 * Pushes one value (nil or the userdata holding the room). */
static size_t *reserve_offsets(lua_State *L, const rx_t *rx, size_t *local) {
  size_t pairs = (size_t)rx_group_count(rx) + 1;
  if (pairs <= LOCAL_GROUPS + 1) {
    lua_pushnil(L);
    return local;
  }
  return lua_newuserdatauv(L, 2 * pairs * sizeof(size_t), 0);
}

static void copy_offsets(const rx_t *rx, size_t *ov) {
  memcpy(ov, rx_ovector(rx), 2 * ((size_t)rx_group_count(rx) + 1) * sizeof *ov);
}

static void push_group(lua_State *L, const char *s, const size_t *ov, uint32_t g) {
  if (ov[2 * g] == RX_UNSET) lua_pushboolean(L, 0);
  else lua_pushlstring(L, s + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
}

typedef struct {
  lua_State *L;
  const char *s;
  const size_t *ov;
} names_ctx_t;

static void set_named(void *ctx, uint32_t num, const char *name) {
  names_ctx_t *c = ctx;
  /* With duplicate names (?J) the first group that matched wins, as in Go. */
  if (lua_getfield(c->L, -1, name) == LUA_TSTRING) {
    lua_pop(c->L, 1);
    return;
  }
  lua_pop(c->L, 1);
  push_group(c->L, c->s, c->ov, num);
  lua_setfield(c->L, -2, name);
}

static void push_match(lua_State *L, const rx_t *rx, const char *s, const size_t *ov) {
  uint32_t n = rx_group_count(rx);
  names_ctx_t ctx = {L, s, ov};
  lua_createtable(L, (int)n, 4);
  for (uint32_t g = 0; g <= n; g++) {
    push_group(L, s, ov, g);
    lua_rawseti(L, -2, g);
  }
  rx_each_name(rx, set_named, &ctx);
  lua_pushinteger(L, (lua_Integer)ov[0] + 1);
  lua_setfield(L, -2, "start");
  lua_pushinteger(L, (lua_Integer)ov[1]);
  lua_setfield(L, -2, "stop");
}

/* Like string.find's init: negative counts from the end. 0-based result. */
static size_t start_offset(lua_State *L, int idx, size_t len) {
  lua_Integer init = luaL_optinteger(L, idx, 1);
  if (init > 0) return (size_t)init - 1;
  if (init == 0 || (size_t)-init > len) return 0;
  return len - (size_t)-init;
}

/* Matches rx (kept alive by an object on the stack) on s from byte start;
 * pushes a match table or nil. */
static int do_match(lua_State *L, rx_t *rx, const char *s, size_t len, size_t start) {
  size_t local[2 * (LOCAL_GROUPS + 1)];
  rx_error_t err;
  if (start > len) {
    lua_pushnil(L);
    return 1;
  }
  size_t *ov = reserve_offsets(L, rx, local);
  int rc = rx_exec(rx, s, len, start, &err);
  if (rc < 0) raise_match_error(L, &err);
  if (rc == 0) {
    lua_pushnil(L);
    return 1;
  }
  copy_offsets(rx, ov);
  push_match(L, rx, s, ov);
  return 1;
}

static int do_test(lua_State *L, rx_t *rx, const char *s, size_t len) {
  rx_error_t err;
  int rc = rx_exec(rx, s, len, 0, &err);
  if (rc < 0) raise_match_error(L, &err);
  lua_pushboolean(L, rc);
  return 1;
}

/* ---- iteration ---- */

/* Upvalues: 1 regex object, 2 subject, 3 rx_iter_t userdata. */
static int gmatch_step(lua_State *L) {
  rx_t *rx = check_regex(L, lua_upvalueindex(1));
  size_t len, local[2 * (LOCAL_GROUPS + 1)];
  const char *s = lua_tolstring(L, lua_upvalueindex(2), &len);
  rx_iter_t *it = lua_touserdata(L, lua_upvalueindex(3));
  rx_error_t err;
  size_t *ov = reserve_offsets(L, rx, local);
  int rc = rx_iter_next(rx, it, s, len, &err);
  if (rc < 0) raise_match_error(L, &err);
  if (rc == 0) return 0;
  copy_offsets(rx, ov);
  push_match(L, rx, s, ov);
  return 1;
}

/* Pushes the iterator for regex object at rx_idx and subject at s_idx. */
static int push_gmatch(lua_State *L, int rx_idx, int s_idx) {
  luaL_checkstring(L, s_idx);
  lua_pushvalue(L, rx_idx);
  lua_pushvalue(L, s_idx);
  rx_iter_init(lua_newuserdatauv(L, sizeof(rx_iter_t), 0));
  lua_pushcclosure(L, gmatch_step, 3);
  return 1;
}

static int do_find_all(lua_State *L, rx_t *rx, const char *s, size_t len) {
  size_t local[2 * (LOCAL_GROUPS + 1)];
  rx_iter_t it;
  rx_error_t err;
  int rc;
  lua_Integer i = 0;
  lua_newtable(L);
  size_t *ov = reserve_offsets(L, rx, local);
  rx_iter_init(&it);
  while ((rc = rx_iter_next(rx, &it, s, len, &err)) == 1) {
    copy_offsets(rx, ov);
    push_match(L, rx, s, ov);
    lua_rawseti(L, -3, ++i);
  }
  if (rc < 0) raise_match_error(L, &err);
  lua_pop(L, 1);
  return 1;
}

static int do_replace(lua_State *L, rx_t *rx, int s_idx, int t_idx) {
  size_t len, tlen;
  const char *s = luaL_checklstring(L, s_idx, &len);
  const char *t = luaL_checklstring(L, t_idx, &tlen);
  rx_error_t err;
  /* The sink only touches malloc'ed memory, so no Lua code (finalizers) can
   * run between a match and the expansion that reads its offsets. */
  buf_t *b = lbuf_push(L);
  if (rx_replace(rx, s, len, t, tlen, lbuf_sink, b, &err) < 0) raise_match_error(L, &err);
  lbuf_to_string(L, b);
  return 1;
}

/* ---- methods ---- */

static int m_match(lua_State *L) {
  rx_t *rx = check_regex(L, 1);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  return do_match(L, rx, s, len, start_offset(L, 3, len));
}

static int m_test(lua_State *L) {
  rx_t *rx = check_regex(L, 1);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  return do_test(L, rx, s, len);
}

static int m_gmatch(lua_State *L) {
  check_regex(L, 1);
  return push_gmatch(L, 1, 2);
}

static int m_find_all(lua_State *L) {
  rx_t *rx = check_regex(L, 1);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  return do_find_all(L, rx, s, len);
}

static int m_replace(lua_State *L) { return do_replace(L, check_regex(L, 1), 2, 3); }

static int m_pattern(lua_State *L) {
  rx_t *rx = check_regex(L, 1);
  size_t len;
  const char *pat = rx_pattern(rx, &len);
  char flags[8];
  rx_flags_string(rx_flags(rx), flags, sizeof flags);
  lua_pushlstring(L, pat, len);
  lua_pushstring(L, flags);
  return 2;
}

static void add_name(void *ctx, uint32_t num, const char *name) {
  lua_State *L = ctx;
  lua_pushinteger(L, (lua_Integer)num);
  lua_setfield(L, -2, name);
}

/* regex:groups() -> number of capturing groups, {name = group number}. */
static int m_groups(lua_State *L) {
  rx_t *rx = check_regex(L, 1);
  lua_pushinteger(L, (lua_Integer)rx_group_count(rx));
  lua_newtable(L);
  rx_each_name(rx, add_name, L);
  return 2;
}

/* regex:offsets(subject) -> nil or the flat offset list (see the header). */
static int m_offsets(lua_State *L) {
  rx_t *rx = check_regex(L, 1);
  size_t len, local[2 * (LOCAL_GROUPS + 1)];
  const char *s = luaL_checklstring(L, 2, &len);
  rx_error_t err;
  size_t *ov = reserve_offsets(L, rx, local);
  int rc = rx_exec(rx, s, len, 0, &err);
  if (rc < 0) raise_match_error(L, &err);
  if (rc == 0) {
    lua_pushnil(L);
    return 1;
  }
  copy_offsets(rx, ov);
  uint32_t n = 2 * (rx_group_count(rx) + 1);
  lua_createtable(L, (int)n, 0);
  for (uint32_t i = 0; i < n; i++) {
    lua_pushinteger(L, ov[i] == RX_UNSET ? -1 : (lua_Integer)ov[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

static int m_close(lua_State *L) {
  rx_t **slot = luaL_checkudata(L, 1, REGEX_MT);
  rx_unref(*slot);
  *slot = NULL;
  return 0;
}

static int m_tostring(lua_State *L) {
  rx_t **slot = luaL_checkudata(L, 1, REGEX_MT);
  if (!*slot) {
    lua_pushliteral(L, "regex (closed)");
    return 1;
  }
  size_t len;
  const char *pat = rx_pattern(*slot, &len);
  char flags[8];
  rx_flags_string(rx_flags(*slot), flags, sizeof flags);
  const char *shown = push_printable(L, pat, len);
  lua_pushfstring(L, "regex(/%s/%s)", shown, flags);
  return 1;
}

/* ---- module functions (upvalue 1: the cache) ---- */

static int f_compile(lua_State *L) {
  push_cached(L, 1, 2);
  return 1;
}

static int f_match(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  return do_match(L, push_cached(L, 2, 3), s, len, 0);
}

static int f_test(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  return do_test(L, push_cached(L, 2, 3), s, len);
}

static int f_gmatch(lua_State *L) {
  luaL_checkstring(L, 1);
  push_cached(L, 2, 3);
  return push_gmatch(L, lua_gettop(L), 1);
}

static int f_find_all(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  return do_find_all(L, push_cached(L, 2, 3), s, len);
}

static int f_replace(lua_State *L) {
  luaL_checkstring(L, 1);
  luaL_checkstring(L, 3);
  return do_replace(L, push_cached(L, 2, 4), 1, 3);
}

static int f_quote(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  buf_t *b = lbuf_push(L);
  if (rx_quote_meta(s, len, lbuf_sink, b) != 0) luaL_error(L, "re: out of memory");
  lbuf_to_string(L, b);
  return 1;
}

static int f_cache_stats(lua_State *L) {
  cache_box_t *box = lua_touserdata(L, lua_upvalueindex(1));
  rx_cache_stats_t st;
  rx_cache_stats(box->cache, &st);
  lua_createtable(L, 0, 5);
  lfield_int(L, "hits", (lua_Integer)st.hits);
  lfield_int(L, "misses", (lua_Integer)st.misses);
  lfield_int(L, "size", (lua_Integer)st.size);
  lfield_int(L, "capacity", (lua_Integer)st.capacity);
  lfield_int(L, "evictions", (lua_Integer)st.evictions);
  return 1;
}

static int cache_gc(lua_State *L) {
  cache_box_t *box = luaL_checkudata(L, 1, CACHE_MT);
  rx_cache_free(box->cache);
  box->cache = NULL;
  return 0;
}

/* ---- registration ---- */

static void make_metatables(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"match", m_match},     {"test", m_test},       {"gmatch", m_gmatch},
      {"find_all", m_find_all}, {"replace", m_replace}, {"pattern", m_pattern},
      {"groups", m_groups},     {"offsets", m_offsets}, {NULL, NULL}};
  static const luaL_Reg meta[] = {
      {"__gc", m_close}, {"__close", m_close}, {"__tostring", m_tostring}, {NULL, NULL}};
  luaL_newmetatable(L, REGEX_MT);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newmetatable(L, CACHE_MT);
  lua_pushcfunction(L, cache_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
}

static void push_cache(lua_State *L) {
  cache_box_t *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->cache = NULL;
  luaL_setmetatable(L, CACHE_MT);
  box->cache = rx_cache_new(CACHE_CAPACITY);
  if (!box->cache) luaL_error(L, "re: out of memory");
}

int luaopen_rotator_re(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"compile", f_compile},   {"match", f_match},     {"test", f_test},
      {"gmatch", f_gmatch},     {"find_all", f_find_all}, {"replace", f_replace},
      {"quote", f_quote},       {"cache_stats", f_cache_stats}, {NULL, NULL}};
  make_metatables(L);
  luaL_newlibtable(L, funcs);
  push_cache(L);
  luaL_setfuncs(L, funcs, 1);
  return 1;
}
