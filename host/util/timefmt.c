/* RFC 3339 parsing and Go-layout formatting in UTC (see timefmt.h). The layout
 * tokens and their precedence follow Go's time.nextStdChunk, so a layout
 * written for Go (e.g. "-20060102-15-04-05") formats the same here. */
#include "util/timefmt.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- parsing ---- */

typedef struct {
  const char *s;
  size_t len, pos;
} scan_t;

/* Reads exactly n digits; -1 if any is missing. */
static long digits(scan_t *sc, int n) {
  long v = 0;
  for (int i = 0; i < n; i++, sc->pos++) {
    if (sc->pos >= sc->len || sc->s[sc->pos] < '0' || sc->s[sc->pos] > '9') return -1;
    v = v * 10 + (sc->s[sc->pos] - '0');
  }
  return v;
}

static int take(scan_t *sc, const char *set) {
  if (sc->pos >= sc->len || sc->s[sc->pos] == '\0' || !strchr(set, sc->s[sc->pos])) return 0;
  return sc->s[sc->pos++];
}

static int is_leap(long y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int days_in_month(long y, long m) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Fraction after '.', at least one digit; digits past nanoseconds truncated. */
static int fraction(scan_t *sc, int32_t *nsec) {
  int n = 0;
  long v = 0;
  while (sc->pos < sc->len && sc->s[sc->pos] >= '0' && sc->s[sc->pos] <= '9') {
    if (n < 9) v = v * 10 + (sc->s[sc->pos] - '0');
    n++;
    sc->pos++;
  }
  for (int i = n; i < 9; i++) v *= 10;
  *nsec = (int32_t)v;
  return n > 0 ? 0 : -1;
}

/* Z, or +hh:mm / -hh:mm, into seconds east of UTC. */
static const char *zone(scan_t *sc, long *offset) {
  int sign = take(sc, "Zz+-");
  if (!sign) return sc->pos >= sc->len ? "missing time zone (Z or +hh:mm)" : "invalid time zone";
  *offset = 0;
  if (sign == 'Z' || sign == 'z') return NULL;
  long h = digits(sc, 2), m = (h >= 0 && take(sc, ":")) ? digits(sc, 2) : -1;
  if (h < 0 || m < 0) return "invalid time zone offset (want +hh:mm)";
  if (h > 23 || m > 59) return "time zone offset out of range";
  *offset = (sign == '-' ? -1 : 1) * (h * 3600 + m * 60);
  return NULL;
}

static const char *check_ranges(const struct tm *tm) {
  long y = tm->tm_year + 1900L, m = tm->tm_mon + 1;
  if (m < 1 || m > 12) return "month out of range";
  if (tm->tm_mday < 1 || tm->tm_mday > days_in_month(y, m)) return "day out of range";
  if (tm->tm_hour > 23) return "hour out of range";
  if (tm->tm_min > 59) return "minute out of range";
  if (tm->tm_sec > 59) return "second out of range";
  return NULL;
}

/* Date and time of day into tm; NULL or a description of the problem. */
static const char *date_time(scan_t *sc, struct tm *tm) {
  long y = digits(sc, 4), mo = y >= 0 && take(sc, "-") ? digits(sc, 2) : -1;
  long d = mo >= 0 && take(sc, "-") ? digits(sc, 2) : -1;
  if (d < 0) return "expected a date YYYY-MM-DD";
  if (!take(sc, "Tt ")) return "expected 'T' between date and time";
  long h = digits(sc, 2), mi = h >= 0 && take(sc, ":") ? digits(sc, 2) : -1;
  long s = mi >= 0 && take(sc, ":") ? digits(sc, 2) : -1;
  if (s < 0) return "expected a time hh:mm:ss";
  memset(tm, 0, sizeof *tm);
  tm->tm_year = (int)(y - 1900), tm->tm_mon = (int)(mo - 1), tm->tm_mday = (int)d;
  tm->tm_hour = (int)h, tm->tm_min = (int)mi, tm->tm_sec = (int)s;
  return check_ranges(tm);
}

int tf_parse_rfc3339(const char *s, size_t len, tf_time_t *out, const char **why) {
  scan_t sc = {s, len, 0};
  struct tm tm;
  long offset = 0;
  int32_t nsec = 0;
  const char *err = date_time(&sc, &tm);
  if (!err && take(&sc, ".") && fraction(&sc, &nsec) != 0) err = "expected digits after '.'";
  if (!err) err = zone(&sc, &offset);
  if (!err && sc.pos != len) err = "unexpected text after the time zone";
  if (err) {
    *why = err;
    return -1;
  }
  out->sec = (int64_t)timegm(&tm) - offset;
  out->nsec = nsec;
  return 0;
}

/* IMF-fixdate (RFC 9110 5.6.7), the form HTTP servers send in Date:
 * "Sun, 06 Nov 1994 08:49:37 GMT". The weekday is checked for shape, not value. */
static const char *fixdate(scan_t *sc, struct tm *tm) {
  static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  static const char days[] = "MonTueWedThuFriSatSun";
  if (sc->len - sc->pos < 29) return "too short for an HTTP date";
  const char *s = sc->s + sc->pos;
  int wd = -1, mon = -1;
  for (int i = 0; i < 7; i++)
    if (memcmp(s, days + 3 * i, 3) == 0) wd = i;
  if (wd < 0 || s[3] != ',' || s[4] != ' ') return "expected a weekday like 'Sun, '";
  sc->pos += 5;
  long d = digits(sc, 2);
  if (d < 0 || !take(sc, " ") || sc->len - sc->pos < 4) return "expected a day of month";
  for (int i = 0; i < 12; i++)
    if (memcmp(sc->s + sc->pos, months + 3 * i, 3) == 0) mon = i;
  if (mon < 0 || sc->s[sc->pos + 3] != ' ') return "expected a month like 'Nov'";
  sc->pos += 4;
  long y = digits(sc, 4), h = y >= 0 && take(sc, " ") ? digits(sc, 2) : -1;
  long mi = h >= 0 && take(sc, ":") ? digits(sc, 2) : -1;
  long sec = mi >= 0 && take(sc, ":") ? digits(sc, 2) : -1;
  if (sec < 0) return "expected 'YYYY hh:mm:ss'";
  if (sc->len - sc->pos != 4 || memcmp(sc->s + sc->pos, " GMT", 4) != 0) return "expected ' GMT' at the end";
  sc->pos += 4;
  memset(tm, 0, sizeof *tm);
  tm->tm_year = (int)(y - 1900), tm->tm_mon = mon, tm->tm_mday = (int)d;
  tm->tm_hour = (int)h, tm->tm_min = (int)mi, tm->tm_sec = (int)sec;
  return check_ranges(tm);
}

int tf_parse_http_date(const char *s, size_t len, int64_t *out) {
  scan_t sc = {s, len, 0};
  struct tm tm;
  if (fixdate(&sc, &tm)) return -1;
  *out = (int64_t)timegm(&tm);
  return 0;
}

int tf_from_double(double x, tf_time_t *out) {
  if (!isfinite(x) || fabs(x) > 1e15) return -1;
  double whole = floor(x);
  long long usec = llround((x - whole) * 1e6);
  out->sec = (int64_t)whole;
  if (usec >= 1000000) { /* x - whole rounded up to a whole second */
    out->sec++;
    usec -= 1000000;
  }
  out->nsec = (int32_t)(usec * 1000);
  return 0;
}

/* ---- formatting ---- */

typedef struct {
  char *buf;
  size_t cap, len; /* len counts every byte, written or not (snprintf style) */
} out_t;

static void emit(out_t *o, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++, o->len++)
    if (o->len + 1 < o->cap) o->buf[o->len] = p[i];
}

