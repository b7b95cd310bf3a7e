/* The AWS shared config (~/.aws/config) and credentials (~/.aws/credentials) files:
 * INI parsing with the SDKs' conventions, and resolving a profile into a credential plan
 * (static keys, role chains through source_profile, web identity, credential_process). */
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "aws/creds/internal.h"

#define INI_MAX_BYTES (1u << 20)

typedef struct {
  char *key, *val;
} ini_kv_t;

typedef struct {
  char *name;
  ini_kv_t *kv;
  size_t nkv, cap;
} ini_section_t;

struct ini_file {
  ini_section_t *sec;
  size_t nsec, cap;
};

static void errf(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t len, const char *fmt, ...) {
  va_list ap;
  if (!err || !len) return;
  va_start(ap, fmt);
  vsnprintf(err, len, fmt, ap);
  va_end(ap);
}

/* ---- parsing ------------------------------------------------------------------------- */

static char *trim(char *s, char *end) {
  while (s < end && isspace((unsigned char)*s)) s++;
  while (end > s && isspace((unsigned char)end[-1])) end--;
  *end = 0;
  return s;
}

static ini_section_t *section_get(ini_file_t *f, const char *name, int create) {
  for (size_t i = 0; i < f->nsec; i++)
    if (strcmp(f->sec[i].name, name) == 0) return &f->sec[i];
  if (!create) return NULL;
  if (f->nsec == f->cap) {
    size_t ncap = f->cap ? f->cap * 2 : 8;
    ini_section_t *n = realloc(f->sec, ncap * sizeof *n);
    if (!n) return NULL;
    f->sec = n;
    f->cap = ncap;
  }
  ini_section_t *s = &f->sec[f->nsec];
  memset(s, 0, sizeof *s);
  if (!(s->name = strdup(name))) return NULL;
  f->nsec++;
  return s;
}

static int section_add(ini_section_t *s, const char *key, const char *val) {
  if (s->nkv == s->cap) {
    size_t ncap = s->cap ? s->cap * 2 : 8;
    ini_kv_t *n = realloc(s->kv, ncap * sizeof *n);
    if (!n) return -1;
    s->kv = n;
    s->cap = ncap;
  }
  char *k = strdup(key), *v = strdup(val);
  if (!k || !v) { free(k); free(v); return -1; }
  s->kv[s->nkv].key = k;
  s->kv[s->nkv].val = v;
  s->nkv++;
  return 0;
}

/* "[profile NAME]" -> NAME in config files; "[default]" either way. NULL: ignore it. */
static const char *section_profile_name(char *inner, int is_config) {
  if (!is_config) return *inner ? inner : NULL;
  if (strcmp(inner, "default") == 0) return inner;
  if (strncmp(inner, "profile", 7) == 0 && isspace((unsigned char)inner[7])) {
    char *n = inner + 8;
    while (isspace((unsigned char)*n)) n++;
    return *n ? n : NULL;
  }
  return NULL;   /* sso-session, services, or a bare name: not a profile */
}

/* Strips a comment that starts with whitespace followed by '#' or ';'. */
static void strip_inline_comment(char *v) {
  for (char *p = v; *p; p++)
    if ((*p == '#' || *p == ';') && p > v && isspace((unsigned char)p[-1])) { *p = 0; return; }
}

static int parse_line(ini_file_t *f, ini_section_t **cur, char *line, char *end, int is_config) {
  if (line == end) return 0;
  if (isspace((unsigned char)*line)) return 0;            /* continuation / sub-property */
  char *s = trim(line, end);
  if (!*s || *s == '#' || *s == ';') return 0;
  if (*s == '[') {
    char *close = strchr(s, ']');
    *cur = NULL;
    if (!close) return 0;
    const char *name = section_profile_name(trim(s + 1, close), is_config);
    if (!name) return 0;
    *cur = section_get(f, name, 1);
    return *cur ? 0 : -1;
  }
  char *eq = strchr(s, '=');
  if (!eq || !*cur) return 0;
  char *key = trim(s, eq);
  char *val = eq + 1;
  strip_inline_comment(val);
  val = trim(val, val + strlen(val));
  if (!*key) return 0;
  return section_add(*cur, key, val);
}

