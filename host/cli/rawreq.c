/* The raw request text format of the public SigV4 test suite (see rawreq.h): parsing a
 * request.txt and writing a *-signed-request.txt. Shared by `rotator sign` and the SigV4
 * unit test; it knows nothing of credentials or of the command line. */
#include "cli/rawreq.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/timefmt.h"

#define MAX_TEXT (16u * 1024u * 1024u) /* far above any AWS API request we build */

/* ---- raw request parsing ---- */

static int parse_error(const char **err, const char *why) {
  *err = why;
  return -1;
}

typedef struct {
  size_t start, end; /* [start, end) without the line break */
} span;

typedef struct {
  size_t name, colon, end; /* offsets of a header; end moves with continuation lines */
} hspan;

/* The line at *pos; moves *pos past its '\n'. A trailing '\r' is not part of the line. */
static span next_line(const char *buf, size_t len, size_t *pos) {
  span l = {*pos, *pos};
  const char *nl = memchr(buf + *pos, '\n', len - *pos);
  l.end = nl ? (size_t)(nl - buf) : len;
  *pos = nl ? l.end + 1 : len;
  if (l.end > l.start && buf[l.end - 1] == '\r') l.end--;
  return l;
}

/* "METHOD target VERSION": the target may contain spaces (the suite has "/example space/"),
 * so the method ends at the first space and the version starts after the last one. */
static int parse_request_line(char *buf, span l, rawreq *rq, const char **err) {
  char *s = buf + l.start, *e = buf + l.end;
  char *sp1 = memchr(s, ' ', (size_t)(e - s)), *sp2 = e;
  while (sp2 > s && sp2[-1] != ' ') sp2--;
  if (!sp1 || sp2 <= sp1 + 1 || sp1 == s || sp2 == e || sp1[1] != '/')
    return parse_error(err, "the first line must be 'METHOD /path[?query] HTTP/1.1'");
  *sp1 = *(sp2 - 1) = *e = '\0';
  rq->req.method = s;
  rq->req.path = sp1 + 1;
  rq->version = sp2;
  char *q = strchr(sp1 + 1, '?');
  if (q) *q = '\0';
  rq->req.query = q ? q + 1 : NULL;
  return 0;
}

static int add_header_line(const char *buf, span l, hspan *hs, size_t *nh, const char **err) {
  const char *colon = memchr(buf + l.start, ':', l.end - l.start);
  if (!colon) return parse_error(err, "a header line has no ':'");
  if (*nh == SIGV4_MAX_HEADERS) return parse_error(err, "too many header lines");
  hs[*nh].name = l.start;
  hs[*nh].colon = (size_t)(colon - buf);
  hs[*nh].end = l.end;
  (*nh)++;
  return 0;
}

/* Reads header lines up to the blank line; returns 1 if a body follows, 0 if not, -1. */
static int scan_headers(const char *buf, size_t len, size_t *pos, hspan *hs, size_t *nh,
                        const char **err) {
  while (*pos < len) {
    span l = next_line(buf, len, pos);
    if (l.end == l.start) return 1;
    if (buf[l.start] != ' ' && buf[l.start] != '\t') {
      if (add_header_line(buf, l, hs, nh, err)) return -1;
    } else if (*nh) {
      hs[*nh - 1].end = l.end; /* folded value: keep its lines verbatim, the signer folds */
    } else {
      return parse_error(err, "a continuation line comes before any header");
    }
  }
  return 0;
}

/* Headers are cut into strings only now, so folded values stay contiguous while scanning. */
static void finish_headers(char *buf, const hspan *hs, size_t nh, rawreq *rq) {
  for (size_t i = 0; i < nh; i++) {
    buf[hs[i].colon] = '\0';
    buf[hs[i].end] = '\0';
    rq->headers[i].name = buf + hs[i].name;
    rq->headers[i].value = buf + hs[i].colon + 1;
  }
  rq->req.headers = rq->headers;
  rq->req.n_headers = nh;
}

static int parse_into(char *buf, size_t len, rawreq *rq, const char **err) {
  hspan hs[SIGV4_MAX_HEADERS];
  size_t pos = 0, nh = 0;
  span first = next_line(buf, len, &pos);
  if (parse_request_line(buf, first, rq, err)) return -1;
  int body = scan_headers(buf, len, &pos, hs, &nh, err);
  if (body < 0) return -1;
  finish_headers(buf, hs, nh, rq);
  rq->req.body = buf + (body ? pos : len);
  rq->req.body_len = body ? len - pos : 0;
  return 0;
}

