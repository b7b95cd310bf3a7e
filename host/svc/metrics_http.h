/* The metrics and health listener: libmicrohttpd in external epoll mode on the host's
 * loop (its epoll fd watched by ours, MHD_run when it is readable or MHD_get_timeout says
 * so; no thread of its own). Off unless started; loopback addresses only unless the
 * caller allows any.
 *   GET /metrics  the registry (core/metrics.h) in the Prometheus text format 0.0.4,
 *                 after the running Lua state's collect hook refreshed its gauges
 *   GET /healthz  200 "ok": the loop answered
 *   GET /readyz   200 "ready", or 503 with the reason the running state's ready hook gives
 *                 (no state, no hook, a hook that fails: 503 as well)
 * The hooks are functions in the running state's registry under METRICS_HOOK_COLLECT and
 * METRICS_HOOK_READY (lua/lib/metrics.c sets them). */
#ifndef ROTATOR_METRICS_HTTP_H
#define ROTATOR_METRICS_HTTP_H
#include <stddef.h>

#include "core/host.h"

#define METRICS_HOOK_COLLECT "rotator.hook.metrics_collect"
#define METRICS_HOOK_READY "rotator.hook.metrics_ready"

/* Parses "HOST:PORT" ("127.0.0.1:9464", "[::1]:9464", "localhost:9464") and starts
 * listening. 0, or -1 with a message naming the address and what to do. The bound
 * address (with the real port when PORT was 0) is in metrics_http_address(). */
int metrics_http_start(host_t *h, const char *addr, int allow_any, char *err, size_t errlen);
const char *metrics_http_address(void);  /* "" when not listening */
void metrics_http_stop(void);

#endif
