/* The credential chain (see aws/creds/creds.h): picks the first configured source, runs it (with
 * AssumeRole hops for profiles), caches the result and shares one refresh among every
 * caller waiting. All callbacks run from the loop: creds_get() only queues and arms a
 * zero-delay timer. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aws/creds/internal.h"
#include "aws/retry.h"
#include "core/log.h"
#include "util/timefmt.h"

#define DEFAULT_MARGIN_S 300
#define DEFAULT_IMDS_MS 1000
#define DEFAULT_STS_MS 10000
#define DEFAULT_PROC_MS 30000

typedef struct {
  creds_cb cb;
  region_cb rcb;
  void *ud;
} waiter_t;

typedef struct {
  waiter_t *v;
  size_t n, cap;
} waiters_t;

struct creds_provider {
  loop_t *loop;
  http_client_t *http;
  creds_options_t opt;
  char *profile_opt;       /* the profile given in the options (owned), or NULL */
  loop_timer_t defer;
  /* credentials */
  waiters_t waiting;
  int resolving;
  int have_cached;
  creds_t cached;
  creds_plan_t plan;
  size_t hop;
  creds_fetch_t *fetch;
  creds_proc_t *proc;
  char label[CREDS_SOURCE_MAX];
  char *top;              /* the profile asked for, for error messages (owned), or NULL */
  char sts_region[CREDS_REGION_MAX];
  char tried[CREDS_ERR_MAX]; /* the providers skipped before the container/instance one */
  /* region */
  waiters_t rwaiting;
  int region_resolving;
  char region[CREDS_REGION_MAX];
  creds_fetch_t *rfetch;
  aws_ctx_t own_aws;       /* STS retry state when no AWS client shares its own */
};

static int push(waiters_t *w, creds_cb cb, region_cb rcb, void *ud) {
  if (w->n == w->cap) {
    size_t ncap = w->cap ? w->cap * 2 : 4;
    waiter_t *nv = realloc(w->v, ncap * sizeof *nv);
    if (!nv) return -1;
    w->v = nv;
    w->cap = ncap;
  }
  w->v[w->n++] = (waiter_t){cb, rcb, ud};
  return 0;
}

static int64_t now_s(void) { return (int64_t)time(NULL); }

static int fresh(const creds_provider_t *p) {
  return p->have_cached && (p->cached.expiration == 0 || now_s() + p->opt.refresh_margin_s < p->cached.expiration);
}

/* The profile and the two files' paths. 0, or -1 with err when a path does not fit. */
static int profile_input(const creds_provider_t *p, plan_input_t *in, char *cfg, size_t clen, char *cr, size_t crlen,
                         char *err, size_t errlen) {
  const char *env = getenv("AWS_PROFILE");
  int given = p->profile_opt && p->profile_opt[0];
  in->profile = given ? p->profile_opt : (env && *env ? env : "default");
  in->profile_explicit = given || (env && *env);
  in->config_path = cfg;
  in->credentials_path = cr;
  if (creds_file_paths(cfg, clen, cr, crlen) == 0) return 0;
  snprintf(err, errlen, "AWS_CONFIG_FILE or AWS_SHARED_CREDENTIALS_FILE (after ~ expansion) is longer than the "
           "%zu-byte limit for a path", (clen < crlen ? clen : crlen) - 1);
  return -1;
}

/* ---- completion ----------------------------------------------------------------------- */

static void log_resolved(const creds_t *c) {
  char exp[40] = "never";
  if (c->expiration) tf_rfc3339((tf_time_t){c->expiration, 0}, exp, sizeof exp);
  log_kv_t kv[] = {{"source", c->source}, {"access_key_id", c->access_key_id}, {"expires", exp}};
  log_event(LOG_INFO, "creds.resolved", kv, 3);
}

static void complete(creds_provider_t *p, const creds_t *c, const char *err) {
  p->resolving = 0;
  p->fetch = NULL;
  p->proc = NULL;
  creds_plan_free(&p->plan);
  if (c && c != &p->cached) {
    p->cached = *c;
    p->have_cached = 1;
    log_resolved(c);
  } else if (!c && p->have_cached && (p->cached.expiration == 0 || now_s() < p->cached.expiration)) {
    log_kv_t kv[] = {{"error", err}, {"source", p->cached.source}};
    log_event(LOG_WARN, "creds.refresh_failed", kv, 2);
    c = &p->cached;
    err = NULL;
  }
  waiters_t w = p->waiting;
  p->waiting = (waiters_t){0};
  for (size_t i = 0; i < w.n; i++) w.v[i].cb(w.v[i].ud, c, c ? NULL : err);
  free(w.v);
}

