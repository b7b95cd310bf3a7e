/* `rotator bench sign`: how close the SigV4 signer gets to the hashing it cannot avoid.
 * It signs a DynamoDB DescribeTable POST (session token, ~40-byte JSON body) repeatedly,
 * then times in the same run the hash floor of one signature with a warm key cache:
 *   SHA-256(body) + SHA-256(canonical request) + HMAC-SHA256(string to sign),
 * over the very same bytes, with reused OpenSSL contexts and the HMAC key preloaded.
 * The 4 HMACs of the key derivation are excluded: the signer caches the derived key.
 * Everything above the floor is the signer's own work (validation, canonicalisation,
 * formatting, the key-cache lookup); the goal is a ratio within 1.5x. The two loops
 * alternate over ROUNDS rounds and each keeps its fastest round. */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws/sigv4.h"
#include "cli/args.h"
#include "cli/cli.h"

#define TARGET_NS 1e9 /* the whole default run: signing plus the floor */
#define CALIBRATE_ITERS 2000ul
#define MAX_ITERS 100000000ul
#define ROUNDS 10 /* alternating rounds; the best of each is kept (least disturbed by
                     other processes, and both sides see the same machine state) */

static const char BODY[] = "{\"TableName\":\"orders-production-table-001\"}";
static const sigv4_header HEADERS[] = {
    {"host", "dynamodb.us-east-1.amazonaws.com"},
    {"content-type", "application/x-amz-json-1.0"},
    {"x-amz-target", "DynamoDB_20120810.DescribeTable"},
};
/* Example credentials from AWS's documentation, not real ones. */
static const sigv4_credentials CREDS = {
    "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "IQoJb3JpZ2luX2VjEXAMPLEtokenAQoDYXdzEJr//////////wEaCXVzLWVhc3QtMSJGMEQCIBench=="};

typedef struct {
  sigv4_request rq;
  sigv4_params p;
  char *creq, *sts; /* the exact bytes the signer hashes, for the floor */
} bench_case;

typedef struct {
  EVP_MD *sha256;
  EVP_MD_CTX *md;
  EVP_MAC *hmac;
  EVP_MAC_CTX *mac;
} floor_ctx;

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static const char HELP[] =
    "usage: rotator bench sign [--iterations N]\n"
    "\n"
    "Times SigV4 signing of a DynamoDB DescribeTable POST (session token, small JSON\n"
    "body, warm signing-key cache) against the hash floor of one signature in the same\n"
    "run: SHA-256(body) + SHA-256(canonical request) + one HMAC-SHA256(string to sign),\n"
    "with reused OpenSSL contexts. The two alternate over 10 rounds and each keeps\n"
    "its fastest. Without --iterations the whole run takes about 1 s.\n"
    "\n"
    "Example:\n"
    "  rotator bench sign --iterations 200000\n"
    "  sign: 812 ns/op  baseline(hash floor): 650 ns/op  ratio: 1.25x\n";

enum { O_ITERATIONS = 256 };

static const struct option OPTIONS[] = {{"iterations", required_argument, NULL, O_ITERATIONS},
                                        {NULL, 0, NULL, 0}};

static int on_option(void *ud, int id, const char *arg) {
  (void)id; /* --iterations is the only option */
  if (cli_parse_ulong(arg, 1, MAX_ITERS, ud))
    return cli_usage_error("bench", "--iterations wants 1..100000000", arg);
  return 0;
}

/* 0 = run, 1 = help printed, 2 = usage error. *iters stays 0 for "calibrate". */
static int parse_args(int argc, char **argv, unsigned long *iters) {
  int first;
  int rc = cli_parse(argc, argv, OPTIONS, HELP, on_option, iters, &first);
  if (rc) return rc;
  if (first >= argc) return cli_usage_error("bench", "which benchmark? only 'sign' exists", NULL);
  if (strcmp(argv[first], "sign") != 0) return cli_usage_error("bench", "unknown benchmark", argv[first]);
  if (first + 1 < argc) return cli_usage_error("bench", "unexpected argument", argv[first + 1]);
  return 0;
}

static void free_case(bench_case *c) {
  free(c->creq);
  free(c->sts);
}

static int make_case(bench_case *c) {
  memset(c, 0, sizeof *c);
  c->rq.method = "POST";
  c->rq.path = "/";
  c->rq.headers = HEADERS;
  c->rq.n_headers = sizeof HEADERS / sizeof HEADERS[0];
  c->rq.body = BODY;
  c->rq.body_len = strlen(BODY);
  c->p.region = "us-east-1";
  c->p.service = "dynamodb";
  c->p.time = time(NULL);
  c->p.flags = SIGV4_FLAGS_DEFAULT;
  int rc = sigv4_canonical_request(&c->rq, &CREDS, &c->p, &c->creq);
  if (!rc) rc = sigv4_string_to_sign(&c->rq, &CREDS, &c->p, &c->sts);
  if (rc) fprintf(stderr, "rotator bench: %s (%s)\n", sigv4_strerror(rc), sigv4_error_detail());
  return rc;
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
  return floor_sha256(f, c->rq.body, c->rq.body_len, out) &&
         floor_sha256(f, c->creq, strlen(c->creq), out) && EVP_MAC_init(f->mac, NULL, 0, NULL) &&
         EVP_MAC_update(f->mac, (const unsigned char *)c->sts, strlen(c->sts)) &&
         EVP_MAC_final(f->mac, out, &len, 32);
}

/* ns per operation over n runs, or a negative value on failure. */
static double time_floor(floor_ctx *f, const bench_case *c, unsigned long n) {
  unsigned char out[32];
  double t0 = now_ns();
  for (unsigned long i = 0; i < n; i++)
    if (!floor_once(f, c, out)) return -1;
  return (now_ns() - t0) / (double)n;
}

static double time_sign(const bench_case *c, unsigned long n) {
  char buf[1024];
  sigv4_output out = {.buf = buf, .size = sizeof buf};
  double t0 = now_ns();
  for (unsigned long i = 0; i < n; i++)
    if (sigv4_sign(&c->rq, &CREDS, &c->p, &out) != SIGV4_OK) return -1;
  return (now_ns() - t0) / (double)n;
}

/* Enough iterations for TARGET_NS, from a short warm-up run (which also fills the cache). */
static unsigned long calibrate(const bench_case *c) {
  double ns = time_sign(c, CALIBRATE_ITERS);
  if (ns <= 0) return CALIBRATE_ITERS;
  double n = TARGET_NS / ns / 1.7; /* the floor runs as often, in about 0.7x the time */
  return n < (double)CALIBRATE_ITERS ? CALIBRATE_ITERS
         : n > (double)MAX_ITERS     ? MAX_ITERS
                                     : (unsigned long)n;
}

static double min_pos(double a, double b) { return a < 0 || b < 0 ? -1 : a < b ? a : b; }

/* Best ns/op of signing and of the floor over alternating rounds of n/ROUNDS each. */
static int measure(const bench_case *c, floor_ctx *f, unsigned long n, double *sign,
                   double *base) {
  unsigned long per = n / ROUNDS ? n / ROUNDS : 1;
  *sign = *base = 1e300;
  for (int r = 0; r < ROUNDS; r++) {
    *sign = min_pos(*sign, time_sign(c, per));
    *base = min_pos(*base, time_floor(f, c, per));
  }
  if (*sign > 0 && *base > 0) return 0;
  fprintf(stderr, "rotator bench: signing or hashing failed during the run\n");
  return -1;
}

static int run(const bench_case *c, floor_ctx *f, unsigned long iters) {
  unsigned long n = iters ? iters : calibrate(c);
  double sign, base;
  if (iters) time_sign(c, n < 1000 ? n : 1000); /* warm the cache and buffers */
  if (measure(c, f, n, &sign, &base)) return 1;
  printf("# %lu iterations each, best of %d rounds; baseline = SHA-256(body %zu B) + SHA-256(canonical request %zu B)"
         " + HMAC-SHA256(string to sign %zu B), reused contexts, key preloaded\n",
         n, ROUNDS, c->rq.body_len, strlen(c->creq), strlen(c->sts));
  printf("sign: %.0f ns/op  baseline(hash floor): %.0f ns/op  ratio: %.2fx\n", sign, base,
         sign / base);
  return fflush(stdout) == 0 ? 0 : 1;
}

int cmd_bench(int argc, char **argv) {
  unsigned long iters = 0;
  bench_case c = {0};
  floor_ctx f = {0};
  int rc = parse_args(argc, argv, &iters);
  if (rc) return rc == 1 ? 0 : 2;
  rc = make_case(&c) || make_floor(&f) ? 1 : run(&c, &f, iters);
  free_floor(&f);
  free_case(&c);
  sigv4_thread_cleanup();
  return rc;
}
