/* One AWS call through its attempts: sign, send, classify, back off, retry. */
#include "aws_call.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "sigv4.h"

#define URL_MAX 2048

typedef struct call {
  aws_client_t *c;
  uint64_t id;
  const aws_service_t *svc;
  char *action, *method, *path, *query, *body, *ctype;
  size_t body_len;
  char region[64];
  char url[URL_MAX];       /* full URL with path and query */
  char host[256];
  long timeout_ms;
  int max_attempts, attempt, skew_retried, retried;
  int last_cost;
  uint64_t http_id, t_attempt;
  loop_timer_t backoff;
  aws_done_fn done;
  void *ud;
  struct call *prev, *next;
} call_t;

struct aws_client {
  loop_t *loop;
  http_client_t *http;
  call_t *calls;
  size_t pending;
  uint64_t next_id;
  long skew_s;
  int tokens;
  int trace;
};

/* ---- credentials adapter (until host/creds.h provides the chain) ---- */

typedef struct {
  char akid[128];
  char secret[SIGV4_MAX_SECRET_LEN + 1];
  char token[4096];
} creds_t;

static int get_credentials(creds_t *cr, char *err, size_t errlen) {
  const char *a = getenv("AWS_ACCESS_KEY_ID"), *s = getenv("AWS_SECRET_ACCESS_KEY");
  const char *t = getenv("AWS_SESSION_TOKEN");
  if (!a || !*a || !s || !*s) {
    snprintf(err, errlen, "no AWS credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)");
    return -1;
  }
  if (strlen(a) >= sizeof cr->akid || strlen(s) >= sizeof cr->secret ||
      (t && strlen(t) >= sizeof cr->token)) {
    snprintf(err, errlen, "AWS credentials too long");
    return -1;
  }
  snprintf(cr->akid, sizeof cr->akid, "%s", a);
  snprintf(cr->secret, sizeof cr->secret, "%s", s);
  snprintf(cr->token, sizeof cr->token, "%s", t ? t : "");
  /* Test only: ROTATOR_TEST_CORRUPT_SECRET=1 flips one bit of the secret key so the
   * signature is wrong; proves an emulator really checks signatures. */
  const char *corrupt = getenv("ROTATOR_TEST_CORRUPT_SECRET");
  if (corrupt && strcmp(corrupt, "1") == 0) cr->secret[0] ^= 1;
  return 0;
}

static void wipe(void *p, size_t n) {
  volatile unsigned char *v = p;
  while (n--) *v++ = 0;
}

/* ---- helpers ---- */

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static int env_int(const char *name, int dflt) {
  const char *v = getenv(name);
  if (!v || !*v) return dflt;
  char *end;
  long n = strtol(v, &end, 10);
  return *end || n < 1 || n > 100 ? dflt : (int)n;
}

static int split_url(const char *base, char *host, size_t hl, const char **path) {
  const char *p = strstr(base, "://");
  if (!p) return -1;
  p += 3;
  const char *slash = strchr(p, '/');
  size_t n = slash ? (size_t)(slash - p) : strlen(p);
  if (n == 0 || n >= hl) return -1;
  memcpy(host, p, n);
  host[n] = '\0';
  *path = slash ? slash : "";
  return 0;
}

static const char *default_ctype(aws_protocol_t p) {
  switch (p) {
    case AWS_JSON_1_0: return "application/x-amz-json-1.0";
    case AWS_JSON_1_1: return "application/x-amz-json-1.1";
    case AWS_REST_JSON_1: return "application/json";
    case AWS_QUERY: return "application/x-www-form-urlencoded; charset=utf-8";
  }
  return "application/octet-stream";
}

static void free_call(call_t *k) {
  free(k->action);
  free(k->method);
  free(k->path);
  free(k->query);
  free(k->body);
  free(k->ctype);
  free(k);
}

static void unlink_call(aws_client_t *c, call_t *k) {
  if (k->prev) k->prev->next = k->next;
  else c->calls = k->next;
  if (k->next) k->next->prev = k->prev;
  c->pending--;
}

static void finish(call_t *k, const aws_result_t *r) {
  aws_client_t *c = k->c;
  unlink_call(c, k);
  loop_timer_stop(c->loop, &k->backoff);
  if (k->done) k->done(k->ud, r);
  free_call(k);
}

static void fail(call_t *k, const aws_error_t *e) {
  aws_result_t r = {.id = k->id, .ok = 0, .status = e->status, .body = "", .request_id = e->request_id,
                    .attempts = k->attempt, .err = e};
  finish(k, &r);
}

