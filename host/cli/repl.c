/* `rotator repl`, and the control-socket client it shares with `rotator status`
 * (cli/status.c). The daemon does the work (evaluation, pretty-printing); the client
 * edits lines (libedit, with history, loaded only for a terminal: see editline_load),
 * accumulates multi-line chunks when the daemon answers
 * "incomplete", and turns Ctrl-C during a wait into a cancel frame, so the wait is
 * abandoned and the daemon keeps running. `repl --local` starts a private engine process
 * on a socketpair instead of attaching to a daemon. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <editline/readline.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "core/frame.h"
#include "util/dl.h"
#include "version.h"

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
  (void)sig;
  interrupted = 1;
}

/* MSG_NOSIGNAL: a daemon that refused us and closed must not kill the client by SIGPIPE
 * before its refusal frame is read. */
static int send_frame(int fd, int type, const char *p, size_t n) {
  buf_t b = {0};
  int rc = frame_put(&b, type, p, n);
  for (size_t off = 0; rc == 0 && off < b.len;) {
    ssize_t w = send(fd, b.data + off, b.len - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) rc = -1;
    else off += (size_t)w;
  }
  int err = errno;
  buf_free(&b);
  errno = err;
  return rc;
}

/* Read one frame into *in; returns its type, or -1 on EOF/error. Ctrl-C while waiting
 * sends a cancel frame once and keeps waiting for the daemon's final answer. */
static int recv_frame(int fd, buf_t *in, const char **payload, size_t *len) {
  for (;;) {
    int type, r = frame_get(in, &type, payload, len);
    if (r == 1) return type;
    if (r < 0) return -1;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, -1) < 0) {
      if (errno != EINTR) return -1;
      if (interrupted) {
        interrupted = 0;
        if (send_frame(fd, FRAME_CANCEL, "", 0) < 0) return -1;
      }
      continue;
    }
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || buf_append(in, buf, (size_t)n) < 0) return -1;
  }
}

int ctl_connect(const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) {
    fprintf(stderr, "rotator: socket path too long: %s\n", path);
    return -1;
  }
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fprintf(stderr, "rotator: cannot create a socket to reach %s: %s\n", path, strerror(errno));
    return -1;
  }
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) return fd;
  int e = errno;
  close(fd);
  if (e == EACCES || e == EPERM) {
    /* The daemon may well be running: the socket (mode 0600) or its folder is another user's. */
    struct stat st;
    char owner[64] = "";
    if (stat(path, &st) == 0) snprintf(owner, sizeof owner, " (the socket belongs to uid %u)", (unsigned)st.st_uid);
    fprintf(stderr,
            "rotator: permission denied on the control socket %s%s: run as the daemon's user "
            "(e.g. sudo -u rotator rotator status), or give --socket a socket you may open\n",
            path, owner);
    return -1;
  }
  fprintf(stderr,
          "rotator: cannot connect to %s: %s\n"
          "Is `rotator run` running with this state directory (--state-dir)? "
          "For a private session without a daemon, use `rotator repl --local`.\n",
          path, strerror(e));
  return -1;
}

/* Send one chunk and print the answer. Returns the final frame type, or -1. */
int ctl_exchange(int fd, int type, const char *chunk, size_t n) {
  buf_t in = {0};
  const char *p;
  size_t len;
  /* EPIPE: the daemon already answered and closed (a refusal); read what it said. */
  int t = send_frame(fd, type, chunk, n) < 0 && errno != EPIPE ? -1 : 0;
  while (t >= 0) {
    t = recv_frame(fd, &in, &p, &len);
    if (t < 0) break;
    FILE *out = (t == FRAME_ERROR || t == FRAME_REFUSED) ? stderr : stdout;
    if (t != FRAME_INCOMPLETE && len) {
      fwrite(p, 1, len, out);
      if (t != FRAME_OUTPUT && p[len - 1] != '\n') fputc('\n', out);
    }
    fflush(out);
    buf_consume(&in, FRAME_HEADER + len);
    if (t != FRAME_OUTPUT) break;
  }
  buf_free(&in);
  if (t < 0) fprintf(stderr, "rotator: the daemon closed the connection\n");
  return t;
}

/* libedit is opened when the REPL runs on a terminal (util/dl.h): linked, it and the
 * libtinfo, libbsd and libmd it pulls in were about 0.35 MB of every process's RSS, the
 * daemon's too. The soname is libedit's (Debian's libedit2, a Depends of the package).
 * Without it the REPL reads plain lines and says so. */
#define EDITLINE_SONAME "libedit.so.2"
static struct {
  __typeof__(&readline) readline;
  __typeof__(&add_history) add_history;
  __typeof__(&read_history) read_history;
  __typeof__(&write_history) write_history;
} el;

