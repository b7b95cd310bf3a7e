/* The metrics and health listener (see metrics_http.h). One per process. */
#include "svc/metrics_http.h"

#include <arpa/inet.h>
#include <lauxlib.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"
#include "lua/state.h"
#include "util/dl.h"

#define CONNECTION_TIMEOUT_S 10u
#define CONNECTION_LIMIT 32u

/* libmicrohttpd is opened when --metrics-listen asks for the listener (util/dl.h), not
 * linked: a daemon without the option maps none of it. Soname of Debian's libmicrohttpd12. */
#define MHD_SONAME "libmicrohttpd.so.12"
static struct {
  __typeof__(&MHD_add_response_header) add_response_header;
  __typeof__(&MHD_create_response_from_buffer) create_response_from_buffer;
  __typeof__(&MHD_destroy_response) destroy_response;
  __typeof__(&MHD_get_daemon_info) get_daemon_info;
  __typeof__(&MHD_get_timeout) get_timeout;
  __typeof__(&MHD_queue_response) queue_response;
  __typeof__(&MHD_run) run;
  __typeof__(&MHD_start_daemon) start_daemon;
  __typeof__(&MHD_stop_daemon) stop_daemon;
} mhd;

static int mhd_load(char *err, size_t errlen) {
  if (mhd.start_daemon) return 0;
  const dl_sym_t syms[] = {
      {"MHD_add_response_header", (void **)&mhd.add_response_header},
      {"MHD_create_response_from_buffer", (void **)&mhd.create_response_from_buffer},
      {"MHD_destroy_response", (void **)&mhd.destroy_response},
      {"MHD_get_daemon_info", (void **)&mhd.get_daemon_info},
      {"MHD_get_timeout", (void **)&mhd.get_timeout},
      {"MHD_queue_response", (void **)&mhd.queue_response},
      {"MHD_run", (void **)&mhd.run},
      {"MHD_start_daemon", (void **)&mhd.start_daemon},
      {"MHD_stop_daemon", (void **)&mhd.stop_daemon},
  };
  char why[256];
  if (dl_load(MHD_SONAME, syms, sizeof syms / sizeof syms[0], why, sizeof why) == 0) return 0;
  snprintf(err, errlen, "--metrics-listen: %s; install libmicrohttpd12, or run without --metrics-listen", why);
  return -1;
}

static struct {
  host_t *h;
  struct MHD_Daemon *d;
  int epfd;
  loop_timer_t timer;
  char address[80];
} S = {.epfd = -1};

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
  log_kv_t kv[] = {{"error", msg}};
  log_event(LOG_WARN, "metrics.http", kv, 1);
}

/* ---- responses ---- */