static void emit_str(out_t *o, const char *s) { emit(o, s, strlen(s)); }

/* Go appendInt: v in decimal, '-' for negatives, zero-padded to width digits (after the
 * sign). Written out by hand: it runs for every field of every timestamp, and snprintf
 * cost more than the rest together. */
static void emit_int(out_t *o, long v, int width) {
  char tmp[32];
  size_t at = sizeof tmp;
  unsigned long u = v < 0 ? 0UL - (unsigned long)v : (unsigned long)v;
  do {
    tmp[--at] = (char)('0' + u % 10);
    u /= 10;
  } while (u && at > 1);
  while ((int)(sizeof tmp - at) < width && at > 1) tmp[--at] = '0';
  if (v < 0) tmp[--at] = '-';
  emit(o, tmp + at, sizeof tmp - at);
}

enum std {
  STD_NONE, STD_LONG_MONTH, STD_MONTH, STD_NUM_MONTH, STD_ZERO_MONTH, STD_LONG_WEEKDAY,
  STD_WEEKDAY, STD_DAY, STD_UNDER_DAY, STD_ZERO_DAY, STD_UNDER_YDAY, STD_ZERO_YDAY, STD_HOUR,
  STD_HOUR12, STD_ZERO_HOUR12, STD_MINUTE, STD_ZERO_MINUTE, STD_SECOND, STD_ZERO_SECOND,
  STD_LONG_YEAR, STD_YEAR, STD_PM, STD_pm, STD_TZ, STD_ISO_TZ, STD_NUM_TZ, STD_FRAC0, STD_FRAC9
};

