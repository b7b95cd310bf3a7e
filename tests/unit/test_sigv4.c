/* SigV4 signer tests.
 * 1. The project's own fixtures, always run: expected values were computed once with an
 *    independent Python hashlib/hmac implementation (itself checked against the public
 *    suite) and pasted here as literals.
 * 2. Every case and every expected file of the public SigV4 suite, read at run time from
 *    $ROTATOR_SHARED/testdata/sigv4/v4, else $ROTATOR_ROOT/../shared/..., else
 *    ../shared/... from the cwd. The suite is never copied into the repo; a clone
 *    without ../shared reports it as skipped. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#include "cli/rawreq.h"
#include "aws/sigv4.h"
#include "tap.h"

#define SUITE_REL "testdata/sigv4/v4"
#define SUITE_CASES 38

/* ---- own fixtures ---- */

static const char AK[] = "AKIAIOSFODNN7EXAMPLE";
static const char SK[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
static const char SK2[] = "another/secret+key0000000000000000000000";
static const char TOK[] = "IQoJb3JpZ2luX2VjEXAMPLE//session+token==";
static const char DATE[] = "20240115T102030Z";
static const char DDB_BODY[] = "{\"TableName\":\"orders-production-table-001\"}";
static const sigv4_header DDB_HEADERS[] = {
    {"host", "dynamodb.us-east-1.amazonaws.com"},
    {"content-type", "application/x-amz-json-1.0"},
    {"x-amz-target", "DynamoDB_20120810.DescribeTable"},
};

static const char DDB_CREQ[] =
    "POST\n/\n\n"
    "content-type:application/x-amz-json-1.0\n"
    "host:dynamodb.us-east-1.amazonaws.com\n"
    "x-amz-date:20240115T102030Z\n"
    "x-amz-security-token:IQoJb3JpZ2luX2VjEXAMPLE//session+token==\n"
    "x-amz-target:DynamoDB_20120810.DescribeTable\n\n"
    "content-type;host;x-amz-date;x-amz-security-token;x-amz-target\n"
    "cdb98b5a11d1403b044141c4ba76ec09ea535adf9bc6c78c35cdef7142cdff22";
static const char DDB_SIG[] = "89c658062f1e0539ecaa44446be27f1934417b20954647855202c24603346c2b";
static const char DDB_SIG_SK2[] =
    "b1c4d2fbff37a5d11650226e7601471f237482f7b57153e83bd43f3995e64876";
static const char DDB_SIG_EU[] =
    "3d5d84b8d69eda9a38ff77d7c873dadc0c469b4aa9b13b8e8110faef3030a71e";
static const char DDB_AUTH[] =
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240115/us-east-1/dynamodb/"
    "aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;"
    "x-amz-target, Signature=89c658062f1e0539ecaa44446be27f1934417b20954647855202c24603346c2b";
static const char DDB_AUTH_SHA[] =
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240115/us-east-1/dynamodb/"
    "aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;"
    "x-amz-security-token;x-amz-target, "
    "Signature=ad3ed6e10b754e213035cc38f383261ba00605d01766aa64ed8fb2d2553f0ec2";
static const char STS_PRESIGN[] =
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240115%2F"
    "us-east-1%2Fsts%2Faws4_request&X-Amz-Date=20240115T102030Z&X-Amz-SignedHeaders=host"
    "&X-Amz-Expires=900&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLE%2F%2Fsession%2Btoken"
    "%3D%3D&X-Amz-Signature=b959e7e81ee88656a9ce76c4a81340d44727546121d0ef1d04529da517bade2a";

static const char DDB_AUTH_AK2[] =
    "AWS4-HMAC-SHA256 Credential=AKIDOTHEREXAMPLE0000/20240115/us-east-1/dynamodb/"
    "aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;"
    "x-amz-target, Signature=89c658062f1e0539ecaa44446be27f1934417b20954647855202c24603346c2b";

static sigv4_request ddb_request(void) {
  sigv4_request rq = {.method = "POST", .path = "/", .headers = DDB_HEADERS,
                      .n_headers = 3, .body = DDB_BODY, .body_len = strlen(DDB_BODY)};
  return rq;
}

static sigv4_params params_for(const char *region, const char *service, unsigned flags) {
  sigv4_params p = {.region = region, .service = service, .amz_date = DATE, .flags = flags};
  return p;
}

/* Signs into a fresh buffer; returns the status. */
static int sign_into(const sigv4_request *rq, const char *secret, const char *region,
                     unsigned flags, sigv4_output *out, char *buf, size_t size) {
  sigv4_credentials c = {AK, secret, TOK};
  sigv4_params p = params_for(region, "dynamodb", flags);
  memset(out, 0, sizeof *out);
  out->buf = buf;
  out->size = size;
  return sigv4_sign(rq, &c, &p, out);
}

static void test_dynamodb_header(void) {
  sigv4_request rq = ddb_request();
  sigv4_credentials c = {AK, SK, TOK};
  sigv4_params p = params_for("us-east-1", "dynamodb", SIGV4_FLAGS_DEFAULT);
  char buf[512], *creq = NULL;
  sigv4_output out;
  is_int(sigv4_canonical_request(&rq, &c, &p, &creq), SIGV4_OK, "ddb: canonical request");
  is_str(creq, DDB_CREQ, "ddb: canonical request matches the Python reference");
  free(creq);
  is_int(sign_into(&rq, SK, "us-east-1", SIGV4_FLAGS_DEFAULT, &out, buf, sizeof buf), SIGV4_OK,
         "ddb: sign");
  is_str(out.signature, DDB_SIG, "ddb: signature");
  is_str(buf, DDB_AUTH, "ddb: Authorization value");
  is_int(out.len, strlen(DDB_AUTH), "ddb: output length");
  is_str(out.amz_date, DATE, "ddb: amz date echoed");
  is_str(out.payload_hash, "cdb98b5a11d1403b044141c4ba76ec09ea535adf9bc6c78c35cdef7142cdff22",
         "ddb: payload hash echoed");
  is_int(sign_into(&rq, SK, "us-east-1", SIGV4_FLAGS_DEFAULT | SIGV4_ADD_CONTENT_SHA256, &out,
                   buf, sizeof buf), SIGV4_OK, "ddb: sign with x-amz-content-sha256");
  is_str(buf, DDB_AUTH_SHA, "ddb: content-sha256 signed in sorted place");
}

/* Same date/region/service with another secret must not reuse the cached key, and more
 * scopes than cache slots must still sign correctly when they come back. */
static void test_key_cache(void) {
  static const char *regions[] = {"eu-west-1", "us-west-2", "ap-south-1", "sa-east-1",
                                  "ca-central-1"};
  sigv4_request rq = ddb_request();
  sigv4_output out;
  char buf[512];
  sign_into(&rq, SK, "us-east-1", SIGV4_FLAGS_DEFAULT, &out, buf, sizeof buf);
  is_str(out.signature, DDB_SIG, "cache: first secret");
  sign_into(&rq, SK2, "us-east-1", SIGV4_FLAGS_DEFAULT, &out, buf, sizeof buf);
  is_str(out.signature, DDB_SIG_SK2, "cache: second secret, same scope, own key");
  sign_into(&rq, SK, "us-east-1", SIGV4_FLAGS_DEFAULT, &out, buf, sizeof buf);
  is_str(out.signature, DDB_SIG, "cache: first secret again");
  for (int i = 0; i < 5; i++) sign_into(&rq, SK, regions[i], 1, &out, buf, sizeof buf);
  sign_into(&rq, SK, "eu-west-1", SIGV4_FLAGS_DEFAULT, &out, buf, sizeof buf);
  is_str(out.signature, DDB_SIG_EU, "cache: evicted scope derived again");
  sigv4_thread_cleanup();
  sign_into(&rq, SK, "us-east-1", SIGV4_FLAGS_DEFAULT, &out, buf, sizeof buf);
  is_str(out.signature, DDB_SIG, "cache: signs again after thread cleanup");
}

/* The slot also caches "AKID/scope": another access key id with the same secret must not
 * reuse it (the signature itself does not depend on the access key id). */
static void test_cache_akid(void) {
  sigv4_request rq = ddb_request();
  sigv4_credentials c = {"AKIDOTHEREXAMPLE0000", SK, TOK};
  sigv4_params p = params_for("us-east-1", "dynamodb", SIGV4_FLAGS_DEFAULT);
  char buf[512];
  sigv4_output out = {.buf = buf, .size = sizeof buf};
  sign_into(&rq, SK, "us-east-1", SIGV4_FLAGS_DEFAULT, &out, buf, sizeof buf);
  is_int(sigv4_sign(&rq, &c, &p, &out), SIGV4_OK, "cache: other access key id signs");
  is_str(buf, DDB_AUTH_AK2, "cache: other access key id gets its own credential");
  c.access_key_id = "AKID/BAD";
  is_int(sigv4_sign(&rq, &c, &p, &out), SIGV4_ERR_INVALID, "cache: bad access key id refused");
}

/* Each thread has its own contexts and cache; results must not interfere. */
static int sign_in_thread(void *arg) {
  const char *region = arg;
  const char *want = strcmp(region, "eu-west-1") == 0 ? DDB_SIG_EU : DDB_SIG;
  sigv4_request rq = ddb_request();
  sigv4_output out;
  char buf[512];
  int good = 0;
  for (int i = 0; i < 200; i++)
    good += sign_into(&rq, SK, region, SIGV4_FLAGS_DEFAULT, &out, buf, sizeof buf) == 0 &&
            strcmp(out.signature, want) == 0;
  sigv4_thread_cleanup();
  return good;
}

static void test_threads(void) {
  thrd_t t[2];
  int good[2] = {0, 0};
  int s0 = thrd_create(&t[0], sign_in_thread, "us-east-1") == thrd_success;
  int s1 = s0 && thrd_create(&t[1], sign_in_thread, "eu-west-1") == thrd_success;
  if (s0) thrd_join(t[0], &good[0]);
  if (s1) thrd_join(t[1], &good[1]);
  ok(s0 && s1, "threads: started");
  ok(good[0] == 200 && good[1] == 200, "threads: 2 x 200 concurrent signatures correct");
}

static void test_sts_presign(void) {
  static const sigv4_header h[] = {{"Host", "sts.amazonaws.com"}};
  sigv4_request rq = {.method = "GET", .path = "/", .headers = h, .n_headers = 1,
                      .query = "Action=GetCallerIdentity&Version=2011-06-15"};
  sigv4_credentials c = {AK, SK, TOK};
  sigv4_params p = params_for("us-east-1", "sts", SIGV4_FLAGS_DEFAULT | SIGV4_PRESIGN);
  char buf[1024];
  sigv4_output out = {.buf = buf, .size = sizeof buf};
  p.expires = 900;
  is_int(sigv4_sign(&rq, &c, &p, &out), SIGV4_OK, "sts presign: sign");
  is_str(buf, STS_PRESIGN, "sts presign: query string");
  p.expires = 0;
  is_int(sigv4_sign(&rq, &c, &p, &out), SIGV4_ERR_INVALID, "sts presign: expires 0 refused");
}

/* Line 2 (the canonical URI) or 3 (the canonical query) of the canonical request. */
static char *creq_line(const char *path, const char *query, unsigned flags, int line) {
  static char got[512];
  static const sigv4_header h[] = {{"Host", "bucket.s3.amazonaws.com"}};
  sigv4_request rq = {.method = "GET", .path = path, .query = query, .headers = h,
                      .n_headers = 1};
  sigv4_credentials c = {AK, SK, NULL};
  sigv4_params p = params_for("us-east-1", "s3", flags);
  char *creq = NULL, *s;
  got[0] = '\0';
  if (sigv4_canonical_request(&rq, &c, &p, &creq) != SIGV4_OK) return got;
  s = creq;
  for (int i = 1; i < line && s; i++) s = strchr(s, '\n') ? strchr(s, '\n') + 1 : NULL;
  if (s) snprintf(got, sizeof got, "%.*s", (int)strcspn(s, "\n"), s);
  free(creq);
  return got;
}

static void test_paths(void) {
  const char *p = "/my-bucket/a%20b/c+d/..//x";
  is_str(creq_line(p, NULL, SIGV4_NORMALIZE_PATH, 2), "/my-bucket/a%2520b/x",
         "path: normalised and double-encoded");
  is_str(creq_line(p, NULL, 0, 2), "/my-bucket/a%20b/c%2Bd/..//x", "path: S3 style kept");
  is_str(creq_line("/my-bucket/a%20b/c+d/..//x/", NULL, 1, 2), "/my-bucket/a%2520b/x/",
         "path: trailing slash kept");
  is_str(creq_line("/a%2Fb/%zz/%7e", NULL, 1, 2), "/a%252Fb/%25zz/%257e",
         "path: '%%' double-encoded");
  is_str(creq_line("/a%2Fb/%zz/%7e", NULL, 0, 2), "/a%2Fb/%25zz/~",
         "path: S3 style decodes once, stray '%%' encoded");
  is_str(creq_line("", NULL, 1, 2), "/", "path: empty is '/'");
  is_str(creq_line("/../..", NULL, 1, 2), "/", "path: '..' stops at the root");
}

static void test_query(void) {
  is_str(creq_line("/", "b=2&a=&a=1&c&%41=x&sp=a%20b+c&&z=%2f%ZZ", 1, 3),
         "A=x&a=&a=1&b=2&c=&sp=a%20b%2Bc&z=%2F%25ZZ", "query: decoded, encoded, sorted");
  is_str(creq_line("/", "", 1, 3), "", "query: empty");
}

static void test_headers(void) {
  static const sigv4_header h[] = {{"Host", "x"}, {"X-B", "  b1  "}, {"x-a", "a\r\n\t  a2"},
                                   {"X-B", "b2"}, {"Authorization", "old"}, {"X-Amz-Date", "old"}};
  sigv4_request rq = {.method = "GET", .path = "/", .headers = h, .n_headers = 6};
  sigv4_credentials c = {AK, SK, NULL};
  sigv4_params p = params_for("us-east-1", "s3", 1);
  char *creq = NULL;
  is_int(sigv4_canonical_request(&rq, &c, &p, &creq), SIGV4_OK, "headers: canonical request");
  is_str(creq, "GET\n/\n\nhost:x\nx-a:a a2\nx-amz-date:20240115T102030Z\nx-b:b1,b2\n\n"
               "host;x-a;x-amz-date;x-b\n"
               "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
         "headers: folded, trimmed, joined; Authorization and caller X-Amz-Date dropped");
  free(creq);
}

/* The canonical request from a cold signer (no kept header layout, no cached key). */
static char *cold_creq(const sigv4_request *rq, const sigv4_credentials *c,
                       const sigv4_params *p) {
  char *creq = NULL;
  sigv4_thread_cleanup();
  if (sigv4_canonical_request(rq, c, p, &creq) != SIGV4_OK) return NULL;
  return creq;
}

/* Warm after a request with other header names, other values, another mode or a name
 * changed in place, the signer must give what a cold one gives. */
static void check_warm(const sigv4_request *warm_rq, const sigv4_credentials *warm_c,
                       const sigv4_params *warm_p, const sigv4_request *rq,
                       const sigv4_credentials *c, const sigv4_params *p, const char *what) {
  char *want_first = cold_creq(warm_rq, warm_c, warm_p), *want = cold_creq(rq, c, p);
  char *first = NULL, *got = NULL;
  sigv4_thread_cleanup();
  int rc1 = sigv4_canonical_request(warm_rq, warm_c, warm_p, &first);
  int rc2 = sigv4_canonical_request(rq, c, p, &got);
  ok(want_first && want && rc1 == SIGV4_OK && rc2 == SIGV4_OK, "%s: signed warm and cold", what);
  is_str(first, want_first, "%s: the first request", what);
  is_str(got, want, "%s", what);
  free(want_first);
  free(want);
  free(first);
  free(got);
}

static void test_header_layout(void) {
  char name[] = "x-a";
  sigv4_header h1[] = {{"host", "x"}, {name, "1"}, {"x-amz-security-token", "caller"}};
  sigv4_header h2[] = {{"Host", "x"}, {"X-A", "1"}, {"x-amz-security-token", "caller"}};
  sigv4_header h3[] = {{"host", "y"}, {"x-a", " 2  two "}, {"x-amz-security-token", "c2"}};
  sigv4_header h4[] = {{"host", "x"}, {"x-a", "1"}};
  sigv4_request r1 = {.method = "GET", .path = "/", .headers = h1, .n_headers = 3};
  sigv4_request r2 = r1, r3 = r1, r4 = r1;
  r2.headers = h2, r3.headers = h3, r4.headers = h4, r4.n_headers = 2;
  sigv4_credentials tok = {AK, SK, TOK}, notok = {AK, SK, NULL};
  sigv4_params p = params_for("us-east-1", "s3", 1);
  sigv4_params sha = params_for("us-east-1", "s3", 1 | SIGV4_ADD_CONTENT_SHA256);
  sigv4_params pre = params_for("us-east-1", "s3", 1 | SIGV4_PRESIGN);
  pre.expires = 60;
  check_warm(&r1, &tok, &p, &r2, &tok, &p, "layout: same names in other case");
  check_warm(&r1, &tok, &p, &r3, &tok, &p, "layout: same names, new values");
  check_warm(&r1, &tok, &p, &r1, &notok, &p, "layout: without a token the caller's is kept");
  check_warm(&r1, &notok, &p, &r1, &tok, &p, "layout: with a token the caller's is dropped");
  check_warm(&r1, &tok, &p, &r1, &tok, &sha, "layout: content-sha256 added");
  check_warm(&r1, &tok, &sha, &r1, &tok, &p, "layout: content-sha256 gone again");
  check_warm(&r1, &tok, &p, &r1, &tok, &pre, "layout: presigned");
  check_warm(&r1, &tok, &p, &r4, &tok, &p, "layout: fewer headers");
  char *before = NULL, *after = NULL;
  sigv4_canonical_request(&r1, &tok, &p, &before);
  memcpy(name, "x-b", 3); /* the same pointers, another name */
  sigv4_canonical_request(&r1, &tok, &p, &after);
  char *want = cold_creq(&r1, &tok, &p);
  ok(before && after && want && strstr(after, "x-b:1\n") && !strstr(after, "x-a:") &&
         strcmp(after, want) == 0 && strcmp(before, after) != 0,
     "layout: a name changed in place is seen");
  free(before);
  free(after);
  free(want);
  sigv4_output out;
  char buf[512];
  sigv4_request r5 = r4;
  sigv4_header h5[] = {{"host", "x"}, {"x-a", NULL}};
  r5.headers = h5;
  is_int(sign_into(&r4, SK, "us-east-1", 1, &out, buf, sizeof buf), SIGV4_OK,
         "layout: warm with a request");
  is_int(sign_into(&r5, SK, "us-east-1", 1, &out, buf, sizeof buf), SIGV4_ERR_INVALID,
         "layout: same names, a NULL value refused");
}

/* The rule, byte by byte: trimmed, each run of spaces, tabs and line breaks one space. */
static void ref_fold(const char *v, char *o) {
  size_t w = 0;
  int gap = 0;
  for (; *v; v++) {
    if (strchr(" \t\r\n", *v)) {
      gap = w > 0;
      continue;
    }
    if (gap) o[w++] = ' ';
    gap = 0;
    o[w++] = *v;
  }
  o[w] = '\0';
}

/* Values of every length up to 40 with a blank run, a tab or a control byte at every
 * place: the word-at-a-time paths must fold as the rule does. */
static void test_fold_positions(void) {
  static const char *const blanks[] = {" ", "  ", "\t", "\r\n ", "\x01"};
  int bad = 0, n = 0;
  for (size_t len = 1; len <= 40; len++)
    for (size_t at = 0; at <= len; at++)
      for (size_t b = 0; b < sizeof blanks / sizeof *blanks; b++) {
        char v[64], want[96], line[128], *creq = NULL;
        memset(v, 'v', len);
        size_t bl = strlen(blanks[b]);
        memmove(v + at + bl, v + at, len - at);
        memcpy(v + at, blanks[b], bl);
        v[len + bl] = '\0';
        ref_fold(v, want);
        sigv4_header h[] = {{"host", "x"}, {"x-v", v}};
        sigv4_request rq = {.method = "GET", .path = "/", .headers = h, .n_headers = 2};
        sigv4_credentials c = {AK, SK, NULL};
        sigv4_params p = params_for("us-east-1", "s3", 1);
        snprintf(line, sizeof line, "\nx-v:%s\n", want);
        n++;
        if (sigv4_canonical_request(&rq, &c, &p, &creq) != SIGV4_OK || !strstr(creq, line)) {
          if (!bad) printf("# first mismatch: value '%s', want '%s'\n", v, want);
          bad++;
        }
        free(creq);
      }
  ok(bad == 0, "fold: %d values with a blank or control byte at each place match the rule", n);
}

static void test_truncation(void) {
  sigv4_request rq = ddb_request();
  sigv4_output out;
  char buf[16];
  is_int(sign_into(&rq, SK, "us-east-1", 1, &out, buf, sizeof buf), SIGV4_ERR_TRUNCATED,
         "truncation: reported");
  is_int(out.len, strlen(DDB_AUTH), "truncation: needed length reported");
  is_str(buf, "", "truncation: buffer left empty");
}

static void test_errors(void) {
  static const sigv4_header nohost[] = {{"x-a", "1"}};
  static const sigv4_header badname[] = {{"Host", "x"}, {"bad name", "1"}};
  sigv4_request rq = {.method = "GET", .path = "/", .headers = nohost, .n_headers = 1};
  sigv4_output out;
  char buf[512];
  is_int(sign_into(&rq, SK, "us-east-1", 1, &out, buf, sizeof buf), SIGV4_ERR_INVALID,
         "errors: no Host header");
  ok(strstr(sigv4_error_detail(), "Host") != NULL, "errors: detail names Host");
  rq.headers = badname, rq.n_headers = 2;
  is_int(sign_into(&rq, SK, "us-east-1", 1, &out, buf, sizeof buf), SIGV4_ERR_INVALID,
         "errors: bad header name");
  rq.path = "relative";
  is_int(sign_into(&rq, SK, "us-east-1", 1, &out, buf, sizeof buf), SIGV4_ERR_INVALID,
         "errors: relative path");
  rq = ddb_request();
  is_int(sign_into(&rq, SK, "us/east", 1, &out, buf, sizeof buf), SIGV4_ERR_INVALID,
         "errors: region with '/'");
  ok(!strstr(sigv4_error_detail(), SK) && !strstr(sigv4_error_detail(), TOK),
     "errors: detail holds no secret");
  is_int(sign_into(&rq, "", "us-east-1", 1, &out, buf, sizeof buf), SIGV4_ERR_INVALID,
         "errors: empty secret");
  is_str(out.signature, "", "errors: no signature on failure");
}

static void test_parser(void) {
  static const char crlf[] = "POST /a?x=1 HTTP/1.1\r\nHost: h\r\nX-M: v1\r\n  v2\r\n\r\nbody";
  rawreq rq;
  const char *err = NULL;
  is_int(rawreq_parse(crlf, strlen(crlf), &rq, &err), 0, "parser: CRLF request");
  is_str(rq.req.path, "/a", "parser: path");
  is_str(rq.req.query, "x=1", "parser: query");
  is_int(rq.req.n_headers, 2, "parser: folded header is one header");
  is_str(rq.headers[1].value, " v1\r\n  v2", "parser: folded value kept verbatim");
  is_int(rq.req.body_len, 4, "parser: body");
  rawreq_free(&rq);
  is_int(rawreq_parse(" x\n", 3, &rq, &err), -1, "parser: bad request line refused");
  is_int(rawreq_parse("GET / HTTP/1.1\n x\n", 18, &rq, &err), -1,
         "parser: continuation before any header refused");
  is_int(rawreq_parse("GET / HTTP/1.1\nnocolon\n", 23, &rq, &err), -1,
         "parser: header without ':' refused");
}

static void test_time(void) {
  time_t t = 0;
  char d[SIGV4_AMZ_DATE_LEN + 1];
  is_int(parse_iso8601_utc("2015-08-30T12:36:00Z", &t), 0, "time: parses");
  is_int(t, 1440938160, "time: epoch seconds");
  is_int(sigv4_format_amz_date(t, d), SIGV4_OK, "time: formats");
  is_str(d, "20150830T123600Z", "time: amz date");
  is_int(parse_iso8601_utc("2015-02-30T12:36:00Z", &t), -1, "time: Feb 30 refused");
  is_int(parse_iso8601_utc("2015-08-30 12:36:00Z", &t), -1, "time: bad separator refused");
}

/* ---- the public suite ---- */

static char *read_file(const char *dir, const char *name, size_t *len) {
  char path[4096];
  if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) return NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
  if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) &&
      fread(buf, 1, (size_t)n, f) == (size_t)n) {
    buf[n] = '\0';
    if (len) *len = (size_t)n;
  } else {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  return buf;
}

