/* AWS SigV4 signer; the contract and canonicalisation rules are in sigv4.h.
 * Layout: 1. scratch strings and small encoders  2. per-thread state  3. hashing and the
 *         signing-key cache  4. one signing job and its input checks  5. canonical
 *         headers, URI and query  6. assembly and public API.
 * Speed matters because every AWS call is signed; `rotator bench sign` compares one
 * signature with the bare hashing it needs (body, canonical request, one HMAC), and the
 * signer's own work is kept to a fraction of that:
 *  - per-thread OpenSSL contexts are reused (a one-shot EVP_Digest()/HMAC() re-fetches the
 *    algorithm on each call and costs ~3x for small inputs);
 *  - a key-cache slot holds kSigning loaded in its own HMAC context (one keyless re-init
 *    per signature) plus the scope and credential strings; it is found by byte-equal
 *    scope parts and a constant-time compare of the secret (no hashing per signature),
 *    which also makes re-validating them unnecessary;
 *  - the header layout (names lower-cased and validated, the signer's own headers, the
 *    canonical order, the SignedHeaders list) is kept from the last request and reused
 *    while the caller's header names and the mode are byte-equal: callers sign request
 *    after request with the same names, so only the values are new;
 *  - values are folded 8 bytes at a time; hex is 16 bytes at a time (SSE2); each output
 *    block is reserved once and written without per-piece checks;
 *  - the Authorization value is written straight into the caller's buffer.
 * Scratch buffers keep their high-water size, so a warm signer allocates nothing itself
 * (OpenSSL 3.0's EVP layer allocates per HMAC init internally, as in the floor).
 * Over 600 lines on purpose: it is one concern (SigV4 canonicalisation and signing) in the
 * six sections above, its helpers are private to it, and the conformance suite
 * (tests/unit/test_sigv4.c) covers it as one unit. Presign mode stays here: `rotator sign`
 * and the conformance cases use it, and it shares every canonicalisation step. */
#include "aws/sigv4.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define ALGORITHM "AWS4-HMAC-SHA256"
#define SHA256_LEN 32
#define KEY_SLOTS 4
#define MAX_AKID_LEN 128
#define MAX_METHOD_LEN 32
#define DATE_LEN 8
/* date/region/service/aws4_request */
#define SCOPE_MAX (DATE_LEN + 1 + SIGV4_MAX_SCOPE_PART + 1 + SIGV4_MAX_SCOPE_PART + 1 + 12)
#define MAX_SIGNED_HEADERS (SIGV4_MAX_HEADERS + 3)

static const char HEX_UPPER[] = "0123456789ABCDEF";
static const char HEX_LOWER[] = "0123456789abcdef";

static _Thread_local const char *last_detail = "";

static int fail(int status, const char *why) {
  last_detail = why;
  return status;
}

/* ---- 1. scratch strings: growable, with a sticky failure so builders stay linear ---- */

typedef struct {
  char *p;
  size_t len, cap;
  int fail; /* 0 or a SIGV4_ERR_* */
} sbuf;

static int sb_fail(sbuf *b, int status) {
  b->fail = status;
  return 0;
}

/* Grows with OPENSSL_clear_realloc because these buffers hold session tokens. */
static int sb_grow(sbuf *b, size_t n) {
  size_t want = b->len + n + 1, cap = b->cap ? b->cap : 512;
  if (want <= n) return sb_fail(b, SIGV4_ERR_LIMIT);
  while (cap < want) {
    if (cap > SIZE_MAX / 2) return sb_fail(b, SIGV4_ERR_LIMIT);
    cap *= 2;
  }
  char *p = OPENSSL_clear_realloc(b->p, b->cap, cap);
  if (!p) return sb_fail(b, SIGV4_ERR_NOMEM);
  b->p = p;
  b->cap = cap;
  return 1;
}

/* Makes room for n more bytes plus a NUL. */
static int sb_need(sbuf *b, size_t n) {
  if (b->fail) return 0;
  if (b->cap > b->len && n < b->cap - b->len) return 1;
  return sb_grow(b, n);
}

static void sb_reset(sbuf *b) {
  b->len = 0;
  b->fail = 0;
}

static void sb_put(sbuf *b, const char *s, size_t n) {
  if (!sb_need(b, n)) return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_putc(sbuf *b, char c) { sb_put(b, &c, 1); }

/* NUL-terminates and reports the sticky status. */
static int sb_finish(sbuf *b) {
  if (!sb_need(b, 0)) return fail(b->fail, "out of memory building a signing string");
  b->p[b->len] = '\0';
  return SIGV4_OK;
}

static char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }

/* Character classes as 256-bit maps (bit c set = member): branch-free lookups.
 * UNRESERVED: RFC 3986 "A-Za-z0-9-._~", the only bytes SigV4 leaves unencoded.
 * TOKEN: RFC 7230 token characters (header names, methods): UNRESERVED + "!#$%&'*+^`|". */
static const uint32_t UNRESERVED[8] = {0, 0x03FF6000u, 0x87FFFFFEu, 0x47FFFFFEu, 0, 0, 0, 0};
static const uint32_t TOKEN[8] = {0, 0x03FF6CFAu, 0xC7FFFFFEu, 0x57FFFFFFu, 0, 0, 0, 0};

static int in_class(const uint32_t *map, unsigned char c) { return (map[c >> 5] >> (c & 31)) & 1; }

static int unreserved(unsigned char c) { return in_class(UNRESERVED, c); }

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

enum { ENC_KEEP_SLASH = 1, ENC_DECODE = 2 };

/* Decodes a valid %XX at s[*i] when asked to; a stray '%' stays literal (then "%25"). */
static unsigned char next_byte(const char *s, size_t n, size_t *i, unsigned how, int *lit) {
  *lit = 1;
  if ((how & ENC_DECODE) && s[*i] == '%' && *i + 2 < n && hexval(s[*i + 1]) >= 0 &&
      hexval(s[*i + 2]) >= 0) {
    *lit = 0;
    *i += 2;
    return (unsigned char)(hexval(s[*i - 1]) * 16 + hexval(s[*i]));
  }
  return (unsigned char)s[*i];
}

/* URI-encodes s; ENC_KEEP_SLASH keeps literal '/', ENC_DECODE decodes %XX first so an
 * already-encoded wire string is encoded exactly once. */
