/* A growable byte buffer: partial socket reads, queued writes, encoder output. */
#ifndef ROTATOR_BUF_H
#define ROTATOR_BUF_H
#include <stddef.h>

typedef struct {
  char *data;
  size_t len, cap;
} buf_t;

int buf_append(buf_t *b, const void *p, size_t n);   /* 0, or -1 out of memory */
void buf_consume(buf_t *b, size_t n);                 /* drop n bytes from the front */
void buf_free(buf_t *b);

#endif
