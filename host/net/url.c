/* URL splitting and form encoding; see url.h. */
#include "net/url.h"

#include <curl/curl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <string.h>

int url_split(const char *url, url_parts_t *out) {
  const char *p = strstr(url, "://");
  if (!p) return -1;
  p += 3;
  size_t hn = strcspn(p, "/?");
  if (hn == 0) return -1;
  out->host = p;
  out->host_len = hn;
  out->path = p + hn;
  out->path_len = strcspn(out->path, "?");
  out->query = out->path[out->path_len] == '?' ? out->path + out->path_len + 1 : NULL;
  return 0;
}

int url_form_add(buf_t *b, const char *name, const char *value) {
  size_t vl = strlen(value);
  if (vl > INT_MAX) return -1;
  char *enc = curl_easy_escape(NULL, value, (int)vl);
  if (!enc) return -1;
  int rc = (b->len && buf_append(b, "&", 1) < 0) || buf_append(b, name, strlen(name)) < 0 ||
           buf_append(b, "=", 1) < 0 || buf_append(b, enc, strlen(enc)) < 0 ||
           buf_append(b, "", 1) < 0;
  size_t n = strlen(enc);
  OPENSSL_cleanse(enc, n); /* the value may be a web identity token */
  curl_free(enc);
  if (rc) return -1;
  b->len--; /* keep the NUL outside len */
  return 0;
}