static void sb_put_enc(sbuf *b, const char *s, size_t n, unsigned how) {
  if (n > SIZE_MAX / 3 || !sb_need(b, 3 * n)) {
    if (!b->fail) sb_fail(b, SIGV4_ERR_LIMIT);
    return;
  }
  char *o = b->p + b->len;
  for (size_t i = 0; i < n; i++) {
    int lit;
    unsigned char c = next_byte(s, n, &i, how, &lit);
    if (unreserved(c) || (c == '/' && lit && (how & ENC_KEEP_SLASH))) {
      *o++ = (char)c;
      continue;
    }
    *o++ = '%';
    *o++ = HEX_UPPER[c >> 4];
    *o++ = HEX_UPPER[c & 15];
  }
  b->len = (size_t)(o - b->p);
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Whether any of the 8 bytes in x is <= 0x20 (space or control): the classic "has a byte
 * less than n" bit trick; exact as a yes/no answer, and bytes >= 0x80 never match. */
static int has_space_or_ctl(uint64_t x) {
  return ((x - 0x2121212121212121ull) & ~x & 0x8080808080808080ull) != 0;
}

/* Writes v to o the SigV4 way: trimmed, each whitespace run (folded lines included) one
 * ' '. Returns the bytes written (<= n). The usual value has no space or control byte
 * at all: it is copied 16 (SSE2) or 8 bytes at a time up to the first such byte, its
 * last bytes checked and copied as one overlapping 8-byte word (the output so far is
 * the input, byte for byte), and the general loop (which still copies runs of 8 plain
 * bytes at once) takes over where a space or control byte is. */
static size_t fold_value(char *o, const char *v, size_t n) {
  size_t i = 0;
  uint64_t x;
#if defined(__SSE2__)
  const __m128i space = _mm_set1_epi8(0x20);
  for (; n - i >= 16; i += 16) {
    __m128i y = _mm_loadu_si128((const __m128i *)(const void *)(v + i));
    if (_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(y, space), y))) break;
    _mm_storeu_si128((__m128i *)(void *)(o + i), y);
  }
#endif
  for (; n - i >= 8; i += 8) {
    memcpy(&x, v + i, 8);
    if (has_space_or_ctl(x)) break;
    memcpy(o + i, v + i, 8);
  }
  if (n - i < 8) {
    if (n >= 8 && (memcpy(&x, v + n - 8, 8), !has_space_or_ctl(x))) {
      memcpy(o + n - 8, &x, 8);
      return n;
    }
    for (; i < n && (unsigned char)v[i] > 0x20; i++) o[i] = v[i];
    if (i == n) return n;
  }
  size_t w = i; /* v[0..i) was plain and is written: no gap is open */
  int gap = 0;
  while (i < n) {
    if (!gap && n - i >= 8 && (memcpy(&x, v + i, 8), !has_space_or_ctl(x))) {
      memcpy(o + w, v + i, 8);
      w += 8, i += 8;
      continue;
    }
    char c = v[i++];
    if (is_space(c)) {
      gap = w > 0;
      continue;
    }
    if (gap) o[w++] = ' ';
    gap = 0;
    o[w++] = c;
  }
  return w;
}

/* ---- 2. per-thread state ---- */

typedef struct {
  /* The secret this slot's kSigning was derived from, compared in constant time. The
   * process holds the secret anyway (the credential provider); the slot's copy lives in
   * the thread state, which is cleansed when freed, and is overwritten on reuse. */
  char secret[SIGV4_MAX_SECRET_LEN];
  size_t secret_len;
  char akid[MAX_AKID_LEN];
  char date[DATE_LEN];
  char region[SIGV4_MAX_SCOPE_PART];
  char service[SIGV4_MAX_SCOPE_PART];
  size_t akid_len, region_len, service_len;
  /* Derived once per slot: a hit (byte-equal, so already validated inputs) skips the
   * character checks and the string building as well as the key derivation. */
  char scope[SCOPE_MAX + 1];                         /* date/region/service/aws4_request */
  char credential[MAX_AKID_LEN + 1 + SCOPE_MAX + 1]; /* AKID/scope */
  size_t scope_len, credential_len;
  EVP_MAC_CTX *mac; /* HMAC keyed with kSigning, re-initialised without a key per use */
  int valid;
} key_slot;

typedef struct {
  size_t koff, klen, voff, vlen; /* offsets into qtext while it may still move */
  const char *k, *v;             /* resolved once qtext is complete */
} qparam;

/* Where a signed header's value comes from: a caller header's index, or the signer. */
enum { OWN_DATE = -1, OWN_TOKEN = -2, OWN_CONTENT_SHA256 = -3 };

typedef struct {
  const char *lname; /* lower-case name, in layout.lnames */
  size_t nlen, loff; /* loff: its offset while lnames may still move */
  int src;           /* caller header index or OWN_* */
  int first;         /* first of its name: starts a line of the canonical headers */
} layout_entry;

/* The signed headers in canonical order, as made for one list of caller header names
 * and one mode (what the signer adds and drops). Callers sign request after request
 * with the same names, so the last layout is kept: when the names are byte-equal (so
 * validated already), only the values are new, and lower-casing, dropping, sorting and
 * the SignedHeaders list are skipped. */
typedef struct {
  int valid;
  unsigned mode;
  size_t n_given;                      /* caller headers it was made for */
  size_t given_off[SIGV4_MAX_HEADERS]; /* their names as given, NUL-terminated in given */
  sbuf given, lnames, signed_headers;  /* signed_headers: "host;x-amz-date" */
  layout_entry e[MAX_SIGNED_HEADERS];  /* in canonical order */
  size_t n, names_len;                 /* entries; the sum of their name lengths */
} hdr_layout;

typedef struct {
  EVP_MD *sha256;
  EVP_MD_CTX *md;
  EVP_MAC *hmac;
  EVP_MAC_CTX *derive; /* re-keyed for each step of the key derivation */
  key_slot slots[KEY_SLOTS];
  unsigned next_slot;
  char hex_pairs[512];    /* "000102..ff": one 2-byte copy per hex-encoded byte */
  char name_map[256];     /* lower-case of each HTTP token character, 0 for others */
  time_t date_time; /* last time formatted into date_str: gmtime_r() is not free */
  char date_str[SIGV4_AMZ_DATE_LEN + 1];
  sbuf creq, sts, out, qtext;
  hdr_layout layout;
  qparam *qp;
  size_t qp_cap;
} sigv4_state;

static _Thread_local sigv4_state *tls_state;

static EVP_MAC_CTX *new_hmac_ctx(EVP_MAC *hmac) {
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  EVP_MAC_CTX *c = EVP_MAC_CTX_new(hmac);
  if (c && !EVP_MAC_CTX_set_params(c, params)) {
    EVP_MAC_CTX_free(c);
    c = NULL;
  }
  return c;
}

static void sb_free(sbuf *b) {
  OPENSSL_clear_free(b->p, b->cap);
  memset(b, 0, sizeof *b);
}

static void free_state(sigv4_state *st) {
  for (int i = 0; i < KEY_SLOTS; i++) EVP_MAC_CTX_free(st->slots[i].mac);
  EVP_MAC_CTX_free(st->derive);
  EVP_MAC_free(st->hmac);
  EVP_MD_CTX_free(st->md);
  EVP_MD_free(st->sha256);
  sb_free(&st->creq);
  sb_free(&st->sts);
  sb_free(&st->out);
  sb_free(&st->qtext);
  sb_free(&st->layout.given);
  sb_free(&st->layout.lnames);
  sb_free(&st->layout.signed_headers);
  free(st->qp);
  OPENSSL_cleanse(st, sizeof *st);
  free(st);
}

