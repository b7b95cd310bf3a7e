/* `host` module: what scripts need from the process around them.
 *   host.on_signal("HUP"|"TERM", fn|nil)  hook for reload / graceful stop (TERM covers INT)
 *   host.exit(code)                       leave the event loop with this exit status
 *   host.hold() -> handle                 mark in-flight work; handle:release() (or __close,
 *                                          or garbage collection) ends it. A graceful stop
 *                                          waits until every hold is released.
 *   host.stopping()                       true once SIGTERM/SIGINT arrived
 *   host.list_dir(path) -> {names}        sorted, dot-files left out; nil, msg on error
 *   host.read_file(path) -> string        nil, msg on error (msg names the path)
 *   host.pid()                            this process's id
 *   host.mkdir(path)                      mkdir -p, new folders 0700; nil, msg on error
 *   host.reload()                         start a hot reload (see host.h); false if busy
 *   host.sha256_hex(data)                 hex digest, e.g. of a policy file for `status`
 *   host.bounded(opts, fn, ...)           run untrusted code under an instruction bound
 *                                          (lua/bound.h): true, results | false, err
 *   host.bound_adopt(co)                  co counts against the caller's bound
 *   host.notify(kind, status)             the service manager's notify protocol (svc/notify.h):
 *                                          kind "ready" | "stopping" | "status"; true when
 *                                          sent, false without NOTIFY_SOCKET
 *   host.watchdog()                       start WATCHDOG=1 pings from a loop timer if
 *                                          WATCHDOG_USEC asks; -> ping interval (s) or nil
 *   host.test_block_loop(seconds [, mark]) TEST HOOK (only with ROTATOR_TEST_HOOKS=1): block
 *                                          the event loop, as a wedged callback would;
 *                                          creates the file MARK first (so a test knows
 *                                          when the block began)
 *   host.config                           scripts_dir, policies_dir, state_dir, version,
 *                                          stop_timeout_ms (--stop-timeout) */
#include <dirent.h>
#include <malloc.h>
#include <openssl/evp.h>
#include <unistd.h>
#include <errno.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "core/host.h"
#include "lua/bound.h"
#include "lua/modules.h"
#include "lua/fields.h"
#include "svc/notify.h"
#include "version.h"

#define HOLD_MT "rotator.hold"

static int fail(lua_State *L, const char *path) {
  int e = errno;
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", path, strerror(e));
  return 2;
}

static int h_on_signal(lua_State *L) {
  static const char *const names[] = {"HUP", "TERM", NULL};
  static const char *const keys[] = {HOST_HOOK_HUP, HOST_HOOK_TERM};
  int which = luaL_checkoption(L, 1, NULL, names);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  lua_setfield(L, LUA_REGISTRYINDEX, keys[which]);
  return 0;
}

static int h_reload(lua_State *L) {
  lua_pushboolean(L, host_reload(host_from_lua(L), "request") == 0);
  return 1;
}

static int h_exit(lua_State *L) {
  host_exit(host_from_lua(L), (int)luaL_optinteger(L, 1, 0));
  return 0;
}

static int h_stopping(lua_State *L) {
  lua_pushboolean(L, host_from_lua(L)->stopping);
  return 1;
}

typedef struct { host_t *h; int held; } hold_t;

static int h_hold(lua_State *L) {
  hold_t *hd = lua_newuserdatauv(L, sizeof *hd, 0);
  *hd = (hold_t){.h = host_from_lua(L), .held = 1};
  luaL_setmetatable(L, HOLD_MT);
  host_hold(hd->h);
  return 1;
}

static int hold_release(lua_State *L) {
  hold_t *hd = luaL_checkudata(L, 1, HOLD_MT);
  if (hd->held) {
    hd->held = 0;
    host_release(hd->h);
  }
  return 0;
}

