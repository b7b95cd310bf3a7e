/* Unit tests for host/util/dl.c: a library opened at run time, its symbols resolved into
 * typed pointers that work; a missing library or symbol fails with every slot NULL and an
 * error naming what is missing. libm stands in for an optional feature's library. */
#include "util/dl.h"
#include "tap.h"

#include <math.h>
#include <string.h>

static struct {
  __typeof__(&cos) cos;
  __typeof__(&sqrt) sqrt;
} m;

int main(void) {
  char err[256] = "";
  dl_sym_t syms[] = {{"cos", (void **)&m.cos}, {"sqrt", (void **)&m.sqrt}};
  ok(dl_load("libm.so.6", syms, 2, err, sizeof err) == 0, "libm.so.6 opens, cos and sqrt resolve (%s)", err);
  ok(m.cos && m.cos(0.0) == 1.0 && m.sqrt && m.sqrt(81.0) == 9.0, "the resolved pointers call the library");

  dl_sym_t missing_sym[] = {{"cos", (void **)&m.cos}, {"no_such_symbol_here", (void **)&m.sqrt}};
  ok(dl_load("libm.so.6", missing_sym, 2, err, sizeof err) == -1, "a missing symbol fails the load");
  ok(m.cos == NULL && m.sqrt == NULL, "and leaves no slot half-filled");
  ok(strstr(err, "libm.so.6") && strstr(err, "no_such_symbol_here"), "the error names the library and the symbol: %s",
     err);

  m.cos = cos;
  ok(dl_load("librotator-absent.so.0", syms, 2, err, sizeof err) == -1, "a missing library fails the load");
  ok(m.cos == NULL && m.sqrt == NULL, "with every slot NULL");
  ok(strncmp(err, "cannot load librotator-absent.so.0: ", 36) == 0, "the error names the library and why: %s", err);
  return tap_done();
}