static void trace_request(call_t *k) {
  if (!k->c->trace) return;
  char attempt[16], blen[24];
  snprintf(attempt, sizeof attempt, "%d", k->attempt);
  snprintf(blen, sizeof blen, "%zu", k->body_len);
  log_kv_t kv[] = {{"service", k->svc->name}, {"action", k->action}, {"method", k->method},
                   {"url", k->url}, {"attempt", attempt}, {"body_bytes", blen}};
  log_event(LOG_INFO, "aws.request", kv, 6);
}

static void trace_response(call_t *k, const http_response_t *resp, const aws_error_t *e,
                           const char *reqid) {
  if (!k->c->trace) return;
  char attempt[16], status[16], ms[24], blen[24];
  snprintf(attempt, sizeof attempt, "%d", k->attempt);
  snprintf(status, sizeof status, "%d", resp->status);
  snprintf(ms, sizeof ms, "%llu", (unsigned long long)(loop_now_ms() - k->t_attempt));
  snprintf(blen, sizeof blen, "%zu", resp->body_len);
  log_kv_t kv[] = {{"service", k->svc->name}, {"action", k->action}, {"status", status},
                   {"request_id", reqid ? reqid : ""}, {"duration_ms", ms},
                   {"attempt", attempt}, {"body_bytes", blen},
                   {"error", e ? e->code : ""}, {"message", e ? e->message : ""}};
  log_event(e ? LOG_WARN : LOG_INFO, "aws.response", kv, e ? 9 : 7);
}

/* ---- sending one attempt ---- */

static void on_http(void *ud, const http_response_t *resp);

static int sign_and_send(call_t *k, char *err, size_t errlen) {
  creds_t cr;
  if (get_credentials(&cr, err, errlen) < 0) return -1;
  const char *path = k->path ? k->path : "/";
  sigv4_header sh[4];
  size_t nh = 0;
  sh[nh++] = (sigv4_header){"host", k->host};
  sh[nh++] = (sigv4_header){"content-type", k->ctype};
  char target[256] = "";
  if (k->svc->target_prefix) {
    snprintf(target, sizeof target, "%s.%s", k->svc->target_prefix, k->action);
    sh[nh++] = (sigv4_header){"x-amz-target", target};
  }
  if (cr.token[0]) sh[nh++] = (sigv4_header){"x-amz-security-token", cr.token};
  sigv4_request rq = {.method = k->method, .path = path, .query = k->query, .headers = sh,
                      .n_headers = nh, .body = k->body, .body_len = k->body_len};
  sigv4_credentials sc = {cr.akid, cr.secret, cr.token[0] ? cr.token : NULL};
  sigv4_params sp = {.region = k->region, .service = k->svc->signing_name,
                     .time = time(NULL) + k->c->skew_s, .flags = SIGV4_FLAGS_DEFAULT};
  char auth[1024];
  sigv4_output out = {.buf = auth, .size = sizeof auth};
  int rc = sigv4_sign(&rq, &sc, &sp, &out);
  wipe(cr.secret, sizeof cr.secret);
  if (rc != SIGV4_OK) {
    snprintf(err, errlen, "signing failed: %s (%s)", sigv4_strerror(rc), sigv4_error_detail());
    return -1;
  }
  char h_host[300], h_ct[200], h_target[300], h_date[64], h_auth[1100], h_tok[4200];
  const char *hdrs[8];
  size_t n = 0;
  snprintf(h_host, sizeof h_host, "Host: %s", k->host);
  snprintf(h_ct, sizeof h_ct, "Content-Type: %s", k->ctype);
  snprintf(h_date, sizeof h_date, "X-Amz-Date: %s", out.amz_date);
  snprintf(h_auth, sizeof h_auth, "Authorization: %s", auth);
  hdrs[n++] = h_host;
  hdrs[n++] = h_ct;
  hdrs[n++] = h_date;
  hdrs[n++] = h_auth;
  if (target[0]) {
    snprintf(h_target, sizeof h_target, "X-Amz-Target: %s", target);
    hdrs[n++] = h_target;
  }
  if (cr.token[0]) {
    snprintf(h_tok, sizeof h_tok, "X-Amz-Security-Token: %s", cr.token);
    hdrs[n++] = h_tok;
  }
  http_request_t hr = {.method = k->method, .url = k->url, .headers = hdrs, .nheaders = n,
                       .body = k->body, .body_len = k->body_len, .timeout_ms = k->timeout_ms};
  k->attempt++;
  k->t_attempt = loop_now_ms();
  trace_request(k);
  k->http_id = http_send(k->c->http, &hr, on_http, k);
  wipe(h_tok, sizeof h_tok);
  wipe(cr.token, sizeof cr.token);
  wipe(h_auth, sizeof h_auth);
  if (!k->http_id) {
    snprintf(err, errlen, "cannot start the HTTP request");
    return -1;
  }
  return 0;
}

