/* Host lifecycle: signals and the graceful stop.
 * SIGHUP runs the Lua HUP hook (reload). SIGTERM/SIGINT begin a graceful stop: the TERM
 * hook runs (the engine stops taking work), then the loop keeps running until every hold
 * is released or the stop deadline passes, and the process exits 0. A second SIGTERM or
 * SIGINT during the drain exits at once with status 1. */
#include "core/host.h"

#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>

#include "core/log.h"
#include "lua/state.h"

void host_exit(host_t *h, int code) {
  h->exit_code = code;
  h->exit_requested = 1;
  loop_stop(h->loop);
}

void host_hold(host_t *h) { h->inflight++; }

/* Run the running state's hook for a signal; 0 if there was one. */
static int run_hook(host_t *h, const char *hook, const char *what) {
  if (!h->L) return -1;
  if (lua_getfield(h->L, LUA_REGISTRYINDEX, hook) != LUA_TFUNCTION) {
    lua_pop(h->L, 1);
    return -1;
  }
  lstate_callback(h->L, 0, what);
  return 0;
}

static void finish_stop(host_t *h, const char *how) {
  if (h->exit_requested) return; /* already finished, e.g. the stop hook released the last hold */
  char n[24];
  snprintf(n, sizeof n, "%u", h->inflight);
  log_field_t f[] = {{"how", how, LOG_T_STR}, {"abandoned", n, LOG_T_NUM}};
  log_fields(h->inflight ? LOG_WARN : LOG_INFO, "stop.done", f, 2);
  loop_timer_stop(h->loop, &h->stop_deadline);
  host_exit(h, 0);
}

void host_release(host_t *h) {
  if (h->inflight) h->inflight--;
  if (h->stopping && h->inflight == 0) finish_stop(h, "drained");
}

static void on_stop_deadline(loop_t *loop, loop_timer_t *t, void *ud) {
  (void)loop, (void)t;
  finish_stop(ud, "deadline");
}

void host_begin_stop(host_t *h, const char *why) {
  if (h->stopping) {
    log_msg(LOG_WARN, "stop.forced", "second %s during graceful stop: exiting now", why);
    host_exit(h, 1);
    return;
  }
  h->stopping = 1;
  host_reload_abort(h, "the daemon is stopping");
  char n[24], ms[24];
  snprintf(n, sizeof n, "%u", h->inflight);
  snprintf(ms, sizeof ms, "%llu", (unsigned long long)h->stop_timeout_ms);
  log_field_t f[] = {{"signal", why, LOG_T_STR}, {"inflight", n, LOG_T_NUM}, {"deadline_ms", ms, LOG_T_NUM}};
  log_fields(LOG_INFO, "stop.begin", f, 3);
  run_hook(h, HOST_HOOK_TERM, "stop hook");
  if (h->inflight == 0) { finish_stop(h, "idle"); return; }
  if (loop_timer_start(h->loop, &h->stop_deadline, h->stop_timeout_ms) < 0)
    finish_stop(h, "no-timer");
}

static void on_signal(loop_t *loop, int signo, void *ud) {
  (void)loop;
  host_t *h = ud;
  if (signo == SIGHUP) {
    log_msg(LOG_INFO, "signal.hup", "SIGHUP received");
    if (run_hook(h, HOST_HOOK_HUP, "reload hook") < 0)
      log_msg(LOG_WARN, "signal.hup", "this command does not reload: nothing changed");
  } else {
    host_begin_stop(h, signo == SIGTERM ? "SIGTERM" : "SIGINT");
  }
}

void host_init(host_t *h, loop_t *loop) {
  *h = (host_t){.loop = loop, .stop_timeout_ms = 30000};
  loop_timer_init(&h->stop_deadline, on_stop_deadline, h);
  host_reload_init(h);
}

int host_watch_signals(host_t *h) {
  signal(SIGPIPE, SIG_IGN); /* a closed socket is an error return, not a death */
  if (loop_on_signal(h->loop, SIGHUP, on_signal, h) < 0) return -1;
  if (loop_on_signal(h->loop, SIGTERM, on_signal, h) < 0) return -1;
  if (loop_on_signal(h->loop, SIGINT, on_signal, h) < 0) return -1;
  return 0;
}
