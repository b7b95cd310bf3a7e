/* Growable byte buffer; see buf.h. */
#include "core/buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int buf_append(buf_t *b, const void *p, size_t n) {
  if (n > SIZE_MAX / 2 - b->len) return -1;
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

void buf_consume(buf_t *b, size_t n) {
  if (n >= b->len) { b->len = 0; return; }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

void buf_free(buf_t *b) {
  free(b->data);
  *b = (buf_t){0};
}
