/* journal.c: schema and pragmas, append/get/list/history, the backup-job key, read-only
 * readers, schema versions, compaction bounds, damaged files and WALs, the checkpoint,
 * and per-append latency (a diagnostic). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/journal.h"
#include "tap.h"

static char dir[64], path[128];

static int file_mode(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 ? (int)(st.st_mode & 0777) : -1;
}

/* One SQL value as text through a separate connection, as an operator's sqlite3 would. */
static void peek(const char *sql, char *out, size_t len) {
  sqlite3 *db = NULL;
  sqlite3_stmt *s = NULL;
  out[0] = '\0';
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW &&
      sqlite3_column_text(s, 0))
    snprintf(out, len, "%s", (const char *)sqlite3_column_text(s, 0));
  sqlite3_finalize(s);
  sqlite3_close(db);
}

static int append(journal_t *j, const char *wf, const char *step, const char *job, int fin) {
  journal_entry_t e = {.workflow = wf, .step = step, .doc = "{\"k\":1}", .backup_job = job,
                       .source = job ? "orders-production" : NULL, .finished = fin};
  return journal_append(j, &e, NULL);
}

typedef struct { int n; char first_id[64]; char state[64]; int finished; int64_t transitions; } seen_t;

static int on_wf(const journal_workflow_t *w, void *ud) {
  seen_t *s = ud;
  if (s->n++ == 0) {
    snprintf(s->first_id, sizeof s->first_id, "%s", w->id);
    snprintf(s->state, sizeof s->state, "%s", w->state);
    s->finished = w->finished;
    s->transitions = w->transitions;
  }
  return 0;
}

static int stop_after_one(const journal_workflow_t *w, void *ud) {
  (void)w;
  ++*(int *)ud;
  return 1;
}

typedef struct { int n; int64_t last_seq; char steps[256]; } hist_t;

static int on_tr(const journal_transition_t *t, void *ud) {
  hist_t *h = ud;
  h->n++;
  h->last_seq = t->seq;
  size_t used = strlen(h->steps);
  snprintf(h->steps + used, sizeof h->steps - used, "%s%s", used ? "," : "", t->step);
  return 0;
}

static void test_open_and_pragmas(void) {
  char *err = NULL;
  journal_t *j = journal_open(path, 0, &err);
  ok(j != NULL, "open creates the journal and its folders (%s)", err ? err : "ok");
  free(err);
  if (!j) return;
  char sub[128];
  snprintf(sub, sizeof sub, "%s/state", dir);
  is_int(file_mode(sub), 0700, "new state folder is 0700");
  is_int(file_mode(path), 0600, "journal file is 0600");
  char v[64];
  peek("PRAGMA journal_mode", v, sizeof v);
  is_str(v, "wal", "WAL mode persists in the file");
  peek("PRAGMA auto_vacuum", v, sizeof v);
  is_str(v, "2", "auto_vacuum=INCREMENTAL, so compaction can shrink the file");
  peek("PRAGMA user_version", v, sizeof v);
  is_int(atoi(v), JOURNAL_SCHEMA_VERSION, "schema version recorded in user_version");
  journal_close(j);
}

static void test_append_and_read(void) {
  journal_t *j = journal_open(path, 0, NULL);
  int64_t seq = 0;
  journal_entry_t e = {.workflow = "job-1", .step = "Restore Backup", .doc = "{\"a\":1}",
                       .source = "orders-production", .backup_job = "job-1", .at = 1000};
  is_int(journal_append(j, &e, &seq), 0, "append");
  ok(seq > 0, "append returns the transition's sequence number");
  journal_entry_t e2 = {.workflow = "job-1", .step = "Wait for Restore", .doc = "{\"a\":2}", .at = 1001};
  is_int(journal_append(j, &e2, NULL), 0, "append without source/backup job keeps the recorded ones");
  is_int(append(j, "job-2", "Restore Backup", "job-2", 0), 0, "second workflow");
  is_int(append(j, "job-2", "Complete", NULL, 1), 0, "second workflow finishes");

  seen_t s = {0};
  is_int(journal_get(j, "job-1", on_wf, &s), 1, "get finds the workflow");
  is_str(s.state, "Wait for Restore", "state defaults to the latest step");
  is_int(s.transitions, 2, "transition count");
  is_int(journal_get(j, "nope", on_wf, &s), 0, "get of an unknown id finds nothing");
  seen_t byjob = {0};
  is_int(journal_find_backup_job(j, "job-1", on_wf, &byjob), 1, "find by backup job");
  is_str(byjob.first_id, "job-1", "backup job maps to its workflow");

  hist_t h = {0};
  is_int(journal_history(j, "job-1", on_tr, &h), 2, "history has both transitions");
  is_str(h.steps, "Restore Backup,Wait for Restore", "history in order");

  seen_t all = {0}, open = {0};
  journal_filter_t f_all = {0, 0}, f_open = {1, 0};
  is_int(journal_list(j, &f_all, on_wf, &all), 2, "list all");
  is_str(all.first_id, "job-2", "most recently updated first");
  is_int(journal_list(j, &f_open, on_wf, &open), 1, "list unfinished");
  is_str(open.first_id, "job-1", "only the unfinished one");
  journal_filter_t f_one = {0, 1};
  seen_t one = {0};
  is_int(journal_list(j, &f_one, on_wf, &one), 1, "limit");
  int calls = 0;
  is_int(journal_list(j, &f_all, stop_after_one, &calls), 1, "a callback can stop the listing");
  is_int(calls, 1, "stopped after one");

  is_int(append(j, "other", "Restore Backup", "job-1", 0), -1, "a backup job cannot start a second workflow");
  ok(strstr(journal_errmsg(j), path) && strstr(journal_errmsg(j), "job-1"),
     "the error names the journal and the job: %s", journal_errmsg(j));
  seen_t none = {0};
  is_int(journal_get(j, "other", on_wf, &none), 0, "the refused workflow left nothing behind");
  journal_entry_t bad = {.workflow = "", .step = "x", .doc = "{}"};
  is_int(journal_append(j, &bad, NULL), -1, "empty workflow id refused");
  journal_close(j);

  j = journal_open(path, 0, NULL);
  seen_t again = {0};
  is_int(journal_list(j, &f_all, on_wf, &again), 2, "records survive close and reopen");
  journal_close(j);
}

