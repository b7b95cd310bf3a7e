/* Control-socket framing; see frame.h. */
#include "core/frame.h"

#include <stdlib.h>
#include <string.h>

int frame_put(buf_t *b, int type, const char *payload, size_t len) {
  if (len > FRAME_MAX_PAYLOAD) return -1;
  unsigned char h[FRAME_HEADER] = {(unsigned char)type, (unsigned char)(len >> 24),
                                   (unsigned char)(len >> 16), (unsigned char)(len >> 8),
                                   (unsigned char)len};
  if (buf_append(b, h, sizeof h) < 0) return -1;
  return buf_append(b, payload, len);
}

int frame_get(const buf_t *b, int *type, const char **payload, size_t *len) {
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
