/* The allocator of the engine's Lua states. The engine makes and drops tens of thousands
 * of small objects a second (tables, strings, closures, coroutines); malloc and free cost
 * a few hundred instructions a pair there, a free list a few. So blocks of up to
 * LALLOC_SMALL bytes come from per-state free lists, one per 16-byte size class, carved
 * from 64 KiB slabs; larger ones from malloc. A freed small block stays in its list for the
 * state's next allocation of that class; the slabs go back to malloc when the state's last
 * block is freed (lua_close), so a closed state leaves nothing behind.
 * Under AddressSanitizer the state uses malloc for every block, so that it sees each one. */
#ifndef ROTATOR_LUA_ALLOC_H
#define ROTATOR_LUA_ALLOC_H
#include <lua.h>
#include <stddef.h>

#define LALLOC_SMALL 512

/* luaL_newstate with the pool allocator (the same panic and warning functions): the new
 * state, or NULL without memory. */
lua_State *lalloc_newstate(void);

/* The pool's figures, for tests: blocks live (small and large) and slabs held. */
typedef struct {
  size_t live, slabs;
} lalloc_stats_t;
int lalloc_stats(lua_State *L, lalloc_stats_t *out); /* 0, or -1 when L has no pool */

#endif
