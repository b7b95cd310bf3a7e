/* require "json": JSON for AWS request and notification bodies.
 *
 *   json.encode(v)   -> string | nil, msg   (msg names the path: "... at $.a[2]")
 *   json.decode(s)   -> value  | nil, msg   (msg: "json: invalid JSON at byte N: ...")
 *   json.null        -> sentinel for JSON null (the lightuserdata NULL, the same
 *                       value as cjson.null); decode("null") gives it, encode writes null
 *   json.array([t])  -> t (or a new table) marked to encode as an array, even empty
 *   json.object([t]) -> t (or a new table) marked to encode as an object
 *   json.array_mt, json.object_mt: the marking metatables; any metatable with
 *                       __jsontype = "array" or "object" is honoured too
 *
 * Encoding: an unmarked empty table is {} (AWS shapes mostly want objects); a
 * table whose keys are exactly 1..n is an array; other tables are objects
 * (integer keys become strings). Positive-integer keys with holes are an error
 * (use json.null for gaps). Integers (and integral floats below 2^53) print
 * without a fraction, 64-bit integers exactly; other floats print with the
 * fewest digits that read back to the same double. '/' is not escaped, so
 * ARNs stay readable. NaN, infinity, functions, userdata and cycles are errors.
 * Nesting is limited to 1000 levels either way.
 *
 * Decoding: arrays get json.array_mt (so [] re-encodes as []), objects are
 * plain tables, integers that fit lua_Integer stay integers, larger ones
 * become floats. Offsets in messages are 1-based bytes.
 *
 * Why not lua-cjson: the packaged 2.1.0 escapes '/', prints integers through
 * %.14g (1234567890123456789 -> 1.2345678901235e+18, also on decode), has no
 * empty-array marker, and decoding loses the [] / {} distinction. Its error
 * offsets were the other thing asked for; this parser reports them directly.
 * Two error channels: bad arguments raise; bad data returns nil, msg.
 *
 * One file on purpose (about 640 lines): the encoder and the decoder share the value
 * model (array/object marks, integer rules, json.null) and the error paths; split, each
 * half would need the other's internals.
 */
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/lbuf.h"
#include "lua/modules.h"

#define JSON_MAX_DEPTH 1000
#define ARRAY_MT "rotator.json.array"
#define OBJECT_MT "rotator.json.object"
#define PATH_SHOWN 12 /* path steps named in an encode error */

enum { KIND_AUTO, KIND_ARRAY, KIND_OBJECT };

/* Malloc'ed buffer owned by a userdata (freed by __gc if an error unwinds).
 * Not luaL_Buffer: that needs a balanced Lua stack, and the encoder keeps
 * iteration keys on the stack while it appends. */
/* ---- output ---- */

/* Appends in place while the buffer has room (the usual case: the scratch buffer is
 * reused), else through lbuf_put, which grows it or raises. */
static inline void put(lua_State *L, buf_t *b, const char *p, size_t n) {
  if (n <= b->cap - b->len) {
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return;
  }
  lbuf_put(L, b, p, n);
}

static inline void putc1(lua_State *L, buf_t *b, char c) {
  if (b->len < b->cap) b->data[b->len++] = c;
  else lbuf_put(L, b, &c, 1);
}

/* ---- table kinds ---- */

/* KIND_ARRAY / KIND_OBJECT from a metatable's __jsontype, else KIND_AUTO. */
static int table_kind(lua_State *L, int idx) {
  int kind = KIND_AUTO;
  if (!lua_getmetatable(L, idx)) return kind;
  lua_pushliteral(L, "__jsontype");
  if (lua_rawget(L, -2) == LUA_TSTRING) {
    const char *t = lua_tostring(L, -1);
    kind = strcmp(t, "array") == 0 ? KIND_ARRAY : strcmp(t, "object") == 0 ? KIND_OBJECT : kind;
  }
  lua_pop(L, 2);
  return kind;
}

