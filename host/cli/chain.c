/* One-shot credential resolution for the CLI (see chain.h). */
#include "cli/chain.h"

#include <stdio.h>
#include <string.h>

#include "net/http.h"

typedef struct {
  chain_answer_t *a;
  int creds_done, region_done;
} waiter_t;

static void on_creds(void *ud, const creds_t *c, const char *err) {
  waiter_t *w = ud;
  w->creds_done = 1;
  w->a->creds_ok = c != NULL;
  if (c) w->a->creds = *c;
  else snprintf(w->a->creds_err, sizeof w->a->creds_err, "%s", err);
}

static void on_region(void *ud, const char *region, const char *err) {
  waiter_t *w = ud;
  w->region_done = 1;
  if (region) snprintf(w->a->region, sizeof w->a->region, "%s", region);
  else snprintf(w->a->region_err, sizeof w->a->region_err, "%s", err);
}

static int fail(chain_answer_t *a, const char *why) {
  snprintf(a->creds_err, sizeof a->creds_err, "%s", why);
  return -1;
}

int chain_resolve(loop_t *loop, creds_provider_t *p, const char *region, chain_answer_t *a) {
  waiter_t w = {a, 0, region != NULL};
  memset(a, 0, sizeof *a);
  if (region && strlen(region) >= sizeof a->region)
    return fail(a, "the region name is too long (at most 63 characters)");
  if (region) snprintf(a->region, sizeof a->region, "%s", region);
  if (creds_get(p, on_creds, &w) != 0) return fail(a, "out of memory");
  if (!region && creds_region(p, on_region, &w) != 0) return fail(a, "out of memory");
  while (!w.creds_done || !w.region_done)
    if (loop_run_once(loop, -1) < 0) return fail(a, "event loop failure");
  creds_describe(p, a->describe, sizeof a->describe);
  return 0;
}

int chain_resolve_private(const char *region, chain_answer_t *a) {
  int rc = -1;
  loop_t *loop = loop_new();
  http_client_t *http = loop ? http_client_new(loop) : NULL;
  creds_provider_t *p = http ? creds_new(loop, http, NULL) : NULL;
  if (!p) rc = fail(a, "cannot set up the event loop and HTTP client");
  else rc = chain_resolve(loop, p, region, a);
  creds_free(p);
  http_client_free(http);
  if (loop) loop_free(loop);
  return rc;
}

const char *chain_error(const chain_answer_t *a) {
  if (!a->creds_ok) return a->creds_err;
  return a->region[0] ? NULL : a->region_err;
}

void chain_clear(chain_answer_t *a) { explicit_bzero(a, sizeof *a); }
