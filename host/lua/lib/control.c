/* `control` module: the daemon's control socket (REPL and status).
 *   control.listen(path, handler) -> true | nil, msg
 *       A Unix socket created mode 0600; a peer whose uid is neither ours nor root's
 *       (SO_PEERCRED) gets a refusal frame and is disconnected. handler(conn, kind, payload) runs for
 *       each frame (kind "eval", "cancel", "status") and handler(conn, "closed") at the end.
 *       One server per process: listening again (e.g. from a reloaded state) keeps the
 *       socket and its connections and only replaces the handler.
 *   control.adopt(fd, handler)   serve an inherited, already-connected fd (repl --local)
 *   control.send(conn, kind, text)  kind: "output", "result", "error", "incomplete"
 *   control.close()              stop listening, drop connections, remove the socket
 * The handler lives in the running state (its main thread: lstate_owner); a candidate
 * state being prepared by a reload cannot take the socket, and a frame for a replaced
 * state is dropped with a debug line. While a REPL chunk runs, the instruction hook
 * (lua/bound.c) asks cancel_pending() whether the client sent a cancel frame (Ctrl-C):
 * the bytes it reads are kept and dispatched after the chunk, from the loop. */
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/frame.h"
#include "core/log.h"
#include "lua/bound.h"
#include "lua/state.h"
#include "lua/modules.h"

typedef struct conn {
  struct conn *next;
  int fd;
  lua_Integer id;
  buf_t in, out;
  int closing;            /* flush out, then close */
  int buffered;           /* the hook read frames into `in`: dispatch them from the loop */
  int lost;               /* the hook could not keep what it read (out of memory): drop it */
} conn_t;

typedef struct {
  host_t *h;
  int lfd;                /* listening socket, -1 if none */
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  conn_t *conns;
  lua_Integer next_id;
  int handler_ref;
  lua_State *L;           /* main thread of the state the handler lives in */
  loop_timer_t redispatch; /* frames the hook read while a chunk ran */
  int timer_ready;
} server_t;

static server_t srv = {.lfd = -1, .handler_ref = LUA_NOREF};

static conn_t *find_conn(lua_Integer id) {
  for (conn_t *c = srv.conns; c; c = c->next)
    if (c->id == id) return c;
  return NULL;
}

static void call_handler(lua_Integer id, const char *kind, const char *payload, size_t len) {
  lua_State *L = srv.L;
  if (!L || srv.handler_ref == LUA_NOREF) return;
  if (!lstate_is_current(L)) {
    log_msg(LOG_DEBUG, "control.dropped", "a %s frame for a replaced Lua state: dropped", kind);
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, srv.handler_ref);
  lua_pushinteger(L, id);
  lua_pushstring(L, kind);
  if (payload) lua_pushlstring(L, payload, len);
  else lua_pushnil(L);
  lstate_callback(L, 3, "control handler");
}

static void conn_drop(conn_t *c) {
  conn_t **pp = &srv.conns;
  while (*pp && *pp != c) pp = &(*pp)->next;
  if (*pp) *pp = c->next;
  loop_unwatch(srv.h->loop, c->fd);
  close(c->fd);
  lua_Integer id = c->id;
  buf_free(&c->in);
  buf_free(&c->out);
  free(c);
  call_handler(id, "closed", NULL, 0);
}

static void on_conn_io(loop_t *loop, int fd, int events, void *ud);

static void conn_update_interest(conn_t *c) {
  int ev = (c->closing ? 0 : LOOP_READ) | (c->out.len ? LOOP_WRITE : 0);
  if (!ev) { conn_drop(c); return; }
  if (loop_watch(srv.h->loop, c->fd, ev, on_conn_io, c) < 0) conn_drop(c);
}

static const char *kind_of(int type) {
  switch (type) {
    case FRAME_EVAL: return "eval";
    case FRAME_CANCEL: return "cancel";
    case FRAME_STATUS: return "status";
  }
  return NULL;
}

/* Dispatch every complete frame; returns -1 if the peer sent garbage. */
static int conn_dispatch(conn_t *c) {
  int type, r;
  const char *payload;
  size_t len;
  lua_Integer id = c->id;
  while ((r = frame_get(&c->in, &type, &payload, &len)) == 1) {
    const char *kind = kind_of(type);
    if (!kind) return -1;
    call_handler(id, kind, payload, len);
    if (find_conn(id) != c) return 0; /* the handler closed it */
    buf_consume(&c->in, FRAME_HEADER + len);
  }
  return r;
}

static void conn_read(conn_t *c) {
  char buf[4096];
  ssize_t n = read(c->fd, buf, sizeof buf);
  if (c->lost || n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) { conn_drop(c); return; }
  if (n < 0) return;
  lua_Integer id = c->id;
  if (buf_append(&c->in, buf, (size_t)n) < 0 || conn_dispatch(c) < 0) {
    if (find_conn(id) == c) conn_drop(c);
  }
}