/* Counts the keys of the table at idx. Returns the count, and in *max the
 * largest key when all keys are positive integers, else -1. */
static lua_Integer count_keys(lua_State *L, int idx, lua_Integer *max) {
  lua_Integer count = 0;
  *max = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    count++;
    if (*max >= 0 && lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0) {
      lua_Integer k = lua_tointeger(L, -1);
      if (k > *max) *max = k;
    } else {
      *max = -1;
    }
  }
  return count;
}

/* ---- encoder ---- */

typedef struct {
  lua_State *L;
  buf_t *b;
  int depth;
  struct {
    int key_idx;         /* stack index of the object key, or 0 */
    lua_Integer index;   /* array index when key_idx is 0 */
  } path[JSON_MAX_DEPTH + 1];
} enc_t;

/* Raises "json: <what> at $.a[2]" naming where in the value the problem is. */
static void enc_fail(enc_t *e, const char *what) {
  lua_State *L = e->L;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "json: ");
  luaL_addstring(&b, what);
  luaL_addstring(&b, " at $");
  for (int i = 0; i < e->depth; i++) {
    if (i == PATH_SHOWN) { /* a cycle would print 1000 steps */
      luaL_addstring(&b, "...");
      break;
    }
    int k = e->path[i].key_idx;
    if (!k && e->path[i].index == 0) break; /* failed on this table itself */
    if (k && lua_type(L, k) == LUA_TSTRING) {
      luaL_addchar(&b, '.');
      luaL_addstring(&b, lua_tostring(L, k));
    } else if (k && !lua_isinteger(L, k)) {
      lua_pushfstring(L, "[%f]", lua_tonumber(L, k)); /* float key */
      luaL_addvalue(&b);
    } else {
      lua_pushfstring(L, "[%I]", k ? lua_tointeger(L, k) : e->path[i].index);
      luaL_addvalue(&b);
    }
  }
  luaL_pushresult(&b);
  lua_error(L);
}

static void enc_value(enc_t *e, int idx);

/* 1 for the bytes a JSON string cannot hold as they are: control characters, '"', '\\'. */
static const unsigned char SPECIAL[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ['"'] = 1, ['\\'] = 1};

static void enc_string_bytes(enc_t *e, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  size_t run = 0;
  putc1(e->L, e->b, '"');
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!SPECIAL[c]) continue;
    put(e->L, e->b, s + run, i - run);
    run = i + 1;
    const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n"
                    : c == '\r' ? "\\r" : c == '\t' ? "\\t" : c == '\b' ? "\\b"
                    : c == '\f' ? "\\f" : NULL;
    if (esc) {
      put(e->L, e->b, esc, 2);
    } else {
      char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      put(e->L, e->b, u, sizeof u);
    }
  }
  put(e->L, e->b, s + run, len - run);
  putc1(e->L, e->b, '"');
}

/* Fewest significant digits (15..17) that read back as the same double.
 * A ',' from a non-C LC_NUMERIC is turned back into '.'. */
static int format_double(double x, char *buf, size_t cap) {
  int n = 0;
  for (int prec = 15; prec <= 17; prec++) {
    n = snprintf(buf, cap, "%.*g", prec, x);
    if (n < 0 || (size_t)n >= cap) return -1;
    if (strtod(buf, NULL) == x) break;
  }
  for (char *p = buf; *p; p++)
    if (*p == ',') *p = '.';
  return n;
}

static int format_number(lua_State *L, int idx, char *buf, size_t cap) {
  if (lua_isinteger(L, idx)) return snprintf(buf, cap, LUA_INTEGER_FMT, lua_tointeger(L, idx));
  double x = (double)lua_tonumber(L, idx);
  if (!isfinite(x)) return -2;
  if (x == floor(x) && fabs(x) < 9007199254740992.0) return snprintf(buf, cap, "%.0f", x);
  return format_double(x, buf, cap);
}

