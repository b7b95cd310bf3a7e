/* Hot reload (after rspamd's reread_config): build a new Lua state, validate, swap.
 *
 *   1. A fresh state loads the engine (from the bytecode kept by the previous reload where
 *      a script did not change: lua/chunkcache.c) and runs cli.reload_prepare(): every script and
 *      policy loads and validates, exactly as `rotator check`. Failure: the candidate is
 *      closed, "reload.failed ... configuration not changed" is logged, nothing else moves.
 *      The policies load in a coroutine of the candidate, resumed from a loop timer: the
 *      instruction hook (lua/bound.c) yields it back to the loop every RELOAD_SLICE_MS, so
 *      the running state keeps serving while a slow policy loads, and a looping one fails
 *      on its instruction budget. The candidate is inert until adopted: the timers it
 *      arms wait (lib/timer.c), lstate_adopted() starts them at the swap.
 *   2. The running state runs cli.reload_quiesce(done): it starts no new step, lets the
 *      AWS calls in flight finish (their results are recorded in the workflow documents),
 *      then calls done(handover), a table with the in-flight workflows' documents. It is
 *      copied straight into the candidate (lua/transfer.c): no JSON text in between.
 *   3. On the next loop turn (outside any Lua call) the candidate runs
 *      cli.reload_adopt(handover), re-arming every workflow where it stood, and becomes
 *      the running state; the old one is closed (its timers die with it).
 * A second SIGHUP while a reload is under way is logged and ignored. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/host.h"
#include "core/log.h"
#include "lua/bound.h"
#include "lua/chunkcache.h"
#include "lua/state.h"
#include "lua/transfer.h"
#include "svc/notify.h"

#define RELOAD_SLICE_MS 5

static const char THREAD_KEY = 't'; /* the candidate's registry: its loading thread */

/* Call cli.<fn> in L with nargs already pushed; returns 0 and leaves nres results, or -1
 * with the error message copied into err. */
static int call_cli(lua_State *L, const char *fn, int nargs, int nres, char *err, size_t len) {
  if (lstate_require(L, "cli") != 0) goto fail;
  lua_getfield(L, -1, fn);
  lua_remove(L, -2);
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 1 + nargs);
    snprintf(err, len, "the engine has no cli.%s: this command cannot reload", fn);
    return -1;
  }
  lua_insert(L, -1 - nargs);
  if (lstate_pcall(L, nargs, nres) != LUA_OK) goto fail;
  return 0;
fail:
  snprintf(err, len, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "unknown error");
  lua_pop(L, 1);
  return -1;
}

static void log_failed(const char *stage, const char *err) {
  log_kv_t kv[] = {{"stage", stage}, {"error", err}, {"result", "configuration not changed"}};
  log_event(LOG_ERROR, "reload.failed", kv, 3);
}

/* Tell the running state how the reload went (cli.reload_report is optional). */
static void report(lua_State *L, int ok, const char *info) {
  char err[256];
  lua_pushboolean(L, ok);
  lua_pushstring(L, info);
  if (call_cli(L, "reload_report", 2, 0, err, sizeof err) < 0 && !strstr(err, "no cli.reload_report"))
    log_msg(LOG_WARN, "reload.report", "%s", err);
}

static void swap(loop_t *loop, loop_timer_t *t, void *ud);
static void on_slice(loop_t *loop, loop_timer_t *t, void *ud);

void host_reload_init(host_t *h) {
  h->reload_handover = LUA_NOREF;
  loop_timer_init(&h->reload_swap, swap, h);
  loop_timer_init(&h->reload_slice, on_slice, h);
}

void host_reload_cleanup(host_t *h) {
  loop_timer_stop(h->loop, &h->reload_swap);
  loop_timer_stop(h->loop, &h->reload_slice);
  bound_set_slice(NULL, 0);
  h->reload_thread = NULL;
  if (h->reload_next) lua_close(h->reload_next); /* the handover copy goes with it */
  h->reload_next = NULL;
  h->reload_handover = LUA_NOREF;
}

/* The service manager hears the end of every reload, as it heard its start. A state that
 * never reported ready (still starting) reports nothing. */
static void notify_reload_end(int ok, const char *info) {
  if (!notify_was_ready()) return;
  char status[320];
  if (ok) snprintf(status, sizeof status, "serving; reload ok in %s ms", info);
  else snprintf(status, sizeof status, "serving the previous policies; reload failed: %.250s", info);
  notify_ready(status);
}