static void init_tables(sigv4_state *st) {
  for (int c = 0; c < 256; c++) {
    st->hex_pairs[2 * c] = HEX_LOWER[c >> 4];
    st->hex_pairs[2 * c + 1] = HEX_LOWER[c & 15];
    st->name_map[c] = in_class(TOKEN, (unsigned char)c) ? ascii_lower((char)c) : 0;
  }
}

/* Fetching explicitly once avoids OpenSSL 3's implicit fetch on every EVP_sha256() init. */
static sigv4_state *state_get(void) {
  if (tls_state) return tls_state;
  sigv4_state *st = calloc(1, sizeof *st);
  if (!st) return NULL;
  st->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
  st->md = EVP_MD_CTX_new();
  st->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  st->derive = st->hmac ? new_hmac_ctx(st->hmac) : NULL;
  if (!st->sha256 || !st->md || !st->derive) {
    free_state(st);
    return NULL;
  }
  init_tables(st);
  return tls_state = st;
}

void sigv4_thread_cleanup(void) {
  if (tls_state) free_state(tls_state);
  tls_state = NULL;
}

/* ---- 3. hashing and the signing-key cache ---- */

static int sha256(sigv4_state *st, const void *d, size_t n, unsigned char out[SHA256_LEN]) {
  unsigned int len = 0;
  return EVP_DigestInit_ex2(st->md, st->sha256, NULL) &&
         EVP_DigestUpdate(st->md, n ? d : "", n) &&
         EVP_DigestFinal_ex(st->md, out, &len) && len == SHA256_LEN;
}

/* A NULL key re-initialises the context with the key it already holds. */
static int hmac(EVP_MAC_CTX *c, const void *key, size_t klen, const void *d, size_t n,
                unsigned char out[SHA256_LEN]) {
  size_t len = 0;
  return EVP_MAC_init(c, key, klen, NULL) && EVP_MAC_update(c, d, n) &&
         EVP_MAC_final(c, out, &len, SHA256_LEN) && len == SHA256_LEN;
}

/* What the cache is keyed by; lengths were bounded by the validate_* functions. */
typedef struct {
  const char *akid, *secret, *date, *region, *service;
  size_t akid_len, secret_len, region_len, service_len;
} key_scope;

/* kSecret -> kDate -> kRegion -> kService -> kSigning, loaded into slot->mac. */
static int derive_key(sigv4_state *st, key_slot *slot, const key_scope *ks) {
  unsigned char k[4 + SIGV4_MAX_SECRET_LEN], a[SHA256_LEN], b[SHA256_LEN];
  memcpy(k, "AWS4", 4);
  memcpy(k + 4, ks->secret, ks->secret_len);
  int ok = hmac(st->derive, k, 4 + ks->secret_len, ks->date, DATE_LEN, a) &&
           hmac(st->derive, a, SHA256_LEN, ks->region, ks->region_len, b) &&
           hmac(st->derive, b, SHA256_LEN, ks->service, ks->service_len, a) &&
           hmac(st->derive, a, SHA256_LEN, "aws4_request", 12, b) &&
           EVP_MAC_init(slot->mac, b, SHA256_LEN, NULL);
  OPENSSL_cleanse(k, sizeof k);
  OPENSSL_cleanse(a, sizeof a);
  OPENSSL_cleanse(b, sizeof b);
  return ok;
}

/* Whether a and b (n bytes) are equal, in a time that depends on n only: 8 bytes per step
 * (OPENSSL's CRYPTO_memcmp goes byte by byte). The empty asm keeps the compiler from
 * turning the accumulation into an early exit. */
static int same_secret(const char *a, const char *b, size_t n) {
  uint64_t acc = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x, y;
    memcpy(&x, a + i, 8);
    memcpy(&y, b + i, 8);
    acc |= x ^ y;
#if defined(__GNUC__)
    __asm__("" : "+r"(acc));
#endif
  }
  for (; i < n; i++) acc |= (uint64_t)(unsigned char)(a[i] ^ b[i]);
  return acc == 0;
}

/* The public parts first; the secret, compared in constant time, last. */
static int slot_matches(const key_slot *s, const key_scope *ks) {
  return s->valid && memcmp(s->date, ks->date, DATE_LEN) == 0 &&
         s->akid_len == ks->akid_len && s->region_len == ks->region_len &&
         s->service_len == ks->service_len && s->secret_len == ks->secret_len &&
         memcmp(s->akid, ks->akid, ks->akid_len) == 0 &&
         memcmp(s->region, ks->region, ks->region_len) == 0 &&
         memcmp(s->service, ks->service, ks->service_len) == 0 &&
         same_secret(s->secret, ks->secret, ks->secret_len);
}

/* scope and AKID/scope; they fit: the buffers are sized for the bounded parts. */
static void build_scope_strings(key_slot *s) {
  char *o = s->scope;
  memcpy(o, s->date, DATE_LEN), o += DATE_LEN, *o++ = '/';
  memcpy(o, s->region, s->region_len), o += s->region_len, *o++ = '/';
  memcpy(o, s->service, s->service_len), o += s->service_len, *o++ = '/';
  memcpy(o, "aws4_request", 13);
  s->scope_len = (size_t)(o + 12 - s->scope);
  memcpy(s->credential, s->akid, s->akid_len);
  s->credential[s->akid_len] = '/';
  memcpy(s->credential + s->akid_len + 1, s->scope, s->scope_len + 1);
  s->credential_len = s->akid_len + 1 + s->scope_len;
}

/* Fills the round-robin victim slot. */
static key_slot *fill_slot(sigv4_state *st, const key_scope *ks) {
  key_slot *s = &st->slots[st->next_slot];
  st->next_slot = (st->next_slot + 1) % KEY_SLOTS;
  s->valid = 0;
  if (!s->mac && !(s->mac = new_hmac_ctx(st->hmac))) return NULL;
  OPENSSL_cleanse(s->secret, sizeof s->secret);
  memcpy(s->secret, ks->secret, s->secret_len = ks->secret_len);
  memcpy(s->akid, ks->akid, s->akid_len = ks->akid_len);
  memcpy(s->date, ks->date, DATE_LEN);
  memcpy(s->region, ks->region, s->region_len = ks->region_len);
  memcpy(s->service, ks->service, s->service_len = ks->service_len);
  build_scope_strings(s);
  if (!derive_key(st, s, ks)) return NULL;
  s->valid = 1;
  return s;
}

static key_slot *find_slot(sigv4_state *st, const key_scope *ks) {
  for (int i = 0; i < KEY_SLOTS; i++)
    if (slot_matches(&st->slots[i], ks)) return &st->slots[i];
  return NULL;
}