static void enc_number(enc_t *e, int idx, int quoted) {
  char buf[64];
  int n = format_number(e->L, idx, buf, sizeof buf);
  if (n == -2) enc_fail(e, "cannot encode NaN or infinity");
  if (n < 0 || (size_t)n >= sizeof buf) enc_fail(e, "cannot format number");
  if (quoted) putc1(e->L, e->b, '"');
  put(e->L, e->b, buf, (size_t)n);
  if (quoted) putc1(e->L, e->b, '"');
}

static void enc_key(enc_t *e, int key_idx) {
  size_t len;
  switch (lua_type(e->L, key_idx)) {
  case LUA_TSTRING: {
    const char *s = lua_tolstring(e->L, key_idx, &len);
    enc_string_bytes(e, s, len);
    break;
  }
  case LUA_TNUMBER: enc_number(e, key_idx, 1); break;
  default:
    enc_fail(e, lua_pushfstring(e->L, "cannot encode a %s as an object key",
                                luaL_typename(e->L, key_idx)));
  }
}

static void enc_array(enc_t *e, int idx, lua_Integer n) {
  putc1(e->L, e->b, '[');
  for (lua_Integer i = 1; i <= n; i++) {
    if (i > 1) putc1(e->L, e->b, ',');
    e->path[e->depth - 1].key_idx = 0;
    e->path[e->depth - 1].index = i;
    lua_rawgeti(e->L, idx, i);
    enc_value(e, lua_gettop(e->L));
    lua_pop(e->L, 1);
  }
  putc1(e->L, e->b, ']');
}

/* With started, the first key/value pair is already on the stack (enc_table's look). */
static void enc_object(enc_t *e, int idx, int started) {
  int first = 1;
  putc1(e->L, e->b, '{');
  if (!started) lua_pushnil(e->L);
  while (started || lua_next(e->L, idx)) {
    started = 0;
    int key = lua_gettop(e->L) - 1;
    if (!first) putc1(e->L, e->b, ',');
    first = 0;
    e->path[e->depth - 1].key_idx = key;
    enc_key(e, key);
    putc1(e->L, e->b, ':');
    enc_value(e, key + 1);
    lua_pop(e->L, 1);
  }
  putc1(e->L, e->b, '}');
}

/* Picks array or object for the table at idx and checks array keys. */
static void enc_table(enc_t *e, int idx) {
  lua_Integer max, count;
  int kind = table_kind(e->L, idx);
  if (e->depth >= JSON_MAX_DEPTH) enc_fail(e, "nesting deeper than 1000 levels (a cycle?)");
  luaL_checkstack(e->L, 6, "json: nesting too deep");
  e->path[e->depth].key_idx = 0;
  e->path[e->depth].index = 0;
  e->depth++;
  if (kind == KIND_AUTO) {
    /* A first key that is a string makes it an object: no need to count the keys */
    lua_pushnil(e->L);
    if (!lua_next(e->L, idx)) {
      enc_object(e, idx, 0); /* {} */
      e->depth--;
      return;
    }
    if (lua_type(e->L, -2) == LUA_TSTRING) {
      enc_object(e, idx, 1);
      e->depth--;
      return;
    }
    lua_pop(e->L, 2);
  }
  count = kind == KIND_OBJECT ? 0 : count_keys(e->L, idx, &max);
  if (kind == KIND_OBJECT || (kind == KIND_AUTO && (count == 0 || max < 0))) {
    enc_object(e, idx, 0);
  } else if (max < 0) {
    enc_fail(e, "table marked as array has keys other than 1..n");
  } else if (max != count) {
    enc_fail(e, lua_pushfstring(e->L, "cannot encode sparse array (%I of %I slots set; "
                                      "use json.null for gaps)", count, max));
  } else {
    enc_array(e, idx, max);
  }
  e->depth--;
}

