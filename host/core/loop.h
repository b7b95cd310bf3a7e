/* The event loop: epoll for fd readiness, one timerfd for every timer (a min-heap ordered
 * by due time, then by arming order), one signalfd for signals. Idle means idle: with no
 * timer armed, epoll_wait blocks without a timeout, so the process makes no wakeups.
 *
 * The API is shaped for libcurl's multi socket interface: loop_watch() changes the
 * interest set of an fd in place (CURL_POLL_IN/OUT/INOUT/REMOVE map onto it), and a
 * caller-owned loop_timer_t re-arms in O(log n) (CURLMOPT_TIMERFUNCTION). */
#ifndef ROTATOR_LOOP_H
#define ROTATOR_LOOP_H
#include <stddef.h>
#include <stdint.h>

typedef struct loop loop_t;
typedef struct loop_timer loop_timer_t;

enum { LOOP_READ = 1, LOOP_WRITE = 2, LOOP_ERROR = 4 };

typedef void (*loop_io_fn)(loop_t *loop, int fd, int events, void *ud);
typedef void (*loop_timer_fn)(loop_t *loop, loop_timer_t *timer, void *ud);
typedef void (*loop_signal_fn)(loop_t *loop, int signo, void *ud);
typedef void (*loop_hook_fn)(loop_t *loop, void *ud);

/* Caller-owned timer. Initialise once with loop_timer_init; it may be started, stopped
 * and restarted any number of times; stop it before freeing its memory. */
struct loop_timer {
  uint64_t due_ms;   /* monotonic milliseconds */
  uint64_t seq;      /* arming order: ties on due_ms fire first-armed first */
  size_t heap_idx;   /* position in the heap, or LOOP_TIMER_IDLE */
  loop_timer_fn fn;
  void *ud;
};
#define LOOP_TIMER_IDLE ((size_t)-1)

loop_t *loop_new(void);            /* NULL with errno set on failure */
void loop_free(loop_t *loop);      /* timers still armed are dropped, not fired */

/* Watch fd for LOOP_READ|LOOP_WRITE (replacing any earlier interest); events == 0 or
 * loop_unwatch() stops watching. The callback gets the ready set (LOOP_ERROR on
 * EPOLLERR/EPOLLHUP). Returns 0, or -1 with errno set. */
int loop_watch(loop_t *loop, int fd, int events, loop_io_fn fn, void *ud);
int loop_unwatch(loop_t *loop, int fd);

void loop_timer_init(loop_timer_t *t, loop_timer_fn fn, void *ud);
int loop_timer_start(loop_t *loop, loop_timer_t *t, uint64_t delay_ms); /* re-arms */
void loop_timer_stop(loop_t *loop, loop_timer_t *t);
static inline int loop_timer_armed(const loop_timer_t *t) { return t->heap_idx != LOOP_TIMER_IDLE; }
size_t loop_timer_count(const loop_t *loop);

/* Route signo through the loop's signalfd (the signal is blocked for the process).
 * Call before starting threads so they inherit the mask. */
int loop_on_signal(loop_t *loop, int signo, loop_signal_fn fn, void *ud);
/* Restore the default signal mask, e.g. in a child after fork() before exec(). */
void loop_unblock_signals_in_child(void);

void loop_set_before_sleep(loop_t *loop, loop_hook_fn fn, void *ud);

int loop_run(loop_t *loop);        /* runs until loop_stop(); 0, or -1 on a loop failure */
int loop_run_once(loop_t *loop, int timeout_ms); /* one iteration; -1 blocks */
void loop_stop(loop_t *loop);
int loop_stopping(const loop_t *loop);
uint64_t loop_now_ms(void);        /* CLOCK_MONOTONIC in milliseconds */
uint64_t loop_wakeups(const loop_t *loop); /* epoll_wait returns, for idle checks */

#endif
