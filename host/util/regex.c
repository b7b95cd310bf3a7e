/* Pure-C PCRE2 wrapper with Go regexp conventions (see regex.h). The Go parts
 * (all-matches iteration, ReplaceAllString, Expand, QuoteMeta) are written from
 * the behaviour of Go's src/regexp/regexp.go so Lua policies ported from Go
 * configurations keep their meaning. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "util/regex.h"

#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* PCRE2's JIT scans subjects with aligned 16-byte SIMD loads that may touch
 * bytes past the end of the string (never past the page). That is harmless,
 * but valgrind reports every such load, so under valgrind the interpreter
 * (same results) is used instead. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef UNDER_VALGRIND
#define UNDER_VALGRIND() 0
#endif

_Static_assert(sizeof(PCRE2_SIZE) == sizeof(size_t), "PCRE2_SIZE must be size_t");

struct rx {
  pcre2_code *code;
  pcre2_match_data *md;
  PCRE2_SIZE *ov;          /* md's offset vector; stable for md's lifetime */
  char *pat;               /* NUL-terminated copy: cache key and __tostring */
  size_t patlen;
  uint32_t flags, ngroups, namecount, name_entry_size;
  PCRE2_SPTR nametable;
  int jit;
  unsigned refs;
  /* Cache links, meaningful only while the cache holds this pattern. */
  uint64_t hash;
  struct rx *chain, *newer, *older;
};

struct rx_cache {
  rx_t **buckets; /* power-of-two count, at least twice the capacity: short chains */
  size_t nbuckets, size, capacity;
  rx_t *newest, *oldest;
  unsigned long hits, misses, evictions;
};

static const char FLAG_LETTERS[] = "imsxu"; /* bit i of the flags is letter i */

/* One match context for every match: explicit backtracking bounds, so a pattern
 * that backtracks exponentially fails within milliseconds with "match limit
 * exceeded" instead of running for seconds against PCRE2's far larger default. */
static pcre2_match_context *limits(void) {
  static pcre2_match_context *mc;
  static int tried;
  if (!tried) {
    tried = 1;
    mc = pcre2_match_context_create(NULL);
    if (mc && (pcre2_set_match_limit(mc, RX_MATCH_LIMIT) != 0 ||
               pcre2_set_depth_limit(mc, RX_DEPTH_LIMIT) != 0)) {
      pcre2_match_context_free(mc);
      mc = NULL; /* PCRE2's own defaults still bound the match */
    }
  }
  return mc;
}

/* ---- errors ---- */

static void set_error(rx_error_t *err, const char *msg) {
  if (snprintf(err->msg, sizeof err->msg, "%s", msg) < 0) err->msg[0] = '\0';
}

/* PCRE2's text for an error code; PCRE2 truncates (and says so) if too long. */
static void pcre_message(int code, char *buf, size_t cap) {
  int rc = pcre2_get_error_message(code, (PCRE2_UCHAR *)buf, cap);
  if (rc == PCRE2_ERROR_BADDATA && snprintf(buf, cap, "unknown PCRE2 error %d", code) < 0)
    buf[0] = '\0';
}

static void compile_error(rx_error_t *err, int code, PCRE2_SIZE offset) {
  char m[160];
  pcre_message(code, m, sizeof m);
  if (snprintf(err->msg, sizeof err->msg, "%s at offset %zu", m, (size_t)offset) < 0)
    err->msg[0] = '\0';
}

static void match_error(rx_error_t *err, int code) {
  pcre_message(code, err->msg, sizeof err->msg);
}

/* ---- flags ---- */

long rx_parse_flags(const char *s, size_t len, uint32_t *out) {
  uint32_t bits = 0;
  for (size_t i = 0; i < len; i++) {
    const char *p = s[i] ? strchr(FLAG_LETTERS, s[i]) : NULL;
    if (!p) return (long)i;
    bits |= 1u << (p - FLAG_LETTERS);
  }
  *out = bits;
  return -1;
}