static void enc_value(enc_t *e, int idx) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
  case LUA_TNIL: put(L, e->b, "null", 4); break;
  case LUA_TBOOLEAN:
    if (lua_toboolean(L, idx)) put(L, e->b, "true", 4);
    else put(L, e->b, "false", 5);
    break;
  case LUA_TNUMBER: enc_number(e, idx, 0); break;
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    enc_string_bytes(e, s, len);
    break;
  }
  case LUA_TTABLE: enc_table(e, idx); break;
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == NULL) {
      put(L, e->b, "null", 4);
      break;
    }
    /* fall through */
  default:
    enc_fail(e, lua_pushfstring(L, "cannot encode a %s value", luaL_typename(L, idx)));
  }
}

/* ---- the per-state scratch buffer ----
 * Encoder output and decoded string contents go through one buffer per Lua state, kept
 * in the registry and reused by every call: a fresh buffer per call (a userdata with a
 * finaliser, its memory freed only when the collector gets to it) was most of the cost
 * of encoding a small table. `depth` counts the json calls under way: only the outermost
 * uses the shared buffer (a finaliser run by an allocation inside a call could call json
 * again; it gets a buffer of its own). A buffer grown past SCRATCH_KEEP is released
 * after the call. */
#define SCRATCH_KEEP (64u * 1024u)
#define SCRATCH_MT "rotator.json.scratch"
static const char SCRATCH_KEY = 's';

typedef struct {
  buf_t b;
  int depth;
} scratch_t;

static int scratch_gc(lua_State *L) {
  buf_free(&((scratch_t *)luaL_checkudata(L, 1, SCRATCH_MT))->b);
  return 0;
}

/* The state's scratch (made on first use; kept alive by the registry). */
static scratch_t *scratch_of(lua_State *L) {
  scratch_t *s;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &SCRATCH_KEY) == LUA_TUSERDATA) {
    s = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return s;
  }
  lua_pop(L, 1);
  s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  if (luaL_newmetatable(L, SCRATCH_MT)) {
    lua_pushcfunction(L, scratch_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &SCRATCH_KEY);
  return s;
}

/* Inside a protected call: the buffer to fill, emptied (the shared one for the outermost
 * call, else a new one owned by the stack). */
static buf_t *scratch_take(lua_State *L) {
  scratch_t *s = scratch_of(L);
  if (s->depth != 1) return lbuf_push(L);
  s->b.len = 0;
  return &s->b;
}

/* Runs under lua_pcall: argument 1 is the value; returns the JSON text. */
static int encode_protected(lua_State *L) {
  enc_t e; /* ~16 KB, on the C stack: no allocation per call */
  e.L = L;
  e.depth = 0;
  e.b = scratch_take(L);
  enc_value(&e, 1);
  lua_pushlstring(L, e.b->data ? e.b->data : "", e.b->len);
  return 1;
}

/* ---- decoder ---- */

typedef struct {
  lua_State *L;
  const char *s;
  size_t len, pos;
  int depth;
  buf_t *scratch; /* unescaped string contents */
} dec_t;

static void dec_fail(dec_t *d, const char *what) {
  if (d->pos >= d->len)
    lua_pushfstring(d->L, "json: invalid JSON at byte %I: %s, got end of input",
                    (lua_Integer)d->len + 1, what);
  else
    lua_pushfstring(d->L, "json: invalid JSON at byte %I: %s", (lua_Integer)d->pos + 1, what);
  lua_error(d->L);
}

static void skip_ws(dec_t *d) {
  while (d->pos < d->len) {
    char c = d->s[d->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    d->pos++;
  }
}

static void fail_at(dec_t *d, size_t pos, const char *what) {
  d->pos = pos;
  dec_fail(d, what);
}

static int peek(dec_t *d) { return d->pos < d->len ? (unsigned char)d->s[d->pos] : -1; }

static void expect(dec_t *d, char c, const char *what) {
  skip_ws(d);
  if (peek(d) != (unsigned char)c) dec_fail(d, what);
  d->pos++;
}

static void dec_value(dec_t *d);

static int hex_digit(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Reads XXXX after "\u" at d->pos. */
static unsigned read_hex4(dec_t *d) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    int h = d->pos < d->len ? hex_digit((unsigned char)d->s[d->pos]) : -1;
    if (h < 0) dec_fail(d, "expected 4 hex digits after \\u");
    v = v * 16 + (unsigned)h;
    d->pos++;
  }
  return v;
}