ini_file_t *ini_parse(const char *text, size_t len, int is_config) {
  ini_file_t *f = calloc(1, sizeof *f);
  char *buf = malloc(len + 1);
  if (!f || !buf) { free(f); free(buf); return NULL; }
  memcpy(buf, text, len);
  buf[len] = 0;
  ini_section_t *cur = NULL;
  char *p = buf, *end = buf + len;
  while (p < end) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    char *le = nl ? nl : end;
    char *ce = le;
    if (ce > p && ce[-1] == '\r') ce--;
    *ce = 0;
    if (parse_line(f, &cur, p, ce, is_config) != 0) { explicit_bzero(buf, len); free(buf); ini_free(f); return NULL; }
    p = le + 1;
  }
  explicit_bzero(buf, len);
  free(buf);
  return f;
}

static int read_all(FILE *fp, char **out, size_t *outlen) {
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  if (!buf) return -1;
  for (;;) {
    if (n == cap) {
      if (cap >= INI_MAX_BYTES) { free(buf); errno = EFBIG; return -1; }
      char *nb = realloc(buf, cap * 2);
      if (!nb) { free(buf); return -1; }
      buf = nb;
      cap *= 2;
    }
    size_t r = fread(buf + n, 1, cap - n, fp);
    n += r;
    if (r == 0) {
      if (ferror(fp)) { int e = errno ? errno : EIO; explicit_bzero(buf, n); free(buf); errno = e; return -1; }
      break;
    }
  }
  *out = buf;
  *outlen = n;
  return 0;
}

int ini_load(const char *path, int is_config, ini_file_t **out, char *err, size_t errlen) {
  const char *what = is_config ? "AWS config file" : "AWS shared credentials file";
  *out = NULL;
  FILE *fp = fopen(path, "r");
  if (!fp && errno == ENOENT) { *out = ini_parse("", 0, is_config); return *out ? 0 : -1; }
  if (!fp) {
    errf(err, errlen, "cannot read %s %s: %s (fix its permissions or point %s elsewhere)", what, path,
         strerror(errno), is_config ? "AWS_CONFIG_FILE" : "AWS_SHARED_CREDENTIALS_FILE");
    return -1;
  }
  char *buf = NULL;
  size_t len = 0;
  errno = 0;
  int rc = read_all(fp, &buf, &len);
  int e = errno;
  fclose(fp);
  if (rc != 0) {
    errf(err, errlen, "cannot read %s %s: %s (fix it or point %s elsewhere)", what, path, strerror(e),
         is_config ? "AWS_CONFIG_FILE" : "AWS_SHARED_CREDENTIALS_FILE");
    return -1;
  }
  *out = ini_parse(buf, len, is_config);
  explicit_bzero(buf, len);
  free(buf);
  if (!*out) { errf(err, errlen, "out of memory parsing %s %s", what, path); return -1; }
  return 0;
}

void ini_free(ini_file_t *f) {
  if (!f) return;
  for (size_t i = 0; i < f->nsec; i++) {
    for (size_t j = 0; j < f->sec[i].nkv; j++) {
      free(f->sec[i].kv[j].key);
      char *v = f->sec[i].kv[j].val;
      explicit_bzero(v, strlen(v));
      free(v);
    }
    free(f->sec[i].kv);
    free(f->sec[i].name);
  }
  free(f->sec);
  free(f);
}