static void prepare_failed(host_t *h, const char *stage, const char *err) {
  log_failed(stage, err);
  notify_reload_end(0, err);
  if (h->L) report(h->L, 0, err);
  host_reload_cleanup(h);
}

void host_reload_abort(host_t *h, const char *why) {
  if (h->reload_thread) prepare_failed(h, "prepare", why);
}

static void start_quiesce(host_t *h);

/* Step 1, one slice: resume the candidate's loading thread until it finishes or the
 * hook yields it back (its slice is over). */
static void on_slice(loop_t *loop, loop_timer_t *t, void *ud) {
  host_t *h = ud;
  lua_State *co = h->reload_thread;
  char err[4096];
  int nres = 0;
  bound_set_slice(co, loop_now_ms() + RELOAD_SLICE_MS);
  int st = lua_resume(co, NULL, 0, &nres);
  bound_set_slice(NULL, 0);
  if (st == LUA_YIELD) {
    lua_pop(co, nres);
    if (nres == 0 && loop_timer_start(loop, t, 0) == 0) return;
    prepare_failed(h, "prepare", nres ? "cli.reload_prepare yielded: the candidate must load without waiting"
                                      : "cannot schedule the next loading slice");
    return;
  }
  if (st != LUA_OK) {
    snprintf(err, sizeof err, "%s", lua_tostring(co, -1) ? lua_tostring(co, -1) : "unknown error");
    prepare_failed(h, "prepare", err);
    return;
  }
  if (nres < 1 || !lua_toboolean(co, -nres)) {
    snprintf(err, sizeof err, "%s", nres >= 2 && lua_isstring(co, 1 - nres) ? lua_tostring(co, 1 - nres) : "validation failed");
    prepare_failed(h, "validate", err);
    return;
  }
  lua_pop(co, nres);
  h->reload_thread = NULL;
  lua_pushnil(h->reload_next);
  lua_rawsetp(h->reload_next, LUA_REGISTRYINDEX, &THREAD_KEY);
  start_quiesce(h);
}

/* Step 1's start: a candidate state with the engine loaded and a thread that will run
 * cli.reload_prepare() in slices; 0, or -1 (logged) when it cannot even start. */
static int prepare(host_t *h) {
  char err[4096];
  lua_State *L2 = lstate_new(h);
  if (!L2) { log_failed("prepare", "out of memory"); return -1; }
  h->reload_next = L2;
  chunkcache_install(L2); /* the engine's modules from the bytecode of the last load */
  if (lstate_require(L2, "cli") != 0) {
    snprintf(err, sizeof err, "%s", lua_tostring(L2, -1) ? lua_tostring(L2, -1) : "unknown error");
    prepare_failed(h, "prepare", err);
    return -1;
  }
  lua_getfield(L2, -1, "reload_prepare");
  if (!lua_isfunction(L2, -1)) {
    prepare_failed(h, "prepare", "the engine has no cli.reload_prepare: this command cannot reload");
    return -1;
  }
  lua_State *co = lua_newthread(L2);
  lua_pushvalue(L2, -1);
  lua_rawsetp(L2, LUA_REGISTRYINDEX, &THREAD_KEY);
  lua_pop(L2, 1);
  lua_xmove(L2, co, 1);
  lua_pop(L2, 1); /* cli */
  h->reload_thread = co;
  if (loop_timer_start(h->loop, &h->reload_slice, 0) < 0) {
    prepare_failed(h, "prepare", "cannot schedule the loading slices");
    return -1;
  }
  return 0;
}

/* The running state quiesced but will not be replaced: close the candidate, then the
 * running state takes its work back from the handover (cli.reload_abort). */
static void abort_reload(host_t *h) {
  char err[4096];
  host_reload_cleanup(h);
  if (call_cli(h->L, "reload_abort", 0, 0, err, sizeof err) < 0)
    log_msg(LOG_ERROR, "reload.abort_failed", "the running state could not take its work back: %s", err);
  notify_reload_end(0, "the new state did not take over");
}