static int editline_load(void) {
  const dl_sym_t syms[] = {{"readline", (void **)&el.readline}, {"add_history", (void **)&el.add_history},
                           {"read_history", (void **)&el.read_history}, {"write_history", (void **)&el.write_history}};
  char err[256];
  if (dl_load(EDITLINE_SONAME, syms, sizeof syms / sizeof syms[0], err, sizeof err) == 0) return 1;
  fprintf(stderr, "rotator: no line editing or history (%s); install libedit2\n", err);
  return 0;
}

static char *read_line(int tty, const char *prompt) {
  if (tty && el.readline) return el.readline(prompt);
  if (tty) {
    fputs(prompt, stdout);
    fflush(stdout);
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t n = getline(&line, &cap, stdin);
  if (n < 0) { free(line); return NULL; }
  if (n > 0 && line[n - 1] == '\n') line[n - 1] = '\0';
  return line;
}

static void history_path(char *buf, size_t len) {
  const char *home = getenv("HOME");
  int n = snprintf(buf, len, "%s/.rotator_history", home ? home : ".");
  if (n < 0 || (size_t)n >= len) buf[0] = '\0';
}

/* The read-eval-print loop over a connected fd. */
static int repl_loop(int fd) {
  int tty = isatty(STDIN_FILENO);
  int edit = tty && editline_load();
  char hist[4096];
  history_path(hist, sizeof hist);
  if (edit && hist[0]) el.read_history(hist);
  struct sigaction sa = {.sa_handler = on_sigint}; /* no SA_RESTART: poll must wake */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  if (tty) printf("rotator %s REPL: help() lists helpers, Ctrl-D leaves.\n", ROTATOR_VERSION);
  buf_t chunk = {0};
  int rc = 0;
  char *line;
  while ((line = read_line(tty, chunk.len ? ">> " : "> ")) != NULL) {
    interrupted = 0;
    if (chunk.len) buf_append(&chunk, "\n", 1);
    if (buf_append(&chunk, line, strlen(line)) < 0) { free(line); rc = 1; break; }
    if (edit && *line) el.add_history(line);
    free(line);
    int t = ctl_exchange(fd, FRAME_EVAL, chunk.data, chunk.len);
    if (t < 0 || t == FRAME_REFUSED) { rc = 1; break; }
    if (t != FRAME_INCOMPLETE) chunk.len = 0;
  }
  if (edit && hist[0]) el.write_history(hist);
  buf_free(&chunk);
  return rc;
}

/* --local: a private engine process on one end of a socketpair. */
static int repl_local(void) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) { perror("rotator: socketpair"); return 1; }
  pid_t pid = fork();
  if (pid < 0) { perror("rotator: fork"); return 1; }
  if (pid == 0) {
    close(sv[0]);
    char fdarg[16];
    snprintf(fdarg, sizeof fdarg, "%d", sv[1]);
    execl("/proc/self/exe", "rotator", "repl-serve", fdarg, (char *)NULL);
    perror("rotator: exec");
    _exit(127);
  }
  close(sv[1]);
  int rc = repl_loop(sv[0]);
  close(sv[0]);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  return rc;
}

static const char REPL_USAGE[] =
    "usage: rotator repl [--local] [--socket PATH]\n"
    "\n"
    "Attaches to the running daemon's control socket (<state-dir>/rotator.sock) and\n"
    "evaluates Lua in its live state. Expressions print their value; an unfinished chunk\n"
    "continues on the next line (>> prompt). Ctrl-C abandons a wait (e.g. an aws.call)\n"
    "without touching the daemon. help() lists the helpers. --local starts a private\n"
    "engine with the policies loaded, without a daemon.\n"
    "\n"
    "Examples:\n"
    "  rotator repl\n"
    "  rotator repl --local\n"
    "  echo 'return help()' | rotator --state-dir /var/lib/rotator repl\n";

enum { O_LOCAL = 256, O_SOCKET };

static const struct option OPTIONS[] = {{"local", no_argument, NULL, O_LOCAL},
                                        {"socket", required_argument, NULL, O_SOCKET},
                                        {NULL, 0, NULL, 0}};

typedef struct {
  int local;
  const char *socket;
} repl_opts;

static int on_option(void *ud, int id, const char *arg) {
  repl_opts *o = ud;
  if (id == O_LOCAL) o->local = 1;
  else o->socket = arg;
  return 0;
}

int cmd_repl(int argc, char **argv, const char *socket_path) {
  repl_opts o = {0, socket_path};
  int first, rc = cli_parse(argc, argv, OPTIONS, REPL_USAGE, on_option, &o, &first);
  if (rc) return rc == 1 ? 0 : 2;
  if (first < argc) return cli_usage_error("repl", "unexpected argument", argv[first]);
  if (o.local) return repl_local();
  int fd = ctl_connect(o.socket);
  if (fd < 0) return 1;
  rc = repl_loop(fd);
  close(fd);
  return rc;
}
