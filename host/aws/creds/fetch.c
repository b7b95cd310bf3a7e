/* The credential fetch handle and the helpers its sources share; see fetch.h. */
#include "aws/creds/fetch.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fetch_errf(char *err, size_t len, const char *fmt, ...) {
  va_list ap;
  if (!err || !len) return;
  va_start(ap, fmt);
  vsnprintf(err, len, fmt, ap);
  va_end(ap);
}

creds_fetch_t *fetch_new(const fetch_env_t *e, long timeout_ms, const char *source, creds_fetch_fn fn, void *ud) {
  creds_fetch_t *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->http = e->http;
  f->timeout_ms = timeout_ms;
  f->fn = fn;
  f->ud = ud;
  f->source = source;
  return f;
}

void fetch_free(creds_fetch_t *f) {
  OPENSSL_cleanse(f->token, sizeof f->token);
  free(f);
}

void fetch_finish(creds_fetch_t *f, const creds_t *c, const char *err) {
  creds_fetch_fn fn = f->fn;
  void *ud = f->ud;
  fetch_free(f);
  fn(ud, c, err);
}

void fetch_fail(creds_fetch_t *f, const char *fmt, ...) {
  char err[CREDS_ERR_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, sizeof err, fmt, ap);
  va_end(ap);
  fetch_finish(f, NULL, err);
}

static void on_done(void *ud, const http_response_t *resp) {
  creds_fetch_t *f = ud;
  f->req = 0;
  f->step(f, resp);
}

int fetch_send(creds_fetch_t *f, const char *method, const char *url, const char *const *hdrs, size_t nh,
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
  aws_op_cancel(f->op);
  fetch_free(f);
}

int fetch_bad_status(const http_response_t *r, const char *what, const char *url, char *err, size_t len) {
  if (r->status == 0) {
    fetch_errf(err, len, "%s at %s failed: %s%s", what, url, r->error ? r->error : "transport error",
               r->timed_out ? " (timed out)" : "");
    return -1;
  }
  if (r->status < 200 || r->status > 299) {
    fetch_errf(err, len, "%s at %s answered HTTP %d", what, url, r->status);
    return -1;
  }
  return 0;
}

char *fetch_read_token(const char *path, const char *setting, size_t max, char *err, size_t errlen) {
  FILE *fp = fopen(path, "r");
  if (!fp) {
    fetch_errf(err, errlen, "cannot read %s %s: %s", setting, path, strerror(errno));
    return NULL;
  }
  char *tok = malloc(max + 2);
  size_t n = tok ? fread(tok, 1, max + 1, fp) : 0;
  int bad = !tok || ferror(fp);
  fclose(fp);
  if (bad) {
    fetch_errf(err, errlen, "cannot read %s %s%s", setting, path, tok ? "" : ": out of memory");
  } else {
    tok[n] = 0;
    tok[strcspn(tok, "\r\n")] = 0;
    if (strlen(tok) > max) fetch_errf(err, errlen, "%s %s is longer than the %zu-byte limit", setting, path, max);
    else if (!tok[0]) fetch_errf(err, errlen, "%s %s is empty", setting, path);
    else return tok;
  }
  if (tok) {
    OPENSSL_cleanse(tok, max + 2);
    free(tok);
  }
  return NULL;
}
