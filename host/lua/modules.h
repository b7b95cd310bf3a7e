/* Lua modules the host registers in package.preload, so scripts `require` them.
 * One C file per module (lua_<name>.c), each exporting luaopen_rotator_<name>. */
#ifndef ROTATOR_MODULES_H
#define ROTATOR_MODULES_H
#include <lua.h>

int luaopen_rotator_re(lua_State *L);     /* lua/lib/re.c: PCRE2 with Go-style replace */
int luaopen_rotator_json(lua_State *L);   /* lua/lib/json.c: JSON codec with AWS conventions */
int luaopen_rotator_clock(lua_State *L);  /* lua/lib/clock.c: wall/monotonic, RFC 3339, layouts */
int luaopen_rotator_timer(lua_State *L);  /* lua/lib/timer.c: after/every on the event loop */
int luaopen_rotator_log(lua_State *L);    /* lua/lib/log.c: structured logging */
int luaopen_rotator_host(lua_State *L);   /* lua/lib/host.c: signals, files, config, stop */
int luaopen_rotator_journal(lua_State *L); /* lua/lib/journal.c: the durable workflow journal */
int luaopen_rotator_control(lua_State *L); /* lua/lib/control.c: the REPL/status socket */
int luaopen_rotator_jsonstream(lua_State *L); /* lua/lib/jsonstream.c: JSON records from a file, streamed */
int luaopen_rotator_aws_core(lua_State *L); /* lua/lib/aws.c: AWS calls (scripts/aws/init.lua wraps it) */
int luaopen_rotator_metrics(lua_State *L); /* lua/lib/metrics.c: the metrics registry and listener */

#endif
