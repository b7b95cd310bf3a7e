/* Compiled engine scripts kept across hot reloads. A reload builds a fresh Lua state and
 * loads every engine module again; parsing their source is most of that work (about 9 ms
 * of CPU for the engine on this project's reference machine, against about 1 ms to load
 * the same modules from bytecode). chunkcache_install(L) makes `require` in L find Lua
 * modules on package.path as the standard searcher does, but loads a module from the
 * bytecode kept for its file when the file is unchanged (same device, inode, size and
 * modification time in nanoseconds), and keeps the bytecode of what it had to compile.
 * Debug information is kept, so errors still name file:line. Only the engine's scripts
 * go through it (policies are loaded as text by policy/loader.lua). The cache is
 * process-wide, filled by the first reload (a daemon that never reloads holds nothing)
 * and freed by chunkcache_clear(). */
#ifndef ROTATOR_LUA_CHUNKCACHE_H
#define ROTATOR_LUA_CHUNKCACHE_H
#include <lua.h>

/* Replace package.searchers[2] (the Lua file searcher) of L with the caching one. */
void chunkcache_install(lua_State *L);

/* How many modules were loaded from kept bytecode since the start (tests, diagnostics). */
unsigned long chunkcache_hits(void);

/* Drop every kept chunk. */
void chunkcache_clear(void);

#endif
