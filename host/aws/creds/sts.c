/* STS AssumeRole (signed with the source credentials) and AssumeRoleWithWebIdentity
 * (unsigned), through the same request path as every AWS call (aws/retry.h): endpoint
 * resolution, retries and clock-skew correction are the client's. */
#include <openssl/crypto.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws/creds/fetch.h"

/* A web identity token (a JWT) may be long; the limit only bounds a runaway file. */
#define WEB_TOKEN_MAX (64u << 10)

typedef struct {
  creds_fetch_t *f;
  creds_t src;             /* AssumeRole: the credentials that sign it */
  int has_src;
} sts_t;

static int sts_body(const plan_role_t *role, const char *action, const char *web_token, buf_t *b) {
  char session[80], dur[16];
  if (role->session_name) snprintf(session, sizeof session, "%s", role->session_name);
  else snprintf(session, sizeof session, "rotator-%lld", (long long)time(NULL));
  if (url_form_add(b, "Action", action) || url_form_add(b, "Version", "2011-06-15") ||
      url_form_add(b, "RoleArn", role->role_arn) || url_form_add(b, "RoleSessionName", session))
    return -1;
  if (role->external_id && url_form_add(b, "ExternalId", role->external_id)) return -1;
  if (role->duration_s) {
    snprintf(dur, sizeof dur, "%d", role->duration_s);
    if (url_form_add(b, "DurationSeconds", dur)) return -1;
  }
  if (web_token && url_form_add(b, "WebIdentityToken", web_token)) return -1;
  return 0;
}

static int need_creds(void *owner, aws_op_t *op) {
  sts_t *s = owner;
  sigv4_credentials sc = {s->src.access_key_id, s->src.secret_access_key, s->src.session_token};
  aws_op_attempt(op, s->has_src ? &sc : NULL);
  return 0;
}

static void sts_done(void *owner, const aws_result_t *r) {
  sts_t *s = owner;
  creds_fetch_t *f = s->f;
  creds_t c;
  char why[160];
  f->op = NULL; /* freed by aws/retry after this returns */
  OPENSSL_cleanse(&s->src, sizeof s->src);
  free(s);
  if (!r->ok && r->err->status == 0)
    fetch_fail(f, "STS %s for %s at %s failed: %s", f->source, f->role, f->base, r->err->message);
  else if (!r->ok)
    fetch_fail(f, "STS %s for %s answered HTTP %d %s%s%s", f->source, f->role, r->status, r->err->code,
               r->err->message[0] ? ": " : "", r->err->message);
  else if (creds_from_sts_xml(r->body, r->body_len, &c, why, sizeof why) != 0)
    fetch_fail(f, "STS %s for %s: %s", f->source, f->role, why);
  else {
    snprintf(c.source, sizeof c.source, "%s", f->source);
    fetch_finish(f, &c, NULL);
  }
  creds_wipe(&c);
}

static const aws_op_ops_t STS_OPS = {need_creds, NULL, sts_done};

/* The op for action with body b; its region is the chain's, us-east-1 without one. */
static int sts_op(const fetch_env_t *e, sts_t *s, const char *action, const buf_t *b, char *err, size_t errlen) {
  aws_call_t call = {.service = "sts", .action = action, .region = e->region && *e->region ? e->region : "us-east-1",
                     .body = b->data, .body_len = b->len, .timeout_ms = e->sts_timeout_ms};
  char why[CREDS_ERR_MAX];
  s->f->op = aws_op_new(e->aws, &call, &STS_OPS, s, why, sizeof why);
  if (!s->f->op) {
    fetch_errf(err, errlen, "cannot call STS %s: %s", action, why);
    return -1;
  }
  aws_op_set_max_response(s->f->op, CREDS_MAX_BODY);
  snprintf(s->f->base, sizeof s->f->base, "%s", aws_op_url(s->f->op));
  if (aws_op_start(s->f->op) != 0) {
    fetch_errf(err, errlen, "cannot start STS %s: no loop timer", action);
    return -1;
  }
  return 0;
}

static creds_fetch_t *sts_start(const fetch_env_t *e, const creds_t *src, const plan_role_t *role,
                                const char *web_token, creds_fetch_fn fn, void *ud, char *err, size_t errlen) {
  const char *action = src ? "AssumeRole" : "AssumeRoleWithWebIdentity";
  creds_fetch_t *f = fetch_new(e, e->sts_timeout_ms, src ? "assume-role" : "web-identity", fn, ud);
  sts_t *s = calloc(1, sizeof *s);
  buf_t b = {0};
  if (!f || !s || sts_body(role, action, web_token, &b) != 0) {
    fetch_errf(err, errlen, "out of memory");
    goto fail;
  }
  snprintf(f->role, sizeof f->role, "%s", role->role_arn);
  s->f = f;
  if (src) {
    s->src = *src;
    s->has_src = 1;
  }
  if (sts_op(e, s, action, &b, err, errlen) != 0) goto fail;
  OPENSSL_cleanse(b.data, b.cap);
  buf_free(&b);
  return f;
fail:
  if (b.data) OPENSSL_cleanse(b.data, b.cap);
  buf_free(&b);
  if (s) OPENSSL_cleanse(&s->src, sizeof s->src);
  free(s);
  if (f) creds_fetch_cancel(f);
  return NULL;
}

creds_fetch_t *creds_fetch_assume_role(const fetch_env_t *e, const creds_t *src, const plan_role_t *role,
                                       creds_fetch_fn fn, void *ud, char *err, size_t errlen) {
  return sts_start(e, src, role, NULL, fn, ud, err, errlen);
}

creds_fetch_t *creds_fetch_web_identity(const fetch_env_t *e, const char *token_file, const plan_role_t *role,
                                        creds_fetch_fn fn, void *ud, char *err, size_t errlen) {
  char *tok = fetch_read_token(token_file, "the web identity token file", WEB_TOKEN_MAX, err, errlen);
  if (!tok) return NULL;
  creds_fetch_t *f = sts_start(e, NULL, role, tok, fn, ud, err, errlen);
  OPENSSL_cleanse(tok, strlen(tok));
  free(tok);
  return f;
}