void rx_flags_string(uint32_t bits, char *buf, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; FLAG_LETTERS[i] && n + 1 < cap; i++)
    if (bits & (1u << i)) buf[n++] = FLAG_LETTERS[i];
  if (cap) buf[n] = '\0';
}

/* DOLLAR_ENDONLY because Go's `$` (without m) matches only at the very end of
 * the text, never before a final newline. MATCH_INVALID_UTF makes UTF mode
 * tolerate invalid subjects (Go never fails a match on bad UTF-8). */
static uint32_t pcre_options(uint32_t flags) {
  uint32_t o = PCRE2_DOLLAR_ENDONLY;
  if (flags & RX_CASELESS) o |= PCRE2_CASELESS;
  if (flags & RX_MULTILINE) o |= PCRE2_MULTILINE;
  if (flags & RX_DOTALL) o |= PCRE2_DOTALL;
  if (flags & RX_EXTENDED) o |= PCRE2_EXTENDED;
  if (flags & RX_UTF) o |= PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
  return o;
}

/* ---- compiled patterns ---- */

static void rx_destroy(rx_t *rx) {
  pcre2_match_data_free(rx->md);
  pcre2_code_free(rx->code);
  free(rx->pat);
  free(rx);
}

static int read_info(rx_t *rx) {
  return pcre2_pattern_info(rx->code, PCRE2_INFO_CAPTURECOUNT, &rx->ngroups) == 0 &&
                 pcre2_pattern_info(rx->code, PCRE2_INFO_NAMECOUNT, &rx->namecount) == 0 &&
                 pcre2_pattern_info(rx->code, PCRE2_INFO_NAMEENTRYSIZE,
                                    &rx->name_entry_size) == 0 &&
                 pcre2_pattern_info(rx->code, PCRE2_INFO_NAMETABLE, &rx->nametable) == 0
             ? 0
             : -1;
}

static int build_code(rx_t *rx, rx_error_t *err) {
  int code;
  PCRE2_SIZE offset;
  rx->code = pcre2_compile((PCRE2_SPTR)rx->pat, rx->patlen, pcre_options(rx->flags), &code,
                           &offset, NULL);
  if (!rx->code) {
    compile_error(err, code, offset);
    return -1;
  }
  /* JIT is only a speed-up: without it (unsupported CPU, no executable memory,
   * valgrind) pcre2_match interprets the same code. UTF patterns are interpreted
   * too: PCRE2 10.42's JIT with MATCH_INVALID_UTF never matches \D, \W or \S
   * against a non-ASCII character ("é" =~ /\D/ fails), the interpreter does. */
  rx->jit = !UNDER_VALGRIND() && !(rx->flags & RX_UTF) &&
            pcre2_jit_compile(rx->code, PCRE2_JIT_COMPLETE) == 0;
  rx->md = pcre2_match_data_create_from_pattern(rx->code, NULL);
  if (!rx->md || read_info(rx) != 0) {
    set_error(err, rx->md ? "cannot read pattern info" : "out of memory");
    return -1;
  }
  rx->ov = pcre2_get_ovector_pointer(rx->md);
  return 0;
}

rx_t *rx_compile(const char *pat, size_t len, uint32_t flags, rx_error_t *err) {
  rx_t *rx = calloc(1, sizeof *rx);
  if (!rx || !(rx->pat = malloc(len + 1))) {
    free(rx);
    set_error(err, "out of memory");
    return NULL;
  }
  if (len) memcpy(rx->pat, pat, len);
  rx->pat[len] = '\0';
  rx->patlen = len;
  rx->flags = flags;
  rx->refs = 1;
  if (build_code(rx, err) != 0) {
    rx_destroy(rx);
    return NULL;
  }
  return rx;
}

rx_t *rx_ref(rx_t *rx) {
  rx->refs++;
  return rx;
}

void rx_unref(rx_t *rx) {
  if (rx && --rx->refs == 0) rx_destroy(rx);
}

const char *rx_pattern(const rx_t *rx, size_t *len) {
  if (len) *len = rx->patlen;
  return rx->pat;
}

