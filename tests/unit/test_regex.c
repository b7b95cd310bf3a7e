/* Unit tests for host/util/regex.c: PCRE2 wrapper, Go ReplaceAllString / Expand
 * semantics (expected values are what Go's regexp package returns), the
 * all-matches iteration and the LRU cache. */
#include "util/regex.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

/* Growable output buffer used as the rx sink. */
typedef struct {
  char *p;
  size_t n, cap;
} buf_t;

static int buf_sink(void *ctx, const char *p, size_t n) {
  buf_t *b = ctx;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + n + 1) cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q) return -1;
    b->p = q;
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->n, p, n);
  b->n += n;
  b->p[b->n] = '\0';
  return 0;
}

static rx_t *compile(const char *pat, const char *flags) {
  uint32_t bits = 0;
  rx_error_t err;
  if (rx_parse_flags(flags, strlen(flags), &bits) >= 0) return NULL;
  rx_t *rx = rx_compile(pat, strlen(pat), bits, &err);
  if (!rx) printf("# compile %s: %s\n", pat, err.msg);
  return rx;
}

/* s with control bytes shown as \xHH, so a test name stays on one TAP line. */
static const char *show(const char *s, char *out, size_t cap) {
  size_t n = 0;
  for (; *s && n + 5 < cap; s++) {
    int w = (unsigned char)*s < 0x20 ? snprintf(out + n, cap - n, "\\x%02x", (unsigned char)*s)
                                     : snprintf(out + n, cap - n, "%c", *s);
    if (w < 0) break;
    n += (size_t)w;
  }
  out[n] = '\0';
  return out;
}

/* Go: regexp.MustCompile(pat).ReplaceAllString(s, tmpl) */
static void replace_is(const char *pat, const char *s, const char *tmpl, const char *want) {
  rx_t *rx = compile(pat, "");
  buf_t b = {0};
  rx_error_t err;
  long n = rx ? rx_replace(rx, s, strlen(s), tmpl, strlen(tmpl), buf_sink, &b, &err) : -1;
  if (n >= 0 && !b.p) buf_sink(&b, "", 0);
  char shown[64];
  is_str(n >= 0 ? b.p : "(error)", want, "replace /%s/ in \"%s\" with \"%s\"", pat,
         show(s, shown, sizeof shown), tmpl);
  free(b.p);
  rx_unref(rx);
}

static void test_expand(void) {
  const char *p = "(?P<first>\\w+)\\s(?P<last>\\w+)";
  replace_is(p, "John Smith", "$0", "John Smith");
  replace_is(p, "John Smith", "${1}x", "Johnx");
  replace_is(p, "John Smith", "$1x", "");            /* group named "1x": none */
  replace_is(p, "John Smith", "$1_", "");            /* longest name wins */
  replace_is(p, "John Smith", "$$", "$");
  replace_is(p, "John Smith", "$$$1", "$John");
  replace_is(p, "John Smith", "a$$1", "a$1");
  replace_is(p, "John Smith", "${last}, ${first}", "Smith, John");
  replace_is(p, "John Smith", "$last $first", "Smith John");
  replace_is(p, "John Smith", "$lastx", "");
  replace_is(p, "John Smith", "$9", "");             /* out of range */
  replace_is(p, "John Smith", "$01", "");            /* leading zero: a name */
  replace_is(p, "John Smith", "x$", "x$");           /* '$' at the end is literal */
  replace_is(p, "John Smith", "$!", "$!");           /* invalid reference: literal */
  replace_is(p, "John Smith", "${1", "${1");         /* missing brace: literal */
  replace_is(p, "John Smith", "${}", "${}");
  replace_is(p, "John Smith", "${first}${last}", "JohnSmith");
  replace_is("(a)|b", "ab", "[$1]", "[a][]");        /* unset group expands to nothing */
  replace_is("(?J)(?<n>a)|(?<n>b)", "b", "<$n>", "<b>");
}

static void test_replace_all(void) {
  replace_is("a(\\d)", "a1 a2 a3", "b$1", "b1 b2 b3");
  replace_is("a*", "baaac", "X", "XbXcX");
  replace_is("x*", "abc", "-", "-a-b-c-");
  replace_is("a*", "", "X", "X");
  replace_is("x*", "\xc3\xa9", "-", "-\xc3\xa9-");   /* steps over whole UTF-8 sequences */
  replace_is("(?i)-production$", "Orders-Production", "-staging", "Orders-staging");
  replace_is("(?i)-production$", "Orders-Production", "$0", "Orders-Production");
  replace_is("-production$", "x-production\n", "-staging", "x-production\n"); /* Go $ */
  replace_is("nomatch", "abc", "X", "abc");
  replace_is("b", "abcb", "", "ac");
}

static void test_all_matches(void) {
  rx_t *rx = compile("a*", "");
  rx_iter_t it;
  rx_error_t err;
  char got[64] = "";
  size_t n = 0;
  rx_iter_init(&it);
  while (rx && rx_iter_next(rx, &it, "baaac", 5, &err) == 1) {
    const size_t *ov = rx_ovector(rx);
    int w = snprintf(got + n, sizeof got - n, "[%zu,%zu]", ov[0], ov[1]);
    if (w < 0 || (size_t)w >= sizeof got - n) break;
    n += (size_t)w;
  }
  is_str(got, "[0,0][1,4][5,5]", "Go FindAll a* in baaac");
  rx_unref(rx);
}