static void test_readonly(void) {
  journal_t *w = journal_open(path, 0, NULL); /* a writer holds it open, as the daemon does */
  char *err = NULL;
  journal_t *r = journal_open(path, JOURNAL_READONLY, &err);
  ok(r != NULL, "a reader opens while a writer holds the journal (%s)", err ? err : "ok");
  free(err);
  if (r) {
    is_int(append(w, "job-3", "Restore Backup", "job-3", 0), 0, "writer appends");
    seen_t s = {0};
    is_int(journal_get(r, "job-3", on_wf, &s), 1, "reader sees the committed append");
    is_int(append(r, "job-4", "x", NULL, 0), -1, "reader cannot append");
    journal_close(r);
  }
  journal_close(w);
  char missing[160];
  snprintf(missing, sizeof missing, "%s/missing/journal.db", dir);
  r = journal_open(missing, JOURNAL_READONLY, &err);
  ok(r == NULL && err && strstr(err, missing) && strstr(err, "--state-dir"),
     "a missing journal is an error naming the path and the flag: %s", err ? err : "(none)");
  free(err);
  journal_close(r);
}

static void test_newer_schema(void) {
  char p2[160];
  snprintf(p2, sizeof p2, "%s/newer.db", dir);
  sqlite3 *db = NULL;
  ok(sqlite3_open(p2, &db) == SQLITE_OK &&
         sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL) == SQLITE_OK,
     "make a journal from the future");
  sqlite3_close(db);
  char *err = NULL;
  journal_t *j = journal_open(p2, 0, &err);
  ok(j == NULL && err && strstr(err, "newer"), "a newer schema is refused: %s", err ? err : "(none)");
  free(err);
  journal_close(j);
}

