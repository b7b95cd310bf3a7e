/* libFuzzer harness: AWS error answers (aws/error.c) and the response headers read from
 * them (net/http.c http_header), including the Date header the clock-skew check parses.
 * Input: one selector byte (protocol), then a raw header block, a blank line, the body.
 * Checks: every field of the error is NUL-terminated inside its array and the code is
 * never empty; a header value is trimmed, one line, and fits; an accepted Date formats
 * back (Go layout, util/timefmt.c) to the same IMF-fixdate text, weekday aside. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aws/request.h"
#include "net/http.h"
#include "util/timefmt.h"

static const char *const NAMES[] = {"Date", "x-amzn-RequestId", "x-amz-request-id", "x-amzn-ErrorType",
                                    "Content-Type", "d"};

static void check_field(const char *f, size_t cap) {
  if (memchr(f, 0, cap) == NULL) abort();
}

static void check_date(const char *v) {
  int64_t t;
  size_t n = strlen(v);
  if (tf_parse_http_date(v, n, &t) != 0) return;
  char back[64];
  static const char LAYOUT[] = "Mon, 02 Jan 2006 15:04:05 GMT";
  long m = tf_format((tf_time_t){t, 0}, LAYOUT, sizeof LAYOUT - 1, back, sizeof back);
  if (m < 0) return; /* beyond the formatter's years */
  if ((size_t)m != n || memcmp(back + 3, v + 3, n - 3) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  static const aws_protocol_t PROTOS[] = {AWS_JSON_1_0, AWS_JSON_1_1, AWS_REST_JSON_1, AWS_QUERY};
  aws_protocol_t proto = PROTOS[data[0] % 4];
  const char *in = (const char *)data + 1;
  size_t len = size - 1;
  const char *sep = memmem(in, len, "\r\n\r\n", 4);
  size_t hlen = sep ? (size_t)(sep - in) : 0, boff = sep ? hlen + 4 : 0;
  /* the transfer layer hands over NUL-terminated copies of both parts */
  char *head = malloc(hlen + 1), *body = malloc(len - boff + 1);
  if (!head || !body) { free(head); free(body); return 0; }
  memcpy(head, in, hlen);
  head[hlen] = 0;
  memcpy(body, in + boff, len - boff);
  body[len - boff] = 0;
  http_response_t r = {.status = 400 + (data[0] >> 2) % 200, .body = body, .body_len = len - boff,
                       .headers = head};
  if ((data[0] >> 2) % 200 == 199) r.status = 0, r.error = body, r.timed_out = data[0] & 1;

  aws_error_t e;
  aws_parse_error(proto, &r, &e);
  check_field(e.code, sizeof e.code);
  check_field(e.message, sizeof e.message);
  check_field(e.request_id, sizeof e.request_id);
  if (!e.code[0]) abort();

  for (size_t i = 0; i < sizeof NAMES / sizeof *NAMES; i++) {
    char v[64];
    memset(v, 'Z', sizeof v);
    const char *got = http_header(&r, NAMES[i], v, sizeof v);
    if (!got) continue;
    size_t n = strnlen(v, sizeof v);
    if (got != v || n == sizeof v || strpbrk(v, "\r\n")) abort();
    if (n && (v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' || v[n - 1] == '\t')) abort();
    if (n && !memmem(head, hlen, v, n)) abort();
    if (strcasecmp(NAMES[i], "Date") == 0) check_date(v);
  }
  free(head);
  free(body);
  return 0;
}
