/* One AWS request through its attempts under the standard retry mode; see retry.h. */
#include "aws/retry.h"

#include <openssl/rand.h>
#include <stdarg.h>
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
  int max_attempts, attempt, skew_retried, retried;
  int token_retried;       /* retried once after an expired/invalid session token */
  int signed_with_token;   /* the last attempt carried a session token */
  int last_cost;
  uint64_t http_id, t_attempt;
  loop_timer_t backoff;    /* also starts the first attempt from the loop */
  log_field_t ctx[AWS_LOG_CTX_MAX]; /* the caller's log context (keys and values owned) */
  size_t nctx;
};

/* ---- the log context: every aws.* line of the op carries the caller's fields ---- */

static void ctx_clear(aws_op_t *op) {
  for (size_t i = 0; i < op->nctx; i++) {
    free((char *)op->ctx[i].key);
    free((char *)op->ctx[i].val);
  }
  op->nctx = 0;
}

static int ctx_copy(aws_op_t *op, const aws_call_t *call, char *err, size_t errlen) {
  if (call->log_nctx > AWS_LOG_CTX_MAX) {
    snprintf(err, errlen, "%zu log context fields given; the limit is %d", call->log_nctx, AWS_LOG_CTX_MAX);
    return -1;
  }
  for (size_t i = 0; i < call->log_nctx; i++) {
    const log_field_t *f = &call->log_ctx[i];
    char *k = strdup(f->key ? f->key : ""), *v = f->val ? strdup(f->val) : NULL;
    if (!k || (f->val && !v)) {
      free(k);
      free(v);
      snprintf(err, errlen, "out of memory");
      return -1;
    }
    op->ctx[op->nctx++] = (log_field_t){k, v, f->type};
  }
  return 0;
}

/* Logs the n fields of f followed by the op's context; f has room for
 * n + AWS_LOG_CTX_MAX fields (declare it with OP_FIELDS). */
#define OP_FIELDS(n) ((n) + AWS_LOG_CTX_MAX)
static void op_log(const aws_op_t *op, log_level_t lvl, const char *event, log_field_t *f, size_t n) {
  memcpy(f + n, op->ctx, op->nctx * sizeof *f);
  log_fields(lvl, event, f, n + op->nctx);
}

static void op_msg(const aws_op_t *op, log_level_t lvl, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void op_msg(const aws_op_t *op, log_level_t lvl, const char *event, const char *fmt, ...) {
  if (lvl < log_get_level()) return;
  char *msg = NULL;
  va_list ap;
  va_start(ap, fmt);
  int n = vasprintf(&msg, fmt, ap);
  va_end(ap);
  if (n < 0) msg = NULL;
  log_field_t f[OP_FIELDS(1)] = {{"msg", msg ? msg : "(out of memory formatting the message)", LOG_T_STR}};
  op_log(op, lvl, event, f, 1);
  free(msg);
}

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
  log_field_t f[OP_FIELDS(6)] = {{"service", op->q.svc->name, LOG_T_STR}, {"action", op->q.action, LOG_T_STR},
                     {"method", op->q.method, LOG_T_STR},     {"url", op->q.url, LOG_T_STR},
                     {"attempt", attempt, LOG_T_NUM},         {"body_bytes", blen, LOG_T_NUM}};
  op_log(op, LOG_INFO, "aws.request", f, 6);
}

static void trace_response(const aws_op_t *op, const http_response_t *resp, const aws_error_t *e,
                           const char *reqid) {
  if (!op->x->trace) return;
  char attempt[16], status[16], ms[24], blen[24];
  snprintf(attempt, sizeof attempt, "%d", op->attempt);
  snprintf(status, sizeof status, "%d", resp->status);
  snprintf(ms, sizeof ms, "%llu", (unsigned long long)(loop_now_ms() - op->t_attempt));
  snprintf(blen, sizeof blen, "%zu", resp->body_len);
  log_field_t f[OP_FIELDS(9)] = {{"service", op->q.svc->name, LOG_T_STR}, {"action", op->q.action, LOG_T_STR},
                     {"status", status, LOG_T_NUM},           {"request_id", reqid ? reqid : "", LOG_T_STR},
                     {"duration_ms", ms, LOG_T_NUM},          {"attempt", attempt, LOG_T_NUM},
                     {"body_bytes", blen, LOG_T_NUM},         {"error", e ? e->code : "", LOG_T_STR},
                     {"message", e ? e->message : "", LOG_T_STR}};
  op_log(op, e ? LOG_WARN : LOG_INFO, "aws.response", f, e ? 9 : 7);
}

/* ---- finishing ---- */

static void op_free(aws_op_t *op) {
  loop_timer_stop(op->x->loop, &op->backoff);
  aws_request_clear(&op->q);
  ctx_clear(op);
  free(op);
}

/* The owner's done may free what op->x lives in (the client), so op is released after
 * it without touching op->x. */
static void finish(aws_op_t *op, const aws_result_t *r) {
  loop_timer_stop(op->x->loop, &op->backoff);
  op->ops->done(op->owner, r);
  aws_request_clear(&op->q);
  ctx_clear(op);
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
  op_msg(op, LOG_WARN, "aws.clock_skew", "server clock differs by %ld s; correcting signing time", diff);
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
    op_msg(op, LOG_WARN, "aws.token_rejected", "%s.%s: %s; resolving credentials again", op->q.svc->name,
           op->q.action, e->code);
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

static void retry_line(const aws_op_t *op, const aws_error_t *e, int delay) {
  char next[16], ms[16];
  snprintf(next, sizeof next, "%d", op->attempt + 1);
  snprintf(ms, sizeof ms, "%d", delay);
  log_field_t f[OP_FIELDS(5)] = {{"service", op->q.svc->name, LOG_T_STR}, {"action", op->q.action, LOG_T_STR},
                     {"error", e->code, LOG_T_STR},           {"attempt", next, LOG_T_NUM},
                     {"delay_ms", ms, LOG_T_NUM}};
  op_log(op, LOG_INFO, "aws.retry", f, 5);
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
      retry_line(op, &e, delay);
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
  if (ctx_copy(op, call, err, errlen) < 0) {
    ctx_clear(op);
    aws_request_clear(&op->q);
    free(op);
    return NULL;
  }
  op->x = x;
  op->ops = ops;
  op->owner = owner;
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
