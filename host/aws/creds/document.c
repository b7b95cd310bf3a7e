/* Credential answers: the JSON documents of IMDS, ECS and credential_process, the STS
 * AssumeRole* XML, the text lines of IMDS, and the times in them. Pure functions of the
 * bytes received, so the fuzz harnesses (tests/fuzz/fuzz_creds_*.c) drive them directly. */
#include <ctype.h>
#include <stddef.h>
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

int creds_from_sts_xml(const char *xml, size_t len, creds_t *c, char *why, size_t wlen) {
  static const struct { const char *tag; size_t off, cap; } F[] = {
      {"AccessKeyId", offsetof(creds_t, access_key_id), CREDS_KEY_MAX},
      {"SecretAccessKey", offsetof(creds_t, secret_access_key), CREDS_KEY_MAX},
      {"SessionToken", offsetof(creds_t, session_token), CREDS_TOKEN_MAX}};
  char exp[64];
  memset(c, 0, sizeof *c);
  for (size_t i = 0; i < sizeof F / sizeof *F; i++) {
    int rc = xml_get(xml, len, F[i].tag, (char *)c + F[i].off, F[i].cap);
    if (rc == XML_GET_TOO_LONG) {
      snprintf(why, wlen, "its %s is longer than the %zu-byte limit", F[i].tag, F[i].cap - 1);
      creds_wipe(c);
      return -1;
    }
    if (rc != 0 || (i < 2 && !((char *)c + F[i].off)[0])) { /* the keys cannot be empty */
      snprintf(why, wlen, "it has no usable Credentials element (no %s)", F[i].tag);
      creds_wipe(c);
      return -1;
    }
  }
  if (xml_get(xml, len, "Expiration", exp, sizeof exp) != 0 || creds_parse_time(exp, &c->expiration) != 0) {
    snprintf(why, wlen, "it has no usable Credentials element (no RFC 3339 Expiration)");
    creds_wipe(c);
    return -1;
  }
  return 0;
}

int creds_from_process_json(const char *out, size_t len, creds_t *c, char *why, size_t wlen) {
  char ver[16], doc[CREDS_ERR_MAX];
  memset(c, 0, sizeof *c);
  if (json_get(out, len, "Version", ver, sizeof ver) != 0 || strcmp(ver, "1") != 0) {
    snprintf(why, wlen, "it printed no JSON object with \"Version\": 1");
    return -1;
  }
  if (creds_from_json(out, len, "SessionToken", c, doc, sizeof doc) != 0) {
    snprintf(why, wlen, "bad output: %s", doc);
    return -1;
  }
  return 0;
}

int creds_from_imds_json(const char *json, size_t len, creds_t *c, char *why, size_t wlen) {
  char code[64];
  memset(c, 0, sizeof *c);
  if (json_get(json, len, "Code", code, sizeof code) == 0 && strcmp(code, "Success") != 0) {
    snprintf(why, wlen, "Code %s", code);
    return -1;
  }
  return creds_from_json(json, len, "Token", c, why, wlen);
}

size_t creds_first_word(const char *text, size_t len, const char *stop) {
  size_t n = 0;
  while (n < len && text[n] && !strchr(stop, text[n])) n++;
  return n;
}
