/* A buf_t owned by a Lua userdata, so a Lua error raised while it fills cannot leak it
 * (the __gc frees it). Used by encoders that build large strings in C. */
#ifndef ROTATOR_LUA_BUF_H
#define ROTATOR_LUA_BUF_H
#include <lua.h>

#include "core/buf.h"

buf_t *lbuf_push(lua_State *L);                       /* pushes the owning userdata */
void lbuf_put(lua_State *L, buf_t *b, const void *p, size_t n); /* raises on OOM */
int lbuf_sink(void *b, const char *p, size_t n);      /* callback form: 0 or -1 */
/* Replace the owning userdata at the stack top by the contents as a string. */
void lbuf_to_string(lua_State *L, buf_t *b);

#endif
