/* The durable workflow journal: an SQLite database in WAL mode with synchronous=FULL.
 *
 * Every workflow transition is one row in `transitions`; `workflows` holds one row per
 * workflow with its latest document. journal_append() writes both in one transaction
 * and returns after the commit, so after it returns the record is on disk (fsync'd):
 * callers acknowledge a step's effect (delete the SQS message, make the next call) only
 * then. A crash mid-commit leaves a torn WAL frame that SQLite's checksums reject on the
 * next open, so the journal reads as of the last acknowledged append.
 *
 * Errors: functions return 0 (or a count) on success and -1 on failure; journal_errmsg()
 * then describes the failure, naming the journal file. Strings handed to callbacks are
 * valid only during the callback. Not thread-safe: one journal_t per thread. */
#ifndef ROTATOR_JOURNAL_H
#define ROTATOR_JOURNAL_H
#include <stdint.h>

#define JOURNAL_SCHEMA_VERSION 1

typedef struct journal journal_t;

/* open flags: readers (rotator journal) never write; CHECKED: this process checked the
 * file when it first opened it and has written it since (a hot reload's new state), so
 * the quick_check at open, O(journal size), is not run again. */
enum { JOURNAL_READONLY = 1, JOURNAL_CHECKED = 2 };

typedef struct {
  const char *workflow;   /* workflow id (derived from the backup job id) */
  const char *step;       /* the transition's name */
  const char *doc;        /* the workflow document after the step, JSON text */
  const char *state;      /* workflow state for listings; NULL = step */
  const char *source;     /* source table, or NULL to keep the recorded one */
  const char *backup_job; /* backup job id, or NULL to keep the recorded one */
  int finished;           /* 1 once the workflow reached Complete or Error */
  double at;              /* wall-clock seconds; 0 = now */
} journal_entry_t;

typedef struct {
  const char *id, *state, *source, *backup_job, *doc;
  double started, updated;
  int finished;
  int64_t transitions;    /* transitions still kept for it (0 once compacted away) */
} journal_workflow_t;

typedef struct {
  int64_t seq;
  const char *workflow, *step, *doc;
  double at;
} journal_transition_t;

typedef struct {
  int unfinished_only;    /* only workflows not finished */
  int64_t limit;          /* most recently updated first; <= 0: no limit */
} journal_filter_t;

typedef struct {
  int64_t keep_finished;  /* finished workflows that keep their full history */
  double older_than;      /* finished workflows beyond keep_finished and not updated for
                             this many seconds are dropped entirely; < 0: never */
  double now;             /* 0 = current time (tests pass a fixed clock) */
} journal_compact_t;

typedef struct {
  int64_t transitions_deleted, workflows_deleted;
} journal_compact_result_t;

/* Returning non-zero from a callback stops the iteration (the function returns 0). */
typedef int (*journal_workflow_fn)(const journal_workflow_t *w, void *ud);
typedef int (*journal_transition_fn)(const journal_transition_t *t, void *ud);

/* Opens (creating if needed, unless READONLY) the journal at path. The directory is
 * created with mode 0700, the file with 0600. Returns NULL with *err set to a malloc'd
 * message (free it) on failure; *err is NULL on out-of-memory. */
journal_t *journal_open(const char *path, int flags, char **err);
void journal_close(journal_t *j);
const char *journal_errmsg(const journal_t *j);
/* The last failure's kind, from SQLite's result code: "disk_full", "io_error",
 * "read_only", "no_access", "corrupt", "busy", "constraint" or "error". */
const char *journal_errkind(const journal_t *j);
const char *journal_path(const journal_t *j);

int journal_append(journal_t *j, const journal_entry_t *e, int64_t *seq);
/* Group commit: journal_begin(), any number of journal_append() (each then only writes,
 * as a savepoint of its own: one that fails is undone alone, and *seq is its final
 * sequence number), journal_commit() makes them all durable with one fsync. Nothing
 * appended in the batch is durable (or may be acknowledged) before journal_commit()
 * returns 0; after a failed commit none of it is. journal_rollback() drops the batch. */
int journal_begin(journal_t *j);
int journal_commit(journal_t *j);
void journal_rollback(journal_t *j);
/* 1 found (fn called once), 0 not found, -1 error. */
int journal_get(journal_t *j, const char *id, journal_workflow_fn fn, void *ud);
int journal_find_backup_job(journal_t *j, const char *job, journal_workflow_fn fn, void *ud);
int journal_list(journal_t *j, const journal_filter_t *f, journal_workflow_fn fn, void *ud);
int journal_history(journal_t *j, const char *id, journal_transition_fn fn, void *ud);
int journal_compact(journal_t *j, const journal_compact_t *c, journal_compact_result_t *out);
/* PRAGMA quick_check (quick != 0) or integrity_check: fn gets each problem found (at most
 * 100). Returns the number of problems (0 = sound) or -1 when the file cannot be read. */
typedef int (*journal_check_fn)(const char *problem, void *ud);
int journal_check(journal_t *j, int quick, journal_check_fn fn, void *ud);
/* Folds the WAL into the database and truncates it (PRAGMA wal_checkpoint(TRUNCATE)).
 * wal_frames, checkpointed: frames left in the WAL and folded of them (0 and 0 once it is
 * truncated; SQLite's sqlite3_wal_checkpoint_v2). Returns 0,
 * 1 when a reader kept part of it (the next checkpoint catches up), -1 on failure. */
int journal_checkpoint(journal_t *j, int *wal_frames, int *checkpointed);
/* Row counts, for status and tests. */
int journal_counts(journal_t *j, int64_t *workflows, int64_t *transitions);

#endif