static void complete_err(creds_provider_t *p, const char *err) { complete(p, NULL, err); }

/* ---- sources -------------------------------------------------------------------------- */

static int env_creds(creds_t *c, char *err, size_t len) {
  const char *akid = getenv("AWS_ACCESS_KEY_ID"), *sec = getenv("AWS_SECRET_ACCESS_KEY");
  const char *tok = getenv("AWS_SESSION_TOKEN");
  memset(c, 0, sizeof *c);
  if (!sec || !*sec) {
    snprintf(err, len, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both, or unset "
             "AWS_ACCESS_KEY_ID to use a profile or role");
    return -1;
  }
  if (creds_copy_str(c->access_key_id, sizeof c->access_key_id, akid) ||
      creds_copy_str(c->secret_access_key, sizeof c->secret_access_key, sec) ||
      creds_copy_str(c->session_token, sizeof c->session_token, tok ? tok : "")) {
    creds_wipe(c);
    snprintf(err, len, "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_SESSION_TOKEN is too long");
    return -1;
  }
  snprintf(c->source, sizeof c->source, "env");
  return 0;
}

static fetch_env_t fetch_env(creds_provider_t *p) {
  return (fetch_env_t){p->loop, p->http, p->opt.imds_timeout_ms, p->opt.sts_timeout_ms,
                       p->sts_region[0] ? p->sts_region : NULL, p->opt.aws};
}

static void on_source(void *ud, const creds_t *c, const char *err);

/* Next AssumeRole hop, or the end of the chain. */
static void next_hop(creds_provider_t *p, const creds_t *c) {
  char err[CREDS_ERR_MAX];
  if (p->hop >= p->plan.nroles) {
    creds_t out = *c;
    snprintf(out.source, sizeof out.source, "%s", p->label);
    complete(p, &out, NULL);
    creds_wipe(&out);
    return;
  }
  fetch_env_t e = fetch_env(p);
  p->fetch = creds_fetch_assume_role(&e, c, &p->plan.roles[p->hop++], on_source, p, err, sizeof err);
  if (!p->fetch) complete_err(p, err);
}

static void on_source(void *ud, const creds_t *c, const char *err) {
  creds_provider_t *p = ud;
  p->fetch = NULL;
  p->proc = NULL;
  if (!c) {
    char e[CREDS_ERR_MAX];
    if (p->top && p->top[0]) snprintf(e, sizeof e, "AWS profile \"%s\": %s", p->top, err);
    else snprintf(e, sizeof e, "%s", err);
    complete_err(p, e);
    return;
  }
  next_hop(p, c);
}

static void label_plan(creds_provider_t *p, const char *top) {
  const creds_plan_t *pl = &p->plan;
  if (pl->nroles)
    snprintf(p->label, sizeof p->label, "profile:%s (assume-role %s)", top, pl->roles[pl->nroles - 1].role_arn);
  else if (pl->kind == PLAN_WEB_IDENTITY)
    snprintf(p->label, sizeof p->label, "profile:%s (web-identity %s)", top, pl->wi.role_arn);
  else if (pl->kind == PLAN_PROCESS)
    snprintf(p->label, sizeof p->label, "profile:%s (credential_process)", top);
  else snprintf(p->label, sizeof p->label, "profile:%s", top);
}

