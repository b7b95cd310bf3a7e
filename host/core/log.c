/* Structured logging: builds each line in a bounded buffer and writes it with a single
 * write(2), so lines from concurrent writers never interleave. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 16384

static log_format_t g_format = LOG_TEXT;
static log_level_t g_level = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_format(log_format_t fmt) { g_format = fmt; }
log_format_t log_get_format(void) { return g_format; }
void log_set_level(log_level_t lvl) { g_level = lvl; }
log_level_t log_get_level(void) { return g_level; }
const char *log_level_name(log_level_t lvl) { return level_names[lvl]; }

int log_parse_level(const char *name, log_level_t *out) {
  for (int i = LOG_DEBUG; i <= LOG_ERROR; i++)
    if (strcasecmp(name, level_names[i]) == 0) { *out = (log_level_t)i; return 0; }
  if (strcasecmp(name, "warning") == 0) { *out = LOG_WARN; return 0; }
  return -1;
}

int log_parse_format(const char *name, log_format_t *out) {
  if (strcmp(name, "text") == 0) { *out = LOG_TEXT; return 0; }
  if (strcmp(name, "json") == 0) { *out = LOG_JSON; return 0; }
  return -1;
}

int log_key_is_secret(const char *key) {
  static const char *const words[] = {"secret", "token", "password", "authorization",
                                      "credential", "signature"};
  for (size_t i = 0; i < sizeof words / sizeof *words; i++)
    if (strcasestr(key, words[i])) return 1;
  return 0;
}

/* A bounded line buffer: appends stop at the end and mark the line truncated. */
typedef struct {
  char buf[LOG_LINE_MAX];
  size_t len;
  int truncated;
} line_t;

static void put(line_t *l, const char *s, size_t n) {
  size_t room = sizeof l->buf - 2 - l->len; /* keep space for "\n" and NUL */
  if (n > room) { n = room; l->truncated = 1; }
  memcpy(l->buf + l->len, s, n);
  l->len += n;
}

static void puts_(line_t *l, const char *s) { put(l, s, strlen(s)); }

static void put_escaped_char(line_t *l, unsigned char c) {
  char esc[8];
  switch (c) {
    case '"': puts_(l, "\\\""); return;
    case '\\': puts_(l, "\\\\"); return;
    case '\n': puts_(l, "\\n"); return;
    case '\r': puts_(l, "\\r"); return;
    case '\t': puts_(l, "\\t"); return;
  }
  if (c < 0x20 || c == 0x7f) {
    int n = snprintf(esc, sizeof esc, "\\u%04x", c);
    if (n > 0 && (size_t)n < sizeof esc) put(l, esc, (size_t)n);
    return;
  }
  put(l, (const char *)&c, 1);
}

static void put_quoted(line_t *l, const char *s) {
  puts_(l, "\"");
  for (; *s; s++) put_escaped_char(l, (unsigned char)*s);
  puts_(l, "\"");
}

static int needs_quotes(const char *s) {
  if (!*s) return 1;
  for (; *s; s++)
    if (*s <= ' ' || *s == '"' || *s == '=' || *s == '\\' || *s == 0x7f) return 1;
  return 0;
}

static void put_timestamp(line_t *l) {
  struct timeval tv;
  struct tm tm;
  char ts[40];
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  int m = snprintf(ts + n, sizeof ts - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
  if (m > 0 && (size_t)m < sizeof ts - n) n += (size_t)m;
  put(l, ts, n);
}

static void put_field(line_t *l, const char *key, const char *val) {
  if (log_key_is_secret(key)) val = "[redacted]";
  if (!val) val = "";
  if (g_format == LOG_JSON) {
    puts_(l, ",");
    put_quoted(l, key);
    puts_(l, ":");
    put_quoted(l, val);
  } else {
    puts_(l, " ");
    puts_(l, key);
    puts_(l, "=");
    if (needs_quotes(val)) put_quoted(l, val);
    else puts_(l, val);
  }
}

void log_event(log_level_t lvl, const char *event, const log_kv_t *kv, size_t nkv) {
  if (lvl < g_level) return;
  static line_t l; /* single-threaded host: one static line, no large stack frame */
  l.len = 0;
  l.truncated = 0;
  if (g_format == LOG_JSON) {
    puts_(&l, "{\"ts\":\"");
    put_timestamp(&l);
    puts_(&l, "\"");
  } else {
    puts_(&l, "ts=");
    put_timestamp(&l);
  }
  put_field(&l, "level", level_names[lvl]);
  put_field(&l, "event", event);
  for (size_t i = 0; i < nkv; i++)
    if (kv[i].key) put_field(&l, kv[i].key, kv[i].val);
  if (l.truncated) put_field(&l, "truncated", "true");
  if (g_format == LOG_JSON) { l.buf[l.len++] = '}'; }
  l.buf[l.len++] = '\n';
  ssize_t w = write(STDERR_FILENO, l.buf, l.len);
  (void)w; /* nowhere left to report a failed log write */
}

void log_msg(log_level_t lvl, const char *event, const char *fmt, ...) {
  if (lvl < g_level) return;
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0) msg[0] = '\0';
  log_kv_t kv = {"msg", msg};
  log_event(lvl, event, &kv, 1);
}
