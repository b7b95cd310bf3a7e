/* One AWS request through its attempts under the standard retry mode; see retry.h. */
#include "aws/retry.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/metrics.h"
#include "util/timefmt.h"

struct aws_op {
  aws_ctx_t *x;
  aws_request_t q;
  const aws_op_ops_t *ops;
  void *owner;
  char name[96];           /* "service.Action" for logs */
  int max_attempts, attempt, skew_retried, retried;
  int token_retried;       /* retried once after an expired/invalid session token */
  int signed_with_token;   /* the last attempt carried a session token */
  int last_cost;
  uint64_t http_id, t_attempt;
  loop_timer_t backoff;    /* also starts the first attempt from the loop */
};

static int env_flag(const char *name) {
  const char *v = getenv(name);
  return v && *v && strcmp(v, "0") != 0;
}

void aws_ctx_init(aws_ctx_t *x, loop_t *loop, http_client_t *http) {
  memset(x, 0, sizeof *x);
  x->loop = loop;
  x->http = http;
  x->tokens = AWS_RETRY_QUOTA;
  x->trace = env_flag("ROTATOR_TRACE_AWS");
  /* Tests only: flips one bit of the secret key so an emulator that really checks
   * signatures rejects every request. Read once here, not on every attempt. */
  const char *c = getenv("ROTATOR_TEST_CORRUPT_SECRET");
  x->corrupt_secret = c && strcmp(c, "1") == 0;
}

static int env_attempts(void) {
  const char *v = getenv("AWS_MAX_ATTEMPTS");
  if (!v || !*v) return AWS_DEFAULT_MAX_ATTEMPTS;
  char *end;
  long n = strtol(v, &end, 10);
  return *end || n < 1 || n > 100 ? AWS_DEFAULT_MAX_ATTEMPTS : (int)n;
}

/* ---- tracing ---- */

static void trace_request(const aws_op_t *op) {
  if (!op->x->trace) return;
  char attempt[16], blen[24];
  snprintf(attempt, sizeof attempt, "%d", op->attempt);
  snprintf(blen, sizeof blen, "%zu", op->q.body_len);
  log_kv_t kv[] = {{"service", op->q.svc->name}, {"action", op->q.action}, {"method", op->q.method},
                   {"url", op->q.url}, {"attempt", attempt}, {"body_bytes", blen}};
  log_event(LOG_INFO, "aws.request", kv, 6);
}

static void trace_response(const aws_op_t *op, const http_response_t *resp, const aws_error_t *e,
                           const char *reqid) {
  if (!op->x->trace) return;
  char attempt[16], status[16], ms[24], blen[24];
  snprintf(attempt, sizeof attempt, "%d", op->attempt);
  snprintf(status, sizeof status, "%d", resp->status);
  snprintf(ms, sizeof ms, "%llu", (unsigned long long)(loop_now_ms() - op->t_attempt));
  snprintf(blen, sizeof blen, "%zu", resp->body_len);
  log_kv_t kv[] = {{"service", op->q.svc->name}, {"action", op->q.action}, {"status", status},
                   {"request_id", reqid ? reqid : ""}, {"duration_ms", ms},
                   {"attempt", attempt}, {"body_bytes", blen},
                   {"error", e ? e->code : ""}, {"message", e ? e->message : ""}};
  log_event(e ? LOG_WARN : LOG_INFO, "aws.response", kv, e ? 9 : 7);
}

/* ---- finishing ---- */

static void op_free(aws_op_t *op) {
  loop_timer_stop(op->x->loop, &op->backoff);
  aws_request_clear(&op->q);
  free(op);
}

/* The owner's done may free what op->x lives in (the client), so op is released after
 * it without touching op->x. */
static void finish(aws_op_t *op, const aws_result_t *r) {
  loop_timer_stop(op->x->loop, &op->backoff);
  op->ops->done(op->owner, r);
  aws_request_clear(&op->q);
  free(op);
}

