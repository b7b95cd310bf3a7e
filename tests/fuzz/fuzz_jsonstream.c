/* libFuzzer harness: the record splitter of `rotator replay` files (lua/lib/jsonstream.c),
 * driven from an embedded Lua state as scripts/cmd/replay.lua drives it: next() until the
 * end, resync() after a record the splitter calls bad. The first byte sets the record
 * limit (64 to 4144 bytes), the rest is the file (a memfd). Checks (in CHECK below): each
 * record is the file's bytes at its offset, starts with no blank, ends with no blank, is
 * within the limit, and its line is the number of line breaks before it plus one; records
 * come in order and nothing but blanks (and a byte order mark) lies between two of them,
 * so no byte is lost; after resync() reading resumes at the offset it returned (past the
 * bad record's start, possibly inside its bytes: a truncated line swallows its
 * neighbours), at the start of a line that opens a JSON value; the reader always ends. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lua/modules.h"

static const char CHECK[] =
    "local path, max, input = ...\n"
    "local jsonstream = require 'jsonstream'\n"
    "local r = assert(jsonstream.open(path, max))\n"
    "local function blank(s) return s:find('^[ \\t\\r\\n]*$') ~= nil end\n"
    "local done, resumed, n = 0, nil, 0\n"  /* done: bytes accounted for */
    "local breaks, counted = 0, 0\n"        /* line breaks in input[1..counted] */
    "if input:sub(1, 3) == '\\239\\187\\191' then done = 3 end\n"
    "while true do\n"
    "  local text, line, offset, problem = r:next()\n"
    "  if text == nil then assert(line == nil, 'read error: ' .. tostring(line)); break end\n"
    "  n = n + 1\n"
    "  assert(n <= #input + 1, 'the reader does not end')\n"
    "  assert(#text > 0 and #text <= max, 'record length ' .. #text)\n"
    "  assert(input:sub(offset + 1, offset + #text) == text, 'record is not the bytes at its offset')\n"
    "  assert(not text:sub(1, 1):find('[ \\t\\r\\n]') and not text:sub(-1):find('[ \\t\\r\\n]'), 'blank at an end')\n"
    "  assert(offset >= counted, 'offsets go back')\n"
    "  local _, k = input:sub(counted + 1, offset):gsub('\\n', '')\n"
    "  breaks, counted = breaks + k, offset\n"
    "  assert(line == breaks + 1, ('line %d for offset %d'):format(line, offset))\n"
    "  assert(offset >= done, 'records overlap or go back')\n"
    "  if resumed then\n"
    "    assert(offset == resumed, 'resync said ' .. resumed .. ', next record at ' .. offset)\n"
    "    assert((offset == 0 or input:sub(offset, offset) == '\\n') and text:find('^[{%[]'),\n"
    "      'resumed mid-line or not at a JSON value')\n"
    "  else\n"
    "    assert(blank(input:sub(done + 1, offset)), 'bytes lost between records')\n"
    "  end\n"
    "  done, resumed = offset + #text, nil\n"
    "  if problem then\n"
    "    assert(type(problem) == 'string' and problem ~= '', 'empty problem')\n"
    "    local last, resume = r:resync()\n"
    "    assert(last >= line and resume > offset and resume <= #input, 'resync makes no progress')\n"
    "    resumed = resume\n"
    "    done = resume\n"
    "  end\n"
    "end\n"
    "if not resumed then assert(blank(input:sub(done + 1)), 'bytes lost at the end') end\n"
    "r:close()\n";

static lua_State *L;
static int check_ref = LUA_NOREF;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  if (!L) {
    L = luaL_newstate();
    if (!L) abort();
    luaL_openlibs(L);
    luaL_requiref(L, "jsonstream", luaopen_rotator_jsonstream, 0);
    lua_pop(L, 1);
    if (luaL_loadbuffer(L, CHECK, sizeof CHECK - 1, "=fuzz_jsonstream") != LUA_OK) abort();
    check_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  int fd = memfd_create("fuzz_jsonstream", MFD_CLOEXEC);
  if (fd < 0) abort();
  size_t len = size - 1;
  if (len && write(fd, data + 1, len) != (ssize_t)len) abort();
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  lua_rawgeti(L, LUA_REGISTRYINDEX, check_ref);
  lua_pushstring(L, path);
  lua_pushinteger(L, 64 + 16 * (lua_Integer)data[0]);
  lua_pushlstring(L, (const char *)data + 1, len);
  if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
    fprintf(stderr, "fuzz_jsonstream: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_settop(L, 0);
  close(fd);
  return 0;
}
