/* Internals of the credential chain (aws/creds/creds.h), shared by aws/creds/chain.c, aws/creds/profile.c,
 * aws/creds/{fetch,imds,ecs,sts}.c, aws/creds/process.c and region.c, and used by the unit tests. */
#ifndef ROTATOR_CREDS_INTERNAL_H
#define ROTATOR_CREDS_INTERNAL_H
#include <stddef.h>
#include <stdint.h>

#include "aws/creds/creds.h"
#include "util/json_get.h"
#include "util/xml_get.h"

#define CREDS_MAX_CHAIN 8   /* role_arn hops through source_profile */

/* ---- aws/creds/profile.c: shared config / credentials files ---------------------------- */

typedef struct ini_file ini_file_t;

/* Parses an AWS shared config/credentials file. A file that does not exist is an empty
 * file (*out set, 0 returned); any other failure returns -1 with err naming the path and
 * strerror. is_config: sections are "[profile NAME]" (and "[default]"), else "[NAME]". */
int ini_load(const char *path, int is_config, ini_file_t **out, char *err, size_t errlen);
/* Same, from memory (for tests). */
ini_file_t *ini_parse(const char *text, size_t len, int is_config);
void ini_free(ini_file_t *f);
/* Value of key in profile, or NULL. Keys compare case-insensitively. */
const char *ini_get(const ini_file_t *f, const char *profile, const char *key);
int ini_has_profile(const ini_file_t *f, const char *profile);

typedef enum {
  PLAN_STATIC,        /* static keys from a profile */
  PLAN_WEB_IDENTITY,  /* token file + role */
  PLAN_PROCESS,       /* credential_process */
  PLAN_ENV,           /* credential_source = Environment */
  PLAN_IMDS,          /* credential_source = Ec2InstanceMetadata */
  PLAN_ECS,           /* credential_source = EcsContainer */
} plan_kind_t;

typedef struct {
  char *role_arn;
  char *session_name;  /* NULL: generated */
  char *external_id;
  int duration_s;      /* 0: STS default */
  char *profile;       /* the profile that holds role_arn */
} plan_role_t;

typedef struct {
  plan_kind_t kind;
  char *profile;               /* profile the source came from */
  char *akid, *secret, *token; /* PLAN_STATIC */
  char *token_file;            /* PLAN_WEB_IDENTITY */
  plan_role_t wi;              /* PLAN_WEB_IDENTITY: the role to assume */
  char *process;               /* PLAN_PROCESS */
  plan_role_t roles[CREDS_MAX_CHAIN]; /* AssumeRole hops, roles[0] first */
  size_t nroles;
  char *region;                /* the selected profile's region, or NULL */
} creds_plan_t;

typedef struct {
  const char *config_path;      /* resolved paths (see creds_file_paths) */
  const char *credentials_path;
  const char *profile;
  int profile_explicit;         /* named by the caller or AWS_PROFILE: missing is an error */
} plan_input_t;

enum { PLAN_OK = 0, PLAN_NONE = 1, PLAN_ERR = -1 };
/* Resolve the profile into a plan. PLAN_NONE: the default profile is absent (the chain
 * moves on; plan->region may still be set). PLAN_ERR: err says what to fix. */
int creds_plan_resolve(const plan_input_t *in, creds_plan_t *plan, char *err, size_t errlen);
void creds_plan_free(creds_plan_t *plan);
/* $AWS_CONFIG_FILE / $AWS_SHARED_CREDENTIALS_FILE or ~/.aws/{config,credentials}. */
int creds_file_paths(char *config, size_t clen, char *credentials, size_t crlen);
/* The profile's region from the files (credentials file first), malloc'd, or NULL. */
char *creds_file_region(const plan_input_t *in);

/* ---- aws/creds/{imds,ecs,sts}.c ----------------------------------------------- */

typedef void (*creds_fetch_fn)(void *ud, const creds_t *c, const char *err);

typedef struct creds_fetch creds_fetch_t;   /* one in-flight fetch; freed when done */

