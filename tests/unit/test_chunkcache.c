/* Unit tests for host/lua/chunkcache.c: a module required again in a new state comes from
 * the kept bytecode while its file is unchanged, a changed file is compiled again, and
 * errors raised by cached code still name file:line. */
#include "lua/chunkcache.h"
#include "tap.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/rotator-chunkcache-XXXXXX";

static void write_module(const char *name, const char *text) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s.lua", dir, name);
  FILE *f = fopen(path, "w");
  if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

/* A state whose require finds modules in dir through the cache. */
static lua_State *new_state(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/?.lua", dir);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  chunkcache_install(L);
  return L;
}

/* Runs chunk in a new state; its string result (or error) in out. */
static void run(const char *chunk, char *out, size_t len) {
  lua_State *L = new_state();
  int rc = luaL_dostring(L, chunk);
  snprintf(out, len, "%s%s", rc == LUA_OK ? "" : "error: ", lua_tostring(L, -1) ? lua_tostring(L, -1) : "(nil)");
  lua_close(L);
}

int main(void) {
  char out[512];
  if (!mkdtemp(dir)) {
    perror(dir);
    return 1;
  }
  write_module("m", "local M = {}\nfunction M.v() return 'one' end\nfunction M.boom() error('boom') end\nreturn M\n");
  unsigned long h0 = chunkcache_hits();
  run("return require('m').v()", out, sizeof out);
  is_str(out, "one", "first load compiles the source");
  is_int(chunkcache_hits(), h0, "nothing was kept before");
  run("return require('m').v()", out, sizeof out);
  is_str(out, "one", "the next state loads the same module");
  is_int(chunkcache_hits(), h0 + 1, "from the kept bytecode");
  run("local ok, e = pcall(require('m').boom) return e", out, sizeof out);
  ok(strstr(out, "m.lua:3: boom") != NULL, "an error in cached code names file:line (%s)", out);

  sleep(1); /* a different modification time even on coarse clocks */
  write_module("m", "return { v = function() return 'two' end }\n");
  run("return require('m').v()", out, sizeof out);
  is_str(out, "two", "a changed file is compiled again");
  unsigned long h1 = chunkcache_hits();
  run("return require('m').v()", out, sizeof out);
  is_str(out, "two", "and its new bytecode is kept");
  is_int(chunkcache_hits(), h1 + 1, "from the cache");

  write_module("bad", "return {\n");
  run("return require('bad')", out, sizeof out);
  ok(strstr(out, "error loading module 'bad'") && strstr(out, "bad.lua:"), "a syntax error names the module and file (%s)", out);
  run("return require('nope')", out, sizeof out);
  ok(strstr(out, "module 'nope' not found") != NULL, "a missing module says so (%s)", out);

  chunkcache_clear();
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return tap_done();
}
