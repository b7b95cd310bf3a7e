/* Credential documents: the JSON form (IMDS, ECS, credential_process) and times in them. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/creds/internal.h"
#include "util/json_get.h"
#include "util/timefmt.h"

int creds_parse_time(const char *s, int64_t *out) {
  tf_time_t t;
  const char *why;
  if (tf_parse_rfc3339(s, strlen(s), &t, &why) != 0) return -1;
  *out = t.sec;
  return 0;
}

int creds_from_json(const char *json, size_t len, const char *token_key, creds_t *c, char *err, size_t errlen) {
  char exp[64];
  memset(c, 0, sizeof *c);
  if (json_get(json, len, "AccessKeyId", c->access_key_id, sizeof c->access_key_id) != 0 ||
      !c->access_key_id[0]) {
    snprintf(err, errlen, "no AccessKeyId string in the JSON");
    return -1;
  }
  if (json_get(json, len, "SecretAccessKey", c->secret_access_key, sizeof c->secret_access_key) != 0 ||
      !c->secret_access_key[0]) {
    snprintf(err, errlen, "no SecretAccessKey string in the JSON");
    creds_wipe(c);
    return -1;
  }
  int rc = json_get(json, len, token_key, c->session_token, sizeof c->session_token);
  if (rc == JSON_GET_TOO_LONG) {
    snprintf(err, errlen, "%s is longer than the %zu-byte limit for session tokens", token_key,
             sizeof c->session_token - 1);
    creds_wipe(c);
    return -1;
  }
  if (rc != 0) c->session_token[0] = 0;
  if (json_get(json, len, "Expiration", exp, sizeof exp) == 0) {
    if (creds_parse_time(exp, &c->expiration) != 0) {
      snprintf(err, errlen, "Expiration \"%s\" is not an RFC 3339 time", exp);
      creds_wipe(c);
      return -1;
    }
  }
  return 0;
}