static void conn_write(conn_t *c) {
  ssize_t n = write(c->fd, c->out.data, c->out.len);
  if (n < 0 && errno != EAGAIN && errno != EINTR) { conn_drop(c); return; }
  if (n > 0) buf_consume(&c->out, (size_t)n);
  conn_update_interest(c);
}

static void on_conn_io(loop_t *loop, int fd, int events, void *ud) {
  (void)loop, (void)fd;
  conn_t *c = ud;
  lua_Integer id = c->id;
  if (events & LOOP_WRITE) conn_write(c);
  if (find_conn(id) != c) return;
  if (events & (LOOP_READ | LOOP_ERROR)) conn_read(c);
}

static conn_t *conn_add(int fd) {
  conn_t *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->fd = fd;
  c->id = ++srv.next_id;
  c->next = srv.conns;
  srv.conns = c;
  if (loop_watch(srv.h->loop, fd, LOOP_READ, on_conn_io, c) < 0) {
    srv.conns = c->next;
    free(c);
    return NULL;
  }
  return c;
}

/* The daemon's own uid and root may talk to it (root can read the journal and trace the
 * process anyway; this lets `sudo rotator status` reach a service running as its own
 * user). Any other peer gets one refusal frame, written best-effort, and is closed. */
static int peer_allowed(int fd) {
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return 0;
  if (cred.uid == geteuid() || cred.uid == 0) return 1;
  char msg[160], uid[24];
  int n = snprintf(msg, sizeof msg, "refused: uid %u is not the daemon's uid %u",
                   (unsigned)cred.uid, (unsigned)geteuid());
  buf_t b = {0};
  if (n > 0 && frame_put(&b, FRAME_REFUSED, msg, (size_t)n) == 0) {
    ssize_t w = write(fd, b.data, b.len);
    (void)w;
  }
  buf_free(&b);
  snprintf(uid, sizeof uid, "%u", (unsigned)cred.uid);
  char pid[24];
  snprintf(pid, sizeof pid, "%d", (int)cred.pid);
  log_field_t f[] = {{"uid", uid, LOG_T_NUM}, {"pid", pid, LOG_T_NUM}};
  log_fields(LOG_WARN, "control.refused", f, 2);
  return 0;
}

static void on_accept(loop_t *loop, int fd, int events, void *ud) {
  (void)loop, (void)events, (void)ud;
  int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (cfd < 0) return;
  if (!peer_allowed(cfd) || !conn_add(cfd)) close(cfd);
}

/* Is a cancel frame (or the end of the stream) waiting on connection id? Reads what the
 * socket holds without blocking; called from the instruction hook, so it never calls Lua. */
static int cancel_pending(lua_Integer id) {
  conn_t *c = find_conn(id);
  if (!c) return 1;
  char buf[4096];
  ssize_t n;
  while ((n = read(c->fd, buf, sizeof buf)) > 0) {
    c->buffered = 1;
    if (buf_append(&c->in, buf, (size_t)n) < 0) { /* its stream has a hole now */
      c->lost = 1;
      break;
    }
  }
  if (c->buffered && srv.timer_ready && !loop_timer_armed(&srv.redispatch) &&
      loop_timer_start(srv.h->loop, &srv.redispatch, 0) < 0)
    log_msg(LOG_ERROR, "control.timer", "cannot arm the timer that answers frames read while a chunk runs; "
            "they are answered on the connection's next read");
  if (c->lost) return 1; /* stop the chunk: the connection is dropped from the loop */
  if (n == 0) return 1; /* the client went away; conn_read sees the EOF again */
  buf_t view = c->in;
  int type;
  const char *payload;
  size_t len;
  while (frame_get(&view, &type, &payload, &len) == 1) {
    if (type == FRAME_CANCEL) return 1;
    view.data += FRAME_HEADER + len;
    view.len -= FRAME_HEADER + len;
  }
  return 0;
}

static int conn_dispatch(conn_t *c);

static void on_redispatch(loop_t *loop, loop_timer_t *t, void *ud) {
  (void)loop, (void)t, (void)ud;
  conn_t *c;
  do {
    for (c = srv.conns; c && !c->buffered; c = c->next) {}
    if (c) {
      lua_Integer id = c->id;
      c->buffered = 0;
      if (c->lost) {
        log_msg(LOG_ERROR, "control.dropped", "out of memory buffering a control connection's input: dropped");
        conn_drop(c);
      } else if (conn_dispatch(c) < 0 && find_conn(id) == c) {
        conn_drop(c);
      }
    }
  } while (c);
}

static void set_handler(lua_State *L, int idx) {
  luaL_checktype(L, idx, LUA_TFUNCTION);
  if (!lstate_is_current(L))
    luaL_error(L, "control: only the running state serves the control socket (this one is being prepared by a reload)");
  if (srv.L && srv.handler_ref != LUA_NOREF) luaL_unref(srv.L, LUA_REGISTRYINDEX, srv.handler_ref);
  lua_pushvalue(L, idx);
  srv.handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  srv.L = lstate_owner(L);
  srv.h = host_from_lua(L);
  if (!srv.timer_ready) {
    loop_timer_init(&srv.redispatch, on_redispatch, NULL);
    srv.timer_ready = 1;
  }
  bound_set_cancel_poll(cancel_pending);
}

