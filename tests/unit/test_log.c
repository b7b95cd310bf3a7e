/* Unit tests for host/core/log.c: typed JSON values, values longer than LOG_VALUE_MAX
 * shortened with a marker inside the string, lines of any length written whole, bad
 * UTF-8 replaced, secrets redacted. Lines go to stderr, so fd 2 is pointed at a file. */
#include "core/log.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cap_fd = -1;
static int saved_err = -1;
static off_t cap_off;

/* The line written to stderr since the last call (static buffer, newline stripped). */
static char *captured(void) {
  static char *line;
  off_t end = lseek(cap_fd, 0, SEEK_END);
  if (end <= cap_off) return NULL;
  size_t n = (size_t)(end - cap_off);
  free(line);
  if (!(line = malloc(n + 1)) || pread(cap_fd, line, n, cap_off) != (ssize_t)n) return NULL;
  cap_off = end;
  line[n] = '\0';
  if (n && line[n - 1] == '\n') line[n - 1] = '\0';
  return line;
}

/* Drops the timestamp so lines compare exactly. */
static const char *after_ts(const char *line) {
  const char *p = line ? strstr(line, "\"level\"") : NULL;
  if (!p && line) p = strstr(line, "level=");
  return p ? p : "(no line)";
}

static void test_typed_json(void) {
  log_set_format(LOG_JSON);
  log_field_t f[] = {{"pid", "30787", LOG_T_NUM},        {"duration_ms", "116.5", LOG_T_NUM},
                     {"dry_run", "false", LOG_T_BOOL},   {"ok", "true", LOG_T_BOOL},
                     {"gap", NULL, LOG_T_NULL},          {"name", "orders", LOG_T_STR},
                     {"ratio", "inf", LOG_T_NUM},        {"session_token", "42", LOG_T_NUM},
                     {NULL, "skipped", LOG_T_STR}};
  log_fields(LOG_INFO, "t.typed", f, sizeof f / sizeof *f);
  is_str(after_ts(captured()),
         "\"level\":\"info\",\"event\":\"t.typed\",\"pid\":30787,\"duration_ms\":116.5,\"dry_run\":false,"
         "\"ok\":true,\"gap\":null,\"name\":\"orders\",\"ratio\":\"inf\",\"session_token\":\"[redacted]\"}",
         "JSON keeps numbers, booleans and null; a non-JSON number is a string; secrets redacted");
  log_kv_t kv[] = {{"pid", "30787"}};
  log_event(LOG_INFO, "t.untyped", kv, 1);
  is_str(after_ts(captured()), "\"level\":\"info\",\"event\":\"t.untyped\",\"pid\":\"30787\"}",
         "log_event values stay strings");
}

static void test_typed_text(void) {
  log_set_format(LOG_TEXT);
  log_field_t f[] = {{"pid", "30787", LOG_T_NUM}, {"ok", "true", LOG_T_BOOL}, {"gap", NULL, LOG_T_NULL},
                     {"msg", "two words", LOG_T_STR}};
  log_fields(LOG_INFO, "t.text", f, 4);
  is_str(after_ts(captured()), "level=info event=t.text pid=30787 ok=true gap=null msg=\"two words\"",
         "text mode writes each value as its text");
}

static void test_long_value(void) {
  size_t big = 100 * 1024;
  char *v = malloc(big + 1);
  if (!v) { ok(0, "malloc"); return; }
  memset(v, 'x', big);
  v[big] = '\0';
  log_set_format(LOG_JSON);
  log_field_t f[] = {{"body", v, LOG_T_STR}, {"after", "1", LOG_T_NUM}};
  log_fields(LOG_INFO, "t.long", f, 2);
  char *line = captured();
  char want_tail[128];
  snprintf(want_tail, sizeof want_tail, "\xe2\x80\xa6[truncated %zu bytes]\",\"after\":1}", big - LOG_VALUE_MAX);
  ok(line && strlen(line) > LOG_VALUE_MAX && strlen(line) < LOG_VALUE_MAX + 200, "a 100 KiB value is shortened (line %zu bytes)",
     line ? strlen(line) : 0);
  ok(line && strlen(line) >= strlen(want_tail) && strcmp(line + strlen(line) - strlen(want_tail), want_tail) == 0,
     "the marker is inside the string and the line closes");

  /* many long fields: the line grows past any fixed size and stays whole */
  log_field_t many[20];
  for (int i = 0; i < 20; i++) many[i] = (log_field_t){"k", v + big - 4000, LOG_T_STR};
  log_fields(LOG_INFO, "t.wide", many, 20);
  line = captured();
  ok(line && strlen(line) > 20 * 4000 && line[strlen(line) - 1] == '}', "an 80 KB line is written whole (%zu bytes)",
     line ? strlen(line) : 0);

  /* a cut never splits a UTF-8 sequence */
  v[0] = 'a'; /* then "é" (c3 a9) pairs, so one straddles the limit */
  for (size_t i = 1; i + 1 < big; i += 2) { v[i] = (char)0xc3; v[i + 1] = (char)0xa9; }
  log_fields(LOG_INFO, "t.utf8", f, 1);
  line = captured();
  const char *mark = line ? strstr(line, "\xe2\x80\xa6[truncated ") : NULL;
  ok(mark && (unsigned char)mark[-1] == 0xa9 && (unsigned char)mark[-2] == 0xc3, "cut at a character boundary");

  log_set_format(LOG_TEXT);
  memset(v, 'y', big);
  log_kv_t kv[] = {{"body", v}};
  log_event(LOG_INFO, "t.long_text", kv, 1);
  line = captured();
  snprintf(want_tail, sizeof want_tail, "\xe2\x80\xa6[truncated %zu bytes]\"", big - LOG_VALUE_MAX);
  ok(line && strcmp(line + strlen(line) - strlen(want_tail), want_tail) == 0, "text mode: the same marker, quoted");
  free(v);
}

static void test_bad_utf8_and_controls(void) {
  log_set_format(LOG_JSON);
  log_kv_t kv[] = {{"v", "a\xff" "b\xc3(\x01\"\\\n"}};
  log_event(LOG_INFO, "t.bytes", kv, 1);
  is_str(after_ts(captured()), "\"level\":\"info\",\"event\":\"t.bytes\",\"v\":\"a\\ufffdb\\ufffd(\\u0001\\\"\\\\\\n\"}",
         "invalid UTF-8 becomes U+FFFD, controls are escaped");
}

static void test_log_msg_any_length(void) {
  log_set_format(LOG_JSON);
  char *v = malloc(6001);
  if (!v) { ok(0, "malloc"); return; }
  memset(v, 'm', 6000);
  v[6000] = '\0';
  log_msg(LOG_WARN, "t.msg", "start %s end", v);
  char *line = captured();
  ok(line && strstr(line, "m end\"}") != NULL, "log_msg keeps a 6000-byte message whole");
  free(v);
}

int main(void) {
  char path[] = "/tmp/rotator-test-log.XXXXXX";
  cap_fd = mkstemp(path);
  if (cap_fd >= 0) unlink(path);
  saved_err = dup(2);
  if (cap_fd < 0 || saved_err < 0 || dup2(cap_fd, 2) < 0) {
    tap_skip_all("cannot capture stderr");
    return 0;
  }
  test_typed_json();
  test_typed_text();
  test_long_value();
  test_bad_utf8_and_controls();
  test_log_msg_any_length();
  dup2(saved_err, 2);
  return tap_done();
}
