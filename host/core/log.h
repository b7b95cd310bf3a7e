/* Structured logging to stderr: one line per event, `key=value` text (the default) or
 * JSON (`--log-format json`). Fields whose key names a secret (secret, token, password,
 * authorization, credential) are written as "[redacted]" whatever the caller passes. */
#ifndef ROTATOR_LOG_H
#define ROTATOR_LOG_H
#include <stddef.h>

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;
typedef enum { LOG_TEXT, LOG_JSON } log_format_t;

typedef struct {
  const char *key;
  const char *val;
} log_kv_t;

void log_set_format(log_format_t fmt);
log_format_t log_get_format(void);
void log_set_level(log_level_t lvl);
log_level_t log_get_level(void);
int log_parse_level(const char *name, log_level_t *out);  /* 0 ok, -1 unknown */
int log_parse_format(const char *name, log_format_t *out); /* 0 ok, -1 unknown */
const char *log_level_name(log_level_t lvl);
int log_key_is_secret(const char *key);

/* Emit one event. `event` is a short dotted name ("loop.start"); kv may be NULL. */
void log_event(log_level_t lvl, const char *event, const log_kv_t *kv, size_t nkv);
/* Convenience: one event with a printf-formatted "msg" field. */
void log_msg(log_level_t lvl, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
