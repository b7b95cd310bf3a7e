/* `rotator bench sign --request FILE`: how close the SigV4 signer gets to the hashing it
 * cannot avoid. It reads a request in the request.txt format `rotator sign` reads
 * (cli/rawreq.c), signs it with fixed example credentials (with a session token) and a
 * fixed time, prints the Authorization header it made, then times signing against the
 * hash floor of one signature with a warm key cache, over the very same bytes:
 *   SHA-256(body) + SHA-256(canonical request) + HMAC-SHA256(string to sign),
 * with reused OpenSSL contexts and the HMAC key preloaded. The 4 HMACs of the key
 * derivation are excluded: the signer caches the derived key. Everything above the floor
 * is the signer's own work (validation, canonicalisation, formatting, the key-cache
 * lookup). The two loops alternate over ROUNDS rounds (both see the same machine state)
 * and each figure is the mean over all of its timed iterations, in the CPU time of this
 * thread (CLOCK_THREAD_CPUTIME_ID): on a shared machine, time other processes take
 * while a loop runs is not charged to it; on a quiet one it equals the wall time. */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "aws/sigv4.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/rawreq.h"

#define TARGET_NS 1e9 /* the whole default run: signing plus the floor */
#define CALIBRATE_ITERS 2000ul
#define MAX_ITERS 100000000ul
#define ROUNDS 10 /* alternating rounds of signing and of the floor */
#define GOAL_RATIO 1.3
#define FIXED_TIME "2015-08-30T12:36:00Z"

/* Example credentials from AWS's documentation, not real ones. */
static const sigv4_credentials CREDS = {
    "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "IQoJb3JpZ2luX2VjEXAMPLEtokenAQoDYXdzEJr//////////wEaCXVzLWVhc3QtMSJGMEQCIBench=="};

typedef struct {
  rawreq raw;
  sigv4_params p;
  char region[64], service[64];
  char *creq, *sts; /* the exact bytes the signer hashes, for the floor */
  size_t creq_len, sts_len;
} bench_case;

typedef struct {
  EVP_MD *sha256;
  EVP_MD_CTX *md;
  EVP_MAC *hmac;
  EVP_MAC_CTX *mac;
} floor_ctx;

/* This thread's CPU time in ns, or -1 if the clock cannot be read. */
static double now_ns(void) {
  struct timespec t;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t) != 0) return -1;
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static const char HELP[] =
    "usage: rotator bench sign --request FILE [--service S] [--region R] [--iterations N]\n"
    "\n"
    "Signs the request in FILE (the request.txt format `rotator sign` reads) with fixed\n"
    "example credentials (with a session token) and time " FIXED_TIME ", prints the\n"
    "Authorization header, then times signing against the hash floor of one signature\n"
    "measured in the same run over the same bytes: SHA-256(body) + SHA-256(canonical\n"
    "request) + one HMAC-SHA256(string to sign), with reused OpenSSL contexts and the\n"
    "signing key preloaded (the signer caches its derived key too). The two alternate\n"
    "over 10 rounds; each figure is the mean over its timed iterations, in this\n"
    "thread's CPU time (time other processes take is not counted). Without\n"
    "--iterations the whole run takes about 1 s of CPU. Service and region default to\n"
    "the ones in a Host of the form SERVICE.REGION.amazonaws.com.\n"
    "\n"
    "Example (the reference request: a DynamoDB DescribeTable POST):\n"
    "  rotator bench sign --request tests/bench/dynamodb-describetable.txt\n"
    "  Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20150830/...\n"
    "  sign: 734 ns/signature (mean)  floor: 593 ns (mean)  ratio: 1.24x (goal <= 1.3x)\n";

typedef struct {
  unsigned long iters; /* 0: calibrate */
  const char *request, *service, *region;
} bench_opts;

enum { O_ITERATIONS = 256, O_REQUEST, O_SERVICE, O_REGION };

static const struct option OPTIONS[] = {{"iterations", required_argument, NULL, O_ITERATIONS},
                                        {"request", required_argument, NULL, O_REQUEST},
                                        {"service", required_argument, NULL, O_SERVICE},
                                        {"region", required_argument, NULL, O_REGION},
                                        {NULL, 0, NULL, 0}};

static int on_option(void *ud, int id, const char *arg) {
  bench_opts *o = ud;
  switch (id) {
  case O_REQUEST: o->request = arg; return 0;
  case O_SERVICE: o->service = arg; return 0;
  case O_REGION: o->region = arg; return 0;
  case O_ITERATIONS:
    if (cli_parse_ulong(arg, 1, MAX_ITERS, &o->iters))
      return cli_usage_error("bench", "--iterations wants 1..100000000", arg);
    return 0;
  }
  return cli_usage_error("bench", "unhandled option", NULL);
}

