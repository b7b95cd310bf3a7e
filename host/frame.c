/* Control-socket framing; see frame.h. */
#include "frame.h"

#include <stdlib.h>
#include <string.h>

int fbuf_append(fbuf_t *b, const void *p, size_t n) {
  if (n > SIZE_MAX - b->len) return -1;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) return -1;
    b->data = d;
    b->cap = cap;
  }
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

void fbuf_consume(fbuf_t *b, size_t n) {
  if (n >= b->len) { b->len = 0; return; }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

void fbuf_free(fbuf_t *b) {
  free(b->data);
  *b = (fbuf_t){0};
}

int frame_put(fbuf_t *b, int type, const char *payload, size_t len) {
  if (len > FRAME_MAX_PAYLOAD) return -1;
  unsigned char h[FRAME_HEADER] = {(unsigned char)type, (unsigned char)(len >> 24),
                                   (unsigned char)(len >> 16), (unsigned char)(len >> 8),
                                   (unsigned char)len};
  if (fbuf_append(b, h, sizeof h) < 0) return -1;
  return fbuf_append(b, payload, len);
}

int frame_get(const fbuf_t *b, int *type, const char **payload, size_t *len) {
  if (b->len < FRAME_HEADER) return 0;
  const unsigned char *h = (const unsigned char *)b->data;
  size_t n = (size_t)h[1] << 24 | (size_t)h[2] << 16 | (size_t)h[3] << 8 | h[4];
  if (n > FRAME_MAX_PAYLOAD) return -1;
  if (b->len < FRAME_HEADER + n) return 0;
  *type = h[0];
  *payload = b->data + FRAME_HEADER;
  *len = n;
  return 1;
}
