/* One credential fetch over HTTP (IMDS, ECS) or through the AWS client layers (STS):
 * the handle chain.c holds, and the helpers imds.c, ecs.c and sts.c share. */
#ifndef ROTATOR_CREDS_FETCH_H
#define ROTATOR_CREDS_FETCH_H
#include "aws/creds/internal.h"
#include "aws/retry.h"
#include "net/url.h"

#define CREDS_MAX_BODY (64u << 10)

struct creds_fetch {
  http_client_t *http;
  void (*step)(creds_fetch_t *f, const http_response_t *r);  /* next response (IMDS, ECS) */
  int step_no;
  int region_only;         /* IMDS: fetch the region, not credentials */
  uint64_t req;            /* in-flight HTTP request (IMDS, ECS) */
  aws_op_t *op;            /* in-flight STS request */
  long timeout_ms;
  creds_fetch_fn fn;
  void *ud;
  char base[URL_MAX];      /* IMDS endpoint without trailing '/', ECS URL, STS URL */
  char token[256];         /* IMDSv2 session token */
  char role[256];          /* IMDS role name, STS role ARN (for errors) */
  const char *source;      /* "imds", "ecs", "assume-role", "web-identity" */
};

void fetch_errf(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
creds_fetch_t *fetch_new(const fetch_env_t *e, long timeout_ms, const char *source, creds_fetch_fn fn, void *ud);
void fetch_free(creds_fetch_t *f);
/* Frees f first, then calls back (the callback may start a new fetch). */
void fetch_finish(creds_fetch_t *f, const creds_t *c, const char *err);
void fetch_fail(creds_fetch_t *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sends one request; its response goes to f->step. 0, or -1. */
int fetch_send(creds_fetch_t *f, const char *method, const char *url, const char *const *hdrs, size_t nh,
               const char *body, size_t blen);
/* A transport failure or non-2xx status as text; 0 when the response is a success. */
int fetch_bad_status(const http_response_t *r, const char *what, const char *url, char *err, size_t len);
/* Reads a secret token file (first line) into a malloc'd string, at most max bytes.
 * NULL with err naming the file, the setting and the limit. */
char *fetch_read_token(const char *path, const char *setting, size_t max, char *err, size_t errlen);

#endif
