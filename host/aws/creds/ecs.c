/* ECS/EKS container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI on the ECS agent
 * (169.254.170.2), or AWS_CONTAINER_CREDENTIALS_FULL_URI with an optional authorization
 * token (AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]). */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aws/creds/fetch.h"

#define ECS_HOST "169.254.170.2"

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
    n = snprintf(url, len, "http://" ECS_HOST "%s%s", rel[0] == '/' ? "" : "/", rel);
  } else {
    const char *full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    if (!full_uri_allowed(full)) {
      fetch_errf(err, errlen, "AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, or http to a loopback or the "
                 "ECS/EKS agent address (169.254.170.2, 169.254.170.23)");
      return -1;
    }
    n = snprintf(url, len, "%s", full);
  }
  if (n < 0 || (size_t)n >= len) {
    fetch_errf(err, errlen, "container credentials URI is longer than %zu bytes", len - 1);
    return -1;
  }
  return 0;
}

/* "Authorization: TOKEN" (malloc'd) from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or _TOKEN;
 * *hdr stays NULL without one. 0, or -1 with err. */
static int ecs_auth(char **hdr, char *err, size_t errlen) {
  const char *file = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
  const char *env = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
  char *tok = NULL;
  *hdr = NULL;
  if (file && *file) {
    if (!(tok = fetch_read_token(file, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", CREDS_TOKEN_MAX, err, errlen)))
      return -1;
  } else if (!env || !*env) {
    return 0;
  }
  int n = asprintf(hdr, "Authorization: %s", tok ? tok : env);
  if (tok) {
    OPENSSL_cleanse(tok, strlen(tok));
    free(tok);
  }
  if (n < 0) {
    *hdr = NULL;
    fetch_errf(err, errlen, "out of memory");
    return -1;
  }
  return 0;
}

static void ecs_step(creds_fetch_t *f, const http_response_t *r) {
  char err[CREDS_ERR_MAX];
  creds_t c;
  if (fetch_bad_status(r, "container credentials request", f->base, err, sizeof err) != 0) {
    fetch_fail(f, "%s", err);
    return;
  }
  if (creds_from_json(r->body, r->body_len, "Token", &c, err, sizeof err) != 0) {
    fetch_fail(f, "container credentials from %s: %s", f->base, err);
    return;
  }
  snprintf(c.source, sizeof c.source, "ecs");
  fetch_finish(f, &c, NULL);
  creds_wipe(&c);
}

creds_fetch_t *creds_fetch_ecs(const fetch_env_t *e, creds_fetch_fn fn, void *ud, char *err, size_t errlen) {
  creds_fetch_t *f = fetch_new(e, e->imds_timeout_ms * 2, "ecs", fn, ud);
  char *hdr = NULL;
  if (!f) {
    fetch_errf(err, errlen, "out of memory");
    return NULL;
  }
  f->step = ecs_step;
  if (ecs_url(f->base, sizeof f->base, err, errlen) != 0 || ecs_auth(&hdr, err, errlen) != 0) {
    fetch_free(f);
    return NULL;
  }
  const char *h[] = {hdr};
  int rc = fetch_send(f, "GET", f->base, h, hdr ? 1 : 0, NULL, 0);
  if (hdr) {
    OPENSSL_cleanse(hdr, strlen(hdr));
    free(hdr);
  }
  if (rc != 0) {
    fetch_errf(err, errlen, "could not start the container credentials request to %s", f->base);
    fetch_free(f);
    return NULL;
  }
  return f;
}
