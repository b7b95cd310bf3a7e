/* Asynchronous HTTP over libcurl's multi socket API on the host loop.
 *
 * One multi handle per client (its connection cache gives keep-alive). curl tells us which
 * sockets to watch (socket_cb → loop_watch/loop_unwatch) and when to call it back
 * (timer_cb → one loop_timer_t). Finished transfers are moved to a queue and delivered by
 * a zero-delay loop timer, so a completion is never reported inside http_send() nor
 * inside curl_multi_socket_action(). */
#include "net/http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/log.h"

#define HTTP_DEFAULT_CONNECT_MS 5000L
#define HTTP_DEFAULT_TIMEOUT_MS 30000L
#define HTTP_DEFAULT_MAX_BYTES ((size_t)16 << 20)
#define HTTP_MAX_HEADER_BYTES ((size_t)64 << 10)

typedef struct req {
  http_client_t *c;
  uint64_t id;
  CURL *easy;
  struct curl_slist *hdrs;
  char *body;            /* copy of the request body */
  buf_t resp, head;
  size_t max_bytes;
  int overflow;          /* body larger than max_bytes */
  int head_overflow;
  CURLcode result;
  http_done_fn done;
  void *ud;
  char errbuf[CURL_ERROR_SIZE];
  struct req *prev, *next; /* all requests of the client */
  int queued;            /* finished, waiting for delivery */
  struct req *qnext;
} req_t;

struct http_client {
  loop_t *loop;
  CURLM *multi;
  loop_timer_t curl_timer;  /* CURLMOPT_TIMERFUNCTION */
  loop_timer_t deliver;     /* runs queued completions on the next loop turn */
  req_t *reqs;
  req_t *qhead, *qtail;
  uint64_t next_id;
  size_t pending;
  int *fds;                 /* sockets we watch for curl (to unwatch on free) */
  size_t nfds, capfds;
};

static int curl_ready(void) {
  static int done;
  if (!done) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return -1;
    done = 1;
  }
  return 0;
}

/* Appends n bytes unless that takes b past max; b stays NUL-terminated (outside len). */
static int append_capped(buf_t *b, const char *p, size_t n, size_t max) {
  if (n > max || b->len > max - n) return -1;
  if (buf_append(b, p, n) < 0 || buf_append(b, "", 1) < 0) return -1;
  b->len--;
  return 0;
}

/* ---- fd bookkeeping ---- */

static int fd_add(http_client_t *c, int fd) {
  for (size_t i = 0; i < c->nfds; i++)
    if (c->fds[i] == fd) return 0;
  if (c->nfds == c->capfds) {
    size_t cap = c->capfds ? c->capfds * 2 : 8;
    int *n = realloc(c->fds, cap * sizeof *n);
    if (!n) return -1;
    c->fds = n;
    c->capfds = cap;
  }
  c->fds[c->nfds++] = fd;
  return 0;
}

static void fd_del(http_client_t *c, int fd) {
  for (size_t i = 0; i < c->nfds; i++) {
    if (c->fds[i] == fd) {
      c->fds[i] = c->fds[--c->nfds];
      return;
    }
  }
}

/* ---- completion queue ---- */

static void unlink_req(http_client_t *c, req_t *r) {
  if (r->prev) r->prev->next = r->next;
  else c->reqs = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
}

static void free_req(req_t *r) {
  if (r->easy) curl_easy_cleanup(r->easy);
  curl_slist_free_all(r->hdrs);
  free(r->body);
  buf_free(&r->resp);
  buf_free(&r->head);
  free(r);
}

static void deliver_cb(loop_t *loop, loop_timer_t *t, void *ud);