uint32_t rx_flags(const rx_t *rx) { return rx->flags; }
uint32_t rx_group_count(const rx_t *rx) { return rx->ngroups; }
int rx_jitted(const rx_t *rx) { return rx->jit; }

/* Name-table entries are a big-endian 16-bit group number, then the name. */
static uint32_t entry_group(const rx_t *rx, uint32_t i) {
  PCRE2_SPTR e = rx->nametable + (size_t)i * rx->name_entry_size;
  return ((uint32_t)e[0] << 8) | e[1];
}

static const char *entry_name(const rx_t *rx, uint32_t i) {
  return (const char *)rx->nametable + (size_t)i * rx->name_entry_size + 2;
}

void rx_each_name(const rx_t *rx, void (*fn)(void *ctx, uint32_t num, const char *name),
                  void *ctx) {
  for (uint32_t i = 0; i < rx->namecount; i++) fn(ctx, entry_group(rx, i), entry_name(rx, i));
}

/* ---- matching ---- */

int rx_exec(rx_t *rx, const char *s, size_t len, size_t start, rx_error_t *err) {
  int rc = pcre2_match(rx->code, (PCRE2_SPTR)s, len, start, 0, rx->md, limits());
  if (rc == PCRE2_ERROR_NOMATCH) return 0;
  if (rc < 0) {
    match_error(err, rc);
    return -1;
  }
  /* Offsets of groups past the last one that matched are left unspecified
   * when rc is smaller than the vector; make them explicitly unset. */
  for (size_t i = 2 * (size_t)(rc ? rc : 1); i < 2 * ((size_t)rx->ngroups + 1); i++)
    rx->ov[i] = PCRE2_UNSET;
  if (rx->ov[1] < rx->ov[0] || rx->ov[0] < start) {
    set_error(err, "match reported an impossible range (\\K in a lookaround?)");
    return -1;
  }
  return 1;
}

const size_t *rx_ovector(const rx_t *rx) { return rx->ov; }

size_t rx_utf8_width(const char *s, size_t n) {
  if (n == 0) return 0;
  unsigned char c = (unsigned char)s[0], lo = 0x80, hi = 0xBF;
  size_t need;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) need = 2;
  else if (c >= 0xE0 && c <= 0xEF) need = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
  else if (c >= 0xF0 && c <= 0xF4) need = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
  else return 1;
  if (n < need || (unsigned char)s[1] < lo || (unsigned char)s[1] > hi) return 1;
  for (size_t i = 2; i < need; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80) return 1;
  return need;
}

void rx_iter_init(rx_iter_t *it) {
  it->pos = 0;
  it->prev_end = RX_UNSET;
  it->done = 0;
}

/* Go allMatches: an empty match right after the previous match is skipped,
 * and after an empty match the search moves on by one whole UTF-8 sequence. */
int rx_iter_next(rx_t *rx, rx_iter_t *it, const char *s, size_t len, rx_error_t *err) {
  while (!it->done && it->pos <= len) {
    int rc = rx_exec(rx, s, len, it->pos, err);
    if (rc <= 0) {
      it->done = 1;
      return rc;
    }
    int accept = 1;
    if (rx->ov[1] == it->pos) {
      size_t w = rx_utf8_width(s + it->pos, len - it->pos);
      accept = rx->ov[0] != it->prev_end;
      it->pos = w ? it->pos + w : len + 1;
    } else {
      it->pos = rx->ov[1];
    }
    it->prev_end = rx->ov[1];
    if (accept) return 1;
  }
  it->done = 1;
  return 0;
}

/* ---- Go template expansion ---- */

typedef struct {
  const char *name;
  size_t namelen, consumed;
  long num; /* group number, or -1 when the name is not a plain number */
} tmpl_ref_t;

static int is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Go extract's number rule: all digits, below 1e8, no leading zero. */
static long group_number(const char *s, size_t n) {
  long num = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9' || num >= 100000000L) return -1;
    num = num * 10 + (s[i] - '0');
  }
  return (s[0] == '0' && n > 1) ? -1 : num;
}