/* Remove a stale socket left by a dead daemon; refuse to steal a live one. */
static int clear_stale(const struct sockaddr_un *sa, char *err, size_t len) {
  struct stat st;
  if (lstat(sa->sun_path, &st) < 0) return errno == ENOENT ? 0 : -1;
  if (!S_ISSOCK(st.st_mode)) {
    snprintf(err, len, "%s exists and is not a socket", sa->sun_path);
    return -1;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int live = connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0;
  close(fd);
  if (live) {
    snprintf(err, len, "another rotator is listening on %s", sa->sun_path);
    return -1;
  }
  return unlink(sa->sun_path);
}

static int open_listener(const char *path, char *err, size_t len) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) {
    snprintf(err, len, "%s: socket path too long (max %zu bytes)", path, sizeof sa.sun_path - 1);
    return -1;
  }
  memcpy(sa.sun_path, path, strlen(path) + 1);
  err[0] = '\0';
  if (clear_stale(&sa, err, len) < 0) {
    if (!err[0]) snprintf(err, len, "%s: %s", path, strerror(errno));
    return -1;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) { snprintf(err, len, "socket: %s", strerror(errno)); return -1; }
  mode_t old = umask(0177); /* the socket is born 0600: no window with wider access */
  int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
  umask(old);
  if (rc < 0 || listen(fd, 16) < 0) {
    snprintf(err, len, "%s: %s", path, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

static int c_listen(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  set_handler(L, 2);
  if (srv.lfd >= 0 && strcmp(srv.path, path) == 0) { lua_pushboolean(L, 1); return 1; }
  char err[256];
  int fd = open_listener(path, err, sizeof err);
  if (fd < 0) { lua_pushnil(L); lua_pushstring(L, err); return 2; }
  if (loop_watch(srv.h->loop, fd, LOOP_READ, on_accept, NULL) < 0) {
    close(fd);
    unlink(path);
    lua_pushnil(L);
    lua_pushfstring(L, "%s: cannot watch the socket: %s", path, strerror(errno));
    return 2;
  }
  srv.lfd = fd;
  snprintf(srv.path, sizeof srv.path, "%s", path);
  lua_pushboolean(L, 1);
  return 1;
}

static int c_adopt(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  set_handler(L, 2);
  if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) return luaL_error(L, "control.adopt: fd %d: %s", fd, strerror(errno));
  conn_t *c = conn_add(fd);
  if (!c) return luaL_error(L, "control.adopt: out of memory");
  lua_pushinteger(L, c->id);
  return 1;
}

static int c_send(lua_State *L) {
  static const char *const kinds[] = {"output", "result", "error", "incomplete", NULL};
  static const int types[] = {FRAME_OUTPUT, FRAME_RESULT, FRAME_ERROR, FRAME_INCOMPLETE};
  conn_t *c = find_conn(luaL_checkinteger(L, 1));
  int k = luaL_checkoption(L, 2, NULL, kinds);
  size_t len;
  const char *text = luaL_optlstring(L, 3, "", &len);
  if (!c) { lua_pushboolean(L, 0); return 1; } /* the client went away: nothing to do */
  if (frame_put(&c->out, types[k], text, len) < 0) return luaL_error(L, "control.send: frame too large");
  conn_update_interest(c);
  lua_pushboolean(L, 1);
  return 1;
}

static int c_close(lua_State *L) {
  (void)L;
  if (srv.timer_ready) loop_timer_stop(srv.h->loop, &srv.redispatch);
  while (srv.conns) {
    conn_t *c = srv.conns;
    srv.conns = c->next;
    loop_unwatch(srv.h->loop, c->fd);
    close(c->fd);
    buf_free(&c->in);
    buf_free(&c->out);
    free(c);
  }
  if (srv.lfd >= 0) {
    loop_unwatch(srv.h->loop, srv.lfd);
    close(srv.lfd);
    unlink(srv.path);
    srv.lfd = -1;
  }
  return 0;
}

/* The state holding the handler is closing: forget it (a reload re-registers). */
static int c_state_gc(lua_State *L) {
  if (srv.L == lstate_owner(L)) {
    c_close(L);
    srv.L = NULL;
    srv.handler_ref = LUA_NOREF;
  }
  return 0;
}

static const luaL_Reg funcs[] = {{"listen", c_listen}, {"adopt", c_adopt}, {"send", c_send},
                                 {"close", c_close}, {NULL, NULL}};

int luaopen_rotator_control(lua_State *L) {
  luaL_newlib(L, funcs);
  /* A sentinel whose __gc runs when the state closes. */
  lua_newuserdatauv(L, 0, 0);
  lua_newtable(L);
  lua_pushcfunction(L, c_state_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, -2, "_sentinel");
  return 1;
}
