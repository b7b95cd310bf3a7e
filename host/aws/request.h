/* One AWS request: where it goes (the endpoint resolved for a region), what it carries,
 * and one attempt signed with the credentials it is given. No retries here (aws/retry.h)
 * and no credential chain (aws/creds/): the caller hands in the keys. */
#ifndef ROTATOR_AWS_REQUEST_H
#define ROTATOR_AWS_REQUEST_H
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "aws/endpoint.h"
#include "aws/sigv4.h"
#include "core/log.h"
#include "net/http.h"

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
  const log_field_t *log_ctx; /* fields every aws.* log line of the call carries (workflow, */
  size_t log_nctx;          /* message_id), copied; at most AWS_LOG_CTX_MAX */
  const char *role_arn;     /* NULL: the chain's credentials; else the client's AssumeRole of it
                               (aws/client.h), signed with the chain's */
  const char *external_id;  /* with role_arn: the ExternalId the role's trust policy asks for */
} aws_call_t;

#define AWS_LOG_CTX_MAX 8

typedef struct {
  char code[128];
  char message[2048];       /* room for the credential chain's account of each provider */
  char request_id[128];
  int status;               /* 0 for transport errors */
  int retryable;
  int throttling;
  int timeout;              /* transport timeout */
  int skew;                 /* looks like clock skew */
} aws_error_t;

/* A request ready to be sent: everything copied from the aws_call_t. */
typedef struct {
  const aws_service_t *svc;
  char *action, *method, *query, *body, *ctype;
  char *target;             /* X-Amz-Target value ("prefix.action"), or NULL */
  char *rel_path;           /* the caller's path, joined to the endpoint's */
  char *path;               /* the path on the wire, once the region is known */
  char *url;                /* full URL with path and query, once the region is known */
  size_t body_len;
  char region[64];
  char host[256];
  long timeout_ms;
  size_t max_response_bytes;
} aws_request_t;

/* Copies call into q (region left unset; see aws_request_set_region). 0, or -1 with err
 * (unknown service, out of memory); q is then cleared. */
int aws_request_init(aws_request_t *q, const aws_call_t *call, char *err, size_t errlen);
/* Resolves the endpoint (aws/endpoint.h) for region: Host, path and URL. 0, or -1 with err. */
int aws_request_set_region(aws_request_t *q, const char *region, char *err, size_t errlen);
void aws_request_clear(aws_request_t *q);

/* Signs (cr non-NULL; NULL sends it unsigned) at time `now` and sends one attempt.
 * corrupt_secret (tests only) flips one bit of the secret key. Returns the HTTP request
 * id, or 0 with err (signing failed, out of memory). */
uint64_t aws_request_send(http_client_t *http, const aws_request_t *q, const sigv4_credentials *cr,
                          time_t now, int corrupt_secret, http_done_fn fn, void *ud,
                          char *err, size_t errlen);

/* Fills e from an HTTP response (or transport error): code, message, request id, and
 * whether the standard retry mode retries it or it is clock skew (aws/error.c). */
void aws_parse_error(aws_protocol_t proto, const http_response_t *resp, aws_error_t *e);

#endif