/* The value after "key": in the suite's flat context.json (no nested duplicates). */
static const char *json_value(const char *json, const char *key) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\"", key);
  const char *s = strstr(json, pat);
  if (!s) return NULL;
  s += strlen(pat);
  s += strspn(s, " \t\r\n");
  if (*s != ':') return NULL;
  return s + 1 + strspn(s + 1, " \t\r\n");
}

static int json_string(const char *json, const char *key, char *out, size_t size) {
  const char *s = json_value(json, key);
  size_t n = 0;
  if (!s || *s++ != '"') return -1;
  for (; *s && *s != '"' && n + 1 < size; s++) {
    if (*s == '\\' && s[1]) s++; /* the suite only escapes '/' and '"' */
    out[n++] = *s;
  }
  out[n] = '\0';
  return *s == '"' ? 0 : -1;
}

static int json_true(const char *json, const char *key) {
  const char *s = json_value(json, key);
  return s && strncmp(s, "true", 4) == 0;
}

typedef struct {
  char akid[128], secret[256], token[2048], region[64], service[64], timestamp[32];
  int normalize, sign_body, omit_token;
  unsigned expires;
} suite_ctx;

static int load_ctx(const char *dir, suite_ctx *c) {
  char *j = read_file(dir, "context.json", NULL);
  const char *e;
  int rc = !j || json_string(j, "access_key_id", c->akid, sizeof c->akid) ||
           json_string(j, "secret_access_key", c->secret, sizeof c->secret) ||
           json_string(j, "region", c->region, sizeof c->region) ||
           json_string(j, "service", c->service, sizeof c->service) ||
           json_string(j, "timestamp", c->timestamp, sizeof c->timestamp);
  if (!rc && json_string(j, "token", c->token, sizeof c->token)) c->token[0] = '\0';
  if (!rc) {
    c->normalize = json_true(j, "normalize");
    c->sign_body = json_true(j, "sign_body");
    c->omit_token = json_true(j, "omit_session_token");
    e = json_value(j, "expiration_in_seconds");
    c->expires = e ? (unsigned)strtoul(e, NULL, 10) : 0;
  }
  free(j);
  return rc ? -1 : 0;
}

