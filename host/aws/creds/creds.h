/* AWS credentials and region resolution, asynchronous on the host loop.
 *
 * The chain, in the AWS SDKs' order (the first source that is configured wins; a source
 * that is configured but broken is an error, not a fall-through):
 *   1. environment: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY [+ AWS_SESSION_TOKEN]
 *   2. web identity: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN [+ AWS_ROLE_SESSION_NAME]
 *      -> STS AssumeRoleWithWebIdentity (unsigned)
 *   3. shared files: AWS_CONFIG_FILE (~/.aws/config, "[profile NAME]"), and
 *      AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials, "[NAME]"); profile from the options,
 *      else AWS_PROFILE, else "default". A profile may hold static keys, role_arn +
 *      source_profile (chained, loops rejected) or credential_source
 *      (Environment | Ec2InstanceMetadata | EcsContainer) -> STS AssumeRole (SigV4-signed),
 *      web_identity_token_file + role_arn, or credential_process (run via /bin/sh).
 *   4. ECS/EKS container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (http://169.254.170.2$URI),
 *      or AWS_CONTAINER_CREDENTIALS_FULL_URI (+ AWS_CONTAINER_AUTHORIZATION_TOKEN or
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)
 *   5. EC2 IMDSv2 (unless AWS_EC2_METADATA_DISABLED=true); AWS_EC2_METADATA_SERVICE_ENDPOINT
 *      overrides http://169.254.169.254.
 * STS calls go through the same request path as every AWS call (aws/retry.h): the
 * endpoint resolver (AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL, the region's partition,
 * AWS_USE_FIPS_ENDPOINT; us-east-1 without a region), retries and clock-skew correction.
 *
 * Temporary credentials are cached and refreshed lazily: a creds_get() within
 * refresh_margin_s of the expiration starts one refresh that every concurrent caller
 * shares. If the refresh fails while the cached credentials have not yet expired, the
 * cached ones are delivered.
 *
 * Secrets (secret keys, session tokens, web identity tokens, container authorization
 * tokens) never appear in error strings, creds_describe() or logs. */
#ifndef ROTATOR_CREDS_H
#define ROTATOR_CREDS_H
#include <stddef.h>
#include <stdint.h>

#include "net/http.h"
#include "core/loop.h"

#define CREDS_KEY_MAX 128
#define CREDS_TOKEN_MAX 4096
#define CREDS_SOURCE_MAX 160
#define CREDS_REGION_MAX 64
#define CREDS_ERR_MAX 2048

typedef struct creds {
  char access_key_id[CREDS_KEY_MAX];
  char secret_access_key[CREDS_KEY_MAX];
  char session_token[CREDS_TOKEN_MAX];   /* "" for long-term keys */
  int64_t expiration;                    /* Unix seconds; 0: does not expire */
  char source[CREDS_SOURCE_MAX];         /* "env", "web-identity", "profile:dev",
                                            "profile:dev>assume-role", "ecs", "imds" ... */
} creds_t;

typedef struct {
  const char *profile;          /* NULL: $AWS_PROFILE, else "default" */
  unsigned refresh_margin_s;    /* refresh this long before expiry; 0: 300 */
  long imds_timeout_ms;         /* per IMDS/ECS request; 0: 1000 */
  long sts_timeout_ms;          /* per STS request; 0: 10000 */
  long process_timeout_ms;      /* credential_process; 0: 30000 */
  struct aws_ctx *aws;          /* retry state and clock offset shared with an AWS client
                                   (aws/retry.h); NULL: the provider keeps its own */
} creds_options_t;

typedef struct creds_provider creds_provider_t;

/* Exactly one of creds/err is non-NULL. creds is valid only during the call. */
typedef void (*creds_cb)(void *ud, const creds_t *creds, const char *err);
/* Exactly one of region/err is non-NULL. */
typedef void (*region_cb)(void *ud, const char *region, const char *err);

/* The environment is read at each resolution, not here. NULL on allocation failure. */
creds_provider_t *creds_new(loop_t *loop, http_client_t *http, const creds_options_t *opt);
/* Pending callbacks are dropped; running credential_process children are killed. Do not
 * call from inside a creds_cb/region_cb of the same provider. */
void creds_free(creds_provider_t *p);

/* Deliver credentials to cb from the loop (never inside creds_get). 0, or -1 (out of
 * memory; cb is then not called). */
int creds_get(creds_provider_t *p, creds_cb cb, void *ud);
/* Drop the cache: the next creds_get resolves again (e.g. after an ExpiredToken error). */
void creds_invalidate(creds_provider_t *p);

/* Region: AWS_REGION, AWS_DEFAULT_REGION, the profile's `region`, then IMDS
 * (/latest/meta-data/placement/region) unless disabled. Delivered from the loop. */
int creds_region(creds_provider_t *p, region_cb cb, void *ud);

/* For operators (`rotator whoami`-style output): one line describing the cached
 * credentials — source, access key id, expiry — or "no credentials resolved yet".
 * Never includes secrets. Returns buf. */
/* The region resolved so far (by an earlier creds_region answer), or NULL. */
const char *creds_resolved_region(const creds_provider_t *p);
const char *creds_describe(const creds_provider_t *p, char *buf, size_t len);

#endif