static int h_inflight(lua_State *L) {
  lua_pushinteger(L, host_from_lua(L)->inflight);
  return 1;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int h_list_dir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  DIR *d = opendir(path);
  if (!d) return fail(L, path);
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  int oom = 0;
  while (!oom && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      char **grown = realloc(names, cap * sizeof *names);
      if (!grown) { oom = 1; break; }
      names = grown;
    }
    if (!(names[n] = strdup(e->d_name))) oom = 1;
    else n++;
  }
  closedir(d);
  if (!oom && n > 1) qsort(names, n, sizeof *names, cmp_names); /* names is NULL when empty */
  if (!oom) lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    if (!oom) { lua_pushstring(L, names[i]); lua_rawseti(L, -2, (lua_Integer)i + 1); }
    free(names[i]);
  }
  free(names);
  if (oom) return luaL_error(L, "host.list_dir: out of memory listing %s", path);
  return 1;
}

static int h_read_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  FILE *f = fopen(path, "rb");
  if (!f) return fail(L, path);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  size_t got;
  do {
    char *p = luaL_prepbuffer(&b);
    got = fread(p, 1, LUAL_BUFFERSIZE, f);
    luaL_addsize(&b, got);
  } while (got == LUAL_BUFFERSIZE);
  int err = ferror(f);
  fclose(f);
  if (err) { errno = EIO; return fail(L, path); }
  luaL_pushresult(&b);
  return 1;
}

/* mkdir -p with mode 0700 for new folders (state directories hold the journal and the
 * control socket). */
static int h_mkdir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char buf[4096];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof buf) return luaL_argerror(L, 1, "empty or too long path");
  memcpy(buf, path, n + 1);
  for (char *p = buf + 1;; p++) {
    if (*p != '/' && *p != '\0') continue;
    char c = *p;
    *p = '\0';
    if (mkdir(buf, 0700) < 0 && errno != EEXIST) return fail(L, buf);
    *p = c;
    if (c == '\0') break;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int h_pid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

static int h_sha256_hex(lua_State *L) {
  size_t len;
  const char *data = luaL_checklstring(L, 1, &len);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL))
    return luaL_error(L, "host.sha256_hex: OpenSSL digest failed");
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  static const char digits[] = "0123456789abcdef";
  for (unsigned i = 0; i < mdlen; i++) {
    hex[2 * i] = digits[md[i] >> 4];
    hex[2 * i + 1] = digits[md[i] & 15];
  }
  lua_pushlstring(L, hex, 2 * (size_t)mdlen);
  return 1;
}

static int h_notify(lua_State *L) {
  static const char *const kinds[] = {"ready", "stopping", "status", NULL};
  int kind = luaL_checkoption(L, 1, NULL, kinds);
  const char *status = luaL_optstring(L, 2, "");
  int rc = kind == 0 ? notify_ready(status) : kind == 1 ? notify_stopping(status) : notify_status(status);
  lua_pushboolean(L, rc > 0);
  return 1;
}

/* host.release_memory(): a full collection of this state, then the C heap's free pages
 * handed back to the kernel (malloc_trim). For the end of start-up, which leaves the
 * garbage of loading policies and modules behind and then may idle for hours. Returns the
 * Lua heap's size in bytes after the collection. */
static int h_release_memory(lua_State *L) {
  lua_gc(L, LUA_GCCOLLECT);
  malloc_trim(0);
  lua_Integer kb = lua_gc(L, LUA_GCCOUNT), b = lua_gc(L, LUA_GCCOUNTB);
  lua_pushinteger(L, kb * 1024 + b);
  return 1;
}

static int h_watchdog(lua_State *L) {
  int64_t usec = notify_watchdog_start(host_from_lua(L)->loop);
  if (usec < 0) return luaL_error(L, "host.watchdog: cannot arm the watchdog timer");
  if (usec == 0) return 0;
  lua_pushnumber(L, (lua_Number)usec / 1e6);
  return 1;
}

/* A test hook: stands for a callback that never returns, so tests can see the watchdog
 * pings stop. Refused unless the process was started with ROTATOR_TEST_HOOKS=1. */
