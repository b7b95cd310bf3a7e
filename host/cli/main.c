/* rotator: command-line entry. Global options are taken from anywhere before `--`;
 * C commands (sign, bench, version) run directly, every other command is the Lua
 * engine's (scripts/cli.lua). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/log.h"
#include "version.h"

typedef struct {
  const char *scripts, *policies, *state_dir, *log_format, *log_level, *stop_timeout;
  int trace_aws;
} globals_t;

int cmd_whoami(int argc, char **argv); /* cli/whoami.c */

static const char USAGE[] =
    "usage: rotator [GLOBAL OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "Rotator restores DynamoDB backups into fresh copies when AWS Backup finishes a job,\n"
    "and points an SSM parameter at the new table.\n"
    "\n"
    "Commands:\n"
    "  run       run the daemon: poll the queue, restore, update SSM\n"
    "  replay    feed a notification file through the workflow (--dry-run plans only)\n"
    "  redrive   the dead-letter queue's notifications back through the workflow\n"
    "  check     load and validate scripts and policies\n"
    "  eval      run a Lua chunk in a fully loaded state and print the results\n"
    "  test      run Lua test files inside the host\n"
    "  repl      attach a Lua REPL to the running daemon (--local: without a daemon)\n"
    "  status    the running daemon's status (--json)\n"
    "  journal   read the workflow journal without the daemon\n"
    "  whoami    where AWS credentials, region and endpoints come from (--call: STS)\n"
    "  sign      sign a raw HTTP request with SigV4 (debug SignatureDoesNotMatch)\n"
    "  bench     micro-benchmarks (bench sign)\n"
    "  version   print the version\n"
    "\n"
    "Global options (also from the environment):\n"
    "  --scripts DIR        engine scripts        (ROTATOR_SCRIPTS)\n"
    "  --policies DIR       operator policies     (ROTATOR_POLICIES)\n"
    "  --state-dir DIR      journal and socket    (ROTATOR_STATE_DIR; default\n"
    "                       /var/lib/rotator as root, else ~/.local/state/rotator)\n"
    "  --log-format F       text or json          (ROTATOR_LOG_FORMAT, default text)\n"
    "  --log-level L        debug|info|warn|error (ROTATOR_LOG_LEVEL, default info)\n"
    "  --stop-timeout SEC   graceful stop deadline (default 30)\n"
    "  --trace-aws          log every AWS request and response, secrets redacted\n"
    "                       (ROTATOR_TRACE_AWS=1)\n"
    "\n"
    "Examples:\n"
    "  rotator check\n"
    "  rotator eval 'return require(\"re\").replace(\"orders-production\", \"-production$\", "
    "\"-staging\")'\n"
    "  rotator run --queue-url https://sqs.us-east-1.amazonaws.com/123456789012/rotator\n"
    "\n"
    "`rotator COMMAND --help` shows a command's options.\n";

static const char *const OPT_NAMES[] = {"--scripts", "--policies", "--state-dir",
                                        "--log-format", "--log-level", "--stop-timeout"};

static const char **opt_slot(globals_t *g, size_t i) {
  const char **slots[] = {&g->scripts, &g->policies, &g->state_dir,
                          &g->log_format, &g->log_level, &g->stop_timeout};
  return slots[i];
}

/* Match argv[*i] against the global options; consume its value. 1 = taken, 0 = not a
 * global option, -1 = missing value. */
static int take_global(globals_t *g, int argc, char **argv, int *i) {
  for (size_t k = 0; k < sizeof OPT_NAMES / sizeof *OPT_NAMES; k++) {
    size_t n = strlen(OPT_NAMES[k]);
    if (strncmp(argv[*i], OPT_NAMES[k], n) != 0) continue;
    if (argv[*i][n] == '=') { *opt_slot(g, k) = argv[*i] + n + 1; return 1; }
    if (argv[*i][n] != '\0') continue;
    if (*i + 1 >= argc) {
      fprintf(stderr, "rotator: %s needs a value (see rotator --help)\n", OPT_NAMES[k]);
      return -1;
    }
    *opt_slot(g, k) = argv[++*i];
    return 1;
  }
  return 0;
}

/* Remove global options from argv in place; returns the new argc or -1. */
static int parse_globals(globals_t *g, int argc, char **argv) {
  int out = 1, i = 1;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    if (!strcmp(argv[i], "--trace-aws")) { g->trace_aws = 1; continue; }
    int r = take_global(g, argc, argv, &i);
    if (r < 0) return -1;
    if (r == 0) argv[out++] = argv[i];
  }
  for (; i < argc; i++) argv[out++] = argv[i];
  argv[out] = NULL;
  return out;
}

static void env_default(const char **slot, const char *env) {
  if (!*slot) *slot = getenv(env);
}

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Find NAME (scripts/policies) next to the binary: ./NAME, ../share/rotator/NAME (an
 * installed layout), or ../../NAME (a build output folder such as build/asan). */
static const char *beside_binary(const char *name, char *buf, size_t len) {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return name;
  exe[n] = '\0';
  char *slash = strrchr(exe, '/');
  if (slash) *slash = '\0';
  const char *fmts[] = {"%s/%s", "%s/../share/rotator/%s", "%s/../../%s"};
  for (size_t i = 0; i < 3; i++) {
    int m = snprintf(buf, len, fmts[i], exe, name);
    if (m > 0 && (size_t)m < len && is_dir(buf)) return buf;
  }
  return name;
}

