/* The commands implemented in C, and the engine that runs the Lua ones. main.c's command
 * table lists them for dispatch and for `rotator --help`. */
#ifndef ROTATOR_CLI_H
#define ROTATOR_CLI_H
#include <stddef.h>

#include "core/host.h"

int cmd_sign(int argc, char **argv);    /* cli/sign.c */
int cmd_bench(int argc, char **argv);   /* cli/bench.c */
int cmd_whoami(int argc, char **argv);  /* cli/whoami.c */
int cmd_repl(int argc, char **argv, const char *socket_path);    /* cli/repl.c */
int cmd_status(int argc, char **argv, const char *socket_path);  /* cli/status.c */

/* The control-socket client (cli/repl.c): connect, or -1 with the reason and the next
 * step on stderr; send one frame of type and print the answer, returning the final frame
 * type or -1. */
int ctl_connect(const char *path);
int ctl_exchange(int fd, int type, const char *chunk, size_t n);

/* Run a command implemented by the Lua engine (scripts/cli.lua): argv[0] is its name. */
int cmd_engine(host_t *h, int argc, char **argv);

/* Calls each(ud, name, summary) for every Lua command scripts/cli.lua lists for --help
 * (strings valid during the call only). 0, or -1 with the reason in err. */
typedef void (*engine_command_fn)(void *ud, const char *name, const char *summary);
int engine_commands(host_t *h, engine_command_fn each, void *ud, char *err, size_t errlen);

#endif