/* Compares one expected file with got (NULL got counts as a failure). */
static void expect_file(const char *dir, const char *cname, const char *file, const char *got) {
  char *want = read_file(dir, file, NULL);
  is_str(got, want ? want : "(missing expected file)", "%s %s", cname, file);
  free(want);
}

static char *signed_text(const rawreq *rq, const sigv4_credentials *c, const sigv4_params *p,
                         const sigv4_output *out) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f) return NULL;
  int rc = rawreq_write_signed(f, rq, c, p, out);
  if (fclose(f) != 0 || rc != 0) {
    free(text);
    return NULL;
  }
  return text;
}

static void run_mode(const char *dir, const char *cname, const suite_ctx *x, const rawreq *rq,
                     const char *mode) {
  int q = strcmp(mode, "query") == 0;
  sigv4_credentials c = {x->akid, x->secret, x->token[0] ? x->token : NULL};
  sigv4_params p = {.region = x->region, .service = x->service, .expires = x->expires};
  char buf[4096], *creq = NULL, *sts = NULL, *text, f[64];
  sigv4_output out = {.buf = buf, .size = sizeof buf};
  p.flags = (x->normalize ? SIGV4_NORMALIZE_PATH : 0) | (q ? SIGV4_PRESIGN : 0) |
            (x->sign_body ? SIGV4_ADD_CONTENT_SHA256 : 0) |
            (x->omit_token ? SIGV4_OMIT_SESSION_TOKEN : 0);
  if (parse_iso8601_utc(x->timestamp, &p.time) != 0) p.time = 0;
  sigv4_canonical_request(&rq->req, &c, &p, &creq);
  sigv4_string_to_sign(&rq->req, &c, &p, &sts);
  int rc = sigv4_sign(&rq->req, &c, &p, &out);
  text = rc == SIGV4_OK ? signed_text(rq, &c, &p, &out) : NULL;
  snprintf(f, sizeof f, "%s-canonical-request.txt", mode);
  expect_file(dir, cname, f, creq);
  snprintf(f, sizeof f, "%s-string-to-sign.txt", mode);
  expect_file(dir, cname, f, sts);
  snprintf(f, sizeof f, "%s-signature.txt", mode);
  expect_file(dir, cname, f, rc == SIGV4_OK ? out.signature : NULL);
  snprintf(f, sizeof f, "%s-signed-request.txt", mode);
  expect_file(dir, cname, f, text);
  free(creq), free(sts), free(text);
}

