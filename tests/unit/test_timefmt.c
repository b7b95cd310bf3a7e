/* Unit tests for host/util/timefmt.c: RFC 3339 parsing and Go-layout formatting.
 * Expected layouts are what Go's time.Time.Format returns for the same UTC time. */
#include "util/timefmt.h"
#include "tap.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define T0 1795575600LL /* 2026-11-25T03:00:00Z, a Wednesday, day 329 */

static void parses(const char *s, long long sec, long nsec) {
  tf_time_t t = {0, 0};
  const char *why = "";
  int rc = tf_parse_rfc3339(s, strlen(s), &t, &why);
  ok(rc == 0 && t.sec == sec && t.nsec == nsec, "parse %s -> %lld.%09ld (got rc=%d %lld.%09ld %s)",
     s, sec, nsec, rc, (long long)t.sec, (long)t.nsec, rc ? why : "");
}

static void rejects(const char *s, const char *want_why) {
  tf_time_t t;
  const char *why = NULL;
  int rc = tf_parse_rfc3339(s, strlen(s), &t, &why);
  ok(rc == -1, "reject %s", s);
  is_str(rc == -1 ? why : "(accepted)", want_why, "reason for %s", s);
}

static void formats(long long sec, long nsec, const char *layout, const char *want) {
  tf_time_t t = {sec, (int32_t)nsec};
  char buf[128];
  long n = tf_format(t, layout, strlen(layout), buf, sizeof buf);
  is_str(n >= 0 ? buf : "(error)", want, "format \"%s\"", layout);
  ok(n == (long)strlen(want), "length of \"%s\"", layout);
}

static void test_parse(void) {
  parses("2026-11-25T03:00:00Z", T0, 0);
  parses("2026-11-25T03:00:00.123456Z", T0, 123456000);
  parses("2026-11-25T03:00:00+01:00", T0 - 3600, 0);
  parses("2026-11-25T03:00:00-05:30", T0 + 19800, 0);
  parses("2026-11-25t03:00:00z", T0, 0);
  parses("2026-11-25 03:00:00Z", T0, 0);
  parses("2026-11-25T03:00:00.1234567891Z", T0, 123456789); /* beyond ns: truncated */
  parses("1969-12-31T23:59:59.5Z", -1, 500000000);
  parses("2028-02-29T00:00:00Z", 1835395200LL, 0);           /* leap year */
  parses("2000-02-29T00:00:00Z", 951782400LL, 0);
  /* every time that appears in tests' AWS notification samples */
  parses("2026-11-25T03:00:00.226Z", T0, 226000000);
  parses("2026-11-25T03:00:00.5Z", T0, 500000000);
  parses("2026-11-25T03:00:01Z", T0 + 1, 0);
  parses("2026-11-25T03:00:31.207Z", T0 + 31, 207000000);
  parses("2026-11-25T03:41:05.921Z", T0 + 41 * 60 + 5, 921000000);
  parses("2026-11-25T03:41:07.512Z", T0 + 41 * 60 + 7, 512000000);
  parses("2026-11-25T03:41:17Z", T0 + 41 * 60 + 17, 0);
  parses("2026-11-25T05:00:00Z", T0 + 7200, 0);
  parses("2026-11-25T11:00:31.207Z", T0 + 8 * 3600 + 31, 207000000);
}

static void test_reject(void) {
  rejects("2026-02-30T00:00:00Z", "day out of range");
  rejects("2026-02-29T00:00:00Z", "day out of range");
  rejects("1900-02-29T00:00:00Z", "day out of range");
  rejects("2026-04-31T00:00:00Z", "day out of range");
  rejects("2026-11-00T00:00:00Z", "day out of range");
  rejects("2026-13-01T00:00:00Z", "month out of range");
  rejects("2026-00-01T00:00:00Z", "month out of range");
  rejects("2026-11-25T24:00:00Z", "hour out of range");
  rejects("2026-11-25T03:60:00Z", "minute out of range");
  rejects("2026-11-25T03:00:60Z", "second out of range");
  rejects("2026-11-25T03:00:00", "missing time zone (Z or +hh:mm)");
  rejects("2026-11-25T03:00:00+0100", "invalid time zone offset (want +hh:mm)");
  rejects("2026-11-25T03:00:00+24:00", "time zone offset out of range");
  rejects("2026-11-25T03:00:00UTC", "invalid time zone");
  rejects("2026-11-25T03:00:00Zjunk", "unexpected text after the time zone");
  rejects("2026-11-25T03:00:00.Z", "expected digits after '.'");
  rejects("2026-11-25", "expected 'T' between date and time");
  rejects("2026-11-25T03:00Z", "expected a time hh:mm:ss");
  rejects("2026-1-25T03:00:00Z", "expected a date YYYY-MM-DD");
  rejects("", "expected a date YYYY-MM-DD");
  rejects("Wed, 25 Nov 2026 03:00:00 GMT", "expected a date YYYY-MM-DD");
}

