/* Region resolution from settings: AWS_REGION, AWS_DEFAULT_REGION, then the profile's
 * `region` (IMDS placement/region is asked by aws/creds/chain.c when all of these are empty). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/creds/internal.h"

static int take(const char *v, char *out, size_t len) {
  if (!v || !*v) return -1;
  int n = snprintf(out, len, "%s", v);
  return n < 0 || (size_t)n >= len ? -1 : 0;
}

int region_from_settings(const char *profile_region, char *out, size_t len) {
  if (take(getenv("AWS_REGION"), out, len) == 0) return 0;
  if (take(getenv("AWS_DEFAULT_REGION"), out, len) == 0) return 0;
  return take(profile_region, out, len);
}

const char *region_missing_error(void) {
  return "no AWS region configured: set AWS_REGION (or AWS_DEFAULT_REGION), or `region` in the profile's "
         "section of the AWS config file (AWS_CONFIG_FILE, default ~/.aws/config)";
}