static void on_backoff(loop_t *loop, loop_timer_t *t, void *ud) {
  (void)loop;
  (void)t;
  call_t *k = ud;
  aws_error_t e;
  memset(&e, 0, sizeof e);
  if (sign_and_send(k, e.message, sizeof e.message) < 0) {
    snprintf(e.code, sizeof e.code, "ClientError");
    fail(k, &e);
  }
}

static time_t parse_http_date(const char *s) {
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  const char *end = strptime(s, "%a, %d %b %Y %H:%M:%S", &tm);
  return end ? timegm(&tm) : (time_t)-1;
}

/* Clock skew: the error says so, or the server's Date is far from ours. Returns 1 if the
 * offset was updated and the call should be retried at once. */
static int handle_skew(call_t *k, const http_response_t *resp, aws_error_t *e) {
  char dh[64];
  if (k->skew_retried || !http_header(resp, "Date", dh, sizeof dh)) return 0;
  time_t server = parse_http_date(dh);
  if (server == (time_t)-1) return 0;
  long diff = (long)(server - time(NULL));
  long off_now = diff - k->c->skew_s;
  if (!e->skew && (off_now < AWS_SKEW_LIMIT_S && off_now > -AWS_SKEW_LIMIT_S)) return 0;
  if (off_now < 60 && off_now > -60) return 0; /* already corrected: not our clock */
  k->c->skew_s = diff;
  k->skew_retried = 1;
  log_msg(LOG_WARN, "aws.clock_skew", "server clock differs by %ld s; correcting signing time", diff);
  return 1;
}

static int backoff_ms(const call_t *k, const aws_error_t *e) {
  double base = e->throttling ? AWS_THROTTLE_BACKOFF_BASE_MS : AWS_BACKOFF_BASE_MS;
  double cap = base * (double)(1u << (k->attempt < 16 ? k->attempt : 16));
  if (cap > AWS_MAX_BACKOFF_MS) cap = AWS_MAX_BACKOFF_MS;
  return (int)(drand48() * cap);
}

static int should_retry(call_t *k, aws_error_t *e) {
  if (!e->retryable || k->attempt >= k->max_attempts) return 0;
  int cost = e->timeout || e->status == 0 ? AWS_TIMEOUT_RETRY_COST : AWS_RETRY_COST;
  if (k->c->tokens < cost) {
    size_t l = strlen(e->message);
    snprintf(e->message + l, sizeof e->message - l, " (retry quota exhausted)");
    return 0;
  }
  k->c->tokens -= cost;
  k->last_cost = cost;
  k->retried = 1;
  return 1;
}

static void on_http(void *ud, const http_response_t *resp) {
  call_t *k = ud;
  aws_client_t *c = k->c;
  k->http_id = 0;
  char reqid[128] = "";
  if (resp->status >= 200 && resp->status < 300) {
    if (!http_header(resp, "x-amzn-RequestId", reqid, sizeof reqid))
      http_header(resp, "x-amz-request-id", reqid, sizeof reqid);
    trace_response(k, resp, NULL, reqid);
    c->tokens += k->retried ? k->last_cost : AWS_NO_RETRY_INCREMENT;
    if (c->tokens > AWS_RETRY_QUOTA) c->tokens = AWS_RETRY_QUOTA;
    aws_result_t r = {.id = k->id, .ok = 1, .status = resp->status, .body = resp->body,
                      .body_len = resp->body_len, .request_id = reqid, .attempts = k->attempt};
    finish(k, &r);
    return;
  }
  aws_error_t e;
  aws_parse_error(k->svc->protocol, resp, &e);
  trace_response(k, resp, &e, e.request_id);
  int delay = -1;
  if (resp->status && handle_skew(k, resp, &e)) delay = 0;
  else if (should_retry(k, &e)) delay = backoff_ms(k, &e);
  if (delay >= 0 && loop_timer_start(c->loop, &k->backoff, (uint64_t)delay) == 0) {
    if (c->trace) log_msg(LOG_INFO, "aws.retry", "%s.%s: %s; attempt %d in %d ms", k->svc->name,
                          k->action, e.code, k->attempt + 1, delay);
    return;
  }
  fail(k, &e);
}

/* ---- public API ---- */

aws_client_t *aws_client_new(loop_t *loop) {
  aws_client_t *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->loop = loop;
  c->http = http_client_new(loop);
  if (!c->http) {
    free(c);
    return NULL;
  }
  c->next_id = 1;
  c->tokens = AWS_RETRY_QUOTA;
  const char *t = getenv("ROTATOR_TRACE_AWS");
  c->trace = t && *t && strcmp(t, "0") != 0;
  srand48((long)time(NULL) ^ (long)loop_now_ms());
  return c;
}

