/* The host context: one event loop, one Lua state, the paths scripts and policies load
 * from, and the graceful-stop bookkeeping. Modules reach it with host_from_lua(). */
#ifndef ROTATOR_HOST_H
#define ROTATOR_HOST_H
#include <lua.h>
#include <stdint.h>

#include "loop.h"

typedef struct host {
  loop_t *loop;
  lua_State *L;
  const char *scripts_dir;
  const char *policies_dir;
  const char *state_dir;
  int exit_code;
  int exit_requested;    /* host.exit() was called: stop the loop and return exit_code */
  int stopping;          /* SIGTERM/SIGINT seen: take no new work, drain in-flight */
  unsigned inflight;     /* holds taken by in-flight work (HTTP requests, workflows) */
  uint64_t stop_timeout_ms;
  loop_timer_t stop_deadline;
  int hook_refs[3];      /* Lua callbacks for HUP, TERM, and stop-drained; LUA_NOREF if none */
} host_t;

enum { HOST_HOOK_HUP, HOST_HOOK_TERM, HOST_HOOK_DRAINED };

host_t *host_from_lua(lua_State *L);
void host_exit(host_t *h, int code);       /* leave the loop with this exit code */
void host_hold(host_t *h);                 /* one more piece of in-flight work */
void host_release(host_t *h);              /* finishes one; may complete a graceful stop */
void host_begin_stop(host_t *h, const char *why);
/* Route HUP, TERM and INT through the loop and prepare the stop-deadline timer; call
 * once, before the first host_begin_stop(). */
int host_watch_signals(host_t *h);

#endif
