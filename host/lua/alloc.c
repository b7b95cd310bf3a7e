/* Pool allocator of the Lua states; see lua/alloc.h. */
#include "lua/alloc.h"

#include <lauxlib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define LALLOC_POOL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LALLOC_POOL 0
#endif
#endif
#ifndef LALLOC_POOL
#define LALLOC_POOL 1
#endif

#define CLASS_BYTES 16
#define CLASSES (LALLOC_SMALL / CLASS_BYTES)
#define SLAB_BYTES (64 * 1024)
#define SLAB_HEAD 16 /* the link to the next slab; keeps blocks 16-byte aligned */

typedef struct block {
  struct block *next;
} block_t;

typedef struct {
  block_t *free[CLASSES + 1]; /* by class: (size + 15) / 16 */
  char *bump, *end;           /* the unused part of the newest slab */
  void *slabs;                /* newest first, linked through their first bytes */
  size_t live, nslabs;
  int armed;                  /* the state exists: its last free releases the pool */
  int warn_on, warn_cont;     /* warn(): "@on" / "@off", and a message in pieces */
} pool_t;

static size_t class_of(size_t n) { return (n + CLASS_BYTES - 1) / CLASS_BYTES; }

static void pool_release(pool_t *p) {
  for (void *s = p->slabs; s;) {
    void *next = *(void **)s;
    free(s);
    s = next;
  }
  free(p);
}

/* A block of class c, or NULL without memory. */
static void *take(pool_t *p, size_t c) {
  block_t *b = p->free[c];
  if (b) {
    p->free[c] = b->next;
    return b;
  }
  size_t n = c * CLASS_BYTES;
  if ((size_t)(p->end - p->bump) < n) {
    char *s = malloc(SLAB_BYTES);
    if (!s) return NULL;
    *(void **)s = p->slabs;
    p->slabs = s;
    p->nslabs++;
    p->bump = s + SLAB_HEAD;
    p->end = s + SLAB_BYTES;
  }
  void *r = p->bump;
  p->bump += n;
  return r;
}

static void give(pool_t *p, void *ptr, size_t c) {
  block_t *b = ptr;
  b->next = p->free[c];
  p->free[c] = b;
}

/* lua_Alloc. A block's size decides where it lives: up to LALLOC_SMALL in the pool,
 * above it from malloc, so a realloc across the line moves the block. */
static void *pool_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  pool_t *p = ud;
  if (nsize == 0) {
    if (!ptr) return NULL;
    if (osize <= LALLOC_SMALL) give(p, ptr, class_of(osize));
    else free(ptr);
    if (--p->live == 0 && p->armed) pool_release(p);
    return NULL;
  }
  if (!ptr) { /* osize is the kind of object then, not a size */
    void *r = nsize <= LALLOC_SMALL ? take(p, class_of(nsize)) : malloc(nsize);
    if (r) p->live++;
    return r;
  }
  if (osize > LALLOC_SMALL && nsize > LALLOC_SMALL) return realloc(ptr, nsize);
  if (osize <= LALLOC_SMALL && nsize <= LALLOC_SMALL && class_of(osize) == class_of(nsize)) return ptr;
  void *r = nsize <= LALLOC_SMALL ? take(p, class_of(nsize)) : malloc(nsize);
  if (!r) {
    /* a smaller pool block fits in this one: keep it (freed later as the smaller class) */
    if (osize <= LALLOC_SMALL && nsize < osize) return ptr;
    return NULL;
  }
  memcpy(r, ptr, osize < nsize ? osize : nsize);
  if (osize <= LALLOC_SMALL) give(p, ptr, class_of(osize));
  else free(ptr);
  return r;
}

static int on_panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "PANIC: unprotected error in call to Lua API (%s)\n",
          msg ? msg : "error object is not a string");
  fflush(stderr);
  return 0; /* Lua aborts */
}

/* warn(): off until "@on", as with luaL_newstate; a message may come in pieces. */
static void on_warn(void *ud, const char *msg, int tocont) {
  pool_t *p = ud;
  int first = !p->warn_cont;
  p->warn_cont = tocont;
  if (first && !tocont && msg[0] == '@') { /* a control message, never printed */
    if (strcmp(msg + 1, "on") == 0) p->warn_on = 1;
    else if (strcmp(msg + 1, "off") == 0) p->warn_on = 0;
    return;
  }
  if (!p->warn_on) return;
  if (first) fputs("Lua warning: ", stderr);
  fputs(msg, stderr);
  if (!tocont) fputs("\n", stderr);
  fflush(stderr);
}

lua_State *lalloc_newstate(void) {
  if (!LALLOC_POOL) return luaL_newstate();
  pool_t *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  lua_State *L = lua_newstate(pool_alloc, p);
  if (!L) {
    pool_release(p); /* whatever it took was given back; live is 0 */
    return NULL;
  }
  p->armed = 1;
  lua_atpanic(L, on_panic);
  lua_setwarnf(L, on_warn, p);
  return L;
}

int lalloc_stats(lua_State *L, lalloc_stats_t *out) {
  void *ud;
  if (lua_getallocf(L, &ud) != pool_alloc) return -1;
  const pool_t *p = ud;
  out->live = p->live;
  out->slabs = p->nslabs;
  return 0;
}
