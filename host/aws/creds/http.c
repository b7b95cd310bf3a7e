/* Credentials over HTTP (http.h, on the loop): EC2 IMDSv2, ECS/EKS container endpoint,
 * STS AssumeRole (SigV4-signed query API) and AssumeRoleWithWebIdentity (unsigned).
 * Every fetch is a small state machine; its callback runs from the loop. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "aws/creds/internal.h"
#include "aws/sigv4.h"

#define IMDS_DEFAULT "http://169.254.169.254"
#define ECS_HOST "169.254.170.2"
#define CREDS_MAX_BODY (64u << 10)
#define URL_MAX 2048

typedef enum { F_IMDS, F_IMDS_REGION, F_ECS, F_STS } fetch_kind_t;

struct creds_fetch {
  http_client_t *http;
  fetch_kind_t kind;
  int step;
  uint64_t req;
  long timeout_ms;
  creds_fetch_fn fn;
  void *ud;
  char base[URL_MAX];      /* IMDS endpoint without trailing '/' */
  char token[256];         /* IMDSv2 session token */
  char role[256];          /* IMDS role name, STS role ARN (for errors) */
  const char *source;      /* "imds", "ecs", "assume-role", "web-identity" */
};

static void errf(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t len, const char *fmt, ...) {
  va_list ap;
  if (!err || !len) return;
  va_start(ap, fmt);
  vsnprintf(err, len, fmt, ap);
  va_end(ap);
}

static void fetch_free(creds_fetch_t *f) {
  explicit_bzero(f->token, sizeof f->token);
  free(f);
}

/* Finish: free the fetch first, then call back (the callback may start a new fetch). */
static void finish(creds_fetch_t *f, const creds_t *c, const char *err) {
  creds_fetch_fn fn = f->fn;
  void *ud = f->ud;
  fetch_free(f);
  fn(ud, c, err);
}