/* Parses "name" or "{name}" after a '$'. Returns 0 when malformed, in which
 * case Go copies the '$' literally and carries on after it. */
static int extract_ref(const char *p, size_t n, tmpl_ref_t *r) {
  size_t i = (n > 0 && p[0] == '{') ? 1 : 0, start = i;
  while (i < n && is_name_char(p[i])) i++;
  if (i == start) return 0;
  r->name = p + start;
  r->namelen = i - start;
  if (start == 1) {
    if (i >= n || p[i] != '}') return 0;
    i++;
  }
  r->num = group_number(r->name, r->namelen);
  r->consumed = i;
  return 1;
}

/* Lowest-numbered group with this name that took part in the match, as Go
 * does for duplicate names; -1 when there is none. */
static long named_group(const rx_t *rx, const char *name, size_t n) {
  long best = -1;
  for (uint32_t i = 0; i < rx->namecount; i++) {
    uint32_t g = entry_group(rx, i);
    const char *nm = entry_name(rx, i);
    if (strnlen(nm, rx->name_entry_size - 2) != n || memcmp(nm, name, n) != 0) continue;
    if (rx->ov[2 * (size_t)g] != PCRE2_UNSET && (best < 0 || (long)g < best)) best = (long)g;
  }
  return best;
}

static int emit_ref(const rx_t *rx, const tmpl_ref_t *r, const char *s, rx_sink_fn sink,
                    void *ctx) {
  long g = r->num >= 0 ? r->num : named_group(rx, r->name, r->namelen);
  if (g < 0 || (unsigned long)g > rx->ngroups) return 0; /* unknown: expands to nothing */
  size_t a = rx->ov[2 * (size_t)g], b = rx->ov[2 * (size_t)g + 1];
  return a == PCRE2_UNSET ? 0 : sink(ctx, s + a, b - a);
}

int rx_expand(const rx_t *rx, const char *tmpl, size_t tlen, const char *s, rx_sink_fn sink,
              void *ctx) {
  size_t i = 0;
  const char *dollar;
  while (i < tlen && (dollar = memchr(tmpl + i, '$', tlen - i)) != NULL) {
    size_t at = (size_t)(dollar - tmpl);
    tmpl_ref_t r;
    if (sink(ctx, tmpl + i, at - i) != 0) return -1;
    i = at + 1;
    if (i < tlen && tmpl[i] == '$') { /* "$$" is a literal '$' */
      if (sink(ctx, "$", 1) != 0) return -1;
      i++;
    } else if (!extract_ref(tmpl + i, tlen - i, &r)) {
      if (sink(ctx, "$", 1) != 0) return -1;
    } else {
      i += r.consumed;
      if (emit_ref(rx, &r, s, sink, ctx) != 0) return -1;
    }
  }
  return sink(ctx, tmpl + i, tlen - i);
}

/* ---- Go ReplaceAllString ---- */

/* Where Go's replaceAll searches next: at least one whole UTF-8 sequence past
 * pos, and never before the end of the match. */
static size_t next_search(const char *s, size_t len, size_t pos, size_t end) {
  size_t w = rx_utf8_width(s + pos, len - pos);
  if (pos + w > end) return pos + w;
  if (pos + 1 > end) return pos + 1;
  return end;
}

static long oom(rx_error_t *err) {
  set_error(err, "out of memory");
  return -1;
}

long rx_replace(rx_t *rx, const char *s, size_t len, const char *tmpl, size_t tlen,
                rx_sink_fn sink, void *ctx, rx_error_t *err) {
  size_t last = 0, pos = 0;
  long n = 0;
  while (pos <= len) {
    int rc = rx_exec(rx, s, len, pos, err);
    if (rc < 0) return -1;
    if (rc == 0) break;
    size_t a0 = rx->ov[0], a1 = rx->ov[1];
    if (sink(ctx, s + last, a0 - last) != 0) return oom(err);
    /* An empty match right after the previous one is not replaced (Go). */
    if (a1 > last || a0 == 0) {
      if (rx_expand(rx, tmpl, tlen, s, sink, ctx) != 0) return oom(err);
      n++;
    }
    last = a1;
    pos = next_search(s, len, pos, a1);
  }
  if (sink(ctx, s + last, len - last) != 0) return oom(err);
  return n;
}

