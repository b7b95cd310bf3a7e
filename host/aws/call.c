/* One AWS call through its attempts: sign, send, classify, back off, retry. */
#include "aws/call.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "aws/creds/creds.h"
#include "core/log.h"
#include "aws/sigv4.h"

#define URL_MAX 2048

/* Where a call is: waiting for the client's region, for credentials, in flight (or
 * finished), or waiting out a backoff. */
typedef enum { K_WAIT_REGION, K_WAIT_CREDS, K_IN_FLIGHT, K_BACKOFF } call_state_t;

typedef struct call {
  aws_client_t *c;
  uint64_t id;
  call_state_t state;
  uint64_t ticket;         /* when it began waiting for the chain (aws_client.ticket) */
  const aws_service_t *svc;
  char *action, *method, *path, *query, *body, *ctype;
  char *rel_path;          /* the caller's path, joined to the endpoint once the region is known */
  size_t body_len;
  char region[64];
  char url[URL_MAX];       /* full URL with path and query */
  char host[256];
  long timeout_ms;
  int max_attempts, attempt, skew_retried, retried;
  int token_retried;       /* retried once after an expired/invalid session token */
  int signed_with_token;   /* the last attempt carried a session token */
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
  creds_provider_t *creds;
  int creds_asked;         /* one creds_get in flight for every call in K_WAIT_CREDS */
  int region_asked;        /* one creds_region in flight for every call in K_WAIT_REGION */
  char region[CREDS_REGION_MAX]; /* resolved once through the chain, then cached */
  uint64_t ticket;         /* bumped when the chain answers; see next_waiting */
  call_t *calls;
  size_t pending;
  uint64_t next_id;
  long skew_s;
  int tokens;
  int trace;
};

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
  free(k->rel_path);
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

typedef struct {
  char target[256];        /* X-Amz-Target value, or "" */
  char auth[1024];         /* Authorization value */
  char amz_date[20];
} signed_t;

/* Test only: ROTATOR_TEST_CORRUPT_SECRET=1 flips one bit of the secret key so the
 * signature is wrong; proves an emulator really checks signatures. */
static void maybe_corrupt(char *secret) {
  const char *corrupt = getenv("ROTATOR_TEST_CORRUPT_SECRET");
  if (corrupt && strcmp(corrupt, "1") == 0 && secret[0]) secret[0] ^= 1;
}

static int sign_attempt(call_t *k, const creds_t *cr, signed_t *sg, char *err, size_t errlen) {
  const char *token = cr->session_token[0] ? cr->session_token : NULL;
  sigv4_header sh[4];
  size_t nh = 0;
  sh[nh++] = (sigv4_header){"host", k->host};
  sh[nh++] = (sigv4_header){"content-type", k->ctype};
  sg->target[0] = '\0';
  if (k->svc->target_prefix) {
    snprintf(sg->target, sizeof sg->target, "%s.%s", k->svc->target_prefix, k->action);
    sh[nh++] = (sigv4_header){"x-amz-target", sg->target};
  }
  if (token) sh[nh++] = (sigv4_header){"x-amz-security-token", token};
  sigv4_request rq = {.method = k->method, .path = k->path ? k->path : "/", .query = k->query,
                      .headers = sh, .n_headers = nh, .body = k->body, .body_len = k->body_len};
  char secret[CREDS_KEY_MAX];
  snprintf(secret, sizeof secret, "%s", cr->secret_access_key);
  maybe_corrupt(secret);
  sigv4_credentials sc = {cr->access_key_id, secret, token};
  sigv4_params sp = {.region = k->region, .service = k->svc->signing_name,
                     .time = time(NULL) + k->c->skew_s, .flags = SIGV4_FLAGS_DEFAULT};
  sigv4_output out = {.buf = sg->auth, .size = sizeof sg->auth};
  int rc = sigv4_sign(&rq, &sc, &sp, &out);
  wipe(secret, sizeof secret);
  if (rc != SIGV4_OK) {
    snprintf(err, errlen, "signing failed: %s (%s)", sigv4_strerror(rc), sigv4_error_detail());
    return -1;
  }
  snprintf(sg->amz_date, sizeof sg->amz_date, "%s", out.amz_date);
  return 0;
}