/* ---- 4. one signing job and its input checks ---- */

typedef struct {
  const char *value; /* of layout entry i, not yet folded */
  size_t vlen;
} hdr;

typedef struct {
  const sigv4_request *rq;
  const sigv4_credentials *cr;
  const sigv4_params *p;
  sigv4_state *st;
  int presign, has_token, sign_token;
  size_t method_len, akid_len, secret_len, region_len, service_len, payload_len;
  const key_slot *slot; /* signing key, scope and credential strings for this job */
  const hdr_layout *layout; /* names and order of the signed headers */
  const char *sh;           /* signed headers list, in the layout */
  size_t sh_len;
  char amz_date[SIGV4_AMZ_DATE_LEN + 1];
  char payload_hash[SIGV4_HEX_LEN + 1];
  hdr h[MAX_SIGNED_HEADERS]; /* values, in the layout's order */
  size_t values_len;         /* the sum of their lengths */
} job;

/* Length of s if it is 1..max unreserved characters, else 0. */
static size_t plain_word(const char *s, size_t max) {
  size_t n = 0;
  if (!s) return 0;
  for (; s[n]; n++)
    if (n == max || !unreserved((unsigned char)s[n])) return 0;
  return n;
}

/* Length of s if it is 1..max bytes, else 0; the characters are checked by
 * check_scope_words() only when the key cache has not seen these strings yet. */
static size_t bounded_len(const char *s, size_t max) {
  size_t n = s ? strnlen(s, max + 1) : 0;
  return n <= max ? n : 0;
}

static int token_word(const char *s, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++)
    if (!in_class(TOKEN, (unsigned char)s[i])) return 0;
  return 1;
}

static int validate_credentials(job *j, const sigv4_credentials *cr) {
  if (!(j->akid_len = bounded_len(cr->access_key_id, MAX_AKID_LEN)))
    return fail(SIGV4_ERR_INVALID, "access key id is missing or too long");
  size_t n = cr->secret_access_key ? strlen(cr->secret_access_key) : 0;
  if (n == 0) return fail(SIGV4_ERR_INVALID, "secret access key is missing");
  if (n > SIGV4_MAX_SECRET_LEN) return fail(SIGV4_ERR_LIMIT, "secret access key is too long");
  j->secret_len = n;
  return SIGV4_OK;
}

static int validate_params(job *j, const sigv4_params *p) {
  if (!(j->region_len = bounded_len(p->region, SIGV4_MAX_SCOPE_PART)))
    return fail(SIGV4_ERR_INVALID, "region is missing or too long");
  if (!(j->service_len = bounded_len(p->service, SIGV4_MAX_SCOPE_PART)))
    return fail(SIGV4_ERR_INVALID, "service is missing or too long");
  if ((p->flags & SIGV4_PRESIGN) && (p->expires == 0 || p->expires > SIGV4_MAX_EXPIRES))
    return fail(SIGV4_ERR_INVALID, "presign expires must be 1..604800 seconds");
  return SIGV4_OK;
}

static int validate_request(job *j, const sigv4_request *rq) {
  size_t mlen = j->method_len = rq->method ? strlen(rq->method) : 0;
  if (mlen > MAX_METHOD_LEN || !token_word(rq->method, mlen))
    return fail(SIGV4_ERR_INVALID, "method is missing or not an HTTP token");
  if (!rq->path || (rq->path[0] && rq->path[0] != '/'))
    return fail(SIGV4_ERR_INVALID, "path must start with '/'");
  if (rq->n_headers > SIGV4_MAX_HEADERS) return fail(SIGV4_ERR_LIMIT, "too many headers");
  if (rq->n_headers && !rq->headers) return fail(SIGV4_ERR_INVALID, "headers is NULL");
  if (rq->body_len && !rq->body && !rq->payload_hash)
    return fail(SIGV4_ERR_INVALID, "body is NULL but body_len is not 0");
  return SIGV4_OK;
}

static int valid_amz_date(const char *d) {
  if (strlen(d) != SIGV4_AMZ_DATE_LEN || d[8] != 'T' || d[15] != 'Z') return 0;
  for (int i = 0; i < 15; i++)
    if (i != 8 && (d[i] < '0' || d[i] > '9')) return 0;
  return 1;
}

static void put_digits(char *o, int v, int width) {
  for (int i = width - 1; i >= 0; i--, v /= 10) o[i] = (char)('0' + v % 10);
}

int sigv4_format_amz_date(time_t t, char out[SIGV4_AMZ_DATE_LEN + 1]) {
  struct tm tm;
  if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 1000 || tm.tm_year + 1900 > 9999)
    return fail(SIGV4_ERR_INVALID, "signing time is out of range");
  put_digits(out, tm.tm_year + 1900, 4);
  put_digits(out + 4, tm.tm_mon + 1, 2);
  put_digits(out + 6, tm.tm_mday, 2);
  out[8] = 'T';
  put_digits(out + 9, tm.tm_hour, 2);
  put_digits(out + 11, tm.tm_min, 2);
  put_digits(out + 13, tm.tm_sec, 2);
  out[15] = 'Z';
  out[16] = '\0';
  return SIGV4_OK;
}

/* A daemon signs many requests per second: reformat only when the second changes. */
static int set_amz_date(job *j) {
  sigv4_state *st = j->st;
  const char *fixed = j->p->amz_date;
  if (fixed && !valid_amz_date(fixed))
    return fail(SIGV4_ERR_INVALID, "amz_date must look like 20150830T123600Z");
  if (!fixed && (!st->date_str[0] || st->date_time != j->p->time)) {
    int rc = sigv4_format_amz_date(j->p->time, st->date_str);
    if (rc) return rc;
    st->date_time = j->p->time;
  }
  memcpy(j->amz_date, fixed ? fixed : st->date_str, SIGV4_AMZ_DATE_LEN + 1);
  return SIGV4_OK;
}

/* They end up unencoded in the scope, Credential= and the query: '/' or ',' would break
 * them. */
static int check_scope_words(const key_scope *ks) {
  if (plain_word(ks->akid, MAX_AKID_LEN) != ks->akid_len)
    return fail(SIGV4_ERR_INVALID, "access key id has invalid characters");
  if (plain_word(ks->region, SIGV4_MAX_SCOPE_PART) != ks->region_len)
    return fail(SIGV4_ERR_INVALID, "region has invalid characters");
  if (plain_word(ks->service, SIGV4_MAX_SCOPE_PART) != ks->service_len)
    return fail(SIGV4_ERR_INVALID, "service has invalid characters");
  return SIGV4_OK;
}

