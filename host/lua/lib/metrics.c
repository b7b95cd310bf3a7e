/* `metrics` module: the process's metrics registry (core/metrics.h) and the HTTP
 * listener (svc/metrics_http.h) from Lua. The registry is the process's, not the
 * state's: what one state counted, the next one (after a reload) goes on from.
 *   metrics.counter(name, help [, {label names}])          define (again: same shape only)
 *   metrics.gauge(name, help [, {label names}])
 *   metrics.histogram(name, help, {label names}, {bucket upper bounds})
 *   metrics.inc(name [, {label = value}] [, n])    counter += n (default 1); gauge too
 *   metrics.set(name, labels, v)  metrics.observe(name, labels, v)  metrics.clear(name)
 *     misuse (unknown metric, missing label, wrong type) raises; a run-time limit (too
 *     many label sets) returns nil, msg
 *   metrics.render() -> the text exposition;  metrics.snapshot() -> {name = {type, help,
 *     series = {{labels, value} | {labels, count, sum, buckets = {{le, count}...}}}}}
 *   metrics.listen("127.0.0.1:9464" [, allow_any]) -> bound address, or nil, msg
 *   metrics.address() -> the bound address or nil
 *   metrics.hooks{ collect = fn(), ready = fn() -> ok, reason }: this state's scrape hooks */
#include <lauxlib.h>
#include <string.h>

#include "core/metrics.h"
#include "lua/fields.h"
#include "lua/modules.h"
#include "lua/state.h"
#include "svc/metrics_http.h"

/* Label names (array) at idx into out; returns how many. */
static size_t label_names(lua_State *L, int idx, const char **out) {
  if (lua_isnoneornil(L, idx)) return 0;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_Integer n = luaL_len(L, idx);
  luaL_argcheck(L, n <= METRICS_MAX_LABELS, idx, "more than 4 labels");
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, idx, i);
    out[i - 1] = luaL_checkstring(L, -1); /* the table keeps the string alive */
    lua_pop(L, 1);
  }
  return (size_t)n;
}

