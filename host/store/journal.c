/* The durable workflow journal over SQLite (see journal.h). WAL + synchronous=FULL: a
 * commit returns once its WAL frames are fsync'd; a torn frame from a crash fails its
 * checksum and is dropped on the next open. Prepared statements are cached per journal. */
#include "store/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BUSY_TIMEOUT_MS 5000
/* The WAL stays small: a checkpoint every ~64 pages of commits (instead of SQLite's 1000),
 * and a WAL file larger than this after a checkpoint is cut back to it. */
#define WAL_AUTOCHECKPOINT_PAGES 64
#define WAL_SIZE_LIMIT_BYTES 524288 /* 512 KiB */

enum {
  ST_BEGIN, ST_COMMIT, ST_ROLLBACK, ST_SAVEPOINT, ST_RELEASE, ST_ROLLBACK_TO, ST_UPSERT, ST_INSERT, ST_GET, ST_FIND_JOB, ST_LIST,
  ST_HISTORY, ST_TRIM, ST_DROP, ST_COUNTS, ST_N
};

#define WF_COLS "id, state, source, backup_job, started, updated, finished, doc, " \
  "(SELECT count(*) FROM transitions t WHERE t.workflow = w.id)"
/* Finished workflows past the newest ?1 (by last update): the ones compaction may touch. */
#define BEYOND_KEPT "SELECT id FROM workflows WHERE finished = 1 " \
  "ORDER BY updated DESC, id LIMIT -1 OFFSET ?1"

static const char *const SQL[ST_N] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT record",
    [ST_RELEASE] = "RELEASE record",
    [ST_ROLLBACK_TO] = "ROLLBACK TO record",
    [ST_UPSERT] =
        "INSERT INTO workflows(id, state, source, backup_job, started, updated, finished, doc)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)"
        " ON CONFLICT(id) DO UPDATE SET state = excluded.state,"
        " source = coalesce(excluded.source, source),"
        " backup_job = coalesce(excluded.backup_job, backup_job),"
        " updated = excluded.updated, finished = excluded.finished, doc = excluded.doc",
    [ST_INSERT] = "INSERT INTO transitions(workflow, step, at, doc) VALUES (?1, ?2, ?3, ?4)",
    [ST_GET] = "SELECT " WF_COLS " FROM workflows w WHERE id = ?1",
    [ST_FIND_JOB] = "SELECT " WF_COLS " FROM workflows w WHERE backup_job = ?1",
    [ST_LIST] = "SELECT " WF_COLS " FROM workflows w WHERE (?1 = 0 OR finished = 0)"
                " ORDER BY updated DESC, id LIMIT ?2",
    [ST_HISTORY] = "SELECT seq, workflow, step, at, doc FROM transitions"
                   " WHERE workflow = ?1 ORDER BY seq",
    [ST_TRIM] = "DELETE FROM transitions WHERE workflow IN (" BEYOND_KEPT ")",
    [ST_DROP] = "DELETE FROM workflows WHERE id IN (" BEYOND_KEPT ") AND updated < ?2",
    [ST_COUNTS] = "SELECT (SELECT count(*) FROM workflows), (SELECT count(*) FROM transitions)",
};

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS workflows ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " state TEXT NOT NULL,"
    " source TEXT,"
    " backup_job TEXT UNIQUE,"      /* one workflow per backup job: the idempotency key */
    " started REAL NOT NULL,"
    " updated REAL NOT NULL,"
    " finished INTEGER NOT NULL DEFAULT 0,"
    " doc TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS transitions ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT," /* never reused, even after compaction */
    " workflow TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,"
    " step TEXT NOT NULL,"
    " at REAL NOT NULL,"
    " doc TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS transitions_by_workflow ON transitions(workflow, seq);"
    "CREATE INDEX IF NOT EXISTS workflows_by_update ON workflows(finished, updated);";

struct journal {
  sqlite3 *db;
  char *path;
  int readonly;
  int checked;            /* JOURNAL_CHECKED: no quick_check at open */
  int batch;              /* inside journal_begin .. journal_commit */
  sqlite3_stmt *st[ST_N];
  int errcode;            /* SQLite's extended result code of the last failure, or 0 */
  char err[1024];
};

