/* `rotator status`: asks the running daemon for its status over the control socket
 * (the client half lives in cli/repl.c: ctl_connect, ctl_exchange). */
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "core/frame.h"

static const char STATUS_USAGE[] =
    "usage: rotator status [--json] [--socket PATH]\n"
    "\n"
    "Asks the running daemon for its status: uptime, policy files and their hashes, the\n"
    "last reload, workflows by state, the last errors, queue receive statistics.\n"
    "\n"
    "Examples:\n"
    "  rotator status\n"
    "  rotator status --json | jq .workflows\n";

enum { O_JSON = 256, O_SOCKET };

static const struct option OPTIONS[] = {{"json", no_argument, NULL, O_JSON},
                                        {"socket", required_argument, NULL, O_SOCKET},
                                        {NULL, 0, NULL, 0}};

typedef struct {
  int json;
  const char *socket;
} status_opts;

static int on_option(void *ud, int id, const char *arg) {
  status_opts *o = ud;
  if (id == O_JSON) o->json = 1;
  else o->socket = arg;
  return 0;
}

int cmd_status(int argc, char **argv, const char *socket_path) {
  status_opts o = {0, socket_path};
  int first, rc = cli_parse(argc, argv, OPTIONS, STATUS_USAGE, on_option, &o, &first);
  if (rc) return rc == 1 ? 0 : 2;
  if (first < argc) return cli_usage_error("status", "unexpected argument", argv[first]);
  int fd = ctl_connect(o.socket);
  if (fd < 0) return 1;
  const char *mode = o.json ? "json" : "text";
  int t = ctl_exchange(fd, FRAME_STATUS, mode, strlen(mode));
  close(fd);
  return t == FRAME_RESULT ? 0 : 1;
}