static void check_done(http_client_t *c) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(c->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    req_t *r = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
    CURLcode res = m->data.result;
    curl_multi_remove_handle(c->multi, m->easy_handle); /* m is invalid from here */
    if (!r) continue;
    r->result = res;
    r->queued = 1;
    if (c->qtail) c->qtail->qnext = r;
    else c->qhead = r;
    c->qtail = r;
  }
  /* Runs from the loop (a socket or timer callback), never inside http_send(): when the
   * delivery timer cannot be armed, deliver now rather than leave the queue waiting. */
  if (c->qhead && !loop_timer_armed(&c->deliver) && loop_timer_start(c->loop, &c->deliver, 0) < 0) {
    log_msg(LOG_WARN, "http.timer", "cannot arm the completion timer; delivering at once");
    deliver_cb(c->loop, &c->deliver, c);
  }
}

static void fill_response(req_t *r, http_response_t *out, char *err, size_t errlen) {
  long code = 0;
  memset(out, 0, sizeof *out);
  out->body = r->resp.data ? r->resp.data : "";
  out->body_len = r->resp.len;
  out->headers = r->head.data ? r->head.data : "";
  if (r->result == CURLE_OK) {
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    out->status = (int)code;
    return;
  }
  out->timed_out = r->result == CURLE_OPERATION_TIMEDOUT;
  if (r->overflow || r->result == CURLE_FILESIZE_EXCEEDED) {
    snprintf(err, errlen, "response larger than the %zu-byte limit", r->max_bytes);
  } else {
    snprintf(err, errlen, "%s%s%s", curl_easy_strerror(r->result), r->errbuf[0] ? ": " : "",
             r->errbuf);
  }
  out->error = err;
}

static void deliver_cb(loop_t *loop, loop_timer_t *t, void *ud) {
  (void)loop;
  (void)t;
  http_client_t *c = ud;
  /* Pop one at a time: a callback may cancel (and so unqueue) another finished request. */
  while (c->qhead) {
    req_t *r = c->qhead;
    c->qhead = r->qnext;
    if (!c->qhead) c->qtail = NULL;
    r->qnext = NULL;
    unlink_req(c, r);
    c->pending--;
    http_response_t resp;
    char err[CURL_ERROR_SIZE + 128];
    fill_response(r, &resp, err, sizeof err);
    if (r->done) r->done(r->ud, &resp);
    free_req(r);
  }
}

/* ---- curl callbacks ---- */

static void io_cb(loop_t *loop, int fd, int events, void *ud) {
  (void)loop;
  http_client_t *c = ud;
  int flags = 0, running = 0;
  if (events & LOOP_READ) flags |= CURL_CSELECT_IN;
  if (events & LOOP_WRITE) flags |= CURL_CSELECT_OUT;
  if (events & LOOP_ERROR) flags |= CURL_CSELECT_ERR;
  CURLMcode rc = curl_multi_socket_action(c->multi, fd, flags, &running);
  if (rc != CURLM_OK) log_msg(LOG_ERROR, "http.curl", "socket_action: %s", curl_multi_strerror(rc));
  check_done(c);
}

static void curl_timer_cb(loop_t *loop, loop_timer_t *t, void *ud) {
  (void)loop;
  (void)t;
  http_client_t *c = ud;
  int running = 0;
  CURLMcode rc = curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  if (rc != CURLM_OK) log_msg(LOG_ERROR, "http.curl", "socket_action: %s", curl_multi_strerror(rc));
  check_done(c);
}

static int socket_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
  (void)e;
  (void)socketp;
  http_client_t *c = userp;
  if (what == CURL_POLL_REMOVE) {
    loop_unwatch(c->loop, s); /* the fd may already be closed: fine */
    fd_del(c, s);
    return 0;
  }
  int ev = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) ev |= LOOP_READ;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) ev |= LOOP_WRITE;
  if (fd_add(c, s) < 0 || loop_watch(c->loop, s, ev, io_cb, c) < 0) {
    log_msg(LOG_ERROR, "http.watch", "cannot watch socket %d: %m", (int)s);
    return -1;
  }
  return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
  (void)multi;
  http_client_t *c = userp;
  if (timeout_ms < 0) {
    loop_timer_stop(c->loop, &c->curl_timer);
    return 0;
  }
  return loop_timer_start(c->loop, &c->curl_timer, (uint64_t)timeout_ms) < 0 ? -1 : 0;
}

