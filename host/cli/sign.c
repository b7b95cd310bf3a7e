/* `rotator sign`: signs a raw HTTP request read on stdin and prints the signed request,
 * plus the raw request text format (parse and signed output) it shares with the SigV4
 * unit test. The format is the public SigV4 test suite's, so any of its request.txt files
 * can be piped through this command and compared with the expected output. */
#include "cli/rawreq.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aws/creds/creds.h"
#include "net/http.h"
#include "core/loop.h"

#define MAX_STDIN (16u * 1024u * 1024u) /* far above any AWS API request we build */
#define DEFAULT_EXPIRES 3600u

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

/* ---- time ---- */

/* n decimal digits at s, or -1. */
static int digits(const char *s, int n) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

int parse_iso8601_utc(const char *s, time_t *t) {
  struct tm tm = {0}, back;
  if (!s || strlen(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
      s[16] != ':' || s[19] != 'Z')
    return -1;
  int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
  int h = digits(s + 11, 2), mi = digits(s + 14, 2), sec = digits(s + 17, 2);
  if (y < 1970 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
      sec < 0 || sec > 59)
    return -1;
  tm.tm_year = y - 1900, tm.tm_mon = mo - 1, tm.tm_mday = d;
  tm.tm_hour = h, tm.tm_min = mi, tm.tm_sec = sec;
  *t = timegm(&tm);
  /* timegm() silently rolls 2015-02-30 into March: reject dates that moved. */
  if (*t == (time_t)-1 || !gmtime_r(t, &back) || back.tm_mday != d) return -1;
  return 0;
}

/* ---- the command ---- */

typedef struct {
  const char *region, *service, *time;
  unsigned expires;
  int query, verbose, no_normalize, sign_body;
} sign_opts;

static void usage(FILE *f) {
  fputs("usage: rotator sign --service SERVICE [--region REGION] [--time 2015-08-30T12:36:00Z]\n"
        "                    [--query [--expires SECONDS]] [--sign-body] [--no-normalize]\n"
        "                    [--verbose] < request.txt\n"
        "\n"
        "Signs the raw HTTP request on stdin with AWS Signature Version 4 and prints it\n"
        "signed. Credentials come from the AWS credential chain (environment, web identity,\n"
        "AWS_PROFILE and the shared ~/.aws files, container or EC2 instance roles); see\n"
        "`rotator whoami`.\n"
        "\n"
        "  --region R        signing region, e.g. us-east-1 (default: AWS_REGION,\n"
        "                    AWS_DEFAULT_REGION or the profile's region)\n"
        "  --service S       signing name, e.g. dynamodb, ssm, sqs, backup, sts\n"
        "  --time T          signing time in UTC (default: now)\n"
        "  --query           presign: put the signature in the query string\n"
        "  --expires N       presigned lifetime in seconds (default 3600, max 604800)\n"
        "  --sign-body       add and sign an x-amz-content-sha256 header\n"
        "  --no-normalize    S3 style: keep the path as is, encode it once\n"
        "  --verbose         print the credential source, the canonical request and the\n"
        "                    string to sign on stderr\n"
        "\n"
        "Input: the request line, Name:value headers (Host is required), a blank line and\n"
        "the body. Example:\n"
        "\n"
        "  printf 'GET / HTTP/1.1\\nHost:example.amazonaws.com\\n' |\n"
        "    rotator sign --region us-east-1 --service service --time 2015-08-30T12:36:00Z\n",
        f);
}

static int usage_error(const char *what, const char *arg) {
  fprintf(stderr, "rotator sign: %s%s%s\nTry 'rotator sign --help'.\n", what, arg ? ": " : "",
          arg ? arg : "");
  return 2;
}

/* Matches "--name VALUE" or "--name=VALUE"; 1 = matched (*val may be NULL if missing). */
static int opt_value(int argc, char **argv, int *i, const char *name, const char **val) {
  size_t n = strlen(name);
  if (strncmp(argv[*i], name, n) != 0) return 0;
  if (argv[*i][n] == '=') return (*val = argv[*i] + n + 1), 1;
  if (argv[*i][n] != '\0') return 0;
  *val = *i + 1 < argc ? argv[++*i] : NULL;
  return 1;
}

static int flag(const char *arg, const char *name, int *set) {
  if (strcmp(arg, name) != 0) return 0;
  *set = 1;
  return 1;
}

static int parse_expires(const char *s, unsigned *out) {
  char *end;
  unsigned long v = s ? strtoul(s, &end, 10) : 0;
  if (!s || !*s || *end || v == 0 || v > SIGV4_MAX_EXPIRES) return -1;
  *out = (unsigned)v;
  return 0;
}

/* One option at argv[*i]: 0 = consumed, 2 = usage error. */
static int parse_one(int argc, char **argv, int *i, sign_opts *o) {
  const char *a = argv[*i], *v = NULL;
  if (flag(a, "--query", &o->query) || flag(a, "--verbose", &o->verbose) ||
      flag(a, "--no-normalize", &o->no_normalize) || flag(a, "--sign-body", &o->sign_body))
    return 0;
  const char **dst = opt_value(argc, argv, i, "--region", &v)    ? &o->region
                     : opt_value(argc, argv, i, "--service", &v) ? &o->service
                     : opt_value(argc, argv, i, "--time", &v)    ? &o->time
                                                                 : NULL;
  if (dst && !v) return usage_error("missing value for", a);
  if (dst) return (*dst = v), 0;
  if (opt_value(argc, argv, i, "--expires", &v))
    return parse_expires(v, &o->expires) ? usage_error("--expires wants 1..604800", v) : 0;
  return usage_error("unknown argument", a);
}

/* 0 = run, 1 = help printed, 2 = usage error. argv[0] is the command name. */
static int parse_args(int argc, char **argv, sign_opts *o) {
  memset(o, 0, sizeof *o);
  o->expires = DEFAULT_EXPIRES;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return usage(stdout), 1;
    if (parse_one(argc, argv, &i, o)) return 2;
  }
  if (!o->service) return usage_error("--service is required", NULL);
  return 0;
}

