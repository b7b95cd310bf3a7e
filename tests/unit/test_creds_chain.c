/* Driver for tests/t/35-creds.t: resolves credentials (and optionally the region) through
 * the real chain from the environment and prints one line per delivery:
 *   creds source=<source> akid=<access key id> token=yes|no expires_in=<s>
 *   error <message>
 * Secrets are never printed. Run without arguments (as tests/run does for every unit
 * binary) it only prints a TAP skip.
 *
 *   test_creds_chain run [--margin S] [--rounds N] [--concurrent K] [--sleep-ms MS]
 *                        [--region] [--profile NAME] [--process-timeout-ms MS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws/creds/creds.h"
#include "net/http.h"
#include "core/loop.h"

typedef struct {
  int pending, errors;
} run_t;

static void on_creds(void *ud, const creds_t *c, const char *err) {
  run_t *r = ud;
  if (c)
    printf("creds source=%s akid=%s token=%s expires_in=%lld\n", c->source, c->access_key_id,
           c->session_token[0] ? "yes" : "no", c->expiration ? (long long)(c->expiration - time(NULL)) : -1LL);
  else {
    printf("error %s\n", err);
    r->errors++;
  }
  fflush(stdout);
  r->pending--;
}

static void on_region(void *ud, const char *region, const char *err) {
  run_t *r = ud;
  if (region) printf("region %s\n", region);
  else { printf("error %s\n", err); r->errors++; }
  fflush(stdout);
  r->pending--;
}

/* Runs the loop until every callback of this round has run (loop_stop is sticky). */
static int drain(loop_t *loop, run_t *r) {
  while (r->pending > 0)
    if (loop_run_once(loop, -1) < 0) return -1;
  return 0;
}

static long arg_num(int argc, char **argv, const char *name, long dflt) {
  for (int i = 2; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0) return strtol(argv[i + 1], NULL, 10);
  return dflt;
}

static const char *arg_str(int argc, char **argv, const char *name) {
  for (int i = 2; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  return NULL;
}

static int has_flag(int argc, char **argv, const char *name) {
  for (int i = 2; i < argc; i++)
    if (strcmp(argv[i], name) == 0) return 1;
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "run") != 0) {
    printf("1..0 # SKIP driver for tests/t/35-creds.t\n");
    return 0;
  }
  loop_t *loop = loop_new();
  http_client_t *http = loop ? http_client_new(loop) : NULL;
  if (!http) { fprintf(stderr, "loop/http setup failed\n"); return 2; }
  creds_options_t opt = {.profile = arg_str(argc, argv, "--profile"),
                         .refresh_margin_s = (unsigned)arg_num(argc, argv, "--margin", 0),
                         .process_timeout_ms = arg_num(argc, argv, "--process-timeout-ms", 0)};
  creds_provider_t *p = creds_new(loop, http, &opt);
  if (!p) return 2;
  run_t r = {0};
  long rounds = arg_num(argc, argv, "--rounds", 1), k = arg_num(argc, argv, "--concurrent", 1);
  long sleep_ms = arg_num(argc, argv, "--sleep-ms", 0);
  if (has_flag(argc, argv, "--region")) {
    r.pending = 1;
    if (creds_region(p, on_region, &r) != 0) return 2;
    if (drain(loop, &r) != 0) return 2;
  }
  for (long i = 0; i < rounds; i++) {
    if (i && sleep_ms) nanosleep(&(struct timespec){sleep_ms / 1000, (sleep_ms % 1000) * 1000000L}, NULL);
    r.pending = (int)k;
    for (long j = 0; j < k; j++)
      if (creds_get(p, on_creds, &r) != 0) return 2;
    if (drain(loop, &r) != 0) return 2;
  }
  char desc[512];
  printf("describe %s\n", creds_describe(p, desc, sizeof desc));
  creds_free(p);
  http_client_free(http);
  loop_free(loop);
  return r.errors ? 1 : 0;
}