typedef struct {
  enum std std;
  size_t at, len; /* where the token starts in the layout and how long it is */
  int arg;        /* fraction digits, or zone form: 1 hh, 2 hhmm, 3 hh:mm, 4 hhmmss, 5 hh:mm:ss */
  char sep;       /* fraction separator '.' or ',' */
} chunk_t;

static int has(const char *l, size_t n, size_t i, const char *tok) {
  size_t k = strlen(tok);
  return n - i >= k && memcmp(l + i, tok, k) == 0;
}

static int lower_at(const char *l, size_t n, size_t i) { return i < n && l[i] >= 'a' && l[i] <= 'z'; }

static int set(chunk_t *c, enum std std, size_t at, size_t len, int arg) {
  c->std = std, c->at = at, c->len = len, c->arg = arg;
  return 1;
}

/* Zone tokens after '-' or 'Z', longest forms first as Go checks them. */
static int zone_token(const char *l, size_t n, size_t i, chunk_t *c, enum std std) {
  static const struct { const char *tail; int form; } forms[] = {
      {"070000", 4}, {"07:00:00", 5}, {"0700", 2}, {"07:00", 3}, {"07", 1}};
  for (size_t k = 0; k < sizeof forms / sizeof forms[0]; k++)
    if (has(l, n, i + 1, forms[k].tail)) return set(c, std, i, 1 + strlen(forms[k].tail), forms[k].form);
  return 0;
}

static int frac_token(const char *l, size_t n, size_t i, chunk_t *c) {
  if (i + 1 >= n || (l[i + 1] != '0' && l[i + 1] != '9')) return 0;
  size_t j = i + 1;
  while (j < n && l[j] == l[i + 1]) j++;
  if (j < n && l[j] >= '0' && l[j] <= '9') return 0; /* digits must end the run */
  c->sep = l[i];
  return set(c, l[i + 1] == '0' ? STD_FRAC0 : STD_FRAC9, i, j - i, (int)(j - i - 1));
}

static int letter_token(const char *l, size_t n, size_t i, chunk_t *c) {
  if (has(l, n, i, "January")) return set(c, STD_LONG_MONTH, i, 7, 0);
  if (has(l, n, i, "Jan") && !lower_at(l, n, i + 3)) return set(c, STD_MONTH, i, 3, 0);
  if (has(l, n, i, "Monday")) return set(c, STD_LONG_WEEKDAY, i, 6, 0);
  if (has(l, n, i, "Mon") && !lower_at(l, n, i + 3)) return set(c, STD_WEEKDAY, i, 3, 0);
  if (has(l, n, i, "MST")) return set(c, STD_TZ, i, 3, 0);
  if (has(l, n, i, "PM")) return set(c, STD_PM, i, 2, 0);
  if (has(l, n, i, "pm")) return set(c, STD_pm, i, 2, 0);
  return 0;
}

static int digit_token(const char *l, size_t n, size_t i, chunk_t *c) {
  static const enum std zero_x[] = {STD_ZERO_MONTH, STD_ZERO_DAY, STD_ZERO_HOUR12,
                                    STD_ZERO_MINUTE, STD_ZERO_SECOND, STD_YEAR};
  switch (l[i]) {
  case '0':
    if (i + 1 < n && l[i + 1] >= '1' && l[i + 1] <= '6') return set(c, zero_x[l[i + 1] - '1'], i, 2, 0);
    return has(l, n, i, "002") ? set(c, STD_ZERO_YDAY, i, 3, 0) : 0;
  case '1': return has(l, n, i, "15") ? set(c, STD_HOUR, i, 2, 0) : set(c, STD_NUM_MONTH, i, 1, 0);
  case '2': return has(l, n, i, "2006") ? set(c, STD_LONG_YEAR, i, 4, 0) : set(c, STD_DAY, i, 1, 0);
  case '3': return set(c, STD_HOUR12, i, 1, 0);
  case '4': return set(c, STD_MINUTE, i, 1, 0);
  case '5': return set(c, STD_SECOND, i, 1, 0);
  default: return 0;
  }
}

