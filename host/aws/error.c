/* AWS error responses → aws_error_t: code, message, request id, and whether the standard
 * retry mode retries it (throttling, 5xx, transport errors) or it is clock skew. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "aws/request.h"
#include "util/json_get.h"
#include "util/xml_get.h"

static const char *const THROTTLING[] = {
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException",
    "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
    "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
    "EC2ThrottledException", NULL};
static const char *const SKEW[] = {"RequestTimeTooSkewed", "RequestExpired",
                                   "RequestInTheFuture", NULL};
static const char *const TRANSIENT[] = {"RequestTimeout", "RequestTimeoutException",
                                        "InternalError", "InternalFailure",
                                        "ServiceUnavailable", NULL};

static int in_list(const char *const *l, const char *s) {
  for (; *l; l++)
    if (strcmp(*l, s) == 0) return 1;
  return 0;
}

/* Copies text into out (NUL-terminated), replacing control characters with spaces,
 * dropping <tags> when strip_tags, collapsing whitespace runs. */
static void sanitize(const char *s, size_t n, char *out, size_t len, int strip_tags) {
  size_t o = 0;
  int space = 1, tag = 0;
  for (size_t i = 0; i < n && o + 1 < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (strip_tags && ch == '<') { tag = 1; continue; }
    if (tag) { if (ch == '>') tag = 0; continue; }
    if (ch < 0x20 || ch == 0x7f || ch == ' ') {
      if (!space) out[o++] = ' ';
      space = 1;
      continue;
    }
    out[o++] = (char)ch;
    space = 0;
  }
  while (o > 0 && out[o - 1] == ' ') o--;
  out[o] = '\0';
}

/* A field of the error document: 1 if found (a message too long for out keeps its
 * prefix and ends in "..."), 0 if not. */
static int json_field(const char *b, size_t n, const char *key, char *out, size_t len) {
  int rc = json_get(b, n, key, out, len);
  if (rc == JSON_GET_TOO_LONG && len > 4) memcpy(out + len - 4, "...", 4);
  if (rc == 0 || rc == JSON_GET_TOO_LONG) sanitize(out, strlen(out), out, len, 0); /* one log line */
  return rc == 0 || rc == JSON_GET_TOO_LONG;
}

static int xml_field(const char *b, size_t n, const char *tag, char *out, size_t len) {
  int rc = xml_get(b, n, tag, out, len);
  if (rc == XML_GET_TOO_LONG && len > 4) memcpy(out + len - 4, "...", 4);
  return rc == 0 || rc == XML_GET_TOO_LONG;
}

/* "aws.protocoltests#FooError:http://..." → "FooError" */
static void clean_code(char *code) {
  char *c = strchr(code, ':');
  if (c) *c = '\0';
  char *h = strrchr(code, '#');
  if (h) memmove(code, h + 1, strlen(h + 1) + 1);
}

static void parse_json_error(const http_response_t *r, aws_error_t *e) {
  char hv[128];
  if (http_header(r, "x-amzn-ErrorType", hv, sizeof hv)) snprintf(e->code, sizeof e->code, "%s", hv);
  else if (!json_field(r->body, r->body_len, "__type", e->code, sizeof e->code) &&
           !json_field(r->body, r->body_len, "code", e->code, sizeof e->code))
    json_field(r->body, r->body_len, "Code", e->code, sizeof e->code);
  clean_code(e->code);
  if (!json_field(r->body, r->body_len, "message", e->message, sizeof e->message) &&
      !json_field(r->body, r->body_len, "Message", e->message, sizeof e->message))
    json_field(r->body, r->body_len, "errorMessage", e->message, sizeof e->message);
}

static void parse_xml_error(const http_response_t *r, aws_error_t *e) {
  xml_field(r->body, r->body_len, "Code", e->code, sizeof e->code);
  xml_field(r->body, r->body_len, "Message", e->message, sizeof e->message);
  if (!e->request_id[0])
    xml_field(r->body, r->body_len, "RequestId", e->request_id, sizeof e->request_id);
}

static void classify(aws_error_t *e) {
  if (in_list(THROTTLING, e->code) || e->status == 429) e->throttling = 1;
  int sig = strcmp(e->code, "InvalidSignatureException") == 0 ||
            strcmp(e->code, "SignatureDoesNotMatch") == 0 || strcmp(e->code, "AuthFailure") == 0;
  if (in_list(SKEW, e->code) ||
      (sig && (strstr(e->message, "Signature expired") || strstr(e->message, "not yet current"))))
    e->skew = 1;
  e->retryable = e->throttling || e->status == 500 || e->status == 502 || e->status == 503 ||
                 e->status == 504 || in_list(TRANSIENT, e->code);
}

void aws_parse_error(aws_protocol_t proto, const http_response_t *r, aws_error_t *e) {
  char hv[128];
  memset(e, 0, sizeof *e);
  e->status = r->status;
  if (r->status == 0) {
    snprintf(e->code, sizeof e->code, "%s", r->timed_out ? "TimeoutError" : "NetworkingError");
    sanitize(r->error ? r->error : "transport error", strlen(r->error ? r->error : "transport error"),
             e->message, sizeof e->message, 0);
    e->timeout = r->timed_out;
    e->retryable = 1;
    return;
  }
  if (http_header(r, "x-amzn-RequestId", hv, sizeof hv) ||
      http_header(r, "x-amz-request-id", hv, sizeof hv))
    snprintf(e->request_id, sizeof e->request_id, "%s", hv);
  const char *b = r->body;
  size_t i = 0;
  while (i < r->body_len && isspace((unsigned char)b[i])) i++;
  if (i < r->body_len && b[i] == '<' && (proto == AWS_QUERY || memmem(b, r->body_len, "<Code>", 6)))
    parse_xml_error(r, e);
  else if (i < r->body_len && b[i] == '{')
    parse_json_error(r, e);
  else if (http_header(r, "x-amzn-ErrorType", hv, sizeof hv)) {
    snprintf(e->code, sizeof e->code, "%s", hv);
    clean_code(e->code);
  }
  if (!e->code[0]) { /* not an AWS error document: HTML from a proxy, plain text, ... */
    char excerpt[201];
    sanitize(b, r->body_len < 2000 ? r->body_len : 2000, excerpt, sizeof excerpt, 1);
    snprintf(e->code, sizeof e->code, "HttpError");
    snprintf(e->message, sizeof e->message, "HTTP %d%s%s", r->status, excerpt[0] ? ": " : "",
             excerpt);
  }
  classify(e);
}
