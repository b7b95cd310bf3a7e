/* sd_notify(3) for the daemon (see svc/notify.h). One notify socket per process, so the
 * state here is per process too. */
#include "svc/notify.h"

#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "core/log.h"

static struct {
  loop_t *loop;
  loop_timer_t timer;
  uint64_t interval_ms;
  uint64_t pings;
  int ready;
  int warned;
} N;

int notify_send(const char *state) {
  int rc = sd_notify(0, state);
  if (rc >= 0) return rc > 0;
  if (!N.warned) {
    N.warned = 1;
    log_msg(LOG_WARN, "notify.failed", "sd_notify to NOTIFY_SOCKET failed: %s (later failures are not logged)",
            strerror(-rc));
  }
  return -1;
}

/* "PREFIX\nSTATUS=status": a status line holds no newline (it would start a new assignment). */
static int send_with_status(const char *prefix, const char *status) {
  char buf[1024], line[512];
  size_t n = 0;
  for (const char *s = status ? status : ""; *s && n + 1 < sizeof line; s++) line[n++] = *s == '\n' ? ' ' : *s;
  line[n] = '\0';
  int len = snprintf(buf, sizeof buf, "%s%sSTATUS=%s", prefix, *prefix ? "\n" : "", line);
  if (len < 0 || (size_t)len >= sizeof buf) {
    log_msg(LOG_WARN, "notify.too_long", "a notify message is longer than %zu bytes; sent without its status",
            sizeof buf);
    return notify_send(*prefix ? prefix : "STATUS=");
  }
  return notify_send(buf);
}

int notify_ready(const char *status) {
  int rc = send_with_status("READY=1", status);
  if (rc > 0) N.ready = 1;
  return rc;
}

int notify_reloading(const char *status) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return -1;
  char prefix[96];
  snprintf(prefix, sizeof prefix, "RELOADING=1\nMONOTONIC_USEC=%llu",
           (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000ull);
  return send_with_status(prefix, status);
}

int notify_stopping(const char *status) { return send_with_status("STOPPING=1", status); }
int notify_status(const char *status) { return send_with_status("", status); }
int notify_was_ready(void) { return N.ready; }

static void on_ping(loop_t *loop, loop_timer_t *t, void *ud) {
  (void)ud;
  if (notify_send("WATCHDOG=1") > 0) N.pings++;
  if (loop_timer_start(loop, t, N.interval_ms) < 0)
    log_msg(LOG_ERROR, "notify.watchdog", "cannot re-arm the watchdog timer: %m (the service manager will restart us)");
}

int64_t notify_watchdog_start(loop_t *loop) {
  uint64_t usec = 0;
  int rc = sd_watchdog_enabled(0, &usec);
  if (rc <= 0 || usec == 0) return 0;
  if (N.loop) return (int64_t)(N.interval_ms * 1000);
  N.loop = loop;
  N.interval_ms = usec / 2000 ? usec / 2000 : 1;
  loop_timer_init(&N.timer, on_ping, NULL);
  if (notify_send("WATCHDOG=1") > 0) N.pings++;
  if (loop_timer_start(loop, &N.timer, N.interval_ms) < 0) {
    N.loop = NULL;
    return -1;
  }
  char iv[32], wd[32];
  snprintf(iv, sizeof iv, "%llu", (unsigned long long)N.interval_ms);
  snprintf(wd, sizeof wd, "%llu", (unsigned long long)(usec / 1000));
  log_field_t f[] = {{"watchdog_ms", wd, LOG_T_NUM}, {"ping_every_ms", iv, LOG_T_NUM}};
  log_fields(LOG_INFO, "notify.watchdog", f, 2);
  return (int64_t)(N.interval_ms * 1000);
}

void notify_watchdog_stop(void) {
  if (N.loop) loop_timer_stop(N.loop, &N.timer);
  N.loop = NULL;
}

uint64_t notify_watchdog_pings(void) { return N.pings; }