static size_t write_cb(char *p, size_t size, size_t n, void *ud) {
  req_t *r = ud;
  size_t len = size * n;
  if (append_capped(&r->resp, p, len, r->max_bytes) < 0) {
    r->overflow = 1;
    return 0; /* makes curl fail the transfer with CURLE_WRITE_ERROR */
  }
  return len;
}

static size_t header_cb(char *p, size_t size, size_t n, void *ud) {
  req_t *r = ud;
  size_t len = size * n;
  if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) r->head.len = 0; /* a new (final?) response */
  if (append_capped(&r->head, p, len, HTTP_MAX_HEADER_BYTES) < 0) {
    r->head_overflow = 1;
    return 0;
  }
  return len;
}

/* ---- public API ---- */

http_client_t *http_client_new(loop_t *loop) {
  if (curl_ready() < 0) return NULL;
  http_client_t *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->loop = loop;
  c->next_id = 1;
  loop_timer_init(&c->curl_timer, curl_timer_cb, c);
  loop_timer_init(&c->deliver, deliver_cb, c);
  c->multi = curl_multi_init();
  if (!c->multi) {
    free(c);
    return NULL;
  }
  if (curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb) != CURLM_OK ||
      curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
      curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb) != CURLM_OK ||
      curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK) {
    curl_multi_cleanup(c->multi);
    free(c);
    return NULL;
  }
  return c;
}

static void drop_req(http_client_t *c, req_t *r) {
  if (!r->queued) curl_multi_remove_handle(c->multi, r->easy);
  unlink_req(c, r);
  c->pending--;
  free_req(r);
}

void http_client_free(http_client_t *c) {
  if (!c) return;
  c->qhead = c->qtail = NULL;
  while (c->reqs) drop_req(c, c->reqs);
  loop_timer_stop(c->loop, &c->deliver);
  curl_multi_cleanup(c->multi); /* closes cached connections */
  for (size_t i = 0; i < c->nfds; i++) loop_unwatch(c->loop, c->fds[i]);
  loop_timer_stop(c->loop, &c->curl_timer); /* after the cleanup, which may call timer_cb */
  free(c->fds);
  free(c);
}

#define SET(opt, val) \
  do { if (curl_easy_setopt(e, opt, val) != CURLE_OK) return -1; } while (0)

static int set_method_and_body(CURL *e, req_t *r, const http_request_t *req) {
  const char *m = req->method ? req->method : "GET";
  int has_body = req->body != NULL || strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 ||
                 strcmp(m, "PATCH") == 0;
  if (has_body) {
    r->body = malloc(req->body_len + 1);
    if (!r->body) return -1;
    if (req->body_len) memcpy(r->body, req->body, req->body_len);
    r->body[req->body_len] = '\0';
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    SET(CURLOPT_POSTFIELDS, r->body);
    if (strcmp(m, "POST") != 0) SET(CURLOPT_CUSTOMREQUEST, m);
  } else if (strcmp(m, "HEAD") == 0) {
    SET(CURLOPT_NOBODY, 1L);
  } else if (strcmp(m, "GET") == 0) {
    SET(CURLOPT_HTTPGET, 1L);
  } else {
    SET(CURLOPT_CUSTOMREQUEST, m);
  }
  return 0;
}

static int set_headers(req_t *r, const http_request_t *req) {
  struct curl_slist *l = NULL, *n;
  for (size_t i = 0; i < req->nheaders; i++) {
    if (!(n = curl_slist_append(l, req->headers[i]))) goto fail;
    l = n;
  }
  /* AWS wants no "Expect: 100-continue" round trip; curl adds it for large bodies. */
  if (!(n = curl_slist_append(l, "Expect:"))) goto fail;
  r->hdrs = n;
  return 0;
fail:
  curl_slist_free_all(l);
  return -1;
}