static void fail(creds_fetch_t *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(creds_fetch_t *f, const char *fmt, ...) {
  char err[CREDS_ERR_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, sizeof err, fmt, ap);
  va_end(ap);
  finish(f, NULL, err);
}

static void on_done(void *ud, const http_response_t *resp);

static int send_req(creds_fetch_t *f, const char *method, const char *url, const char *const *hdrs, size_t nh,
                    const char *body, size_t blen) {
  http_request_t rq = {.method = method, .url = url, .headers = hdrs, .nheaders = nh, .body = body,
                       .body_len = blen, .connect_timeout_ms = f->timeout_ms, .timeout_ms = f->timeout_ms,
                       .max_response_bytes = CREDS_MAX_BODY};
  f->req = http_send(f->http, &rq, on_done, f);
  return f->req ? 0 : -1;
}

void creds_fetch_cancel(creds_fetch_t *f) {
  if (!f) return;
  if (f->req) http_cancel(f->http, f->req);
  fetch_free(f);
}

static creds_fetch_t *fetch_new(const fetch_env_t *e, fetch_kind_t kind, long timeout_ms, const char *source,
                                creds_fetch_fn fn, void *ud) {
  creds_fetch_t *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->http = e->http;
  f->kind = kind;
  f->timeout_ms = timeout_ms;
  f->fn = fn;
  f->ud = ud;
  f->source = source;
  return f;
}

/* A transport failure or non-2xx status as text; 0 when the response is a success. */
static int bad_status(const http_response_t *r, const char *what, const char *url, char *err, size_t len) {
  if (r->status == 0) {
    errf(err, len, "%s at %s failed: %s%s", what, url, r->error ? r->error : "transport error",
         r->timed_out ? " (timed out)" : "");
    return -1;
  }
  if (r->status < 200 || r->status > 299) {
    errf(err, len, "%s at %s answered HTTP %d", what, url, r->status);
    return -1;
  }
  return 0;
}

/* ---- IMDSv2 -------------------------------------------------------------------------- */

int creds_imds_disabled(void) {
  const char *v = getenv("AWS_EC2_METADATA_DISABLED");
  return v && strcasecmp(v, "true") == 0;
}

static int imds_base(char *out, size_t len) {
  const char *ep = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
  if (!ep || !*ep) ep = IMDS_DEFAULT;
  size_t n = strlen(ep);
  while (n && ep[n - 1] == '/') n--;
  if (n + 1 > len) return -1;
  memcpy(out, ep, n);
  out[n] = 0;
  return 0;
}

static int imds_get(creds_fetch_t *f, const char *path) {
  char url[URL_MAX + 300], hdr[300];
  int a = snprintf(url, sizeof url, "%s%s", f->base, path);
  int b = snprintf(hdr, sizeof hdr, "X-aws-ec2-metadata-token: %s", f->token);
  if (a < 0 || (size_t)a >= sizeof url || b < 0 || (size_t)b >= sizeof hdr) return -1;
  const char *h[] = {hdr};
  int rc = send_req(f, "GET", url, h, 1, NULL, 0);
  explicit_bzero(hdr, sizeof hdr);
  return rc;
}

static void imds_step(creds_fetch_t *f, const http_response_t *r) {
  char err[CREDS_ERR_MAX], path[400];
  static const char *const what[] = {"IMDSv2 token request", "IMDS role listing", "IMDS role credentials"};
  const char *w = f->kind == F_IMDS_REGION && f->step == 1 ? "IMDS region request" : what[f->step];
  if (f->step == 1 && f->kind == F_IMDS && r->status == 404) {
    fail(f, "EC2 instance metadata at %s has no IAM role attached to this instance", f->base);
    return;
  }
  if (bad_status(r, w, f->base, err, sizeof err) != 0) { fail(f, "%s", err); return; }
  creds_t c;
  memset(&c, 0, sizeof c);
  if (f->step == 0) {
    if (r->body_len == 0 || creds_copy_str(f->token, sizeof f->token, r->body) != 0) {
      fail(f, "IMDSv2 at %s returned an unusable session token", f->base);
      return;
    }
    f->step = 1;
    const char *p = f->kind == F_IMDS_REGION ? "/latest/meta-data/placement/region"
                                             : "/latest/meta-data/iam/security-credentials/";
    if (imds_get(f, p) != 0) fail(f, "could not start the IMDS request to %s", f->base);
    return;
  }
  if (f->kind == F_IMDS_REGION) {
    size_t n = strcspn(r->body, "\r\n \t");
    if (n == 0 || n >= CREDS_REGION_MAX) { fail(f, "IMDS at %s returned no region", f->base); return; }
    memcpy(c.source, r->body, n);
    c.source[n] = 0;
    finish(f, &c, NULL);
    return;
  }
  if (f->step == 1) {
    size_t n = strcspn(r->body, "\r\n");
    if (n == 0 || n >= sizeof f->role) { fail(f, "IMDS at %s lists no IAM role", f->base); return; }
    memcpy(f->role, r->body, n);
    f->role[n] = 0;
    f->step = 2;
    int k = snprintf(path, sizeof path, "/latest/meta-data/iam/security-credentials/%s", f->role);
    if (k < 0 || (size_t)k >= sizeof path || imds_get(f, path) != 0) fail(f, "could not start the IMDS request");
    return;
  }
  char code[64];
  if (creds_json_get(r->body, r->body_len, "Code", code, sizeof code) == 0 && strcmp(code, "Success") != 0) {
    fail(f, "IMDS credentials for role %s: Code %s", f->role, code);
    return;
  }
  if (creds_from_json(r->body, r->body_len, "Token", &c, err, sizeof err) != 0) {
    fail(f, "IMDS credentials for role %s at %s: %s", f->role, f->base, err);
    return;
  }
  snprintf(c.source, sizeof c.source, "imds");
  finish(f, &c, NULL);
  creds_wipe(&c);
}

static creds_fetch_t *imds_start(const fetch_env_t *e, fetch_kind_t kind, creds_fetch_fn fn, void *ud, char *err,
                                 size_t errlen) {
  creds_fetch_t *f = fetch_new(e, kind, e->imds_timeout_ms, "imds", fn, ud);
  if (!f) { errf(err, errlen, "out of memory"); return NULL; }
  if (imds_base(f->base, sizeof f->base) != 0) {
    errf(err, errlen, "AWS_EC2_METADATA_SERVICE_ENDPOINT is too long");
    fetch_free(f);
    return NULL;
  }
  char url[URL_MAX + 32];
  snprintf(url, sizeof url, "%s/latest/api/token", f->base);
  const char *h[] = {"X-aws-ec2-metadata-token-ttl-seconds: 21600"};
  if (send_req(f, "PUT", url, h, 1, "", 0) != 0) {
    errf(err, errlen, "could not start the IMDSv2 token request to %s", f->base);
    fetch_free(f);
    return NULL;
  }
  return f;
}

creds_fetch_t *creds_fetch_imds(const fetch_env_t *e, creds_fetch_fn fn, void *ud, char *err, size_t errlen) {
  return imds_start(e, F_IMDS, fn, ud, err, errlen);
}

creds_fetch_t *creds_fetch_imds_region(const fetch_env_t *e, creds_fetch_fn fn, void *ud, char *err, size_t errlen) {
  return imds_start(e, F_IMDS_REGION, fn, ud, err, errlen);
}

/* ---- ECS / EKS container credentials ------------------------------------------------- */

int creds_ecs_configured(void) {
  const char *rel = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  const char *full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  return (rel && *rel) || (full && *full);
}

/* FULL_URI over plain http must point at loopback or the ECS/EKS agent addresses. */
static int full_uri_allowed(const char *url) {
  if (strncasecmp(url, "https://", 8) == 0) return 1;
  if (strncasecmp(url, "http://", 7) != 0) return 0;
  const char *h = url + 7;
  static const char *const ok_hosts[] = {"127.", "localhost", "[::1]", "169.254.170.2", "169.254.170.23",
                                         "[fd00:ec2::23]"};
  for (size_t i = 0; i < sizeof ok_hosts / sizeof ok_hosts[0]; i++) {
    size_t n = strlen(ok_hosts[i]);
    if (strncasecmp(h, ok_hosts[i], n) != 0) continue;
    char next = h[n];
    if (ok_hosts[i][n - 1] == '.' || next == 0 || next == ':' || next == '/') return 1;
  }
  return 0;
}

static int ecs_url(char *url, size_t len, char *err, size_t errlen) {
  const char *rel = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  int n;
  if (rel && *rel) {
    const char *host = getenv("ROTATOR_TEST_ECS_HOST");
    n = snprintf(url, len, "http://%s%s%s", host && *host ? host : ECS_HOST, rel[0] == '/' ? "" : "/", rel);
  } else {
    const char *full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    if (!full_uri_allowed(full)) {
      errf(err, errlen, "AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, or http to a loopback or the ECS/EKS "
           "agent address (169.254.170.2, 169.254.170.23)");
      return -1;
    }
    n = snprintf(url, len, "%s", full);
  }
  if (n < 0 || (size_t)n >= len) { errf(err, errlen, "container credentials URI is too long"); return -1; }
  return 0;
}

/* "Authorization: TOKEN" from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or _TOKEN, or "". */
static int ecs_auth(char *hdr, size_t len, char *err, size_t errlen) {
  const char *file = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
  const char *tok = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
  char buf[CREDS_TOKEN_MAX];
  hdr[0] = 0;
  if (file && *file) {
    FILE *fp = fopen(file, "r");
    if (!fp) {
      errf(err, errlen, "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s: %s", file, strerror(errno));
      return -1;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    buf[strcspn(buf, "\r\n")] = 0;
    tok = buf;
  }
  if (tok && *tok) {
    int n = snprintf(hdr, len, "Authorization: %s", tok);
    explicit_bzero(buf, sizeof buf);
    if (n < 0 || (size_t)n >= len) { errf(err, errlen, "container authorization token is too long"); return -1; }
  }
  return 0;
}

static void ecs_step(creds_fetch_t *f, const http_response_t *r) {
  char err[CREDS_ERR_MAX];
  creds_t c;
  if (bad_status(r, "container credentials request", f->base, err, sizeof err) != 0) { fail(f, "%s", err); return; }
  if (creds_from_json(r->body, r->body_len, "Token", &c, err, sizeof err) != 0) {
    fail(f, "container credentials from %s: %s", f->base, err);
    return;
  }
  snprintf(c.source, sizeof c.source, "ecs");
  finish(f, &c, NULL);
  creds_wipe(&c);
}

creds_fetch_t *creds_fetch_ecs(const fetch_env_t *e, creds_fetch_fn fn, void *ud, char *err, size_t errlen) {
  creds_fetch_t *f = fetch_new(e, F_ECS, e->imds_timeout_ms * 2, "ecs", fn, ud);
  char hdr[CREDS_TOKEN_MAX + 32];
  if (!f) { errf(err, errlen, "out of memory"); return NULL; }
  if (ecs_url(f->base, sizeof f->base, err, errlen) != 0 || ecs_auth(hdr, sizeof hdr, err, errlen) != 0) {
    fetch_free(f);
    return NULL;
  }
  const char *h[] = {hdr};
  int rc = send_req(f, "GET", f->base, h, hdr[0] ? 1 : 0, NULL, 0);
  explicit_bzero(hdr, sizeof hdr);
  if (rc != 0) {
    errf(err, errlen, "could not start the container credentials request to %s", f->base);
    fetch_free(f);
    return NULL;
  }
  return f;
}

/* ---- STS ------------------------------------------------------------------------------ */

static int sts_endpoint(const char *region, char *out, size_t len) {
  const char *ep = getenv("AWS_ENDPOINT_URL_STS");
  if (!ep || !*ep) ep = getenv("AWS_ENDPOINT_URL");
  int n;
  if (ep && *ep) n = snprintf(out, len, "%s", ep);
  else if (region && *region) n = snprintf(out, len, "https://sts.%s.amazonaws.com/", region);
  else n = snprintf(out, len, "https://sts.amazonaws.com/");
  return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Splits "scheme://host[:port][/path]" into host (with port) and path ("/" default). */
static int split_url(const char *url, char *host, size_t hlen, char *path, size_t plen) {
  const char *p = strstr(url, "://");
  if (!p) return -1;
  p += 3;
  size_t hn = strcspn(p, "/?");
  if (hn == 0 || hn >= hlen) return -1;
  memcpy(host, p, hn);
  host[hn] = 0;
  const char *rest = p + hn;
  size_t pn = strcspn(rest, "?");
  int n = pn ? snprintf(path, plen, "%.*s", (int)pn, rest) : snprintf(path, plen, "/");
  return n < 0 || (size_t)n >= plen ? -1 : 0;
}

/* Appends "&name=urlencoded(value)" to the body. */
static int form_add(char *body, size_t cap, size_t *len, const char *name, const char *value) {
  static const char hex[] = "0123456789ABCDEF";
  int n = snprintf(body + *len, cap - *len, "%s%s=", *len ? "&" : "", name);
  if (n < 0 || (size_t)n >= cap - *len) return -1;
  *len += (size_t)n;
  for (const unsigned char *v = (const unsigned char *)value; *v; v++) {
    int plain = isalnum(*v) || *v == '-' || *v == '_' || *v == '.' || *v == '~';
    if (*len + (plain ? 1 : 3) >= cap) return -1;
    if (plain) body[(*len)++] = (char)*v;
    else { body[(*len)++] = '%'; body[(*len)++] = hex[*v >> 4]; body[(*len)++] = hex[*v & 15]; }
  }
  body[*len] = 0;
  return 0;
}

static int sts_body(const plan_role_t *role, const char *action, const char *web_token, char *body, size_t cap,
                    size_t *len) {
  char session[80], dur[16];
  if (role->session_name) snprintf(session, sizeof session, "%s", role->session_name);
  else snprintf(session, sizeof session, "rotator-%lld", (long long)time(NULL));
  *len = 0;
  if (form_add(body, cap, len, "Action", action) || form_add(body, cap, len, "Version", "2011-06-15") ||
      form_add(body, cap, len, "RoleArn", role->role_arn) || form_add(body, cap, len, "RoleSessionName", session))
    return -1;
  if (role->external_id && form_add(body, cap, len, "ExternalId", role->external_id)) return -1;
  if (role->duration_s) {
    snprintf(dur, sizeof dur, "%d", role->duration_s);
    if (form_add(body, cap, len, "DurationSeconds", dur)) return -1;
  }
  if (web_token && form_add(body, cap, len, "WebIdentityToken", web_token)) return -1;
  return 0;
}

static void sts_step(creds_fetch_t *f, const http_response_t *r) {
  char code[128] = "", msg[400] = "";
  creds_t c;
  if (r->status == 0) {
    fail(f, "STS %s for %s at %s failed: %s%s", f->source, f->role, f->base, r->error ? r->error : "transport error",
         r->timed_out ? " (timed out)" : "");
    return;
  }
  if (r->status < 200 || r->status > 299) {
    (void)creds_xml_get(r->body, r->body_len, "Code", code, sizeof code);
    (void)creds_xml_get(r->body, r->body_len, "Message", msg, sizeof msg);
    fail(f, "STS %s for %s answered HTTP %d %s%s%s", f->source, f->role, r->status, code, msg[0] ? ": " : "", msg);
    return;
  }
  char exp[64];
  memset(&c, 0, sizeof c);
  if (creds_xml_get(r->body, r->body_len, "AccessKeyId", c.access_key_id, sizeof c.access_key_id) != 0 ||
      creds_xml_get(r->body, r->body_len, "SecretAccessKey", c.secret_access_key, sizeof c.secret_access_key) != 0 ||
      creds_xml_get(r->body, r->body_len, "SessionToken", c.session_token, sizeof c.session_token) != 0 ||
      creds_xml_get(r->body, r->body_len, "Expiration", exp, sizeof exp) != 0 || creds_parse_time(exp, &c.expiration) != 0) {
    creds_wipe(&c);
    fail(f, "STS %s for %s: the response has no usable Credentials element", f->source, f->role);
    return;
  }
  snprintf(c.source, sizeof c.source, "%s", f->source);
  finish(f, &c, NULL);
  creds_wipe(&c);
}

typedef struct {
  char url[URL_MAX], host[256], path[URL_MAX];
  char body[16384];
  size_t blen;
  char h_host[300], h_date[64], h_token[CREDS_TOKEN_MAX + 32], h_auth[1024];
} sts_req_t;

static int sts_sign(sts_req_t *q, const creds_t *src, const char *region) {
  static const char ctype[] = "application/x-www-form-urlencoded; charset=utf-8";
  sigv4_header h[] = {{"host", q->host}, {"content-type", ctype}};
  sigv4_request rq = {.method = "POST", .path = q->path, .headers = h, .n_headers = 2, .body = q->body,
                      .body_len = q->blen};
  sigv4_credentials cr = {src->access_key_id, src->secret_access_key, src->session_token};
  sigv4_params p = {.region = region && *region ? region : "us-east-1", .service = "sts", .time = time(NULL),
                    .flags = SIGV4_FLAGS_DEFAULT};
  char auth[900];
  sigv4_output out = {.buf = auth, .size = sizeof auth};
  if (sigv4_sign(&rq, &cr, &p, &out) != SIGV4_OK) return -1;
  snprintf(q->h_auth, sizeof q->h_auth, "Authorization: %s", auth);
  snprintf(q->h_date, sizeof q->h_date, "X-Amz-Date: %s", out.amz_date);
  if (src->session_token[0]) {
    int n = snprintf(q->h_token, sizeof q->h_token, "X-Amz-Security-Token: %s", src->session_token);
    if (n < 0 || (size_t)n >= sizeof q->h_token) return -1;
  }
  return 0;
}

static creds_fetch_t *sts_start(const fetch_env_t *e, const creds_t *src, const plan_role_t *role,
                                const char *web_token, creds_fetch_fn fn, void *ud, char *err, size_t errlen) {
  const char *action = src ? "AssumeRole" : "AssumeRoleWithWebIdentity";
  creds_fetch_t *f = fetch_new(e, F_STS, e->sts_timeout_ms, src ? "assume-role" : "web-identity", fn, ud);
  sts_req_t *q = calloc(1, sizeof *q);
  creds_fetch_t *ret = NULL;
  if (!f || !q) { errf(err, errlen, "out of memory"); goto out; }
  snprintf(f->role, sizeof f->role, "%s", role->role_arn);
  if (sts_endpoint(e->region, q->url, sizeof q->url) != 0 ||
      split_url(q->url, q->host, sizeof q->host, q->path, sizeof q->path) != 0) {
    errf(err, errlen, "the STS endpoint (AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL) is not a usable URL");
    goto out;
  }
  snprintf(f->base, sizeof f->base, "%s", q->url);
  if (sts_body(role, action, web_token, q->body, sizeof q->body, &q->blen) != 0) {
    errf(err, errlen, "STS %s request for %s is too large", action, role->role_arn);
    goto out;
  }
  const char *h[5] = {"Content-Type: application/x-www-form-urlencoded; charset=utf-8", "Accept: application/xml"};
  size_t nh = 2;
  if (src) {
    if (sts_sign(q, src, e->region) != 0) {
      errf(err, errlen, "could not sign the STS AssumeRole request for %s: %s", role->role_arn, sigv4_error_detail());
      goto out;
    }
    h[nh++] = q->h_date;
    h[nh++] = q->h_auth;
    if (q->h_token[0]) h[nh++] = q->h_token;
  }
  if (send_req(f, "POST", q->url, h, nh, q->body, q->blen) != 0) {
    errf(err, errlen, "could not start the STS request to %s", q->url);
    goto out;
  }
  ret = f;
  f = NULL;
out:
  if (q) { explicit_bzero(q, sizeof *q); free(q); }
  if (f) fetch_free(f);
  return ret;
}

creds_fetch_t *creds_fetch_assume_role(const fetch_env_t *e, const creds_t *src, const plan_role_t *role,
                                       creds_fetch_fn fn, void *ud, char *err, size_t errlen) {
  return sts_start(e, src, role, NULL, fn, ud, err, errlen);
}

creds_fetch_t *creds_fetch_web_identity(const fetch_env_t *e, const char *token_file, const plan_role_t *role,
                                        creds_fetch_fn fn, void *ud, char *err, size_t errlen) {
  char tok[CREDS_TOKEN_MAX * 2];
  FILE *fp = fopen(token_file, "r");
  if (!fp) {
    errf(err, errlen, "cannot read the web identity token file %s: %s", token_file, strerror(errno));
    return NULL;
  }
  size_t n = fread(tok, 1, sizeof tok - 1, fp);
  int bad = ferror(fp);
  fclose(fp);
  tok[n] = 0;
  tok[strcspn(tok, "\r\n")] = 0;
  if (bad || !tok[0]) {
    errf(err, errlen, "the web identity token file %s is empty or unreadable", token_file);
    return NULL;
  }
  creds_fetch_t *f = sts_start(e, NULL, role, tok, fn, ud, err, errlen);
  explicit_bzero(tok, sizeof tok);
  return f;
}

/* ---- dispatch ------------------------------------------------------------------------- */

static void on_done(void *ud, const http_response_t *resp) {
  creds_fetch_t *f = ud;
  f->req = 0;
  switch (f->kind) {
    case F_IMDS:
    case F_IMDS_REGION: imds_step(f, resp); break;
    case F_ECS: ecs_step(f, resp); break;
    case F_STS: sts_step(f, resp); break;
  }
}