static int underscore_token(const char *l, size_t n, size_t i, chunk_t *c) {
  if (has(l, n, i, "_2006")) return set(c, STD_LONG_YEAR, i + 1, 4, 0); /* literal '_' then year */
  if (has(l, n, i, "_2")) return set(c, STD_UNDER_DAY, i, 2, 0);
  if (has(l, n, i, "__2")) return set(c, STD_UNDER_YDAY, i, 3, 0);
  return 0;
}

/* Finds the next token at or after from; STD_NONE when only literal text is left. */
static void next_chunk(const char *l, size_t n, size_t from, chunk_t *c) {
  for (size_t i = from; i < n; i++) {
    char ch = l[i];
    int found = (ch >= '0' && ch <= '5') ? digit_token(l, n, i, c)
              : ch == '_' ? underscore_token(l, n, i, c)
              : ch == '-' ? zone_token(l, n, i, c, STD_NUM_TZ)
              : ch == 'Z' ? zone_token(l, n, i, c, STD_ISO_TZ)
              : (ch == '.' || ch == ',') ? frac_token(l, n, i, c)
              : letter_token(l, n, i, c);
    if (found) return;
  }
  set(c, STD_NONE, n, 0, 0);
}

static void emit_zone(out_t *o, const chunk_t *c) {
  static const char *const utc[] = {"", "+00", "+0000", "+00:00", "+000000", "+00:00:00"};
  emit_str(o, c->std == STD_ISO_TZ ? "Z" : utc[c->arg]); /* always UTC: offset 0 */
}

/* Go appendNano: FRAC0 keeps n digits, FRAC9 trims trailing zeros (and the
 * separator when nothing is left). */
static void emit_fraction(out_t *o, const chunk_t *c, int32_t nsec) {
  char digits9[16];
  int n = c->arg > 9 ? 9 : c->arg;
  if (snprintf(digits9, sizeof digits9, "%09ld", (long)nsec) != 9) return;
  if (c->std == STD_FRAC9)
    while (n > 0 && digits9[n - 1] == '0') n--;
  if (n == 0 && c->std == STD_FRAC9) return;
  emit(o, &c->sep, 1);
  emit(o, digits9, (size_t)n);
}

static void emit_name(out_t *o, const char *name, size_t len) {
  emit(o, name, len ? len : strlen(name));
}

static void emit_date_part(out_t *o, const chunk_t *c, const struct tm *tm) {
  static const char *const months[] = {"January", "February", "March",     "April",
                                       "May",     "June",     "July",      "August",
                                       "September", "October", "November", "December"};
  static const char *const days[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                     "Thursday", "Friday", "Saturday"};
  long year = tm->tm_year + 1900L;
  switch (c->std) {
  case STD_LONG_MONTH: emit_name(o, months[tm->tm_mon], 0); break;
  case STD_MONTH: emit_name(o, months[tm->tm_mon], 3); break;
  case STD_NUM_MONTH: emit_int(o, tm->tm_mon + 1, 0); break;
  case STD_ZERO_MONTH: emit_int(o, tm->tm_mon + 1, 2); break;
  case STD_LONG_WEEKDAY: emit_name(o, days[tm->tm_wday], 0); break;
  case STD_WEEKDAY: emit_name(o, days[tm->tm_wday], 3); break;
  case STD_DAY: emit_int(o, tm->tm_mday, 0); break;
  case STD_UNDER_DAY:
    emit_str(o, tm->tm_mday < 10 ? " " : "");
    emit_int(o, tm->tm_mday, 0);
    break;
  case STD_ZERO_DAY: emit_int(o, tm->tm_mday, 2); break;
  case STD_UNDER_YDAY:
    emit_str(o, tm->tm_yday + 1 < 10 ? "  " : tm->tm_yday + 1 < 100 ? " " : "");
    emit_int(o, tm->tm_yday + 1, 0);
    break;
  case STD_ZERO_YDAY: emit_int(o, tm->tm_yday + 1, 3); break;
  case STD_LONG_YEAR: emit_int(o, year, 4); break;
  case STD_YEAR: emit_int(o, (year < 0 ? -year : year) % 100, 2); break;
  default: break;
  }
}

