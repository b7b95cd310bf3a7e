/* Frames on the control socket: [type: 1 byte][length: 4 bytes, big-endian][payload].
 * Client → daemon: FRAME_EVAL (a Lua chunk), FRAME_CANCEL (abandon the pending eval),
 *                  FRAME_STATUS (payload "json" or "text").
 * Daemon → client: FRAME_OUTPUT (text to print; more may follow), FRAME_RESULT (the
 *                  chunk's results, final), FRAME_ERROR (error with traceback, final),
 *                  FRAME_INCOMPLETE (the chunk needs more lines, final), FRAME_REFUSED. */
#ifndef ROTATOR_FRAME_H
#define ROTATOR_FRAME_H
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

enum {
  FRAME_EVAL = 'e', FRAME_CANCEL = 'c', FRAME_STATUS = 's',
  FRAME_OUTPUT = 'o', FRAME_RESULT = 'r', FRAME_ERROR = 'x', FRAME_INCOMPLETE = 'i',
  FRAME_REFUSED = 'n',
};

#define FRAME_HEADER 5
#define FRAME_MAX_PAYLOAD (4u << 20)

/* Append one encoded frame to b. -1 if payload is too large or out of memory. */
int frame_put(buf_t *b, int type, const char *payload, size_t len);

/* Parse one frame from the front of b: 1 and fills type/payload/len (payload points into
 * b; consume FRAME_HEADER + len afterwards), 0 if incomplete, -1 if malformed. */
int frame_get(const buf_t *b, int *type, const char **payload, size_t *len);

#endif
