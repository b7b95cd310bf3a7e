/* Where the binary finds its engine scripts and, by default, the operator's policies.
 * Searched beside the binary (resolved through /proc/self/exe, so the current directory
 * does not matter):
 *   <bin>/scripts               a checkout (./rotator); policies: <bin>/policies
 *   <bin>/../share/rotator/scripts   an installed layout under PREFIX (<bin> = PREFIX/bin);
 *                               policies: /etc/rotator/policies when PREFIX is /usr,
 *                               else PREFIX/etc/rotator/policies
 *   <bin>/../../scripts         a build output folder such as build/asan;
 *                               policies: <bin>/../../policies */
#ifndef ROTATOR_CLI_LAYOUT_H
#define ROTATOR_CLI_LAYOUT_H
#include <stddef.h>

typedef struct {
  char scripts[4096];  /* empty when no candidate exists */
  char policies[4096]; /* the default policies folder of the layout found */
  char tried[3][4096]; /* the candidates, for the error message */
  size_t ntried;
} layout_t;

/* Fill l. 0 when the scripts folder was found, -1 otherwise (l->tried lists the places). */
int layout_find(layout_t *l);

/* "rotator: engine scripts not found; looked in ...": on stderr, with the fix. */
void layout_report_missing(const layout_t *l);

#endif
