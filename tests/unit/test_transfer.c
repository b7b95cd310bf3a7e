/* Unit tests for host/lua/transfer.c: a JSON-shaped value copied between two Lua states
 * keeps its types and json marks, and what JSON could not carry is refused by path. */
#include "lua/transfer.h"
#include "tap.h"

#include <lauxlib.h>
#include <lualib.h>
#include <string.h>

/* A state with the json module's marking metatables, as every engine state has. */
static lua_State *new_state(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_newmetatable(L, "rotator.json.array");
  lua_pushliteral(L, "array");
  lua_setfield(L, -2, "__jsontype");
  luaL_newmetatable(L, "rotator.json.object");
  lua_pushliteral(L, "object");
  lua_setfield(L, -2, "__jsontype");
  lua_settop(L, 0);
  return L;
}

/* Runs chunk in L (it returns one value) and copies that into L2; 0 or -1. */
static int copy_chunk(lua_State *L, lua_State *L2, const char *chunk, char *err, size_t len) {
  if (luaL_dostring(L, chunk) != LUA_OK) {
    snprintf(err, len, "chunk: %s", lua_tostring(L, -1));
    return -1;
  }
  int rc = transfer_value(L, -1, L2, err, len);
  lua_settop(L, 0);
  return rc;
}

/* Evaluates `check` in L2 with the copied value as global v; the chunk returns a string
 * ("ok" or what is wrong). */
static const char *check(lua_State *L2, const char *code) {
  lua_setglobal(L2, "v");
  if (luaL_dostring(L2, code) != LUA_OK || !lua_isstring(L2, -1)) return "check failed to run";
  return lua_tostring(L2, -1);
}

static void test_copies(void) {
  lua_State *L = new_state(), *L2 = new_state();
  char err[512] = "";
  int rc = copy_chunk(L, L2,
      "local a = setmetatable({}, debug.getregistry()['rotator.json.array'])\n"
      "return { s = 'x', i = 9007199254740993, f = 0.5, big = 3600.0, t = true, n = false,\n"
      "  null = nil, empty = a, list = { 1, 'two', { deep = { 3 } } }, [7] = 'seven',\n"
      "  arn = string.rep('arn:aws:dynamodb:', 10), nul = 'a\\0b' }", err, sizeof err);
  ok(rc == 0, "a document copies (%s)", err);
  is_str(check(L2,
      "local j = debug.getregistry()['rotator.json.array']\n"
      "if v.s ~= 'x' or math.type(v.i) ~= 'integer' or v.i ~= 9007199254740993 then return 'integer' end\n"
      "if v.f ~= 0.5 or math.type(v.big) ~= 'float' then return 'float' end\n"
      "if v.t ~= true or v.n ~= false then return 'booleans' end\n"
      "if getmetatable(v.empty) ~= j or next(v.empty) then return 'empty array mark' end\n"
      "if v.list[2] ~= 'two' or v.list[3].deep[1] ~= 3 or #v.list ~= 3 then return 'nested' end\n"
      "if v[7] ~= 'seven' or v.arn ~= string.rep('arn:aws:dynamodb:', 10) then return 'keys' end\n"
      "if v.nul ~= 'a\\0b' then return 'embedded NUL' end\n"
      "return 'ok'"), "ok", "types, marks, nesting and bytes survive");
  lua_settop(L2, 0);
  lua_pushlightuserdata(L, NULL);
  ok(transfer_value(L, -1, L2, err, sizeof err) == 0 && lua_type(L2, -1) == LUA_TLIGHTUSERDATA &&
     lua_touserdata(L2, -1) == NULL, "json.null crosses as json.null");
  ok(lua_gc(L2, LUA_GCISRUNNING), "the collector runs again afterwards");
  lua_close(L);
  lua_close(L2);
}

static void refused(const char *chunk, const char *want) {
  lua_State *L = new_state(), *L2 = new_state();
  char err[512] = "";
  int rc = copy_chunk(L, L2, chunk, err, sizeof err);
  ok(rc == -1, "refused: %s", chunk);
  is_str(err, want, "the reason names the path");
  ok(lua_gettop(L2) == 0, "nothing is left on the destination's stack");
  lua_close(L);
  lua_close(L2);
}

int main(void) {
  (void)tap_skip_all; /* tap.h defines it static; unused here */
  test_copies();
  refused("return { workflows = { { Steps = { print } } } }",
          "cannot encode a function value at $.workflows[1].Steps[1]");
  refused("return { a = { [true] = 1 } }", "cannot encode a table key that is neither a string nor a number at $.a");
  refused("local t = {} t.t = t return t", "cannot encode nesting deeper than 1000 levels (a cycle?) at $.t.t.t.t.t.t.t.t.t.t.t.t...");
  return tap_done();
}
