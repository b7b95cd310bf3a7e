/* Command-line entry points implemented in C. */
#ifndef ROTATOR_CLI_H
#define ROTATOR_CLI_H
#include "core/host.h"

int cmd_sign(int argc, char **argv);   /* cli/sign.c */
int cmd_bench(int argc, char **argv);  /* cli/bench.c */
int cmd_repl(int argc, char **argv, const char *socket_path);    /* cli/repl.c */
int cmd_status(int argc, char **argv, const char *socket_path);  /* cli/repl.c */
/* Run a command implemented by the Lua engine (scripts/cli.lua): argv[0] is its name. */
int cmd_engine(host_t *h, int argc, char **argv);

#endif
