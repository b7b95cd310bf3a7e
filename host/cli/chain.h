/* The credential chain for one-shot commands (`rotator sign`, `rotator whoami`): ask a
 * provider for credentials and the region and run a loop until both have answered. */
#ifndef ROTATOR_CLI_CHAIN_H
#define ROTATOR_CLI_CHAIN_H
#include "aws/creds/creds.h"
#include "core/loop.h"

typedef struct {
  int creds_ok;                       /* creds holds the credentials */
  creds_t creds;                      /* secrets: chain_clear() wipes them */
  char creds_err[CREDS_ERR_MAX];
  char region[CREDS_REGION_MAX];      /* "" with region_err set when it did not resolve */
  char region_err[CREDS_ERR_MAX];
  char describe[CREDS_ERR_MAX];       /* creds_describe(): source, key id, expiry */
} chain_answer_t;

/* Resolves credentials and, unless region is given, the region through p, running loop
 * until both answered. 0 when the loop ran them to an answer (see creds_ok and region),
 * -1 when it could not (out of memory, loop failure; creds_err says which): then p may
 * still hold a callback into this call, so free p before running loop again. */
int chain_resolve(loop_t *loop, creds_provider_t *p, const char *region, chain_answer_t *a);

/* The same on a short-lived loop, HTTP client and provider of its own. */
int chain_resolve_private(const char *region, chain_answer_t *a);

/* The first error of the answer, or NULL when credentials and region both resolved. */
const char *chain_error(const chain_answer_t *a);

/* Wipes the answer (the secret key and session token with it). */
void chain_clear(chain_answer_t *a);

#endif
