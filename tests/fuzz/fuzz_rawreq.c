/* libFuzzer harness: `rotator sign`'s raw request format (cli/rawreq.c), then SigV4
 * canonicalisation and signing (aws/sigv4.c) of what parsed, in the mode the input's
 * length selects (header signing, S3-style paths, signed payload hash, presigning; with
 * or without a session token). Checks, the invariants of the conformance suite's
 * canonical requests: the canonical request is deterministic and does not depend on the
 * order of distinct headers; its query is made of encoded pairs sorted by key then value;
 * its header names are lower case, unique and sorted, its values trimmed with no runs of
 * spaces; the signed-headers line lists exactly those names; the string to sign carries
 * the SHA-256 of the canonical request; the signature is 64 lowercase hex digits. A
 * signer kept warm by another mode or header order (its header layout made for them)
 * gives what a cold one gives. */
#include <openssl/sha.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/rawreq.h"

static int unreserved(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("-._~", c);
}

/* each byte unreserved or a %XX escape with upper-case hex */
static int encoded(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (p[i] && unreserved(p[i])) continue;
    if (p[i] != '%' || i + 2 >= n || !p[i + 1] || !p[i + 2] || !strchr("0123456789ABCDEF", p[i + 1]) ||
        !strchr("0123456789ABCDEF", p[i + 2]))
      return 0;
    i += 2;
  }
  return 1;
}

static int cmp_span(const char *a, size_t an, const char *b, size_t bn) {
  int c = memcmp(a, b, an < bn ? an : bn);
  return c ? c : (an > bn) - (an < bn);
}

static const char *line_end(const char *p) {
  const char *e = strchr(p, '\n');
  if (!e) abort(); /* every line of a canonical request but the last ends in '\n' */
  return e;
}

static void check_query(const char *q, const char *end) {
  const char *pk = NULL, *pv = NULL;
  size_t pkn = 0, pvn = 0;
  while (q < end) {
    const char *amp = memchr(q, '&', (size_t)(end - q)), *pe = amp ? amp : end;
    const char *eq = memchr(q, '=', (size_t)(pe - q));
    if (!eq) abort(); /* every pair is key=value, the value possibly empty */
    const char *v = eq + 1;
    size_t kn = (size_t)(eq - q), vn = (size_t)(pe - v);
    if (!encoded(q, kn) || !encoded(v, vn)) abort();
    if (pk) {
      int c = cmp_span(pk, pkn, q, kn);
      if (c > 0 || (c == 0 && cmp_span(pv, pvn, v, vn) > 0)) abort();
    }
    pk = q, pkn = kn, pv = v, pvn = vn;
    q = amp ? amp + 1 : end;
  }
}

static void check_canonical(const char *canon, const char *sts) {
  const char *method_end = line_end(canon);
  const char *path = method_end + 1, *path_end = line_end(path);
  if (*path != '/') abort();
  const char *query = path_end + 1, *query_end = line_end(query);
  check_query(query, query_end);
  /* header lines up to the blank line */
  const char *h = query_end + 1, *prev = NULL;
  size_t prevn = 0;
  char names[8192];
  size_t nl = 0;
  while (*h != '\n') {
    const char *e = line_end(h), *colon = memchr(h, ':', (size_t)(e - h));
    if (!colon || colon == h) abort();
    size_t n = (size_t)(colon - h);
    for (size_t i = 0; i < n; i++)
      if ((h[i] >= 'A' && h[i] <= 'Z') || h[i] == ' ' || h[i] == '\t') abort();
    if (prev && cmp_span(prev, prevn, h, n) >= 0) abort(); /* sorted, no duplicate */
    const char *v = colon + 1;
    size_t vn = (size_t)(e - v);
    if (vn && (v[0] == ' ' || v[vn - 1] == ' ')) abort();
    for (size_t i = 0; i < vn; i++)
      if (v[i] == '\t' || v[i] == '\r' || (v[i] == ' ' && i + 1 < vn && v[i + 1] == ' ')) abort();
    if (nl + n + 1 >= sizeof names) abort(); /* SIGV4_MAX_HEADERS bounds the list */
    if (nl) names[nl++] = ';';
    memcpy(names + nl, h, n);
    nl += n;
    prev = h, prevn = n;
    h = e + 1;
  }
  const char *signed_line = h + 1, *signed_end = line_end(signed_line);
  if ((size_t)(signed_end - signed_line) != nl || memcmp(signed_line, names, nl) != 0) abort();
  const char *hash = signed_end + 1;
  if (strchr(hash, '\n')) abort();
  if (strcmp(hash, SIGV4_UNSIGNED_PAYLOAD) != 0 && (strlen(hash) != 64 || strspn(hash, "0123456789abcdef") != 64))
    abort();
  /* string to sign: algorithm, date, scope, hex SHA-256 of the canonical request */
  unsigned char md[SHA256_DIGEST_LENGTH];
  char hex[2 * SHA256_DIGEST_LENGTH + 1];
  SHA256((const unsigned char *)canon, strlen(canon), md);
  for (size_t i = 0; i < sizeof md; i++) {
    hex[2 * i] = "0123456789abcdef"[md[i] >> 4];
    hex[2 * i + 1] = "0123456789abcdef"[md[i] & 15];
  }
  hex[sizeof hex - 1] = 0;
  const char *last = strrchr(sts, '\n');
  if (strncmp(sts, "AWS4-HMAC-SHA256\n", 17) != 0 || !last || strcmp(last + 1, hex) != 0) abort();
}

