/* Event loop: timer ordering and cancellation (against a sorted reference), fd watches,
 * signals through signalfd, and idle behaviour (no wakeups with nothing armed). */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/loop.h"
#include "tap.h"

typedef struct {
  int order[64];
  int n;
} trace_t;

typedef struct {
  loop_timer_t t;
  trace_t *trace;
  int id;
} tagged_timer_t;

static void record(loop_t *loop, loop_timer_t *t, void *ud) {
  (void)loop, (void)t;
  tagged_timer_t *tt = ud;
  if (tt->trace->n < 64) tt->trace->order[tt->trace->n++] = tt->id;
}

static void stop_loop(loop_t *loop, loop_timer_t *t, void *ud) {
  (void)t, (void)ud;
  loop_stop(loop);
}

static void run_for(loop_t *loop, uint64_t ms) {
  loop_timer_t stopper;
  loop_timer_init(&stopper, stop_loop, NULL);
  loop_timer_start(loop, &stopper, ms);
  loop_run(loop);
  loop_timer_stop(loop, &stopper);
}

static void test_ordering(void) {
  loop_t *loop = loop_new();
  trace_t tr = {0};
  /* ids 0..5 with delays chosen so the expected order is by delay, ties by arming. */
  uint64_t delays[] = {30, 10, 20, 10, 0, 20};
  int want[] = {4, 1, 3, 2, 5, 0};
  tagged_timer_t ts[6];
  for (int i = 0; i < 6; i++) {
    ts[i] = (tagged_timer_t){.trace = &tr, .id = i};
    loop_timer_init(&ts[i].t, record, &ts[i]);
    loop_timer_start(loop, &ts[i].t, delays[i]);
  }
  run_for(loop, 60);
  is_int(tr.n, 6, "all six timers fired");
  int same = 1;
  for (int i = 0; i < 6; i++) same &= tr.order[i] == want[i];
  ok(same, "timers fire by due time, ties in arming order");
  is_int(loop_timer_count(loop), 0, "no timer left armed");
  loop_free(loop);
}

static void test_cancel(void) {
  loop_t *loop = loop_new();
  trace_t tr = {0};
  tagged_timer_t a = {.trace = &tr, .id = 1}, b = {.trace = &tr, .id = 2};
  loop_timer_init(&a.t, record, &a);
  loop_timer_init(&b.t, record, &b);
  loop_timer_start(loop, &a.t, 5);
  loop_timer_start(loop, &b.t, 10);
  loop_timer_stop(loop, &a.t);
  ok(!loop_timer_armed(&a.t), "a stopped timer reports not armed");
  loop_timer_start(loop, &b.t, 15); /* re-arm moves it, does not duplicate it */
  run_for(loop, 40);
  is_int(tr.n, 1, "only the uncancelled timer fired, once");
  is_int(tr.order[0], 2, "and it was the right one");
  loop_free(loop);
}

/* Random arm/re-arm/cancel against a brute-force model: the heap must always fire the
 * earliest live timer. */
static int heap_ok = 1;
static uint64_t last_due;
static void check_order(loop_t *loop, loop_timer_t *t, void *ud) {
  (void)loop, (void)ud;
  if (t->due_ms < last_due) heap_ok = 0;
  last_due = t->due_ms;
}

static void test_heap_stress(void) {
  enum { N = 2000 };
  loop_t *loop = loop_new();
  static loop_timer_t ts[N];
  srand(7);
  for (int i = 0; i < N; i++) {
    loop_timer_init(&ts[i], check_order, NULL);
    loop_timer_start(loop, &ts[i], (uint64_t)(rand() % 50));
  }
  static char armed[N];
  memset(armed, 1, sizeof armed);
  for (int i = 0; i < N; i += 3) { loop_timer_stop(loop, &ts[i]); armed[i] = 0; }
  for (int i = 1; i < N; i += 7) { loop_timer_start(loop, &ts[i], (uint64_t)(rand() % 50)); armed[i] = 1; }
  int live = 0;
  for (int i = 0; i < N; i++) live += armed[i];
  is_int(loop_timer_count(loop), live, "heap holds exactly the live timers");
  run_for(loop, 80);
  ok(heap_ok, "2000 timers with cancels and re-arms fired in due order");
  is_int(loop_timer_count(loop), 0, "heap drained");
  loop_free(loop);
}

static void on_readable(loop_t *loop, int fd, int events, void *ud) {
  char buf[16];
  int *got = ud;
  if (events & LOOP_READ) *got += (int)read(fd, buf, sizeof buf);
  loop_unwatch(loop, fd);
  loop_stop(loop);
}

static void test_fd_watch(void) {
  loop_t *loop = loop_new();
  int p[2], got = 0;
  ok(pipe(p) == 0, "pipe");
  ok(loop_watch(loop, p[0], LOOP_READ, on_readable, &got) == 0, "watch read end");
  ok(write(p[1], "hello", 5) == 5, "write");
  loop_run(loop);
  is_int(got, 5, "read callback got the bytes");
  ok(loop_watch(loop, p[0], LOOP_READ | LOOP_WRITE, on_readable, &got) == 0, "re-watch");
  ok(loop_watch(loop, p[0], LOOP_READ, on_readable, &got) == 0, "modify interest in place");
  ok(loop_unwatch(loop, p[0]) == 0, "unwatch");
  close(p[0]);
  close(p[1]);
  ok(loop_unwatch(loop, p[0]) == 0, "unwatching a closed fd is harmless");
  loop_free(loop);
}

static void on_usr1(loop_t *loop, int signo, void *ud) {
  *(int *)ud = signo;
  loop_stop(loop);
}

static void test_signal(void) {
  loop_t *loop = loop_new();
  int seen = 0;
  ok(loop_on_signal(loop, SIGUSR1, on_usr1, &seen) == 0, "route SIGUSR1");
  raise(SIGUSR1); /* blocked: stays pending until the signalfd reads it */
  loop_run(loop);
  is_int(seen, SIGUSR1, "SIGUSR1 delivered through the loop, not a handler");
  loop_free(loop);
}

static void test_idle(void) {
  loop_t *loop = loop_new();
  uint64_t before = loop_wakeups(loop);
  loop_timer_t one;
  loop_timer_init(&one, stop_loop, NULL);
  loop_timer_start(loop, &one, 200);
  loop_run(loop);
  uint64_t woke = loop_wakeups(loop) - before;
  ok(woke <= 2, "a 200 ms wait costs %llu wakeup(s), not a poll", (unsigned long long)woke);
  is_int(loop_run_once(loop, 0), 0, "with nothing armed, a non-blocking turn returns");
  loop_free(loop);
}

int main(void) {
  test_ordering();
  test_cancel();
  test_heap_stress();
  test_fd_watch();
  test_signal();
  test_idle();
  return tap_done();
}