static void fail_resp(aws_op_t *op, const aws_error_t *e, const http_response_t *resp) {
  aws_result_t r = {.ok = 0, .status = e->status, .body = resp ? resp->body : "",
                    .body_len = resp ? resp->body_len : 0, .request_id = e->request_id,
                    .attempts = op->attempt, .err = e};
  finish(op, &r);
}

void aws_op_fail(aws_op_t *op, const char *code, const char *msg) {
  aws_error_t e;
  memset(&e, 0, sizeof e);
  snprintf(e.code, sizeof e.code, "%s", code);
  snprintf(e.message, sizeof e.message, "%s", msg);
  fail_resp(op, &e, NULL);
}

/* ---- the policy ---- */

/* Clock skew: the error says so, or the server's Date is far from ours. Returns 1 if the
 * offset was updated and the call should be retried at once. */
static int handle_skew(aws_op_t *op, const http_response_t *resp, const aws_error_t *e) {
  char dh[64];
  int64_t server;
  if (op->skew_retried || !http_header(resp, "Date", dh, sizeof dh)) return 0;
  if (tf_parse_http_date(dh, strlen(dh), &server) != 0) return 0;
  long diff = (long)(server - time(NULL));
  long off_now = diff - op->x->skew_s;
  if (!e->skew && (off_now < AWS_SKEW_LIMIT_S && off_now > -AWS_SKEW_LIMIT_S)) return 0;
  if (off_now < 60 && off_now > -60) return 0; /* already corrected: not our clock */
  op->x->skew_s = diff;
  op->skew_retried = 1;
  log_msg(LOG_WARN, "aws.clock_skew", "server clock differs by %ld s; correcting signing time", diff);
  return 1;
}

/* Full jitter: uniform in [0, min(cap, base * 2^attempt)), from OpenSSL's RNG. */
static int backoff_ms(const aws_op_t *op, const aws_error_t *e) {
  double base = e->throttling ? AWS_THROTTLE_BACKOFF_BASE_MS : AWS_BACKOFF_BASE_MS;
  double cap = base * (double)(1u << (op->attempt < 16 ? op->attempt : 16));
  if (cap > AWS_MAX_BACKOFF_MS) cap = AWS_MAX_BACKOFF_MS;
  uint32_t r;
  if (RAND_bytes((unsigned char *)&r, sizeof r) != 1) return (int)(cap / 2);
  return (int)((double)r / 4294967296.0 * cap);
}

static int should_retry(aws_op_t *op, aws_error_t *e) {
  if (!e->retryable || op->attempt >= op->max_attempts) return 0;
  int cost = e->timeout || e->status == 0 ? AWS_TIMEOUT_RETRY_COST : AWS_RETRY_COST;
  if (op->x->tokens < cost) {
    size_t l = strlen(e->message);
    snprintf(e->message + l, sizeof e->message - l, " (retry quota exhausted)");
    return 0;
  }
  op->x->tokens -= cost;
  op->last_cost = cost;
  op->retried = 1;
  return 1;
}

/* A session token the service calls expired or unknown: the owner drops its cached
 * credentials and the op retries once at once with freshly resolved ones. */
static int token_rejected(aws_op_t *op, const aws_error_t *e) {
  static const char *const codes[] = {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId"};
  if (!op->ops->creds_rejected || !op->signed_with_token || op->token_retried) return 0;
  for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
    if (strcmp(e->code, codes[i]) != 0) continue;
    op->ops->creds_rejected(op->owner);
    op->token_retried = 1;
    log_msg(LOG_WARN, "aws.token_rejected", "%s: %s; resolving credentials again", op->name, e->code);
    return 1;
  }
  return 0;
}

/* The delay before the next attempt after error e, or -1 for no retry. */
static int retry_delay(aws_op_t *op, const http_response_t *resp, aws_error_t *e) {
  if (resp->status && handle_skew(op, resp, e)) return 0;
  if (resp->status && token_rejected(op, e)) return 0;
  if (should_retry(op, e)) return backoff_ms(op, e);
  return -1;
}

/* ---- attempts ---- */

