/* credential_process: run the profile's command through /bin/sh without blocking the
 * loop (stdout pipe watched by loop_watch, a kill-on-timeout timer, reaping polled by a
 * short timer), and parse its JSON: {Version: 1, AccessKeyId, SecretAccessKey,
 * SessionToken, Expiration}. The child's stderr goes to ours, so operators see why it
 * failed; its stdout (which holds secrets) is never logged. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aws/creds/internal.h"

#define PROC_MAX_OUTPUT (64u << 10)
#define PROC_REAP_POLL_MS 5

struct creds_proc {
  loop_t *loop;
  pid_t pid;
  int fd;                 /* stdout read end, -1 once closed */
  int timed_out, exited, status;
  int overflow;           /* printed more than PROC_MAX_OUTPUT: stopped reading */
  int nomem;              /* out of memory holding its output: stopped reading */
  char *out;
  size_t len;
  loop_timer_t deadline, reap;
  creds_fetch_fn fn;
  void *ud;
  char *profile;          /* for messages (owned) */
};

static void proc_free(creds_proc_t *p) {
  loop_timer_stop(p->loop, &p->deadline);
  loop_timer_stop(p->loop, &p->reap);
  if (p->fd >= 0) { loop_unwatch(p->loop, p->fd); close(p->fd); }
  if (p->out) { explicit_bzero(p->out, p->len); free(p->out); }
  free(p->profile);
  free(p);
}

static void finish(creds_proc_t *p, const creds_t *c, const char *err) {
  creds_fetch_fn fn = p->fn;
  void *ud = p->ud;
  proc_free(p);
  fn(ud, c, err);
}

static void deliver(creds_proc_t *p) {
  char err[CREDS_ERR_MAX], why[256];
  creds_t c;
  if (p->overflow || p->nomem) {
    if (p->overflow)
      snprintf(err, sizeof err, "credential_process of profile \"%s\" printed more than the %u-byte limit",
               p->profile, PROC_MAX_OUTPUT);
    else
      snprintf(err, sizeof err, "credential_process of profile \"%s\": out of memory reading its output",
               p->profile);
    finish(p, NULL, err);
    return;
  }
  if (p->timed_out) {
    snprintf(err, sizeof err, "credential_process of profile \"%s\" did not finish in time and was killed", p->profile);
    finish(p, NULL, err);
    return;
  }
  if (!WIFEXITED(p->status) || WEXITSTATUS(p->status) != 0) {
    if (WIFEXITED(p->status))
      snprintf(err, sizeof err, "credential_process of profile \"%s\" exited with status %d (see its stderr above)",
               p->profile, WEXITSTATUS(p->status));
    else
      snprintf(err, sizeof err, "credential_process of profile \"%s\" was killed by signal %d", p->profile,
               WTERMSIG(p->status));
    finish(p, NULL, err);
    return;
  }
  const char *out = p->out ? p->out : "";
  if (creds_from_process_json(out, p->len, &c, why, sizeof why) != 0) {
    snprintf(err, sizeof err, "credential_process of profile \"%s\": %s", p->profile, why);
    finish(p, NULL, err);
    return;
  }
  snprintf(c.source, sizeof c.source, "process");
  finish(p, &c, NULL);
  creds_wipe(&c);
}

static void try_reap(creds_proc_t *p) {
  int st;
  pid_t r = waitpid(p->pid, &st, WNOHANG);
  if (r == 0 && loop_timer_start(p->loop, &p->reap, PROC_REAP_POLL_MS) == 0) return;
  if (r == 0) { /* no timer to poll with: end the child now rather than never reap it */
    kill(-p->pid, SIGKILL);
    kill(p->pid, SIGKILL);
    r = waitpid(p->pid, &st, 0);
    p->timed_out = 1;
  }
  p->exited = 1;
  p->status = r == p->pid ? st : 0;
  deliver(p);
}

