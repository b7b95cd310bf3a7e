/* The AWS client every caller uses: it owns one HTTP client, one credential provider
 * (aws/creds/creds.h) and the retry state (aws/retry.h) on the host loop, waits for the
 * region and credentials on behalf of its calls, and runs each call through aws/retry.
 * The request body is serialised by the caller (scripts/aws/init.lua); this layer does
 * not look inside it. */
#ifndef ROTATOR_AWS_CLIENT_H
#define ROTATOR_AWS_CLIENT_H
#include <stddef.h>
#include <stdint.h>

#include "aws/creds/creds.h"
#include "aws/endpoint.h"
#include "aws/request.h"
#include "aws/retry.h"
#include "core/loop.h"
#include "net/http.h"

typedef struct aws_client aws_client_t;

typedef void (*aws_done_fn)(void *ud, const aws_result_t *r);

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
 * A call with role_arn signs with the credentials of STS AssumeRole of that role (and
 * external_id), itself signed with the chain's: one cache per (role, external id), shared
 * by every call of it and refreshed within 300 s of its expiry (one refresh for every
 * waiting call; if it fails while the cached ones are still valid, they are used). A
 * failed AssumeRole finishes the call with code "CredentialsError" and STS's code and
 * message (e.g. AccessDenied) in the message; never a secret.
 * Returns an id > 0, or 0 with a message in err (unknown service, bad region or endpoint,
 * out of memory); done is then not called. */
uint64_t aws_call_start(aws_client_t *c, const aws_call_t *call, aws_done_fn done, void *ud,
                        char *err, size_t errlen);
int aws_call_cancel(aws_client_t *c, uint64_t id);  /* 0, or -1 if unknown */
size_t aws_call_pending(const aws_client_t *c);

long aws_clock_offset(const aws_client_t *c);       /* seconds added to local time */
int aws_retry_tokens(const aws_client_t *c);

#endif
