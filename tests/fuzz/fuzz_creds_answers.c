/* libFuzzer harness: the answers of the credential sources beyond the bare JSON document
 * (aws/creds/document.c): STS AssumeRole* XML, credential_process output (Version 1),
 * IMDS role credentials (with their Code), and the IMDS text answers (role listing,
 * region). The first byte selects the answer. Checks: accepted credentials have a
 * non-empty key id and secret (the key id a run of the input's bytes when nothing is
 * escaped), every string stays inside its field, and a refusal says why; a first word
 * never crosses the stop set or a NUL. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aws/creds/internal.h"

static void check_creds(int rc, const creds_t *c, const char *why, size_t wcap, const char *in, size_t len) {
  if (rc != 0) {
    if (!memchr(why, 0, wcap) || !why[0]) abort();
    return;
  }
  if (!memchr(c->access_key_id, 0, sizeof c->access_key_id) ||
      !memchr(c->secret_access_key, 0, sizeof c->secret_access_key) ||
      !memchr(c->session_token, 0, sizeof c->session_token))
    abort();
  if (!c->access_key_id[0] || !c->secret_access_key[0]) abort();
  /* with no escapes in the input, the key id is a run of its bytes */
  if (!memchr(in, '&', len) && !memchr(in, '\\', len) && !memmem(in, len, c->access_key_id, strlen(c->access_key_id)))
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  /* the transfer layer hands over a NUL-terminated copy */
  size_t len = size - 1;
  char *in = malloc(len + 1);
  if (!in) return 0;
  memcpy(in, data + 1, len);
  in[len] = 0;
  creds_t c;
  char why[CREDS_ERR_MAX];
  memset(why, 'Z', sizeof why);
  int rc;
  switch (data[0] % 4) {
  case 0:
    rc = creds_from_sts_xml(in, len, &c, why, sizeof why);
    check_creds(rc, &c, why, sizeof why, in, len);
    break;
  case 1:
    rc = creds_from_process_json(in, len, &c, why, sizeof why);
    check_creds(rc, &c, why, sizeof why, in, len);
    break;
  case 2:
    rc = creds_from_imds_json(in, len, &c, why, sizeof why);
    check_creds(rc, &c, why, sizeof why, in, len);
    break;
  default: {
    size_t n = creds_first_word(in, len, "\r\n \t");
    if (n > len || memchr(in, 0, n) || strcspn(in, "\r\n \t") < n) abort();
    break;
  }
  }
  creds_wipe(&c);
  free(in);
  return 0;
}
