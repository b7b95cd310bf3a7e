/* libFuzzer harness: RFC 3339 and HTTP-date parsing, Go-layout formatting (util/timefmt.c).
 * Differential: the RFC 3339 parser accepts exactly what the RFC's grammar (section 5.6,
 * with the documented 't', ' ' and 'z' spellings) and its value ranges accept, and gives
 * the instant a separate civil-date computation gives; every accepted time formats back
 * (tf_rfc3339) to text the parser accepts with the same instant to the millisecond, and
 * the Go layout "2006-01-02T15:04:05Z07:00" formats whole seconds as tf_rfc3339 does;
 * every accepted HTTP date has the fixed 29-byte IMF-fixdate shape. First byte selects
 * the mode. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/timefmt.h"

/* ---- the reference: RFC 3339 section 5.6 read off the page ---- */
typedef struct { const char *s; size_t n, i; } g_t;
static int g_num(g_t *g, int width, long *v) {
  *v = 0;
  for (int k = 0; k < width; k++, g->i++) {
    if (g->i >= g->n || g->s[g->i] < '0' || g->s[g->i] > '9') return 0;
    *v = *v * 10 + (g->s[g->i] - '0');
  }
  return 1;
}
static int g_ch(g_t *g, const char *set) {
  if (g->i >= g->n || !g->s[g->i] || !strchr(set, g->s[g->i])) return 0;
  return g->s[g->i++];
}
/* days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar */
static int64_t civil_days(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400, yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1, doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}
/* 1 (and the instant in sec, nsec) when s is a valid date-time, else 0 */
static int reference(const char *s, size_t n, int64_t *sec, int32_t *nsec) {
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  g_t g = {s, n, 0};
  long y, mo, d, h, mi, se, oh = 0, om = 0;
  if (!g_num(&g, 4, &y) || !g_ch(&g, "-") || !g_num(&g, 2, &mo) || !g_ch(&g, "-") || !g_num(&g, 2, &d)) return 0;
  if (!g_ch(&g, "Tt ") || !g_num(&g, 2, &h) || !g_ch(&g, ":") || !g_num(&g, 2, &mi) || !g_ch(&g, ":") ||
      !g_num(&g, 2, &se))
    return 0;
  long frac = 0;
  if (g_ch(&g, ".")) {
    int digits = 0;
    while (g.i < n && s[g.i] >= '0' && s[g.i] <= '9') {
      if (digits < 9) frac = frac * 10 + (s[g.i] - '0');
      digits++, g.i++;
    }
    if (!digits) return 0;
    for (; digits < 9; digits++) frac *= 10;
  }
  int z = g_ch(&g, "Zz+-");
  if (!z) return 0;
  if (z == '+' || z == '-') {
    if (!g_num(&g, 2, &oh) || !g_ch(&g, ":") || !g_num(&g, 2, &om)) return 0;
    if (oh > 23 || om > 59) return 0;
    if (z == '-') oh = -oh, om = -om;
  }
  if (g.i != n) return 0;
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 || mi > 59 || se > 59)
    return 0; /* a leap second (60) is refused, as documented */
  *sec = civil_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - (oh * 3600 + om * 60);
  *nsec = (int32_t)frac;
  return 1;
}

static void rfc3339(const char *s, size_t len) {
  tf_time_t t;
  const char *why = NULL;
  int64_t rsec;
  int32_t rnsec;
  int ref = reference(s, len, &rsec, &rnsec);
  if (tf_parse_rfc3339(s, len, &t, &why) != 0) {
    if (!why) abort(); /* a refusal always says why */
    if (ref) abort();  /* refused a valid time */
    return;
  }
  if (!ref || t.sec != rsec || t.nsec != rnsec) abort(); /* accepted an invalid one, or misread it */
  if (t.nsec < 0 || t.nsec > 999999999) abort();
  static const char RFC3339[] = "2006-01-02T15:04:05Z07:00";
  char a[64], b[64];
  long na = tf_format((tf_time_t){t.sec, 0}, RFC3339, sizeof RFC3339 - 1, a, sizeof a);
  long nb = tf_rfc3339((tf_time_t){t.sec, 0}, b, sizeof b);
  if (na != nb || (na > 0 && strcmp(a, b) != 0)) abort();
  char out[64];
  long n = tf_rfc3339(t, out, sizeof out);
  if (n < 0) return; /* out of the formatter's range */
  if ((size_t)n >= sizeof out) abort();
  tf_time_t back;
  if (tf_parse_rfc3339(out, (size_t)n, &back, &why) != 0) abort();
  int64_t ms1 = t.sec * 1000 + (t.nsec + 500000) / 1000000, ms2 = back.sec * 1000 + back.nsec / 1000000;
  if (ms1 != ms2) abort();
}

static void http_date(const char *s, size_t len) {
  int64_t t;
  if (tf_parse_http_date(s, len, &t) != 0) return;
  /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
  size_t n = len;
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
  size_t b = 0;
  while (b < n && (s[b] == ' ' || s[b] == '\t')) b++;
  if (n - b != 29 || memcmp(s + n - 4, " GMT", 4) != 0) abort();
}

static void layout(const uint8_t *d, size_t len) {
  if (len < 8) return;
  int64_t sec;
  memcpy(&sec, d, 8);
  tf_time_t t = {sec % 400000000000LL, 0};
  char small[16], big[4096];
  long n = tf_format(t, (const char *)d + 8, len - 8, small, sizeof small);
  if (n < 0) return;
  if (strlen(small) >= sizeof small) abort();
  long m = tf_format(t, (const char *)d + 8, len - 8, big, sizeof big);
  if (m != n) abort();
  if ((size_t)n < sizeof big && strlen(big) != (size_t)n) { /* NUL inside a layout is text */
    if (memchr(d + 8, 0, len - 8) == NULL) abort();
  }
  if ((size_t)n < sizeof small && memcmp(small, big, (size_t)n) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const char *s = (const char *)data + 1;
  size_t len = size - 1;
  switch (data[0] % 3) {
  case 0: rfc3339(s, len); break;
  case 1: http_date(s, len); break;
  default: layout(data + 1, len); break;
  }
  return 0;
}