/* ---- Go QuoteMeta ---- */

int rx_quote_meta(const char *s, size_t len, rx_sink_fn sink, void *ctx) {
  static const char special[] = "\\.+*?()|[]{}^$";
  size_t run = 0; /* start of the pending run of ordinary bytes */
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '\0' || !strchr(special, s[i])) continue;
    if (sink(ctx, s + run, i - run) != 0 || sink(ctx, "\\", 1) != 0) return -1;
    run = i;
  }
  return sink(ctx, s + run, len - run);
}

/* ---- cache ---- */

static uint64_t key_hash(const char *pat, size_t len, uint32_t flags) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)pat[i]) * 1099511628211ULL;
  return (h ^ flags) * 1099511628211ULL;
}

rx_cache_t *rx_cache_new(size_t capacity) {
  rx_cache_t *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->capacity = capacity;
  c->nbuckets = 8;
  while (c->nbuckets < 2 * capacity) c->nbuckets *= 2;
  c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
  if (!c->buckets) {
    free(c);
    return NULL;
  }
  return c;
}

void rx_cache_free(rx_cache_t *c) {
  if (!c) return;
  for (rx_t *rx = c->newest, *next; rx; rx = next) {
    next = rx->older;
    rx_unref(rx);
  }
  free(c->buckets);
  free(c);
}

static rx_t **bucket(rx_cache_t *c, uint64_t h) { return &c->buckets[h & (c->nbuckets - 1)]; }

static rx_t *find(rx_cache_t *c, uint64_t h, const char *pat, size_t len, uint32_t flags) {
  for (rx_t *rx = *bucket(c, h); rx; rx = rx->chain)
    if (rx->hash == h && rx->flags == flags && rx->patlen == len &&
        (len == 0 || memcmp(rx->pat, pat, len) == 0))
      return rx;
  return NULL;
}

static void lru_unlink(rx_cache_t *c, rx_t *rx) {
  if (rx->newer) rx->newer->older = rx->older;
  else c->newest = rx->older;
  if (rx->older) rx->older->newer = rx->newer;
  else c->oldest = rx->newer;
  rx->newer = rx->older = NULL;
}

static void lru_push_newest(rx_cache_t *c, rx_t *rx) {
  rx->older = c->newest;
  rx->newer = NULL;
  if (c->newest) c->newest->newer = rx;
  c->newest = rx;
  if (!c->oldest) c->oldest = rx;
}

static void evict_oldest(rx_cache_t *c) {
  rx_t *rx = c->oldest, **pp = bucket(c, rx->hash);
  while (*pp != rx) pp = &(*pp)->chain;
  *pp = rx->chain;
  lru_unlink(c, rx);
  c->size--;
  c->evictions++;
  rx_unref(rx); /* objects still using it keep their own references */
}

rx_t *rx_cache_get(rx_cache_t *c, const char *pat, size_t len, uint32_t flags,
                   rx_error_t *err) {
  uint64_t h = key_hash(pat, len, flags);
  rx_t *rx = find(c, h, pat, len, flags);
  if (rx) {
    c->hits++;
    lru_unlink(c, rx);
    lru_push_newest(c, rx);
    return rx_ref(rx);
  }
  c->misses++;
  rx = rx_compile(pat, len, flags, err);
  if (!rx || c->capacity == 0) return rx;
  if (c->size >= c->capacity) evict_oldest(c);
  rx->hash = h;
  rx->chain = *bucket(c, h);
  *bucket(c, h) = rx;
  lru_push_newest(c, rx);
  c->size++;
  return rx_ref(rx); /* the compile reference now belongs to the cache */
}

void rx_cache_stats(const rx_cache_t *c, rx_cache_stats_t *out) {
  out->hits = c->hits;
  out->misses = c->misses;
  out->evictions = c->evictions;
  out->size = c->size;
  out->capacity = c->capacity;
}