static long file_size(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static int overwrite(const char *p, long off, const char *bytes, size_t n) {
  FILE *f = fopen(p, "r+b");
  if (!f) f = fopen(p, "wb");
  if (!f) return -1;
  int r = fseek(f, off, SEEK_SET) == 0 && fwrite(bytes, 1, n, f) == n ? 0 : -1;
  return fclose(f) == 0 ? r : -1;
}

static void test_damage_and_checkpoint(void) {
  char p2[160], wal[170];
  snprintf(p2, sizeof p2, "%s/damage.db", dir);
  snprintf(wal, sizeof wal, "%s-wal", p2);
  journal_t *j = journal_open(p2, 0, NULL);
  ok(j != NULL, "open a journal to damage");
  if (!j) return;
  for (int i = 0; i < 20; i++) {
    char id[32];
    snprintf(id, sizeof id, "wf-%d", i);
    is_int(append(j, id, "Accepted", id, 0), 0, "append %d", i);
  }
  is_int(journal_check(j, 0, NULL, NULL), 0, "integrity_check: a sound journal has no problem");
  long before = file_size(wal);
  int frames = -1, done_frames = -1;
  is_int(journal_checkpoint(j, &frames, &done_frames), 0, "checkpoint(TRUNCATE)");
  ok(before > 0 && frames == 0 && file_size(wal) == 0, "the WAL (%ld bytes) is folded in and truncated (%ld bytes)",
     before, file_size(wal));
  ok(append(j, "wf-x", "Accepted", "wf-x", 0) == 0 && file_size(wal) > 0, "the WAL grows again after it");
  journal_close(j);

  /* a WAL with garbage for a header: refused with the next step, not dropped silently */
  ok(overwrite(wal, 0, "garbage-garbage-garbage-garbage!", 32) == 0, "write a garbage WAL header");
  char *err = NULL;
  j = journal_open(p2, JOURNAL_READONLY, &err);
  ok(j == NULL && err && strstr(err, "WAL") && strstr(err, "rotator journal quarantine"),
     "a WAL this SQLite cannot read is refused, naming the next step: %s", err ? err : "(none)");
  free(err);
  journal_close(j);
  ok(unlink(wal) == 0, "remove the WAL");

  /* a garbage database header */
  ok(overwrite(p2, 0, "this is not an SQLite database, no", 34) == 0, "write a garbage header");
  err = NULL;
  j = journal_open(p2, 0, &err);
  ok(j == NULL && err && strstr(err, "is damaged") && strstr(err, "rotator journal check") &&
         strstr(err, p2),
     "a garbage journal is refused with one message naming it and the next step: %s", err ? err : "(none)");
  free(err);
  journal_close(j);
}

static void fill(journal_t *j, int workflows, int steps, double t0) {
  char id[32], step[32];
  for (int w = 0; w < workflows; w++) {
    snprintf(id, sizeof id, "bulk-%d", w);
    for (int s = 0; s < steps; s++) {
      snprintf(step, sizeof step, "step-%d", s);
      journal_entry_t e = {.workflow = id, .step = step, .doc = "{\"Status\":\"x\"}",
                           .backup_job = id, .finished = s == steps - 1, .at = t0 + w};
      if (journal_append(j, &e, NULL) < 0) { ok(0, "fill: %s", journal_errmsg(j)); return; }
    }
  }
}

static void test_compact(void) {
  char p2[160];
  snprintf(p2, sizeof p2, "%s/compact.db", dir);
  journal_t *j = journal_open(p2, 0, NULL);
  fill(j, 60, 5, 1000);
  is_int(append(j, "live", "Wait for Restore", "live", 0), 0, "one unfinished workflow");
  int64_t w = 0, t = 0;
  journal_counts(j, &w, &t);
  is_int(t, 301, "before: every transition");
  journal_compact_t keep10 = {.keep_finished = 10, .older_than = -1};
  journal_compact_result_t r;
  is_int(journal_compact(j, &keep10, &r), 0, "compact");
  journal_counts(j, &w, &t);
  is_int(t, 10 * 5 + 1, "transitions kept: 10 finished histories + the live workflow");
  is_int(w, 61, "workflow rows (latest documents) kept without older_than");
  is_int(r.transitions_deleted, 250, "reported deletions");
  seen_t s = {0};
  journal_get(j, "bulk-0", on_wf, &s);
  ok(s.n == 1 && s.transitions == 0 && s.finished, "an old workflow keeps its latest document, not its history");
  seen_t recent = {0};
  journal_get(j, "bulk-59", on_wf, &recent);
  is_int(recent.transitions, 5, "a recent finished workflow keeps its history");

  journal_compact_t drop = {.keep_finished = 10, .older_than = 3600, .now = 1000 + 30 + 3600};
  is_int(journal_compact(j, &drop, &r), 0, "compact with an age limit");
  journal_counts(j, &w, &t);
  is_int(r.workflows_deleted, 30, "finished workflows beyond keep and older than the limit are dropped");
  is_int(w, 31, "younger ones stay as tombstones for redelivery");
  journal_compact_t all = {.keep_finished = 0, .older_than = 0, .now = 1e10};
  is_int(journal_compact(j, &all, &r), 0, "compact everything finished");
  journal_counts(j, &w, &t);
  ok(w == 1 && t == 1, "only the live workflow remains (%lld workflows, %lld transitions)",
     (long long)w, (long long)t);
  int64_t seq = 0;
  journal_entry_t e = {.workflow = "live", .step = "Complete", .doc = "{}", .finished = 1};
  is_int(journal_append(j, &e, &seq), 0, "append after compaction");
  ok(seq > 301, "sequence numbers are never reused after compaction (%lld)", (long long)seq);
  journal_close(j);
}

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_latency(void) {
  char p2[160];
  snprintf(p2, sizeof p2, "%s/latency.db", dir);
  journal_t *j = journal_open(p2, 0, NULL);
  const int n = 200;
  double t0 = mono();
  int failures = 0;
  for (int i = 0; i < n; i++) {
    char id[32];
    snprintf(id, sizeof id, "lat-%d", i / 5);
    if (append(j, id, "step", NULL, 0) < 0) failures++;
  }
  double per = (mono() - t0) / n * 1e3;
  is_int(failures, 0, "%d fsync'd appends", n);
  printf("# append latency: %.3f ms per transition (commit + fsync, %d appends)\n", per, n);
  journal_close(j);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/rotator-journal-XXXXXX");
  if (!mkdtemp(dir)) { tap_skip_all("cannot create a temporary folder"); return 0; }
  snprintf(path, sizeof path, "%s/state/sub/journal.db", dir);
  test_open_and_pragmas();
  test_append_and_read();
  test_readonly();
  test_newer_schema();
  test_compact();
  test_damage_and_checkpoint();
  test_latency();
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  ok(system(cmd) == 0, "clean up %s", dir);
  return tap_done();
}
