/* Structured logging: builds each line in a buffer that grows as needed and writes it
 * with a single write(2), so lines from concurrent writers never interleave. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

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

/* The line being built. It grows; if it cannot (out of memory), `oom` is set and a short
 * fixed line saying so is written instead, never a cut one. */
typedef struct {
  char *buf;
  size_t len, cap;
  int oom;
} line_t;

static void put(line_t *l, const char *s, size_t n) {
  if (l->oom) return;
  if (l->len + n + 2 > l->cap) { /* keep space for "}" and "\n" */
    size_t cap = l->cap ? l->cap : 1024;
    while (cap < l->len + n + 2) cap *= 2;
    char *nb = realloc(l->buf, cap);
    if (!nb) { l->oom = 1; return; }
    l->buf = nb;
    l->cap = cap;
  }
  memcpy(l->buf + l->len, s, n);
  l->len += n;
}

static void puts_(line_t *l, const char *s) { put(l, s, strlen(s)); }

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  size_t len;
  unsigned min;
  unsigned cp;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) { len = 2; cp = c & 0x1f; min = 0x80; }
  else if (c >= 0xe0 && c <= 0xef) { len = 3; cp = c & 0x0f; min = 0x800; }
  else if (c >= 0xf0 && c <= 0xf4) { len = 4; cp = c & 0x07; min = 0x10000; }
  else return 0;
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

static void put_escaped(line_t *l, const char *s, size_t n, int json) {
  const unsigned char *p = (const unsigned char *)s, *end = p + n;
  while (p < end) {
    unsigned char c = *p;
    const char *esc = NULL;
    switch (c) {
      case '"': esc = "\\\""; break;
      case '\\': esc = "\\\\"; break;
      case '\n': esc = "\\n"; break;
      case '\r': esc = "\\r"; break;
      case '\t': esc = "\\t"; break;
    }
    if (esc) { puts_(l, esc); p++; continue; }
    if (c < 0x20 || c == 0x7f) {
      char u[8];
      int k = snprintf(u, sizeof u, "\\u%04x", c);
      if (k > 0 && (size_t)k < sizeof u) put(l, u, (size_t)k);
      p++;
      continue;
    }
    size_t k = json ? utf8_len(p, (size_t)(end - p)) : 1;
    if (k == 0) { puts_(l, "\\ufffd"); p++; continue; }
    put(l, (const char *)p, k);
    p += k;
  }
}

/* Where to cut a value of n bytes so it keeps at most max bytes and no UTF-8 sequence is
 * split. */
static size_t cut_point(const char *s, size_t max) {
  size_t i = max;
  while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80) i--;
  return i;
}

/* The value quoted and escaped; past LOG_VALUE_MAX bytes, shortened with the marker. */
static void put_quoted(line_t *l, const char *s, int json) {
  size_t n = strlen(s), keep = n > LOG_VALUE_MAX ? cut_point(s, LOG_VALUE_MAX) : n;
  puts_(l, "\"");
  put_escaped(l, s, keep, json);
  if (keep < n) {
    char mark[64];
    int k = snprintf(mark, sizeof mark, "\xe2\x80\xa6[truncated %zu bytes]", n - keep);
    if (k > 0 && (size_t)k < sizeof mark) put(l, mark, (size_t)k);
  }
  puts_(l, "\"");
}

static int needs_quotes(const char *s) {
  if (!*s || strlen(s) > LOG_VALUE_MAX) return 1;
  for (; *s; s++)
    if (*s <= ' ' || *s == '"' || *s == '=' || *s == '\\' || *s == 0x7f) return 1;
  return 0;
}

/* RFC 8259 number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int is_json_number(const char *s) {
  if (*s == '-') s++;
  if (*s == '0') s++;
  else if (*s >= '1' && *s <= '9') while (*s >= '0' && *s <= '9') s++;
  else return 0;
  if (*s == '.') {
    s++;
    if (*s < '0' || *s > '9') return 0;
    while (*s >= '0' && *s <= '9') s++;
  }
  if (*s == 'e' || *s == 'E') {
    s++;
    if (*s == '+' || *s == '-') s++;
    if (*s < '0' || *s > '9') return 0;
    while (*s >= '0' && *s <= '9') s++;
  }
  return *s == '\0';
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

static void put_field(line_t *l, const char *key, const char *val, log_type_t type) {
  if (log_key_is_secret(key)) { val = "[redacted]"; type = LOG_T_STR; }
  if (type == LOG_T_NULL && !val) val = "null";
  if (!val) val = "";
  if (g_format == LOG_JSON) {
    puts_(l, ",");
    put_quoted(l, key, 1);
    puts_(l, ":");
    if (type == LOG_T_NULL) puts_(l, "null");
    else if (type == LOG_T_BOOL) puts_(l, strcmp(val, "false") == 0 || !*val ? "false" : "true");
    else if (type == LOG_T_NUM && is_json_number(val)) puts_(l, val);
    else put_quoted(l, val, 1);
  } else {
    puts_(l, " ");
    puts_(l, key);
    puts_(l, "=");
    if (needs_quotes(val)) put_quoted(l, val, 0);
    else puts_(l, val);
  }
}

static void write_line(const char *buf, size_t len) {
  ssize_t w = write(STDERR_FILENO, buf, len);
  (void)w; /* nowhere left to report a failed log write */
}

