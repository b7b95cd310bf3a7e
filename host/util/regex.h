/* Pure-C PCRE2 wrapper with Go regexp conventions, usable without Lua.
 *
 * - rx_t is a compiled pattern, reference counted so a cache and any number of
 *   Lua objects can share one compilation (and closing one never breaks another).
 * - rx_cache_t is a bounded LRU of compiled patterns keyed by (pattern, flags).
 * - Iteration over all matches and rx_replace follow Go's regexp package
 *   (allMatches / ReplaceAllString), rx_expand follows Go's Regexp.Expand.
 *
 * Not thread safe: each rx_t owns one pcre2_match_data, so the offsets returned
 * by rx_ovector are valid only until the next match on the same rx_t. One
 * Lua state is single threaded, which is the only user.
 */
#ifndef ROTATOR_REGEX_H
#define ROTATOR_REGEX_H
#include <stddef.h>
#include <stdint.h>

/* Flag bits, one per letter of the flags string "imsxu". */
enum {
  RX_CASELESS = 1u << 0,  /* i */
  RX_MULTILINE = 1u << 1, /* m */
  RX_DOTALL = 1u << 2,    /* s */
  RX_EXTENDED = 1u << 3,  /* x */
  RX_UTF = 1u << 4        /* u */
};

#define RX_UNSET ((size_t)-1) /* offset of a group that did not participate */
#define RX_ERRMAX 256
/* Backtracking bounds of every match (pcre2_set_match_limit / depth_limit): a
 * match that needs more fails with "match limit exceeded". */
#define RX_MATCH_LIMIT 1000000u
#define RX_DEPTH_LIMIT 10000u

typedef struct rx rx_t;
typedef struct rx_cache rx_cache_t;

typedef struct {
  char msg[RX_ERRMAX]; /* PCRE2's message, e.g. "missing closing parenthesis at offset 4" */
} rx_error_t;

typedef struct {
  unsigned long hits, misses, evictions;
  size_t size, capacity;
} rx_cache_stats_t;

/* Receives output bytes; returns 0, or -1 to abort (out of memory). */
typedef int (*rx_sink_fn)(void *ctx, const char *p, size_t n);

/* State of an all-matches iteration (Go allMatches): init with rx_iter_init. */
typedef struct {
  size_t pos;       /* where the next search starts */
  size_t prev_end;  /* end of the previous match, or RX_UNSET */
  int done;
} rx_iter_t;

/* Parses "imsxu" letters into *out. Returns -1 on success, else the index of
 * the first unknown letter. */
long rx_parse_flags(const char *s, size_t len, uint32_t *out);
/* Writes the canonical flag letters of bits into buf (at least 6 bytes). */
void rx_flags_string(uint32_t bits, char *buf, size_t cap);

/* Compiles pattern (may contain NULs). Returns NULL with err filled on failure.
 * The result holds one reference. */
rx_t *rx_compile(const char *pat, size_t len, uint32_t flags, rx_error_t *err);
rx_t *rx_ref(rx_t *rx);
void rx_unref(rx_t *rx);

const char *rx_pattern(const rx_t *rx, size_t *len);
uint32_t rx_flags(const rx_t *rx);
uint32_t rx_group_count(const rx_t *rx); /* capturing groups, not counting group 0 */
int rx_jitted(const rx_t *rx);
/* Calls fn(ctx, group number, name) for each named group, in name-table order. */
void rx_each_name(const rx_t *rx, void (*fn)(void *ctx, uint32_t num, const char *name),
                  void *ctx);

/* One search starting at byte offset start. Returns 1 on a match (offsets in
 * rx_ovector), 0 on no match, -1 on a matching error (err filled). */
int rx_exec(rx_t *rx, const char *s, size_t len, size_t start, rx_error_t *err);
/* 2*(group_count+1) offsets of the last successful match; unset groups are RX_UNSET. */
const size_t *rx_ovector(const rx_t *rx);

void rx_iter_init(rx_iter_t *it);
/* Next match of the Go all-matches sequence: 1 match (offsets in rx_ovector),
 * 0 finished, -1 error. */
int rx_iter_next(rx_t *rx, rx_iter_t *it, const char *s, size_t len, rx_error_t *err);

/* Appends the Go-template expansion of tmpl for the last match of rx on s. */
int rx_expand(const rx_t *rx, const char *tmpl, size_t tlen, const char *s,
              rx_sink_fn sink, void *ctx);
/* Go ReplaceAllString: writes s with every match replaced by the expanded tmpl.
 * Returns the number of replacements, or -1 (err filled). */
long rx_replace(rx_t *rx, const char *s, size_t len, const char *tmpl, size_t tlen,
                rx_sink_fn sink, void *ctx, rx_error_t *err);

/* Go QuoteMeta: writes s with \.+*?()|[]{}^$ backslash-escaped, a pattern
 * matching s literally (not meant for the x flag, where spaces and # matter). */
int rx_quote_meta(const char *s, size_t len, rx_sink_fn sink, void *ctx);

/* Byte length of the UTF-8 sequence at s (Go utf8.DecodeRune width): 1 for an
 * invalid byte, 0 at the end. */
size_t rx_utf8_width(const char *s, size_t n);

rx_cache_t *rx_cache_new(size_t capacity);
void rx_cache_free(rx_cache_t *c);
/* Returns a new reference to the compiled (pattern, flags), compiling and
 * inserting it on a miss. NULL with err filled when compilation fails. */
rx_t *rx_cache_get(rx_cache_t *c, const char *pat, size_t len, uint32_t flags,
                   rx_error_t *err);
void rx_cache_stats(const rx_cache_t *c, rx_cache_stats_t *out);

#endif