static void put_utf8(dec_t *d, unsigned cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) u[0] = (char)cp, n = 1;
  else if (cp < 0x800) u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
  else if (cp < 0x10000)
    u[0] = (char)(0xE0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 0x3F)),
    u[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
  else
    u[0] = (char)(0xF0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 0x3F)),
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
  put(d->L, d->scratch, u, n);
}

/* \uXXXX, joining a UTF-16 surrogate pair; d->pos is just after the 'u'. */
static void dec_unicode(dec_t *d) {
  size_t at = d->pos - 2;
  unsigned cp = read_hex4(d);
  if (cp >= 0xDC00 && cp <= 0xDFFF) fail_at(d, at, "unpaired low surrogate");
  if (cp >= 0xD800 && cp <= 0xDBFF) {
    if (d->len - d->pos < 6 || d->s[d->pos] != '\\' || d->s[d->pos + 1] != 'u')
      fail_at(d, at, "unpaired high surrogate");
    d->pos += 2;
    unsigned lo = read_hex4(d);
    if (lo < 0xDC00 || lo > 0xDFFF) fail_at(d, at, "unpaired high surrogate");
    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
  }
  put_utf8(d, cp);
}

static void dec_escape(dec_t *d) {
  static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
  int c = d->pos + 1 < d->len ? (unsigned char)d->s[d->pos + 1] : -1;
  const char *p = c > 0 ? strchr(from, c) : NULL;
  if (c == 'u') {
    d->pos += 2;
    dec_unicode(d);
  } else if (p) {
    putc1(d->L, d->scratch, to[p - from]);
    d->pos += 2;
  } else {
    dec_fail(d, "invalid escape sequence");
  }
}

/* Pushes the string starting at the opening quote at d->pos. */
static void dec_string(dec_t *d) {
  size_t run = ++d->pos; /* start of the bytes not yet copied */
  int escaped = 0;
  d->scratch->len = 0;
  for (;;) {
    while (d->pos < d->len && !SPECIAL[(unsigned char)d->s[d->pos]]) d->pos++;
    if (d->pos >= d->len) dec_fail(d, "unterminated string");
    unsigned char c = (unsigned char)d->s[d->pos];
    if (c == '"') break;
    if (c < 0x20) dec_fail(d, "control character in string");
    if (c != '\\') {
      d->pos++;
      continue;
    }
    put(d->L, d->scratch, d->s + run, d->pos - run);
    escaped = 1;
    dec_escape(d);
    run = d->pos;
  }
  if (escaped) {
    put(d->L, d->scratch, d->s + run, d->pos - run);
    lua_pushlstring(d->L, d->scratch->data, d->scratch->len);
  } else {
    lua_pushlstring(d->L, d->s + run, d->pos - run);
  }
  d->pos++;
}

/* After a member: consumes a ',' and returns 1, or returns 0. */
static int next_member(dec_t *d) {
  skip_ws(d);
  if (peek(d) != ',') return 0;
  d->pos++;
  return 1;
}

static size_t skip_digits(dec_t *d, size_t i) {
  while (i < d->len && d->s[i] >= '0' && d->s[i] <= '9') i++;
  return i;
}

