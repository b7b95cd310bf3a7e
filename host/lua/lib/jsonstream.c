/* `jsonstream` module: reads a file of JSON documents one record at a time, in bounded
 * memory, so that one bad record costs only itself.
 *   jsonstream.open(path [, max_record]) -> reader | nil, msg, code
 *       path "-" is stdin. code is "ENOENT", "EACCES", "EISDIR" or "EIO" (anything else),
 *       so the caller can say what to do next. max_record (bytes, default 16 MiB) bounds
 *       one record: a longer one is reported as a problem, never silently cut.
 *   reader:next() -> text, line, offset, problem | nil (end of input) | nil, msg (read error)
 *       One record: a JSON object or array found by its brackets (so NDJSON lines,
 *       concatenated documents and one pretty-printed document all split the same way),
 *       or, for input that does not start with '{' or '[', the whole input (a bare
 *       notification text) up to a line that starts with '{' or '['; past the first record, a line that does not start a JSON
 *       value is a record of its own. line is 1-based, offset the 0-based byte offset in
 *       the input. problem is set when the splitter already knows the record is bad
 *       (the input ends inside it, a line break inside a string, larger than max_record).
 *   reader:resync() -> last_line, resume_offset
 *       After a record that turned out to be bad: continue at the next line that starts
 *       with '{' or '[' in its first column (the next NDJSON line, or the next top-level
 *       document of a pretty-printed file), instead of after the bad record's brackets,
 *       which a truncated line would have run past into its neighbours. Returns the bad
 *       record's last line and the byte offset where reading resumes.
 *   reader:close()                          (also __close and __gc)
 * Memory: one record plus two read chunks (what was read is dropped a chunk at a time). */
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lua/modules.h"

#define READER_MT "rotator.jsonstream"
#define CHUNK (64 * 1024)
#define DEFAULT_MAX (16 * 1024 * 1024)

typedef struct {
  int fd, own;
  char *buf;
  size_t cap, len, pos; /* buf[0..len) holds input from file offset `base`; buf[len] is 0 */
  long long base, line; /* line: the line number at buf[pos] */
  int eof, first;
  size_t max;
  size_t rec_start;     /* the last record, for resync */
  long long rec_line, rec_offset;
} reader_t;

static reader_t *check(lua_State *L) {
  reader_t *r = luaL_checkudata(L, 1, READER_MT);
  if (r->fd < 0) luaL_error(L, "jsonstream: reader is closed");
  return r;
}

/* Drop buf[0..keep). */
static void compact(reader_t *r, size_t keep) {
  if (keep == 0) return;
  memmove(r->buf, r->buf + keep, r->len - keep + 1);
  r->len -= keep;
  r->pos -= keep;
  r->base += (long long)keep;
  r->rec_start = r->rec_start >= keep ? r->rec_start - keep : 0;
}

/* Read one chunk: >0 bytes read, 0 end of input, -1 error (errno set). */
static long fill(reader_t *r) {
  if (r->eof) return 0;
  if (r->cap - r->len < CHUNK + 1) {
    size_t want = r->cap ? r->cap * 2 : 2 * CHUNK;
    if (want < r->len + CHUNK + 1) want = r->len + CHUNK + 1;
    char *nb = realloc(r->buf, want);
    if (!nb) { errno = ENOMEM; return -1; }
    r->buf = nb;
    r->cap = want;
  }
  for (;;) {
    ssize_t n = read(r->fd, r->buf + r->len, CHUNK);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) r->eof = 1;
    r->len += (size_t)n;
    r->buf[r->len] = '\0';
    return (long)n;
  }
}

static int read_error(lua_State *L) {
  int e = errno;
  lua_pushnil(L);
  lua_pushfstring(L, "read failed: %s", strerror(e));
  return 2;
}

