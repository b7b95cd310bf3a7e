/* AWS Signature Version 4 (AWS4-HMAC-SHA256): Authorization-header and presigned-query
 * signing of one HTTP request, OpenSSL 3 only.
 *
 * Typical use (header signing of a DynamoDB call):
 *
 *   sigv4_header h[] = {{"host", "dynamodb.us-east-1.amazonaws.com"},
 *                       {"content-type", "application/x-amz-json-1.0"},
 *                       {"x-amz-target", "DynamoDB_20120810.DescribeTable"}};
 *   sigv4_request rq = {.method = "POST", .path = "/", .headers = h, .n_headers = 3,
 *                       .body = json, .body_len = json_len};
 *   sigv4_credentials cr = {akid, secret, token};
 *   sigv4_params p = {.region = "us-east-1", .service = "dynamodb", .time = time(NULL),
 *                     .flags = SIGV4_FLAGS_DEFAULT};
 *   char auth[1024];
 *   sigv4_output out = {.buf = auth, .size = sizeof auth};
 *   if (sigv4_sign(&rq, &cr, &p, &out) != SIGV4_OK) ... sigv4_error_detail() ...
 *   then send the request with these extra headers:
 *     X-Amz-Date: out.amz_date
 *     X-Amz-Security-Token: token                 (when there is one)
 *     x-amz-content-sha256: out.payload_hash      (with SIGV4_ADD_CONTENT_SHA256)
 *     Authorization: auth
 *
 * With SIGV4_PRESIGN the output is instead the query string to append to the request's
 * query (after '&', or after '?' when it has none): X-Amz-Algorithm, X-Amz-Credential,
 * X-Amz-Date, X-Amz-SignedHeaders, X-Amz-Expires, X-Amz-Security-Token, X-Amz-Signature.
 *
 * Canonicalisation (what the public SigV4 test suite expects):
 *  - path: with SIGV4_NORMALIZE_PATH (every service we call except S3) "." and ".."
 *    segments and empty segments are removed and each segment is URI-encoded as it is on
 *    the wire, so "%" becomes "%25" (AWS's "double encoding"); without it (S3 style) the
 *    path is kept as is, only percent-decoded and re-encoded once;
 *  - query: split on '&', each key and value percent-decoded then encoded with the RFC 3986
 *    unreserved set ('+' is a literal plus, not a space), sorted by key then value;
 *  - headers: names lower-cased, values trimmed and inner whitespace runs (including the
 *    line breaks of folded values) collapsed to one space, duplicates joined with ',' in
 *    the order given. Headers named Authorization are never signed.
 *
 * Threads: each thread lazily gets its own OpenSSL digest and MAC contexts, scratch buffers,
 * a 4-entry cache of derived signing keys per (access key, secret, date, region, service)
 * and the header layout of its last request (reused while the header names are the same).
 * A cached key is found by comparing the secret in constant time with a copy held in the
 * thread's state, which is wiped when freed. Signing needs no locks and, once warm, no
 * heap allocation of its own. Call sigv4_thread_cleanup() before a signing thread exits
 * and at process exit.
 *
 * Secrets: no function ever copies the secret key or session token into an error message. */
#ifndef ROTATOR_SIGV4_H
#define ROTATOR_SIGV4_H

#include <stddef.h>
#include <time.h>

#define SIGV4_MAX_HEADERS 64      /* request headers one signature accepts */
#define SIGV4_MAX_SECRET_LEN 128  /* AWS secrets are 40 characters */
#define SIGV4_MAX_SCOPE_PART 63   /* longest region or service name accepted */
#define SIGV4_MAX_EXPIRES 604800  /* 7 days: AWS rejects longer presigned requests */
#define SIGV4_AMZ_DATE_LEN 16     /* "20150830T123600Z" */
#define SIGV4_HEX_LEN 64          /* hex SHA-256 / HMAC-SHA256 */
#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"

