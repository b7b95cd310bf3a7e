/* libFuzzer harness: the element reader for AWS XML answers (util/xml_get.c), with the
 * same small-versus-large-buffer consistency checks as fuzz_json_get.c. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/xml_get.h"

static const char *const TAGS[] = {"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration",
                                   "Code", "Message", "RequestId", "Arn", "a"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const char *tag = TAGS[data[0] % (sizeof TAGS / sizeof *TAGS)];
  const char *xml = (const char *)data + 1;
  size_t len = size - 1;
  char small[8], big[1 << 16];
  int rs = xml_get(xml, len, tag, small, sizeof small);
  int rb = xml_get(xml, len, tag, big, sizeof big);
  if (rs != -1 && memchr(small, 0, sizeof small) == NULL) abort();
  if (rb == 0) {
    size_t n = strlen(big);
    if (n < sizeof small) { if (rs != 0 || strcmp(small, big) != 0) abort(); }
    else if (rs != XML_GET_TOO_LONG) abort();
  } else if (rb == -1 && rs != -1) abort();
  return 0;
}