static int send_attempt(call_t *k, const signed_t *sg, const char *token, char *err, size_t errlen) {
  char h_host[300], h_ct[200], h_target[300], h_date[64], h_auth[1100], h_tok[CREDS_TOKEN_MAX + 32];
  const char *hdrs[8];
  size_t n = 0;
  snprintf(h_host, sizeof h_host, "Host: %s", k->host);
  snprintf(h_ct, sizeof h_ct, "Content-Type: %s", k->ctype);
  snprintf(h_date, sizeof h_date, "X-Amz-Date: %s", sg->amz_date);
  snprintf(h_auth, sizeof h_auth, "Authorization: %s", sg->auth);
  hdrs[n++] = h_host;
  hdrs[n++] = h_ct;
  hdrs[n++] = h_date;
  hdrs[n++] = h_auth;
  if (sg->target[0]) {
    snprintf(h_target, sizeof h_target, "X-Amz-Target: %s", sg->target);
    hdrs[n++] = h_target;
  }
  if (token) {
    snprintf(h_tok, sizeof h_tok, "X-Amz-Security-Token: %s", token);
    hdrs[n++] = h_tok;
  }
  http_request_t hr = {.method = k->method, .url = k->url, .headers = hdrs, .nheaders = n,
                       .body = k->body, .body_len = k->body_len, .timeout_ms = k->timeout_ms};
  k->attempt++;
  k->t_attempt = loop_now_ms();
  k->signed_with_token = token != NULL;
  k->state = K_IN_FLIGHT;
  trace_request(k);
  k->http_id = http_send(k->c->http, &hr, on_http, k);
  wipe(h_tok, sizeof h_tok);
  wipe(h_auth, sizeof h_auth);
  if (!k->http_id) {
    snprintf(err, errlen, "cannot start the HTTP request");
    return -1;
  }
  return 0;
}

/* One attempt with the credentials the chain just delivered. */
static int sign_and_send(call_t *k, const creds_t *cr, char *err, size_t errlen) {
  signed_t sg;
  if (sign_attempt(k, cr, &sg, err, errlen) < 0) return -1;
  int rc = send_attempt(k, &sg, cr->session_token[0] ? cr->session_token : NULL, err, errlen);
  wipe(&sg, sizeof sg);
  return rc;
}

/* ---- waiting for the chain: region, then credentials ---- */

static void fail_with(call_t *k, const char *code, const char *msg) {
  aws_error_t e;
  memset(&e, 0, sizeof e);
  snprintf(e.code, sizeof e.code, "%s", code);
  snprintf(e.message, sizeof e.message, "%s", msg);
  fail(k, &e);
}

/* The next call in state st that began waiting before ticket `gen`. Callbacks run for one
 * call may start, cancel or finish others, so the walk restarts from the head each time;
 * calls that start waiting meanwhile carry a later ticket and wait for the next answer. */
static call_t *next_waiting(const aws_client_t *c, call_state_t st, uint64_t gen) {
  for (call_t *k = c->calls; k; k = k->next)
    if (k->state == st && k->ticket <= gen) return k;
  return NULL;
}

static void on_creds(void *ud, const creds_t *cr, const char *err);

/* Put k in line for credentials; one creds_get serves every waiting call. */
static int want_creds(call_t *k) {
  aws_client_t *c = k->c;
  k->state = K_WAIT_CREDS;
  k->ticket = c->ticket;
  if (c->creds_asked) return 0;
  if (creds_get(c->creds, on_creds, c) != 0) return -1;
  c->creds_asked = 1;
  return 0;
}

static void creds_arrived(call_t *k, const creds_t *cr, const char *err) {
  char msg[512];
  if (!cr) {
    fail_with(k, "CredentialsError", err);
    return;
  }
  if (sign_and_send(k, cr, msg, sizeof msg) < 0) fail_with(k, "ClientError", msg);
}

static void on_creds(void *ud, const creds_t *cr, const char *err) {
  aws_client_t *c = ud;
  uint64_t gen = c->ticket++;
  c->creds_asked = 0;
  for (call_t *k; (k = next_waiting(c, K_WAIT_CREDS, gen));) creds_arrived(k, cr, err);
}

static int set_region(call_t *k, const char *region, char *err, size_t errlen);
static void on_region(void *ud, const char *region, const char *err);