/* Status codes; sigv4_strerror() names them, sigv4_error_detail() says what was wrong. */
enum {
  SIGV4_OK = 0,
  SIGV4_ERR_INVALID = -1,   /* missing or malformed input */
  SIGV4_ERR_LIMIT = -2,     /* input larger than the limits above */
  SIGV4_ERR_TRUNCATED = -3, /* output buffer too small; out->len holds the size needed */
  SIGV4_ERR_NOMEM = -4,
  SIGV4_ERR_CRYPTO = -5,    /* OpenSSL failed */
};

enum {
  SIGV4_NORMALIZE_PATH = 1u << 0,     /* remove dot segments and "//", double-encode */
  SIGV4_PRESIGN = 1u << 1,            /* sign into the query string instead of a header */
  SIGV4_ADD_CONTENT_SHA256 = 1u << 2, /* sign an x-amz-content-sha256 header (header mode) */
  SIGV4_OMIT_SESSION_TOKEN = 1u << 3, /* send the token but leave it out of the signature */
};
#define SIGV4_FLAGS_DEFAULT SIGV4_NORMALIZE_PATH

typedef struct {
  const char *name;  /* any case; must be an HTTP token */
  const char *value; /* raw value: surrounding and folded whitespace is canonicalised */
} sigv4_header;

typedef struct {
  const char *method;          /* "GET", "POST", ... */
  const char *path;            /* path as sent on the wire, starting with '/', no query */
  const char *query;           /* query as sent on the wire without the '?', or NULL */
  const sigv4_header *headers; /* headers to sign; should include Host */
  size_t n_headers;
  const void *body;            /* may be NULL when body_len is 0 */
  size_t body_len;
  const char *payload_hash;    /* optional: hex SHA-256 of the body or UNSIGNED-PAYLOAD;
                                  when set, body is not hashed */
} sigv4_request;

typedef struct {
  const char *access_key_id;
  const char *secret_access_key;
  const char *session_token; /* NULL or "" without one */
} sigv4_credentials;

typedef struct {
  const char *region;   /* "us-east-1" */
  const char *service;  /* signing name: "dynamodb", "ssm", "sqs", "backup", "sts" */
  time_t time;          /* signing time, used when amz_date is NULL */
  const char *amz_date; /* optional fixed "YYYYMMDDTHHMMSSZ" */
  unsigned flags;       /* SIGV4_* flags above */
  unsigned expires;     /* SIGV4_PRESIGN: X-Amz-Expires, 1..SIGV4_MAX_EXPIRES seconds */
} sigv4_params;

typedef struct {
  char *buf;   /* in: caller's buffer for the Authorization value or presign query */
  size_t size; /* in: its size */
  size_t len;  /* out: length written without the NUL (or needed, on TRUNCATED) */
  char amz_date[SIGV4_AMZ_DATE_LEN + 1];  /* out: X-Amz-Date used */
  char payload_hash[SIGV4_HEX_LEN + 1];   /* out: payload hash used */
  char signature[SIGV4_HEX_LEN + 1];      /* out: hex signature */
} sigv4_output;

/* Signs req; returns SIGV4_OK or a negative status (out->buf then holds "" if size > 0). */
int sigv4_sign(const sigv4_request *req, const sigv4_credentials *cred,
               const sigv4_params *params, sigv4_output *out);

/* The canonical request / string to sign that sigv4_sign() would hash, as a malloc'd
 * NUL-terminated string in *out (free() it). For --verbose output and tests. */
int sigv4_canonical_request(const sigv4_request *req, const sigv4_credentials *cred,
                            const sigv4_params *params, char **out);
int sigv4_string_to_sign(const sigv4_request *req, const sigv4_credentials *cred,
                         const sigv4_params *params, char **out);

/* Formats t as "YYYYMMDDTHHMMSSZ" (UTC). */
int sigv4_format_amz_date(time_t t, char out[SIGV4_AMZ_DATE_LEN + 1]);

const char *sigv4_strerror(int status);
/* What the last failing call on this thread objected to (static text, no secrets). */
const char *sigv4_error_detail(void);

/* Frees this thread's contexts, buffers and cached keys (wiped). Signing afterwards
 * simply starts again with a cold cache. */
void sigv4_thread_cleanup(void);

#endif
