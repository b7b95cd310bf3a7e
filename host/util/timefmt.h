/* Pure-C time text: RFC 3339 and HTTP-date parsing and Go-layout formatting, always UTC.
 * No locale, no TZ environment: timegm/gmtime_r only. */
#ifndef ROTATOR_TIMEFMT_H
#define ROTATOR_TIMEFMT_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
  int64_t sec;  /* seconds since the epoch (floor for negative times) */
  int32_t nsec; /* 0..999999999 */
} tf_time_t;

/* Parses YYYY-MM-DD(T|t| )HH:MM:SS[.frac](Z|z|+hh:mm|-hh:mm). Fractions beyond
 * nanoseconds are truncated. Returns 0, or -1 with *why set to a static
 * description ("day out of range", ...). */
int tf_parse_rfc3339(const char *s, size_t len, tf_time_t *out, const char **why);

/* Parses an HTTP Date header value in IMF-fixdate form ("Sun, 06 Nov 1994 08:49:37 GMT",
 * RFC 9110), the only form HTTP/1.1 servers may send, into Unix seconds. The obsolete
 * RFC 850 and asctime forms are refused. Returns 0, or -1. */
int tf_parse_http_date(const char *s, size_t len, int64_t *out);

/* Splits float epoch seconds, rounding to the microsecond (a double near
 * 1.7e9 carries no more precision). Returns -1 if not finite or beyond
 * +-1e15 s (about 31 million years). */
int tf_from_double(double x, tf_time_t *out);

/* Formats t in UTC by a Go layout ("2006-01-02T15:04:05Z07:00", reference
 * time Mon Jan 2 15:04:05 MST 2006). Like snprintf: writes at most cap-1
 * bytes plus a NUL, returns the full length, or -1 if t is out of range. */
long tf_format(tf_time_t t, const char *layout, size_t llen, char *buf, size_t cap);

/* RFC 3339 in UTC: "2026-11-25T03:00:00Z", or with ".123" milliseconds when
 * the time (rounded to the millisecond) has a fraction. Same return as tf_format. */
long tf_rfc3339(tf_time_t t, char *buf, size_t cap);

#endif
