/* `aws_core` module: the C side of scripts/aws/init.lua. Ids cross the boundary, not closures:
 * start() returns a call id; when the call finishes, C calls the dispatcher the owning
 * state registered with set_dispatcher(fn) as fn(id, ok, result) from the loop (never
 * inside start()).
 *   result (ok):    {status, body, request_id, attempts}
 *   result (error): {code, message, status, request_id, retryable, attempts, body}
 * The client belongs to the host (one per process: credentials, connection cache, retry
 * quota and clock-skew offset survive reloads); each call has a route naming the state
 * that started it, and its completion runs in that state only. A call whose state was
 * closed finishes and its result is dropped (debug log line aws.dropped). A reload hands
 * a call over explicitly:
 *   release(id)  in the running state: the call goes on, owned by no state; a result that
 *                arrives meanwhile is kept
 *   claim(id)    in the adopting state: "pending" (its completion now comes here), or
 *                "done", ok, result (it finished while released), or nil (unknown id)
 * Each call in flight holds the host, so a graceful stop waits for it.
 *   resolved()   region (or nil) and the credentials' description, as resolved so far */
#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aws/client.h"
#include "core/log.h"
#include "lua/state.h"
#include "lua/modules.h"
#include "lua/fields.h"

#define AWS_MT "rotator.aws_core"

typedef struct laws_route {
  host_t *h;
  uint64_t id;
  lua_State *L;          /* main thread of the owning state; NULL: released or orphaned */
  int released;          /* handed over by release(): waits for claim() */
  int kept;              /* finished while released: the result below waits for claim() */
  int finishing;         /* its completion is being dispatched: cancel/release do not apply */
  int ok, status, attempts;
  char *body;
  size_t body_len;
  char request_id[128];
  aws_error_t err;
  struct laws_route *prev, *next;
} route_t;

/* One per state: which state this module instance belongs to. */
typedef struct {
  host_t *h;
  lua_State *L;
} laws_t;

static const char KEY = 'a', DISPATCH_KEY = 'd';

static laws_t *get_mod(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY);
  laws_t *m = luaL_checkudata(L, -1, AWS_MT);
  lua_pop(L, 1);
  if (!m->h->aws) luaL_error(L, "aws: client is closed");
  return m;
}

static void link_route(route_t *rt) {
  host_t *h = rt->h;
  rt->prev = NULL;
  rt->next = h->aws_routes;
  if (h->aws_routes) h->aws_routes->prev = rt;
  h->aws_routes = rt;
}

static void unlink_route(route_t *rt) {
  if (rt->prev) rt->prev->next = rt->next;
  else rt->h->aws_routes = rt->next;
  if (rt->next) rt->next->prev = rt->prev;
  rt->prev = rt->next = NULL;
}

/* Frees the route and gives back the hold its call took. */
static void drop_route(route_t *rt) {
  host_t *h = rt->h;
  unlink_route(rt);
  free(rt->body);
  free(rt);
  host_release(h);
}

static route_t *find_route(host_t *h, uint64_t id) {
  for (route_t *rt = h->aws_routes; rt; rt = rt->next)
    if (rt->id == id) return rt;
  return NULL;
}

static void push_result(lua_State *L, const aws_result_t *r) {
  lua_createtable(L, 0, 8);
  lfield_int(L, "status", r->status);
  lfield_int(L, "attempts", r->attempts);
  lua_pushlstring(L, r->body ? r->body : "", r->body_len);
  lua_setfield(L, -2, "body");
  if (r->ok) {
    lfield_str(L, "request_id", r->request_id ? r->request_id : "");
    return;
  }
  lfield_str(L, "code", r->err->code);
  lfield_str(L, "message", r->err->message);
  lfield_str(L, "request_id", r->err->request_id);
  lua_pushboolean(L, r->err->retryable);
  lua_setfield(L, -2, "retryable");
}

static void dispatch(lua_State *L, const aws_result_t *r) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &DISPATCH_KEY) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    return;
  }
  lua_pushinteger(L, (lua_Integer)r->id);
  lua_pushboolean(L, r->ok);
  push_result(L, r);
  lstate_callback(L, 3, "aws");
}

