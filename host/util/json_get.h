/* The value of a top-level member of a JSON object (util/json_get.c). */
#ifndef ROTATOR_JSON_GET_H
#define ROTATOR_JSON_GET_H
#include <stddef.h>

#define JSON_GET_TOO_LONG (-2)

/* Strings are unescaped into out; numbers, true/false/null are returned as their text.
 * 0; -1 when json is not an object, the key is missing or its value is an object or an
 * array; JSON_GET_TOO_LONG when the value does not fit in outlen (out then holds the
 * NUL-terminated prefix). */
int json_get(const char *json, size_t len, const char *key, char *out, size_t outlen);

#endif
