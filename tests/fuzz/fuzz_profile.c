/* libFuzzer harness: ~/.aws/config and credentials files (aws/creds/profile.c). Both
 * dialects are parsed; every profile lookup of a few keys must stay inside the text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aws/creds/internal.h"

static const char *const PROFILES[] = {"default", "dev", "prod", ""};
static const char *const KEYS[] = {"region", "aws_access_key_id", "role_arn", "source_profile",
                                   "credential_process", "sso_session"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  for (int cfg = 0; cfg < 2; cfg++) {
    ini_file_t *f = ini_parse((const char *)data, size, cfg);
    if (!f) continue;
    for (size_t p = 0; p < sizeof PROFILES / sizeof *PROFILES; p++) {
      (void)ini_has_profile(f, PROFILES[p]);
      for (size_t k = 0; k < sizeof KEYS / sizeof *KEYS; k++) {
        const char *v = ini_get(f, PROFILES[p], KEYS[k]);
        if (v && strlen(v) > size) abort();
      }
    }
    ini_free(f);
  }
  return 0;
}