static double now_seconds(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return 0;
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Record "journal PATH: WHAT: sqlite's message" as the last error; returns -1. */
static int fail(journal_t *j, const char *what) {
  j->errcode = j->db ? sqlite3_extended_errcode(j->db) : 0;
  snprintf(j->err, sizeof j->err, "journal %s: %s: %s", j->path, what,
           j->db ? sqlite3_errmsg(j->db) : "not open");
  return -1;
}

static int failf(journal_t *j, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  j->errcode = 0;
  snprintf(j->err, sizeof j->err, "journal %s: %s", j->path, msg);
  return -1;
}

const char *journal_errmsg(const journal_t *j) { return j->err; }

const char *journal_errkind(const journal_t *j) {
  switch (j->errcode & 0xff) {
  case 0: return "error";
  case SQLITE_FULL: return "disk_full";
  case SQLITE_IOERR: return "io_error";
  case SQLITE_READONLY: return "read_only";
  case SQLITE_CANTOPEN: case SQLITE_PERM: case SQLITE_AUTH: return "no_access";
  case SQLITE_CORRUPT: case SQLITE_NOTADB: return "corrupt";
  case SQLITE_BUSY: case SQLITE_LOCKED: return "busy";
  case SQLITE_CONSTRAINT: return "constraint";
  default: return "error";
  }
}
const char *journal_path(const journal_t *j) { return j->path; }

/* ------------------------------------------------------------------ statements */

static sqlite3_stmt *stmt(journal_t *j, int which) {
  if (!j->st[which] &&
      sqlite3_prepare_v3(j->db, SQL[which], -1, SQLITE_PREPARE_PERSISTENT, &j->st[which],
                         NULL) != SQLITE_OK) {
    fail(j, "preparing a statement");
    return NULL;
  }
  sqlite3_reset(j->st[which]); /* a callback that raised may have left it mid-step */
  return j->st[which];
}

/* Reset and clear bindings so a cached statement never holds a read transaction open. */
static void done(sqlite3_stmt *s) {
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
}

static int bind_text(journal_t *j, sqlite3_stmt *s, int i, const char *v) {
  int rc = v ? sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(s, i);
  return rc == SQLITE_OK ? 0 : fail(j, "binding a value");
}

static int bind_num(journal_t *j, sqlite3_stmt *s, int i, double v) {
  return sqlite3_bind_double(s, i, v) == SQLITE_OK ? 0 : fail(j, "binding a value");
}

static int bind_int(journal_t *j, sqlite3_stmt *s, int i, int64_t v) {
  return sqlite3_bind_int64(s, i, v) == SQLITE_OK ? 0 : fail(j, "binding a value");
}

/* Run a statement that returns no rows. */
static int exec_stmt(journal_t *j, sqlite3_stmt *s, const char *what) {
  int rc = sqlite3_step(s);
  int r = rc == SQLITE_DONE ? 0 : fail(j, what);
  done(s);
  return r;
}

static int run(journal_t *j, int which, const char *what) {
  sqlite3_stmt *s = stmt(j, which);
  return s ? exec_stmt(j, s, what) : -1;
}

static int exec_sql(journal_t *j, const char *sql, const char *what) {
  return sqlite3_exec(j->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : fail(j, what);
}

static void rollback(journal_t *j) {
  if (!sqlite3_get_autocommit(j->db)) (void)run(j, ST_ROLLBACK, "rolling back");
}

/* ------------------------------------------------------------------ opening */

/* mkdir -p for the journal's folder; new folders get 0700. */
static int make_parent_dirs(const char *path) {
  char *dir = strdup(path);
  if (!dir) return -1;
  char *slash = strrchr(dir, '/');
  int r = 0;
  if (slash && slash != dir) {
    *slash = '\0';
    for (char *p = strchr(dir + 1, '/');; p = strchr(p + 1, '/')) {
      if (p) *p = '\0';
      if (mkdir(dir, 0700) != 0 && errno != EEXIST) { r = -1; break; }
      if (!p) break;
      *p = '/';
    }
  }
  int e = errno;
  free(dir);
  errno = e;
  return r;
}

static int create_file(const char *path) {
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  return close(fd);
}

static int user_version(journal_t *j, int *v) {
  sqlite3_stmt *s;
  if (sqlite3_prepare_v2(j->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
    return fail(j, "reading the schema version");
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) *v = sqlite3_column_int(s, 0);
  sqlite3_finalize(s);
  return rc == SQLITE_ROW ? 0 : fail(j, "reading the schema version");
}

static int set_wal(journal_t *j) {
  sqlite3_stmt *s;
  if (sqlite3_prepare_v2(j->db, "PRAGMA journal_mode=WAL", -1, &s, NULL) != SQLITE_OK)
    return fail(j, "switching to WAL mode");
  int rc = sqlite3_step(s);
  int wal = rc == SQLITE_ROW && sqlite3_column_text(s, 0) &&
            strcmp((const char *)sqlite3_column_text(s, 0), "wal") == 0;
  sqlite3_finalize(s);
  if (rc != SQLITE_ROW) return fail(j, "switching to WAL mode");
  return wal ? 0 : failf(j, "the file system refused WAL mode; put the state directory on a local disk");
}

static int create_schema(journal_t *j) {
  if (exec_sql(j, "BEGIN IMMEDIATE", "creating the schema") < 0) return -1;
  int v = 0;
  if (user_version(j, &v) < 0) return rollback(j), -1;
  if (v == 0 && (exec_sql(j, SCHEMA, "creating the schema") < 0 ||
                 exec_sql(j, "PRAGMA user_version=1", "creating the schema") < 0))
    return rollback(j), -1;
  return exec_sql(j, "COMMIT", "creating the schema");
}

static int check_version(journal_t *j) {
  int v = 0;
  if (user_version(j, &v) < 0) return -1;
  if (v == 0 && j->readonly)
    return failf(j, "not a rotator journal yet (no schema); start the daemon once to create it");
  if (v > JOURNAL_SCHEMA_VERSION)
    return failf(j, "schema version %d is newer than this rotator understands (%d); "
                 "use a newer rotator", v, JOURNAL_SCHEMA_VERSION);
  return 0;
}

#define STR(x) #x
#define XSTR(x) STR(x)

/* Runs PRAGMA quick_check (quick) or integrity_check; calls fn for each problem line
 * ("ok" is not one). Returns the number of problems, or -1 when the check itself fails
 * (a file too damaged to read fails here too, with errcode SQLITE_CORRUPT/NOTADB). */
static int run_check(journal_t *j, int quick, int max, journal_check_fn fn, void *ud) {
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA %s(%d)", quick ? "quick_check" : "integrity_check", max > 0 ? max : 100);
  sqlite3_stmt *s;
  if (sqlite3_prepare_v2(j->db, sql, -1, &s, NULL) != SQLITE_OK) return fail(j, "checking the file");
  int rc, n = 0;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const char *line = (const char *)sqlite3_column_text(s, 0);
    if (line && strcmp(line, "ok") == 0) continue;
    n++;
    if (fn) fn(line ? line : "(null)", ud);
  }
  if (rc != SQLITE_DONE) {
    fail(j, "checking the file");
    sqlite3_finalize(s);
    return -1;
  }
  sqlite3_finalize(s);
  return n;
}

/* The first problem, on one line (SQLite's report spans lines: "*** in database main ***\n..."). */
static int first_problem(const char *line, void *ud) {
  char *out = ud;
  if (out[0]) return 0;
  snprintf(out, 200, "%s", line);
  for (char *p = out; *p; p++)
    if (*p == '\n' || *p == '\r') *p = ' ';
  return 0;
}

/* At open: a damaged file is refused here, with the next step, instead of failing later. */
static int damaged(journal_t *j, int quick) {
  char first[200] = "";
  int n = run_check(j, quick, 1, first_problem, first);
  if (n == 0) return 0;
  if (n > 0) {
    j->errcode = SQLITE_CORRUPT;
    snprintf(j->err, sizeof j->err, "journal %s: %s", j->path, first);
  }
  return -1;
}

int journal_check(journal_t *j, int quick, journal_check_fn fn, void *ud) {
  return run_check(j, quick, 100, fn, ud);
}

int journal_checkpoint(journal_t *j, int *wal_frames, int *checkpointed) {
  if (j->readonly) return failf(j, "opened read-only");
  int log = 0, done_frames = 0;
  int rc = sqlite3_wal_checkpoint_v2(j->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log, &done_frames);
  if (wal_frames) *wal_frames = log;
  if (checkpointed) *checkpointed = done_frames;
  if (rc == SQLITE_BUSY) return 1; /* a reader holds an old snapshot: the next one catches up */
  return rc == SQLITE_OK ? 0 : fail(j, "checkpointing the WAL");
}

static int configure(journal_t *j) {
  if (sqlite3_extended_result_codes(j->db, 1) != SQLITE_OK ||
      sqlite3_busy_timeout(j->db, BUSY_TIMEOUT_MS) != SQLITE_OK)
    return fail(j, "configuring the connection");
  if (j->readonly) {
    if (exec_sql(j, "PRAGMA query_only=ON", "configuring a reader") < 0) return -1;
    return check_version(j);
  }
  int v = 0;
  if (check_version(j) < 0 || user_version(j, &v) < 0) return -1;
  /* Must precede the first table; lets compaction give pages back to the file system. */
  if (v == 0 && exec_sql(j, "PRAGMA auto_vacuum=INCREMENTAL", "enabling auto_vacuum") < 0)
    return -1;
  if (set_wal(j) < 0 ||
      exec_sql(j, "PRAGMA synchronous=FULL", "setting synchronous=FULL") < 0 ||
      exec_sql(j, "PRAGMA foreign_keys=ON", "enabling foreign keys") < 0 ||
      sqlite3_wal_autocheckpoint(j->db, WAL_AUTOCHECKPOINT_PAGES) != SQLITE_OK ||
      exec_sql(j, "PRAGMA journal_size_limit=" XSTR(WAL_SIZE_LIMIT_BYTES), "limiting the WAL size") < 0)
    return -1;
  if (v == 0) return create_schema(j);
  return j->checked ? 0 : damaged(j, 1);
}

static journal_t *open_fail(journal_t *j, char **err) {
  if (err) *err = j->err[0] ? strdup(j->err) : NULL;
  journal_close(j);
  return NULL;
}

/* WAL header (sqlite.org/fileformat.html, "WAL File Format"): magic 0x377f0682/3 (the low
 * bit picks the checksum's byte order), version 3007000, a checksum of bytes 0..23. */
static uint32_t get_be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int wal_header_ok(const unsigned char h[32]) {
  uint32_t magic = get_be32(h);
  if ((magic & ~1u) != 0x377f0682u || get_be32(h + 4) != 3007000u) return 0;
  uint32_t s0 = 0, s1 = 0;
  for (int i = 0; i < 24; i += 8) {
    uint32_t a = get_be32(h + i), b = get_be32(h + i + 4);
    if (!(magic & 1)) { /* little-endian checksum words */
      a = __builtin_bswap32(a);
      b = __builtin_bswap32(b);
    }
    s0 += a + s1;
    s1 += b + s0;
  }
  return s0 == get_be32(h + 24) && s1 == get_be32(h + 28);
}

/* SQLite ignores a WAL whose header it cannot read, and with it every commit the WAL
 * holds; a journal that starts over such a WAL loses them silently. Refuse instead.
 * A missing or empty WAL is normal (a clean shutdown removes it). */
static int check_wal_file(journal_t *j) {
  size_t n = strlen(j->path);
  char *wal = malloc(n + 5);
  if (!wal) return failf(j, "out of memory");
  memcpy(wal, j->path, n);
  memcpy(wal + n, "-wal", 5);
  int fd = open(wal, O_RDONLY | O_CLOEXEC);
  int r = 0;
  if (fd >= 0) {
    unsigned char h[32];
    ssize_t got = read(fd, h, sizeof h);
    if (got < 0) r = failf(j, "cannot read its WAL %s: %s", wal, strerror(errno));
    else if (got > 0 && (got < (ssize_t)sizeof h || !wal_header_ok(h))) {
      r = failf(j, "its WAL %s has a header this SQLite cannot read (another version, or damaged); "
                "its commits would be dropped", wal);
      j->errcode = SQLITE_CORRUPT;
    }
    close(fd);
  } else if (errno != ENOENT) {
    r = failf(j, "cannot open its WAL %s: %s", wal, strerror(errno));
  }
  free(wal);
  return r;
}

/* The one message a damaged journal gets: what is wrong, with the file, and what to do. */
static void advise_damaged(journal_t *j) {
  const char *e = j->err, *p = strstr(e, ": ");
  char *what = strdup(strncmp(e, "journal ", 8) == 0 && p ? p + 2 : e);
  if (!what) return; /* out of memory: the plain message stays */
  int n = snprintf(j->err, sizeof j->err,
                   "journal %s is damaged (%s); run `rotator journal check` to see the damage, then "
                   "`rotator journal quarantine` (with the daemon stopped) to move it aside and start "
                   "fresh: the SQS messages still queued and the table-exists check carry the work on",
                   j->path, what);
  if (n < 0 || (size_t)n >= sizeof j->err) /* a very long path: the advice must survive */
    snprintf(j->err, sizeof j->err, "journal is damaged; run `rotator journal check`, then "
             "`rotator journal quarantine` (with the daemon stopped)");
  free(what);
}

journal_t *journal_open(const char *path, int flags, char **err) {
  if (err) *err = NULL;
  journal_t *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  j->readonly = (flags & JOURNAL_READONLY) != 0;
  j->checked = (flags & JOURNAL_CHECKED) != 0;
  if (!(j->path = strdup(path))) return open_fail(j, err);
  if (!j->readonly && (make_parent_dirs(path) < 0 || create_file(path) < 0)) {
    failf(j, "cannot create it: %s; check --state-dir / ROTATOR_STATE_DIR and its permissions",
          strerror(errno));
    return open_fail(j, err);
  }
  if (check_wal_file(j) < 0) {
    if (strcmp(journal_errkind(j), "corrupt") == 0) advise_damaged(j);
    return open_fail(j, err);
  }
  int oflags = (j->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path, &j->db, oflags, NULL) != SQLITE_OK) {
    if (!j->db) return open_fail(j, err);
    fail(j, j->readonly ? "cannot open it (is --state-dir / ROTATOR_STATE_DIR right?)"
                        : "cannot open it");
    return open_fail(j, err);
  }
  if (configure(j) < 0) {
    if (strcmp(journal_errkind(j), "corrupt") == 0) advise_damaged(j);
    return open_fail(j, err);
  }
  return j;
}

void journal_close(journal_t *j) {
  if (!j) return;
  for (int i = 0; i < ST_N; i++) sqlite3_finalize(j->st[i]);
  if (j->db) (void)sqlite3_close(j->db); /* all statements are finalized: cannot be BUSY */
  free(j->path);
  free(j);
}

/* ------------------------------------------------------------------ writing */

static int bind_upsert(journal_t *j, sqlite3_stmt *s, const journal_entry_t *e, double at) {
  if (bind_text(j, s, 1, e->workflow) < 0 || bind_text(j, s, 2, e->state ? e->state : e->step) < 0 ||
      bind_text(j, s, 3, e->source) < 0 || bind_text(j, s, 4, e->backup_job) < 0 ||
      bind_num(j, s, 5, at) < 0 || bind_int(j, s, 6, e->finished ? 1 : 0) < 0 ||
      bind_text(j, s, 7, e->doc) < 0)
    return -1;
  return 0;
}

static int upsert_workflow(journal_t *j, const journal_entry_t *e, double at) {
  sqlite3_stmt *s = stmt(j, ST_UPSERT);
  if (!s) return -1;
  if (bind_upsert(j, s, e, at) < 0) return done(s), -1;
  int rc = sqlite3_step(s);
  done(s);
  if (rc == SQLITE_DONE) return 0;
  if (rc == SQLITE_CONSTRAINT_UNIQUE) {
    failf(j, "backup job %s already belongs to another workflow than %s; "
          "derive the workflow id from the backup job id", e->backup_job, e->workflow);
    j->errcode = rc; /* kind "constraint": refused for good, retrying cannot help */
    return -1;
  }
  return fail(j, "recording the workflow");
}

static int insert_transition(journal_t *j, const journal_entry_t *e, double at, int64_t *seq) {
  sqlite3_stmt *s = stmt(j, ST_INSERT);
  if (!s) return -1;
  if (bind_text(j, s, 1, e->workflow) < 0 || bind_text(j, s, 2, e->step) < 0 ||
      bind_num(j, s, 3, at) < 0 || bind_text(j, s, 4, e->doc) < 0)
    return done(s), -1;
  if (exec_stmt(j, s, "recording the transition") < 0) return -1;
  if (seq) *seq = sqlite3_last_insert_rowid(j->db);
  return 0;
}

/* Inside a batch each record is a savepoint: a record refused on its own (a constraint)
 * leaves the others of the batch standing. */
static int append_in_batch(journal_t *j, const journal_entry_t *e, double at, int64_t *seq) {
  if (sqlite3_get_autocommit(j->db)) /* an earlier failure ended the batch's transaction */
    return failf(j, "the batch was rolled back after a failed record; write it again");
  if (run(j, ST_SAVEPOINT, "starting a record") < 0) return -1;
  if (upsert_workflow(j, e, at) < 0 || insert_transition(j, e, at, seq) < 0) {
    char err[sizeof j->err];
    int code = j->errcode;
    memcpy(err, j->err, sizeof err);
    if (!sqlite3_get_autocommit(j->db)) { /* SQLite may have rolled the whole batch back */
      (void)run(j, ST_ROLLBACK_TO, "undoing a record");
      (void)run(j, ST_RELEASE, "undoing a record");
    }
    memcpy(j->err, err, sizeof err);
    j->errcode = code;
    return -1;
  }
  return run(j, ST_RELEASE, "finishing a record");
}

int journal_append(journal_t *j, const journal_entry_t *e, int64_t *seq) {
  if (j->readonly) return failf(j, "opened read-only");
  if (!e->workflow || !*e->workflow || !e->step || !*e->step || !e->doc)
    return failf(j, "a transition needs a workflow id, a step and a document");
  double at = e->at > 0 ? e->at : now_seconds();
  if (j->batch) return append_in_batch(j, e, at, seq);
  if (run(j, ST_BEGIN, "starting a transaction") < 0) return -1;
  if (upsert_workflow(j, e, at) < 0 || insert_transition(j, e, at, seq) < 0 ||
      run(j, ST_COMMIT, "committing (the disk may be full or failing)") < 0) {
    rollback(j);
    return -1;
  }
  return 0;
}

int journal_begin(journal_t *j) {
  if (j->readonly) return failf(j, "opened read-only");
  if (j->batch) return failf(j, "a batch is already open");
  if (run(j, ST_BEGIN, "starting a transaction") < 0) return -1;
  j->batch = 1;
  return 0;
}

int journal_commit(journal_t *j) {
  if (!j->batch) return failf(j, "no batch is open");
  j->batch = 0;
  if (sqlite3_get_autocommit(j->db)) /* SQLite rolled it back after an I/O error */
    return failf(j, "the batch was rolled back after a failed record; write it again");
  if (run(j, ST_COMMIT, "committing (the disk may be full or failing)") < 0) {
    rollback(j);
    return -1;
  }
  return 0;
}

void journal_rollback(journal_t *j) {
  j->batch = 0;
  rollback(j);
}

/* ------------------------------------------------------------------ reading */

static const char *col_text(sqlite3_stmt *s, int i) {
  return (const char *)sqlite3_column_text(s, i);
}

static void row_workflow(sqlite3_stmt *s, journal_workflow_t *w) {
  *w = (journal_workflow_t){
      .id = col_text(s, 0), .state = col_text(s, 1), .source = col_text(s, 2),
      .backup_job = col_text(s, 3), .started = sqlite3_column_double(s, 4),
      .updated = sqlite3_column_double(s, 5), .finished = sqlite3_column_int(s, 6),
      .doc = col_text(s, 7), .transitions = sqlite3_column_int64(s, 8)};
}

/* Step through workflow rows, calling fn for each; returns the number of rows seen. */
static int each_workflow(journal_t *j, sqlite3_stmt *s, journal_workflow_fn fn, void *ud) {
  int rc, n = 0, stop = 0;
  while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    journal_workflow_t w;
    row_workflow(s, &w);
    n++;
    stop = fn(&w, ud);
  }
  int r = (stop || rc == SQLITE_DONE) ? n : fail(j, "reading workflows");
  done(s);
  return r;
}

