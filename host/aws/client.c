/* The AWS client: the waiting room for the region and credentials, and the public API. */
#include "aws/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws/creds/fetch.h"

#define ROLE_REFRESH_MARGIN_S 300
#define ROLE_ARN_MAX 2048        /* IAM's limit on a role ARN */
#define ROLE_EXTERNAL_ID_MAX 1224 /* STS's limit on ExternalId */
#define ROLE_STS_TIMEOUT_MS 10000


/* What a call waits for: the client's region, then credentials before each attempt (and,
 * for a call through a role, that role's AssumeRole). K_RUNNING: in flight or in a
 * backoff (aws/retry.c has it). */
typedef enum { K_WAIT_REGION, K_WAIT_CREDS, K_WAIT_ROLE, K_RUNNING, K_NSTATES } call_state_t;

/* The credentials of one (role ARN, external id), assumed with the chain's. */
typedef struct role {
  struct aws_client *c;
  char arn[ROLE_ARN_MAX];
  char external_id[ROLE_EXTERNAL_ID_MAX];
  creds_t cached;
  int has;                 /* cached holds credentials */
  creds_fetch_t *fetch;    /* AssumeRole in flight */
  struct role *next;
} role_t;

typedef struct call {
  aws_client_t *c;
  uint64_t id;
  call_state_t state;
  uint64_t ticket;         /* when it began waiting (aws_client.ticket) */
  aws_op_t *op;
  role_t *role;            /* NULL: the chain's credentials */
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
  role_t *roles;
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

static void attempt_with(call_t *k, const creds_t *cr) {
  sigv4_credentials sc = {cr->access_key_id, cr->secret_access_key, cr->session_token};
  aws_op_attempt(k->op, &sc);
}

/* ---- roles: AssumeRole signed with the chain's credentials, cached per role ---- */

static int role_fresh(const role_t *r, int64_t margin) {
  return r->has && (r->cached.expiration == 0 || r->cached.expiration - (int64_t)time(NULL) > margin);
}

static role_t *role_of(aws_client_t *c, const char *arn, const char *external_id, char *err, size_t errlen) {
  const char *ext = external_id ? external_id : "";
  for (role_t *r = c->roles; r; r = r->next)
    if (!strcmp(r->arn, arn) && !strcmp(r->external_id, ext)) return r;
  if (strlen(arn) >= ROLE_ARN_MAX || strlen(ext) >= ROLE_EXTERNAL_ID_MAX) {
    snprintf(err, errlen, "role ARN or external id too long (limits %d and %d bytes)", ROLE_ARN_MAX - 1,
             ROLE_EXTERNAL_ID_MAX - 1);
    return NULL;
  }
  role_t *r = calloc(1, sizeof *r);
  if (!r) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  r->c = c;
  snprintf(r->arn, sizeof r->arn, "%s", arn);
  snprintf(r->external_id, sizeof r->external_id, "%s", ext);
  r->next = c->roles;
  c->roles = r;
  return r;
}

static void role_free(role_t *r) {
  creds_fetch_cancel(r->fetch);
  creds_wipe(&r->cached);
  free(r);
}

static call_t *next_role_waiting(const aws_client_t *c, const role_t *r, uint64_t gen) {
  for (call_t *k = c->calls; k; k = k->next)
    if (k->state == K_WAIT_ROLE && k->role == r && k->ticket <= gen) return k;
  return NULL;
}

/* The AssumeRole answer, for every call waiting for this role. Credentials that failed
 * to refresh but have not expired yet still serve. */
static void on_role(void *ud, const creds_t *cr, const char *err) {
  role_t *r = ud;
  aws_client_t *c = r->c;
  r->fetch = NULL;
  if (cr) {
    r->cached = *cr;
    r->has = 1;
  }
  int usable = cr || role_fresh(r, 0);
  uint64_t gen = c->ticket++;
  for (call_t *k; (k = next_role_waiting(c, r, gen));) {
    k->state = K_RUNNING;
    if (usable) attempt_with(k, &r->cached);
    else aws_op_fail(k->op, "CredentialsError", err);
  }
}

static void role_creds(call_t *k, const creds_t *base) {
  role_t *r = k->role;
  aws_client_t *c = k->c;
  if (role_fresh(r, ROLE_REFRESH_MARGIN_S)) {
    attempt_with(k, &r->cached);
    return;
  }
  k->state = K_WAIT_ROLE;
  k->ticket = c->ticket;
  if (r->fetch) return;
  char err[CREDS_ERR_MAX];
  fetch_env_t e = {c->ctx.loop, c->ctx.http, 0, ROLE_STS_TIMEOUT_MS, c->region[0] ? c->region : NULL, &c->ctx};
  plan_role_t pr = {.role_arn = r->arn, .external_id = r->external_id[0] ? r->external_id : NULL};
  r->fetch = creds_fetch_assume_role(&e, base, &pr, on_role, r, err, sizeof err);
  if (!r->fetch) {
    k->state = K_RUNNING;
    aws_op_fail(k->op, "CredentialsError", err);
  }
}

static void creds_arrived(call_t *k, const creds_t *cr, const char *err) {
  if (!cr) {
    aws_op_fail(k->op, "CredentialsError", err);
    return;
  }
  if (k->role) role_creds(k, cr);
  else attempt_with(k, cr);
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
  if (k->role) {
    k->role->has = 0;
    creds_wipe(&k->role->cached);
  } else {
    creds_invalidate(k->c->creds);
  }
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
  while (c->roles) {
    role_t *r = c->roles;
    c->roles = r->next;
    role_free(r);
  }
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
  if (cl.role_arn && *cl.role_arn && !(k->role = role_of(c, cl.role_arn, cl.external_id, err, errlen))) {
    free(k);
    return 0;
  }
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