/* Finds or derives the signing key (and scope strings) for this job's credentials. */
static int bind_key(job *j) {
  key_scope ks = {j->cr->access_key_id, j->cr->secret_access_key, j->amz_date,
                  j->p->region, j->p->service, j->akid_len, j->secret_len,
                  j->region_len, j->service_len};
  if ((j->slot = find_slot(j->st, &ks))) return SIGV4_OK;
  int rc = check_scope_words(&ks);
  if (rc) return rc;
  if (!(j->slot = fill_slot(j->st, &ks)))
    return fail(SIGV4_ERR_CRYPTO, "deriving the signing key failed");
  return SIGV4_OK;
}

/* 64 hex characters of a SHA-256, without a NUL. With SSE2 (every x86-64) 16 bytes at a
 * time: split into nibbles, interleave high/low, add '0' and, above 9, 'a' - '0' - 10;
 * elsewhere one 2-byte table copy per byte. */
#if defined(__SSE2__)
static __m128i hex_nibbles(__m128i n) {
  __m128i over9 = _mm_cmpgt_epi8(n, _mm_set1_epi8(9));
  return _mm_add_epi8(_mm_add_epi8(n, _mm_set1_epi8('0')),
                      _mm_and_si128(over9, _mm_set1_epi8('a' - '0' - 10)));
}

static void hex_sha256(const sigv4_state *st, char *o, const unsigned char *d) {
  (void)st;
  const __m128i low4 = _mm_set1_epi8(0x0f);
  for (size_t i = 0; i < SHA256_LEN; i += 16) {
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(d + i));
    __m128i hi = _mm_and_si128(_mm_srli_epi16(x, 4), low4), lo = _mm_and_si128(x, low4);
    _mm_storeu_si128((__m128i *)(void *)(o + 2 * i), hex_nibbles(_mm_unpacklo_epi8(hi, lo)));
    _mm_storeu_si128((__m128i *)(void *)(o + 2 * i + 16), hex_nibbles(_mm_unpackhi_epi8(hi, lo)));
  }
}
#else
static void hex_sha256(const sigv4_state *st, char *o, const unsigned char *d) {
  for (size_t i = 0; i < SHA256_LEN; i++) memcpy(o + 2 * i, st->hex_pairs + 2 * d[i], 2);
}
#endif

static int set_payload_hash(job *j) {
  const sigv4_request *rq = j->rq;
  unsigned char d[SHA256_LEN];
  if (rq->payload_hash) {
    size_t n = plain_word(rq->payload_hash, SIGV4_HEX_LEN);
    if (n == 0)
      return fail(SIGV4_ERR_INVALID, "payload_hash must be hex SHA-256 or UNSIGNED-PAYLOAD");
    memcpy(j->payload_hash, rq->payload_hash, n + 1);
    j->payload_len = n;
    return SIGV4_OK;
  }
  if (!sha256(j->st, rq->body, rq->body_len, d))
    return fail(SIGV4_ERR_CRYPTO, "SHA-256 of the body failed");
  hex_sha256(j->st, j->payload_hash, d);
  j->payload_hash[SIGV4_HEX_LEN] = '\0';
  j->payload_len = SIGV4_HEX_LEN;
  return SIGV4_OK;
}

/* ---- 5. canonical headers, URI and query ---- */

static int lname_is(const char *l, size_t n, const char *lit, size_t lit_len) {
  return n == lit_len && memcmp(l, lit, n) == 0;
}
#define LNAME_IS(l, n, lit) lname_is((l), (n), lit, sizeof lit - 1)

/* Headers the signer writes itself are not taken from the caller, to avoid duplicates. */
static int signer_owns(const job *j, const char *l, size_t n) {
  if (LNAME_IS(l, n, "authorization")) return 1;
  if (j->presign) return 0;
  return LNAME_IS(l, n, "x-amz-date") ||
         (j->has_token && LNAME_IS(l, n, "x-amz-security-token")) ||
         ((j->p->flags & SIGV4_ADD_CONTENT_SHA256) && LNAME_IS(l, n, "x-amz-content-sha256"));
}

/* Writes name lower-cased at the end of b (without taking the bytes) and returns its
 * length if it is a valid HTTP token, else 0; one table lookup per byte does both. On a
 * failed reservation it returns 1 with b's sticky failure set. */
static size_t lower_name(const sigv4_state *st, sbuf *b, const char *name) {
  size_t n = strlen(name);
  if (!sb_need(b, n)) return 1;
  char *o = b->p + b->len;
  unsigned char valid = 1;
  for (size_t i = 0; i < n; i++) valid &= (o[i] = st->name_map[(unsigned char)name[i]]) != 0;
  return valid ? n : 0;
}

static unsigned layout_mode(const job *j) {
  return (unsigned)j->presign | (unsigned)j->has_token << 1 | (unsigned)j->sign_token << 2 |
         !!(j->p->flags & SIGV4_ADD_CONTENT_SHA256) << 3;
}

static void add_entry(hdr_layout *l, int src, size_t loff, size_t nlen) {
  layout_entry *e = &l->e[l->n++];
  e->src = src, e->loff = loff, e->nlen = nlen;
}

/* Room past the end of the layout's strings and of a reservation for copy_short(). */
#define COPY_SLACK 16

/* A header the signer adds: its lower-case name goes to lnames like the others. */
#define ADD_OWN(l, lit, src) \
  (add_entry((l), (src), (l)->lnames.len, sizeof lit - 1), sb_put(&(l)->lnames, lit, sizeof lit - 1))

/* A caller's header: validated, lower-cased into lnames, dropped if the signer writes it
 * itself. Its name as given is kept for matching later requests. */
static int add_given(job *j, hdr_layout *l, size_t i) {
  const sigv4_header *h = &j->rq->headers[i];
  if (!h->name || !h->value) return fail(SIGV4_ERR_INVALID, "a header name or value is NULL");
  l->given_off[i] = l->given.len;
  sb_put(&l->given, h->name, strlen(h->name) + 1);
  size_t loff = l->lnames.len, nlen = lower_name(j->st, &l->lnames, h->name);
  if (nlen == 0) return fail(SIGV4_ERR_INVALID, "a header name is not an HTTP token");
  if (l->lnames.fail || signer_owns(j, l->lnames.p + loff, nlen)) return SIGV4_OK;
  l->lnames.len += nlen;
  add_entry(l, (int)i, loff, nlen);
  return SIGV4_OK;
}

static int entry_cmp(const layout_entry *a, const layout_entry *b) {
  int c = memcmp(a->lname, b->lname, a->nlen < b->nlen ? a->nlen : b->nlen);
  return c ? c : (a->nlen > b->nlen) - (a->nlen < b->nlen);
}

/* Insertion sort: stable, so duplicate names keep the caller's order; n is small. */
static void sort_entries(hdr_layout *l) {
  for (size_t i = 1; i < l->n; i++) {
    layout_entry t = l->e[i];
    size_t k = i;
    for (; k > 0 && entry_cmp(&l->e[k - 1], &t) > 0; k--) l->e[k] = l->e[k - 1];
    l->e[k] = t;
  }
}

