/* Unit tests for host/lua/alloc.c: a state on the pool allocator runs code that makes,
 * grows, shrinks and drops objects of every size (across the small/large line), keeps
 * their contents, and gives everything back when closed (valgrind: make valgrind);
 * warn() behaves as with luaL_newstate. */
#include "lua/alloc.h"
#include "tap.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define WANT_POOL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WANT_POOL 0
#endif
#endif
#ifndef WANT_POOL
#define WANT_POOL 1
#endif

/* Runs chunk; its one result as a string ("ok" or what went wrong). */
static const char *run(lua_State *L, const char *chunk) {
  if (luaL_dostring(L, chunk) != LUA_OK) return lua_tostring(L, -1);
  return lua_isstring(L, -1) ? lua_tostring(L, -1) : "chunk returned no string";
}

static const char *CHURN =
    "local keep, sum = {}, 0\n"
    "for i = 1, 20000 do\n"
    "  local s = string.rep(string.char(65 + i % 26), i % 700 + 1)\n" /* 1..700 bytes: both sides */
    "  local t = { i, s, n = i }\n"
    "  if i % 3 == 0 then keep[#keep + 1] = t end\n"
    "  if i % 1000 == 0 then collectgarbage() end\n"
    "end\n"
    "for _, t in ipairs(keep) do\n"
    "  local i, s = t[1], t[2]\n"
    "  if t.n ~= i or #s ~= i % 700 + 1 or s ~= string.rep(string.char(65 + i % 26), #s) then\n"
    "    return 'lost the contents of ' .. i end\n"
    "  sum = sum + #s\n"
    "end\n"
    /* a table and a buffer that grow from small blocks to large ones and back */
    "local big = {}\n"
    "for i = 1, 5000 do big['k' .. i] = i end\n"
    "for i = 1, 5000 do if big['k' .. i] ~= i then return 'grown table lost k' .. i end end\n"
    "for i = 1, 4990 do big['k' .. i] = nil end\n"
    "collectgarbage()\n"
    "for i = 1, 8 do big['x' .. i] = i end\n" /* rehash: shrinks it */
    "if big.k4995 ~= 4995 or big.x8 ~= 8 then return 'shrunk table lost a key' end\n"
    "local parts = {}\n"
    "for i = 1, 3000 do parts[i] = tostring(i) end\n"
    "local text = table.concat(parts, ',')\n"
    "if #text ~= 13892 or text:sub(-9) ~= '2999,3000' then return 'concat: ' .. #text end\n"
    "local co = coroutine.wrap(function(n) local function deep(k) if k == 0 then return 0 end\n"
    "  return 1 + deep(k - 1) end return deep(n) end)\n"
    "if co(3000) ~= 3000 then return 'deep coroutine stack' end\n"
    "return sum > 0 and 'ok' or 'nothing kept'\n";

static void test_churn(void) {
  lua_State *L = lalloc_newstate();
  ok(L != NULL, "a state on the pool allocator");
  if (!L) return;
  luaL_openlibs(L);
  is_str(run(L, CHURN), "ok", "objects of every size keep their contents through churn and collection");
  lua_settop(L, 0);
  lalloc_stats_t st = {0, 0};
  int rc = lalloc_stats(L, &st);
  is_int(rc, WANT_POOL ? 0 : -1, "the state has a pool (none under AddressSanitizer)");
  if (WANT_POOL) {
    ok(st.slabs > 0 && st.live > 0, "blocks live in slabs (%zu blocks, %zu slabs)", st.live, st.slabs);
    lua_gc(L, LUA_GCCOLLECT);
    lalloc_stats_t after = {0, 0};
    lalloc_stats(L, &after);
    ok(after.live < st.live, "collecting garbage gives blocks back (%zu -> %zu)", st.live, after.live);
  }
  lua_close(L); /* the pool goes with its last block: valgrind finds nothing left */
}

/* warn() is off until "@on"; a message may come in pieces; "@off" stops it again. */
static void test_warn(void) {
  FILE *tmp = tmpfile();
  ok(tmp != NULL, "a temporary file for stderr");
  if (!tmp) return;
  fflush(stderr);
  int saved = dup(2);
  dup2(fileno(tmp), 2);
  lua_State *L = lalloc_newstate();
  luaL_openlibs(L);
  const char *r = run(L, "warn('hidden') warn('@on') warn('one ', 'message') warn('@off') warn('hidden too') return 'ok'");
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  is_str(r, "ok", "warn() runs");
  char buf[256] = {0};
  rewind(tmp);
  size_t n = fread(buf, 1, sizeof buf - 1, tmp);
  buf[n] = '\0';
  is_str(buf, "Lua warning: one message\n", "only what came between @on and @off is written, once prefixed");
  fclose(tmp);
  lua_close(L);
}

int main(void) {
  (void)tap_skip_all; /* tap.h defines it static; unused here */
  test_churn();
  test_warn();
  return tap_done();
}