static void run_case(const char *root, const char *cname) {
  char dir[4096], *raw;
  suite_ctx x;
  rawreq rq;
  size_t len = 0;
  const char *err = "unreadable";
  int n = snprintf(dir, sizeof dir, "%s/%s", root, cname);
  raw = n > 0 && (size_t)n < sizeof dir ? read_file(dir, "request.txt", &len) : NULL;
  int parsed = raw && load_ctx(dir, &x) == 0 && rawreq_parse(raw, len, &rq, &err) == 0;
  free(raw);
  if (!ok(parsed, "%s request.txt and context.json load", cname)) {
    printf("#   %s\n", err);
    return;
  }
  run_mode(dir, cname, &x, &rq, "header");
  run_mode(dir, cname, &x, &rq, "query");
  rawreq_free(&rq);
}

static int is_case(const struct dirent *d) { return d->d_name[0] != '.'; }

static void run_suite(const char *root) {
  struct dirent **names;
  int n = scandir(root, &names, is_case, alphasort);
  if (!ok(n >= 0, "suite folder lists")) return;
  for (int i = 0; i < n; i++) {
    run_case(root, names[i]->d_name);
    free(names[i]);
  }
  free(names);
  is_int(n, SUITE_CASES, "all %d suite cases ran", SUITE_CASES);
}

