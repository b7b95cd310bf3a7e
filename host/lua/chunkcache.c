/* Compiled engine scripts kept across hot reloads (see chunkcache.h). */
#include "lua/chunkcache.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct chunk {
  char *path;
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
  char *code;
  size_t len;
  struct chunk *next;
} chunk_t;

static chunk_t *chunks; /* a few dozen engine modules: a list is enough */
static unsigned long hits;

typedef struct {
  char *buf;
  size_t len, cap;
  int failed;
} dump_t;

static int writer(lua_State *L, const void *p, size_t n, void *ud) {
  (void)L;
  dump_t *d = ud;
  if (d->failed) return 1;
  if (d->len + n > d->cap) {
    size_t cap = d->cap ? d->cap : 4096;
    while (cap < d->len + n) cap *= 2;
    char *b = realloc(d->buf, cap);
    if (!b) {
      d->failed = 1;
      return 1;
    }
    d->buf = b, d->cap = cap;
  }
  memcpy(d->buf + d->len, p, n);
  d->len += n;
  return 0;
}

static chunk_t *find(const char *path) {
  for (chunk_t *c = chunks; c; c = c->next)
    if (strcmp(c->path, path) == 0) return c;
  return NULL;
}

static int same_file(const chunk_t *c, const struct stat *st) {
  return c->dev == st->st_dev && c->ino == st->st_ino && c->size == st->st_size &&
         c->mtime.tv_sec == st->st_mtim.tv_sec && c->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* Keep the bytecode of the function on the top of L for path (as it was at st). A chunk
 * that cannot be kept (out of memory) is simply compiled again next time. */
static void keep(lua_State *L, const char *path, const struct stat *st) {
  dump_t d = {0};
  if (lua_dump(L, writer, &d, 0) != 0 || d.failed) {
    free(d.buf);
    return;
  }
  chunk_t *c = find(path);
  if (!c) {
    c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(path))) {
      free(c);
      free(d.buf);
      return;
    }
    c->next = chunks;
    chunks = c;
  }
  free(c->code);
  c->code = d.buf, c->len = d.len;
  c->dev = st->st_dev, c->ino = st->st_ino, c->size = st->st_size, c->mtime = st->st_mtim;
}

/* searcher(name) -> loader, path | message: package.searchers' Lua file searcher. */
static int searcher(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchpath");
  lua_pushstring(L, name);
  lua_getfield(L, -3, "path");
  lua_call(L, 2, 2);
  if (lua_isnil(L, -2)) return 1; /* the message of the paths tried */
  lua_pop(L, 1);
  const char *path = lua_tostring(L, -1);
  struct stat st;
  chunk_t *c = stat(path, &st) == 0 ? find(path) : NULL;
  int rc;
  if (c && same_file(c, &st)) {
    rc = luaL_loadbufferx(L, c->code, c->len, path, "b");
    hits++;
  } else {
    rc = luaL_loadfilex(L, path, NULL);
    if (rc == LUA_OK && S_ISREG(st.st_mode)) keep(L, path, &st);
  }
  if (rc != LUA_OK)
    return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, path, lua_tostring(L, -1));
  lua_insert(L, -2); /* loader, path */
  return 2;
}

void chunkcache_install(lua_State *L) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  lua_pushcfunction(L, searcher);
  lua_rawseti(L, -2, 2);
  lua_pop(L, 2);
}

unsigned long chunkcache_hits(void) { return hits; }

void chunkcache_clear(void) {
  while (chunks) {
    chunk_t *c = chunks;
    chunks = c->next;
    free(c->path);
    free(c->code);
    free(c);
  }
}