static int h_test_block_loop(lua_State *L) {
  lua_Number secs = luaL_checknumber(L, 1);
  const char *on = getenv("ROTATOR_TEST_HOOKS");
  if (!on || strcmp(on, "1") != 0) return luaL_error(L, "host.test_block_loop is a test hook: set ROTATOR_TEST_HOOKS=1");
  if (secs < 0 || secs > 600) return luaL_argerror(L, 1, "0..600 seconds");
  const char *mark = luaL_optstring(L, 2, NULL);
  if (mark) {
    int fd = open(mark, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return luaL_error(L, "host.test_block_loop: cannot create %s: %s", mark, strerror(errno));
    if (close(fd) != 0) return luaL_error(L, "host.test_block_loop: closing %s: %s", mark, strerror(errno));
  }
  struct timespec ts = {(time_t)secs, (long)((secs - (lua_Number)(time_t)secs) * 1e9)};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
  return 0;
}

/* host.lock_state_dir(dir): one daemon per state directory. Takes an exclusive flock on
 * DIR/rotator.lock, held (fd kept open) until the process exits, and writes our pid into
 * it. Returns true; or nil, message, pid-of-holder when another process holds it. The
 * kernel drops the lock when the holder dies, even by SIGKILL. */
static int lock_fd = -1;
static int h_lock_state_dir(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  if (lock_fd >= 0) { lua_pushboolean(L, 1); return 1; }
  char path[4096];
  int n = snprintf(path, sizeof path, "%s/rotator.lock", dir);
  if (n < 0 || (size_t)n >= sizeof path) return luaL_error(L, "state directory path longer than %zu bytes: %s", sizeof path - 16, dir);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot open %s: %s", path, strerror(errno));
    return 2;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    char buf[32] = {0};
    ssize_t r = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    lua_pushnil(L);
    if (e == EWOULDBLOCK) {
      long pid = r > 0 ? strtol(buf, NULL, 10) : 0;
      lua_pushfstring(L, "another rotator (pid %d) is running on the state directory %s (lock %s): stop it first, "
                      "or give this one its own --state-dir", (int)pid, dir, path);
      lua_pushinteger(L, pid);
      return 3;
    }
    lua_pushfstring(L, "cannot lock %s: %s", path, strerror(e));
    return 2;
  }
  char pid[32];
  int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
    int e = errno;
    close(fd);
    lua_pushnil(L);
    lua_pushfstring(L, "cannot write the pid into %s: %s", path, strerror(e));
    return 2;
  }
  lock_fd = fd;
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg funcs[] = {
    {"on_signal", h_on_signal}, {"exit", h_exit}, {"stopping", h_stopping},
    {"hold", h_hold}, {"inflight", h_inflight}, {"list_dir", h_list_dir},
    {"read_file", h_read_file}, {"pid", h_pid}, {"mkdir", h_mkdir}, {"reload", h_reload}, {"sha256_hex", h_sha256_hex},
    {"bounded", bound_lua_call}, {"bound_adopt", bound_lua_adopt},
    {"bound_sliced", bound_lua_sliced}, {"notify", h_notify}, {"lock_state_dir", h_lock_state_dir}, {"watchdog", h_watchdog},
    {"release_memory", h_release_memory},
    {"test_block_loop", h_test_block_loop}, {NULL, NULL}};

int luaopen_rotator_host(lua_State *L) {
  luaL_newmetatable(L, HOLD_MT);
  lua_pushcfunction(L, hold_release);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, hold_release);
  lua_setfield(L, -2, "__close");
  lua_newtable(L);
  lua_pushcfunction(L, hold_release);
  lua_setfield(L, -2, "release");
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  host_t *h = host_from_lua(L);
  lua_newtable(L);
  lfield_str(L, "scripts_dir", h->scripts_dir);
  lfield_str(L, "policies_dir", h->policies_dir);
  lfield_str(L, "state_dir", h->state_dir);
  lfield_str(L, "version", ROTATOR_VERSION);
  lfield_str(L, "gitrev", ROTATOR_GITREV);
  lua_pushinteger(L, (lua_Integer)h->stop_timeout_ms);
  lua_setfield(L, -2, "stop_timeout_ms");
  lua_setfield(L, -2, "config");
  return 1;
}
