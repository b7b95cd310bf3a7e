/* Event loop: epoll + one timerfd + one signalfd. See loop.h for the contract. */
#include "core/loop.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define LOOP_MAX_EVENTS 64
#define LOOP_MAX_SIGNAL 65

typedef struct {
  loop_io_fn fn;
  void *ud;
  int events;     /* 0: not watched */
  uint32_t gen;   /* bumped per watch, so a stale event for a reused fd is ignored */
} watch_t;

typedef struct {
  loop_signal_fn fn;
  void *ud;
} sigwatch_t;

struct loop {
  int epfd, tfd, sfd;
  watch_t *watches;
  size_t nwatches;
  uint32_t next_gen;
  loop_timer_t **heap;
  size_t heap_len, heap_cap;
  uint64_t next_seq;
  uint64_t armed_due;   /* what the timerfd is set to; 0 = disarmed */
  sigset_t sigmask;
  sigwatch_t sigs[LOOP_MAX_SIGNAL];
  loop_hook_fn before_sleep;
  void *before_sleep_ud;
  int stop;
  uint64_t wakeups;
};

/* Tags in epoll_event.data.u64 for the loop's own fds; watched fds use gen<<32 | fd. */
#define TAG_TIMER UINT64_C(0xffffffff00000001)
#define TAG_SIGNAL UINT64_C(0xffffffff00000002)

uint64_t loop_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int epoll_add_tagged(int epfd, int fd, uint64_t tag) {
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
  return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

loop_t *loop_new(void) {
  loop_t *loop = calloc(1, sizeof *loop);
  if (!loop) return NULL;
  loop->epfd = epoll_create1(EPOLL_CLOEXEC);
  loop->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  sigemptyset(&loop->sigmask);
  loop->sfd = signalfd(-1, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
  loop->next_gen = 1;
  if (loop->epfd < 0 || loop->tfd < 0 || loop->sfd < 0 ||
      epoll_add_tagged(loop->epfd, loop->tfd, TAG_TIMER) < 0 ||
      epoll_add_tagged(loop->epfd, loop->sfd, TAG_SIGNAL) < 0) {
    int saved = errno;
    loop_free(loop);
    errno = saved;
    return NULL;
  }
  return loop;
}

void loop_free(loop_t *loop) {
  if (!loop) return;
  for (size_t i = 0; i < loop->heap_len; i++) loop->heap[i]->heap_idx = LOOP_TIMER_IDLE;
  if (loop->epfd >= 0) close(loop->epfd);
  if (loop->tfd >= 0) close(loop->tfd);
  if (loop->sfd >= 0) close(loop->sfd);
  free(loop->watches);
  free(loop->heap);
  free(loop);
}

/* ---- fd watches ---- */

static int watches_reserve(loop_t *loop, int fd) {
  if ((size_t)fd < loop->nwatches) return 0;
  size_t n = loop->nwatches ? loop->nwatches : 64;
  while (n <= (size_t)fd) n *= 2;
  watch_t *w = realloc(loop->watches, n * sizeof *w);
  if (!w) return -1;
  memset(w + loop->nwatches, 0, (n - loop->nwatches) * sizeof *w);
  loop->watches = w;
  loop->nwatches = n;
  return 0;
}

static uint32_t epoll_mask(int events) {
  return (events & LOOP_READ ? EPOLLIN : 0u) | (events & LOOP_WRITE ? EPOLLOUT : 0u);
}

int loop_watch(loop_t *loop, int fd, int events, loop_io_fn fn, void *ud) {
  if (fd < 0) { errno = EBADF; return -1; }
  if (!events) return loop_unwatch(loop, fd);
  if (watches_reserve(loop, fd) < 0) return -1;
  watch_t *w = &loop->watches[fd];
  int op = w->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  uint32_t gen = w->events ? w->gen : loop->next_gen++;
  struct epoll_event ev = {.events = epoll_mask(events),
                           .data.u64 = ((uint64_t)gen << 32) | (uint32_t)fd};
  if (epoll_ctl(loop->epfd, op, fd, &ev) < 0) return -1;
  *w = (watch_t){.fn = fn, .ud = ud, .events = events, .gen = gen};
  return 0;
}

int loop_unwatch(loop_t *loop, int fd) {
  if (fd < 0 || (size_t)fd >= loop->nwatches || !loop->watches[fd].events) return 0;
  loop->watches[fd].events = 0;
  /* The fd may already be closed (curl closes before telling us): that is fine. */
  if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != EBADF && errno != ENOENT)
    return -1;
  return 0;
}

static void dispatch_io(loop_t *loop, const struct epoll_event *ev) {
  int fd = (int)(uint32_t)ev->data.u64;
  uint32_t gen = (uint32_t)(ev->data.u64 >> 32);
  if ((size_t)fd >= loop->nwatches) return;
  watch_t *w = &loop->watches[fd];
  if (!w->events || w->gen != gen) return; /* unwatched by an earlier callback */
  int ready = (ev->events & EPOLLIN ? LOOP_READ : 0) | (ev->events & EPOLLOUT ? LOOP_WRITE : 0) |
              (ev->events & (EPOLLERR | EPOLLHUP) ? LOOP_ERROR : 0);
  w->fn(loop, fd, ready, w->ud);
}

/* ---- timers: a binary min-heap keyed on (due_ms, seq) ---- */

static int timer_before(const loop_timer_t *a, const loop_timer_t *b) {
  return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->seq < b->seq);
}