static void succeeded(aws_op_t *op, const http_response_t *resp) {
  char reqid[128] = "";
  if (!http_header(resp, "x-amzn-RequestId", reqid, sizeof reqid))
    http_header(resp, "x-amz-request-id", reqid, sizeof reqid);
  trace_response(op, resp, NULL, reqid);
  op->x->tokens += op->retried ? op->last_cost : AWS_NO_RETRY_INCREMENT;
  if (op->x->tokens > AWS_RETRY_QUOTA) op->x->tokens = AWS_RETRY_QUOTA;
  aws_result_t r = {.ok = 1, .status = resp->status, .body = resp->body, .body_len = resp->body_len,
                    .request_id = reqid, .attempts = op->attempt};
  finish(op, &r);
}

static void on_http(void *ud, const http_response_t *resp) {
  aws_op_t *op = ud;
  op->http_id = 0;
  if (resp->status >= 200 && resp->status < 300) {
    succeeded(op, resp);
    return;
  }
  aws_error_t e;
  aws_parse_error(op->q.svc->protocol, resp, &e);
  trace_response(op, resp, &e, e.request_id);
  const char *labels[] = {op->q.svc->name, op->q.action};
  if (e.throttling) metrics_count("rotator_aws_throttles_total", labels, 1);
  int delay = retry_delay(op, resp, &e);
  if (delay >= 0 && loop_timer_start(op->x->loop, &op->backoff, (uint64_t)delay) == 0) {
    metrics_count("rotator_aws_retries_total", labels, 1);
    if (op->x->trace)
      log_msg(LOG_INFO, "aws.retry", "%s: %s; attempt %d in %d ms", op->name, e.code, op->attempt + 1, delay);
    return;
  }
  fail_resp(op, &e, resp);
}

void aws_op_attempt(aws_op_t *op, const sigv4_credentials *cr) {
  char err[512];
  op->attempt++;
  op->t_attempt = loop_now_ms();
  op->signed_with_token = cr && cr->session_token && cr->session_token[0];
  trace_request(op);
  time_t now = time(NULL) + op->x->skew_s;
  op->http_id = aws_request_send(op->x->http, &op->q, cr, now, op->x->corrupt_secret, on_http, op,
                                 err, sizeof err);
  if (!op->http_id) aws_op_fail(op, "ClientError", err);
}

static void on_timer(loop_t *loop, loop_timer_t *t, void *ud) {
  (void)loop;
  (void)t;
  aws_op_t *op = ud;
  if (op->ops->need_creds(op->owner, op) < 0) aws_op_fail(op, "ClientError", "out of memory");
}

/* ---- lifecycle ---- */

aws_op_t *aws_op_new(aws_ctx_t *x, const aws_call_t *call, const aws_op_ops_t *ops, void *owner,
                     char *err, size_t errlen) {
  aws_op_t *op = calloc(1, sizeof *op);
  if (!op) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  if (aws_request_init(&op->q, call, err, errlen) < 0) {
    free(op);
    return NULL;
  }
  op->x = x;
  op->ops = ops;
  op->owner = owner;
  snprintf(op->name, sizeof op->name, "%s.%.60s", op->q.svc->name, op->q.action);
  op->max_attempts = call->max_attempts > 0 ? call->max_attempts : env_attempts();
  loop_timer_init(&op->backoff, on_timer, op);
  if (call->region && *call->region && aws_op_set_region(op, call->region, err, errlen) < 0) {
    op_free(op);
    return NULL;
  }
  return op;
}

int aws_op_set_region(aws_op_t *op, const char *region, char *err, size_t errlen) {
  return aws_request_set_region(&op->q, region, err, errlen);
}

int aws_op_has_region(const aws_op_t *op) { return op->q.url != NULL; }
void aws_op_set_max_response(aws_op_t *op, size_t bytes) { op->q.max_response_bytes = bytes; }
int aws_op_start(aws_op_t *op) { return loop_timer_start(op->x->loop, &op->backoff, 0); }

void aws_op_cancel(aws_op_t *op) {
  if (!op) return;
  if (op->http_id) http_cancel(op->x->http, op->http_id);
  op_free(op);
}

const char *aws_op_url(const aws_op_t *op) { return op->q.url ? op->q.url : ""; }