/* Keeps a result for the state that will claim the call. */
static void keep(route_t *rt, const aws_result_t *r) {
  rt->kept = 1;
  rt->ok = r->ok;
  rt->status = r->status;
  rt->attempts = r->attempts;
  rt->body_len = r->body ? r->body_len : 0;
  rt->body = malloc(rt->body_len + 1);
  if (rt->body) {
    if (rt->body_len) memcpy(rt->body, r->body, rt->body_len);
    rt->body[rt->body_len] = '\0';
  }
  snprintf(rt->request_id, sizeof rt->request_id, "%s",
           r->ok ? (r->request_id ? r->request_id : "") : r->err->request_id);
  if (!r->ok) rt->err = *r->err;
  if (!rt->body) { /* the claimer gets an error that says so, never an empty success */
    rt->body_len = 0;
    rt->ok = 0;
    memset(&rt->err, 0, sizeof rt->err);
    snprintf(rt->err.code, sizeof rt->err.code, "ClientError");
    snprintf(rt->err.message, sizeof rt->err.message,
             "out of memory keeping the %zu-byte answer of a call handed over by a reload",
             r->body_len);
    log_msg(LOG_ERROR, "aws.handover", "%s", rt->err.message);
  }
}

static void on_done(void *ud, const aws_result_t *r) {
  route_t *rt = ud;
  if (rt->released) {
    keep(rt, r); /* the hold stays until a state claims it (or the host closes) */
    return;
  }
  lua_State *L = rt->L; /* the state that started the call, even during a reload */
  rt->finishing = 1;
  if (L) {
    dispatch(L, r);
  } else {
    char id[24];
    snprintf(id, sizeof id, "%llu", (unsigned long long)r->id);
    log_field_t f[] = {{"call", id, LOG_T_NUM}, {"reason", "the state that started it was replaced", LOG_T_STR}};
    log_fields(LOG_DEBUG, "aws.dropped", f, 2);
  }
  drop_route(rt);
}

/* The field as a string, or NULL. The value stays on the stack: a number is converted
 * there, so only that slot references the string. */
static const char *opt_str(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  return luaL_optstring(L, -1, NULL);
}

/* The string-keyed fields of the table at t (strings, numbers, booleans) into f. The
 * converted values stay on the stack under the iteration key. Raises past max fields. */
static size_t log_context(lua_State *L, int t, log_field_t *f, size_t max) {
  size_t n = 0;
  if (lua_isnoneornil(L, t)) return 0;
  luaL_checktype(L, t, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    int vt = lua_type(L, -1);
    if (lua_type(L, -2) != LUA_TSTRING || (vt != LUA_TSTRING && vt != LUA_TNUMBER && vt != LUA_TBOOLEAN)) {
      lua_pop(L, 1);
      continue;
    }
    if (n == max) luaL_error(L, "aws: more than %d log context fields", (int)max);
    luaL_checkstack(L, 4, "aws: log context");
    lua_pushvalue(L, -2);             /* key copy, kept */
    luaL_tolstring(L, -2, NULL);      /* value text, kept */
    f[n] = (log_field_t){lua_tostring(L, -2), lua_tostring(L, -1),
                         vt == LUA_TNUMBER ? LOG_T_NUM : vt == LUA_TBOOLEAN ? LOG_T_BOOL : LOG_T_STR};
    n++;
    lua_rotate(L, -4, 2);             /* key copy and text below the iteration key and value */
    lua_pop(L, 1);                    /* the value; the iteration key stays on top */
  }
  return n;
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
  call.role_arn = opt_str(L, 1, "role_arn");
  call.external_id = opt_str(L, 1, "external_id");
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
  lua_getfield(L, 1, "log");
  log_field_t ctx[AWS_LOG_CTX_MAX];
  call.log_nctx = log_context(L, lua_gettop(L), ctx, AWS_LOG_CTX_MAX);
  call.log_ctx = ctx;
  if (!call.service || !call.action) return luaL_error(L, "aws: service and action are required");
  char err[512];
  route_t *rt = calloc(1, sizeof *rt);
  if (!rt) return luaL_error(L, "aws: out of memory starting %s.%s", call.service, call.action);
  uint64_t id = aws_call_start(m->h->aws, &call, on_done, rt, err, sizeof err);
  if (!id) {
    free(rt);
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  *rt = (route_t){.h = m->h, .id = id, .L = m->L};
  link_route(rt);
  host_hold(m->h);
  lua_pushinteger(L, (lua_Integer)id);
  return 1;
}

/* This state's route for id, or NULL: a state never touches another state's calls. */
static route_t *own_route(laws_t *m, lua_Integer id) {
  route_t *rt = id > 0 ? find_route(m->h, (uint64_t)id) : NULL;
  return rt && rt->L == m->L && !rt->released && !rt->finishing ? rt : NULL;
}

static int l_cancel(lua_State *L) {
  laws_t *m = get_mod(L);
  route_t *rt = own_route(m, luaL_checkinteger(L, 1));
  int ok = rt && aws_call_cancel(m->h->aws, rt->id) == 0;
  if (rt) drop_route(rt);
  lua_pushboolean(L, ok);
  return 1;
}

static int l_release(lua_State *L) {
  laws_t *m = get_mod(L);
  route_t *rt = own_route(m, luaL_checkinteger(L, 1));
  if (rt) {
    rt->released = 1;
    rt->L = NULL;
  }
  lua_pushboolean(L, rt != NULL);
  return 1;
}

static int l_claim(lua_State *L) {
  laws_t *m = get_mod(L);
  lua_Integer id = luaL_checkinteger(L, 1);
  route_t *rt = id > 0 ? find_route(m->h, (uint64_t)id) : NULL;
  if (!rt || !rt->released) return 0;
  if (!rt->kept) {
    rt->released = 0;
    rt->L = m->L;
    lua_pushliteral(L, "pending");
    return 1;
  }
  aws_result_t r = {.id = rt->id, .ok = rt->ok, .status = rt->status, .body = rt->body ? rt->body : "",
                    .body_len = rt->body_len, .request_id = rt->request_id, .attempts = rt->attempts,
                    .err = rt->ok ? NULL : &rt->err};
  lua_pushliteral(L, "done");
  lua_pushboolean(L, r.ok);
  push_result(L, &r);
  drop_route(rt);
  return 3;
}

static int l_set_dispatcher(lua_State *L) {
  laws_t *m = get_mod(L);
  (void)m;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &DISPATCH_KEY);
  return 0;
}

