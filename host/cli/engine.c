/* Runs a command implemented in Lua: loads scripts/cli.lua into a fresh state and calls
 * cli.main(name, args). A numeric result is the exit status at once; no result means the
 * command scheduled work on the loop, which then runs until host.exit() or a stop. */
#include <lauxlib.h>
#include <stdio.h>

#include "cli/cli.h"
#include "core/log.h"
#include "lua/state.h"

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
    fprintf(stderr, "rotator: cannot load the engine from %s:\n%s\n"
            "Check the scripts folder (--scripts or ROTATOR_SCRIPTS).\n",
            h->scripts_dir, lua_tostring(L, -1));
    return 2;
  }
  lua_getfield(L, -1, "main");
  lua_pushstring(L, argv[0]);
  push_args(L, argc - 1, argv + 1);
  if (lstate_pcall(L, 2, 1) != LUA_OK) {
    fprintf(stderr, "rotator %s: %s\n", argv[0], lua_tostring(L, -1));
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
    fprintf(stderr, "rotator: out of memory creating the Lua state\n");
    return 1;
  }
  int code = call_main(h, argc, argv);
  host_reload_cleanup(h);
  lua_close(h->L);
  h->L = NULL;
  host_aws_close(h);
  return code;
}
