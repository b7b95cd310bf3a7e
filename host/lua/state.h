/* Creating the Lua state and calling into it. Every C→Lua call goes through
 * lstate_pcall, which adds a traceback and restores the stack on error. */
#ifndef ROTATOR_LUA_STATE_H
#define ROTATOR_LUA_STATE_H
#include <lua.h>
#include <stddef.h>

#include "core/host.h"

/* A fresh state: standard libraries, host modules in package.preload, package.path
 * pointing at the scripts folder, the host in the registry. NULL on out-of-memory. */
lua_State *lstate_new(host_t *h);

/* lua_pcall with a traceback handler. On error the message (with traceback) is left on
 * the stack, as lua_pcall does; returns the lua_pcall status. */
int lstate_pcall(lua_State *L, int nargs, int nresults);

/* Call a function already pushed with its nargs arguments, for a callback from the loop:
 * errors are logged with their traceback and never propagate. Returns 0 or -1. */
int lstate_callback(lua_State *L, int nargs, const char *what);

/* require(name) through the gateway; on success the module is on the stack (returns 0),
 * on failure the error message is (returns -1). */
int lstate_require(lua_State *L, const char *name);

/* The traceback message handler behind lstate_pcall, for other protected calls. */
int lstate_msghandler(lua_State *L);

/* The main thread of L's state: bindings that call back keep this, never the host's
 * current state, and resolve their registry refs in it. */
lua_State *lstate_owner(lua_State *L);

/* True when L belongs to the host's running state; false for a candidate being prepared
 * by a reload (inert until adopted: it must arm nothing that fires) and for a replaced one. */
int lstate_is_current(lua_State *L);

/* fn(L) runs (protected, errors logged) when a reload adopts L's state, e.g. to arm the
 * timers it deferred while it was a candidate. lstate_adopted runs them (lua/reload.c). */
void lstate_on_adopt(lua_State *L, lua_CFunction fn);
void lstate_adopted(lua_State *L);

#endif
