/* rotator: command-line entry. Global options (GLOBALS) are taken from anywhere before
 * `--`; the commands in C_COMMANDS run directly, every other command is the Lua engine's
 * (scripts/cmd/NAME.lua, found by scripts/cli.lua). `rotator --help` is made from both
 * lists and the options table, so a command cannot be missing from it. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/layout.h"
#include "core/log.h"
#include "version.h"

/* Global options: taken from anywhere before `--`, defaulting to the environment. */
enum { G_SCRIPTS, G_POLICIES, G_STATE_DIR, G_LOG_FORMAT, G_LOG_LEVEL, G_STOP_TIMEOUT,
       G_TRACE_AWS, G_COUNT };

typedef struct {
  const char *name, *metavar; /* metavar NULL: a flag */
  const char *env;            /* exported to children and scripts; NULL: not */
  const char *help;           /* '\n' continues the text on the next line */
} global_opt_t;

static const global_opt_t GLOBALS[G_COUNT] = {
    [G_SCRIPTS] = {"--scripts", "DIR", "ROTATOR_SCRIPTS",
                   "engine scripts (ROTATOR_SCRIPTS; default beside the binary:\n"
                   "./scripts, ../share/rotator/scripts or ../../scripts)"},
    [G_POLICIES] = {"--policies", "DIR", "ROTATOR_POLICIES",
                    "operator policies (ROTATOR_POLICIES; default\n"
                    "/etc/rotator/policies, PREFIX/etc/rotator/policies when\n"
                    "installed elsewhere, ./policies in a checkout)"},
    [G_STATE_DIR] = {"--state-dir", "DIR", "ROTATOR_STATE_DIR",
                     "journal and socket (ROTATOR_STATE_DIR; default\n"
                     "/var/lib/rotator as root, else ~/.local/state/rotator)"},
    [G_LOG_FORMAT] = {"--log-format", "F", "ROTATOR_LOG_FORMAT",
                      "text or json (ROTATOR_LOG_FORMAT, default text)"},
    [G_LOG_LEVEL] = {"--log-level", "L", "ROTATOR_LOG_LEVEL",
                     "debug|info|warn|error (ROTATOR_LOG_LEVEL, default info)"},
    [G_STOP_TIMEOUT] = {"--stop-timeout", "SEC", NULL, "graceful stop deadline (default 30)"},
    [G_TRACE_AWS] = {"--trace-aws", NULL, "ROTATOR_TRACE_AWS",
                     "log every AWS request and response, secrets redacted\n"
                     "(ROTATOR_TRACE_AWS=1)"},
};

typedef struct {
  const char *v[G_COUNT]; /* NULL: not given; a flag given is "1" */
  const char *missing;    /* the option whose value is missing (parse_globals failed) */
} globals_t;

/* Match argv[*i] against the global options; consume its value. 1 = taken, 0 = not a
 * global option, -1 = missing value. */
static int take_global(globals_t *g, int argc, char **argv, int *i) {
  for (size_t k = 0; k < G_COUNT; k++) {
    const char *name = GLOBALS[k].name;
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0) continue;
    if (!GLOBALS[k].metavar) {
      if (argv[*i][n] != '\0') continue;
      g->v[k] = "1";
      return 1;
    }
    if (argv[*i][n] == '=') { g->v[k] = argv[*i] + n + 1; return 1; }
    if (argv[*i][n] != '\0') continue;
    if (*i + 1 >= argc) {
      g->missing = name; /* reported once the log format is known */
      return -1;
    }
    g->v[k] = argv[++*i];
    return 1;
  }
  return 0;
}

/* Remove global options from argv in place; returns the new argc or -1. */
static int parse_globals(globals_t *g, int argc, char **argv) {
  int out = 1, i = 1;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    int r = take_global(g, argc, argv, &i);
    if (r < 0) return -1;
    if (r == 0) argv[out++] = argv[i];
  }
  for (; i < argc; i++) argv[out++] = argv[i];
  argv[out] = NULL;
  return out;
}

static int apply_logging(const globals_t *g) {
  log_format_t fmt;
  log_level_t lvl;
  const char *f = g->v[G_LOG_FORMAT], *l = g->v[G_LOG_LEVEL];
  if (f && log_parse_format(f, &fmt) < 0) {
    log_report("rotator: unknown log format '%s': use text or json\n", f);
    return -1;
  }
  if (l && log_parse_level(l, &lvl) < 0) {
    log_report("rotator: unknown log level '%s': use debug, info, warn or error\n", l);
    return -1;
  }
  if (f) log_set_format(fmt);
  if (l) log_set_level(lvl);
  return 0;
}