static long long count_lines(const char *s, size_t n) {
  long long k = 0;
  for (const char *p = s, *end = s + n; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++) k++;
  return k;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Skip whitespace (and a UTF-8 byte order mark at the very start). 1 = at a record,
 * 0 = end of input, -1 = read error. */
static int skip_space(reader_t *r) {
  for (;;) {
    while (r->pos < r->len && is_ws(r->buf[r->pos])) {
      if (r->buf[r->pos] == '\n') r->line++;
      r->pos++;
    }
    if (r->first && r->base + (long long)r->pos == 0 && r->len - r->pos < 3 && !r->eof) {
      long n = fill(r);
      if (n < 0) return -1;
      continue;
    }
    if (r->first && r->base + (long long)r->pos == 0 && r->len >= 3 &&
        !memcmp(r->buf, "\xEF\xBB\xBF", 3)) {
      r->pos = 3;
      continue;
    }
    if (r->pos < r->len) return 1;
    compact(r, r->pos);
    long n = fill(r);
    if (n < 0) return -1;
    if (n == 0) return 0;
  }
}

enum { MODE_JSON, MODE_LINE, MODE_ALL };

/* The scanner's state inside a JSON record. */
typedef struct {
  int depth, instr, esc;
} json_scan_t;

/* One byte of a JSON record: 1 when the record ends after it, -1 for a line break inside
 * a string (a truncated or corrupt line), else 0. */
static int json_step(json_scan_t *j, char ch) {
  if (j->instr) {
    if (j->esc) j->esc = 0;
    else if (ch == '\\') j->esc = 1;
    else if (ch == '"') j->instr = 0;
    else if (ch == '\n') return -1;
  } else if (ch == '"') {
    j->instr = 1;
  } else if (ch == '{' || ch == '[') {
    j->depth++;
  } else if ((ch == '}' || ch == ']') && --j->depth == 0) {
    return 1;
  }
  return 0;
}

/* Bare text runs to the end, unless JSON records follow it in column 0: does the text
 * end at the line break at i? -1 on a read error. */
static int text_ends_at(reader_t *r, size_t i) {
  if (i + 1 == r->len && fill(r) < 0) return -1;
  return i + 1 < r->len && (r->buf[i + 1] == '{' || r->buf[i + 1] == '[');
}

/* Finds the end of the record starting at r->rec_start: 0 with *end (and *problem when
 * the record is bad), or -1 on a read error. toolong holds the size-limit message. */
static int scan(reader_t *r, int mode, size_t *end, const char **problem, char *toolong, size_t tlen) {
  json_scan_t j = {0, 0, 0};
  for (size_t i = r->pos;; i++) {
    if (i - r->rec_start >= r->max) {
      snprintf(toolong, tlen, "record larger than %zu bytes (the limit; split the file)", r->max);
      *problem = toolong;
      *end = i;
      return 0;
    }
    if (i == r->len) {
      long n = fill(r);
      if (n < 0) return -1;
      if (n == 0) {
        if (mode == MODE_JSON) *problem = "the input ends inside this JSON value (truncated?)";
        *end = i;
        return 0;
      }
    }
    char ch = r->buf[i];
    int stop = 0;
    if (mode == MODE_LINE) {
      stop = ch == '\n';
    } else if (mode == MODE_ALL) {
      if (ch == '\n' && (stop = text_ends_at(r, i)) < 0) return -1;
    } else {
      if (j.instr && !j.esc && ch != '"' && ch != '\\' && ch != '\n') {
        /* inside a string, only a quote, a backslash or a line break matters: run to the
         * next one (within what is read, and the size limit) without stepping each byte */
        size_t lim = r->len < r->rec_start + r->max ? r->len : r->rec_start + r->max;
        size_t k = i + 1 + strcspn(r->buf + i + 1, "\"\\\n"); /* stops at a NUL byte too, or buf[len] */
        i = (k < lim ? k : lim) - 1;
        continue;
      }
      int k = json_step(&j, ch);
      if (k < 0) {
        *problem = "line break inside a JSON string (a truncated or corrupt line?)";
        *end = i;
        return 0;
      }
      if (k > 0) { *end = i + 1; return 0; }
    }
    if (stop) { *end = i; return 0; }
  }
}

static int r_next(lua_State *L) {
  reader_t *r = check(L);
  /* drop what was read once it is a chunk's worth: compacting before every record
   * moved the whole buffer once per record */
  if (r->pos >= CHUNK) compact(r, r->pos);
  int s = skip_space(r);
  if (s < 0) return read_error(L);
  if (s == 0) { lua_pushnil(L); return 1; }
  r->rec_start = r->pos;
  r->rec_line = r->line;
  r->rec_offset = r->base + (long long)r->pos;
  char c0 = r->buf[r->pos];
  int mode = (c0 == '{' || c0 == '[') ? MODE_JSON : r->first ? MODE_ALL : MODE_LINE;
  r->first = 0;
  const char *problem = NULL;
  char toolong[96];
  size_t end;
  if (scan(r, mode, &end, &problem, toolong, sizeof toolong) < 0) return read_error(L);
  size_t n = end - r->rec_start;
  /* strip a carriage return ending a line record */
  size_t tn = n;
  while (tn > 0 && is_ws(r->buf[r->rec_start + tn - 1])) tn--;
  r->pos = end;
  r->line = r->rec_line + count_lines(r->buf + r->rec_start, n);
  lua_pushlstring(L, r->buf + r->rec_start, tn);
  lua_pushinteger(L, r->rec_line);
  lua_pushinteger(L, r->rec_offset);
  if (problem) {
    lua_pushstring(L, problem);
    return 4;
  }
  return 3;
}

static int r_resync(lua_State *L) {
  reader_t *r = check(L);
  if (r->rec_offset < r->base) return luaL_error(L, "jsonstream: resync only right after next()");
  size_t i = r->rec_start;
  long long nl = 0;
  int at_start = 0;
  for (;;) {
    if (i == r->len) {
      compact(r, i);
      i = r->len;
      long n = fill(r);
      if (n < 0) return read_error(L);
      if (n == 0) break;
    }
    char ch = r->buf[i];
    if (ch == '\n') { nl++; at_start = 1; i++; continue; }
    if (at_start && (ch == '{' || ch == '[')) break;
    at_start = 0;
    i++;
  }
  r->pos = i;
  r->line = r->rec_line + nl;
  r->rec_offset = -1; /* a second resync makes no sense */
  lua_pushinteger(L, at_start ? r->line - 1 : r->line);
  lua_pushinteger(L, (lua_Integer)(r->base + (long long)i));
  return 2;
}

static int r_close(lua_State *L) {
  reader_t *r = luaL_checkudata(L, 1, READER_MT);
  if (r->fd >= 0 && r->own) close(r->fd);
  r->fd = -1;
  free(r->buf);
  r->buf = NULL;
  r->cap = r->len = r->pos = 0;
  return 0;
}

static int fail_open(lua_State *L, const char *path, int e) {
  const char *code = e == ENOENT ? "ENOENT" : e == EACCES ? "EACCES" : e == EISDIR ? "EISDIR" : "EIO";
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", path, strerror(e));
  lua_pushstring(L, code);
  return 3;
}

static int f_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer max = luaL_optinteger(L, 2, DEFAULT_MAX);
  luaL_argcheck(L, max > 0, 2, "max_record must be positive");
  int fd = 0, own = 0;
  if (strcmp(path, "-") != 0) {
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail_open(L, path, errno);
    own = 1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    if (own) close(fd);
    return fail_open(L, path, e);
  }
  if (S_ISDIR(st.st_mode)) {
    if (own) close(fd);
    return fail_open(L, path, EISDIR);
  }
  reader_t *r = lua_newuserdatauv(L, sizeof *r, 0);
  memset(r, 0, sizeof *r);
  r->fd = fd;
  r->own = own;
  r->line = 1;
  r->first = 1;
  r->max = (size_t)max;
  r->rec_offset = -1;
  luaL_setmetatable(L, READER_MT);
  return 1;
}

int luaopen_rotator_jsonstream(lua_State *L) {
  static const luaL_Reg methods[] = {{"next", r_next}, {"resync", r_resync}, {"close", r_close},
                                     {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"open", f_open}, {NULL, NULL}};
  luaL_newmetatable(L, READER_MT);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, r_close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, r_close);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