int rawreq_parse(const char *text, size_t len, rawreq *rq, const char **err) {
  memset(rq, 0, sizeof *rq);
  if (!text || len == SIZE_MAX) return parse_error(err, "no request text");
  rq->buf = malloc(len + 1);
  if (!rq->buf) return parse_error(err, "out of memory");
  memcpy(rq->buf, text, len);
  rq->buf[len] = '\0';
  if (parse_into(rq->buf, len, rq, err) == 0) return 0;
  rawreq_free(rq);
  return -1;
}

void rawreq_free(rawreq *rq) {
  free(rq->buf);
  memset(rq, 0, sizeof *rq);
}

/* ---- signed request output ---- */

typedef struct {
  FILE *f;
  int err;
} writer;

static void w_put(writer *w, const void *s, size_t n) {
  if (!w->err && n && fwrite(s, 1, n, w->f) != n) w->err = 1;
}

static void w_puts(writer *w, const char *s) { w_put(w, s, strlen(s)); }

static void w_header(writer *w, const char *name, const char *value) {
  w_puts(w, name);
  w_puts(w, ":");
  w_puts(w, value);
  w_puts(w, "\n");
}

static void write_request_line(writer *w, const rawreq *rq, const char *presign) {
  const char *q = rq->req.query;
  w_puts(w, rq->req.method);
  w_puts(w, " ");
  w_puts(w, rq->req.path);
  if (q) w_puts(w, "?");
  if (q) w_puts(w, q);
  if (presign) w_puts(w, !q ? "?" : *q ? "&" : "");
  if (presign) w_puts(w, presign);
  w_puts(w, " ");
  w_puts(w, rq->version);
  w_puts(w, "\n");
}

/* The suite's order: token, date, content hash, then Authorization. */
static void write_auth_headers(writer *w, const sigv4_credentials *cred,
                               const sigv4_params *p, const sigv4_output *out) {
  if (cred->session_token && *cred->session_token)
    w_header(w, "X-Amz-Security-Token", cred->session_token);
  w_header(w, "X-Amz-Date", out->amz_date);
  if (p->flags & SIGV4_ADD_CONTENT_SHA256)
    w_header(w, "x-amz-content-sha256", out->payload_hash);
  w_header(w, "Authorization", out->buf);
}

int rawreq_write_signed(FILE *f, const rawreq *rq, const sigv4_credentials *cred,
                        const sigv4_params *params, const sigv4_output *out) {
  writer w = {f, 0};
  int presign = !!(params->flags & SIGV4_PRESIGN);
  write_request_line(&w, rq, presign ? out->buf : NULL);
  for (size_t i = 0; i < rq->req.n_headers; i++)
    w_header(&w, rq->headers[i].name, rq->headers[i].value);
  if (!presign) write_auth_headers(&w, cred, params, out);
  w_puts(&w, "\n");
  w_put(&w, rq->req.body, rq->req.body_len);
  if (fflush(f) != 0) w.err = 1;
  return w.err ? -1 : 0;
}

/* ---- reading a stream ---- */

/* Doubles *buf up to MAX_TEXT. */
static int grow(char **buf, size_t *cap) {
  size_t want = *cap ? *cap * 2 : 4096;
  char *nb = want <= MAX_TEXT ? realloc(*buf, want) : NULL;
  if (!nb) return -1;
  *buf = nb;
  *cap = want;
  return 0;
}

static int read_all(FILE *f, char **out, size_t *len) {
  size_t cap = 0, n = 0, got;
  char *buf = NULL;
  while (n < cap || grow(&buf, &cap) == 0) {
    n += got = fread(buf + n, 1, cap - n, f);
    if (got > 0) continue;
    if (ferror(f)) break;
    *out = buf;
    *len = n;
    return 0;
  }
  free(buf);
  return -1;
}

int rawreq_read(FILE *f, rawreq *rq, const char **err) {
  char *text;
  size_t len;
  memset(rq, 0, sizeof *rq);
  if (read_all(f, &text, &len) != 0)
    return parse_error(err, "cannot read the request (read error, or more than 16 MiB)");
  int rc = rawreq_parse(text, len, rq, err);
  free(text);
  return rc;
}

/* ---- time ---- */

/* The suite's and `rotator sign --time`'s form, YYYY-MM-DDTHH:MM:SSZ: RFC 3339 as
 * timefmt reads it, with the 'T' and the 'Z' required. */
int parse_iso8601_utc(const char *s, time_t *t) {
  tf_time_t tt;
  const char *why;
  size_t n = s ? strlen(s) : 0;
  if (n < 20 || s[10] != 'T' || s[n - 1] != 'Z') return -1;
  if (tf_parse_rfc3339(s, n, &tt, &why) != 0) return -1;
  *t = (time_t)tt.sec;
  return 0;
}