static int parse_stop_timeout(const char *s, uint64_t *ms) {
  char *end;
  errno = 0;
  double v = s ? strtod(s, &end) : 30.0;
  if (s && (errno || end == s || *end || v < 0 || v > 86400)) {
    log_report("rotator: --stop-timeout '%s' is not a number of seconds (0-86400)\n", s);
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

/* Unset options default to the environment (the trace flag excepted: its variable is
 * read where it is used); children (repl --local) and scripts then see the same
 * settings through it. */
static void settle_globals(globals_t *g) {
  for (size_t k = 0; k < G_COUNT; k++) {
    const char *env = GLOBALS[k].env;
    if (!env) continue;
    if (!g->v[k] && k != G_TRACE_AWS) g->v[k] = getenv(env);
  }
}

static void export_globals(const globals_t *g) {
  for (size_t k = 0; k < G_COUNT; k++)
    if (GLOBALS[k].env && g->v[k]) setenv(GLOBALS[k].env, g->v[k], 1);
}

/* A host for the Lua engine: loop, scripts and policies folders, stop deadline. */
static int make_host(const globals_t *g, host_t *h) {
  static layout_t lay;
  uint64_t stop_ms;
  if (parse_stop_timeout(g->v[G_STOP_TIMEOUT], &stop_ms) < 0) return 2;
  int found = layout_find(&lay) == 0;
  if (!found && !g->v[G_SCRIPTS]) {
    layout_report_missing(&lay);
    return 2;
  }
  loop_t *loop = loop_new();
  if (!loop) {
    log_report("rotator: cannot create the event loop: %s\n", strerror(errno));
    return 1;
  }
  host_init(h, loop);
  h->scripts_dir = g->v[G_SCRIPTS] ? g->v[G_SCRIPTS] : lay.scripts;
  /* Without a layout (a copied binary given --scripts) the system folder is the default. */
  h->policies_dir = g->v[G_POLICIES] ? g->v[G_POLICIES] : found ? lay.policies : "/etc/rotator/policies";
  h->state_dir = g->v[G_STATE_DIR];
  h->stop_timeout_ms = stop_ms;
  return 0;
}

static int run_engine(const globals_t *g, int argc, char **argv) {
  host_t h;
  int code = make_host(g, &h);
  if (code) return code;
  code = cmd_engine(&h, argc, argv);
  loop_free(h.loop);
  return code;
}

/* ---- the command table ---- */

typedef struct {
  const char *name, *summary;
  int (*run)(const globals_t *g, int argc, char **argv); /* argv[0] is the name */
} command_t;

static const char *g_socket; /* <state-dir>/rotator.sock, set before dispatch */

static int run_version(const globals_t *g, int argc, char **argv) {
  static const char help[] = "usage: rotator version\n\nPrints the version and the git revision.\n\n"
                             "Example:\n  rotator version\n  rotator 1.4.0 (3f2a9c1)\n";
  (void)g;
  if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) return fputs(help, stdout), 0;
  if (argc > 1) return cli_usage_error("version", "unexpected argument", argv[1]);
  printf("rotator %s (%s)\n", ROTATOR_VERSION, ROTATOR_GITREV);
  return 0;
}

static int run_sign(const globals_t *g, int argc, char **argv) { (void)g; return cmd_sign(argc, argv); }
static int run_whoami(const globals_t *g, int argc, char **argv) { (void)g; return cmd_whoami(argc, argv); }
static int run_bench(const globals_t *g, int argc, char **argv) { (void)g; return cmd_bench(argc, argv); }
static int run_repl(const globals_t *g, int argc, char **argv) { (void)g; return cmd_repl(argc, argv, g_socket); }
static int run_status(const globals_t *g, int argc, char **argv) { (void)g; return cmd_status(argc, argv, g_socket); }

/* The commands written in C. Every other command is a file in scripts/cmd/ that the
 * engine finds by itself (scripts/cli.lua); both lists make `rotator --help`. */
static const command_t C_COMMANDS[] = {
    {"repl", "attach a Lua REPL to the running daemon (--local: without a daemon)", run_repl},
    {"status", "the running daemon's status (--json)", run_status},
    {"whoami", "where AWS credentials, region and endpoints come from (--call: STS)", run_whoami},
    {"sign", "sign a raw HTTP request with SigV4 (debug SignatureDoesNotMatch)", run_sign},
    {"bench", "micro-benchmarks (bench sign)", run_bench},
    {"version", "print the version", run_version},
};
#define N_C_COMMANDS (sizeof C_COMMANDS / sizeof *C_COMMANDS)

static const command_t *find_c_command(const char *name) {
  for (size_t i = 0; i < N_C_COMMANDS; i++)
    if (!strcmp(C_COMMANDS[i].name, name)) return &C_COMMANDS[i];
  return NULL;
}

/* ---- rotator --help, from the tables ---- */

static const char INTRO[] =
    "usage: rotator [GLOBAL OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "Rotator restores DynamoDB backups into fresh copies when AWS Backup finishes a job,\n"
    "and points an SSM parameter at the new table.\n";

static const char EXAMPLES[] =
    "Examples:\n"
    "  rotator check\n"
    "  rotator eval 'return require(\"re\").replace(\"orders-production\", \"-production$\", "
    "\"-staging\")'\n"
    "  rotator run --queue-url https://sqs.us-east-1.amazonaws.com/123456789012/rotator\n"
    "\n"
    "`rotator COMMAND --help` shows a command's options and an example.\n";

typedef struct {
  const char *name, *summary;
} entry_t;

typedef struct {
  entry_t e[128];
  char text[16384]; /* the Lua commands' strings, copied out of the state */
  size_t n, used;
  int full;
} entries_t;

static const char *keep(entries_t *l, const char *s) {
  size_t n = strlen(s) + 1;
  if (l->used + n > sizeof l->text) return NULL;
  char *p = memcpy(l->text + l->used, s, n);
  l->used += n;
  return p;
}

static void add_entry(void *ud, const char *name, const char *summary) {
  entries_t *l = ud;
  const char *kn = l->n < sizeof l->e / sizeof *l->e ? keep(l, name) : NULL;
  const char *ks = kn ? keep(l, summary) : NULL;
  if (!ks) { l->full = 1; return; }
  l->e[l->n++] = (entry_t){kn, ks};
}

static int by_name(const void *a, const void *b) {
  return strcmp(((const entry_t *)a)->name, ((const entry_t *)b)->name);
}

/* The Lua commands into l; 0, or -1 with the reason on stderr. */
static int lua_commands(const globals_t *g, entries_t *l) {
  host_t h;
  char err[1024];
  if (make_host(g, &h) != 0) return -1;
  int rc = engine_commands(&h, add_entry, l, err, sizeof err);
  loop_free(h.loop);
  if (rc < 0)
    log_report("rotator: cannot list the engine's commands from %s:\n%s\n"
            "Check the scripts folder (--scripts or ROTATOR_SCRIPTS).\n", h.scripts_dir, err);
  if (l->full) log_report("rotator: too many commands to list (the limit is %zu)\n", l->n);
  return rc < 0 || l->full ? -1 : 0;
}

static void print_commands(entries_t *l) {
  int width = 0;
  for (size_t i = 0; i < N_C_COMMANDS; i++) add_entry(l, C_COMMANDS[i].name, C_COMMANDS[i].summary);
  qsort(l->e, l->n, sizeof *l->e, by_name);
  for (size_t i = 0; i < l->n; i++)
    if ((int)strlen(l->e[i].name) > width) width = (int)strlen(l->e[i].name);
  fputs("\nCommands:\n", stdout);
  for (size_t i = 0; i < l->n; i++) printf("  %-*s  %s\n", width, l->e[i].name, l->e[i].summary);
}

/* One option: "  --name METAVAR   help", the help's further lines aligned under it. */
static void print_global(const global_opt_t *o) {
  char head[64];
  snprintf(head, sizeof head, "%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
  const char *h = o->help;
  for (int first = 1; *h; first = 0) {
    size_t n = strcspn(h, "\n");
    printf("  %-20s %.*s\n", first ? head : "", (int)n, h);
    h += n + (h[n] == '\n');
  }
}

static int print_help(const globals_t *g) {
  entries_t *l = calloc(1, sizeof *l);
  if (!l) return fputs("rotator: out of memory\n", stderr), 1;
  int rc = lua_commands(g, l) < 0 ? 1 : 0;
  fputs(INTRO, stdout);
  print_commands(l);
  fputs("\nGlobal options (also from the environment):\n", stdout);
  for (size_t k = 0; k < G_COUNT; k++) print_global(&GLOBALS[k]);
  fputs("\n", stdout);
  fputs(EXAMPLES, stdout);
  free(l);
  return fflush(stdout) == 0 ? rc : 1;
}

int main(int argc, char **argv) {
  globals_t g = {0};
  static char state_buf[PATH_MAX], sock[PATH_MAX];
  argc = parse_globals(&g, argc, argv);
  settle_globals(&g);
  if (apply_logging(&g) < 0) return 2;
  if (argc < 0) {
    log_report("rotator: %s needs a value (see rotator --help)\n", g.missing);
    return 2;
  }
  if (!g.v[G_STATE_DIR]) g.v[G_STATE_DIR] = default_state_dir(state_buf, sizeof state_buf);
  export_globals(&g);
  int n = snprintf(sock, sizeof sock, "%s/rotator.sock", g.v[G_STATE_DIR]);
  if (n < 0 || (size_t)n >= sizeof sock) {
    log_report("rotator: state directory path too long: %s\n", g.v[G_STATE_DIR]);
    return 2;
  }
  g_socket = sock;
  const char *cmd = argc > 1 ? argv[1] : "help";
  if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
    int rc = print_help(&g);
    return argc < 2 ? 2 : rc;
  }
  if (!strcmp(cmd, "--version")) cmd = "version";
  const command_t *c = find_c_command(cmd);
  if (c) return c->run(&g, argc - 1, argv + 1);
  return run_engine(&g, argc - 1, argv + 1);
}
