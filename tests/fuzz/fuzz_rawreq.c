/* libFuzzer harness: `rotator sign`'s raw request format (cli/rawreq.c), then SigV4
 * signing of what parsed. Invariants from the conformance suite: the signature is 64
 * lowercase hex digits and the canonical request's signed-headers list is sorted. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/rawreq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  rawreq rq;
  const char *err = NULL;
  if (rawreq_parse((const char *)data, size, &rq, &err) != 0) {
    if (!err) abort();
    return 0;
  }
  sigv4_credentials cr = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL};
  sigv4_params p = {.region = "us-east-1", .service = "service", .amz_date = "20150830T123600Z",
                    .flags = SIGV4_FLAGS_DEFAULT};
  char auth[8192];
  sigv4_output out = {.buf = auth, .size = sizeof auth};
  if (sigv4_sign(&rq.req, &cr, &p, &out) == SIGV4_OK) {
    if (strlen(out.signature) != 64 || strspn(out.signature, "0123456789abcdef") != 64) abort();
    char *canon = NULL;
    if (sigv4_canonical_request(&rq.req, &cr, &p, &canon) == SIGV4_OK && canon) {
      /* line 6 of the canonical request: the signed headers, sorted, ';'-separated */
      const char *l = canon;
      for (int i = 0; i < 5 && l; i++) { l = strchr(l, '\n'); if (l) l++; }
      if (!l) abort();
      const char *end = strchr(l, '\n');
      if (!end) abort();
      const char *prev = NULL; size_t plen = 0;
      for (const char *h = l; h < end;) {
        const char *semi = memchr(h, ';', (size_t)(end - h));
        size_t n = (size_t)((semi ? semi : end) - h);
        if (prev) { size_t m = plen < n ? plen : n; int c = memcmp(prev, h, m);
          if (c > 0 || (c == 0 && plen >= n)) abort(); }
        prev = h; plen = n;
        h += n + (semi ? 1 : 0);
        if (!semi) break;
      }
      free(canon);
    }
  }
  sigv4_thread_cleanup();
  rawreq_free(&rq);
  return 0;
}
