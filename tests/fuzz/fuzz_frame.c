/* libFuzzer harness: control-socket frames (core/frame.c). Parses every frame off the
 * input as the daemon does, re-encodes each and checks the round trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  buf_t in = {0}, out = {0};
  if (buf_append(&in, (const char *)data, size) != 0) return 0;
  size_t off = 0;
  for (;;) {
    buf_t view = {.data = in.data + off, .len = in.len - off, .cap = in.len - off};
    int type;
    const char *p;
    size_t len;
    int r = frame_get(&view, &type, &p, &len);
    if (r <= 0) break;
    if (len > FRAME_MAX_PAYLOAD || FRAME_HEADER + len > view.len) abort();
    size_t before = out.len;
    if (frame_put(&out, type, p, len) != 0) abort();
    if (out.len - before != FRAME_HEADER + len ||
        memcmp(out.data + before, view.data, FRAME_HEADER + len) != 0) abort();
    off += FRAME_HEADER + len;
  }
  buf_free(&in);
  buf_free(&out);
  return 0;
}
