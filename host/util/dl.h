/* Libraries opened at run time (dlopen) by the one feature that needs them, instead of
 * being linked: a linked library is mapped, relocated and initialised in every process of
 * the binary, the idle daemon too, whether or not its feature runs. The caller keeps a
 * struct of pointers typed from the library's header (__typeof__(&fn)), so calls stay
 * type-checked; the Makefile builds against those headers only (DLOPEN_PKGS). */
#ifndef ROTATOR_DL_H
#define ROTATOR_DL_H
#include <stddef.h>

typedef struct {
  const char *name; /* symbol */
  void **slot;      /* where its address goes: (void **)&fns.name */
} dl_sym_t;

/* Open soname (once per process; later calls find it open) and resolve every symbol.
 * 0 on success; -1 with every slot NULL and err = "cannot load SONAME: why". */
int dl_load(const char *soname, const dl_sym_t *syms, size_t n, char *err, size_t errlen);

#endif
