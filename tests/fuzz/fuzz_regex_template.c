/* libFuzzer harness: Go replacement templates ($1, ${1}, $name, ${name}, $$) applied by
 * Go ReplaceAllString (util/regex.c rx_expand / rx_replace), the way a rule's
 * replacement rewrites a table name. Input: a flags byte, then pattern NUL template NUL
 * subject. Checks: ReplaceAllString equals the subject rebuilt from the Go all-matches
 * sequence (rx_iter_next) with each match expanded (on ASCII subjects, where Go's two
 * loops agree by construction); a template with every '$' doubled expands to itself;
 * "${0}" expands to the whole match. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "util/regex.h"

static int sink(void *ctx, const char *p, size_t n) { return buf_append(ctx, p, n); }

static int ascii(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] >= 0x80) return 0;
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 4096) return 0;
  uint32_t flags = data[0] & (RX_CASELESS | RX_MULTILINE | RX_DOTALL | RX_EXTENDED | RX_UTF);
  const char *in = (const char *)data + 1, *end = (const char *)data + size;
  const char *z1 = memchr(in, 0, (size_t)(end - in));
  if (!z1) return 0;
  const char *tmpl = z1 + 1;
  const char *z2 = memchr(tmpl, 0, (size_t)(end - tmpl));
  if (!z2) return 0;
  const char *s = z2 + 1;
  size_t plen = (size_t)(z1 - in), tlen = (size_t)(z2 - tmpl), slen = (size_t)(end - s);
  if (plen > 256) return 0;

  rx_error_t err;
  rx_t *rx = rx_compile(in, plen, flags, &err);
  if (!rx) return 0;
  buf_t got = {0}, want = {0}, doubled = {0}, tmp = {0};
  long n = rx_replace(rx, s, slen, tmpl, tlen, sink, &got, &err);
  if (n >= 0 && ascii(s, slen)) {
    rx_iter_t it;
    rx_iter_init(&it);
    size_t last = 0;
    long count = 0;
    int rc;
    while ((rc = rx_iter_next(rx, &it, s, slen, &err)) == 1) {
      const size_t *ov = rx_ovector(rx);
      if (ov[0] < last || ov[1] < ov[0] || ov[1] > slen) abort();
      if (buf_append(&want, s + last, ov[0] - last) != 0 || rx_expand(rx, tmpl, tlen, s, sink, &want) != 0) goto out;
      last = ov[1];
      count++;
      /* "${0}" is the whole match; the template with '$' doubled is literal text */
      tmp.len = 0;
      if (rx_expand(rx, "${0}", 4, s, sink, &tmp) != 0) goto out;
      if (tmp.len != ov[1] - ov[0] || (tmp.len && memcmp(tmp.data, s + ov[0], tmp.len) != 0)) abort();
      if (!doubled.len && tlen) {
        for (size_t i = 0; i < tlen; i++)
          if (buf_append(&doubled, tmpl + i, 1) != 0 || (tmpl[i] == '$' && buf_append(&doubled, "$", 1) != 0)) goto out;
      }
      tmp.len = 0;
      if (rx_expand(rx, doubled.data ? doubled.data : "", doubled.len, s, sink, &tmp) != 0) goto out;
      if (tmp.len != tlen || (tlen && memcmp(tmp.data, tmpl, tlen) != 0)) abort();
    }
    if (rc < 0) goto out; /* a match limit hit on one loop and not the other is no finding */
    if (buf_append(&want, s + last, slen - last) != 0) goto out;
    if (count != n || got.len != want.len || (got.len && memcmp(got.data, want.data, got.len) != 0)) abort();
  }
out:
  buf_free(&got);
  buf_free(&want);
  buf_free(&doubled);
  buf_free(&tmp);
  rx_unref(rx);
  return 0;
}