static void on_reap(loop_t *loop, loop_timer_t *t, void *ud) {
  (void)loop, (void)t;
  try_reap(ud);
}

static void on_deadline(loop_t *loop, loop_timer_t *t, void *ud) {
  (void)loop, (void)t;
  creds_proc_t *p = ud;
  p->timed_out = 1;
  kill(-p->pid, SIGKILL);
  kill(p->pid, SIGKILL);
  if (p->fd >= 0) { loop_unwatch(p->loop, p->fd); close(p->fd); p->fd = -1; }
  try_reap(p);
}

static void on_readable(loop_t *loop, int fd, int events, void *ud) {
  (void)events;
  creds_proc_t *p = ud;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      if (p->len + (size_t)n > PROC_MAX_OUTPUT) { p->overflow = 1; n = 0; } /* stop reading */
      else {
        char *nb = realloc(p->out, p->len + (size_t)n + 1);
        if (!nb) { p->nomem = 1; n = 0; }
        else {
          p->out = nb;
          memcpy(p->out + p->len, buf, (size_t)n);
          p->len += (size_t)n;
          p->out[p->len] = 0;
          continue;
        }
      }
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) { explicit_bzero(buf, sizeof buf); return; }
    break;   /* EOF, error, or too much output */
  }
  explicit_bzero(buf, sizeof buf);
  loop_unwatch(loop, fd);
  close(fd);
  p->fd = -1;
  try_reap(p);
}

static void child(const char *command, int wfd) {
  loop_unblock_signals_in_child();
  setpgid(0, 0);
  int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) { dup2(devnull, 0); close(devnull); }
  if (dup2(wfd, 1) < 0) _exit(127);
  close(wfd);
  execl("/bin/sh", "sh", "-c", command, (char *)NULL);
  _exit(127);
}

creds_proc_t *creds_process_start(loop_t *loop, const char *command, const char *profile, long timeout_ms,
                                  creds_fetch_fn fn, void *ud, char *err, size_t errlen) {
  int fds[2];
  creds_proc_t *p = calloc(1, sizeof *p);
  if (!p) { snprintf(err, errlen, "out of memory"); return NULL; }
  p->loop = loop;
  p->fd = -1;
  p->fn = fn;
  p->ud = ud;
  if (!(p->profile = strdup(profile ? profile : "?"))) {
    snprintf(err, errlen, "out of memory");
    free(p);
    return NULL;
  }
  loop_timer_init(&p->deadline, on_deadline, p);
  loop_timer_init(&p->reap, on_reap, p);
  if (pipe2(fds, O_CLOEXEC) != 0) {
    snprintf(err, errlen, "credential_process of profile \"%s\": pipe: %s", p->profile, strerror(errno));
    free(p->profile);
    free(p);
    return NULL;
  }
  p->pid = fork();
  if (p->pid < 0) {
    snprintf(err, errlen, "credential_process of profile \"%s\": fork: %s", p->profile, strerror(errno));
    close(fds[0]);
    close(fds[1]);
    free(p->profile);
    free(p);
    return NULL;
  }
  if (p->pid == 0) child(command, fds[1]);
  close(fds[1]);
  p->fd = fds[0];
  if (fcntl(p->fd, F_SETFL, O_NONBLOCK) != 0 || loop_watch(loop, p->fd, LOOP_READ, on_readable, p) != 0 ||
      loop_timer_start(loop, &p->deadline, (uint64_t)timeout_ms) != 0) {
    snprintf(err, errlen, "credential_process of profile \"%s\": cannot watch it: %s", p->profile, strerror(errno));
    creds_process_cancel(p);
    return NULL;
  }
  return p;
}

void creds_process_cancel(creds_proc_t *p) {
  if (!p) return;
  if (!p->exited) {
    kill(-p->pid, SIGKILL);
    kill(p->pid, SIGKILL);
    while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR) {}
  }
  proc_free(p);
}
