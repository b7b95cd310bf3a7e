/* `rotator status`: asks the running daemon for its status over the control socket
 * (the client half lives in cli/repl.c: ctl_connect, ctl_exchange). `--check` is a probe:
 * one line of health, one per daemon-level problem, and the exit status 0 ok, 1
 * degraded, 2 failing (also when the daemon cannot be reached). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "core/buf.h"
#include "core/frame.h"

static const char STATUS_USAGE[] =
    "usage: rotator status [--json | --check] [--socket PATH]\n"
    "\n"
    "Asks the running daemon for its status: uptime, policy files and their hashes, the\n"
    "last reload, health (ok, degraded, failing), workflows by state, AWS calls in flight\n"
    "(the SQS long poll apart), the last errors (daemon-level problems first), queue\n"
    "receive statistics and, with --json, every metric.\n"
    "\n"
    "--check prints the health and its problems and exits 0 (ok), 1 (degraded) or\n"
    "2 (failing, or no daemon answers): usable as a liveness or monitoring probe.\n"
    "\n"
    "Examples:\n"
    "  rotator status\n"
    "  rotator status --json | jq .workflows\n"
    "  rotator status --check || echo \"rotator is unhealthy\"\n";

enum { O_JSON = 256, O_SOCKET, O_CHECK };

static const struct option OPTIONS[] = {{"json", no_argument, NULL, O_JSON},
                                        {"check", no_argument, NULL, O_CHECK},
                                        {"socket", required_argument, NULL, O_SOCKET},
                                        {NULL, 0, NULL, 0}};

typedef struct {
  int json, check;
  const char *socket;
} status_opts;

static int on_option(void *ud, int id, const char *arg) {
  status_opts *o = ud;
  if (id == O_JSON) o->json = 1;
  else if (id == O_CHECK) o->check = 1;
  else o->socket = arg;
  return 0;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* One status request whose final frame is kept in out (not printed). Returns its type, or -1. */
static int request(int fd, const char *mode, buf_t *out) {
  buf_t b = {0};
  int rc = frame_put(&b, FRAME_STATUS, mode, strlen(mode)) < 0 || write_all(fd, b.data, b.len) < 0 ? -1 : 0;
  buf_free(&b);
  char chunk[4096];
  while (rc == 0) {
    int type;
    const char *p;
    size_t len;
    int got = frame_get(out, &type, &p, &len);
    if (got < 0) return -1;
    if (got == 1) {
      memmove(out->data, p, len);
      out->len = len;
      return type;
    }
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || buf_append(out, chunk, (size_t)n) < 0) return -1;
  }
  return -1;
}

static int check(int fd) {
  buf_t out = {0};
  int t = request(fd, "check", &out);
  int code = 2;
  if (t == FRAME_RESULT && out.len) {
    fwrite(out.data, 1, out.len, stdout);
    if (out.data[out.len - 1] != '\n') fputc('\n', stdout);
    if (out.len >= 2 && strncmp(out.data, "ok", 2) == 0 && (out.len == 2 || out.data[2] == '\n')) code = 0;
    else if (out.len >= 8 && strncmp(out.data, "degraded", 8) == 0) code = 1;
  } else {
    printf("failing\nthe daemon gave no status (%s)\n", t < 0 ? "the connection closed" : "an error frame");
  }
  buf_free(&out);
  return code;
}

int cmd_status(int argc, char **argv, const char *socket_path) {
  status_opts o = {0, 0, socket_path};
  int first, rc = cli_parse(argc, argv, OPTIONS, STATUS_USAGE, on_option, &o, &first);
  if (rc) return rc == 1 ? 0 : 2;
  if (first < argc) return cli_usage_error("status", "unexpected argument", argv[first]);
  if (o.check && o.json) return cli_usage_error("status", "--check and --json do not go together", "--check");
  int fd = ctl_connect(o.socket);
  if (fd < 0) {
    if (o.check) printf("failing\nno daemon answers on the control socket\n");
    return o.check ? 2 : 1;
  }
  if (o.check) {
    int code = check(fd);
    close(fd);
    return code;
  }
  const char *mode = o.json ? "json" : "text";
  int t = ctl_exchange(fd, FRAME_STATUS, mode, strlen(mode));
  close(fd);
  return t == FRAME_RESULT ? 0 : 1;
}
