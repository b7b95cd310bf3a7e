/* Tiny readers for the credential documents: top-level string members of a JSON object
 * (IMDS, ECS, credential_process) and element text in STS's XML. Nothing else. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/creds/internal.h"
#include "util/timefmt.h"

typedef struct {
  const char *p, *end;
} cur_t;

static void ws(cur_t *c) {
  while (c->p < c->end && isspace((unsigned char)*c->p)) c->p++;
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

static int put(char *out, size_t cap, size_t *n, char ch) {
  if (out && *n + 1 >= cap) return -1;
  if (out) out[*n] = ch;
  (*n)++;
  return 0;
}

static int put_utf8(char *out, size_t cap, size_t *n, unsigned cp) {
  if (cp < 0x80) return put(out, cap, n, (char)cp);
  if (cp < 0x800) return put(out, cap, n, (char)(0xC0 | (cp >> 6))) || put(out, cap, n, (char)(0x80 | (cp & 0x3F)));
  return put(out, cap, n, (char)(0xE0 | (cp >> 12))) || put(out, cap, n, (char)(0x80 | ((cp >> 6) & 0x3F))) ||
         put(out, cap, n, (char)(0x80 | (cp & 0x3F)));
}

static int escape(cur_t *c, char *out, size_t cap, size_t *n) {
  if (c->p >= c->end) return -1;
  char e = *c->p++;
  switch (e) {
    case 'b': return put(out, cap, n, '\b');
    case 'f': return put(out, cap, n, '\f');
    case 'n': return put(out, cap, n, '\n');
    case 'r': return put(out, cap, n, '\r');
    case 't': return put(out, cap, n, '\t');
    case 'u': {
      if (c->end - c->p < 4) return -1;
      unsigned cp = 0;
      for (int i = 0; i < 4; i++) {
        int h = hexval(c->p[i]);
        if (h < 0) return -1;
        cp = cp * 16 + (unsigned)h;
      }
      c->p += 4;
      return put_utf8(out, cap, n, cp);
    }
    default: return put(out, cap, n, e);
  }
}

/* Parses a string at c->p (on the quote); out may be NULL to skip. */
static int string(cur_t *c, char *out, size_t cap) {
  size_t n = 0;
  if (c->p >= c->end || *c->p != '"') return -1;
  c->p++;
  while (c->p < c->end && *c->p != '"') {
    int rc = *c->p == '\\' ? (c->p++, escape(c, out, cap, &n)) : put(out, cap, &n, *c->p++);
    if (rc != 0) return -1;
  }
  if (c->p >= c->end) return -1;
  c->p++;
  if (out) out[n] = 0;
  return 0;
}

/* Skips any value; nested containers by depth counting (strings skipped properly). */
static int skip_value(cur_t *c) {
  int depth = 0;
  do {
    ws(c);
    if (c->p >= c->end) return -1;
    char ch = *c->p;
    if (ch == '"') { if (string(c, NULL, 0) != 0) return -1; continue; }
    if (ch == '{' || ch == '[') depth++;
    else if (ch == '}' || ch == ']') { if (--depth < 0) return -1; }
    else if (depth == 0) {   /* scalar at top level */
      while (c->p < c->end && !strchr(",}] \t\r\n", *c->p)) c->p++;
      return 0;
    }
    c->p++;
  } while (depth > 0);
  return 0;
}

int creds_json_get(const char *json, size_t len, const char *key, char *out, size_t outlen) {
  cur_t c = {json, json + len};
  char k[64];
  ws(&c);
  if (c.p >= c.end || *c.p++ != '{') return -1;
  for (;;) {
    ws(&c);
    if (c.p < c.end && *c.p == '}') return -1;
    if (string(&c, k, sizeof k) != 0) return -1;
    ws(&c);
    if (c.p >= c.end || *c.p++ != ':') return -1;
    ws(&c);
    if (strcmp(k, key) == 0) {
      if (c.p < c.end && *c.p == '"') return string(&c, out, outlen);
      const char *start = c.p;
      if (skip_value(&c) != 0 || *start == '{' || *start == '[') return -1;
      size_t n = (size_t)(c.p - start);
      if (n == 0 || n >= outlen) return -1;
      memcpy(out, start, n);
      out[n] = 0;
      return 0;
    }
    if (skip_value(&c) != 0) return -1;
    ws(&c);
    if (c.p < c.end && *c.p == ',') { c.p++; continue; }
    return -1;
  }
}

static int xml_unescape(const char *s, size_t n, char *out, size_t cap) {
  static const struct { const char *ent; char ch; } ents[] = {
      {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    char ch = s[i];
    size_t adv = 1;
    if (ch == '&')
      for (size_t e = 0; e < sizeof ents / sizeof ents[0]; e++) {
        size_t el = strlen(ents[e].ent);
        if (n - i >= el && memcmp(s + i, ents[e].ent, el) == 0) { ch = ents[e].ch; adv = el; break; }
      }
    if (o + 1 >= cap) return -1;
    out[o++] = ch;
    i += adv;
  }
  out[o] = 0;
  return 0;
}

int creds_xml_get(const char *xml, size_t len, const char *tag, char *out, size_t outlen) {
  char open[80], close[80];
  int a = snprintf(open, sizeof open, "<%s>", tag), b = snprintf(close, sizeof close, "</%s>", tag);
  if (a < 0 || b < 0 || (size_t)a >= sizeof open || (size_t)b >= sizeof close) return -1;
  const char *s = memmem(xml, len, open, (size_t)a);
  if (!s) return -1;
  s += a;
  const char *e = memmem(s, len - (size_t)(s - xml), close, (size_t)b);
  if (!e) return -1;
  while (s < e && isspace((unsigned char)*s)) s++;
  while (e > s && isspace((unsigned char)e[-1])) e--;
  return xml_unescape(s, (size_t)(e - s), out, outlen);
}

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
  if (creds_json_get(json, len, "AccessKeyId", c->access_key_id, sizeof c->access_key_id) != 0 ||
      !c->access_key_id[0]) {
    snprintf(err, errlen, "no AccessKeyId string in the JSON");
    return -1;
  }
  if (creds_json_get(json, len, "SecretAccessKey", c->secret_access_key, sizeof c->secret_access_key) != 0 ||
      !c->secret_access_key[0]) {
    snprintf(err, errlen, "no SecretAccessKey string in the JSON");
    creds_wipe(c);
    return -1;
  }
  if (creds_json_get(json, len, token_key, c->session_token, sizeof c->session_token) != 0) c->session_token[0] = 0;
  if (creds_json_get(json, len, "Expiration", exp, sizeof exp) == 0) {
    if (creds_parse_time(exp, &c->expiration) != 0) {
      snprintf(err, errlen, "Expiration \"%s\" is not an RFC 3339 time", exp);
      creds_wipe(c);
      return -1;
    }
  }
  return 0;
}
