/* Runs a libFuzzer harness without libFuzzer: each file named on the command line (or each
 * file in each folder named) is passed once to LLVMFuzzerTestOneInput. The harnesses abort
 * on a failed check, so a regression fails the run. Built with the normal compiler and
 * flags (sanitizers included under make asan), the test suite replays every corpus. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) { fprintf(stderr, "replay: cannot open %s\n", path); return -1; }
  size_t cap = 4096, n = 0;
  uint8_t *buf = malloc(cap);
  if (!buf) { fclose(f); return -1; }
  for (;;) {
    if (n == cap) {
      uint8_t *nb = realloc(buf, cap * 2);
      if (!nb) { free(buf); fclose(f); fprintf(stderr, "replay: out of memory on %s\n", path); return -1; }
      buf = nb, cap *= 2;
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (r == 0) break;
  }
  int err = ferror(f);
  fclose(f);
  if (err) { free(buf); fprintf(stderr, "replay: read error on %s\n", path); return -1; }
  LLVMFuzzerTestOneInput(buf, n);
  free(buf);
  return 1;
}

int main(int argc, char **argv) {
  long count = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) { fprintf(stderr, "replay: no such file or folder: %s\n", argv[i]); return 2; }
    if (!S_ISDIR(st.st_mode)) {
      if (run_file(argv[i]) < 0) return 2;
      count++;
      continue;
    }
    DIR *d = opendir(argv[i]);
    if (!d) { fprintf(stderr, "replay: cannot open folder %s\n", argv[i]); return 2; }
    struct dirent *e;
    while ((e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      char path[4096];
      int len = snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
      if (len < 0 || (size_t)len >= sizeof path) { closedir(d); fprintf(stderr, "replay: path too long in %s\n", argv[i]); return 2; }
      if (run_file(path) < 0) { closedir(d); return 2; }
      count++;
    }
    closedir(d);
  }
  printf("replayed %ld inputs\n", count);
  return 0;
}
