/* URL pieces: splitting "scheme://host[:port][/path][?query]" and form encoding.
 *
 * Form values are encoded with curl_easy_escape (RFC 3986: everything but A-Za-z0-9-._~
 * becomes %XX), the same set SigV4 signs. The signer (aws/sigv4.c) keeps its own encoder:
 * it decodes %XX and encodes again in one pass into its scratch buffer on the signing hot
 * path, which curl's allocate-per-call escape cannot do. */
#ifndef ROTATOR_URL_H
#define ROTATOR_URL_H
#include <stddef.h>

#include "core/buf.h"

#define URL_MAX 2048

typedef struct {
  const char *host;  /* host[:port], not NUL-terminated */
  size_t host_len;
  const char *path;  /* from the first '/' up to '?' or the end ("" when absent) */
  size_t path_len;
  const char *query; /* after '?', or NULL */
} url_parts_t;

/* Points out into url. 0, or -1 when there is no "://" or no host. */
int url_split(const char *url, url_parts_t *out);

/* Appends "name=value" (value percent-encoded), with a leading '&' when b is not empty.
 * b stays NUL-terminated. 0, or -1 out of memory or a value over INT_MAX bytes. */
int url_form_add(buf_t *b, const char *name, const char *value);

#endif