/* Step 3: runs from a timer, never inside Lua. */
static void swap(loop_t *loop, loop_timer_t *t, void *ud) {
  (void)loop, (void)t;
  host_t *h = ud;
  char err[4096];
  lua_State *L2 = h->reload_next, *L1 = h->L;
  if (h->stopping) { /* a stop began during the quiesce: no new state now */
    log_kv_t kv[] = {{"reason", "a stop began during the reload"},
                     {"result", "the running state takes its work back and stops"}};
    log_event(LOG_WARN, "reload.abandoned", kv, 2);
    abort_reload(h);
    return;
  }
  lua_rawgeti(L2, LUA_REGISTRYINDEX, h->reload_handover);
  luaL_unref(L2, LUA_REGISTRYINDEX, h->reload_handover);
  h->reload_handover = LUA_NOREF;
  h->L = L2; /* adopt runs as the running state: hooks and timers belong to it */
  lstate_adopted(L2); /* the timers it armed as a candidate start now */
  if (call_cli(L2, "reload_adopt", 1, 0, err, sizeof err) < 0) {
    h->L = L1;
    log_failed("adopt", err);
    abort_reload(h);
    return;
  }
  h->reload_next = NULL;
  host_reload_cleanup(h);
  lua_close(L1);
  char ms[32];
  snprintf(ms, sizeof ms, "%llu", (unsigned long long)(loop_now_ms() - h->reload_started_ms));
  log_field_t f[] = {{"duration_ms", ms, LOG_T_NUM}};
  log_fields(LOG_INFO, "reload.ok", f, 1);
  notify_reload_end(1, ms);
  report(h->L, 1, ms);
}

/* Moves the value at the top of L into its registry; the ref, or LUA_NOREF on failure.
 * Protected: the candidate may be out of memory, and no error may escape into the
 * running state's call. */
static int ref_protected(lua_State *L) {
  lua_pushinteger(L, luaL_ref(L, LUA_REGISTRYINDEX));
  return 1;
}

static int keep(lua_State *L) {
  lua_pushcfunction(L, ref_protected);
  lua_insert(L, -2);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    lua_pop(L, 1);
    return LUA_NOREF;
  }
  int ref = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return ref;
}

/* Step 2's callback: done(handover) from the running state. The table is copied into
 * the candidate now, while the documents are as the running state left them. */
static int quiesced(lua_State *L) {
  host_t *h = lua_touserdata(L, lua_upvalueindex(1));
  char err[512];
  if (!h->reload_next || h->reload_handover != LUA_NOREF) return 0; /* late or repeated call */
  const char *fail = NULL;
  if (lua_type(L, 1) != LUA_TTABLE) {
    fail = "the running state handed over no table";
  } else if (transfer_value(L, 1, h->reload_next, err, sizeof err) != 0) {
    lua_pushfstring(L, "the running state could not be serialised: %s", err);
    fail = lua_tostring(L, -1);
  } else {
    h->reload_handover = keep(h->reload_next);
    if (h->reload_handover == LUA_REFNIL || h->reload_handover == LUA_NOREF) fail = "cannot keep the handover";
    else if (loop_timer_start(h->loop, &h->reload_swap, 0) < 0) fail = "cannot schedule the swap (out of memory)";
  }
  if (fail) { /* the running state has quiesced: it must take its work back, or it idles */
    log_failed("swap", fail);
    abort_reload(h);
    report(h->L, 0, fail); /* status shows the failed reload */
  }
  return 0;
}

int host_reload(host_t *h, const char *why) {
  if (h->reload_next) {
    log_msg(LOG_WARN, "reload.busy", "a reload is already under way (%s ignored)", why);
    return -1;
  }
  if (h->stopping) {
    log_msg(LOG_WARN, "reload.skipped", "stopping: no reload (%s ignored)", why);
    return -1;
  }
  h->reload_started_ms = loop_now_ms();
  if (notify_was_ready()) notify_reloading("reloading policies and scripts");
  return prepare(h);
}

/* Step 2: the candidate loaded and validated; the running state quiesces. */
static void start_quiesce(host_t *h) {
  char err[4096];
  lua_pushlightuserdata(h->L, h);
  lua_pushcclosure(h->L, quiesced, 1);
  if (call_cli(h->L, "reload_quiesce", 1, 0, err, sizeof err) < 0) {
    log_failed("quiesce", err);
    host_reload_cleanup(h);
    notify_reload_end(0, err);
  }
}
