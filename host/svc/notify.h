/* The service manager's notify protocol (sd_notify(3)): readiness, reload,
 * stop and status lines, and the watchdog. Every function is a no-op when the process
 * was not started with NOTIFY_SOCKET (not under systemd, or not Type=notify).
 *
 * The watchdog pings (WATCHDOG=1) come from a timer on the event loop at half of
 * WATCHDOG_USEC: they stop when the loop stops turning (a callback that blocks, a loop
 * that spins elsewhere), which is what the service manager's watchdog is there to see.
 * With no WATCHDOG_USEC no timer is armed, so an idle daemon makes no wakeups. */
#ifndef ROTATOR_NOTIFY_H
#define ROTATOR_NOTIFY_H
#include <stdint.h>

#include "core/loop.h"

/* Send one or more newline-separated KEY=VALUE assignments. 1 sent, 0 no socket,
 * -1 the send failed (logged once per kind of failure). */
int notify_send(const char *state);

int notify_ready(const char *status);      /* READY=1 + STATUS= */
int notify_reloading(const char *status);  /* RELOADING=1 + MONOTONIC_USEC= + STATUS= */
int notify_stopping(const char *status);   /* STOPPING=1 + STATUS= */
int notify_status(const char *status);     /* STATUS= only */
int notify_was_ready(void);                /* READY=1 was sent at least once */

/* Start the watchdog pings if the service manager asked for them (WATCHDOG_USEC, for
 * this pid). Returns the interval between pings in microseconds, 0 when there is no
 * watchdog, -1 when the timer cannot be armed. */
int64_t notify_watchdog_start(loop_t *loop);
void notify_watchdog_stop(void);
uint64_t notify_watchdog_pings(void);      /* pings sent so far */

#endif