const char *ini_get(const ini_file_t *f, const char *profile, const char *key) {
  if (!f) return NULL;
  const char *found = NULL;
  for (size_t i = 0; i < f->nsec; i++) {
    if (strcmp(f->sec[i].name, profile) != 0) continue;
    for (size_t j = 0; j < f->sec[i].nkv; j++)
      if (strcasecmp(f->sec[i].kv[j].key, key) == 0) found = f->sec[i].kv[j].val;   /* last wins */
  }
  return found && *found ? found : NULL;
}

int ini_has_profile(const ini_file_t *f, const char *profile) {
  return f && section_get((ini_file_t *)f, profile, 0) != NULL;
}

/* ---- paths --------------------------------------------------------------------------- */

static const char *home_dir(void) {
  const char *h = getenv("HOME");
  if (h && *h) return h;
  struct passwd *pw = getpwuid(getuid());
  return pw && pw->pw_dir ? pw->pw_dir : "";
}

static int expand_path(const char *env, const char *dflt, char *out, size_t len) {
  const char *v = getenv(env);
  if (!v || !*v) v = dflt;
  int n;
  if (v[0] == '~' && (v[1] == '/' || v[1] == 0)) n = snprintf(out, len, "%s%s", home_dir(), v + 1);
  else n = snprintf(out, len, "%s", v);
  return n < 0 || (size_t)n >= len ? -1 : 0;
}

int creds_file_paths(char *config, size_t clen, char *credentials, size_t crlen) {
  if (expand_path("AWS_CONFIG_FILE", "~/.aws/config", config, clen) != 0) return -1;
  return expand_path("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials", credentials, crlen);
}

/* ---- profile resolution -------------------------------------------------------------- */

typedef struct {
  const plan_input_t *in;
  ini_file_t *cfg, *cred;
  const char *visited[CREDS_MAX_CHAIN + 1];
  size_t nvisited;
  char *err;
  size_t errlen;
} resolver_t;

static const char *prop(const resolver_t *r, const char *profile, const char *key) {
  const char *v = ini_get(r->cred, profile, key);
  return v ? v : ini_get(r->cfg, profile, key);
}

static int exists(const resolver_t *r, const char *profile) {
  return ini_has_profile(r->cred, profile) || ini_has_profile(r->cfg, profile);
}

static int dupset(char **dst, const char *src) {
  if (!src) { *dst = NULL; return 0; }
  return (*dst = strdup(src)) ? 0 : -1;
}

static int role_fill(const resolver_t *r, const char *profile, plan_role_t *role) {
  memset(role, 0, sizeof *role);
  const char *d = prop(r, profile, "duration_seconds");
  if (d) {
    char *e;
    long v = strtol(d, &e, 10);
    if (*e || v < 900 || v > 43200) {
      errf(r->err, r->errlen, "profile \"%s\": duration_seconds \"%s\" must be a number of seconds from 900 to 43200",
           profile, d);
      return -1;
    }
    role->duration_s = (int)v;
  }
  if (dupset(&role->role_arn, prop(r, profile, "role_arn")) || dupset(&role->session_name, prop(r, profile, "role_session_name")) ||
      dupset(&role->external_id, prop(r, profile, "external_id")) || dupset(&role->profile, profile)) {
    errf(r->err, r->errlen, "out of memory");
    return -1;
  }
  return 0;
}

static void role_free(plan_role_t *role) {
  free(role->role_arn);
  free(role->session_name);
  free(role->external_id);
  free(role->profile);
  memset(role, 0, sizeof *role);
}

static int push_role(resolver_t *r, const char *profile, creds_plan_t *plan) {
  if (plan->nroles >= CREDS_MAX_CHAIN) {
    errf(r->err, r->errlen, "profile \"%s\": role chain longer than %d profiles", profile, CREDS_MAX_CHAIN);
    return -1;
  }
  if (role_fill(r, profile, &plan->roles[plan->nroles]) != 0) return -1;
  plan->nroles++;
  return 0;
}