/* 0 = run, 1 = help printed, 2 = usage error. */
static int parse_args(int argc, char **argv, bench_opts *o) {
  int first;
  int rc = cli_parse(argc, argv, OPTIONS, HELP, on_option, o, &first);
  if (rc) return rc;
  if (first >= argc) return cli_usage_error("bench", "which benchmark? only 'sign' exists", NULL);
  if (strcmp(argv[first], "sign") != 0) return cli_usage_error("bench", "unknown benchmark", argv[first]);
  if (first + 1 < argc) return cli_usage_error("bench", "unexpected argument", argv[first + 1]);
  if (!o->request)
    return cli_usage_error("bench", "--request FILE is required (e.g. tests/bench/dynamodb-describetable.txt)", NULL);
  return 0;
}

static void free_case(bench_case *c) {
  free(c->creq);
  free(c->sts);
  rawreq_free(&c->raw);
}

/* Copies the dot-separated word `index` (0: service, 1: region) of a Host of the form
 * SERVICE.REGION.amazonaws.com into out; 0, or -1 when the host has no such form. */
static int host_word(const rawreq *r, int index, char *out, size_t size) {
  for (size_t i = 0; i < r->req.n_headers; i++) {
    if (strcasecmp(r->req.headers[i].name, "host") != 0) continue;
    const char *h = r->req.headers[i].value;
    h += strspn(h, " \t");
    for (int w = 0; w < index && h; w++) h = strchr(h, '.') ? strchr(h, '.') + 1 : NULL;
    const char *dot = h ? strchr(h, '.') : NULL;
    if (!dot || dot == h || (size_t)(dot - h) >= size || !strstr(dot, ".amazonaws.com")) return -1;
    memcpy(out, h, (size_t)(dot - h));
    out[dot - h] = '\0';
    return 0;
  }
  return -1;
}

static int scope_part(const rawreq *r, const char *given, int index, char *out, size_t size,
                      const char *what) {
  if (given) {
    if (strlen(given) >= size) return cli_usage_error("bench", "too long", given);
    strcpy(out, given);
    return 0;
  }
  if (host_word(r, index, out, size) == 0) return 0;
  fprintf(stderr, "rotator bench: the Host header is not SERVICE.REGION.amazonaws.com; give --%s\n", what);
  return 2;
}

/* 0, 1 (cannot read or sign) or 2 (usage). */
static int make_case(bench_case *c, const bench_opts *o) {
  memset(c, 0, sizeof *c);
  const char *err = NULL;
  FILE *f = fopen(o->request, "rb");
  if (!f) {
    fprintf(stderr, "rotator bench: cannot open %s: %s; check the path\n", o->request, strerror(errno));
    return 1;
  }
  int rc = rawreq_read(f, &c->raw, &err);
  if (fclose(f) != 0 && rc == 0) err = "read error", rc = -1;
  if (rc != 0) {
    fprintf(stderr, "rotator bench: %s: bad request: %s; see `rotator sign --help` for the format\n",
            o->request, err);
    return 1;
  }
  if ((rc = scope_part(&c->raw, o->service, 0, c->service, sizeof c->service, "service")) ||
      (rc = scope_part(&c->raw, o->region, 1, c->region, sizeof c->region, "region")))
    return rc;
  c->p.region = c->region;
  c->p.service = c->service;
  c->p.flags = SIGV4_FLAGS_DEFAULT;
  if (parse_iso8601_utc(FIXED_TIME, &c->p.time) != 0) return 1;
  rc = sigv4_canonical_request(&c->raw.req, &CREDS, &c->p, &c->creq);
  if (!rc) rc = sigv4_string_to_sign(&c->raw.req, &CREDS, &c->p, &c->sts);
  if (rc) {
    fprintf(stderr, "rotator bench: %s: cannot sign: %s (%s)\n", o->request, sigv4_strerror(rc),
            sigv4_error_detail());
    return 1;
  }
  c->creq_len = strlen(c->creq);
  c->sts_len = strlen(c->sts);
  return 0;
}

static void free_floor(floor_ctx *f) {
  EVP_MAC_CTX_free(f->mac);
  EVP_MAC_free(f->hmac);
  EVP_MD_CTX_free(f->md);
  EVP_MD_free(f->sha256);
}

/* The signer's own setup: fetched algorithms, HMAC keyed once (as its key cache is). */
static int make_floor(floor_ctx *f) {
  static const unsigned char key[32] = {1, 2, 3};
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  memset(f, 0, sizeof *f);
  f->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
  f->md = EVP_MD_CTX_new();
  f->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  f->mac = f->hmac ? EVP_MAC_CTX_new(f->hmac) : NULL;
  if (f->sha256 && f->md && f->mac && EVP_MAC_init(f->mac, key, sizeof key, params)) return 0;
  fprintf(stderr, "rotator bench: cannot set up OpenSSL contexts\n");
  return -1;
}

static int floor_sha256(floor_ctx *f, const void *d, size_t n, unsigned char *out) {
  unsigned int len;
  return EVP_DigestInit_ex2(f->md, f->sha256, NULL) && EVP_DigestUpdate(f->md, d, n) &&
         EVP_DigestFinal_ex(f->md, out, &len);
}