static int setup_easy(req_t *r, const http_request_t *req) {
  CURL *e = r->easy;
  long cto = req->connect_timeout_ms > 0 ? req->connect_timeout_ms : HTTP_DEFAULT_CONNECT_MS;
  long to = req->timeout_ms > 0 ? req->timeout_ms : HTTP_DEFAULT_TIMEOUT_MS;
  if (set_headers(r, req) < 0) return -1;
  SET(CURLOPT_URL, req->url);
  SET(CURLOPT_PRIVATE, (char *)r);
  SET(CURLOPT_ERRORBUFFER, r->errbuf);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_SSL_VERIFYPEER, 1L);
  SET(CURLOPT_SSL_VERIFYHOST, 2L);
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_CONNECTTIMEOUT_MS, cto);
  SET(CURLOPT_TIMEOUT_MS, to);
  SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_bytes);
  SET(CURLOPT_HTTPHEADER, r->hdrs);
  SET(CURLOPT_WRITEFUNCTION, write_cb);
  SET(CURLOPT_WRITEDATA, r);
  SET(CURLOPT_HEADERFUNCTION, header_cb);
  SET(CURLOPT_HEADERDATA, r);
  SET(CURLOPT_ACCEPT_ENCODING, ""); /* any encoding curl can decode */
  return set_method_and_body(e, r, req);
}

uint64_t http_send(http_client_t *c, const http_request_t *req, http_done_fn done, void *ud) {
  if (!c || !req || !req->url) return 0;
  req_t *r = calloc(1, sizeof *r);
  if (!r) return 0;
  r->c = c;
  r->done = done;
  r->ud = ud;
  r->max_bytes = req->max_response_bytes ? req->max_response_bytes : HTTP_DEFAULT_MAX_BYTES;
  r->easy = curl_easy_init();
  if (!r->easy || setup_easy(r, req) < 0 || curl_multi_add_handle(c->multi, r->easy) != CURLM_OK) {
    free_req(r);
    return 0;
  }
  r->id = c->next_id++;
  r->next = c->reqs;
  if (c->reqs) c->reqs->prev = r;
  c->reqs = r;
  c->pending++;
  return r->id;
}

int http_cancel(http_client_t *c, uint64_t id) {
  if (!c) return -1;
  for (req_t *r = c->reqs; r; r = r->next) {
    if (r->id != id) continue;
    if (r->queued) { /* take it out of the delivery queue */
      req_t **pp = &c->qhead, *prev = NULL;
      while (*pp && *pp != r) { prev = *pp; pp = &(*pp)->qnext; }
      if (*pp) {
        *pp = r->qnext;
        if (c->qtail == r) c->qtail = prev;
      }
    }
    drop_req(c, r);
    return 0;
  }
  return -1;
}

size_t http_pending(const http_client_t *c) { return c ? c->pending : 0; }

const char *http_header(const http_response_t *resp, const char *name, char *buf, size_t len) {
  if (!resp || !resp->headers || !name || !buf || len == 0) return NULL;
  size_t nl = strlen(name);
  const char *p = resp->headers;
  while (*p) {
    const char *eol = strchr(p, '\n');
    size_t ll = eol ? (size_t)(eol - p) : strlen(p);
    if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      const char *v = p + nl + 1, *end = p + ll;
      while (v < end && (*v == ' ' || *v == '\t')) v++;
      while (end > v && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t')) end--;
      size_t vl = (size_t)(end - v);
      if (vl >= len) return NULL; /* does not fit: no value rather than a cut one */
      for (const char *q = v; q < end; q++) /* a bare CR or other control byte (RFC 9110 5.5) */
        if ((unsigned char)*q < 0x20 && *q != '\t') return NULL;
      memcpy(buf, v, vl);
      buf[vl] = '\0';
      return buf;
    }
    if (!eol) break;
    p = eol + 1;
  }
  return NULL;
}
