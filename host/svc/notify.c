/* The service manager's notify protocol for the daemon (see svc/notify.h). One notify
 * socket per process, so the state here is per process too.
 *
 * The protocol is written here rather than called through libsystemd: it is one datagram
 * of KEY=VALUE lines to the AF_UNIX socket named by $NOTIFY_SOCKET, and systemd documents
 * the protocol itself (not its C wrapper) as the stable interface and recommends
 * re-implementing it (sd_notify(3), "Standalone Implementations"). Linking libsystemd for
 * it mapped libsystemd and the five libraries it pulls in (libgcrypt, libgpg-error, liblz4,
 * liblzma, libcap) into every process: about 0.9 MB of an idle daemon's RSS. */
#include "svc/notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

static struct {
  loop_t *loop;
  loop_timer_t timer;
  uint64_t interval_ms;
  uint64_t pings;
  int ready;
  int warned;
} N;

/* One datagram to $NOTIFY_SOCKET: a path, or "@name" for the abstract namespace. 1 sent,
 * 0 no socket configured, -errno on failure (sd_notify's convention). */
static int notify_datagram(const char *state) {
  const char *path = getenv("NOTIFY_SOCKET");
  if (!path || !*path) return 0;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  size_t plen = strlen(path);
  if ((path[0] != '/' && path[0] != '@') || plen >= sizeof sa.sun_path) return -EAFNOSUPPORT;
  memcpy(sa.sun_path, path, plen);
  if (path[0] == '@') sa.sun_path[0] = '\0';
  socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + (path[0] == '/'));
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  size_t len = strlen(state);
  ssize_t n;
  do n = sendto(fd, state, len, MSG_NOSIGNAL, (const struct sockaddr *)&sa, salen);
  while (n < 0 && errno == EINTR);
  int err = n < 0 ? errno : (size_t)n != len ? EMSGSIZE : 0;
  close(fd);
  return err ? -err : 1;
}

/* WATCHDOG_USEC for this process (WATCHDOG_PID, when set, names it): 1 and *usec, or 0. */
static int watchdog_usec(uint64_t *usec) {
  const char *s = getenv("WATCHDOG_USEC");
  if (!s || !*s) return 0;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v == 0 || s[0] == '-') return 0;
  const char *p = getenv("WATCHDOG_PID");
  if (p && *p) {
    errno = 0;
    long long pid = strtoll(p, &end, 10);
    if (errno || *end || pid != (long long)getpid()) return 0;
  }
  *usec = v;
  return 1;
}

int notify_send(const char *state) {
  int rc = notify_datagram(state);
  if (rc >= 0) return rc > 0;
  if (!N.warned) {
    N.warned = 1;
    log_msg(LOG_WARN, "notify.failed", "the notify datagram to NOTIFY_SOCKET failed: %s (later failures are not logged)",
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
  int rc = watchdog_usec(&usec);
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
