/* The one option parser of the C commands: getopt_long with the command's option table,
 * --help/-h printing the command's help, and one way to report a usage error. */
#ifndef ROTATOR_CLI_ARGS_H
#define ROTATOR_CLI_ARGS_H
#include <getopt.h>

/* Called once per option in argv order: id is the option's `val`, arg its value or NULL.
 * Returns 0, or the result of cli_usage_error() to stop with a usage error. */
typedef int (*cli_opt_fn)(void *ud, int id, const char *arg);

/* Parses argv (argv[0] is the command name, e.g. "sign") with getopt_long against opts
 * (no -h/--help entry needed: both print help on stdout). On 0, *operands is the index
 * of the first operand (getopt permutes operands to the end). Returns 0 = run,
 * 1 = help printed, 2 = usage error (already reported on stderr). */
int cli_parse(int argc, char **argv, const struct option *opts, const char *help,
              cli_opt_fn fn, void *ud, int *operands);

/* "rotator CMD: WHAT[: ARG]" and a pointer to `rotator CMD --help` on stderr; returns 2,
 * the exit status of a usage error. */
int cli_usage_error(const char *cmd, const char *what, const char *arg);

/* Parses a whole decimal number in [min, max]; 0, or -1 for anything else. */
int cli_parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out);

#endif
