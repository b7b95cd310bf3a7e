/* The AWS client: the waiting room for the region and credentials, and the public API. */
#include "aws/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* What a call waits for: the client's region, then credentials before each attempt.
 * K_RUNNING: in flight or in a backoff (aws/retry.c has it). */
typedef enum { K_WAIT_REGION, K_WAIT_CREDS, K_RUNNING, K_NSTATES } call_state_t;

typedef struct call {
  aws_client_t *c;
  uint64_t id;
  call_state_t state;
  uint64_t ticket;         /* when it began waiting (aws_client.ticket) */
  aws_op_t *op;
  aws_done_fn done;
  void *ud;
  struct call *prev, *next;
} call_t;

struct aws_client {
  aws_ctx_t ctx;
  creds_provider_t *creds;
  int asked[K_NSTATES];    /* one chain request in flight serves every call waiting in that state */
  char region[CREDS_REGION_MAX]; /* resolved once through the chain, then cached */
  uint64_t ticket;         /* bumped when the chain answers; see next_waiting */
  call_t *calls;
  size_t pending;
  uint64_t next_id;
};

static void unlink_call(aws_client_t *c, call_t *k) {
  if (k->prev) k->prev->next = k->next;
  else c->calls = k->next;
  if (k->next) k->next->prev = k->prev;
  c->pending--;
}

static void drop_call(aws_client_t *c, call_t *k) {
  unlink_call(c, k);
  aws_op_cancel(k->op);
  free(k);
}

/* ---- the waiting room: one chain request answers every call waiting for it ---- */

static void on_creds(void *ud, const creds_t *cr, const char *err);
static void on_region(void *ud, const char *region, const char *err);

static int wait_for(call_t *k, call_state_t st) {
  aws_client_t *c = k->c;
  k->state = st;
  k->ticket = c->ticket;
  if (c->asked[st]) return 0;
  int rc = st == K_WAIT_REGION ? creds_region(c->creds, on_region, c) : creds_get(c->creds, on_creds, c);
  if (rc != 0) return -1;
  c->asked[st] = 1;
  return 0;
}

/* The next call in state st that began waiting before ticket `gen`. Callbacks run for one
 * call may start, cancel or finish others, so the walk restarts from the head each time;
 * calls that start waiting meanwhile carry a later ticket and wait for the next answer. */
static call_t *next_waiting(const aws_client_t *c, call_state_t st, uint64_t gen) {
  for (call_t *k = c->calls; k; k = k->next)
    if (k->state == st && k->ticket <= gen) return k;
  return NULL;
}

static void region_arrived(call_t *k, const char *region, const char *err) {
  char msg[512];
  if (!region) aws_op_fail(k->op, "CredentialsError", err);
  else if (aws_op_set_region(k->op, region, msg, sizeof msg) < 0) aws_op_fail(k->op, "ClientError", msg);
  else if (aws_op_start(k->op) < 0) aws_op_fail(k->op, "ClientError", "cannot arm a loop timer");
}

static void creds_arrived(call_t *k, const creds_t *cr, const char *err) {
  if (!cr) {
    aws_op_fail(k->op, "CredentialsError", err);
    return;
  }
  sigv4_credentials sc = {cr->access_key_id, cr->secret_access_key, cr->session_token};
  aws_op_attempt(k->op, &sc);
}

/* Every call waiting in st before this answer gets it (answer: creds_t or region). */
static void answered(aws_client_t *c, call_state_t st, const void *answer, const char *err) {
  uint64_t gen = c->ticket++;
  c->asked[st] = 0;
  for (call_t *k; (k = next_waiting(c, st, gen));) {
    k->state = K_RUNNING;
    if (st == K_WAIT_REGION) region_arrived(k, answer, err);
    else creds_arrived(k, answer, err);
  }
}

static void on_creds(void *ud, const creds_t *cr, const char *err) { answered(ud, K_WAIT_CREDS, cr, err); }

static void on_region(void *ud, const char *region, const char *err) {
  aws_client_t *c = ud;
  if (region) snprintf(c->region, sizeof c->region, "%s", region);
  answered(c, K_WAIT_REGION, region, err);
}

/* ---- aws/retry hooks ---- */

static int need_creds(void *owner, aws_op_t *op) {
  (void)op;
  return wait_for(owner, K_WAIT_CREDS);
}

static void creds_rejected(void *owner) {
  call_t *k = owner;
  creds_invalidate(k->c->creds);
}

static void op_done(void *owner, const aws_result_t *r) {
  call_t *k = owner;
  aws_result_t out = *r;
  out.id = k->id;
  unlink_call(k->c, k);
  if (k->done) k->done(k->ud, &out);
  free(k);
}

static const aws_op_ops_t CALL_OPS = {need_creds, creds_rejected, op_done};

/* ---- public API ---- */

aws_client_t *aws_client_new(loop_t *loop) {
  aws_client_t *c = calloc(1, sizeof *c);
  http_client_t *http = c ? http_client_new(loop) : NULL;
  if (!http) {
    free(c);
    return NULL;
  }
  aws_ctx_init(&c->ctx, loop, http);
  creds_options_t opt = {.aws = &c->ctx};
  c->creds = creds_new(loop, http, &opt);
  if (!c->creds) {
    http_client_free(http);
    free(c);
    return NULL;
  }
  c->next_id = 1;
  return c;
}

void aws_client_free(aws_client_t *c) {
  if (!c) return;
  while (c->calls) drop_call(c, c->calls);
  creds_free(c->creds); /* before the HTTP client its fetches use */
  http_client_free(c->ctx.http);
  free(c);
}

uint64_t aws_call_start(aws_client_t *c, const aws_call_t *call, aws_done_fn done, void *ud,
                        char *err, size_t errlen) {
  if (!c || !call || !call->action) {
    snprintf(err, errlen, "bad arguments");
    return 0;
  }
  call_t *k = calloc(1, sizeof *k);
  if (!k) {
    snprintf(err, errlen, "out of memory");
    return 0;
  }
  aws_call_t cl = *call;
  if (!(cl.region && *cl.region) && c->region[0]) cl.region = c->region;
  if (!(k->op = aws_op_new(&c->ctx, &cl, &CALL_OPS, k, err, errlen))) {
    free(k);
    return 0;
  }
  k->c = c;
  k->done = done;
  k->ud = ud;
  k->id = c->next_id++;
  k->state = K_RUNNING;
  k->next = c->calls;
  if (c->calls) c->calls->prev = k;
  c->calls = k;
  c->pending++;
  int rc = aws_op_has_region(k->op) ? aws_op_start(k->op) : wait_for(k, K_WAIT_REGION);
  if (rc < 0) {
    snprintf(err, errlen, "out of memory");
    drop_call(c, k);
    return 0;
  }
  return k->id;
}

int aws_call_cancel(aws_client_t *c, uint64_t id) {
  for (call_t *k = c ? c->calls : NULL; k; k = k->next) {
    if (k->id != id) continue;
    drop_call(c, k);
    return 0;
  }
  return -1;
}

size_t aws_call_pending(const aws_client_t *c) { return c ? c->pending : 0; }
long aws_clock_offset(const aws_client_t *c) { return c->ctx.skew_s; }
int aws_retry_tokens(const aws_client_t *c) { return c->ctx.tokens; }
creds_provider_t *aws_client_creds(aws_client_t *c) { return c ? c->creds : NULL; }
