/* libFuzzer harness: the top-level member reader for AWS JSON answers (util/json_get.c).
 * Checks: the output is always NUL-terminated inside the buffer, a value that fits is
 * the same in a small and a large buffer, and TOO_LONG is reported instead of cutting. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/json_get.h"

static const char *const KEYS[] = {"AccessKeyId", "SecretAccessKey", "Token", "Expiration",
                                   "__type", "message", "Message", "code", "x"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const char *key = KEYS[data[0] % (sizeof KEYS / sizeof *KEYS)];
  const char *json = (const char *)data + 1;
  size_t len = size - 1;
  char small[8], big[1 << 16];
  memset(small, 'Z', sizeof small);
  int rs = json_get(json, len, key, small, sizeof small);
  int rb = json_get(json, len, key, big, sizeof big);
  if (memchr(small, 0, sizeof small) == NULL && rs != -1) abort();
  if (rb == 0) {
    size_t n = strlen(big);
    if (n < sizeof small) { if (rs != 0 || strcmp(small, big) != 0) abort(); }
    else if (rs != JSON_GET_TOO_LONG) abort();
  } else if (rb == -1 && rs != -1) abort();
  return 0;
}