static int apply_logging(const globals_t *g) {
  log_format_t fmt;
  log_level_t lvl;
  if (g->log_format && log_parse_format(g->log_format, &fmt) < 0) {
    fprintf(stderr, "rotator: unknown log format '%s': use text or json\n", g->log_format);
    return -1;
  }
  if (g->log_level && log_parse_level(g->log_level, &lvl) < 0) {
    fprintf(stderr, "rotator: unknown log level '%s': use debug, info, warn or error\n",
            g->log_level);
    return -1;
  }
  if (g->log_format) log_set_format(fmt);
  if (g->log_level) log_set_level(lvl);
  return 0;
}

static int parse_stop_timeout(const char *s, uint64_t *ms) {
  char *end;
  errno = 0;
  double v = s ? strtod(s, &end) : 30.0;
  if (s && (errno || end == s || *end || v < 0 || v > 86400)) {
    fprintf(stderr, "rotator: --stop-timeout '%s' is not a number of seconds (0-86400)\n", s);
    return -1;
  }
  *ms = (uint64_t)(v * 1000.0);
  return 0;
}

/* The state directory: the flag or ROTATOR_STATE_DIR, else /var/lib/rotator for root,
 * else $XDG_STATE_HOME/rotator or ~/.local/state/rotator. */
static const char *default_state_dir(char *buf, size_t len) {
  const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
  int n;
  if (geteuid() == 0) n = snprintf(buf, len, "/var/lib/rotator");
  else if (xdg && *xdg) n = snprintf(buf, len, "%s/rotator", xdg);
  else n = snprintf(buf, len, "%s/.local/state/rotator", home ? home : ".");
  return n > 0 && (size_t)n < len ? buf : "state";
}

/* Children (repl --local) and scripts see the same settings through the environment. */
static void export_globals(const globals_t *g) {
  if (g->scripts) setenv("ROTATOR_SCRIPTS", g->scripts, 1);
  if (g->policies) setenv("ROTATOR_POLICIES", g->policies, 1);
  if (g->state_dir) setenv("ROTATOR_STATE_DIR", g->state_dir, 1);
  if (g->log_format) setenv("ROTATOR_LOG_FORMAT", g->log_format, 1);
  if (g->log_level) setenv("ROTATOR_LOG_LEVEL", g->log_level, 1);
  if (g->trace_aws) setenv("ROTATOR_TRACE_AWS", "1", 1);
}

static int run_engine(globals_t *g, int argc, char **argv) {
  static char sbuf[PATH_MAX], pbuf[PATH_MAX];
  host_t h;
  loop_t *loop = loop_new();
  if (!loop) {
    fprintf(stderr, "rotator: cannot create the event loop: %s\n", strerror(errno));
    return 1;
  }
  host_init(&h, loop);
  h.scripts_dir = g->scripts ? g->scripts : beside_binary("scripts", sbuf, sizeof sbuf);
  h.policies_dir = g->policies ? g->policies : beside_binary("policies", pbuf, sizeof pbuf);
  h.state_dir = g->state_dir;
  if (parse_stop_timeout(g->stop_timeout, &h.stop_timeout_ms) < 0) { loop_free(loop); return 2; }
  int code = cmd_engine(&h, argc, argv);
  loop_free(h.loop);
  return code;
}

int main(int argc, char **argv) {
  globals_t g = {0};
  argc = parse_globals(&g, argc, argv);
  if (argc < 0) return 2;
  env_default(&g.scripts, "ROTATOR_SCRIPTS");
  env_default(&g.policies, "ROTATOR_POLICIES");
  env_default(&g.state_dir, "ROTATOR_STATE_DIR");
  env_default(&g.log_format, "ROTATOR_LOG_FORMAT");
  env_default(&g.log_level, "ROTATOR_LOG_LEVEL");
  if (apply_logging(&g) < 0) return 2;
  static char state_buf[PATH_MAX], sock[PATH_MAX];
  if (!g.state_dir) g.state_dir = default_state_dir(state_buf, sizeof state_buf);
  export_globals(&g);
  int n = snprintf(sock, sizeof sock, "%s/rotator.sock", g.state_dir);
  if (n < 0 || (size_t)n >= sizeof sock) {
    fprintf(stderr, "rotator: state directory path too long: %s\n", g.state_dir);
    return 2;
  }
  const char *cmd = argc > 1 ? argv[1] : "help";
  if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
    fputs(USAGE, stdout);
    return argc > 1 ? 0 : 2;
  }
  if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
    printf("rotator %s (%s)\n", ROTATOR_VERSION, ROTATOR_GITREV);
    return 0;
  }
  if (!strcmp(cmd, "sign")) return cmd_sign(argc - 1, argv + 1);
  if (!strcmp(cmd, "whoami")) return cmd_whoami(argc - 1, argv + 1);
  if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
  if (!strcmp(cmd, "repl")) return cmd_repl(argc - 1, argv + 1, sock);
  if (!strcmp(cmd, "status")) return cmd_status(argc - 1, argv + 1, sock);
  return run_engine(&g, argc - 1, argv + 1);
}
