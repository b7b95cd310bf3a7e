/* Asynchronous HTTP over libcurl's multi socket API, driven by the host loop (no thread
 * per request, no blocking call). Completions are always delivered from the loop, never
 * inside http_send(). TLS verification is always on. */
#ifndef ROTATOR_HTTP_H
#define ROTATOR_HTTP_H
#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"

typedef struct http_client http_client_t;

typedef struct {
  const char *method;             /* "GET", "POST", "PUT" ... */
  const char *url;
  const char *const *headers;     /* "Name: value" lines */
  size_t nheaders;
  const char *body;               /* may be NULL */
  size_t body_len;
  long connect_timeout_ms;        /* 0: client default */
  long timeout_ms;                /* total; 0: client default */
  size_t max_response_bytes;      /* 0: client default; larger bodies fail the request */
} http_request_t;

typedef struct {
  int status;                     /* HTTP status, or 0 when the transport failed */
  const char *error;              /* transport error text when status == 0, else NULL */
  int timed_out;                  /* the transport failure was a timeout */
  const char *body;               /* NUL-terminated for convenience; body_len is exact */
  size_t body_len;
  const char *headers;            /* raw response header block of the final response */
} http_response_t;

typedef void (*http_done_fn)(void *ud, const http_response_t *resp);

http_client_t *http_client_new(loop_t *loop);
void http_client_free(http_client_t *c);   /* pending requests are cancelled silently */

/* Start a request; the strings in req are copied. Returns a request id (> 0), or 0 if
 * it could not be started (done is then not called). */
uint64_t http_send(http_client_t *c, const http_request_t *req, http_done_fn done, void *ud);
int http_cancel(http_client_t *c, uint64_t id);   /* done is not called; 0 ok, -1 unknown */
size_t http_pending(const http_client_t *c);

/* Case-insensitive header lookup in resp->headers; copies the trimmed value into buf.
 * NULL when the header is absent, its value does not fit in len (never a cut value) or
 * holds a control character other than tab (a bare CR, NUL: not a valid field value). */
const char *http_header(const http_response_t *resp, const char *name, char *buf, size_t len);

#endif
