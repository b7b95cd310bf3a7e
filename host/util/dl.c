/* dlopen of an optional feature's library (see util/dl.h). */
#include "util/dl.h"

#include <dlfcn.h>
#include <stdio.h>

int dl_load(const char *soname, const dl_sym_t *syms, size_t n, char *err, size_t errlen) {
  void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  const char *missing = NULL;
  for (size_t i = 0; h && i < n && !missing; i++) {
    *syms[i].slot = dlsym(h, syms[i].name);
    if (!*syms[i].slot) missing = syms[i].name;
  }
  if (h && !missing) return 0;
  for (size_t i = 0; i < n; i++) *syms[i].slot = NULL;
  if (missing) {
    snprintf(err, errlen, "cannot load %s: it has no symbol %s", soname, missing);
    dlclose(h);
  } else {
    snprintf(err, errlen, "cannot load %s: %s", soname, dlerror());
  }
  return -1;
}
