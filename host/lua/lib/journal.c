/* `journal` module: the durable workflow journal (journal.c) for scripts.
 *   journal.open(path [, {readonly = true, checked = true}]) -> j | nil, msg
 *       checked: this process already checked the file (a reload): no quick_check
 *   j:append(id, step, doc [, meta]) -> seq | nil, msg   doc: JSON text or a table
 *       (encoded with require "json"); meta: {state, source, backup_job, finished, at}.
 *       Returns after the commit is fsync'd; inside a batch, once the record is written.
 *   j:begin() -> true | nil, msg, kind     open a batch (group commit): appends until
 *   j:commit() -> true | nil, msg, kind    the commit share one transaction and one fsync;
 *   j:rollback()                           none is durable before commit returns true
 *   j:get(id), j:find_backup_job(job) -> workflow | nil   (nil, msg on error)
 *       workflow = {id, state, source, backup_job, started, updated, finished (bool),
 *                   doc (JSON text), transitions (count kept)}
 *   j:list{unfinished = bool, limit = n} -> {workflow...}, newest update first
 *   j:history(id) -> {{seq, workflow, step, at, doc}...}, oldest first
 *   j:compact{keep_finished = n, older_than = seconds | false, now = t}
 *       -> {transitions_deleted, workflows_deleted}
 *   j:counts() -> workflows, transitions
 *   j:check{quick = bool} -> {problem...} (empty: sound)   PRAGMA quick_check / integrity_check
 *   j:checkpoint() -> {wal_frames, checkpointed, busy}     fold the WAL in and truncate it
 *   j:path(), j:close(); __gc and __close close too.
 *   journal.getuid() -> the real uid (for the default state directory)
 * Bad arguments and use after close raise; database failures return nil, msg, kind
 * (kind: "disk_full", "io_error", "read_only", "no_access", "corrupt", "busy",
 * "constraint" or "error").
 * A candidate state being prepared by a reload is inert: it cannot append (reads are
 * harmless), and neither can a replaced state (lstate_is_current). */
#include <lauxlib.h>
#include <stdlib.h>
#include <unistd.h>

#include "store/journal.h"
#include "lua/modules.h"
#include "lua/state.h"
#include "lua/fields.h"

#define JOURNAL_MT "rotator.journal"

typedef struct { journal_t *j; } ljournal_t;

static journal_t *check_open(lua_State *L) {
  ljournal_t *lj = luaL_checkudata(L, 1, JOURNAL_MT);
  if (!lj->j) luaL_error(L, "journal is closed");
  return lj->j;
}

static int fail(lua_State *L, journal_t *j) {
  lua_pushnil(L);
  lua_pushstring(L, journal_errmsg(j));
  lua_pushstring(L, journal_errkind(j));
  return 3;
}

static int j_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int flags = 0;
  if (lua_istable(L, 2) && lua_getfield(L, 2, "readonly") != LUA_TNIL && lua_toboolean(L, -1))
    flags |= JOURNAL_READONLY;
  if (lua_istable(L, 2) && lua_getfield(L, 2, "checked") != LUA_TNIL && lua_toboolean(L, -1))
    flags |= JOURNAL_CHECKED;
  ljournal_t *lj = lua_newuserdatauv(L, sizeof *lj, 0);
  lj->j = NULL;
  luaL_setmetatable(L, JOURNAL_MT);
  char *err = NULL;
  lj->j = journal_open(path, flags, &err);
  if (!lj->j) {
    lua_pushnil(L);
    lua_pushstring(L, err ? err : "journal: out of memory");
    free(err);
    return 2;
  }
  return 1;
}

/* ------------------------------------------------------------------ append */

/* Leave the document's JSON text on the stack top. */
static const char *doc_text(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TSTRING) {
    lua_pushvalue(L, idx);
    return lua_tostring(L, -1);
  }
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "json");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "encode");
  lua_pushvalue(L, idx);
  lua_call(L, 1, 2);
  if (lua_isnil(L, -2))
    luaL_error(L, "journal: the document cannot be encoded as JSON: %s", lua_tostring(L, -1));
  lua_pop(L, 1);
  lua_remove(L, -2); /* the json module */
  return lua_tostring(L, -1);
}

