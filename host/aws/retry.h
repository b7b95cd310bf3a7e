/* The AWS SDKs' "standard" retry mode around aws/request.h: up to max attempts,
 * exponential backoff with full jitter, a retry quota (token bucket) shared by every
 * request of a client, clock-skew correction from the server's Date header, and one
 * retry with fresh credentials when the service rejects a session token.
 *
 * An aws_op_t is one request through its attempts. Before each attempt it asks its
 * owner for credentials (ops->need_creds); the owner answers, now or later, with
 * aws_op_attempt() (or aws_op_fail()). The first attempt starts from the loop, never
 * inside aws_op_start(). */
#ifndef ROTATOR_AWS_RETRY_H
#define ROTATOR_AWS_RETRY_H
#include <stddef.h>
#include <stdint.h>

#include "aws/request.h"
#include "core/loop.h"
#include "net/http.h"

#define AWS_DEFAULT_MAX_ATTEMPTS 3
#define AWS_RETRY_QUOTA 500      /* token bucket capacity */
#define AWS_RETRY_COST 5
#define AWS_TIMEOUT_RETRY_COST 10
#define AWS_NO_RETRY_INCREMENT 1
#define AWS_BACKOFF_BASE_MS 100
#define AWS_THROTTLE_BACKOFF_BASE_MS 500
#define AWS_MAX_BACKOFF_MS 20000
#define AWS_SKEW_LIMIT_S 240     /* a server Date further off than this means clock skew */

/* What every request of one client shares (the credential chain's STS calls included). */
typedef struct aws_ctx {
  loop_t *loop;
  http_client_t *http;
  int tokens;              /* retry quota left */
  long skew_s;             /* seconds added to local time when signing */
  int trace;               /* ROTATOR_TRACE_AWS: log every request and response */
  int corrupt_secret;      /* ROTATOR_TEST_CORRUPT_SECRET=1 (tests): sign with a wrong key */
} aws_ctx_t;

/* Reads ROTATOR_TRACE_AWS and ROTATOR_TEST_CORRUPT_SECRET once. */
void aws_ctx_init(aws_ctx_t *x, loop_t *loop, http_client_t *http);

typedef struct {
  uint64_t id;              /* the call's id (aws_client.h), 0 inside the chain */
  int ok;
  int status;
  const char *body;         /* response body, also on errors ("" when there was none) */
  size_t body_len;
  const char *request_id;
  int attempts;
  const aws_error_t *err;   /* when !ok */
} aws_result_t;

typedef struct aws_op aws_op_t;

typedef struct {
  /* Before every attempt. 0, or -1 if the owner cannot even ask (the op then fails). */
  int (*need_creds)(void *owner, aws_op_t *op);
  /* The service rejected the session token the op signed with; the owner drops its
   * cached credentials. NULL: no such retry. */
  void (*creds_rejected)(void *owner);
  /* The op finished; it is freed right after. */
  void (*done)(void *owner, const aws_result_t *r);
} aws_op_ops_t;

/* NULL with err on failure (unknown service, out of memory). The region may be given
 * later with aws_op_set_region(), before aws_op_start(). */
aws_op_t *aws_op_new(aws_ctx_t *x, const aws_call_t *call, const aws_op_ops_t *ops, void *owner,
                     char *err, size_t errlen);
int aws_op_set_region(aws_op_t *op, const char *region, char *err, size_t errlen);
int aws_op_has_region(const aws_op_t *op);
void aws_op_set_max_response(aws_op_t *op, size_t bytes);
int aws_op_start(aws_op_t *op);  /* 0, or -1 (the loop could not arm a timer) */
/* One attempt with these credentials (NULL: unsigned). */
void aws_op_attempt(aws_op_t *op, const sigv4_credentials *cr);
/* Finish with this error (e.g. the chain had no credentials). */
void aws_op_fail(aws_op_t *op, const char *code, const char *msg);
void aws_op_cancel(aws_op_t *op);  /* frees; done is not called */
const char *aws_op_url(const aws_op_t *op);

#endif
