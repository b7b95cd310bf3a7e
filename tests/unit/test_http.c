/* host/net/http.c against tests/aws/httpd.py on 127.0.0.1: completions from the loop only,
 * keep-alive, status and bodies, the size cap, resets, total and connect timeouts,
 * cancellation. */
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

#include "net/http.h"
#include "tap.h"

static pid_t srv_pid;
static int srv_stdin = -1;
static int port;

static int start_server(void) {
  const char *root = getenv("ROTATOR_ROOT");
  char script[4096];
  snprintf(script, sizeof script, "%s/tests/aws/httpd.py", root ? root : ".");
  int in[2], out[2];
  if (pipe(in) < 0 || pipe(out) < 0) return -1;
  srv_pid = fork();
  if (srv_pid < 0) return -1;
  if (srv_pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[1]);
    close(out[0]);
    execlp("python3", "python3", script, (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  srv_stdin = in[1];
  char line[64] = {0};
  size_t n = 0;
  while (n < sizeof line - 1) {
    ssize_t r = read(out[0], line + n, 1);
    if (r <= 0) break;
    if (line[n] == '\n') break;
    n++;
  }
  close(out[0]);
  return sscanf(line, "PORT %d", &port) == 1 ? 0 : -1;
}

static void stop_server(void) {
  if (srv_stdin >= 0) close(srv_stdin);
  if (srv_pid > 0) {
    kill(srv_pid, SIGTERM);
    waitpid(srv_pid, NULL, 0);
  }
}

typedef struct {
  int done, status, timed_out;
  char error[512];
  char *body;
  size_t body_len;
  char reqid[128];
  int header_cut;  /* http_header refused a buffer too small for the value */
  int during_send; /* set while http_send runs: a callback then is a bug */
} result_t;

static void on_done(void *ud, const http_response_t *resp) {
  result_t *r = ud;
  r->done++;
  r->status = resp->status;
  r->timed_out = resp->timed_out;
  snprintf(r->error, sizeof r->error, "%s", resp->error ? resp->error : "");
  free(r->body);
  r->body = malloc(resp->body_len + 1);
  if (r->body) {
    memcpy(r->body, resp->body, resp->body_len);
    r->body[resp->body_len] = '\0';
  }
  r->body_len = resp->body_len;
  if (!http_header(resp, "content-TYPE", r->reqid, sizeof r->reqid)) r->reqid[0] = '\0';
  char small[5];
  r->header_cut = r->reqid[0] && http_header(resp, "Content-Type", small, sizeof small) == NULL;
  if (r->during_send) r->during_send = 2;
}

static int run_until(loop_t *loop, result_t *r, int n, uint64_t max_ms) {
  uint64_t end = loop_now_ms() + max_ms;
  while (r->done < n && loop_now_ms() < end) loop_run_once(loop, 100);
  return r->done >= n;
}

static uint64_t get(http_client_t *c, const char *path, result_t *r, long timeout_ms, size_t cap) {
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  http_request_t rq = {.method = "GET", .url = url, .timeout_ms = timeout_ms,
                       .max_response_bytes = cap};
  r->during_send = 1;
  uint64_t id = http_send(c, &rq, on_done, r);
  if (r->during_send == 1) r->during_send = 0;
  return id;
}

static void test_basic(loop_t *loop, http_client_t *c) {
  result_t r = {0};
  uint64_t id = get(c, "/ok", &r, 0, 0);
  ok(id > 0, "http_send returns an id");
  ok(r.done == 0 && r.during_send == 0, "no completion inside http_send");
  is_int(http_pending(c), 1, "one pending");
  ok(run_until(loop, &r, 1, 5000), "completes on the loop");
  is_int(r.status, 200, "status 200");
  is_str(r.body, "hello", "body");
  is_str(r.reqid, "text/plain", "http_header finds a header case-insensitively");
  ok(r.header_cut, "http_header returns NULL, not a cut value, when the buffer is too small");
  is_int(http_pending(c), 0, "none pending");
  free(r.body);
}

/* Found by tests/fuzz/fuzz_aws_error.c: curl splits header lines at LF only, so a bare CR
 * inside a line reached the value ("Date: ...GMT\rServer: x"), and with it a log line. */
static void test_header_values(void) {
  char v[64];
  http_response_t r = {.status = 200, .body = "", .headers =
      "HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\rServer: proxy\r\n"
      "X-Tab:  a\tb \r\nX-Nul: a\001b\r\nx-amzn-RequestId: r-1\r\n"};
  ok(http_header(&r, "Date", v, sizeof v) == NULL, "http_header refuses a value with a bare CR inside");
  ok(http_header(&r, "X-Nul", v, sizeof v) == NULL, "and one with a control byte");
  ok(http_header(&r, "X-Tab", v, sizeof v) && strcmp(v, "a\tb") == 0, "a tab inside a value is kept, the ends trimmed");
  ok(http_header(&r, "X-AMZN-REQUESTID", v, sizeof v) && strcmp(v, "r-1") == 0, "the other headers still read");
}

static void test_post_echo(loop_t *loop, http_client_t *c) {
  result_t r = {0};
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", port);
  const char *h[] = {"X-Test: yes", "Content-Type: application/json"};
  http_request_t rq = {.method = "PUT", .url = url, .headers = h, .nheaders = 2,
                       .body = "{\"a\":1}", .body_len = 7};
  ok(http_send(c, &rq, on_done, &r) > 0, "PUT sent");
  ok(run_until(loop, &r, 1, 5000), "PUT completes");
  ok(r.body && strstr(r.body, "\"method\": \"PUT\""), "method PUT on the wire");
  ok(r.body && strstr(r.body, "{\\\"a\\\":1}"), "body on the wire");
  ok(r.body && strstr(r.body, "\"X-Test\": \"yes\""), "header on the wire");
  free(r.body);
}

static void test_status_and_many(loop_t *loop, http_client_t *c) {
  result_t r[20];
  memset(r, 0, sizeof r);
  for (int i = 0; i < 20; i++) get(c, i % 2 ? "/status/503" : "/ok", &r[i], 0, 0);
  int all = 1;
  for (int i = 0; i < 20; i++) {
    if (!run_until(loop, &r[i], 1, 5000)) all = 0;
    if (r[i].status != (i % 2 ? 503 : 200)) all = 0;
    free(r[i].body);
  }
  ok(all, "20 concurrent requests, statuses 200/503 as asked");
}

static void test_cap(loop_t *loop, http_client_t *c) {
  result_t r = {0};
  get(c, "/big?n=5000", &r, 0, 4096);
  ok(run_until(loop, &r, 1, 5000), "capped request completes");
  is_int(r.status, 0, "over the cap (Content-Length): transport failure");
  ok(strstr(r.error, "larger than the 4096-byte limit") != NULL, "clear error: %s", r.error);
  r.done = 0;
  get(c, "/stream?n=300000", &r, 0, 100000);
  ok(run_until(loop, &r, 1, 5000), "capped chunked request completes");
  ok(strstr(r.error, "larger than the 100000-byte limit") != NULL, "chunked: clear error: %s", r.error);
  r.done = 0;
  get(c, "/big?n=4096", &r, 0, 4096);
  ok(run_until(loop, &r, 1, 5000) && r.status == 200 && r.body_len == 4096, "exactly the cap is fine");
  free(r.body);
}

static void test_reset_timeout(loop_t *loop, http_client_t *c) {
  result_t r = {0};
  get(c, "/reset", &r, 0, 0);
  ok(run_until(loop, &r, 1, 5000), "reset completes");
  ok(r.status == 0 && r.error[0], "connection reset: status 0, error '%s'", r.error);
  r.done = 0;
  uint64_t t0 = loop_now_ms();
  get(c, "/slow?ms=2000", &r, 300, 0);
  ok(run_until(loop, &r, 1, 5000), "slow completes");
  uint64_t dt = loop_now_ms() - t0;
  ok(r.status == 0 && r.timed_out, "total timeout: timed_out set (%s)", r.error);
  ok(dt >= 250 && dt < 1500, "after about 300 ms (%llu ms)", (unsigned long long)dt);
  free(r.body);
}

/* A listener whose accept queue is full: SYNs are dropped, so connect() hangs. */
static void test_connect_timeout(loop_t *loop, http_client_t *c) {
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  int fill[4] = {-1, -1, -1, -1};
  if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 0) < 0 ||
      getsockname(ls, (struct sockaddr *)&a, &al) < 0) {
    ok(0, "connect-timeout listener");
    return;
  }
  for (int i = 0; i < 4; i++) {
    fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fill[i] >= 0) (void)connect(fill[i], (struct sockaddr *)&a, sizeof a);
  }
  usleep(50000);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(a.sin_port));
  result_t r = {0};
  http_request_t rq = {.method = "GET", .url = url, .connect_timeout_ms = 300, .timeout_ms = 5000};
  uint64_t t0 = loop_now_ms();
  ok(http_send(c, &rq, on_done, &r) > 0, "sent to a full listener");
  ok(run_until(loop, &r, 1, 5000), "completes");
  uint64_t dt = loop_now_ms() - t0;
  ok(r.status == 0 && r.timed_out, "connect timeout: timed_out (%s)", r.error);
  ok(dt >= 250 && dt < 2000, "after about 300 ms (%llu ms)", (unsigned long long)dt);
  for (int i = 0; i < 4; i++) if (fill[i] >= 0) close(fill[i]);
  close(ls);
  free(r.body);
}

