/* `rotator sign`: signs a raw HTTP request read on stdin and prints the signed request.
 * The text format is the public SigV4 test suite's (cli/rawreq.c), so any of its
 * request.txt files can be piped through this command and compared with the expected
 * output. Credentials and region come from the chain (cli/chain.c). */
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/chain.h"
#include "cli/cli.h"
#include "cli/rawreq.h"

#define DEFAULT_EXPIRES 3600u

typedef struct {
  const char *region, *service, *time;
  unsigned expires;
  int query, verbose, no_normalize, sign_body;
} sign_opts;

static const char HELP[] =
    "usage: rotator sign --service SERVICE [--region REGION] [--time 2015-08-30T12:36:00Z]\n"
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
    "    rotator sign --region us-east-1 --service service --time 2015-08-30T12:36:00Z\n";

enum { O_REGION = 256, O_SERVICE, O_TIME, O_QUERY, O_EXPIRES, O_SIGN_BODY, O_NO_NORMALIZE,
       O_VERBOSE };

static const struct option OPTIONS[] = {
    {"region", required_argument, NULL, O_REGION},
    {"service", required_argument, NULL, O_SERVICE},
    {"time", required_argument, NULL, O_TIME},
    {"query", no_argument, NULL, O_QUERY},
    {"expires", required_argument, NULL, O_EXPIRES},
    {"sign-body", no_argument, NULL, O_SIGN_BODY},
    {"no-normalize", no_argument, NULL, O_NO_NORMALIZE},
    {"verbose", no_argument, NULL, O_VERBOSE},
    {NULL, 0, NULL, 0}};

static int on_option(void *ud, int id, const char *arg) {
  sign_opts *o = ud;
  unsigned long v;
  switch (id) {
  case O_REGION: o->region = arg; return 0;
  case O_SERVICE: o->service = arg; return 0;
  case O_TIME: o->time = arg; return 0;
  case O_QUERY: o->query = 1; return 0;
  case O_SIGN_BODY: o->sign_body = 1; return 0;
  case O_NO_NORMALIZE: o->no_normalize = 1; return 0;
  case O_VERBOSE: o->verbose = 1; return 0;
  case O_EXPIRES:
    if (cli_parse_ulong(arg, 1, SIGV4_MAX_EXPIRES, &v))
      return cli_usage_error("sign", "--expires wants 1..604800", arg);
    o->expires = (unsigned)v;
    return 0;
  }
  return cli_usage_error("sign", "unhandled option", NULL);
}

/* 0 = run, 1 = help printed, 2 = usage error. argv[0] is the command name. */
static int parse_args(int argc, char **argv, sign_opts *o) {
  int first;
  memset(o, 0, sizeof *o);
  o->expires = DEFAULT_EXPIRES;
  int rc = cli_parse(argc, argv, OPTIONS, HELP, on_option, o, &first);
  if (rc) return rc;
  if (first < argc) return cli_usage_error("sign", "unexpected argument", argv[first]);
  if (!o->service) return cli_usage_error("sign", "--service is required", NULL);
  return 0;
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
    return cli_usage_error("sign", "--time wants UTC like 2015-08-30T12:36:00Z", o->time);
  return 0;
}

static int sign_with(const sign_opts *o, const chain_answer_t *a) {
  sigv4_params p;
  rawreq rq;
  const char *err = NULL;
  if (params_from(o, &p)) return 2;
  p.region = a->region;
  const creds_t *cr = &a->creds;
  sigv4_credentials c = {cr->access_key_id, cr->secret_access_key,
                         cr->session_token[0] ? cr->session_token : NULL};
  if (o->verbose) fprintf(stderr, "--- credentials %s region=%s\n", a->describe, p.region);
  if (rawreq_read(stdin, &rq, &err) != 0) {
    fprintf(stderr, "rotator sign: bad request on stdin: %s\n", err);
    return 1;
  }
  int rc = sign_and_print(&rq, &c, &p, o->verbose);
  rawreq_free(&rq);
  return rc;
}

int cmd_sign(int argc, char **argv) {
  sign_opts o;
  int rc = parse_args(argc, argv, &o);
  if (rc) return rc == 1 ? 0 : 2;
  chain_answer_t *a = calloc(1, sizeof *a);
  if (!a) {
    fprintf(stderr, "rotator sign: out of memory\n");
    return 1;
  }
  if (chain_resolve_private(o.region, a) != 0 || chain_error(a)) {
    fprintf(stderr, "rotator sign: %s\n", chain_error(a) ? chain_error(a) : a->creds_err);
    rc = 1;
  } else {
    rc = sign_with(&o, a);
  }
  chain_clear(a);
  free(a);
  sigv4_thread_cleanup();
  return rc;
}