typedef struct {
  loop_t *loop;
  http_client_t *http;
  long imds_timeout_ms;
  long sts_timeout_ms;
  const char *region;       /* for STS; may be NULL */
  struct aws_ctx *aws;      /* STS goes through aws/retry.h with the client's retry state */
} fetch_env_t;

creds_fetch_t *creds_fetch_imds(const fetch_env_t *e, creds_fetch_fn fn, void *ud, char *err, size_t errlen);
creds_fetch_t *creds_fetch_ecs(const fetch_env_t *e, creds_fetch_fn fn, void *ud, char *err, size_t errlen);
/* AssumeRole signed with src. */
creds_fetch_t *creds_fetch_assume_role(const fetch_env_t *e, const creds_t *src, const plan_role_t *role,
                                       creds_fetch_fn fn, void *ud, char *err, size_t errlen);
/* AssumeRoleWithWebIdentity, token read from token_file. */
creds_fetch_t *creds_fetch_web_identity(const fetch_env_t *e, const char *token_file, const plan_role_t *role,
                                        creds_fetch_fn fn, void *ud, char *err, size_t errlen);
/* IMDS region: delivers the region in c->source (the other fields empty). */
creds_fetch_t *creds_fetch_imds_region(const fetch_env_t *e, creds_fetch_fn fn, void *ud, char *err, size_t errlen);
void creds_fetch_cancel(creds_fetch_t *f);   /* fn is not called */
/* Is the ECS/IMDS env configured? */
int creds_ecs_configured(void);
int creds_imds_disabled(void);

/* The JSON and XML field readers are util/json_get.h and util/xml_get.h. */
/* RFC 3339 -> Unix seconds; -1 on error. */
int creds_parse_time(const char *s, int64_t *out);
/* Fill c from a JSON credentials document (IMDS, ECS, credential_process). token_key is
 * "Token" or "SessionToken". */
int creds_from_json(const char *json, size_t len, const char *token_key, creds_t *c, char *err, size_t errlen);
/* Fill c from an STS AssumeRole / AssumeRoleWithWebIdentity answer (XML). 0, or -1 with
 * why saying what was missing or too long (c wiped). */
int creds_from_sts_xml(const char *xml, size_t len, creds_t *c, char *why, size_t wlen);
/* Fill c from credential_process output: a JSON object with "Version": 1. 0, or -1 with why. */
int creds_from_process_json(const char *out, size_t len, creds_t *c, char *why, size_t wlen);
/* Fill c from an IMDS role-credentials answer (a "Code" other than Success refuses it). */
int creds_from_imds_json(const char *json, size_t len, creds_t *c, char *why, size_t wlen);
/* Length of the first word of an IMDS text answer: bytes up to a NUL or one of stop. */
size_t creds_first_word(const char *text, size_t len, const char *stop);

/* ---- aws/creds/process.c: credential_process ------------------------------------------ */

typedef struct creds_proc creds_proc_t;
creds_proc_t *creds_process_start(loop_t *loop, const char *command, const char *profile, long timeout_ms,
                                  creds_fetch_fn fn, void *ud, char *err, size_t errlen);
void creds_process_cancel(creds_proc_t *p);   /* kills the child; fn not called */

/* ---- region.c --------------------------------------------------------------------- */

/* AWS_REGION, AWS_DEFAULT_REGION, then profile_region. 0 and out set, or -1. */
int region_from_settings(const char *profile_region, char *out, size_t len);
/* The error text for a missing region. */
const char *region_missing_error(void);

/* ---- small helpers ----------------------------------------------------------------- */
#include <string.h>
static inline void creds_wipe(creds_t *c) { explicit_bzero(c, sizeof *c); }
/* Bounded copy: 0, or -1 (dst set to "") if src does not fit. */
static inline int creds_copy_str(char *dst, size_t cap, const char *src) {
  size_t n = strlen(src);
  if (n >= cap) { if (cap) dst[0] = 0; return -1; }
  memcpy(dst, src, n + 1);
  return 0;
}

#endif