static const char *opt_field(lua_State *L, int t, const char *k) {
  if (!lua_istable(L, t)) return NULL;
  lua_getfield(L, t, k); /* stays on the stack so the string lives until the call ends */
  if (lua_isnil(L, -1)) return NULL;
  if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "journal: meta.%s must be a string", k);
  return lua_tostring(L, -1);
}

static int check_writer(lua_State *L) {
  if (!lstate_is_current(L))
    return luaL_error(L, "journal: only the running state writes the journal (this one is being prepared by a reload, or was replaced)");
  return 0;
}

static int j_append(lua_State *L) {
  journal_t *j = check_open(L);
  check_writer(L);
  journal_entry_t e = {.workflow = luaL_checkstring(L, 2), .step = luaL_checkstring(L, 3)};
  if (!lua_isnoneornil(L, 5)) luaL_checktype(L, 5, LUA_TTABLE);
  e.doc = doc_text(L, 4);
  e.state = opt_field(L, 5, "state");
  e.source = opt_field(L, 5, "source");
  e.backup_job = opt_field(L, 5, "backup_job");
  if (lua_istable(L, 5)) {
    lua_getfield(L, 5, "finished");
    e.finished = lua_toboolean(L, -1);
    lua_getfield(L, 5, "at");
    e.at = luaL_optnumber(L, -1, 0);
  }
  int64_t seq = 0;
  if (journal_append(j, &e, &seq) < 0) return fail(L, j);
  lua_pushinteger(L, (lua_Integer)seq);
  return 1;
}

static int j_begin(lua_State *L) {
  journal_t *j = check_open(L);
  check_writer(L);
  if (journal_begin(j) < 0) return fail(L, j);
  lua_pushboolean(L, 1);
  return 1;
}

static int j_commit(lua_State *L) {
  journal_t *j = check_open(L);
  if (journal_commit(j) < 0) return fail(L, j);
  lua_pushboolean(L, 1);
  return 1;
}

static int j_rollback(lua_State *L) {
  journal_rollback(check_open(L));
  return 0;
}

/* ------------------------------------------------------------------ reading */

static void push_workflow(lua_State *L, const journal_workflow_t *w) {
  lua_createtable(L, 0, 9);
  lfield_str(L, "id", w->id);
  lfield_str(L, "state", w->state);
  lfield_str(L, "source", w->source);
  lfield_str(L, "backup_job", w->backup_job);
  lfield_str(L, "doc", w->doc);
  lfield_num(L, "started", w->started);
  lfield_num(L, "updated", w->updated);
  lua_pushboolean(L, w->finished);
  lua_setfield(L, -2, "finished");
  lua_pushinteger(L, (lua_Integer)w->transitions);
  lua_setfield(L, -2, "transitions");
}

/* Appends to the array at the stack top. */
static int add_workflow(const journal_workflow_t *w, void *ud) {
  lua_State *L = ud;
  push_workflow(L, w);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  return 0;
}

static int add_transition(const journal_transition_t *t, void *ud) {
  lua_State *L = ud;
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, (lua_Integer)t->seq);
  lua_setfield(L, -2, "seq");
  lfield_str(L, "workflow", t->workflow);
  lfield_str(L, "step", t->step);
  lfield_str(L, "doc", t->doc);
  lfield_num(L, "at", t->at);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  return 0;
}

typedef int (*lookup_fn)(journal_t *, const char *, journal_workflow_fn, void *);

static int lookup(lua_State *L, lookup_fn fn) {
  journal_t *j = check_open(L);
  const char *key = luaL_checkstring(L, 2);
  lua_newtable(L);
  int n = fn(j, key, add_workflow, L);
  if (n < 0) return fail(L, j);
  if (n == 0) lua_pushnil(L);
  else lua_rawgeti(L, -1, 1);
  return 1;
}

static int j_get(lua_State *L) { return lookup(L, journal_get); }
static int j_find_backup_job(lua_State *L) { return lookup(L, journal_find_backup_job); }

static int j_list(lua_State *L) {
  journal_t *j = check_open(L);
  journal_filter_t f = {0, 0};
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "unfinished");
    f.unfinished_only = lua_toboolean(L, -1);
    lua_getfield(L, 2, "limit");
    f.limit = (int64_t)luaL_optinteger(L, -1, 0);
    lua_pop(L, 2);
  }
  lua_newtable(L);
  if (journal_list(j, &f, add_workflow, L) < 0) return fail(L, j);
  return 1;
}