/* Resolves the names (lnames is complete), sorts, marks the first of each name and
 * writes "host;x-amz-date"; 1 if Host is there. */
static int order_entries(hdr_layout *l) {
  int host = 0;
  l->names_len = 0;
  for (size_t i = 0; i < l->n; i++) {
    layout_entry *e = &l->e[i];
    e->lname = l->lnames.p + e->loff;
    l->names_len += e->nlen;
    host |= LNAME_IS(e->lname, e->nlen, "host");
  }
  sort_entries(l);
  sbuf *b = &l->signed_headers;
  for (size_t i = 0; i < l->n; i++) {
    layout_entry *e = &l->e[i];
    e->first = i == 0 || entry_cmp(&l->e[i - 1], e) != 0;
    if (!e->first) continue;
    if (b->len) sb_putc(b, ';');
    sb_put(b, e->lname, e->nlen);
  }
  return host;
}

static int make_layout(job *j, hdr_layout *l, unsigned mode) {
  l->valid = 0;
  l->n = 0;
  sb_reset(&l->given);
  sb_reset(&l->lnames);
  sb_reset(&l->signed_headers);
  for (size_t i = 0; i < j->rq->n_headers; i++) {
    int rc = add_given(j, l, i);
    if (rc) return rc;
  }
  if (!j->presign) ADD_OWN(l, "x-amz-date", OWN_DATE);
  if (!j->presign && j->sign_token) ADD_OWN(l, "x-amz-security-token", OWN_TOKEN);
  if (!j->presign && (j->p->flags & SIGV4_ADD_CONTENT_SHA256))
    ADD_OWN(l, "x-amz-content-sha256", OWN_CONTENT_SHA256);
  sb_need(&l->lnames, COPY_SLACK);
  int rc = sb_finish(&l->given);
  if (!rc) rc = sb_finish(&l->lnames);
  if (rc) return rc;
  if (!order_entries(l)) return fail(SIGV4_ERR_INVALID, "the request has no Host header");
  sb_need(&l->signed_headers, COPY_SLACK);
  if ((rc = sb_finish(&l->signed_headers))) return rc;
  l->mode = mode;
  l->n_given = j->rq->n_headers;
  l->valid = 1;
  return SIGV4_OK;
}

/* Whether the kept layout was made for this request's header names and mode. */
static int layout_fits(const job *j, const hdr_layout *l, unsigned mode) {
  if (!l->valid || l->mode != mode || l->n_given != j->rq->n_headers) return 0;
  for (size_t i = 0; i < l->n_given; i++) {
    const char *name = j->rq->headers[i].name;
    if (!name || strcmp(name, l->given.p + l->given_off[i]) != 0) return 0;
  }
  return 1;
}

/* This request's values in the layout's order. */
static int collect_headers(job *j) {
  hdr_layout *l = &j->st->layout;
  unsigned mode = layout_mode(j);
  if (!layout_fits(j, l, mode)) {
    int rc = make_layout(j, l, mode);
    if (rc) return rc;
  }
  j->layout = l;
  j->sh = l->signed_headers.p, j->sh_len = l->signed_headers.len;
  size_t total = 0;
  for (size_t i = 0; i < l->n; i++) {
    hdr *h = &j->h[i];
    switch (l->e[i].src) {
    case OWN_DATE: h->value = j->amz_date, h->vlen = SIGV4_AMZ_DATE_LEN; break;
    case OWN_TOKEN:
      h->value = j->cr->session_token, h->vlen = strlen(j->cr->session_token);
      break;
    case OWN_CONTENT_SHA256: h->value = j->payload_hash, h->vlen = j->payload_len; break;
    default:
      if (!(h->value = j->rq->headers[l->e[i].src].value))
        return fail(SIGV4_ERR_INVALID, "a header name or value is NULL");
      h->vlen = strlen(h->value);
    }
    total += h->vlen;
  }
  j->values_len = total;
  return SIGV4_OK;
}

/* Copies n bytes of a layout string in 16-byte blocks, inline rather than a libc call
 * per short name: the layout's strings and the reservation below carry COPY_SLACK bytes
 * of readable and writable room past their ends. */
static char *copy_short(char *o, const char *s, size_t n) {
  for (size_t k = 0; k < n; k += 16) memcpy(o + k, s + k, 16);
  return o + n;
}

/* Canonical headers, blank line, signed headers, payload hash: the canonical request's
 * tail, written with one reservation. */
static void put_canonical_tail(job *j, sbuf *b) {
  const hdr_layout *l = j->layout;
  if (!sb_need(b, l->names_len + j->values_len + 2 * l->n + 2 + j->sh_len + j->payload_len +
                      COPY_SLACK))
    return;
  char *o = b->p + b->len;
  for (size_t i = 0; i < l->n; i++) {
    const layout_entry *e = &l->e[i];
    if (!e->first) {
      *o++ = ',';
    } else {
      if (i) *o++ = '\n';
      o = copy_short(o, e->lname, e->nlen);
      *o++ = ':';
    }
    o += fold_value(o, j->h[i].value, j->h[i].vlen);
  }
  memcpy(o, "\n\n", 2);
  o = copy_short(o + 2, j->sh, j->sh_len);
  *o++ = '\n';
  memcpy(o, j->payload_hash, j->payload_len);
  b->len = (size_t)(o + j->payload_len - b->p);
}

/* Drops the last "/segment" written since start (a ".." segment). */
static void pop_segment(sbuf *b, size_t start) {
  while (b->len > start && b->p[b->len - 1] != '/') b->len--;
  if (b->len > start) b->len--;
}

/* Normalised path: no empty, "." or ".." segments; each segment encoded as on the wire. */
static void put_normalized_path(sbuf *b, const char *path) {
  size_t start = b->len, n = strlen(path);
  for (size_t i = 0, e; i < n; i = e + 1) {
    for (e = i; e < n && path[e] != '/'; e++) {}
    size_t sl = e - i;
    if (sl == 0 || (sl == 1 && path[i] == '.')) continue;
    if (sl == 2 && path[i] == '.' && path[i + 1] == '.') {
      pop_segment(b, start);
      continue;
    }
    sb_putc(b, '/');
    sb_put_enc(b, path + i, sl, 0);
  }
  if (b->len == start || (n && path[n - 1] == '/')) sb_putc(b, '/');
}

static void put_canonical_uri(const job *j, sbuf *b) {
  const char *path = j->rq->path;
  if (j->p->flags & SIGV4_NORMALIZE_PATH)
    put_normalized_path(b, path);
  else if (!*path)
    sb_putc(b, '/');
  else
    sb_put_enc(b, path, strlen(path), ENC_KEEP_SLASH | ENC_DECODE);
}

