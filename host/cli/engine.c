/* Runs a command implemented in Lua: loads scripts/cli.lua into a fresh state and calls
 * cli.main(name, args). A numeric result is the exit status at once; no result means the
 * command scheduled work on the loop, which then runs until host.exit() or a stop. */
#include <lauxlib.h>
#include <stdio.h>

#include "cli/cli.h"
#include "core/log.h"
#include "core/metrics.h"
#include "lua/chunkcache.h"
#include "lua/state.h"
#include "svc/metrics_http.h"

static void push_args(lua_State *L, int argc, char **argv) {
  lua_createtable(L, argc, 0);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

static int call_main(host_t *h, int argc, char **argv) {
  lua_State *L = h->L;
  if (lstate_require(L, "cli") != 0) {
    log_report("rotator: cannot load the engine from %s:\n%s\n"
            "Check the scripts folder (--scripts or ROTATOR_SCRIPTS).\n",
            h->scripts_dir, lua_tostring(L, -1));
    return 2;
  }
  lua_getfield(L, -1, "main");
  lua_pushstring(L, argv[0]);
  push_args(L, argc - 1, argv + 1);
  if (lstate_pcall(L, 2, 1) != LUA_OK) {
    log_report("rotator %s: %s\n", argv[0], lua_tostring(L, -1));
    return 1;
  }
  if (lua_isinteger(L, -1)) return (int)lua_tointeger(L, -1);
  if (!h->exit_requested && loop_run(h->loop) < 0) {
    log_msg(LOG_ERROR, "loop.failed", "event loop failed: %m");
    return 1;
  }
  return h->exit_code;
}

int cmd_engine(host_t *h, int argc, char **argv) {
  if (host_watch_signals(h) < 0) {
    log_msg(LOG_ERROR, "signals", "cannot route signals through the loop: %m");
    return 1;
  }
  h->L = lstate_new(h);
  if (!h->L) {
    log_report("rotator: out of memory creating the Lua state\n");
    return 1;
  }
  int code = call_main(h, argc, argv);
  metrics_http_stop();
  host_reload_cleanup(h);
  lua_close(h->L);
  h->L = NULL;
  chunkcache_clear();
  host_aws_close(h);
  metrics_free_all();
  return code;
}

/* Walks the array cli.commands() left on the stack top. */
static int each_command(lua_State *L, engine_command_fn each, void *ud) {
  lua_Integer n = luaL_len(L, -1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, -1, i);
    lua_getfield(L, -1, "name");
    lua_getfield(L, -2, "summary");
    const char *name = lua_tostring(L, -2), *summary = lua_tostring(L, -1);
    if (name && summary) each(ud, name, summary);
    lua_pop(L, 3);
  }
  return 0;
}

static int list_commands(lua_State *L, engine_command_fn each, void *ud, char *err, size_t len) {
  if (lstate_require(L, "cli") != 0) {
    snprintf(err, len, "%s", lua_tostring(L, -1));
    return -1;
  }
  lua_getfield(L, -1, "commands");
  if (lstate_pcall(L, 0, 1) != LUA_OK || !lua_istable(L, -1)) {
    snprintf(err, len, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "cli.commands() gave no list");
    return -1;
  }
  return each_command(L, each, ud);
}

int engine_commands(host_t *h, engine_command_fn each, void *ud, char *err, size_t errlen) {
  h->L = lstate_new(h);
  if (!h->L) {
    snprintf(err, errlen, "out of memory creating the Lua state");
    return -1;
  }
  int rc = list_commands(h->L, each, ud, err, errlen);
  lua_close(h->L);
  h->L = NULL;
  host_aws_close(h); /* loading the command modules may have created the AWS client */
  return rc;
}
