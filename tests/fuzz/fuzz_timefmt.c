/* libFuzzer harness: RFC 3339 and HTTP-date parsing, Go-layout formatting (util/timefmt.c).
 * Differential: every accepted RFC 3339 time formats back (tf_rfc3339) to text the parser
 * accepts again with the same instant to the millisecond; every accepted HTTP date has
 * the fixed 29-byte IMF-fixdate shape. First byte selects the mode. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/timefmt.h"

static void rfc3339(const char *s, size_t len) {
  tf_time_t t;
  const char *why = NULL;
  if (tf_parse_rfc3339(s, len, &t, &why) != 0) {
    if (!why) abort(); /* a refusal always says why */
    return;
  }
  if (t.nsec < 0 || t.nsec > 999999999) abort();
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
