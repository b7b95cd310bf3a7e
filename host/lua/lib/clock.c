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
 *   clock.zone_ok(zone)         -> true | nil, msg: a name of the system tz database
 *                                  (TZDIR or /usr/share/zoneinfo), "UTC" always
 *   clock.civil(epoch, zone)    -> {year, month, day, hour, min, sec, wday (1 = Sunday),
 *                                  offset (seconds east of UTC)} in that zone
 *   clock.from_civil(y, mo, d, h, mi, zone) -> {epoch...}: the instants (second 0) that
 *                                  local time names: none in a spring-forward gap, two in
 *                                  the repeated hour of a fall-back (earliest first)
 * The zone functions use the C library (TZ + tzset + localtime_r/mktime) and put TZ
 * back as it was; the daemon is single-threaded, so the switch is not observable.
 *
 * parse_rfc3339 accepts T/t or a space between date and time, Z/z or
 * +hh:mm/-hh:mm, and any number of fraction digits (kept to the nanosecond);
 * it rejects impossible dates (Feb 30, hour 24, second 60). Float epochs are
 * rounded to the microsecond before formatting. Bad argument types or an
 * epoch out of range raise; unparsable text returns nil, msg.
 */
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* ---------------------------------------------------------------- time zones */
#define ZONE_MAX 128

static const char *check_zone(lua_State *L, int idx) {
  size_t len;
  const char *z = luaL_checklstring(L, idx, &len);
  if (len == 0 || len >= ZONE_MAX) luaL_argerror(L, idx, "time zone name empty or too long");
  return z;
}

/* NULL when zone names a file of the tz database, else why not. */
static const char *zone_problem(const char *zone) {
  if (strcmp(zone, "UTC") == 0) return NULL;
  if (zone[0] == '/' || strstr(zone, "..") != NULL) return "not a tz database name (such as Europe/Paris)";
  for (const char *p = zone; *p; p++) {
    char c = *p;
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '/' || c == '_' ||
          c == '-' || c == '+'))
      return "not a tz database name (such as Europe/Paris)";
  }
  const char *dir = getenv("TZDIR");
  if (!dir || !*dir) dir = "/usr/share/zoneinfo";
  char path[4096];
  int n = snprintf(path, sizeof path, "%s/%s", dir, zone);
  if (n < 0 || (size_t)n >= sizeof path) return "the tz database path is too long";
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return "no such zone in the system tz database";
  return NULL;
}

/* Switch TZ to zone; saved receives the old value (or "" + unset flag). */
typedef struct {
  char old[ZONE_MAX * 2];
  int had;
} tz_saved;

static int tz_enter(const char *zone, tz_saved *sv) {
  const char *cur = getenv("TZ");
  sv->had = cur != NULL;
  sv->old[0] = '\0';
  if (cur) {
    size_t n = strlen(cur);
    if (n >= sizeof sv->old) return -1;
    memcpy(sv->old, cur, n + 1);
  }
  char spec[ZONE_MAX + 2];
  int n = snprintf(spec, sizeof spec, ":%s", zone);
  if (n < 0 || (size_t)n >= sizeof spec) return -1;
  if (setenv("TZ", spec, 1) != 0) return -1;
  tzset();
  return 0;
}

static void tz_leave(const tz_saved *sv) {
  if (sv->had) (void)setenv("TZ", sv->old, 1);
  else (void)unsetenv("TZ");
  tzset();
}

static int f_zone_ok(lua_State *L) {
  const char *why = zone_problem(check_zone(L, 1));
  if (!why) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushfstring(L, "time zone \"%s\": %s", lua_tostring(L, 1), why);
  return 2;
}

static void set_int(lua_State *L, const char *k, long v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, k);
}

static int f_civil(lua_State *L) {
  lua_Integer e = luaL_checkinteger(L, 1);
  const char *zone = check_zone(L, 2);
  const char *why = zone_problem(zone);
  if (why) return luaL_error(L, "clock.civil: time zone \"%s\": %s", zone, why);
  time_t t = (time_t)e;
  struct tm tm;
  tz_saved sv;
  if (tz_enter(zone, &sv) != 0) return luaL_error(L, "clock.civil: cannot switch TZ");
  struct tm *ok = localtime_r(&t, &tm);
  tz_leave(&sv);
  if (!ok) return luaL_argerror(L, 1, "epoch seconds out of range");
  lua_createtable(L, 0, 8);
  set_int(L, "year", tm.tm_year + 1900L);
  set_int(L, "month", tm.tm_mon + 1L);
  set_int(L, "day", tm.tm_mday);
  set_int(L, "hour", tm.tm_hour);
  set_int(L, "min", tm.tm_min);
  set_int(L, "sec", tm.tm_sec);
  set_int(L, "wday", tm.tm_wday + 1L);
  set_int(L, "offset", tm.tm_gmtoff);
  return 1;
}

/* mktime with a given isdst; the result only when it names exactly that local time. */
static int civil_try(int y, int mo, int d, int h, int mi, int isdst, time_t *out) {
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  tm.tm_year = y - 1900, tm.tm_mon = mo - 1, tm.tm_mday = d, tm.tm_hour = h, tm.tm_min = mi;
  tm.tm_isdst = isdst;
  time_t t = mktime(&tm);
  if (t == (time_t)-1) return 0;
  struct tm back;
  if (!localtime_r(&t, &back)) return 0;
  if (back.tm_year != y - 1900 || back.tm_mon != mo - 1 || back.tm_mday != d || back.tm_hour != h || back.tm_min != mi)
    return 0;
  *out = t;
  return 1;
}

static int f_from_civil(lua_State *L) {
  int v[5];
  for (int i = 0; i < 5; i++) v[i] = (int)luaL_checkinteger(L, i + 1);
  const char *zone = check_zone(L, 6);
  const char *why = zone_problem(zone);
  if (why) return luaL_error(L, "clock.from_civil: time zone \"%s\": %s", zone, why);
  tz_saved sv;
  if (tz_enter(zone, &sv) != 0) return luaL_error(L, "clock.from_civil: cannot switch TZ");
  time_t a = 0, b = 0;
  int has_a = civil_try(v[0], v[1], v[2], v[3], v[4], 1, &a);
  int has_b = civil_try(v[0], v[1], v[2], v[3], v[4], 0, &b);
  tz_leave(&sv);
  lua_createtable(L, 2, 0);
  int n = 0;
  if (has_a && has_b && a == b) has_b = 0;
  if (has_a && has_b && b < a) {
    time_t x = a;
    a = b, b = x;
  }
  if (has_a) lua_pushinteger(L, (lua_Integer)a), lua_rawseti(L, -2, ++n);
  if (has_b) lua_pushinteger(L, (lua_Integer)b), lua_rawseti(L, -2, ++n);
  return 1;
}

int luaopen_rotator_clock(lua_State *L) {
  static const luaL_Reg funcs[] = {{"now", f_now},
                                   {"mono", f_mono},
                                   {"parse_rfc3339", f_parse_rfc3339},
                                   {"format", f_format},
                                   {"rfc3339", f_rfc3339},
                                   {"zone_ok", f_zone_ok},
                                   {"civil", f_civil},
                                   {"from_civil", f_from_civil},
                                   {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