static int add_param(sigv4_state *st, size_t *n, const char *k, size_t kl, const char *v,
                     size_t vl, unsigned how) {
  if (*n == st->qp_cap) {
    size_t cap = st->qp_cap ? 2 * st->qp_cap : 16;
    qparam *qp = cap < SIZE_MAX / sizeof *qp ? realloc(st->qp, cap * sizeof *qp) : NULL;
    if (!qp) return fail(SIGV4_ERR_NOMEM, "out of memory sorting the query");
    st->qp = qp;
    st->qp_cap = cap;
  }
  qparam *q = &st->qp[(*n)++];
  q->koff = st->qtext.len;
  sb_put_enc(&st->qtext, k, kl, how);
  q->klen = st->qtext.len - q->koff;
  q->voff = st->qtext.len;
  sb_put_enc(&st->qtext, v, vl, how);
  q->vlen = st->qtext.len - q->voff;
  return SIGV4_OK;
}

/* Adds the wire query's "k=v" pairs; a bare "k" counts as "k=". */
static int add_request_params(sigv4_state *st, size_t *n, const char *q) {
  for (const char *s = q; s && *s;) {
    size_t len = strcspn(s, "&");
    const char *eq = memchr(s, '=', len);
    size_t kl = eq ? (size_t)(eq - s) : len;
    int rc = len ? add_param(st, n, s, kl, eq ? eq + 1 : "", eq ? len - kl - 1 : 0,
                             ENC_DECODE)
                 : SIGV4_OK;
    if (rc) return rc;
    s += len + (s[len] == '&');
  }
  return SIGV4_OK;
}

static int add_p(sigv4_state *st, size_t *n, const char *k, const char *v) {
  return add_param(st, n, k, strlen(k), v, strlen(v), 0);
}

static int add_presign_params(const job *j, size_t *n, const char *expires) {
  sigv4_state *st = j->st;
  int rc = add_p(st, n, "X-Amz-Algorithm", ALGORITHM);
  if (!rc) rc = add_p(st, n, "X-Amz-Credential", j->slot->credential);
  if (!rc) rc = add_p(st, n, "X-Amz-Date", j->amz_date);
  if (!rc) rc = add_p(st, n, "X-Amz-Expires", expires);
  if (!rc && j->sign_token) rc = add_p(st, n, "X-Amz-Security-Token", j->cr->session_token);
  if (!rc) rc = add_param(st, n, "X-Amz-SignedHeaders", 19, j->sh, j->sh_len, 0);
  return rc;
}

static int param_cmp(const void *pa, const void *pb) {
  const qparam *a = pa, *b = pb;
  size_t n = a->klen < b->klen ? a->klen : b->klen;
  int c = memcmp(a->k, b->k, n);
  if (c || a->klen != b->klen) return c ? c : (a->klen < b->klen ? -1 : 1);
  n = a->vlen < b->vlen ? a->vlen : b->vlen;
  c = memcmp(a->v, b->v, n);
  return c ? c : (a->vlen > b->vlen) - (a->vlen < b->vlen);
}

static void format_uint(char *o, size_t size, unsigned v) {
  char t[24];
  size_t n = 0;
  do t[n++] = (char)('0' + v % 10); while ((v /= 10) && n < sizeof t);
  for (size_t i = 0; i < n && i + 1 < size; i++) o[i] = t[n - 1 - i];
  o[n < size ? n : size - 1] = '\0';
}

/* Sorted "k=v&k=v" of the (encoded) wire query plus, when presigning, the X-Amz-* set. */
static int put_canonical_query(const job *j, sbuf *b) {
  sigv4_state *st = j->st;
  char expires[24];
  size_t n = 0;
  if (!j->presign && (!j->rq->query || !*j->rq->query)) return SIGV4_OK; /* the usual case */
  sb_reset(&st->qtext);
  format_uint(expires, sizeof expires, j->p->expires);
  int rc = add_request_params(st, &n, j->rq->query);
  if (!rc && j->presign) rc = add_presign_params(j, &n, expires);
  if (!rc) rc = sb_finish(&st->qtext);
  if (rc) return rc;
  for (size_t i = 0; i < n; i++) {
    st->qp[i].k = st->qtext.p + st->qp[i].koff;
    st->qp[i].v = st->qtext.p + st->qp[i].voff;
  }
  if (n > 1) qsort(st->qp, n, sizeof *st->qp, param_cmp);
  for (size_t i = 0; i < n; i++) {
    if (i) sb_putc(b, '&');
    sb_put(b, st->qp[i].k, st->qp[i].klen);
    sb_putc(b, '=');
    sb_put(b, st->qp[i].v, st->qp[i].vlen);
  }
  return SIGV4_OK;
}

/* ---- 6. assembly and public API ---- */

static int prepare(job *j, const sigv4_request *rq, const sigv4_credentials *cr,
                   const sigv4_params *p) {
  if (!rq || !cr || !p) return fail(SIGV4_ERR_INVALID, "NULL request, credentials or params");
  int rc = validate_request(j, rq);
  if (!rc) rc = validate_credentials(j, cr);
  if (!rc) rc = validate_params(j, p);
  if (rc) return rc;
  if (!(j->st = state_get())) return fail(SIGV4_ERR_NOMEM, "cannot set up OpenSSL contexts");
  j->rq = rq, j->cr = cr, j->p = p;
  j->presign = !!(p->flags & SIGV4_PRESIGN);
  j->has_token = cr->session_token && *cr->session_token;
  j->sign_token = j->has_token && !(p->flags & SIGV4_OMIT_SESSION_TOKEN);
  rc = set_amz_date(j);
  if (!rc) rc = bind_key(j);
  if (!rc) rc = set_payload_hash(j);
  if (!rc) rc = collect_headers(j);
  return rc;
}

static int build_canonical_request(job *j) {
  sbuf *b = &j->st->creq;
  const char *path = j->rq->path;
  sb_reset(b);
  if (path[0] == '/' && !path[1] && sb_need(b, j->method_len + 3)) {
    /* The usual "/", canonical as it is in every mode. */
    memcpy(b->p, j->rq->method, j->method_len);
    memcpy(b->p + j->method_len, "\n/\n", 3);
    b->len = j->method_len + 3;
  } else {
    sb_put(b, j->rq->method, j->method_len);
    sb_putc(b, '\n');
    put_canonical_uri(j, b);
    sb_putc(b, '\n');
  }
  int rc = put_canonical_query(j, b);
  if (rc) return rc;
  sb_putc(b, '\n');
  put_canonical_tail(j, b);
  return sb_finish(b);
}

#define LIT(o, lit) (memcpy((o), lit, sizeof lit - 1), (o) + sizeof lit - 1)