/* For HEAD, MHD sends the headers (Content-Length included) and not the body. */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type, const char *body,
                             size_t len) {
  struct MHD_Response *r = mhd.create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!r) return MHD_NO;
  enum MHD_Result ok = mhd.add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  if (ok == MHD_YES) ok = mhd.add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if (ok == MHD_YES && status == MHD_HTTP_METHOD_NOT_ALLOWED) ok = mhd.add_response_header(r, "Allow", "GET, HEAD");
  if (ok == MHD_YES) ok = mhd.queue_response(c, status, r);
  mhd.destroy_response(r);
  return ok;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *text) {
  return reply(c, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* Runs the running state's hook `key`; the hook's results stay on the stack (nres of them).
 * 0 ok, -1 no state or no hook, -2 the hook raised (logged with its traceback). */
static int run_hook(const char *key, int nres) {
  lua_State *L = S.h ? S.h->L : NULL;
  if (!L) return -1;
  if (lua_getfield(L, LUA_REGISTRYINDEX, key) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    return -1;
  }
  if (lstate_pcall(L, 0, nres) != LUA_OK) {
    log_kv_t kv[] = {{"hook", key}, {"error", lua_isstring(L, -1) ? lua_tostring(L, -1) : "(not a string)"}};
    log_event(LOG_ERROR, "metrics.hook_failed", kv, 2);
    lua_pop(L, 1);
    return -2;
  }
  return 0;
}

static enum MHD_Result serve_metrics(struct MHD_Connection *c) {
  run_hook(METRICS_HOOK_COLLECT, 0); /* a failing one is logged; the registry is served as it is */
  buf_t b = {0};
  if (metrics_render(&b) < 0) {
    buf_free(&b);
    return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory rendering the metrics\n");
  }
  enum MHD_Result rc = reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", b.data ? b.data : "",
                             b.len);
  buf_free(&b);
  return rc;
}

static enum MHD_Result not_ready(struct MHD_Connection *c, const char *why) {
  buf_t b = {0};
  const char *pre = "not ready: ";
  if (buf_append(&b, pre, strlen(pre)) || buf_append(&b, why, strlen(why)) || buf_append(&b, "\n", 1)) {
    buf_free(&b);
    return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready: out of memory\n");
  }
  enum MHD_Result rc = reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", b.data, b.len);
  buf_free(&b);
  return rc;
}

static enum MHD_Result serve_ready(struct MHD_Connection *c) {
  if (S.h && S.h->stopping) return not_ready(c, "stopping");
  int rc = run_hook(METRICS_HOOK_READY, 2);
  if (rc == -1) return not_ready(c, "the daemon is not started");
  if (rc == -2) return not_ready(c, "the readiness check failed (log: event=metrics.hook_failed)");
  lua_State *L = S.h->L;
  enum MHD_Result res;
  if (lua_toboolean(L, -2)) res = reply_text(c, MHD_HTTP_OK, "ready\n");
  else res = not_ready(c, lua_isstring(L, -1) ? lua_tostring(L, -1) : "no reason given");
  lua_pop(L, 2);
  return res;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_len, void **req) {
  (void)cls, (void)version, (void)upload, (void)req;
  if (*upload_len) return MHD_NO; /* no endpoint takes a body */
  if (strcmp(method, MHD_HTTP_METHOD_HEAD) != 0 && strcmp(method, MHD_HTTP_METHOD_GET) != 0)
    return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
  if (strcmp(url, "/metrics") == 0) return serve_metrics(c);
  if (strcmp(url, "/healthz") == 0) return reply_text(c, MHD_HTTP_OK, "ok\n");
  if (strcmp(url, "/readyz") == 0) return serve_ready(c);
  return reply_text(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics, /healthz or /readyz\n");
}

/* ---- on the loop ---- */

/* MHD says how long it may wait at most; no timeout (no connection open): no timer. */
static void rearm(void) {
  MHD_UNSIGNED_LONG_LONG ms;
  if (mhd.get_timeout(S.d, &ms) != MHD_YES) {
    loop_timer_stop(S.h->loop, &S.timer);
    return;
  }
  if (loop_timer_start(S.h->loop, &S.timer, (uint64_t)ms) < 0)
    log_msg(LOG_ERROR, "metrics.timer", "cannot arm the listener's timer: out of memory");
}

static void run_mhd(void) {
  if (mhd.run(S.d) != MHD_YES) log_msg(LOG_ERROR, "metrics.http", "MHD_run failed");
  rearm();
}

static void on_epoll(loop_t *loop, int fd, int events, void *ud) {
  (void)loop, (void)fd, (void)events, (void)ud;
  run_mhd();
}

static void on_timer(loop_t *loop, loop_timer_t *t, void *ud) {
  (void)loop, (void)t, (void)ud;
  run_mhd();
}

/* ---- the address ---- */

typedef union {
  struct sockaddr sa;
  struct sockaddr_in in4;
  struct sockaddr_in6 in6;
} addr_t;

static int parse_port(const char *s, uint16_t *port) {
  char *end;
  long p = strtol(s, &end, 10);
  if (!*s || *end || p < 0 || p > 65535) return -1;
  *port = (uint16_t)p;
  return 0;
}

/* 0, or -1 with err. *loopback tells whether the address is a loopback one. */
static int parse_addr(const char *addr, addr_t *a, int *loopback, char *err, size_t errlen) {
  char host[64];
  const char *colon = strrchr(addr, ':');
  size_t hl = colon ? (size_t)(colon - addr) : 0;
  uint16_t port;
  if (!colon || hl == 0 || hl >= sizeof host || parse_port(colon + 1, &port) < 0) {
    snprintf(err, errlen, "--metrics-listen '%s' is not HOST:PORT (e.g. 127.0.0.1:9464 or [::1]:9464)", addr);
    return -1;
  }
  memcpy(host, addr, hl);
  host[hl] = '\0';
  memset(a, 0, sizeof *a);
  if (strcmp(host, "localhost") == 0) snprintf(host, sizeof host, "127.0.0.1");
  if (host[0] == '[' && host[hl - 1] == ']') {
    host[hl - 1] = '\0';
    if (inet_pton(AF_INET6, host + 1, &a->in6.sin6_addr) != 1) goto bad;
    a->in6.sin6_family = AF_INET6;
    a->in6.sin6_port = htons(port);
    *loopback = IN6_IS_ADDR_LOOPBACK(&a->in6.sin6_addr);
    return 0;
  }
  if (inet_pton(AF_INET, host, &a->in4.sin_addr) != 1) goto bad;
  a->in4.sin_family = AF_INET;
  a->in4.sin_port = htons(port);
  *loopback = (ntohl(a->in4.sin_addr.s_addr) >> 24) == 127;
  return 0;
bad:
  snprintf(err, errlen, "--metrics-listen '%s': '%s' is not an IP address (IPv6 goes in brackets: [::1]:9464)",
           addr, host);
  return -1;
}

static void describe(const addr_t *a, uint16_t port) {
  char ip[INET6_ADDRSTRLEN] = "";
  if (a->sa.sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &a->in6.sin6_addr, ip, sizeof ip);
    snprintf(S.address, sizeof S.address, "[%s]:%u", ip, port);
  } else {
    inet_ntop(AF_INET, &a->in4.sin_addr, ip, sizeof ip);
    snprintf(S.address, sizeof S.address, "%s:%u", ip, port);
  }
}

/* ---- start and stop ---- */

static int watch_daemon(char *err, size_t errlen) {
  const union MHD_DaemonInfo *info = mhd.get_daemon_info(S.d, MHD_DAEMON_INFO_EPOLL_FD);
  S.epfd = info ? info->epoll_fd : -1;
  if (S.epfd < 0 || loop_watch(S.h->loop, S.epfd, LOOP_READ, on_epoll, NULL) < 0) {
    snprintf(err, errlen, "--metrics-listen: cannot watch the listener's epoll fd");
    return -1;
  }
  return 0;
}

int metrics_http_start(host_t *h, const char *addr, int allow_any, char *err, size_t errlen) {
  addr_t a;
  int loopback = 0;
  if (S.d) {
    snprintf(err, errlen, "--metrics-listen: already listening on %s", S.address);
    return -1;
  }
  if (parse_addr(addr, &a, &loopback, err, errlen) < 0) return -1;
  if (!loopback && !allow_any) {
    snprintf(err, errlen, "--metrics-listen %s is not a loopback address: the endpoint has no authentication; "
             "add --metrics-listen-any to expose it anyway, or listen on 127.0.0.1", addr);
    return -1;
  }
  if (mhd_load(err, errlen) < 0) return -1;
  unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | (a.sa.sa_family == AF_INET6 ? MHD_USE_IPv6 : 0);
  S.h = h;
  S.d = mhd.start_daemon(flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, &a.sa,
                         MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_CONNECTION_TIMEOUT,
                         CONNECTION_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT, CONNECTION_LIMIT, MHD_OPTION_END);
  if (!S.d) {
    snprintf(err, errlen, "--metrics-listen %s: cannot listen (address in use, or not on this host?)", addr);
    return -1;
  }
  loop_timer_init(&S.timer, on_timer, NULL);
  if (watch_daemon(err, errlen) < 0) {
    metrics_http_stop();
    return -1;
  }
  const union MHD_DaemonInfo *pi = mhd.get_daemon_info(S.d, MHD_DAEMON_INFO_BIND_PORT);
  describe(&a, pi ? pi->port : ntohs(a.sa.sa_family == AF_INET6 ? a.in6.sin6_port : a.in4.sin_port));
  rearm();
  return 0;
}

const char *metrics_http_address(void) { return S.d ? S.address : ""; }

void metrics_http_stop(void) {
  if (!S.d) return;
  if (S.epfd >= 0) loop_unwatch(S.h->loop, S.epfd);
  loop_timer_stop(S.h->loop, &S.timer);
  mhd.stop_daemon(S.d);
  S.d = NULL;
  S.epfd = -1;
  S.address[0] = '\0';
}