static void run_plan(creds_provider_t *p, const char *top) {
  char err[CREDS_ERR_MAX] = "";
  creds_t c;
  fetch_env_t e = fetch_env(p);
  creds_plan_t *pl = &p->plan;
  label_plan(p, top);
  free(p->top);
  p->top = strdup(top); /* NULL when out of memory: messages then name no profile */
  p->hop = 0;
  switch (pl->kind) {
    case PLAN_STATIC:
      memset(&c, 0, sizeof c);
      if (creds_copy_str(c.access_key_id, sizeof c.access_key_id, pl->akid) ||
          creds_copy_str(c.secret_access_key, sizeof c.secret_access_key, pl->secret) ||
          creds_copy_str(c.session_token, sizeof c.session_token, pl->token ? pl->token : "")) {
        creds_wipe(&c);
        on_source(p, NULL, "a key in the profile is too long");
        return;
      }
      next_hop(p, &c);
      creds_wipe(&c);
      return;
    case PLAN_ENV:
      if (!getenv("AWS_ACCESS_KEY_ID")) { on_source(p, NULL, "credential_source Environment but AWS_ACCESS_KEY_ID is not set"); return; }
      if (env_creds(&c, err, sizeof err) != 0) { on_source(p, NULL, err); return; }
      next_hop(p, &c);
      creds_wipe(&c);
      return;
    case PLAN_IMDS: p->fetch = creds_fetch_imds(&e, on_source, p, err, sizeof err); break;
    case PLAN_ECS: p->fetch = creds_fetch_ecs(&e, on_source, p, err, sizeof err); break;
    case PLAN_WEB_IDENTITY:
      p->fetch = creds_fetch_web_identity(&e, pl->token_file, &pl->wi, on_source, p, err, sizeof err);
      break;
    case PLAN_PROCESS:
      p->proc = creds_process_start(p->loop, pl->process, pl->profile, p->opt.process_timeout_ms, on_source, p, err,
                                    sizeof err);
      if (!p->proc) { on_source(p, NULL, err); }
      return;
  }
  if (!p->fetch) on_source(p, NULL, err);
}

static void on_env_web_identity(void *ud, const creds_t *c, const char *err) {
  creds_provider_t *p = ud;
  p->fetch = NULL;
  if (!c) { complete_err(p, err); return; }
  creds_t out = *c;
  snprintf(out.source, sizeof out.source, "web-identity");
  complete(p, &out, NULL);
  creds_wipe(&out);
}

static const char NEXT_STEP[] =
    ". Next: export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or set AWS_PROFILE to a profile of those "
    "files, or AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, or run where a container or EC2 instance role "
    "is attached (rotator whoami shows what resolves)";

/* The container or instance provider, the chain's last link: its failure is told with
 * every provider skipped before it, so the operator sees the whole chain. */
static void on_plain(void *ud, const creds_t *c, const char *err) {
  creds_provider_t *p = ud;
  p->fetch = NULL;
  if (c || !p->tried[0]) {
    complete(p, c, err);
    return;
  }
  char e[CREDS_ERR_MAX];
  int n = snprintf(e, sizeof e, "%s%s%s", p->tried, err, NEXT_STEP);
  if (n < 0 || (size_t)n >= sizeof e) snprintf(e, sizeof e, "no AWS credentials found; the last provider said: %s", err);
  complete_err(p, e);
}

static int start_env_web_identity(creds_provider_t *p) {
  const char *file = getenv("AWS_WEB_IDENTITY_TOKEN_FILE"), *arn = getenv("AWS_ROLE_ARN");
  char err[CREDS_ERR_MAX];
  if ((!file || !*file) && (!arn || !*arn)) return 0;
  if (!file || !*file || !arn || !*arn) {
    complete_err(p, file && *file ? "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not: set both"
                                  : "AWS_ROLE_ARN is set but AWS_WEB_IDENTITY_TOKEN_FILE is not: set both");
    return 1;
  }
  const char *sess = getenv("AWS_ROLE_SESSION_NAME");
  plan_role_t role = {.role_arn = (char *)arn, .session_name = sess && *sess ? (char *)sess : NULL};
  fetch_env_t e = fetch_env(p);
  p->fetch = creds_fetch_web_identity(&e, file, &role, on_env_web_identity, p, err, sizeof err);
  if (!p->fetch) complete_err(p, err);
  return 1;
}

static const char *file_state(const char *path) { return access(path, F_OK) == 0 ? "has no such profile" : "does not exist"; }

/* "no AWS credentials found; the chain tried: 1) ... 2) ...": every provider before the
 * container and instance ones, and why each gave nothing. Returns -1 if it does not fit. */
static int describe_skipped(const plan_input_t *in, char *out, size_t len) {
  int n = snprintf(out, len,
                   "no AWS credentials found; the chain tried: 1) environment: AWS_ACCESS_KEY_ID is not set; "
                   "2) web identity: AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN are not set; "
                   "3) profile \"%s\" (%sstatic keys, role_arn, credential_process or web_identity_token_file): "
                   "%s %s, %s %s; ",
                   in->profile, in->profile_explicit ? "" : "AWS_PROFILE is not set; ", in->config_path,
                   file_state(in->config_path), in->credentials_path, file_state(in->credentials_path));
  return n < 0 || (size_t)n >= len ? -1 : 0;
}

