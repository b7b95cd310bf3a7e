/* Structured logging to stderr: one line per event, `key=value` text (the default) or
 * JSON (`--log-format json`). Fields whose key names a secret (secret, token, password,
 * authorization, credential) are written as "[redacted]" whatever the caller passes.
 *
 * No line is ever cut: the line buffer grows, and a value longer than LOG_VALUE_MAX bytes
 * is shortened inside its string with a marker ("…[truncated 12345 bytes]"), so a JSON
 * line always parses. In JSON mode a value that is not valid UTF-8 has its bad bytes
 * written as U+FFFD. */
#ifndef ROTATOR_LOG_H
#define ROTATOR_LOG_H
#include <stddef.h>

#define LOG_VALUE_MAX 8192 /* bytes of one value before it is shortened with a marker */

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;
typedef enum { LOG_TEXT, LOG_JSON } log_format_t;

typedef struct {
  const char *key;
  const char *val;
} log_kv_t;

/* The type a field's value has in JSON mode. Text mode writes every value as its text. */
typedef enum {
  LOG_T_STR,   /* a string */
  LOG_T_NUM,   /* val is a number's text ("42", "1.5"); not a JSON number (inf): a string */
  LOG_T_BOOL,  /* val is "true" or "false" */
  LOG_T_NULL   /* null (text mode: the val given, or "null") */
} log_type_t;

typedef struct {
  const char *key;
  const char *val;
  log_type_t type;
} log_field_t;

void log_set_format(log_format_t fmt);
log_format_t log_get_format(void);
void log_set_level(log_level_t lvl);
log_level_t log_get_level(void);
int log_parse_level(const char *name, log_level_t *out);  /* 0 ok, -1 unknown */
int log_parse_format(const char *name, log_format_t *out); /* 0 ok, -1 unknown */
const char *log_level_name(log_level_t lvl);
int log_key_is_secret(const char *key);

/* Emit one event. `event` is a short dotted name ("loop.start"); kv may be NULL. Every
 * value is a string. */
void log_event(log_level_t lvl, const char *event, const log_kv_t *kv, size_t nkv);
/* The same with typed values; entries with a NULL key are skipped. */
void log_fields(log_level_t lvl, const char *event, const log_field_t *f, size_t n);
/* Convenience: one event with a printf-formatted "msg" field (any length). */
void log_msg(log_level_t lvl, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A message for the person who ran the command (a usage or startup error, possibly
 * several lines): text mode writes it to stderr as it is; JSON mode writes each of its
 * lines as one event `cli.error` (level error) with the line in "msg". */
void log_report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
