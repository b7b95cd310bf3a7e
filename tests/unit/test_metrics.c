/* Unit tests for host/core/metrics.c: definitions (names, re-declaration, conflicts),
 * counters, gauges and histograms, the text exposition (escaping, cumulative buckets,
 * +Inf, number formatting) and the limits, each an error naming it. */
#include "core/metrics.h"
#include "tap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static char *render(void) {
  buf_t b = {0};
  if (metrics_render(&b) < 0 || buf_append(&b, "", 1) < 0) return NULL;
  return b.data;
}

static int contains(const char *hay, const char *needle) { return hay && strstr(hay, needle) != NULL; }

static void definitions(void) {
  char err[256] = "";
  const char *l[] = {"service", "action"};
  metric_family_t *c = metrics_define("t_calls_total", METRIC_COUNTER, "Calls.", l, 2, NULL, 0, err, sizeof err);
  ok(c != NULL, "a counter with two labels is defined (%s)", err);
  ok(metrics_define("t_calls_total", METRIC_COUNTER, "Calls.", l, 2, NULL, 0, err, sizeof err) == c,
     "the same definition again returns the same family (a reloaded state)");
  ok(!metrics_define("t_calls_total", METRIC_GAUGE, "Calls.", l, 2, NULL, 0, err, sizeof err) &&
         contains(err, "already defined"),
     "a conflicting one is refused: %s", err);
  ok(!metrics_define("9bad", METRIC_GAUGE, "x", NULL, 0, NULL, 0, err, sizeof err) && contains(err, "not a metric name"),
     "a bad name is refused: %s", err);
  const char *le[] = {"le"};
  ok(!metrics_define("t_h", METRIC_GAUGE, "x", le, 1, NULL, 0, err, sizeof err) && contains(err, "reserved"),
     "the label le is reserved: %s", err);
  double down[] = {1, 0.5};
  ok(!metrics_define("t_h", METRIC_HISTOGRAM, "x", NULL, 0, down, 2, err, sizeof err) && contains(err, "increasing"),
     "buckets must increase: %s", err);
}

static void values(void) {
  char err[256] = "";
  metric_family_t *c = metrics_find("t_calls_total");
  const char *v1[] = {"sqs", "ReceiveMessage"}, *v2[] = {"ssm", "Put\"Par\\am\n"};
  ok(metrics_add(c, v1, 1, err, sizeof err) == 0 && metrics_add(c, v1, 2, err, sizeof err) == 0, "counter adds");
  ok(metrics_add(c, v1, -1, err, sizeof err) < 0 && contains(err, "only goes up"), "a counter never goes down: %s", err);
  ok(metrics_add(c, v2, 1, err, sizeof err) == 0, "a second label set");
  metric_family_t *g = metrics_define("t_up", METRIC_GAUGE, "Up.\nsecond \\ line", NULL, 0, NULL, 0, err, sizeof err);
  ok(g && metrics_set(g, NULL, 0.1, err, sizeof err) == 0, "gauge set");
  double b[] = {0.1, 1, 10};
  const char *hl[] = {"rule"}, *hv[] = {"staging"};
  metric_family_t *h = metrics_define("t_seconds", METRIC_HISTOGRAM, "Durations.", hl, 1, b, 3, err, sizeof err);
  ok(h && metrics_observe(h, hv, 0.05, err, sizeof err) == 0 && metrics_observe(h, hv, 5, err, sizeof err) == 0 &&
         metrics_observe(h, hv, 50, err, sizeof err) == 0,
     "histogram observations");
  ok(metrics_observe(h, hv, NAN, err, sizeof err) < 0, "NaN is refused");
  char *text = render();
  ok(contains(text, "# HELP t_calls_total Calls.\n# TYPE t_calls_total counter\n"), "HELP and TYPE lines");
  ok(contains(text, "t_calls_total{service=\"sqs\",action=\"ReceiveMessage\"} 3\n"), "a counter sample");
  ok(contains(text, "t_calls_total{service=\"ssm\",action=\"Put\\\"Par\\\\am\\n\"} 1\n"),
     "label values escape \", \\ and newline");
  ok(contains(text, "# HELP t_up Up.\\nsecond \\\\ line\n"), "HELP escapes newline and backslash");
  ok(contains(text, "t_up 0.1\n"), "the shortest decimal that reads back (0.1, not 0.10000000000000001)");
  ok(contains(text, "t_seconds_bucket{rule=\"staging\",le=\"0.1\"} 1\nt_seconds_bucket{rule=\"staging\",le=\"1\"} 1\n"
                    "t_seconds_bucket{rule=\"staging\",le=\"10\"} 2\nt_seconds_bucket{rule=\"staging\",le=\"+Inf\"} 3\n"
                    "t_seconds_sum{rule=\"staging\"} 55.05\nt_seconds_count{rule=\"staging\"} 3\n"),
     "histogram: cumulative buckets, +Inf, sum and count");
  free(text);
  metrics_clear(c);
  text = render();
  ok(!contains(text, "t_calls_total{") && contains(text, "# TYPE t_calls_total counter"),
     "clear drops the series, the family stays");
  free(text);
}

static void limits(void) {
  char err[256] = "", v[32];
  const char *l[] = {"id"};
  metric_family_t *f = metrics_define("t_many", METRIC_GAUGE, "x", l, 1, NULL, 0, err, sizeof err);
  int rc = 0;
  for (int i = 0; i <= METRICS_MAX_SERIES && rc == 0; i++) {
    snprintf(v, sizeof v, "%d", i);
    const char *vals[] = {v};
    rc = metrics_set(f, vals, i, err, sizeof err);
  }
  ok(rc < 0 && contains(err, "METRICS_MAX_SERIES"), "series past the limit are refused, naming it: %s", err);
  is_int(f->nseries, METRICS_MAX_SERIES, "and the first %d are kept", METRICS_MAX_SERIES);
}

int main(void) {
  definitions();
  values();
  limits();
  metrics_free_all();
  ok(metrics_family_count() == 0, "free_all empties the registry");
  printf("1..%d\n", tap_n);
  return tap_failed ? 1 : 0;
}