static int floor_once(floor_ctx *f, const bench_case *c, unsigned char *out) {
  size_t len;
  return floor_sha256(f, c->raw.req.body, c->raw.req.body_len, out) &&
         floor_sha256(f, c->creq, c->creq_len, out) && EVP_MAC_init(f->mac, NULL, 0, NULL) &&
         EVP_MAC_update(f->mac, (const unsigned char *)c->sts, c->sts_len) &&
         EVP_MAC_final(f->mac, out, &len, 32);
}

/* Nanoseconds for n runs, or a negative value on failure. */
static double time_floor(floor_ctx *f, const bench_case *c, unsigned long n) {
  unsigned char out[32];
  double t0 = now_ns(), t1;
  for (unsigned long i = 0; i < n && t0 >= 0; i++)
    if (!floor_once(f, c, out)) return -1;
  return t0 < 0 || (t1 = now_ns()) < 0 ? -1 : t1 - t0;
}

static double time_sign(const bench_case *c, unsigned long n, sigv4_output *out) {
  double t0 = now_ns(), t1;
  for (unsigned long i = 0; i < n && t0 >= 0; i++)
    if (sigv4_sign(&c->raw.req, &CREDS, &c->p, out) != SIGV4_OK) return -1;
  return t0 < 0 || (t1 = now_ns()) < 0 ? -1 : t1 - t0;
}

/* Enough iterations for TARGET_NS, from a short warm-up run (which also fills the cache). */
static unsigned long calibrate(const bench_case *c, sigv4_output *out) {
  double ns = time_sign(c, CALIBRATE_ITERS, out) / (double)CALIBRATE_ITERS;
  if (ns <= 0) return CALIBRATE_ITERS;
  double n = TARGET_NS / ns / 1.8; /* the floor runs as often, in about 0.8x the time */
  return n < (double)CALIBRATE_ITERS ? CALIBRATE_ITERS
         : n > (double)MAX_ITERS     ? MAX_ITERS
                                     : (unsigned long)n;
}

/* Mean ns/op of signing and of the floor over alternating rounds of n/ROUNDS each. */
static int measure(const bench_case *c, floor_ctx *f, unsigned long n, sigv4_output *out,
                   double *sign, double *base) {
  unsigned long per = n / ROUNDS ? n / ROUNDS : 1;
  double ts = 0, tf = 0;
  for (int r = 0; r < ROUNDS; r++) {
    double a = time_sign(c, per, out), b = time_floor(f, c, per);
    if (a < 0 || b < 0) {
      fprintf(stderr, "rotator bench: signing, hashing or reading the thread's CPU clock failed during the run\n");
      return -1;
    }
    ts += a, tf += b;
  }
  *sign = ts / (double)(per * ROUNDS);
  *base = tf / (double)(per * ROUNDS);
  return 0;
}

static int run(const bench_case *c, floor_ctx *f, const char *path, unsigned long iters) {
  char buf[4096];
  sigv4_output out = {.buf = buf, .size = sizeof buf};
  int rc = sigv4_sign(&c->raw.req, &CREDS, &c->p, &out); /* warms the key cache */
  if (rc != SIGV4_OK) {
    fprintf(stderr, "rotator bench: cannot sign: %s (%s)\n", sigv4_strerror(rc), sigv4_error_detail());
    return 1;
  }
  printf("Authorization: %s\n", buf);
  unsigned long n = iters ? iters : calibrate(c, &out);
  double sign, base;
  if (measure(c, f, n, &out, &sign, &base)) return 1;
  printf("# %s: %s %s (%s, %s), fixed credentials with a session token, time %s;"
         " %lu iterations each in %d alternating rounds, mean thread CPU time; floor = SHA-256(body %zu B)"
         " + SHA-256(canonical request %zu B) + HMAC-SHA256(string to sign %zu B),"
         " reused contexts, key preloaded\n",
         path, c->raw.req.method, c->raw.req.path, c->service, c->region, FIXED_TIME,
         n - n % ROUNDS, ROUNDS, c->raw.req.body_len, c->creq_len, c->sts_len);
  printf("sign: %.0f ns/signature (mean)  floor: %.0f ns (mean)  ratio: %.2fx (goal <= %.1fx)\n",
         sign, base, sign / base, GOAL_RATIO);
  return fflush(stdout) == 0 ? 0 : 1;
}

int cmd_bench(int argc, char **argv) {
  bench_opts o = {0};
  bench_case c = {0};
  floor_ctx f = {0};
  int rc = parse_args(argc, argv, &o);
  if (rc) return rc == 1 ? 0 : 2;
  rc = make_case(&c, &o);
  if (!rc) rc = make_floor(&f) ? 1 : run(&c, &f, o.request, o.iters);
  free_floor(&f);
  free_case(&c);
  sigv4_thread_cleanup();
  return rc;
}
