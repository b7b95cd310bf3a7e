/* getopt_long for the C commands (see args.h). Messages are ours, not getopt's, so every
 * usage error reads the same and names the command's --help. */
#include "cli/args.h"

#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_usage_error(const char *cmd, const char *what, const char *arg) {
  log_report("rotator %s: %s%s%s\nTry 'rotator %s --help'.\n", cmd, what,
          arg ? ": " : "", arg ? arg : "", cmd);
  return 2;
}

/* opts plus --help, in a table getopt_long can take; NULL when out of memory. */
static struct option *with_help(const struct option *opts) {
  size_t n = 0;
  while (opts[n].name) n++;
  struct option *all = calloc(n + 2, sizeof *all);
  if (!all) return NULL;
  memcpy(all, opts, n * sizeof *all);
  all[n] = (struct option){"help", no_argument, NULL, 'h'};
  return all;
}

/* The message for the option getopt just refused (c is '?' or ':'). */
static int refused(const char *cmd, int c, char **argv) {
  const char *arg = argv[optind - 1];
  if (c == ':') return cli_usage_error(cmd, "missing value for", arg);
  return cli_usage_error(cmd, "unknown option", arg);
}

static int run_getopt(int argc, char **argv, const struct option *all, const char *help,
                      cli_opt_fn fn, void *ud) {
  int c;
  while ((c = getopt_long(argc, argv, ":h", all, NULL)) != -1) {
    if (c == 'h') return fputs(help, stdout), 1;
    if (c == '?' || c == ':') return refused(argv[0], c, argv);
    int rc = fn(ud, c, optarg);
    if (rc) return rc;
  }
  return 0;
}

int cli_parse(int argc, char **argv, const struct option *opts, const char *help,
              cli_opt_fn fn, void *ud, int *operands) {
  struct option *all = with_help(opts);
  if (!all) {
    log_report("rotator %s: out of memory\n", argv[0]);
    return 2;
  }
  optind = 0; /* glibc: a full reset, in case a caller parsed before */
  opterr = 0;
  int rc = run_getopt(argc, argv, all, help, fn, ud);
  free(all);
  if (rc == 0 && operands) *operands = optind;
  return rc;
}

int cli_parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out) {
  char *end;
  if (!s || *s < '0' || *s > '9') return -1;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || *end || v < min || v > max) return -1;
  *out = v;
  return 0;
}