/* ---- credentials and region from the chain ---- */

typedef struct {
  int creds_done, region_done, want_region;
  creds_t creds;
  char region[CREDS_REGION_MAX];
  char err[CREDS_ERR_MAX];
  char describe[CREDS_ERR_MAX];
} chain_answer;

static void on_chain_creds(void *ud, const creds_t *c, const char *err) {
  chain_answer *a = ud;
  a->creds_done = 1;
  if (c) a->creds = *c;
  else snprintf(a->err, sizeof a->err, "%s", err);
}

static void on_chain_region(void *ud, const char *region, const char *err) {
  chain_answer *a = ud;
  a->region_done = 1;
  if (region) snprintf(a->region, sizeof a->region, "%s", region);
  else if (!a->err[0]) snprintf(a->err, sizeof a->err, "%s", err);
}

/* Runs the loop until the chain has answered everything asked; 0, or -1 with a->err. */
static int wait_chain(loop_t *loop, creds_provider_t *p, chain_answer *a) {
  if (creds_get(p, on_chain_creds, a) != 0 ||
      (a->want_region && creds_region(p, on_chain_region, a) != 0)) {
    snprintf(a->err, sizeof a->err, "out of memory");
    return -1;
  }
  while (!a->creds_done || (a->want_region && !a->region_done)) {
    if (loop_run_once(loop, -1) < 0) {
      snprintf(a->err, sizeof a->err, "event loop failure");
      return -1;
    }
  }
  creds_describe(p, a->describe, sizeof a->describe);
  return a->err[0] ? -1 : 0;
}

/* Credentials (and the region when want_region) through a short-lived loop. */
static int resolve_chain(chain_answer *a) {
  int rc = -1;
  loop_t *loop = loop_new();
  http_client_t *http = loop ? http_client_new(loop) : NULL;
  creds_provider_t *p = http ? creds_new(loop, http, NULL) : NULL;
  if (!p) snprintf(a->err, sizeof a->err, "cannot set up the event loop and HTTP client");
  else rc = wait_chain(loop, p, a);
  creds_free(p);
  http_client_free(http);
  if (loop) loop_free(loop);
  return rc;
}

