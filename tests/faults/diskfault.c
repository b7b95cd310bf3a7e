/* A disk-fault shim for tests, loaded with LD_PRELOAD: write(2), pwrite(2), writev(2),
 * fsync(2), fdatasync(2) and ftruncate(2) on files whose path matches a pattern fail with
 * a chosen errno while a control file exists, so a test can make the disk "full" (or
 * failing, or read-only) and "free" again while the process runs.
 *
 *   DISKFAULT_PATTERN  fnmatch(3) pattern on the file's path (from /proc/self/fd), e.g.
 *                      "*" "/state/journal.db*"; unset: the shim does nothing
 *   DISKFAULT_CONTROL  path of the control file. While it exists its first word names the
 *                      errno: ENOSPC (default when empty), EIO, EROFS, EACCES, EDQUOT; an
 *                      optional second word limits the calls, comma-separated, from
 *                      write, fsync, truncate (write covers pwrite and writev; fsync
 *                      covers fdatasync), e.g. "EIO fsync"
 *   DISKFAULT_HITS     optional: a file that gets one line "call errno path" per injected
 *                      failure, so a test can prove the fault happened
 *
 * The control file is read at every matching call (tests, not production). Nothing is
 * written to the file when a call fails: a failed write has no partial effect. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum { C_WRITE = 1, C_FSYNC = 2, C_TRUNCATE = 4, C_ALL = 7 };

static const struct { const char *name; int err; } ERRNOS[] = {
    {"ENOSPC", ENOSPC}, {"EIO", EIO}, {"EROFS", EROFS}, {"EACCES", EACCES}, {"EDQUOT", EDQUOT}};

static void *next(const char *name) {
  void *f = dlsym(RTLD_NEXT, name);
  if (!f) {
    static const char msg[] = "diskfault: dlsym failed\n";
    (void)syscall(SYS_write, 2, msg, sizeof msg - 1);
    abort();
  }
  return f;
}

/* The control file's choice: errno to inject for this call class, or 0. */
static int control(int call) {
  const char *path = getenv("DISKFAULT_CONTROL");
  if (!path) return 0;
  int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  long n = syscall(SYS_read, fd, buf, sizeof buf - 1);
  (void)syscall(SYS_close, fd);
  buf[n > 0 ? n : 0] = '\0';
  char name[32] = "", calls[96] = "";
  int got = sscanf(buf, "%31s %95s", name, calls);
  int err = ENOSPC, mask = C_ALL;
  if (got >= 1) {
    err = 0;
    for (size_t i = 0; i < sizeof ERRNOS / sizeof ERRNOS[0]; i++)
      if (strcmp(name, ERRNOS[i].name) == 0) err = ERRNOS[i].err;
    if (!err) err = EIO; /* an unknown name still fails, visibly */
  }
  if (got == 2) {
    mask = 0;
    if (strstr(calls, "write")) mask |= C_WRITE;
    if (strstr(calls, "fsync")) mask |= C_FSYNC;
    if (strstr(calls, "truncate")) mask |= C_TRUNCATE;
  }
  return (mask & call) ? err : 0;
}

static void note(const char *call, int err, const char *path) {
  const char *hits = getenv("DISKFAULT_HITS");
  if (!hits) return;
  int fd = (int)syscall(SYS_openat, AT_FDCWD, hits, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return;
  char line[4200];
  int n = snprintf(line, sizeof line, "%s %s %s\n", call, strerrorname_np(err), path);
  if (n > 0) (void)syscall(SYS_write, fd, line, (size_t)(n < (int)sizeof line ? n : (int)sizeof line - 1));
  (void)syscall(SYS_close, fd);
}

/* 0: let the call through; otherwise errno is set and the caller returns -1. */
static int inject(int fd, int call, const char *name) {
  const char *pattern = getenv("DISKFAULT_PATTERN");
  if (!pattern || fd < 0) return 0;
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  long n = syscall(SYS_readlinkat, AT_FDCWD, link, path, sizeof path - 1);
  if (n <= 0) return 0;
  path[n] = '\0';
  if (fnmatch(pattern, path, 0) != 0) return 0;
  int err = control(call);
  if (!err) return 0;
  note(name, err, path);
  errno = err;
  return -1;
}

ssize_t write(int fd, const void *buf, size_t n) {
  static ssize_t (*real)(int, const void *, size_t);
  if (!real) real = next("write");
  if (inject(fd, C_WRITE, "write")) return -1;
  return real(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
  static ssize_t (*real)(int, const void *, size_t, off_t);
  if (!real) real = next("pwrite");
  if (inject(fd, C_WRITE, "pwrite")) return -1;
  return real(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
  static ssize_t (*real)(int, const void *, size_t, off_t);
  if (!real) real = next("pwrite64");
  if (inject(fd, C_WRITE, "pwrite64")) return -1;
  return real(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
  static ssize_t (*real)(int, const struct iovec *, int);
  if (!real) real = next("writev");
  if (inject(fd, C_WRITE, "writev")) return -1;
  return real(fd, iov, cnt);
}

int fsync(int fd) {
  static int (*real)(int);
  if (!real) real = next("fsync");
  if (inject(fd, C_FSYNC, "fsync")) return -1;
  return real(fd);
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (!real) real = next("fdatasync");
  if (inject(fd, C_FSYNC, "fdatasync")) return -1;
  return real(fd);
}

int ftruncate(int fd, off_t len) {
  static int (*real)(int, off_t);
  if (!real) real = next("ftruncate");
  if (inject(fd, C_TRUNCATE, "ftruncate")) return -1;
  return real(fd, len);
}

int ftruncate64(int fd, off_t len) {
  static int (*real)(int, off_t);
  if (!real) real = next("ftruncate64");
  if (inject(fd, C_TRUNCATE, "ftruncate64")) return -1;
  return real(fd, len);
}