static int one_workflow(journal_t *j, int which, const char *key, journal_workflow_fn fn, void *ud) {
  sqlite3_stmt *s = stmt(j, which);
  if (!s) return -1;
  if (bind_text(j, s, 1, key) < 0) return done(s), -1;
  return each_workflow(j, s, fn, ud);
}

int journal_get(journal_t *j, const char *id, journal_workflow_fn fn, void *ud) {
  return one_workflow(j, ST_GET, id, fn, ud);
}

int journal_find_backup_job(journal_t *j, const char *job, journal_workflow_fn fn, void *ud) {
  return one_workflow(j, ST_FIND_JOB, job, fn, ud);
}

int journal_list(journal_t *j, const journal_filter_t *f, journal_workflow_fn fn, void *ud) {
  sqlite3_stmt *s = stmt(j, ST_LIST);
  if (!s) return -1;
  if (bind_int(j, s, 1, f && f->unfinished_only) < 0 ||
      bind_int(j, s, 2, f && f->limit > 0 ? f->limit : -1) < 0)
    return done(s), -1;
  return each_workflow(j, s, fn, ud);
}

int journal_history(journal_t *j, const char *id, journal_transition_fn fn, void *ud) {
  sqlite3_stmt *s = stmt(j, ST_HISTORY);
  if (!s) return -1;
  if (bind_text(j, s, 1, id) < 0) return done(s), -1;
  int rc, n = 0, stop = 0;
  while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    journal_transition_t t = {.seq = sqlite3_column_int64(s, 0), .workflow = col_text(s, 1),
                              .step = col_text(s, 2), .at = sqlite3_column_double(s, 3),
                              .doc = col_text(s, 4)};
    n++;
    stop = fn(&t, ud);
  }
  int r = (stop || rc == SQLITE_DONE) ? n : fail(j, "reading the history");
  done(s);
  return r;
}