/* Length of the JSON number at d->pos (strict grammar), or 0. */
static size_t number_length(dec_t *d) {
  size_t i = d->pos, j;
  if (i < d->len && d->s[i] == '-') i++;
  if (i < d->len && d->s[i] == '0') i++;
  else if ((j = skip_digits(d, i)) > i) i = j;
  else return 0;
  if (i < d->len && d->s[i] == '.') {
    if ((j = skip_digits(d, i + 1)) == i + 1) return 0;
    i = j;
  }
  if (i < d->len && (d->s[i] == 'e' || d->s[i] == 'E')) {
    i++;
    if (i < d->len && (d->s[i] == '+' || d->s[i] == '-')) i++;
    if ((j = skip_digits(d, i)) == i) return 0;
    i = j;
  }
  return i - d->pos;
}

/* lua_stringtonumber keeps integers as integers (floats on overflow) and is
 * locale-safe; it needs a NUL-terminated copy. */
static void dec_number(dec_t *d) {
  size_t n = number_length(d);
  char small[64];
  if (n == 0) dec_fail(d, "invalid number");
  if (n < sizeof small) {
    memcpy(small, d->s + d->pos, n);
    small[n] = '\0';
    if (lua_stringtonumber(d->L, small) == 0) dec_fail(d, "invalid number");
  } else {
    lua_pushlstring(d->L, d->s + d->pos, n);
    if (lua_stringtonumber(d->L, lua_tostring(d->L, -1)) == 0) dec_fail(d, "invalid number");
    lua_remove(d->L, -2);
  }
  d->pos += n;
}

static void enter(dec_t *d) {
  if (++d->depth > JSON_MAX_DEPTH) dec_fail(d, "nesting deeper than 1000 levels");
  luaL_checkstack(d->L, 4, "json: nesting too deep");
}

static void dec_array(dec_t *d) {
  lua_Integer n = 0;
  enter(d);
  d->pos++;
  lua_newtable(d->L);
  luaL_setmetatable(d->L, ARRAY_MT);
  skip_ws(d);
  if (peek(d) == ']') {
    d->pos++;
  } else {
    do {
      dec_value(d);
      lua_rawseti(d->L, -2, ++n);
    } while (next_member(d));
    expect(d, ']', "expected ',' or ']'");
  }
  d->depth--;
}

/* The n key/value pairs above base into a table made for `size` keys, which takes the
 * place of the first key (the stack ends just above it). */
static void make_object(lua_State *L, int base, int n) {
  lua_createtable(L, 0, n);
  for (int i = 0; i < n; i++) {
    lua_pushvalue(L, base + 1 + 2 * i);
    lua_pushvalue(L, base + 2 + 2 * i);
    lua_rawset(L, -3);
  }
  lua_replace(L, base + 1);
  lua_settop(L, base + 1);
}

/* The first OBJ_HELD members wait on the stack, so the table is made at its size once
 * instead of being rehashed as it grows (most objects are that small); later members go
 * straight into it. In order either way: a repeated key keeps its last value. */
#define OBJ_HELD 32

static void dec_object(dec_t *d) {
  lua_State *L = d->L;
  enter(d);
  d->pos++;
  skip_ws(d);
  if (peek(d) == '}') {
    d->pos++;
    d->depth--;
    lua_newtable(L);
    return;
  }
  int base = lua_gettop(L), held = 0, made = 0;
  do {
    skip_ws(d);
    if (peek(d) != '"') dec_fail(d, "expected string key");
    if (!made) luaL_checkstack(L, 3, "json: object too large");
    dec_string(d);
    expect(d, ':', "expected ':'");
    dec_value(d);
    if (made) {
      lua_rawset(L, -3);
    } else if (++held == OBJ_HELD) {
      make_object(L, base, held);
      made = 1;
    }
  } while (next_member(d));
  expect(d, '}', "expected ',' or '}'");
  if (!made) make_object(L, base, held);
  d->depth--;
}