static void no_credentials(creds_provider_t *p, const plan_input_t *in) {
  char err[CREDS_ERR_MAX];
  int n = snprintf(err, sizeof err,
                   "%s4) ECS container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and "
                   "AWS_CONTAINER_CREDENTIALS_FULL_URI are not set; 5) EC2 instance metadata (IMDS): %s%s",
                   p->tried, creds_imds_disabled() ? "disabled by AWS_EC2_METADATA_DISABLED=true" : "unavailable",
                   NEXT_STEP);
  if (n < 0 || (size_t)n >= sizeof err)
    snprintf(err, sizeof err, "no AWS credentials found (the account of the chain exceeds %d bytes; see "
             "rotator whoami)", CREDS_ERR_MAX);
  (void)in;
  complete_err(p, err);
}

static void resolve_start(creds_provider_t *p) {
  char err[CREDS_ERR_MAX], cfg[PATH_MAX], cr[PATH_MAX];
  creds_t c;
  plan_input_t in;
  p->resolving = 1;
  free(p->top);
  p->top = NULL;
  p->tried[0] = 0;
  const char *akid = getenv("AWS_ACCESS_KEY_ID");
  if (akid && *akid) {
    if (env_creds(&c, err, sizeof err) != 0) complete_err(p, err);
    else complete(p, &c, NULL);
    creds_wipe(&c);
    return;
  }
  if (profile_input(p, &in, cfg, sizeof cfg, cr, sizeof cr, err, sizeof err) != 0) {
    complete_err(p, err);
    return;
  }
  char *pr = creds_file_region(&in);
  if (region_from_settings(pr, p->sts_region, sizeof p->sts_region) != 0) p->sts_region[0] = 0;
  free(pr);
  if (start_env_web_identity(p)) return;
  int rc = creds_plan_resolve(&in, &p->plan, err, sizeof err);
  if (rc == PLAN_ERR) { complete_err(p, err); return; }
  if (rc == PLAN_OK) { run_plan(p, in.profile); return; }
  fetch_env_t e = fetch_env(p);
  if (describe_skipped(&in, p->tried, sizeof p->tried) != 0) p->tried[0] = 0;
  size_t t = strlen(p->tried);
  if (creds_ecs_configured()) {
    if (t) snprintf(p->tried + t, sizeof p->tried - t, "4) ECS container credentials: ");
    p->fetch = creds_fetch_ecs(&e, on_plain, p, err, sizeof err);
  } else if (!creds_imds_disabled()) {
    if (t)
      snprintf(p->tried + t, sizeof p->tried - t,
               "4) ECS container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and "
               "AWS_CONTAINER_CREDENTIALS_FULL_URI are not set; 5) EC2 instance metadata (IMDS): ");
    p->fetch = creds_fetch_imds(&e, on_plain, p, err, sizeof err);
  } else {
    no_credentials(p, &in);
    return;
  }
  if (!p->fetch) on_plain(p, NULL, err);
}

/* ---- region --------------------------------------------------------------------------- */

static void region_complete(creds_provider_t *p, const char *region, const char *err) {
  p->region_resolving = 0;
  p->rfetch = NULL;
  if (region) snprintf(p->region, sizeof p->region, "%s", region);
  waiters_t w = p->rwaiting;
  p->rwaiting = (waiters_t){0};
  for (size_t i = 0; i < w.n; i++) w.v[i].rcb(w.v[i].ud, region ? p->region : NULL, region ? NULL : err);
  free(w.v);
}

static void on_imds_region(void *ud, const creds_t *c, const char *err) {
  creds_provider_t *p = ud;
  char e[CREDS_ERR_MAX];
  if (!c) snprintf(e, sizeof e, "%s (%s)", region_missing_error(), err);
  region_complete(p, c ? c->source : NULL, c ? NULL : e);
}

static void region_start(creds_provider_t *p) {
  char cfg[PATH_MAX], cr[PATH_MAX], err[CREDS_ERR_MAX];
  plan_input_t in;
  p->region_resolving = 1;
  int env_region = getenv("AWS_REGION") || getenv("AWS_DEFAULT_REGION");
  if (profile_input(p, &in, cfg, sizeof cfg, cr, sizeof cr, err, sizeof err) != 0 && !env_region) {
    region_complete(p, NULL, err);
    return;
  }
  char *pr = env_region ? NULL : creds_file_region(&in);
  char region[CREDS_REGION_MAX];
  int rc = region_from_settings(pr, region, sizeof region);
  free(pr);
  if (rc == 0) { region_complete(p, region, NULL); return; }
  if (creds_imds_disabled()) { region_complete(p, NULL, region_missing_error()); return; }
  fetch_env_t e = fetch_env(p);
  p->rfetch = creds_fetch_imds_region(&e, on_imds_region, p, err, sizeof err);
  if (!p->rfetch) region_complete(p, NULL, region_missing_error());
}