/* Calls in flight that belong to this state. */
static int l_pending(lua_State *L) {
  laws_t *m = get_mod(L);
  lua_Integer n = 0;
  for (route_t *rt = m->h->aws_routes; rt; rt = rt->next)
    if (rt->L == m->L) n++;
  lua_pushinteger(L, n);
  return 1;
}

static int l_clock_offset(lua_State *L) {
  lua_pushinteger(L, aws_clock_offset(get_mod(L)->h->aws));
  return 1;
}

/* resolved() -> region or nil, credentials description (creds_describe: source, key id,
 * expiry; never a secret): what the calls made so far resolved. */
static int l_resolved(lua_State *L) {
  creds_provider_t *p = aws_client_creds(get_mod(L)->h->aws);
  char desc[512];
  const char *region = creds_resolved_region(p);
  if (region) lua_pushstring(L, region);
  else lua_pushnil(L);
  lua_pushstring(L, creds_describe(p, desc, sizeof desc));
  return 2;
}

static int l_retry_tokens(lua_State *L) {
  lua_pushinteger(L, aws_retry_tokens(get_mod(L)->h->aws));
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

/* The state is closing: its calls go on (they may have effects at the other end either
 * way) and finish into no state; their holds are given back when they do. */
static int m_gc(lua_State *L) {
  laws_t *m = luaL_checkudata(L, 1, AWS_MT);
  for (route_t *rt = m->h->aws_routes; rt; rt = rt->next)
    if (rt->L == m->L) rt->L = NULL;
  m->L = NULL;
  return 0;
}

void host_aws_close(host_t *h) {
  while (h->aws_routes) {
    route_t *rt = h->aws_routes;
    unlink_route(rt);
    free(rt->body);
    free(rt);
  }
  aws_client_free(h->aws); /* cancels what is still in flight, silently */
  h->aws = NULL;
}

int luaopen_rotator_aws_core(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"start", l_start}, {"cancel", l_cancel}, {"release", l_release}, {"claim", l_claim},
      {"set_dispatcher", l_set_dispatcher}, {"pending", l_pending},
      {"clock_offset", l_clock_offset}, {"retry_tokens", l_retry_tokens}, {"resolved", l_resolved},
      {"endpoint", l_endpoint}, {"protocol", l_protocol}, {NULL, NULL}};
  host_t *h = host_from_lua(L);
  if (!h->aws && !(h->aws = aws_client_new(h->loop)))
    return luaL_error(L, "aws: cannot create the HTTP client");
  laws_t *m = lua_newuserdatauv(L, sizeof *m, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  *m = (laws_t){.h = h, .L = lua_tothread(L, -1)};
  lua_pop(L, 1);
  luaL_newmetatable(L, AWS_MT);
  lua_pushcfunction(L, m_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &KEY);
  luaL_newlib(L, funcs);
  return 1;
}
