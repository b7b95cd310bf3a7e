/* Minimal TAP producer for the C unit tests: each test binary prints a plan-less
 * stream of "ok N - name" lines and a closing "1..N"; prove reads it. */
#ifndef ROTATOR_TAP_H
#define ROTATOR_TAP_H
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;
#define TAP_FN static __attribute__((unused))

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_str(got, want, ...) tap_is_str((got), (want), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...) tap_is_int((long long)(got), (long long)(want), __FILE__, __LINE__, __VA_ARGS__)

#include <stdarg.h>
TAP_FN void tap_vname(const char *fmt, va_list ap) { vprintf(fmt, ap); }

TAP_FN int tap_ok(int pass, const char *file, int line, const char *fmt, ...) {
  va_list ap;
  tap_n++;
  printf("%sok %d - ", pass ? "" : "not ", tap_n);
  va_start(ap, fmt); tap_vname(fmt, ap); va_end(ap);
  printf("\n");
  if (!pass) { tap_failed++; printf("#   failed at %s:%d\n", file, line); }
  fflush(stdout);
  return pass;
}

TAP_FN int tap_is_str(const char *got, const char *want, const char *file, int line, const char *fmt, ...) {
  int pass = (got && want) ? strcmp(got, want) == 0 : got == want;
  va_list ap;
  tap_n++;
  printf("%sok %d - ", pass ? "" : "not ", tap_n);
  va_start(ap, fmt); tap_vname(fmt, ap); va_end(ap);
  printf("\n");
  if (!pass) {
    tap_failed++;
    printf("#   failed at %s:%d\n#   got:  '%s'\n#   want: '%s'\n", file, line,
           got ? got : "(null)", want ? want : "(null)");
  }
  fflush(stdout);
  return pass;
}

TAP_FN int tap_is_int(long long got, long long want, const char *file, int line, const char *fmt, ...) {
  int pass = got == want;
  va_list ap;
  tap_n++;
  printf("%sok %d - ", pass ? "" : "not ", tap_n);
  va_start(ap, fmt); tap_vname(fmt, ap); va_end(ap);
  printf("\n");
  if (!pass) { tap_failed++; printf("#   failed at %s:%d\n#   got: %lld want: %lld\n", file, line, got, want); }
  fflush(stdout);
  return pass;
}

TAP_FN void tap_skip_all(const char *reason) { printf("1..0 # SKIP %s\n", reason); fflush(stdout); }
TAP_FN int tap_done(void) { printf("1..%d\n", tap_n); return tap_failed ? 1 : 0; }
#endif
