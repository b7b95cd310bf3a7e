/* EC2 instance metadata (IMDSv2): a session token, then the role's credentials or the
 * instance's region. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aws/creds/fetch.h"

#define IMDS_DEFAULT "http://169.254.169.254"
#define IMDS_ROLES "/latest/meta-data/iam/security-credentials/"
#define IMDS_REGION "/latest/meta-data/placement/region"

enum { S_TOKEN, S_LIST, S_CREDS };

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
  int rc = fetch_send(f, "GET", url, h, 1, NULL, 0);
  explicit_bzero(hdr, sizeof hdr);
  return rc;
}

static void got_token(creds_fetch_t *f, const http_response_t *r) {
  if (r->body_len == 0 || creds_copy_str(f->token, sizeof f->token, r->body) != 0) {
    fetch_fail(f, "IMDSv2 at %s returned an unusable session token (at most %zu bytes)", f->base,
               sizeof f->token - 1);
    return;
  }
  f->step_no = S_LIST;
  if (imds_get(f, f->region_only ? IMDS_REGION : IMDS_ROLES) != 0)
    fetch_fail(f, "could not start the IMDS request to %s", f->base);
}

static void got_region(creds_fetch_t *f, const http_response_t *r) {
  creds_t c;
  memset(&c, 0, sizeof c);
  size_t n = creds_first_word(r->body, r->body_len, "\r\n \t");
  if (n == 0 || n >= CREDS_REGION_MAX) {
    fetch_fail(f, "IMDS at %s returned no region", f->base);
    return;
  }
  memcpy(c.source, r->body, n);
  c.source[n] = 0;
  fetch_finish(f, &c, NULL);
}

static void got_role(creds_fetch_t *f, const http_response_t *r) {
  char path[400];
  size_t n = creds_first_word(r->body, r->body_len, "\r\n");
  if (n == 0 || n >= sizeof f->role) {
    fetch_fail(f, "IMDS at %s lists no IAM role (or a name over %zu bytes)", f->base, sizeof f->role - 1);
    return;
  }
  memcpy(f->role, r->body, n);
  f->role[n] = 0;
  f->step_no = S_CREDS;
  int k = snprintf(path, sizeof path, IMDS_ROLES "%s", f->role);
  if (k < 0 || (size_t)k >= sizeof path || imds_get(f, path) != 0) fetch_fail(f, "could not start the IMDS request");
}

static void got_creds(creds_fetch_t *f, const http_response_t *r) {
  char err[CREDS_ERR_MAX];
  creds_t c;
  if (creds_from_imds_json(r->body, r->body_len, &c, err, sizeof err) != 0) {
    fetch_fail(f, "IMDS credentials for role %s at %s: %s", f->role, f->base, err);
    return;
  }
  snprintf(c.source, sizeof c.source, "imds");
  fetch_finish(f, &c, NULL);
  creds_wipe(&c);
}

static void imds_step(creds_fetch_t *f, const http_response_t *r) {
  static const char *const what[] = {"IMDSv2 token request", "IMDS role listing", "IMDS role credentials"};
  char err[CREDS_ERR_MAX];
  const char *w = f->region_only && f->step_no == S_LIST ? "IMDS region request" : what[f->step_no];
  if (f->step_no == S_LIST && !f->region_only && r->status == 404) {
    fetch_fail(f, "EC2 instance metadata at %s has no IAM role attached to this instance", f->base);
    return;
  }
  if (fetch_bad_status(r, w, f->base, err, sizeof err) != 0) fetch_fail(f, "%s", err);
  else if (f->step_no == S_TOKEN) got_token(f, r);
  else if (f->region_only) got_region(f, r);
  else if (f->step_no == S_LIST) got_role(f, r);
  else got_creds(f, r);
}

static creds_fetch_t *imds_start(const fetch_env_t *e, int region_only, creds_fetch_fn fn, void *ud, char *err,
                                 size_t errlen) {
  creds_fetch_t *f = fetch_new(e, e->imds_timeout_ms, "imds", fn, ud);
  if (!f) {
    fetch_errf(err, errlen, "out of memory");
    return NULL;
  }
  f->step = imds_step;
  f->region_only = region_only;
  if (imds_base(f->base, sizeof f->base) != 0) {
    fetch_errf(err, errlen, "AWS_EC2_METADATA_SERVICE_ENDPOINT is longer than %zu bytes", sizeof f->base - 1);
    fetch_free(f);
    return NULL;
  }
  char url[URL_MAX + 32];
  snprintf(url, sizeof url, "%s/latest/api/token", f->base);
  const char *h[] = {"X-aws-ec2-metadata-token-ttl-seconds: 21600"};
  if (fetch_send(f, "PUT", url, h, 1, "", 0) != 0) {
    fetch_errf(err, errlen, "could not start the IMDSv2 token request to %s", f->base);
    fetch_free(f);
    return NULL;
  }
  return f;
}

creds_fetch_t *creds_fetch_imds(const fetch_env_t *e, creds_fetch_fn fn, void *ud, char *err, size_t errlen) {
  return imds_start(e, 0, fn, ud, err, errlen);
}

creds_fetch_t *creds_fetch_imds_region(const fetch_env_t *e, creds_fetch_fn fn, void *ud, char *err, size_t errlen) {
  return imds_start(e, 1, fn, ud, err, errlen);
}