static int use_static(resolver_t *r, const char *profile, creds_plan_t *plan) {
  const char *akid = prop(r, profile, "aws_access_key_id");
  const char *secret = prop(r, profile, "aws_secret_access_key");
  if (!secret) {
    errf(r->err, r->errlen, "profile \"%s\" sets aws_access_key_id but not aws_secret_access_key (searched %s and %s)",
         profile, r->in->credentials_path, r->in->config_path);
    return -1;
  }
  plan->kind = PLAN_STATIC;
  if (dupset(&plan->profile, profile) || dupset(&plan->akid, akid) || dupset(&plan->secret, secret) ||
      dupset(&plan->token, prop(r, profile, "aws_session_token"))) {
    errf(r->err, r->errlen, "out of memory");
    return -1;
  }
  return 0;
}

static int use_credential_source(resolver_t *r, const char *profile, const char *cs, creds_plan_t *plan) {
  if (strcmp(cs, "Environment") == 0) plan->kind = PLAN_ENV;
  else if (strcmp(cs, "Ec2InstanceMetadata") == 0) plan->kind = PLAN_IMDS;
  else if (strcmp(cs, "EcsContainer") == 0) plan->kind = PLAN_ECS;
  else {
    errf(r->err, r->errlen, "profile \"%s\": credential_source \"%s\" must be Environment, Ec2InstanceMetadata or EcsContainer",
         profile, cs);
    return -1;
  }
  return dupset(&plan->profile, profile);
}

static int resolve(resolver_t *r, const char *profile, const char *referrer, creds_plan_t *plan);

static int resolve_role(resolver_t *r, const char *profile, creds_plan_t *plan) {
  const char *src = prop(r, profile, "source_profile");
  const char *cs = prop(r, profile, "credential_source");
  const char *wif = prop(r, profile, "web_identity_token_file");
  if (src && cs) {
    errf(r->err, r->errlen, "profile \"%s\" sets both source_profile and credential_source; keep one", profile);
    return -1;
  }
  if (!src && !cs && wif) {
    plan->kind = PLAN_WEB_IDENTITY;
    if (dupset(&plan->profile, profile) || dupset(&plan->token_file, wif)) return -1;
    return role_fill(r, profile, &plan->wi);
  }
  int rc;
  if (cs) rc = use_credential_source(r, profile, cs, plan);
  else if (!src) {
    errf(r->err, r->errlen, "profile \"%s\" sets role_arn but none of source_profile, credential_source or "
         "web_identity_token_file", profile);
    return -1;
  } else if (strcmp(src, profile) == 0) {
    if (!prop(r, profile, "aws_access_key_id")) {
      errf(r->err, r->errlen, "profile \"%s\" is its own source_profile but has no aws_access_key_id", profile);
      return -1;
    }
    rc = use_static(r, profile, plan);
  } else rc = resolve(r, src, profile, plan);
  return rc != 0 ? rc : push_role(r, profile, plan);
}

static int check_loop(resolver_t *r, const char *profile) {
  for (size_t i = 0; i < r->nvisited; i++) {
    if (strcmp(r->visited[i], profile) != 0) continue;
    char chain[512] = "";
    size_t off = 0;
    for (size_t j = 0; j < r->nvisited && off < sizeof chain; j++) {
      int n = snprintf(chain + off, sizeof chain - off, "%s -> ", r->visited[j]);
      if (n < 0) break;
      off += (size_t)n;
    }
    errf(r->err, r->errlen, "source_profile loop: %s%s (in %s / %s); make one profile in the chain hold keys",
         chain, profile, r->in->config_path, r->in->credentials_path);
    return -1;
  }
  if (r->nvisited > CREDS_MAX_CHAIN) {
    errf(r->err, r->errlen, "profile \"%s\": role chain longer than %d profiles", profile, CREDS_MAX_CHAIN);
    return -1;
  }
  r->visited[r->nvisited++] = profile;
  return 0;
}