/* $ROTATOR_SHARED, else $ROTATOR_ROOT/../shared, else ../shared; NULL if absent. */
static const char *suite_root(char *buf, size_t size) {
  const char *shared = getenv("ROTATOR_SHARED"), *root = getenv("ROTATOR_ROOT");
  int n = shared ? snprintf(buf, size, "%s/" SUITE_REL, shared)
          : root ? snprintf(buf, size, "%s/../shared/" SUITE_REL, root)
                 : snprintf(buf, size, "../shared/" SUITE_REL);
  DIR *d = n > 0 && (size_t)n < size ? opendir(buf) : NULL;
  if (d) closedir(d);
  return d ? buf : NULL;
}

int main(void) {
  char root[4096];
  test_dynamodb_header();
  test_key_cache();
  test_cache_akid();
  test_threads();
  test_sts_presign();
  test_paths();
  test_query();
  test_headers();
  test_header_layout();
  test_fold_positions();
  test_truncation();
  test_errors();
  test_parser();
  test_time();
  if (suite_root(root, sizeof root))
    run_suite(root);
  else /* Not tap_skip_all(): the own fixtures above ran, so "1..0" would be a bad plan;
          the suite is one skipped test with the same reason text instead. */
    ok(1, "public SigV4 suite # SKIP ../shared/" SUITE_REL
          " not found (a user's clone has no ../shared)");
  sigv4_thread_cleanup();
  (void)tap_skip_all;
  return tap_done();
}