static void test_cancel(loop_t *loop, http_client_t *c) {
  result_t r = {0}, r2 = {0};
  uint64_t id = get(c, "/slow?ms=200", &r, 0, 0);
  ok(http_cancel(c, id) == 0, "cancel in flight");
  ok(http_cancel(c, id) == -1, "cancel unknown id");
  uint64_t id2 = get(c, "/ok", &r2, 0, 0);
  ok(run_until(loop, &r2, 1, 5000), "another request still works");
  (void)id2;
  for (int i = 0; i < 5; i++) loop_run_once(loop, 100);
  is_int(r.done, 0, "cancelled request never called back");
  is_int(http_pending(c), 0, "nothing pending");
  /* cancel after completion but before delivery */
  result_t r3 = {0};
  uint64_t id3 = get(c, "/ok", &r3, 0, 0);
  free(r2.body);
  r2 = (result_t){0};
  get(c, "/ok", &r2, 0, 0);
  ok(run_until(loop, &r2, 1, 5000), "second completes");
  http_cancel(c, id3); /* may already have been delivered in the same turn */
  for (int i = 0; i < 3; i++) loop_run_once(loop, 50);
  ok(r3.done <= 1, "at most one delivery");
  free(r2.body);
  free(r3.body);
}

static void test_free_pending(loop_t *loop) {
  http_client_t *c = http_client_new(loop);
  result_t r = {0};
  get(c, "/slow?ms=500", &r, 0, 0);
  loop_run_once(loop, 50);
  http_client_free(c);
  for (int i = 0; i < 3; i++) loop_run_once(loop, 50);
  is_int(r.done, 0, "freeing the client cancels silently");
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  if (start_server() < 0) {
    tap_skip_all("python3 test server did not start");
    stop_server();
    return 0;
  }
  loop_t *loop = loop_new();
  http_client_t *c = http_client_new(loop);
  ok(loop && c, "client created");
  test_header_values();
  test_basic(loop, c);
  test_post_echo(loop, c);
  test_status_and_many(loop, c);
  test_cap(loop, c);
  test_reset_timeout(loop, c);
  test_connect_timeout(loop, c);
  test_cancel(loop, c);
  http_client_free(c);
  test_free_pending(loop);
  ok(loop_timer_count(loop) == 0, "no timers left armed");
  loop_free(loop);
  stop_server();
  return tap_done();
}
