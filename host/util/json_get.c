/* A small JSON field reader: the value of one top-level member of an object, for the
 * credential documents (IMDS, ECS, credential_process) and AWS JSON error bodies. It
 * walks the object properly (nested values and strings are skipped, escapes decoded),
 * so a key inside a nested object or a string is never mistaken for a member. */
#include "util/json_get.h"

#include <ctype.h>
#include <string.h>

#define GET_TOO_LONG JSON_GET_TOO_LONG

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

/* Appends ch; once out is full the rest is counted, not written (see string()). */
static int put(char *out, size_t cap, size_t *n, char ch) {
  if (out && *n + 1 < cap) out[*n] = ch;
  (*n)++;
  return 0;
}

static int put_utf8(char *out, size_t cap, size_t *n, unsigned cp) {
  if (cp < 0x80) return put(out, cap, n, (char)cp);
  if (cp < 0x800) return put(out, cap, n, (char)(0xC0 | (cp >> 6))) || put(out, cap, n, (char)(0x80 | (cp & 0x3F)));
  if (cp < 0x10000)
    return put(out, cap, n, (char)(0xE0 | (cp >> 12))) || put(out, cap, n, (char)(0x80 | ((cp >> 6) & 0x3F))) ||
           put(out, cap, n, (char)(0x80 | (cp & 0x3F)));
  return put(out, cap, n, (char)(0xF0 | (cp >> 18))) || put(out, cap, n, (char)(0x80 | ((cp >> 12) & 0x3F))) ||
         put(out, cap, n, (char)(0x80 | ((cp >> 6) & 0x3F))) || put(out, cap, n, (char)(0x80 | (cp & 0x3F)));
}

static int hex4(cur_t *c, unsigned *cp) {
  if (c->end - c->p < 4) return -1;
  *cp = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval(c->p[i]);
    if (h < 0) return -1;
    *cp = *cp * 16 + (unsigned)h;
  }
  c->p += 4;
  return 0;
}

#define HAS_NUL (-3) /* internal: never returned by json_get */

/* RFC 8259 escapes only. \u0000 gives HAS_NUL once the string is read on (a value or
 * key read out is a C string, which a NUL would cut; a string skipped may hold one), and
 * a lone UTF-16 surrogate is refused (it has no UTF-8 form); a pair becomes one code
 * point. */
static int escape(cur_t *c, char *out, size_t cap, size_t *n) {
  if (c->p >= c->end) return -1;
  char e = *c->p++;
  switch (e) {
    case '"': case '\\': case '/': return put(out, cap, n, e);
    case 'b': return put(out, cap, n, '\b');
    case 'f': return put(out, cap, n, '\f');
    case 'n': return put(out, cap, n, '\n');
    case 'r': return put(out, cap, n, '\r');
    case 't': return put(out, cap, n, '\t');
    case 'u': {
      unsigned cp, lo;
      if (hex4(c, &cp) != 0 || (cp >= 0xDC00 && cp <= 0xDFFF)) return -1;
      if (cp == 0) return HAS_NUL;
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u') return -1;
        c->p += 2;
        if (hex4(c, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) return -1;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      }
      return put_utf8(out, cap, n, cp);
    }
    default: return -1;
  }
}

/* Parses a string at c->p (on the quote); out may be NULL to skip. Returns 0, -1 (not
 * JSON), GET_TOO_LONG, or HAS_NUL: the string is well formed but holds \u0000, so it
 * cannot be read out (the cursor is past it all the same). */
static int string(cur_t *c, char *out, size_t cap) {
  size_t n = 0;
  int nul = 0;
  if (c->p >= c->end || *c->p != '"') return -1;
  c->p++;
  while (c->p < c->end && *c->p != '"') {
    if ((unsigned char)*c->p < 0x20) return -1; /* control characters must be escaped */
    int rc = *c->p == '\\' ? (c->p++, escape(c, out, cap, &n)) : put(out, cap, &n, *c->p++);
    if (rc == HAS_NUL) nul = 1;
    else if (rc != 0) return -1;
  }
  if (c->p >= c->end) return -1;
  c->p++;
  if (!out) return 0;
  if (nul) return HAS_NUL;
  out[n < cap ? n : cap - 1] = 0;
  return n < cap ? 0 : GET_TOO_LONG;
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

int json_get(const char *json, size_t len, const char *key, char *out, size_t outlen) {
  cur_t c = {json, json + len};
  char k[64];
  ws(&c);
  if (c.p >= c.end || *c.p++ != '{') return -1;
  for (;;) {
    ws(&c);
    if (c.p < c.end && *c.p == '}') return -1;
    int kr = string(&c, k, sizeof k);
    if (kr == -1) return -1;
    ws(&c);
    if (c.p >= c.end || *c.p++ != ':') return -1;
    ws(&c);
    /* a key over 63 bytes is no key we look for: its cut prefix must not match one */
    /* a key holding \u0000 is none either: no C string equals it */
    if (kr == 0 && strcmp(k, key) == 0) {
      if (c.p < c.end && *c.p == '"') {
        int vr = string(&c, out, outlen);
        return vr == HAS_NUL ? -1 : vr;
      }
      const char *start = c.p;
      if (skip_value(&c) != 0 || *start == '{' || *start == '[') return -1;
      size_t n = (size_t)(c.p - start);
      if (n == 0) return -1;
      if (n >= outlen) {
        memcpy(out, start, outlen - 1);
        out[outlen - 1] = 0;
        return GET_TOO_LONG;
      }
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