/* 1 when no two header names are equal ignoring case (reordering them is then neutral) */
static int distinct_names(const sigv4_header *h, size_t n) {
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++)
      if (strcasecmp(h[i].name, h[j].name) == 0) return 0;
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  rawreq rq;
  const char *err = NULL;
  if (rawreq_parse((const char *)data, size, &rq, &err) != 0) {
    if (!err) abort();
    return 0;
  }
  static const unsigned MODES[] = {SIGV4_FLAGS_DEFAULT, 0, SIGV4_FLAGS_DEFAULT | SIGV4_ADD_CONTENT_SHA256,
                                   SIGV4_FLAGS_DEFAULT | SIGV4_PRESIGN};
  sigv4_credentials cr = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                          size % 8 >= 4 ? "session+token/=" : NULL};
  sigv4_params p = {.region = "us-east-1", .service = "service", .amz_date = "20150830T123600Z",
                    .flags = MODES[size % 4], .expires = 60};
  char auth[8192];
  sigv4_output out = {.buf = auth, .size = sizeof auth};
  char *c0 = NULL, *c1 = NULL, *c2 = NULL, *c3 = NULL, *c4 = NULL, *sts = NULL;
  char *o0 = NULL, *o1 = NULL;
  sigv4_params other = p;
  other.flags = MODES[(size + 1) % 4];
  int rc0 = sigv4_canonical_request(&rq.req, &cr, &p, &c0); /* cold */
  sigv4_thread_cleanup();
  int ro0 = sigv4_canonical_request(&rq.req, &cr, &other, &o0); /* cold */
  int rc = sigv4_canonical_request(&rq.req, &cr, &p, &c1);      /* warm from the other mode */
  int ro1 = sigv4_canonical_request(&rq.req, &cr, &other, &o1); /* and back */
  if (rc != rc0 || ro1 != ro0 || (rc == SIGV4_OK && strcmp(c0, c1) != 0) ||
      (ro1 == SIGV4_OK && strcmp(o0, o1) != 0))
    abort();
  free(o0);
  free(o1);
  if (rc == SIGV4_OK) {
    if (!c1 || sigv4_canonical_request(&rq.req, &cr, &p, &c2) != SIGV4_OK || strcmp(c1, c2) != 0) abort();
    if (sigv4_string_to_sign(&rq.req, &cr, &p, &sts) != SIGV4_OK) abort();
    check_canonical(c1, sts);
    if (sigv4_sign(&rq.req, &cr, &p, &out) != SIGV4_OK) abort(); /* canonicalised, so it signs */
    if (strlen(out.signature) != 64 || strspn(out.signature, "0123456789abcdef") != 64) abort();
    if (rq.req.n_headers > 1 && distinct_names(rq.req.headers, rq.req.n_headers)) {
      sigv4_header rev[SIGV4_MAX_HEADERS];
      for (size_t i = 0; i < rq.req.n_headers; i++) rev[i] = rq.req.headers[rq.req.n_headers - 1 - i];
      sigv4_request r2 = rq.req;
      r2.headers = rev;
      if (sigv4_canonical_request(&r2, &cr, &p, &c3) != SIGV4_OK || strcmp(c1, c3) != 0) abort();
      if (sigv4_canonical_request(&rq.req, &cr, &p, &c4) != SIGV4_OK || strcmp(c1, c4) != 0) abort();
    }
  } else if (sigv4_sign(&rq.req, &cr, &p, &out) == SIGV4_OK) {
    abort(); /* signed what it could not canonicalise */
  }
  free(c0);
  free(c1);
  free(c2);
  free(c3);
  free(c4);
  free(sts);
  sigv4_thread_cleanup();
  rawreq_free(&rq);
  return 0;
}