/* Doubles *buf up to MAX_STDIN. */
static int grow(char **buf, size_t *cap) {
  size_t want = *cap ? *cap * 2 : 4096;
  char *nb = want <= MAX_STDIN ? realloc(*buf, want) : NULL;
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

static void print_debug(const rawreq *rq, const sigv4_credentials *c, const sigv4_params *p) {
  char *creq = NULL, *sts = NULL;
  if (sigv4_canonical_request(&rq->req, c, p, &creq) == SIGV4_OK &&
      sigv4_string_to_sign(&rq->req, c, p, &sts) == SIGV4_OK)
    fprintf(stderr, "--- canonical request\n%s\n--- string to sign\n%s\n---\n", creq, sts);
  free(creq);
  free(sts);
}

/* Signs into a stack buffer, or a heap one sized from the TRUNCATED answer. */
static int sign_to(const rawreq *rq, const sigv4_credentials *c, const sigv4_params *p,
                   sigv4_output *out, char *stack, size_t size, char **heap) {
  out->buf = stack;
  out->size = size;
  int rc = sigv4_sign(&rq->req, c, p, out);
  if (rc != SIGV4_ERR_TRUNCATED) return rc;
  if (!(*heap = malloc(out->len + 1))) return SIGV4_ERR_NOMEM;
  out->buf = *heap;
  out->size = out->len + 1;
  return sigv4_sign(&rq->req, c, p, out);
}

static int sign_and_print(const rawreq *rq, const sigv4_credentials *c, const sigv4_params *p,
                          int verbose) {
  char stack[4096], *heap = NULL;
  sigv4_output out = {0};
  int rc = sign_to(rq, c, p, &out, stack, sizeof stack, &heap);
  if (rc != SIGV4_OK)
    fprintf(stderr, "rotator sign: cannot sign: %s (%s)\n", sigv4_strerror(rc),
            sigv4_error_detail());
  if (rc == SIGV4_OK && verbose) print_debug(rq, c, p);
  if (rc == SIGV4_OK && rawreq_write_signed(stdout, rq, c, p, &out) != 0) {
    fprintf(stderr, "rotator sign: cannot write the signed request to stdout\n");
    rc = -1;
  }
  free(heap);
  return rc == SIGV4_OK ? 0 : 1;
}

static int params_from(const sign_opts *o, sigv4_params *p) {
  memset(p, 0, sizeof *p);
  p->region = o->region;
  p->service = o->service;
  p->expires = o->expires;
  p->flags = (o->no_normalize ? 0 : SIGV4_NORMALIZE_PATH) | (o->query ? SIGV4_PRESIGN : 0) |
             (o->sign_body ? SIGV4_ADD_CONTENT_SHA256 : 0);
  p->time = time(NULL);
  if (o->time && parse_iso8601_utc(o->time, &p->time) != 0)
    return usage_error("--time wants UTC like 2015-08-30T12:36:00Z", o->time);
  return 0;
}

static int load_request(rawreq *rq) {
  char *text;
  size_t len;
  const char *err = NULL;
  if (read_all(stdin, &text, &len) != 0) {
    fprintf(stderr, "rotator sign: cannot read the request from stdin (max %u bytes)\n",
            MAX_STDIN);
    return -1;
  }
  int rc = rawreq_parse(text, len, rq, &err);
  free(text);
  if (rc != 0) fprintf(stderr, "rotator sign: bad request on stdin: %s\n", err);
  return rc;
}

static int sign_with(const sign_opts *o, const chain_answer *a) {
  sigv4_params p;
  rawreq rq;
  if (params_from(o, &p)) return 2;
  if (!o->region) p.region = a->region;
  const creds_t *cr = &a->creds;
  sigv4_credentials c = {cr->access_key_id, cr->secret_access_key,
                         cr->session_token[0] ? cr->session_token : NULL};
  if (o->verbose) fprintf(stderr, "--- credentials %s region=%s\n", a->describe, p.region);
  if (load_request(&rq) != 0) return 1;
  int rc = sign_and_print(&rq, &c, &p, o->verbose);
  rawreq_free(&rq);
  return rc;
}

int cmd_sign(int argc, char **argv) {
  sign_opts o;
  int rc = parse_args(argc, argv, &o);
  if (rc) return rc == 1 ? 0 : 2;
  chain_answer *a = calloc(1, sizeof *a);
  if (!a) {
    fprintf(stderr, "rotator sign: out of memory\n");
    return 1;
  }
  a->want_region = o.region == NULL;
  if (resolve_chain(a) != 0) {
    fprintf(stderr, "rotator sign: %s\n", a->err);
    rc = 1;
  } else {
    rc = sign_with(&o, a);
  }
  explicit_bzero(a, sizeof *a);
  free(a);
  sigv4_thread_cleanup();
  return rc;
}
