/* libFuzzer harness: AWS Backup notifications as SNS envelopes, SQS messages, Lambda
 * Records lists and EventBridge events (scripts/workflow/notification.lua), run in an
 * embedded Lua state with the engine's json and clock modules. Each input is parsed as
 * a whole document and as the Body of an SQS message. Checks (in CHECK below): parse
 * never raises; it returns a list of records or nil and a reason; a record is a skip
 * with its reason or carries everything a restore needs, with the table name taken from
 * its resource ARN and start_epoch the parsed start_time; a JSON document parses the
 * same as text and as its decoded table.
 * The scripts folder is $ROTATOR_ROOT/scripts, else found upwards from the binary. */
#include <lauxlib.h>
#include <limits.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lua/modules.h"

static const char CHECK[] =
    "local input = ...\n"
    "local json, clock = require 'json', require 'clock'\n"
    "local n = require 'workflow.notification'\n"
    "local function same(a, b)\n"
    "  if type(a) ~= type(b) then return false end\n"
    "  if type(a) ~= 'table' then return a == b or (a ~= a and b ~= b) end\n"
    "  for k, v in pairs(a) do if not same(v, b[k]) then return false end end\n"
    "  for k in pairs(b) do if a[k] == nil then return false end end\n"
    "  return true\n"
    "end\n"
    "local function check(list, why)\n"
    "  if list == nil then assert(type(why) == 'string' and why ~= '', 'nil without a reason'); return end\n"
    "  assert(type(list) == 'table', 'records are not a list')\n"
    "  for i, r in ipairs(list) do\n"
    "    assert(type(r) == 'table', 'record ' .. i .. ' is not a table')\n"
    "    if r.skip ~= nil then assert(type(r.skip) == 'string' and r.skip ~= '', 'empty skip reason')\n"
    "    else\n"
    "      for _, k in ipairs {'table_name', 'resource_arn', 'recovery_point_arn', 'backup_job_id', 'start_time'} do\n"
    "        assert(type(r[k]) == 'string' and r[k] ~= '', 'record without ' .. k)\n"
    "      end\n"
    "      assert(r.state == 'COMPLETED', 'restore record not COMPLETED')\n"
    "      assert(n.table_name(r.resource_arn) == r.table_name, 'table name not from the resource ARN')\n"
    "      assert(r.restore_via == n.RESTORE_DYNAMODB or r.restore_via == n.RESTORE_BACKUP, 'restore_via')\n"
    "      assert(clock.parse_rfc3339(r.start_time) == r.start_epoch, 'start_epoch is not the start time')\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local list, why = n.parse(input)\n"
    "check(list, why)\n"
    "local doc = json.decode(input)\n"
    "if type(doc) == 'table' then\n"
    "  local l2, w2 = n.parse(doc)\n"
    "  assert(same(list, l2) and same(why, w2), 'text and decoded table parse differently')\n"
    "end\n"
    "check(n.parse({ MessageId = 'm-1', Body = input }))\n";

static lua_State *L;
static int check_ref = LUA_NOREF;

static int scripts_dir(char *out, size_t cap) {
  const char *root = getenv("ROTATOR_ROOT");
  if (root && *root) {
    int k = snprintf(out, cap, "%s/scripts", root);
    return k > 0 && (size_t)k < cap ? 0 : -1;
  }
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return -1;
  exe[n] = 0;
  for (char *slash; (slash = strrchr(exe, '/')) != NULL;) {
    *slash = 0;
    int k = snprintf(out, cap, "%s/scripts/workflow/notification.lua", exe);
    if (k > 0 && (size_t)k < cap && access(out, R_OK) == 0) {
      out[strlen(exe) + strlen("/scripts")] = 0; /* the folder of the file just found */
      return 0;
    }
  }
  return -1;
}

static void setup(void) {
  char dir[PATH_MAX];
  if (scripts_dir(dir, sizeof dir) != 0) {
    fprintf(stderr, "fuzz_notification: no scripts folder (set ROTATOR_ROOT to the checkout)\n");
    abort();
  }
  L = luaL_newstate();
  if (!L) abort();
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_rotator_json);
  lua_setfield(L, -2, "json");
  lua_pushcfunction(L, luaopen_rotator_clock);
  lua_setfield(L, -2, "clock");
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", dir, dir);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  if (luaL_loadbuffer(L, CHECK, sizeof CHECK - 1, "=fuzz_notification") != LUA_OK) abort();
  check_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L) setup();
  lua_rawgeti(L, LUA_REGISTRYINDEX, check_ref);
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, "fuzz_notification: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_settop(L, 0);
  return 0;
}