/* ---- public --------------------------------------------------------------------------- */

static void on_defer(loop_t *loop, loop_timer_t *t, void *ud) {
  (void)loop, (void)t;
  creds_provider_t *p = ud;
  if (p->rwaiting.n && !p->region_resolving) {
    if (p->region[0]) region_complete(p, p->region, NULL);
    else region_start(p);
  }
  if (p->waiting.n && !p->resolving) {
    if (fresh(p)) complete(p, &p->cached, NULL);
    else resolve_start(p);
  }
}

creds_provider_t *creds_new(loop_t *loop, http_client_t *http, const creds_options_t *opt) {
  creds_provider_t *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->loop = loop;
  p->http = http;
  if (opt) p->opt = *opt;
  if (opt && opt->profile && !(p->profile_opt = strdup(opt->profile))) {
    free(p);
    return NULL;
  }
  p->opt.profile = NULL;
  if (!p->opt.refresh_margin_s) p->opt.refresh_margin_s = DEFAULT_MARGIN_S;
  if (!p->opt.imds_timeout_ms) p->opt.imds_timeout_ms = DEFAULT_IMDS_MS;
  if (!p->opt.sts_timeout_ms) p->opt.sts_timeout_ms = DEFAULT_STS_MS;
  if (!p->opt.process_timeout_ms) p->opt.process_timeout_ms = DEFAULT_PROC_MS;
  if (!p->opt.aws) {
    aws_ctx_init(&p->own_aws, loop, http);
    p->opt.aws = &p->own_aws;
  }
  loop_timer_init(&p->defer, on_defer, p);
  return p;
}

void creds_free(creds_provider_t *p) {
  if (!p) return;
  loop_timer_stop(p->loop, &p->defer);
  creds_fetch_cancel(p->fetch);
  creds_fetch_cancel(p->rfetch);
  creds_process_cancel(p->proc);
  creds_plan_free(&p->plan);
  free(p->waiting.v);
  free(p->rwaiting.v);
  creds_wipe(&p->cached);
  free(p->profile_opt);
  free(p->top);
  free(p);
}

int creds_get(creds_provider_t *p, creds_cb cb, void *ud) {
  if (push(&p->waiting, cb, NULL, ud) != 0) return -1;
  if (!p->resolving && !loop_timer_armed(&p->defer) && loop_timer_start(p->loop, &p->defer, 0) != 0) {
    p->waiting.n--;
    return -1;
  }
  return 0;
}

void creds_invalidate(creds_provider_t *p) {
  if (p->have_cached) creds_wipe(&p->cached);
  p->have_cached = 0;
}

int creds_region(creds_provider_t *p, region_cb cb, void *ud) {
  if (push(&p->rwaiting, NULL, cb, ud) != 0) return -1;
  if (!p->region_resolving && !loop_timer_armed(&p->defer) && loop_timer_start(p->loop, &p->defer, 0) != 0) {
    p->rwaiting.n--;
    return -1;
  }
  return 0;
}

const char *creds_resolved_region(const creds_provider_t *p) { return p->region[0] ? p->region : NULL; }

const char *creds_describe(const creds_provider_t *p, char *buf, size_t len) {
  if (!len) return buf;
  if (!p->have_cached) {
    snprintf(buf, len, "no credentials resolved yet");
    return buf;
  }
  char exp[40] = "never";
  long long left = 0;
  if (p->cached.expiration) {
    tf_rfc3339((tf_time_t){p->cached.expiration, 0}, exp, sizeof exp);
    left = (long long)(p->cached.expiration - now_s());
  }
  if (p->cached.expiration)
    snprintf(buf, len, "source=%s access_key_id=%s session_token=%s expires=%s (in %llds)", p->cached.source,
             p->cached.access_key_id, p->cached.session_token[0] ? "yes" : "no", exp, left);
  else
    snprintf(buf, len, "source=%s access_key_id=%s session_token=%s expires=never", p->cached.source,
             p->cached.access_key_id, p->cached.session_token[0] ? "yes" : "no");
  return buf;
}
