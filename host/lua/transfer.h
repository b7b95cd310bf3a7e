/* A JSON-shaped value copied from one Lua state into another without a text round trip:
 * the hot reload hands the in-flight workflow documents to the new state this way.
 * What crosses is what json.encode accepts: nil, booleans, numbers (integers stay
 * integers, floats stay floats), strings, json.null and tables of those keyed by strings
 * or numbers, with their json.array / json.object marks; anything else (functions,
 * userdata, threads, other keys, nesting deeper than 1000 levels, a cycle) is refused,
 * the error naming the path as json.encode would ("cannot encode a function value at
 * $.workflows[3].Steps"). */
#ifndef ROTATOR_LUA_TRANSFER_H
#define ROTATOR_LUA_TRANSFER_H
#include <lua.h>
#include <stddef.h>

/* Pushes onto `to` a copy of the value at index idx of `from`. Returns 0, or -1 with the
 * reason in err (nothing pushed). `to` must not be running; `from` is only read: its
 * stack must have room (it is grown up front and never raises). */
int transfer_value(lua_State *from, int idx, lua_State *to, char *err, size_t errlen);

#endif