/* Put k in line for the client's region (resolved once through the chain). */
static int want_region(call_t *k) {
  aws_client_t *c = k->c;
  k->state = K_WAIT_REGION;
  k->ticket = c->ticket;
  if (c->region_asked) return 0;
  if (creds_region(c->creds, on_region, c) != 0) return -1;
  c->region_asked = 1;
  return 0;
}

static void region_arrived(call_t *k, const char *region, const char *err) {
  char msg[512];
  if (!region) {
    fail_with(k, "CredentialsError", err);
    return;
  }
  if (set_region(k, region, msg, sizeof msg) < 0) {
    fail_with(k, "ClientError", msg);
    return;
  }
  if (want_creds(k) < 0) fail_with(k, "ClientError", "out of memory");
}

static void on_region(void *ud, const char *region, const char *err) {
  aws_client_t *c = ud;
  uint64_t gen = c->ticket++;
  c->region_asked = 0;
  if (region) snprintf(c->region, sizeof c->region, "%s", region);
  for (call_t *k; (k = next_waiting(c, K_WAIT_REGION, gen));) region_arrived(k, region, err);
}

static void on_backoff(loop_t *loop, loop_timer_t *t, void *ud) {
  (void)loop;
  (void)t;
  call_t *k = ud;
  if (want_creds(k) < 0) fail_with(k, "ClientError", "out of memory");
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

/* A session token the service calls expired or unknown: drop the cached credentials and
 * retry once at once with freshly resolved ones. */
static int token_rejected(call_t *k, const aws_error_t *e) {
  static const char *const codes[] = {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId"};
  if (!k->signed_with_token || k->token_retried) return 0;
  for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
    if (strcmp(e->code, codes[i]) != 0) continue;
    creds_invalidate(k->c->creds);
    k->token_retried = 1;
    log_msg(LOG_WARN, "aws.token_rejected", "%s.%s: %s; resolving credentials again", k->svc->name,
            k->action, e->code);
    return 1;
  }
  return 0;
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
  else if (resp->status && token_rejected(k, &e)) delay = 0;
  else if (should_retry(k, &e)) delay = backoff_ms(k, &e);
  if (delay >= 0 && loop_timer_start(c->loop, &k->backoff, (uint64_t)delay) == 0) {
    k->state = K_BACKOFF;
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
  c->creds = creds_new(loop, c->http, NULL);
  if (!c->creds) {
    http_client_free(c->http);
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
  creds_free(c->creds); /* before the HTTP client its fetches use */
  http_client_free(c->http);
  free(c);
}

/* The region is known: endpoint, Host and full URL for every attempt. */
static int set_region(call_t *k, const char *region, char *err, size_t errlen) {
  if (strlen(region) >= sizeof k->region) {
    snprintf(err, errlen, "AWS region '%.80s' is too long", region);
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
  const char *p = k->rel_path ? k->rel_path : "/";
  char full[URL_MAX];
  int n = snprintf(full, sizeof full, "%s%s", bpath, p);
  if (n < 0 || (size_t)n >= sizeof full) goto toolong;
  free(k->path);
  if (!(k->path = strdup(full))) goto nomem;
  n = snprintf(k->url, sizeof k->url, "%.*s%s%s%s", (int)(strlen(base) - strlen(bpath)), base, full,
               k->query ? "?" : "", k->query ? k->query : "");
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
  k->rel_path = dup_or_null(call->path);
  k->body = malloc(call->body_len + 1);
  if (!k->action || !k->method || (call->query && !k->query) || (call->path && !k->rel_path) ||
      !k->ctype || !k->body) {
    snprintf(err, errlen, "out of memory");
    free_call(k);
    return NULL;
  }
  if (call->body_len) memcpy(k->body, call->body, call->body_len);
  k->body[call->body_len] = '\0';
  k->body_len = call->body_len;
  const char *region = call->region && *call->region ? call->region : c->region[0] ? c->region : NULL;
  if (region && set_region(k, region, err, errlen) < 0) {
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
  if ((k->region[0] ? want_creds(k) : want_region(k)) < 0) {
    snprintf(err, errlen, "out of memory");
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
creds_provider_t *aws_client_creds(aws_client_t *c) { return c ? c->creds : NULL; }