static void dec_literal(dec_t *d) {
  static const struct {
    const char *text;
    size_t len;
    int kind; /* 0 null, 1 true, 2 false */
  } lits[] = {{"null", 4, 0}, {"true", 4, 1}, {"false", 5, 2}};
  for (size_t i = 0; i < sizeof lits / sizeof lits[0]; i++) {
    if (d->len - d->pos < lits[i].len || memcmp(d->s + d->pos, lits[i].text, lits[i].len) != 0)
      continue;
    if (lits[i].kind == 0) lua_pushlightuserdata(d->L, NULL);
    else lua_pushboolean(d->L, lits[i].kind == 1);
    d->pos += lits[i].len;
    return;
  }
  dec_fail(d, "expected value");
}

static void dec_value(dec_t *d) {
  skip_ws(d);
  int c = peek(d);
  if (c == '{') dec_object(d);
  else if (c == '[') dec_array(d);
  else if (c == '"') dec_string(d);
  else if (c == '-' || (c >= '0' && c <= '9')) dec_number(d);
  else dec_literal(d);
}

/* Runs under lua_pcall: argument 1 is the JSON text. */
static int decode_protected(lua_State *L) {
  dec_t d = {L, NULL, 0, 0, 0, NULL};
  d.s = lua_tolstring(L, 1, &d.len);
  d.scratch = scratch_take(L);
  dec_value(&d);
  skip_ws(&d);
  if (d.pos < d.len) dec_fail(&d, "unexpected data after the JSON value");
  return 1;
}

/* ---- module functions ---- */

/* Calls fn(arg 1) protected: value, or nil + message. */
static int call_protected(lua_State *L, lua_CFunction fn) {
  lua_settop(L, 1);
  scratch_t *s = scratch_of(L);
  lua_pushcfunction(L, fn);
  lua_insert(L, 1);
  s->depth++;
  int rc = lua_pcall(L, 1, 1, 0);
  if (--s->depth == 0 && s->b.cap > SCRATCH_KEEP) buf_free(&s->b);
  if (rc == LUA_OK) return 1;
  if (lua_type(L, -1) != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushliteral(L, "json: error without message");
  }
  lua_pushnil(L);
  lua_insert(L, -2);
  return 2;
}

static int f_encode(lua_State *L) {
  luaL_checkany(L, 1);
  return call_protected(L, encode_protected);
}

static int f_decode(lua_State *L) {
  luaL_checktype(L, 1, LUA_TSTRING);
  return call_protected(L, decode_protected);
}

/* json.array / json.object: marks t (argument 1, or a new table). */
static int mark(lua_State *L, const char *mt) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  if (lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, ARRAY_MT);
    luaL_getmetatable(L, OBJECT_MT);
    if (!lua_rawequal(L, -3, -2) && !lua_rawequal(L, -3, -1))
      luaL_argerror(L, 1, "table already has a metatable (set __jsontype in it instead)");
    lua_pop(L, 3);
  }
  luaL_setmetatable(L, mt);
  return 1;
}

static int f_array(lua_State *L) { return mark(L, ARRAY_MT); }
static int f_object(lua_State *L) { return mark(L, OBJECT_MT); }

static void make_metatables(lua_State *L) {
  luaL_newmetatable(L, ARRAY_MT);
  lua_pushliteral(L, "array");
  lua_setfield(L, -2, "__jsontype");
  lua_pop(L, 1);
  luaL_newmetatable(L, OBJECT_MT);
  lua_pushliteral(L, "object");
  lua_setfield(L, -2, "__jsontype");
  lua_pop(L, 1);
}

int luaopen_rotator_json(lua_State *L) {
  static const luaL_Reg funcs[] = {{"encode", f_encode}, {"decode", f_decode},
                                   {"array", f_array},   {"object", f_object},
                                   {NULL, NULL}};
  make_metatables(L);
  luaL_newlib(L, funcs);
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  luaL_getmetatable(L, ARRAY_MT);
  lua_setfield(L, -2, "array_mt");
  luaL_getmetatable(L, OBJECT_MT);
  lua_setfield(L, -2, "object_mt");
  return 1;
}
