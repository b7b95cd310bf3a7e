/* `aws_core` module: the C side of scripts/aws/init.lua. Ids cross the boundary, not closures:
 * start() returns a call id; when the call finishes, C calls the one dispatcher registered
 * with set_dispatcher(fn) as fn(id, ok, result) from the loop (never inside start()).
 *   result (ok):    {status, body, request_id, attempts}
 *   result (error): {code, message, status, request_id, retryable, attempts, body}
 * Each call in flight holds the host, so a graceful stop waits for it. */
#include <lauxlib.h>
#include <math.h>
#include <string.h>

#include "aws/client.h"
#include "lua/state.h"
#include "lua/modules.h"

#define AWS_MT "rotator.aws_core"

typedef struct {
  host_t *h;
  aws_client_t *client;
  lua_State *L;       /* main thread of the owning state: completions go there */
  int dispatcher;
} laws_t;

static const char KEY = 'a';

static laws_t *get_mod(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY);
  laws_t *m = luaL_checkudata(L, -1, AWS_MT);
  lua_pop(L, 1);
  if (!m->client) luaL_error(L, "aws: client is closed");
  return m;
}

static void set_str(lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v ? v : "");
  lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static void push_result(lua_State *L, const aws_result_t *r) {
  lua_createtable(L, 0, 8);
  set_int(L, "status", r->status);
  set_int(L, "attempts", r->attempts);
  lua_pushlstring(L, r->body ? r->body : "", r->body_len);
  lua_setfield(L, -2, "body");
  if (r->ok) {
    set_str(L, "request_id", r->request_id);
    return;
  }
  set_str(L, "code", r->err->code);
  set_str(L, "message", r->err->message);
  set_str(L, "request_id", r->err->request_id);
  lua_pushboolean(L, r->err->retryable);
  lua_setfield(L, -2, "retryable");
}

static void on_done(void *ud, const aws_result_t *r) {
  laws_t *m = ud;
  lua_State *L = m->L; /* the state that started the call, even during a reload */
  lua_rawgeti(L, LUA_REGISTRYINDEX, m->dispatcher);
  if (lua_isfunction(L, -1)) {
    lua_pushinteger(L, (lua_Integer)r->id);
    lua_pushboolean(L, r->ok);
    push_result(L, r);
    lstate_callback(L, 3, "aws");
  } else {
    lua_pop(L, 1);
  }
  host_release(m->h);
}

static const char *opt_str(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  const char *v = luaL_optstring(L, -1, NULL);
  lua_pop(L, 1);
  return v; /* still referenced by the table at t */
}

static int l_start(lua_State *L) {
  laws_t *m = get_mod(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  aws_call_t call = {0};
  call.service = opt_str(L, 1, "service");
  call.action = opt_str(L, 1, "action");
  call.region = opt_str(L, 1, "region");
  call.method = opt_str(L, 1, "method");
  call.path = opt_str(L, 1, "path");
  call.query = opt_str(L, 1, "query");
  call.content_type = opt_str(L, 1, "content_type");
  lua_getfield(L, 1, "body");
  call.body = luaL_optlstring(L, -1, "", &call.body_len);
  lua_getfield(L, 1, "timeout");
  lua_Number to = luaL_optnumber(L, -1, 0);
  luaL_argcheck(L, to >= 0 && to < 86400, 1, "timeout must be 0..86400 seconds");
  call.timeout_ms = (long)llround(to * 1000.0);
  lua_getfield(L, 1, "max_attempts");
  lua_Integer ma = luaL_optinteger(L, -1, 0);
  luaL_argcheck(L, ma >= 0 && ma <= 100, 1, "max_attempts must be 0..100");
  call.max_attempts = (int)ma;
  if (!call.service || !call.action) return luaL_error(L, "aws: service and action are required");
  char err[512];
  uint64_t id = aws_call_start(m->client, &call, on_done, m, err, sizeof err);
  if (!id) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  host_hold(m->h);
  lua_pushinteger(L, (lua_Integer)id);
  return 1;
}

static int l_cancel(lua_State *L) {
  laws_t *m = get_mod(L);
  lua_Integer id = luaL_checkinteger(L, 1);
  int ok = id > 0 && aws_call_cancel(m->client, (uint64_t)id) == 0;
  if (ok) host_release(m->h);
  lua_pushboolean(L, ok);
  return 1;
}

static int l_set_dispatcher(lua_State *L) {
  laws_t *m = get_mod(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_unref(L, LUA_REGISTRYINDEX, m->dispatcher);
  lua_pushvalue(L, 1);
  m->dispatcher = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

static int l_pending(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)aws_call_pending(get_mod(L)->client));
  return 1;
}

static int l_clock_offset(lua_State *L) {
  lua_pushinteger(L, aws_clock_offset(get_mod(L)->client));
  return 1;
}

static int l_retry_tokens(lua_State *L) {
  lua_pushinteger(L, aws_retry_tokens(get_mod(L)->client));
  return 1;
}

static int l_endpoint(lua_State *L) {
  const aws_service_t *svc = aws_service(luaL_checkstring(L, 1));
  const char *region = luaL_optstring(L, 2, NULL);
  char url[2048], err[256];
  if (aws_endpoint(svc, region, NULL, url, sizeof url, err, sizeof err) < 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushstring(L, url);
  return 1;
}

static int l_protocol(lua_State *L) {
  static const char *const names[] = {"awsJson1_0", "awsJson1_1", "restJson1", "query"};
  const aws_service_t *svc = aws_service(luaL_checkstring(L, 1));
  if (!svc) return 0;
  lua_pushstring(L, names[svc->protocol]);
  lua_pushstring(L, svc->api_version ? svc->api_version : "");
  return 2;
}

static int m_gc(lua_State *L) {
  laws_t *m = luaL_checkudata(L, 1, AWS_MT);
  if (!m->client) return 0;
  /* The state is closing: its pending calls are dropped, and so are their holds, or a
   * later graceful stop would wait for calls that can never finish. */
  for (size_t n = aws_call_pending(m->client); n > 0; n--) host_release(m->h);
  aws_client_free(m->client);
  m->client = NULL;
  return 0;
}

int luaopen_rotator_aws_core(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"start", l_start}, {"cancel", l_cancel}, {"set_dispatcher", l_set_dispatcher},
      {"pending", l_pending}, {"clock_offset", l_clock_offset},
      {"retry_tokens", l_retry_tokens}, {"endpoint", l_endpoint}, {"protocol", l_protocol},
      {NULL, NULL}};
  laws_t *m = lua_newuserdatauv(L, sizeof *m, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  *m = (laws_t){.h = host_from_lua(L), .L = lua_tothread(L, -1), .dispatcher = LUA_NOREF};
  lua_pop(L, 1);
  luaL_newmetatable(L, AWS_MT);
  lua_pushcfunction(L, m_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  m->client = aws_client_new(m->h->loop);
  if (!m->client) return luaL_error(L, "aws: cannot create the HTTP client");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &KEY);
  luaL_newlib(L, funcs);
  return 1;
}