static int j_history(lua_State *L) {
  journal_t *j = check_open(L);
  const char *id = luaL_checkstring(L, 2);
  lua_newtable(L);
  if (journal_history(j, id, add_transition, L) < 0) return fail(L, j);
  return 1;
}

static int j_counts(lua_State *L) {
  journal_t *j = check_open(L);
  int64_t w = 0, t = 0;
  if (journal_counts(j, &w, &t) < 0) return fail(L, j);
  lua_pushinteger(L, (lua_Integer)w);
  lua_pushinteger(L, (lua_Integer)t);
  return 2;
}

static int add_problem(const char *problem, void *ud) {
  lua_State *L = ud;
  lua_pushstring(L, problem);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  return 0;
}

static int j_check(lua_State *L) {
  journal_t *j = check_open(L);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  int quick = lua_istable(L, 2) && lua_getfield(L, 2, "quick") != LUA_TNIL && lua_toboolean(L, -1);
  lua_newtable(L);
  if (journal_check(j, quick, add_problem, L) < 0) return fail(L, j);
  return 1;
}

static int j_checkpoint(lua_State *L) {
  journal_t *j = check_open(L);
  int frames = 0, done = 0;
  int rc = journal_checkpoint(j, &frames, &done);
  if (rc < 0) return fail(L, j);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, frames);
  lua_setfield(L, -2, "wal_frames");
  lua_pushinteger(L, done);
  lua_setfield(L, -2, "checkpointed");
  lua_pushboolean(L, rc == 1);
  lua_setfield(L, -2, "busy");
  return 1;
}

/* ------------------------------------------------------------------ compaction */

static int j_compact(lua_State *L) {
  journal_t *j = check_open(L);
  journal_compact_t c = {.keep_finished = 100, .older_than = -1, .now = 0};
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "keep_finished");
    c.keep_finished = (int64_t)luaL_optinteger(L, -1, 100);
    luaL_argcheck(L, c.keep_finished >= 0, 2, "keep_finished must be >= 0");
    if (lua_getfield(L, 2, "older_than") != LUA_TNIL && lua_toboolean(L, -1))
      c.older_than = luaL_checknumber(L, -1);
    lua_getfield(L, 2, "now");
    c.now = luaL_optnumber(L, -1, 0);
  }
  journal_compact_result_t r;
  if (journal_compact(j, &c, &r) < 0) return fail(L, j);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, (lua_Integer)r.transitions_deleted);
  lua_setfield(L, -2, "transitions_deleted");
  lua_pushinteger(L, (lua_Integer)r.workflows_deleted);
  lua_setfield(L, -2, "workflows_deleted");
  return 1;
}

/* ------------------------------------------------------------------ lifetime */

static int j_close(lua_State *L) {
  ljournal_t *lj = luaL_checkudata(L, 1, JOURNAL_MT);
  journal_close(lj->j);
  lj->j = NULL;
  return 0;
}

static int j_path(lua_State *L) {
  lua_pushstring(L, journal_path(check_open(L)));
  return 1;
}

static int j_tostring(lua_State *L) {
  ljournal_t *lj = luaL_checkudata(L, 1, JOURNAL_MT);
  if (lj->j) lua_pushfstring(L, "journal(%s)", journal_path(lj->j));
  else lua_pushliteral(L, "journal(closed)");
  return 1;
}

static int j_getuid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getuid());
  return 1;
}

static const luaL_Reg methods[] = {
    {"append", j_append}, {"begin", j_begin}, {"commit", j_commit}, {"rollback", j_rollback}, {"get", j_get}, {"find_backup_job", j_find_backup_job},
    {"list", j_list}, {"history", j_history}, {"counts", j_counts},
    {"compact", j_compact}, {"check", j_check}, {"checkpoint", j_checkpoint}, {"path", j_path}, {"close", j_close}, {NULL, NULL}};
static const luaL_Reg metamethods[] = {
    {"__gc", j_close}, {"__close", j_close}, {"__tostring", j_tostring}, {NULL, NULL}};
static const luaL_Reg funcs[] = {{"open", j_open}, {"getuid", j_getuid}, {NULL, NULL}};

int luaopen_rotator_journal(lua_State *L) {
  luaL_newmetatable(L, JOURNAL_MT);
  luaL_setfuncs(L, metamethods, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  lua_pushinteger(L, JOURNAL_SCHEMA_VERSION);
  lua_setfield(L, -2, "schema_version");
  return 1;
}