int journal_counts(journal_t *j, int64_t *workflows, int64_t *transitions) {
  sqlite3_stmt *s = stmt(j, ST_COUNTS);
  if (!s) return -1;
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    if (workflows) *workflows = sqlite3_column_int64(s, 0);
    if (transitions) *transitions = sqlite3_column_int64(s, 1);
  }
  done(s);
  return rc == SQLITE_ROW ? 0 : fail(j, "counting rows");
}

/* ------------------------------------------------------------------ compaction */

static int delete_beyond(journal_t *j, int which, const journal_compact_t *c, double cutoff,
                         int64_t *deleted) {
  sqlite3_stmt *s = stmt(j, which);
  if (!s) return -1;
  int64_t keep = c->keep_finished > 0 ? c->keep_finished : 0;
  if (bind_int(j, s, 1, keep) < 0 || (which == ST_DROP && bind_num(j, s, 2, cutoff) < 0))
    return done(s), -1;
  if (exec_stmt(j, s, "compacting") < 0) return -1;
  *deleted = sqlite3_changes64(j->db);
  return 0;
}

/* Give freed pages back and fold the WAL into the database. A checkpoint that cannot
 * finish because a reader is active is not an error: the next one catches up. */
static int shrink(journal_t *j) {
  if (exec_sql(j, "PRAGMA incremental_vacuum", "giving free pages back") < 0) return -1;
  int rc = sqlite3_wal_checkpoint_v2(j->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
  return rc == SQLITE_OK || rc == SQLITE_BUSY ? 0 : fail(j, "checkpointing the WAL");
}

int journal_compact(journal_t *j, const journal_compact_t *c, journal_compact_result_t *out) {
  journal_compact_result_t r = {0, 0};
  if (j->readonly) return failf(j, "opened read-only");
  double now = c->now > 0 ? c->now : now_seconds();
  if (run(j, ST_BEGIN, "starting a transaction") < 0) return -1;
  if (delete_beyond(j, ST_TRIM, c, 0, &r.transitions_deleted) < 0 ||
      (c->older_than >= 0 &&
       delete_beyond(j, ST_DROP, c, now - c->older_than, &r.workflows_deleted) < 0) ||
      run(j, ST_COMMIT, "committing the compaction") < 0) {
    rollback(j);
    return -1;
  }
  if (out) *out = r;
  return shrink(j);
}
