/* Locating the engine scripts and the default policies folder (see layout.h). */
#include "cli/layout.h"

#include "core/log.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* snprintf into dst (len bytes); 0, or -1 when it does not fit. */
static int fmt(char *dst, size_t len, const char *f, const char *a, const char *b) {
  int n = snprintf(dst, len, f, a, b);
  return n > 0 && (size_t)n < len ? 0 : -1;
}

/* The default policies of an installed layout: PREFIX is <bin>/.. made canonical. */
static int installed_policies(layout_t *l, const char *bin) {
  char up[PATH_MAX], prefix[PATH_MAX];
  if (fmt(up, sizeof up, "%s/..%s", bin, "") < 0 || !realpath(up, prefix)) return -1;
  if (!strcmp(prefix, "/usr")) return fmt(l->policies, sizeof l->policies, "%s%s", "/etc/rotator/policies", "");
  return fmt(l->policies, sizeof l->policies, "%s%s", prefix, "/etc/rotator/policies");
}

int layout_find(layout_t *l) {
  char bin[PATH_MAX];
  memset(l, 0, sizeof *l);
  ssize_t n = readlink("/proc/self/exe", bin, sizeof bin - 1);
  if (n <= 0) {
    snprintf(l->tried[l->ntried++], sizeof l->tried[0], "(/proc/self/exe unreadable)");
    return -1;
  }
  bin[n] = '\0';
  char *slash = strrchr(bin, '/');
  if (slash) *slash = '\0';
  static const char *const SCRIPTS[] = {"%s/scripts", "%s/../share/rotator/scripts", "%s/../../scripts"};
  static const char *const POLICIES[] = {"%s/policies", NULL, "%s/../../policies"};
  for (size_t i = 0; i < 3; i++) {
    char *cand = l->tried[l->ntried++];
    if (fmt(cand, sizeof l->tried[0], SCRIPTS[i], bin, NULL) < 0) continue;
    if (!is_dir(cand)) continue;
    memcpy(l->scripts, cand, strlen(cand) + 1);
    if (POLICIES[i]) return fmt(l->policies, sizeof l->policies, POLICIES[i], bin, NULL) < 0 ? -1 : 0;
    return installed_policies(l, bin) < 0 ? -1 : 0;
  }
  l->scripts[0] = '\0';
  return -1;
}

void layout_report_missing(const layout_t *l) {
  log_report("rotator: engine scripts not found; looked in:\n");
  for (size_t i = 0; i < l->ntried; i++) log_report("  %s\n", l->tried[i]);
  log_report("Install with `make install PREFIX=...` (scripts go to PREFIX/share/rotator/scripts), "
             "or set --scripts DIR (ROTATOR_SCRIPTS).\n");
}
