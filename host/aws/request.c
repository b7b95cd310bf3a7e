/* One AWS request attempt: protocol headers, SigV4 signing, the HTTP send. */
#include "aws/request.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/url.h"

static const char *default_ctype(aws_protocol_t p) {
  switch (p) {
    case AWS_JSON_1_0: return "application/x-amz-json-1.0";
    case AWS_JSON_1_1: return "application/x-amz-json-1.1";
    case AWS_REST_JSON_1: return "application/json";
    case AWS_QUERY: return "application/x-www-form-urlencoded; charset=utf-8";
  }
  return "application/octet-stream";
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

void aws_request_clear(aws_request_t *q) {
  free(q->action);
  free(q->method);
  free(q->query);
  if (q->body) OPENSSL_cleanse(q->body, q->body_len);
  free(q->body);
  free(q->ctype);
  free(q->target);
  free(q->rel_path);
  free(q->path);
  free(q->url);
  memset(q, 0, sizeof *q);
}

static int copy_call(aws_request_t *q, const aws_call_t *call) {
  q->action = strdup(call->action);
  q->method = strdup(call->method ? call->method : "POST");
  q->query = dup_or_null(call->query);
  q->ctype = strdup(call->content_type ? call->content_type : default_ctype(q->svc->protocol));
  q->rel_path = dup_or_null(call->path);
  q->body = malloc(call->body_len + 1);
  if (!q->action || !q->method || (call->query && !q->query) || (call->path && !q->rel_path) ||
      !q->ctype || !q->body)
    return -1;
  if (call->body_len) memcpy(q->body, call->body, call->body_len);
  q->body[call->body_len] = '\0';
  q->body_len = call->body_len;
  if (q->svc->target_prefix && asprintf(&q->target, "%s.%s", q->svc->target_prefix, q->action) < 0) {
    q->target = NULL;
    return -1;
  }
  return 0;
}

int aws_request_init(aws_request_t *q, const aws_call_t *call, char *err, size_t errlen) {
  memset(q, 0, sizeof *q);
  q->svc = aws_service(call->service);
  if (!q->svc) {
    snprintf(err, errlen, "unknown service '%.40s'", call->service ? call->service : "");
    return -1;
  }
  if (copy_call(q, call) < 0) {
    aws_request_clear(q);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  q->timeout_ms = call->timeout_ms;
  return 0;
}

int aws_request_set_region(aws_request_t *q, const char *region, char *err, size_t errlen) {
  if (strlen(region) >= sizeof q->region) {
    snprintf(err, errlen, "AWS region '%.80s' is too long (the limit is %zu characters)", region,
             sizeof q->region - 1);
    return -1;
  }
  snprintf(q->region, sizeof q->region, "%s", region);
  char base[URL_MAX];
  if (aws_endpoint(q->svc, q->region, NULL, base, sizeof base, err, errlen) < 0) return -1;
  url_parts_t u;
  if (url_split(base, &u) < 0 || u.host_len >= sizeof q->host) {
    snprintf(err, errlen, "bad endpoint URL '%.200s' (host at most %zu characters)", base,
             sizeof q->host - 1);
    return -1;
  }
  memcpy(q->host, u.host, u.host_len);
  q->host[u.host_len] = '\0';
  free(q->path);
  free(q->url);
  q->url = NULL;
  const char *rel = q->rel_path ? q->rel_path : "/";
  if (asprintf(&q->path, "%.*s%s", (int)u.path_len, u.path, rel) < 0) q->path = NULL;
  else if (asprintf(&q->url, "%.*s%s%s%s", (int)(u.path - base), base, q->path, q->query ? "?" : "",
                    q->query ? q->query : "") < 0)
    q->url = NULL;
  if (!q->path || !q->url) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  return 0;
}

/* The wire headers of one attempt, each malloc'd ("Name: value"). */
typedef struct {
  char *line[8];
  size_t n;
} headers_t;

static int add_header(headers_t *h, const char *name, const char *value) {
  if (asprintf(&h->line[h->n], "%s: %s", name, value) < 0) return -1;
  h->n++;
  return 0;
}

static void clear_headers(headers_t *h) {
  for (size_t i = 0; i < h->n; i++) {
    OPENSSL_cleanse(h->line[i], strlen(h->line[i]));
    free(h->line[i]);
  }
  h->n = 0;
}

/* The Authorization value for q signed with cr at now. 0, or -1 with err. */
static int sign(const aws_request_t *q, const sigv4_credentials *cr, time_t now, int corrupt,
                char *auth, size_t authlen, char *amz_date, char *err, size_t errlen) {
  const char *token = cr->session_token && cr->session_token[0] ? cr->session_token : NULL;
  sigv4_header sh[4];
  size_t nh = 0;
  sh[nh++] = (sigv4_header){"host", q->host};
  sh[nh++] = (sigv4_header){"content-type", q->ctype};
  if (q->target) sh[nh++] = (sigv4_header){"x-amz-target", q->target};
  if (token) sh[nh++] = (sigv4_header){"x-amz-security-token", token};
  sigv4_request rq = {.method = q->method, .path = q->path, .query = q->query, .headers = sh,
                      .n_headers = nh, .body = q->body, .body_len = q->body_len};
  char *secret = strdup(cr->secret_access_key);
  if (!secret) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  if (corrupt && secret[0]) secret[0] ^= 1;
  sigv4_credentials sc = {cr->access_key_id, secret, token};
  sigv4_params sp = {.region = q->region, .service = q->svc->signing_name, .time = now,
                     .flags = SIGV4_FLAGS_DEFAULT};
  sigv4_output out = {.buf = auth, .size = authlen};
  int rc = sigv4_sign(&rq, &sc, &sp, &out);
  OPENSSL_cleanse(secret, strlen(secret));
  free(secret);
  if (rc != SIGV4_OK) {
    snprintf(err, errlen, "signing failed: %s (%s)", sigv4_strerror(rc), sigv4_error_detail());
    return -1;
  }
  memcpy(amz_date, out.amz_date, sizeof out.amz_date);
  return 0;
}

static int build_headers(const aws_request_t *q, const sigv4_credentials *cr, time_t now, int corrupt,
                         headers_t *h, char *err, size_t errlen) {
  if (add_header(h, "Host", q->host) < 0 || add_header(h, "Content-Type", q->ctype) < 0 ||
      (q->target && add_header(h, "X-Amz-Target", q->target) < 0))
    goto nomem;
  if (!cr) return 0;
  char auth[1024], amz_date[SIGV4_AMZ_DATE_LEN + 1];
  if (sign(q, cr, now, corrupt, auth, sizeof auth, amz_date, err, errlen) < 0) return -1;
  int rc = add_header(h, "X-Amz-Date", amz_date) < 0 || add_header(h, "Authorization", auth) < 0 ||
           (cr->session_token && cr->session_token[0] &&
            add_header(h, "X-Amz-Security-Token", cr->session_token) < 0);
  OPENSSL_cleanse(auth, sizeof auth);
  if (!rc) return 0;
nomem:
  snprintf(err, errlen, "out of memory");
  return -1;
}

uint64_t aws_request_send(http_client_t *http, const aws_request_t *q, const sigv4_credentials *cr,
                          time_t now, int corrupt_secret, http_done_fn fn, void *ud,
                          char *err, size_t errlen) {
  headers_t h = {.n = 0};
  if (!q->url) {
    snprintf(err, errlen, "the request has no endpoint yet");
    return 0;
  }
  if (build_headers(q, cr, now, corrupt_secret, &h, err, errlen) < 0) {
    clear_headers(&h);
    return 0;
  }
  http_request_t hr = {.method = q->method, .url = q->url, .headers = (const char *const *)h.line,
                       .nheaders = h.n, .body = q->body, .body_len = q->body_len,
                       .timeout_ms = q->timeout_ms,
                       .max_response_bytes = q->max_response_bytes};
  uint64_t id = http_send(http, &hr, fn, ud);
  clear_headers(&h);
  if (!id) snprintf(err, errlen, "cannot start the HTTP request to %s", q->url);
  return id;
}