static int resolve(resolver_t *r, const char *profile, const char *referrer, creds_plan_t *plan) {
  if (check_loop(r, profile) != 0) return PLAN_ERR;
  if (!exists(r, profile)) {
    if (referrer)
      errf(r->err, r->errlen, "profile \"%s\" names source_profile \"%s\", which does not exist (searched %s and %s)",
           referrer, profile, r->in->config_path, r->in->credentials_path);
    else
      errf(r->err, r->errlen, "AWS profile \"%s\" not found (searched %s and %s); set AWS_PROFILE to an existing "
           "profile or add it", profile, r->in->config_path, r->in->credentials_path);
    return PLAN_ERR;
  }
  if (prop(r, profile, "role_arn")) return resolve_role(r, profile, plan);
  if (prop(r, profile, "aws_access_key_id")) return use_static(r, profile, plan);
  const char *proc = prop(r, profile, "credential_process");
  if (proc) {
    plan->kind = PLAN_PROCESS;
    return dupset(&plan->profile, profile) || dupset(&plan->process, proc) ? PLAN_ERR : PLAN_OK;
  }
  if (prop(r, profile, "aws_secret_access_key")) {
    errf(r->err, r->errlen, "profile \"%s\" sets aws_secret_access_key but not aws_access_key_id", profile);
    return PLAN_ERR;
  }
  if (!referrer) return PLAN_NONE;   /* e.g. a profile with only region: chain moves on */
  errf(r->err, r->errlen, "profile \"%s\" (source_profile of \"%s\") has no credentials: set aws_access_key_id and "
       "aws_secret_access_key, role_arn, or credential_process", profile, referrer);
  return PLAN_ERR;
}

static int load_both(resolver_t *r) {
  if (ini_load(r->in->config_path, 1, &r->cfg, r->err, r->errlen) != 0) return -1;
  return ini_load(r->in->credentials_path, 0, &r->cred, r->err, r->errlen);
}

int creds_plan_resolve(const plan_input_t *in, creds_plan_t *plan, char *err, size_t errlen) {
  resolver_t r = {.in = in, .err = err, .errlen = errlen};
  memset(plan, 0, sizeof *plan);
  if (err && errlen) err[0] = 0;
  int rc = load_both(&r);
  if (rc == 0) {
    if (dupset(&plan->region, prop(&r, in->profile, "region")) != 0) rc = PLAN_ERR;
    else if (!exists(&r, in->profile) && !in->profile_explicit) rc = PLAN_NONE;
    else rc = resolve(&r, in->profile, NULL, plan);
  } else rc = PLAN_ERR;
  ini_free(r.cfg);
  ini_free(r.cred);
  if (rc == PLAN_ERR && err && errlen && !err[0]) errf(err, errlen, "out of memory resolving AWS profile");
  if (rc != PLAN_OK) {
    char *region = plan->region;
    plan->region = NULL;
    creds_plan_free(plan);
    plan->region = rc == PLAN_NONE ? region : (free(region), NULL);
  }
  return rc;
}

static void free_secret(char *s) {
  if (!s) return;
  explicit_bzero(s, strlen(s));
  free(s);
}

void creds_plan_free(creds_plan_t *plan) {
  free(plan->profile);
  free(plan->akid);
  free_secret(plan->secret);
  free_secret(plan->token);
  free(plan->token_file);
  role_free(&plan->wi);
  free(plan->process);
  for (size_t i = 0; i < plan->nroles; i++) role_free(&plan->roles[i]);
  free(plan->region);
  memset(plan, 0, sizeof *plan);
}

char *creds_file_region(const plan_input_t *in) {
  resolver_t r = {.in = in};
  char *out = NULL;
  if (load_both(&r) == 0) {
    const char *v = prop(&r, in->profile, "region");
    if (v) out = strdup(v);
  }
  ini_free(r.cfg);
  ini_free(r.cred);
  return out;
}
