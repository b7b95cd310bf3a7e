/* A small XML element reader: the text of the first <tag>...</tag>, for STS responses
 * and AWS query-protocol error bodies. No attributes, namespaces or CDATA: the documents
 * it reads have none in the elements asked for, and an element holding markup is refused. */
#include "util/xml_get.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static int xml_unescape(const char *s, size_t n, char *out, size_t cap) {
  static const struct { const char *ent; char ch; } ents[] = {
      {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
  /* XML 1.0 text holds no NUL and no control characters but tab, LF and CR: refusing them
   * keeps a NUL from cutting the value short, whatever the size of out. A raw '<' is
   * markup (a child element, CDATA, a comment), not text: returning it would hand
   * "<![CDATA[x]]>" or "<B>..." over as the value. */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == '<') return -1;
  }
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    char ch = s[i];
    size_t adv = 1;
    if (ch == '&')
      for (size_t e = 0; e < sizeof ents / sizeof ents[0]; e++) {
        size_t el = strlen(ents[e].ent);
        if (n - i >= el && memcmp(s + i, ents[e].ent, el) == 0) { ch = ents[e].ch; adv = el; break; }
      }
    if (o + 1 >= cap) {
      out[o] = 0;
      return XML_GET_TOO_LONG;
    }
    out[o++] = ch;
    i += adv;
  }
  out[o] = 0;
  return 0;
}

int xml_get(const char *xml, size_t len, const char *tag, char *out, size_t outlen) {
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