static void emit_clock_part(out_t *o, const chunk_t *c, const struct tm *tm) {
  int h12 = tm->tm_hour % 12 ? tm->tm_hour % 12 : 12; /* noon 12PM, midnight 12AM */
  switch (c->std) {
  case STD_HOUR: emit_int(o, tm->tm_hour, 2); break;
  case STD_HOUR12: emit_int(o, h12, 0); break;
  case STD_ZERO_HOUR12: emit_int(o, h12, 2); break;
  case STD_MINUTE: emit_int(o, tm->tm_min, 0); break;
  case STD_ZERO_MINUTE: emit_int(o, tm->tm_min, 2); break;
  case STD_SECOND: emit_int(o, tm->tm_sec, 0); break;
  case STD_ZERO_SECOND: emit_int(o, tm->tm_sec, 2); break;
  case STD_PM: emit_str(o, tm->tm_hour >= 12 ? "PM" : "AM"); break;
  case STD_pm: emit_str(o, tm->tm_hour >= 12 ? "pm" : "am"); break;
  case STD_TZ: emit_str(o, "UTC"); break;
  default: break;
  }
}

static void emit_chunk(out_t *o, const chunk_t *c, const struct tm *tm, int32_t nsec) {
  if (c->std == STD_ISO_TZ || c->std == STD_NUM_TZ) emit_zone(o, c);
  else if (c->std == STD_FRAC0 || c->std == STD_FRAC9) emit_fraction(o, c, nsec);
  else if (c->std >= STD_HOUR && c->std != STD_LONG_YEAR && c->std != STD_YEAR)
    emit_clock_part(o, c, tm);
  else emit_date_part(o, c, tm);
}

long tf_format(tf_time_t t, const char *layout, size_t llen, char *buf, size_t cap) {
  struct tm tm;
  time_t secs = (time_t)t.sec;
  out_t o = {buf, cap, 0};
  chunk_t c;
  if ((int64_t)secs != t.sec || !gmtime_r(&secs, &tm)) return -1;
  for (size_t pos = 0; pos <= llen;) {
    next_chunk(layout, llen, pos, &c);
    emit(&o, layout + pos, c.at - pos);
    if (c.std == STD_NONE) break;
    emit_chunk(&o, &c, &tm, t.nsec);
    pos = c.at + c.len;
  }
  if (cap) buf[o.len < cap ? o.len : cap - 1] = '\0';
  return (long)o.len;
}

/* gmtime_r, remembering the last second converted: timestamps come in runs of the same
 * second (every step of a workflow, every log line), and the conversion is most of the cost. */
static struct tm *utc_of(const time_t *secs, struct tm *out) {
  static _Thread_local time_t last_secs;
  static _Thread_local struct tm last_tm;
  static _Thread_local int have;
  if (have && *secs == last_secs) {
    *out = last_tm;
    return out;
  }
  if (!gmtime_r(secs, out)) return NULL;
  last_secs = *secs, last_tm = *out, have = 1;
  return out;
}

long tf_rfc3339(tf_time_t t, char *buf, size_t cap) {
  long ms = (t.nsec + 500000L) / 1000000L;
  if (ms >= 1000) {
    t.sec++;
    ms = 0;
  }
  t.nsec = (int32_t)(ms * 1000000L);
  struct tm tm;
  time_t secs = (time_t)t.sec;
  if ((int64_t)secs == t.sec && utc_of(&secs, &tm) && tm.tm_year >= -1900 && tm.tm_year <= 9999 - 1900) {
    /* the common case, without parsing a layout: YYYY-MM-DDTHH:MM:SS[.mmm]Z */
    char s[32];
    const int f[6] = {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec};
    static const int width[6] = {4, 2, 2, 2, 2, 2};
    static const char sep[6] = {'-', '-', 'T', ':', ':', 0};
    size_t n = 0;
    for (int i = 0; i < 6; i++) {
      for (int d = width[i] - 1, v = f[i]; d >= 0; d--, v /= 10) s[n + (size_t)d] = (char)('0' + v % 10);
      n += (size_t)width[i];
      if (sep[i]) s[n++] = sep[i];
    }
    if (ms) {
      s[n++] = '.';
      s[n++] = (char)('0' + ms / 100);
      s[n++] = (char)('0' + ms / 10 % 10);
      s[n++] = (char)('0' + ms % 10);
    }
    s[n++] = 'Z';
    if (cap) {
      size_t k = n < cap ? n : cap - 1;
      memcpy(buf, s, k);
      buf[k] = '\0';
    }
    return (long)n;
  }
  const char *layout = ms ? "2006-01-02T15:04:05.000Z07:00" : "2006-01-02T15:04:05Z07:00";
  return tf_format(t, layout, strlen(layout), buf, cap);
}
