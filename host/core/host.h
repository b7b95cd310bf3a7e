/* The host context: one event loop, one Lua state, the paths scripts and policies load
 * from, and the graceful-stop bookkeeping. Modules reach it with host_from_lua(). */
#ifndef ROTATOR_HOST_H
#define ROTATOR_HOST_H
#include <lua.h>
#include <stdint.h>

#include "core/loop.h"

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
  /* Hot reload (lua/reload.c): the candidate state waits here while the running one quiesces. */
  lua_State *reload_next;
  int reload_handover; /* registry ref in reload_next: the handed-over work, copied */
  uint64_t reload_started_ms;
  loop_timer_t reload_swap;
  /* The candidate loads in slices (lua/reload.c): its loading thread, resumed from
   * reload_slice on the loop, yields back from the instruction hook every few ms. */
  lua_State *reload_thread;
  loop_timer_t reload_slice;
  /* AWS (lua/lib/aws.c): one client per process, created by the first state that loads
   * aws_core, so its credential provider, connection cache, retry quota and clock-skew
   * offset outlive reloads. Every call in flight has a route naming the state that owns
   * its completion; a reload can hand a call over from one state to the next. */
  struct aws_client *aws;
  struct laws_route *aws_routes;
} host_t;

/* Signal hooks live in each Lua state's registry under these keys, so a candidate state
 * being validated during a reload can never replace the running state's hooks. */
#define HOST_HOOK_HUP "rotator.hook.HUP"
#define HOST_HOOK_TERM "rotator.hook.TERM"

/* A zeroed host bound to loop, with its timers initialised: a loop_timer_t must be
 * initialised before any stop or start, and a zeroed one would look armed. */
void host_init(host_t *h, loop_t *loop);
host_t *host_from_lua(lua_State *L);
void host_exit(host_t *h, int code);       /* leave the loop with this exit code */
void host_hold(host_t *h);                 /* one more piece of in-flight work */
void host_release(host_t *h);              /* finishes one; may complete a graceful stop */
void host_begin_stop(host_t *h, const char *why);
/* Route HUP, TERM and INT through the loop. */
int host_watch_signals(host_t *h);
/* Hot reload: build a fresh state from scripts/ and policies/, validate it, let the
 * running state quiesce and hand over its in-flight work, then swap. On any failure the
 * running state keeps going and the error is logged. Returns 0 if a reload started. */
int host_reload(host_t *h, const char *why);
void host_reload_init(host_t *h);
void host_reload_cleanup(host_t *h);
/* A stop began: a reload still loading its candidate gives up (the old state is untouched). */
void host_reload_abort(host_t *h, const char *why);
/* After the last Lua state closed: frees the AWS client (calls still in flight are
 * cancelled silently) and their routes. */
void host_aws_close(host_t *h);

#endif
