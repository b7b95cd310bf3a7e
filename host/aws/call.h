/* One AWS API call: endpoint, protocol headers, SigV4 signing, error parsing, and the SDKs'
 * "standard" retry mode (max attempts, exponential backoff with full jitter, a retry quota
 * token bucket, clock-skew correction), all on the host loop. The request body is
 * serialised by the caller (scripts/aws/init.lua); this layer does not look inside it. */
#ifndef ROTATOR_AWS_CALL_H
#define ROTATOR_AWS_CALL_H
#include <stddef.h>
#include <stdint.h>

#include "aws/endpoint.h"
#include "aws/creds/creds.h"
#include "net/http.h"
#include "core/loop.h"

#define AWS_DEFAULT_MAX_ATTEMPTS 3
#define AWS_RETRY_QUOTA 500      /* token bucket capacity */
#define AWS_RETRY_COST 5
#define AWS_TIMEOUT_RETRY_COST 10
#define AWS_NO_RETRY_INCREMENT 1
#define AWS_BACKOFF_BASE_MS 100
#define AWS_THROTTLE_BACKOFF_BASE_MS 500
#define AWS_MAX_BACKOFF_MS 20000
#define AWS_SKEW_LIMIT_S 240     /* a server Date further off than this means clock skew */

typedef struct aws_client aws_client_t;

typedef struct {
  const char *service;      /* "dynamodb", "ssm", "sqs", "backup", "sts", "sns" */
  const char *action;       /* "DescribeTable" */
  const char *region;       /* NULL: resolved once per client through the chain (creds_region) */
  const char *method;       /* NULL: POST */
  const char *path;         /* NULL: "/"; restJson1 callers pass the expanded URI */
  const char *query;        /* without '?', or NULL */
  const char *body;
  size_t body_len;
  const char *content_type; /* NULL: the protocol's */
  long timeout_ms;          /* per attempt; 0: http default */
  int max_attempts;         /* 0: AWS_MAX_ATTEMPTS, then 3 */
} aws_call_t;

typedef struct {
  char code[128];
  char message[512];
  char request_id[128];
  int status;               /* 0 for transport errors */
  int retryable;
  int throttling;
  int timeout;              /* transport timeout */
  int skew;                 /* looks like clock skew */
} aws_error_t;

typedef struct {
  uint64_t id;              /* the call's id, as aws_call_start returned */
  int ok;
  int status;
  const char *body;         /* response body (also on errors) */
  size_t body_len;
  const char *request_id;
  int attempts;
  const aws_error_t *err;   /* when !ok */
} aws_result_t;

typedef void (*aws_done_fn)(void *ud, const aws_result_t *r);

/* Each client owns one credential provider (aws/creds/creds.h) on its loop and HTTP client. */
aws_client_t *aws_client_new(loop_t *loop);
void aws_client_free(aws_client_t *c);  /* in-flight calls are cancelled silently */
/* The client's credential provider, e.g. for creds_describe(). Owned by the client. */
creds_provider_t *aws_client_creds(aws_client_t *c);

/* Starts a call; done runs later from the loop. Every attempt waits for credentials from
 * the chain (and the first call for the region); a chain failure (no credentials, a
 * profile that does not exist, an unreadable file, no region) finishes the call with
 * code "CredentialsError" and the chain's message, which names the file or setting and
 * never a secret. ExpiredToken/ExpiredTokenException/InvalidClientTokenId on a request
 * with a session token drops the cached credentials and retries once.
 * Returns an id > 0, or 0 with a message in err (unknown service, bad region or endpoint,
 * out of memory); done is then not called. */
uint64_t aws_call_start(aws_client_t *c, const aws_call_t *call, aws_done_fn done, void *ud,
                        char *err, size_t errlen);
int aws_call_cancel(aws_client_t *c, uint64_t id);  /* 0, or -1 if unknown */
size_t aws_call_pending(const aws_client_t *c);

long aws_clock_offset(const aws_client_t *c);       /* seconds added to local time */
int aws_retry_tokens(const aws_client_t *c);

/* Error parsing, exposed for tests: fills e from an HTTP response (or transport error). */
void aws_parse_error(aws_protocol_t proto, const http_response_t *resp, aws_error_t *e);

#endif