static int build_string_to_sign(const job *j) {
  unsigned char d[SHA256_LEN];
  sbuf *b = &j->st->sts;
  if (!sha256(j->st, j->st->creq.p, j->st->creq.len, d))
    return fail(SIGV4_ERR_CRYPTO, "SHA-256 of the canonical request failed");
  sb_reset(b);
  if (!sb_need(b, sizeof ALGORITHM + SIGV4_AMZ_DATE_LEN + j->slot->scope_len + 2 +
                     SIGV4_HEX_LEN))
    return sb_finish(b);
  char *o = LIT(b->p, ALGORITHM "\n");
  memcpy(o, j->amz_date, SIGV4_AMZ_DATE_LEN);
  o += SIGV4_AMZ_DATE_LEN;
  *o++ = '\n';
  memcpy(o, j->slot->scope, j->slot->scope_len);
  o += j->slot->scope_len;
  *o++ = '\n';
  hex_sha256(j->st, o, d);
  b->len = (size_t)(o + SIGV4_HEX_LEN - b->p);
  return sb_finish(b);
}

static int compute_signature(const job *j, char hex[SIGV4_HEX_LEN + 1]) {
  unsigned char d[SHA256_LEN];
  if (!hmac(j->slot->mac, NULL, 0, j->st->sts.p, j->st->sts.len, d))
    return fail(SIGV4_ERR_CRYPTO, "HMAC-SHA256 failed");
  hex_sha256(j->st, hex, d);
  hex[SIGV4_HEX_LEN] = '\0';
  return SIGV4_OK;
}

#define AUTH_1 ALGORITHM " Credential="
#define AUTH_2 ", SignedHeaders="
#define AUTH_3 ", Signature="

/* The Authorization value, written straight into the caller's buffer: its length is
 * known up front, so there is no intermediate copy on the hot path. */
static int put_authorization(const job *j, sigv4_output *out) {
  const key_slot *k = j->slot;
  out->len = sizeof AUTH_1 + sizeof AUTH_2 + sizeof AUTH_3 - 3 + k->credential_len + j->sh_len +
             SIGV4_HEX_LEN;
  if (out->len >= out->size) return fail(SIGV4_ERR_TRUNCATED, "output buffer too small");
  char *o = LIT(out->buf, AUTH_1);
  memcpy(o, k->credential, k->credential_len);
  o = LIT(o + k->credential_len, AUTH_2);
  memcpy(o, j->sh, j->sh_len);
  o = LIT(o + j->sh_len, AUTH_3);
  memcpy(o, out->signature, SIGV4_HEX_LEN + 1);
  return SIGV4_OK;
}

/* The order AWS SDKs (and the test suite's signed requests) use. */
static void put_presign_query(const job *j, sbuf *b, const char *sig) {
  char expires[24];
  format_uint(expires, sizeof expires, j->p->expires);
  sb_puts(b, "X-Amz-Algorithm=" ALGORITHM "&X-Amz-Credential=");
  sb_put_enc(b, j->slot->credential, j->slot->credential_len, 0);
  sb_puts(b, "&X-Amz-Date=");
  sb_put(b, j->amz_date, SIGV4_AMZ_DATE_LEN);
  sb_puts(b, "&X-Amz-SignedHeaders=");
  sb_put_enc(b, j->sh, j->sh_len, 0);
  sb_puts(b, "&X-Amz-Expires=");
  sb_puts(b, expires);
  if (j->has_token) {
    sb_puts(b, "&X-Amz-Security-Token=");
    sb_put_enc(b, j->cr->session_token, strlen(j->cr->session_token), 0);
  }
  sb_puts(b, "&X-Amz-Signature=");
  sb_put(b, sig, SIGV4_HEX_LEN);
}

static int copy_out(const sbuf *b, sigv4_output *out) {
  out->len = b->len;
  if (b->len >= out->size) return fail(SIGV4_ERR_TRUNCATED, "output buffer too small");
  memcpy(out->buf, b->p, b->len + 1);
  return SIGV4_OK;
}

static int put_presigned(const job *j, sigv4_output *out) {
  sbuf *b = &j->st->out;
  sb_reset(b);
  put_presign_query(j, b, out->signature);
  int rc = sb_finish(b);
  return rc ? rc : copy_out(b, out);
}

static int sign_job(job *j, sigv4_output *out) {
  int rc = build_canonical_request(j);
  if (!rc) rc = build_string_to_sign(j);
  if (!rc) rc = compute_signature(j, out->signature);
  if (rc) return rc;
  return j->presign ? put_presigned(j, out) : put_authorization(j, out);
}

int sigv4_sign(const sigv4_request *req, const sigv4_credentials *cred,
               const sigv4_params *params, sigv4_output *out) {
  job j;
  if (!out || (!out->buf && out->size)) return fail(SIGV4_ERR_INVALID, "NULL output");
  out->len = 0;
  if (out->size) out->buf[0] = '\0';
  out->amz_date[0] = out->payload_hash[0] = out->signature[0] = '\0';
  int rc = prepare(&j, req, cred, params);
  if (!rc) rc = sign_job(&j, out);
  if (rc) {
    out->signature[0] = '\0';
    return rc;
  }
  memcpy(out->amz_date, j.amz_date, sizeof out->amz_date);
  memcpy(out->payload_hash, j.payload_hash, j.payload_len + 1);
  return SIGV4_OK;
}

static int dup_out(const sbuf *b, char **out) {
  *out = malloc(b->len + 1);
  if (!*out) return fail(SIGV4_ERR_NOMEM, "out of memory copying a signing string");
  memcpy(*out, b->p, b->len + 1);
  return SIGV4_OK;
}

int sigv4_canonical_request(const sigv4_request *req, const sigv4_credentials *cred,
                            const sigv4_params *params, char **out) {
  job j;
  if (!out) return fail(SIGV4_ERR_INVALID, "NULL output");
  *out = NULL;
  int rc = prepare(&j, req, cred, params);
  if (!rc) rc = build_canonical_request(&j);
  return rc ? rc : dup_out(&j.st->creq, out);
}

int sigv4_string_to_sign(const sigv4_request *req, const sigv4_credentials *cred,
                         const sigv4_params *params, char **out) {
  job j;
  if (!out) return fail(SIGV4_ERR_INVALID, "NULL output");
  *out = NULL;
  int rc = prepare(&j, req, cred, params);
  if (!rc) rc = build_canonical_request(&j);
  if (!rc) rc = build_string_to_sign(&j);
  return rc ? rc : dup_out(&j.st->sts, out);
}

const char *sigv4_strerror(int status) {
  switch (status) {
  case SIGV4_OK: return "ok";
  case SIGV4_ERR_INVALID: return "invalid signing input";
  case SIGV4_ERR_LIMIT: return "signing input exceeds a limit";
  case SIGV4_ERR_TRUNCATED: return "output buffer too small";
  case SIGV4_ERR_NOMEM: return "out of memory";
  case SIGV4_ERR_CRYPTO: return "OpenSSL failure";
  default: return "unknown signing error";
  }
}

const char *sigv4_error_detail(void) { return last_detail; }