static int define(lua_State *L, metric_type_t type) {
  const char *name = luaL_checkstring(L, 1), *help = luaL_checkstring(L, 2);
  const char *labels[METRICS_MAX_LABELS];
  double bounds[METRICS_MAX_BUCKETS];
  size_t nl = label_names(L, 3, labels), nb = 0;
  if (type == METRIC_HISTOGRAM) {
    luaL_checktype(L, 4, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 4);
    luaL_argcheck(L, n > 0 && n <= METRICS_MAX_BUCKETS, 4, "1 to 24 bucket bounds");
    for (lua_Integer i = 1; i <= n; i++, nb++) {
      lua_geti(L, 4, i);
      bounds[nb] = luaL_checknumber(L, -1);
      lua_pop(L, 1);
    }
  }
  char err[256];
  if (!metrics_define(name, type, help, labels, nl, bounds, nb, err, sizeof err)) return luaL_error(L, "%s", err);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_counter(lua_State *L) { return define(L, METRIC_COUNTER); }
static int l_gauge(lua_State *L) { return define(L, METRIC_GAUGE); }
static int l_histogram(lua_State *L) { return define(L, METRIC_HISTOGRAM); }

/* The family named at 1 and its label values from the table at 2. */
static metric_family_t *target(lua_State *L, const char **values) {
  const char *name = luaL_checkstring(L, 1);
  metric_family_t *f = metrics_find(name);
  if (!f) luaL_error(L, "metrics: no metric '%s' (define it first)", name);
  if (f->nlabels && !lua_istable(L, 2)) luaL_error(L, "metrics: '%s' needs labels {%s=...}", name, f->label[0]);
  for (size_t i = 0; i < f->nlabels; i++) {
    lua_getfield(L, 2, f->label[i]);
    values[i] = lua_tostring(L, -1); /* numbers convert in place; the stack keeps them */
    if (!values[i]) luaL_error(L, "metrics: '%s' needs label '%s' (a string)", name, f->label[i]);
  }
  return f;
}

typedef int (*op_fn)(metric_family_t *, const char *const *, double, char *, size_t);

static int apply(lua_State *L, op_fn op, double v) {
  const char *values[METRICS_MAX_LABELS];
  metric_family_t *f = target(L, values);
  char err[256];
  if (op(f, values, v, err, sizeof err) < 0) {
    if (strstr(err, "METRICS_MAX_SERIES") || strstr(err, "out of memory")) {
      luaL_pushfail(L);
      lua_pushstring(L, err);
      return 2;
    }
    return luaL_error(L, "%s", err);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_inc(lua_State *L) {
  int nidx = lua_istable(L, 2) || lua_isnil(L, 2) ? 3 : 2;
  double n = luaL_optnumber(L, nidx, 1);
  if (nidx == 2) { /* inc(name, n): no labels */
    lua_pushnil(L);
    lua_insert(L, 2);
  }
  return apply(L, metrics_add, n);
}

static int l_set(lua_State *L) { return apply(L, metrics_set, luaL_checknumber(L, 3)); }
static int l_observe(lua_State *L) { return apply(L, metrics_observe, luaL_checknumber(L, 3)); }

static int l_clear(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  metric_family_t *f = metrics_find(name);
  if (!f) return luaL_error(L, "metrics: no metric '%s'", name);
  metrics_clear(f);
  return 0;
}

static int l_render(lua_State *L) {
  buf_t b = {0};
  if (metrics_render(&b) < 0) {
    buf_free(&b);
    return luaL_error(L, "metrics: out of memory rendering");
  }
  lua_pushlstring(L, b.data ? b.data : "", b.len);
  buf_free(&b);
  return 1;
}

static void push_labels(lua_State *L, const metric_family_t *f, const metric_series_t *s) {
  lua_createtable(L, 0, (int)f->nlabels);
  const char *p = s->labels;
  for (size_t i = 0; i < f->nlabels; i++, p += strlen(p) + 1) lfield_str(L, f->label[i], p);
  lua_setfield(L, -2, "labels");
}

static void push_series(lua_State *L, const metric_family_t *f, const metric_series_t *s) {
  lua_createtable(L, 0, 4);
  push_labels(L, f, s);
  if (f->type != METRIC_HISTOGRAM) {
    lfield_num(L, "value", s->value);
    return;
  }
  lfield_int(L, "count", (lua_Integer)s->count);
  lfield_num(L, "sum", s->value);
  lua_createtable(L, (int)f->nbuckets, 0);
  uint64_t cum = 0;
  for (size_t i = 0; i < f->nbuckets; i++) {
    cum += s->buckets[i];
    lua_createtable(L, 0, 2);
    lfield_num(L, "le", f->bound[i]);
    lfield_int(L, "count", (lua_Integer)cum);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "buckets");
}

static int l_snapshot(lua_State *L) {
  size_t n = metrics_family_count();
  lua_createtable(L, 0, (int)n);
  for (size_t i = 0; i < n; i++) {
    const metric_family_t *f = metrics_family_at(i);
    lua_createtable(L, 0, 3);
    lfield_str(L, "type", metrics_type_name(f->type));
    lfield_str(L, "help", f->help);
    lua_createtable(L, (int)f->nseries, 0);
    for (size_t j = 0; j < f->nseries; j++) {
      push_series(L, f, &f->series[j]);
      lua_rawseti(L, -2, (lua_Integer)j + 1);
    }
    lua_setfield(L, -2, "series");
    lua_setfield(L, -2, f->name);
  }
  return 1;
}

static int l_listen(lua_State *L) {
  const char *addr = luaL_checkstring(L, 1);
  int any = lua_toboolean(L, 2);
  char err[512];
  if (metrics_http_start(host_from_lua(L), addr, any, err, sizeof err) < 0) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushstring(L, metrics_http_address());
  return 1;
}

static int l_address(lua_State *L) {
  const char *a = metrics_http_address();
  if (*a) lua_pushstring(L, a);
  else luaL_pushfail(L);
  return 1;
}

static void set_hook(lua_State *L, const char *field, const char *key) {
  lua_getfield(L, 1, field);
  if (!lua_isnil(L, -1)) luaL_checktype(L, -1, LUA_TFUNCTION);
  lua_setfield(L, LUA_REGISTRYINDEX, key);
}

static int l_hooks(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  set_hook(L, "collect", METRICS_HOOK_COLLECT);
  set_hook(L, "ready", METRICS_HOOK_READY);
  return 0;
}

static const luaL_Reg FUNCS[] = {
    {"counter", l_counter}, {"gauge", l_gauge},     {"histogram", l_histogram}, {"inc", l_inc},
    {"set", l_set},         {"observe", l_observe}, {"clear", l_clear},         {"render", l_render},
    {"snapshot", l_snapshot}, {"listen", l_listen}, {"address", l_address},     {"hooks", l_hooks},
    {NULL, NULL}};

int luaopen_rotator_metrics(lua_State *L) {
  luaL_newlib(L, FUNCS);
  return 1;
}