static void test_format(void) {
  const long ns = 123456789;
  formats(T0, 0, "-20060102-15-04-05", "-20261125-03-00-00");
  formats(T0, 0, "2006-01-02T15:04:05Z07:00", "2026-11-25T03:00:00Z");
  formats(T0, ns, "2006-01-02T15:04:05.999999999Z07:00", "2026-11-25T03:00:00.123456789Z");
  formats(T0, ns, "05.000|05.000000|05.999|05,000", "00.123|00.123456|00.123|00,123");
  formats(T0, 0, "05.000|05.999|05.9", "00.000|00|00");
  formats(T0, 100000000, "05.999999", "00.1");
  formats(T0, 0, "Mon Jan _2 15:04:05 MST 2006", "Wed Nov 25 03:00:00 UTC 2026");
  formats(T0, 0, "Monday, 02-Jan-06 15:04:05 MST", "Wednesday, 25-Nov-26 03:00:00 UTC");
  formats(T0, 0, "Mon, 02 Jan 2006 15:04:05 -0700", "Wed, 25 Nov 2026 03:00:00 +0000");
  formats(T0, 0, "January 2, 2006 3:04PM", "November 25, 2026 3:00AM");
  formats(T0 + 12 * 3600, 0, "3:04pm 03PM", "3:00pm 03PM");
  formats(T0 - 3 * 3600, 0, "3:04PM 15h", "12:00AM 00h");
  formats(T0, 0, "002 __2 1 2 3 4 5", "329 329 11 25 3 0 0");
  formats(T0, 0, "Z0700 Z07 -07 -07:00:00 Z07:00:00 Z070000", "Z Z +00 +00:00:00 Z Z");
  formats(T0, 0, "Jane Month _2006", "Jane Month _2026");
  formats(1767582000LL, 0, "Jan _2|__2|002", "Jan  5|  5|005"); /* 2026-01-05 */
  formats(T0, 0, "", "");
  formats(T0, 0, "literal text only: xyz", "literal text only: xyz");
}

static void test_rfc3339_and_double(void) {
  char buf[64];
  tf_time_t t = {T0, 0};
  tf_rfc3339(t, buf, sizeof buf);
  is_str(buf, "2026-11-25T03:00:00Z", "rfc3339 whole seconds");
  t.nsec = 123456789;
  tf_rfc3339(t, buf, sizeof buf);
  is_str(buf, "2026-11-25T03:00:00.123Z", "rfc3339 milliseconds");
  t.nsec = 999600000;
  tf_rfc3339(t, buf, sizeof buf);
  is_str(buf, "2026-11-25T03:00:01Z", "rfc3339 rounds up into the next second");
  t.nsec = 500000000;
  tf_rfc3339(t, buf, sizeof buf);
  is_str(buf, "2026-11-25T03:00:00.500Z", "rfc3339 keeps three digits");

  ok(tf_from_double(1795575600.5, &t) == 0 && t.sec == T0 && t.nsec == 500000000, "split .5");
  ok(tf_from_double(-0.5, &t) == 0 && t.sec == -1 && t.nsec == 500000000, "split negative");
  ok(tf_from_double(1795575600.123, &t) == 0 && t.nsec == 123000000, "rounded to microseconds");
  ok(tf_from_double(1795575600.9999999, &t) == 0 && t.sec == T0 + 1 && t.nsec == 0, "carry");
  ok(tf_from_double(NAN, &t) == -1, "NaN rejected");
  ok(tf_from_double(1e16, &t) == -1, "huge rejected");
}

static void test_bounds(void) {
  char small[5];
  tf_time_t t = {T0, 0};
  long n = tf_format(t, "2006-01-02", 10, small, sizeof small);
  is_int(n, 10, "returns the full length");
  is_str(small, "2026", "truncated and terminated");
  t.sec = INT64_MAX;
  is_int(tf_format(t, "2006", 4, small, sizeof small), -1, "year out of range");
  is_int(tf_format((tf_time_t){T0, 0}, "x", 1, NULL, 0), 1, "measure only");
}

static void test_http_date(void) {
  int64_t t = 0;
  static const char *const good = "Sun, 06 Nov 1994 08:49:37 GMT";
  ok(tf_parse_http_date(good, strlen(good), &t) == 0, "IMF-fixdate parses");
  is_int(t, 784111777, "RFC 9110's example is 784111777");
  const char *leap = "Thu, 29 Feb 2024 23:59:59 GMT";
  ok(tf_parse_http_date(leap, strlen(leap), &t) == 0 && t == 1709251199, "leap day");
  static const char *const bad[] = {
      "Sunday, 06-Nov-94 08:49:37 GMT", /* RFC 850: obsolete */
      "Sun Nov  6 08:49:37 1994",       /* asctime: obsolete */
      "Sun, 06 Nov 1994 08:49:37 UTC",  /* zone must be GMT */
      "Sun, 06 Nov 1994 08:49:37 GMTx", /* trailing text */
      "Sun, 31 Nov 1994 08:49:37 GMT",  /* day out of range */
      "Sun, 06 Foo 1994 08:49:37 GMT",  /* month */
      "Sun, 06 Nov 1994 24:49:37 GMT",  /* hour */
      "Sun, 6 Nov 1994 08:49:37 GMT",   /* day needs two digits */
      "Sun, 06 Nov 1994 08:49:37 G",    /* short */
      ""};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    ok(tf_parse_http_date(bad[i], strlen(bad[i]), &t) == -1, "refuses '%s'", bad[i]);
  ok(tf_parse_http_date(good, 20, &t) == -1, "honours len (no read past it)");
}

int main(void) {
  (void)tap_skip_all; /* tap.h defines it static; unused here */
  test_parse();
  test_reject();
  test_format();
  test_rfc3339_and_double();
  test_bounds();
  test_http_date();
  return tap_done();
}
