/* The process's metrics registry: counters, gauges and histograms with labels, rendered
 * in the Prometheus text exposition format (version 0.0.4). One registry per process, so
 * the figures outlive a hot reload (each Lua state reaches it through the `metrics`
 * module, the C layers directly).
 *
 * A family is defined once by name; defining it again with the same type, labels and
 * buckets returns the same family (a reloaded state re-declares what it uses), anything
 * else is an error. A series is one set of label values; it is created on first use.
 * Bounds, each an error naming the limit, never a silent drop: METRICS_MAX_FAMILIES
 * families, METRICS_MAX_SERIES series per family, METRICS_MAX_LABELS labels,
 * METRICS_MAX_BUCKETS buckets. */
#ifndef ROTATOR_METRICS_H
#define ROTATOR_METRICS_H
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define METRICS_MAX_FAMILIES 128
#define METRICS_MAX_SERIES 1000
#define METRICS_MAX_LABELS 4
#define METRICS_MAX_BUCKETS 24

typedef enum { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM } metric_type_t;

typedef struct {
  char *labels;       /* the label values, each NUL-terminated, one after the other */
  size_t labels_len;
  double value;       /* counter or gauge; a histogram's sum */
  uint64_t count;     /* histogram: observations */
  uint64_t *buckets;  /* histogram: observations <= bound[i] (not cumulative) */
} metric_series_t;

typedef struct {
  char *name, *help;
  metric_type_t type;
  size_t nlabels;
  char *label[METRICS_MAX_LABELS];
  size_t nbuckets;
  double bound[METRICS_MAX_BUCKETS];
  metric_series_t *series;
  size_t nseries, cap;
} metric_family_t;

/* The family, or NULL with a message in err (a bad name, a conflicting definition, a limit). */
metric_family_t *metrics_define(const char *name, metric_type_t type, const char *help,
                                const char *const *labels, size_t nlabels, const double *bounds,
                                size_t nbounds, char *err, size_t errlen);
metric_family_t *metrics_find(const char *name);
size_t metrics_family_count(void);
metric_family_t *metrics_family_at(size_t i);
const char *metrics_type_name(metric_type_t type);

/* The series for these label values (family->nlabels of them), created if new; NULL with
 * err at the series limit or out of memory. */
metric_series_t *metrics_series(metric_family_t *f, const char *const *values, char *err, size_t errlen);

/* Counter: v >= 0 added. Gauge: v added (may be negative). */
int metrics_add(metric_family_t *f, const char *const *values, double v, char *err, size_t errlen);
int metrics_set(metric_family_t *f, const char *const *values, double v, char *err, size_t errlen);
int metrics_observe(metric_family_t *f, const char *const *values, double v, char *err, size_t errlen);
/* Drops every series of the family (a gauge recomputed from scratch at each scrape). */
void metrics_clear(metric_family_t *f);

/* By name, for the C layers; errors are logged once per family (metrics.error). */
void metrics_count(const char *name, const char *const *values, double v);

/* Appends the whole registry in the text format. 0, or -1 out of memory. */
int metrics_render(buf_t *out);
/* Frees every family (at exit, so leak checkers see a clean process). */
void metrics_free_all(void);

#endif