static void test_match_basics(void) {
  rx_t *rx = compile("(\\d+)-(?<word>[a-z]+)?", "");
  rx_error_t err;
  ok(rx != NULL, "compile with named group");
  if (!rx) return;
  is_int(rx_group_count(rx), 2, "two groups");
  is_int(rx_exec(rx, "id 42-", 6, 0, &err), 1, "matches");
  const size_t *ov = rx_ovector(rx);
  ok(ov[0] == 3 && ov[1] == 6 && ov[2] == 3 && ov[3] == 5, "offsets of match and group 1");
  ok(ov[4] == RX_UNSET && ov[5] == RX_UNSET, "unset optional group");
  is_int(rx_exec(rx, "none", 4, 0, &err), 0, "no match");
  rx_unref(rx);

  rx = compile("b", "");
  is_int(rx ? rx_exec(rx, "a\0b", 3, 0, &err) : -1, 1, "subject with NUL");
  is_int(rx ? (long long)rx_ovector(rx)[0] : -1, 2, "match after the NUL");
  rx_unref(rx);

  rx = compile("HELLO", "i");
  is_int(rx ? rx_exec(rx, "say hello", 9, 0, &err) : -1, 1, "flag i");
  rx_unref(rx);
  rx = compile("^b", "m");
  is_int(rx ? rx_exec(rx, "a\nb", 3, 0, &err) : -1, 1, "flag m");
  rx_unref(rx);
}

static void test_errors(void) {
  rx_error_t err;
  uint32_t bits;
  ok(rx_compile("(abc", 4, 0, &err) == NULL, "unbalanced pattern fails");
  is_str(err.msg, "missing closing parenthesis at offset 4", "PCRE2 message with offset");
  is_int(rx_parse_flags("imq", 3, &bits), 2, "unknown flag index");
  is_int(rx_parse_flags("imsxu", 5, &bits), -1, "all flags known");
  char letters[8];
  rx_flags_string(bits, letters, sizeof letters);
  is_str(letters, "imsxu", "flag letters round trip");

  rx_t *rx = compile("(a+)+$", "");
  char s[40];
  memset(s, 'a', 39);
  s[38] = 'b';
  s[39] = '\0';
  int rc = rx ? rx_exec(rx, s, 39, 0, &err) : 0;
  ok(rc == -1, "catastrophic backtracking reports an error (%s)", rc == -1 ? err.msg : "");
  rx_unref(rx);
}

static void test_quote_and_utf8(void) {
  buf_t b = {0};
  const char *s = "orders.v2 (eu)*";
  ok(rx_quote_meta(s, strlen(s), buf_sink, &b) == 0, "quote_meta");
  is_str(b.p, "orders\\.v2 \\(eu\\)\\*", "QuoteMeta escapes metacharacters");
  free(b.p);
  is_int(rx_utf8_width("\xc3\xa9", 2), 2, "2-byte sequence");
  is_int(rx_utf8_width("\xe2\x82\xac", 3), 3, "3-byte sequence");
  is_int(rx_utf8_width("\xf0\x9f\x98\x80", 4), 4, "4-byte sequence");
  is_int(rx_utf8_width("\xc3", 1), 1, "truncated sequence");
  is_int(rx_utf8_width("\xed\xa0\x80", 3), 1, "surrogate is invalid");
  is_int(rx_utf8_width("", 0), 0, "end of text");
}

static rx_t *cache_get(rx_cache_t *c, const char *pat) {
  rx_error_t err;
  return rx_cache_get(c, pat, strlen(pat), 0, &err);
}

static void test_cache(void) {
  rx_cache_t *c = rx_cache_new(2);
  rx_cache_stats_t st;
  rx_t *a1 = cache_get(c, "a"), *a2 = cache_get(c, "a");
  ok(a1 && a1 == a2, "hit returns the same compiled pattern");
  rx_unref(a1);
  rx_unref(a2);
  rx_unref(cache_get(c, "b"));
  rx_unref(cache_get(c, "a"));   /* refresh a: b is now the oldest */
  rx_unref(cache_get(c, "c"));   /* evicts b */
  rx_unref(cache_get(c, "a"));   /* still cached */
  rx_cache_stats(c, &st);
  ok(st.hits == 3 && st.misses == 3 && st.size == 2 && st.evictions == 1,
     "LRU stats hits=%lu misses=%lu size=%zu evictions=%lu", st.hits, st.misses, st.size,
     st.evictions);
  rx_error_t err;
  ok(rx_cache_get(c, "(", 1, 0, &err) == NULL, "bad pattern not cached");
  rx_t *keep = cache_get(c, "k");  /* survives its eviction */
  rx_unref(cache_get(c, "x"));
  rx_unref(cache_get(c, "y"));
  ok(keep && rx_exec(keep, "k", 1, 0, &err) == 1, "evicted pattern still usable by holder");
  rx_unref(keep);
  rx_cache_free(c);
}

int main(void) {
  (void)tap_skip_all; /* tap.h defines it static; unused here */
  test_expand();
  test_replace_all();
  test_all_matches();
  test_match_basics();
  test_errors();
  test_quote_and_utf8();
  test_cache();
  return tap_done();
}