static void heap_set(loop_t *loop, size_t i, loop_timer_t *t) {
  loop->heap[i] = t;
  t->heap_idx = i;
}

static void heap_up(loop_t *loop, size_t i) {
  loop_timer_t *t = loop->heap[i];
  while (i > 0 && timer_before(t, loop->heap[(i - 1) / 2])) {
    heap_set(loop, i, loop->heap[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  heap_set(loop, i, t);
}

static void heap_down(loop_t *loop, size_t i) {
  loop_timer_t *t = loop->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= loop->heap_len) break;
    if (c + 1 < loop->heap_len && timer_before(loop->heap[c + 1], loop->heap[c])) c++;
    if (!timer_before(loop->heap[c], t)) break;
    heap_set(loop, i, loop->heap[c]);
    i = c;
  }
  heap_set(loop, i, t);
}

static void heap_remove(loop_t *loop, loop_timer_t *t) {
  size_t i = t->heap_idx;
  loop_timer_t *last = loop->heap[--loop->heap_len];
  t->heap_idx = LOOP_TIMER_IDLE;
  if (last == t) return;
  heap_set(loop, i, last);
  heap_up(loop, i);
  heap_down(loop, last->heap_idx);
}

void loop_timer_init(loop_timer_t *t, loop_timer_fn fn, void *ud) {
  *t = (loop_timer_t){.heap_idx = LOOP_TIMER_IDLE, .fn = fn, .ud = ud};
}

int loop_timer_start(loop_t *loop, loop_timer_t *t, uint64_t delay_ms) {
  if (loop_timer_armed(t)) heap_remove(loop, t);
  if (loop->heap_len == loop->heap_cap) {
    size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 16;
    loop_timer_t **h = realloc(loop->heap, cap * sizeof *h);
    if (!h) return -1;
    loop->heap = h;
    loop->heap_cap = cap;
  }
  t->due_ms = loop_now_ms() + delay_ms;
  t->seq = ++loop->next_seq;
  heap_set(loop, loop->heap_len++, t);
  heap_up(loop, t->heap_idx);
  return 0;
}

void loop_timer_stop(loop_t *loop, loop_timer_t *t) {
  if (loop_timer_armed(t)) heap_remove(loop, t);
}

size_t loop_timer_count(const loop_t *loop) { return loop->heap_len; }

/* Point the timerfd at the earliest due timer, touching it only when that changed. */
static int timerfd_sync(loop_t *loop) {
  uint64_t due = loop->heap_len ? loop->heap[0]->due_ms : 0;
  if (due == loop->armed_due) return 0;
  struct itimerspec its = {0};
  if (due) { /* monotonic ms since boot: never 0, so never the all-zero "disarm" */
    its.it_value.tv_sec = (time_t)(due / 1000);
    its.it_value.tv_nsec = (long)(due % 1000) * 1000000L;
  }
  if (timerfd_settime(loop->tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) return -1;
  loop->armed_due = due;
  return 0;
}

/* Fire every timer due now, in (due, seq) order. Timers armed by a callback during this
 * pass wait for the next pass, so `every(0, fn)` cannot starve the loop. */
static void fire_timers(loop_t *loop) {
  uint64_t expirations;
  while (read(loop->tfd, &expirations, sizeof expirations) > 0) {}
  loop->armed_due = 0; /* a fired timerfd is disarmed */
  uint64_t now = loop_now_ms(), last_seq = loop->next_seq;
  while (loop->heap_len && !loop->stop) {
    loop_timer_t *t = loop->heap[0];
    if (t->due_ms > now || t->seq > last_seq) break;
    heap_remove(loop, t);
    t->fn(loop, t, t->ud);
  }
}

/* ---- signals ---- */

int loop_on_signal(loop_t *loop, int signo, loop_signal_fn fn, void *ud) {
  if (signo <= 0 || signo >= LOOP_MAX_SIGNAL) { errno = EINVAL; return -1; }
  sigaddset(&loop->sigmask, signo);
  if (sigprocmask(SIG_BLOCK, &loop->sigmask, NULL) < 0) return -1;
  if (signalfd(loop->sfd, &loop->sigmask, 0) < 0) return -1;
  loop->sigs[signo] = (sigwatch_t){.fn = fn, .ud = ud};
  return 0;
}

void loop_unblock_signals_in_child(void) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

static void dispatch_signals(loop_t *loop) {
  struct signalfd_siginfo si;
  while (read(loop->sfd, &si, sizeof si) == (ssize_t)sizeof si) {
    int signo = (int)si.ssi_signo;
    if (signo > 0 && signo < LOOP_MAX_SIGNAL && loop->sigs[signo].fn)
      loop->sigs[signo].fn(loop, signo, loop->sigs[signo].ud);
  }
}

/* ---- running ---- */

void loop_set_before_sleep(loop_t *loop, loop_hook_fn fn, void *ud) {
  loop->before_sleep = fn;
  loop->before_sleep_ud = ud;
}

int loop_run_once(loop_t *loop, int timeout_ms) {
  struct epoll_event evs[LOOP_MAX_EVENTS];
  if (loop->before_sleep) loop->before_sleep(loop, loop->before_sleep_ud);
  if (timerfd_sync(loop) < 0) return -1;
  int n = epoll_wait(loop->epfd, evs, LOOP_MAX_EVENTS, timeout_ms);
  loop->wakeups++;
  if (n < 0) return errno == EINTR ? 0 : -1;
  for (int i = 0; i < n && !loop->stop; i++) {
    if (evs[i].data.u64 == TAG_TIMER) fire_timers(loop);
    else if (evs[i].data.u64 == TAG_SIGNAL) dispatch_signals(loop);
    else dispatch_io(loop, &evs[i]);
  }
  return 0;
}

/* A loop_stop() made before loop_run() (e.g. host.exit() from a command that finished
 * synchronously) is honoured: the loop returns at once. */
int loop_run(loop_t *loop) {
  while (!loop->stop)
    if (loop_run_once(loop, -1) < 0) return -1;
  return 0;
}

void loop_stop(loop_t *loop) { loop->stop = 1; }
int loop_stopping(const loop_t *loop) { return loop->stop; }
uint64_t loop_wakeups(const loop_t *loop) { return loop->wakeups; }