/* The line could not be built for want of memory: say so in a line that needs none. */
static void write_oom(log_level_t lvl) {
  char b[256];
  int n = snprintf(b, sizeof b,
                   g_format == LOG_JSON
                       ? "{\"level\":\"%s\",\"event\":\"log.lost\",\"reason\":\"out of memory building a log line\"}\n"
                       : "level=%s event=log.lost reason=\"out of memory building a log line\"\n",
                   level_names[lvl]);
  if (n > 0 && (size_t)n < sizeof b) write_line(b, (size_t)n);
}

static line_t g_line; /* single-threaded host: one line buffer, kept between events */

static line_t *begin(log_level_t lvl, const char *event) {
  line_t *l = &g_line;
  l->len = 0;
  l->oom = 0;
  if (g_format == LOG_JSON) {
    puts_(l, "{\"ts\":\"");
    put_timestamp(l);
    puts_(l, "\"");
  } else {
    puts_(l, "ts=");
    put_timestamp(l);
  }
  put_field(l, "level", level_names[lvl], LOG_T_STR);
  put_field(l, "event", event, LOG_T_STR);
  return l;
}

static void end(line_t *l, log_level_t lvl) {
  if (l->oom) {
    write_oom(lvl);
  } else {
    if (g_format == LOG_JSON) l->buf[l->len++] = '}';
    l->buf[l->len++] = '\n';
    write_line(l->buf, l->len);
  }
  if (l->cap > (1u << 20)) { /* an unusually long line: do not keep its buffer */
    free(l->buf);
    *l = (line_t){0};
  }
}

void log_event(log_level_t lvl, const char *event, const log_kv_t *kv, size_t nkv) {
  if (lvl < g_level) return;
  line_t *l = begin(lvl, event);
  for (size_t i = 0; i < nkv; i++)
    if (kv[i].key) put_field(l, kv[i].key, kv[i].val, LOG_T_STR);
  end(l, lvl);
}

void log_fields(log_level_t lvl, const char *event, const log_field_t *f, size_t n) {
  if (lvl < g_level) return;
  line_t *l = begin(lvl, event);
  for (size_t i = 0; i < n; i++)
    if (f[i].key) put_field(l, f[i].key, f[i].val, f[i].type);
  end(l, lvl);
}

void log_msg(log_level_t lvl, const char *event, const char *fmt, ...) {
  if (lvl < g_level) return;
  char small[1024], *msg = small;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) small[0] = '\0';
  else if ((size_t)n >= sizeof small && (msg = malloc((size_t)n + 1))) {
    va_start(ap, fmt);
    if (vsnprintf(msg, (size_t)n + 1, fmt, ap) < 0) msg[0] = '\0';
    va_end(ap);
  }
  if (!msg) { /* out of memory: the part that fitted, said to be cut */
    log_field_t f[] = {{"msg", small, LOG_T_STR}, {"msg_cut_at", "1023", LOG_T_NUM}};
    log_fields(lvl, event, f, 2);
    return;
  }
  log_kv_t kv = {"msg", msg};
  log_event(lvl, event, &kv, 1);
  if (msg != small) free(msg);
}

void log_report(const char *fmt, ...) {
  char *msg = NULL;
  va_list ap;
  va_start(ap, fmt);
  int n = vasprintf(&msg, fmt, ap);
  va_end(ap);
  if (n < 0) {
    static const char oom[] = "rotator: out of memory reporting an error\n";
    write_line(oom, sizeof oom - 1);
    return;
  }
  if (g_format != LOG_JSON) {
    write_line(msg, (size_t)n);
  } else {
    for (char *line = msg, *next; line && *line; line = next) {
      next = strchr(line, '\n');
      if (next) *next++ = '\0';
      log_field_t f[] = {{"msg", line, LOG_T_STR}};
      if (*line) log_fields(LOG_ERROR, "cli.error", f, 1);
    }
  }
  free(msg);
}