void aws_client_free(aws_client_t *c) {
  if (!c) return;
  while (c->calls) {
    call_t *k = c->calls;
    if (k->http_id) http_cancel(c->http, k->http_id);
    loop_timer_stop(c->loop, &k->backoff);
    unlink_call(c, k);
    free_call(k);
  }
  http_client_free(c->http);
  free(c);
}

static int resolve(call_t *k, const aws_call_t *call, char *err, size_t errlen) {
  const char *region = call->region;
  if (!region || !*region) region = getenv("AWS_REGION");
  if (!region || !*region) region = getenv("AWS_DEFAULT_REGION");
  if (!region || !*region || strlen(region) >= sizeof k->region) {
    snprintf(err, errlen, "no AWS region (set AWS_REGION or pass opts.region)");
    return -1;
  }
  snprintf(k->region, sizeof k->region, "%s", region);
  char base[URL_MAX];
  if (aws_endpoint(k->svc, k->region, NULL, base, sizeof base, err, errlen) < 0) return -1;
  const char *bpath;
  if (split_url(base, k->host, sizeof k->host, &bpath) < 0) {
    snprintf(err, errlen, "bad endpoint URL '%.200s'", base);
    return -1;
  }
  const char *p = call->path ? call->path : "/";
  char full[URL_MAX];
  int n = snprintf(full, sizeof full, "%s%s", bpath, p);
  if (n < 0 || (size_t)n >= sizeof full) goto toolong;
  if (!(k->path = strdup(full))) goto nomem;
  n = snprintf(k->url, sizeof k->url, "%.*s%s%s%s", (int)(strlen(base) - strlen(bpath)), base, full,
               call->query ? "?" : "", call->query ? call->query : "");
  if (n < 0 || (size_t)n >= sizeof k->url) goto toolong;
  return 0;
toolong:
  snprintf(err, errlen, "request URL too long");
  return -1;
nomem:
  snprintf(err, errlen, "out of memory");
  return -1;
}

static call_t *new_call(aws_client_t *c, const aws_call_t *call, char *err, size_t errlen) {
  call_t *k = calloc(1, sizeof *k);
  if (!k) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  k->c = c;
  k->svc = aws_service(call->service);
  if (!k->svc) {
    snprintf(err, errlen, "unknown service '%.40s'", call->service ? call->service : "");
    free_call(k);
    return NULL;
  }
  k->action = dup_or_null(call->action);
  k->method = strdup(call->method ? call->method : "POST");
  k->query = dup_or_null(call->query);
  k->ctype = strdup(call->content_type ? call->content_type : default_ctype(k->svc->protocol));
  k->body = malloc(call->body_len + 1);
  if (!k->action || !k->method || (call->query && !k->query) || !k->ctype || !k->body) {
    snprintf(err, errlen, "out of memory");
    free_call(k);
    return NULL;
  }
  if (call->body_len) memcpy(k->body, call->body, call->body_len);
  k->body[call->body_len] = '\0';
  k->body_len = call->body_len;
  if (resolve(k, call, err, errlen) < 0) {
    free_call(k);
    return NULL;
  }
  k->timeout_ms = call->timeout_ms;
  k->max_attempts = call->max_attempts > 0 ? call->max_attempts
                                           : env_int("AWS_MAX_ATTEMPTS", AWS_DEFAULT_MAX_ATTEMPTS);
  loop_timer_init(&k->backoff, on_backoff, k);
  return k;
}

uint64_t aws_call_start(aws_client_t *c, const aws_call_t *call, aws_done_fn done, void *ud,
                        char *err, size_t errlen) {
  if (!c || !call || !call->action) {
    snprintf(err, errlen, "bad arguments");
    return 0;
  }
  call_t *k = new_call(c, call, err, errlen);
  if (!k) return 0;
  k->done = done;
  k->ud = ud;
  k->id = c->next_id++;
  k->next = c->calls;
  if (c->calls) c->calls->prev = k;
  c->calls = k;
  c->pending++;
  if (sign_and_send(k, err, errlen) < 0) {
    unlink_call(c, k);
    free_call(k);
    return 0;
  }
  return k->id;
}

int aws_call_cancel(aws_client_t *c, uint64_t id) {
  for (call_t *k = c ? c->calls : NULL; k; k = k->next) {
    if (k->id != id) continue;
    if (k->http_id) http_cancel(c->http, k->http_id);
    loop_timer_stop(c->loop, &k->backoff);
    unlink_call(c, k);
    free_call(k);
    return 0;
  }
  return -1;
}

size_t aws_call_pending(const aws_client_t *c) { return c ? c->pending : 0; }
long aws_clock_offset(const aws_client_t *c) { return c->skew_s; }
int aws_retry_tokens(const aws_client_t *c) { return c->tokens; }
