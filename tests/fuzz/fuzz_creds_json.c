/* libFuzzer harness: credential documents from credential_process, IMDS and ECS
 * (aws/creds/document.c), and the Expiration times in them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aws/creds/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const char *tok = (data[0] & 1) ? "Token" : "SessionToken";
  creds_t c;
  char err[256];
  memset(err, 'Z', sizeof err);
  if (creds_from_json((const char *)data + 1, size - 1, tok, &c, err, sizeof err) == 0)
    creds_wipe(&c);
  else if (memchr(err, 0, sizeof err) == NULL) abort();
  char t[64];
  size_t n = size - 1 < sizeof t - 1 ? size - 1 : sizeof t - 1;
  memcpy(t, data + 1, n);
  t[n] = 0;
  int64_t when;
  (void)creds_parse_time(t, &when);
  return 0;
}
