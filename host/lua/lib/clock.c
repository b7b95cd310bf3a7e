/* require "clock": time for policies, always UTC.
 *
 *   clock.now()                 -> wall time, float seconds since the epoch (ns source)
 *   clock.mono()                -> monotonic float seconds (for measuring intervals)
 *   clock.parse_rfc3339(s)      -> epoch seconds (integer, or float with a fraction)
 *                                  | nil, msg   e.g.
 *      clock: cannot parse "2026-02-30T00:00:00Z" as RFC 3339: day out of range
 *   clock.format(epoch, layout) -> string, Go layout (reference time
 *                                  Mon Jan 2 15:04:05 MST 2006), in UTC:
 *      clock.format(t, "-20060102-15-04-05") == "-20261125-03-00-00"
 *   clock.rfc3339(epoch)        -> "2026-11-25T03:00:00Z" ("...00.123Z" with a fraction)
 *
 * parse_rfc3339 accepts T/t or a space between date and time, Z/z or
 * +hh:mm/-hh:mm, and any number of fraction digits (kept to the nanosecond);
 * it rejects impossible dates (Feb 30, hour 24, second 60). Float epochs are
 * rounded to the microsecond before formatting. Bad argument types or an
 * epoch out of range raise; unparsable text returns nil, msg.
 */
#include <lauxlib.h>
#include <lua.h>
#include <time.h>

#include "lua/modules.h"
#include "util/timefmt.h"

#define QUOTE_MAX 64 /* longest input echoed in an error message */

static double timespec_seconds(clockid_t id) {
  struct timespec ts;
  if (clock_gettime(id, &ts) != 0) return 0.0; /* cannot fail for these clocks */
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int f_now(lua_State *L) {
  lua_pushnumber(L, timespec_seconds(CLOCK_REALTIME));
  return 1;
}

static int f_mono(lua_State *L) {
  lua_pushnumber(L, timespec_seconds(CLOCK_MONOTONIC));
  return 1;
}

/* Pushes s for an error message: control bytes as \xHH, cut at QUOTE_MAX. */
static const char *push_quoted(lua_State *L, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < len && i < QUOTE_MAX; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f || c == '"') {
      char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
      luaL_addlstring(&b, esc, sizeof esc);
    } else {
      luaL_addchar(&b, (char)c);
    }
  }
  if (len > QUOTE_MAX) luaL_addstring(&b, "...");
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

static int f_parse_rfc3339(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  const char *why = NULL;
  tf_time_t t;
  if (tf_parse_rfc3339(s, len, &t, &why) != 0) {
    const char *shown = push_quoted(L, s, len);
    lua_pushnil(L);
    lua_pushfstring(L, "clock: cannot parse \"%s\" as RFC 3339: %s", shown, why);
    return 2;
  }
  if (t.nsec == 0) lua_pushinteger(L, (lua_Integer)t.sec);
  else lua_pushnumber(L, (lua_Number)t.sec + (lua_Number)t.nsec / 1e9);
  return 1;
}

static tf_time_t check_epoch(lua_State *L, int idx) {
  tf_time_t t = {0, 0};
  if (lua_isinteger(L, idx)) {
    t.sec = (int64_t)lua_tointeger(L, idx);
  } else if (tf_from_double((double)luaL_checknumber(L, idx), &t) != 0) {
    luaL_argerror(L, idx, "epoch seconds out of range");
  }
  return t;
}

/* A formatter with tf_format's snprintf-style contract. */
typedef long (*format_fn)(tf_time_t t, const void *arg, size_t alen, char *buf, size_t cap);

static long format_layout(tf_time_t t, const void *arg, size_t alen, char *buf, size_t cap) {
  return tf_format(t, arg, alen, buf, cap);
}

static long format_rfc3339(tf_time_t t, const void *arg, size_t alen, char *buf, size_t cap) {
  (void)arg, (void)alen;
  return tf_rfc3339(t, buf, cap);
}

static int push_formatted(lua_State *L, tf_time_t t, format_fn fn, const void *arg, size_t alen) {
  char small[256];
  long n = fn(t, arg, alen, small, sizeof small);
  if (n < 0) return luaL_argerror(L, 1, "epoch seconds out of range");
  if ((size_t)n < sizeof small) {
    lua_pushlstring(L, small, (size_t)n);
    return 1;
  }
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, (size_t)n + 1);
  if (fn(t, arg, alen, p, (size_t)n + 1) != n) return luaL_error(L, "clock: format changed size");
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

static int f_format(lua_State *L) {
  tf_time_t t = check_epoch(L, 1);
  size_t len;
  const char *layout = luaL_checklstring(L, 2, &len);
  return push_formatted(L, t, format_layout, layout, len);
}

static int f_rfc3339(lua_State *L) {
  return push_formatted(L, check_epoch(L, 1), format_rfc3339, NULL, 0);
}

int luaopen_rotator_clock(lua_State *L) {
  static const luaL_Reg funcs[] = {{"now", f_now},
                                   {"mono", f_mono},
                                   {"parse_rfc3339", f_parse_rfc3339},
                                   {"format", f_format},
                                   {"rfc3339", f_rfc3339},
                                   {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
