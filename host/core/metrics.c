/* The metrics registry and its text exposition; see metrics.h. */
#include "core/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

static struct {
  metric_family_t *fam[METRICS_MAX_FAMILIES];
  size_t n;
} R;

static const char *const TYPE_NAMES[] = {"counter", "gauge", "histogram"};
const char *metrics_type_name(metric_type_t type) { return TYPE_NAMES[type]; }

static int valid_name(const char *s, int colon) {
  if (!s || !*s || (*s >= '0' && *s <= '9')) return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '_' || (colon && *s == ':')))
      return 0;
  return 1;
}

metric_family_t *metrics_find(const char *name) {
  for (size_t i = 0; i < R.n; i++)
    if (strcmp(R.fam[i]->name, name) == 0) return R.fam[i];
  return NULL;
}

size_t metrics_family_count(void) { return R.n; }
metric_family_t *metrics_family_at(size_t i) { return i < R.n ? R.fam[i] : NULL; }

/* Same type, labels and buckets: a re-declaration of the same family. */
static int same_shape(const metric_family_t *f, metric_type_t type, const char *const *labels,
                      size_t nlabels, const double *bounds, size_t nbounds) {
  if (f->type != type || f->nlabels != nlabels || f->nbuckets != nbounds) return 0;
  for (size_t i = 0; i < nlabels; i++)
    if (strcmp(f->label[i], labels[i]) != 0) return 0;
  for (size_t i = 0; i < nbounds; i++)
    if (f->bound[i] != bounds[i]) return 0;
  return 1;
}

static void family_free(metric_family_t *f) {
  if (!f) return;
  metrics_clear(f);
  free(f->series);
  for (size_t i = 0; i < f->nlabels; i++) free(f->label[i]);
  free(f->name);
  free(f->help);
  free(f);
}

static const char *check_definition(const char *name, metric_type_t type, const char *const *labels,
                                    size_t nlabels, const double *bounds, size_t nbounds) {
  if (!valid_name(name, 1)) return "is not a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)";
  if (nlabels > METRICS_MAX_LABELS) return "has more labels than METRICS_MAX_LABELS (4)";
  for (size_t i = 0; i < nlabels; i++)
    if (!valid_name(labels[i], 0) || strncmp(labels[i], "__", 2) == 0 || strcmp(labels[i], "le") == 0)
      return "has a label name that is not [a-zA-Z_][a-zA-Z0-9_]* (or is reserved: __*, le)";
  if (type != METRIC_HISTOGRAM && nbounds) return "has buckets but is not a histogram";
  if (type == METRIC_HISTOGRAM && !nbounds) return "is a histogram without buckets";
  if (nbounds > METRICS_MAX_BUCKETS) return "has more buckets than METRICS_MAX_BUCKETS (24)";
  for (size_t i = 0; i < nbounds; i++)
    if (!isfinite(bounds[i]) || (i && bounds[i] <= bounds[i - 1]))
      return "has buckets that are not finite and increasing";
  return NULL;
}

metric_family_t *metrics_define(const char *name, metric_type_t type, const char *help,
                                const char *const *labels, size_t nlabels, const double *bounds,
                                size_t nbounds, char *err, size_t errlen) {
  const char *why = check_definition(name, type, labels, nlabels, bounds, nbounds);
  if (why) {
    snprintf(err, errlen, "metric '%s' %s", name ? name : "(null)", why);
    return NULL;
  }
  metric_family_t *f = metrics_find(name);
  if (f) {
    if (same_shape(f, type, labels, nlabels, bounds, nbounds)) return f;
    snprintf(err, errlen, "metric '%s' is already defined with another type, labels or buckets", name);
    return NULL;
  }
  if (R.n == METRICS_MAX_FAMILIES) {
    snprintf(err, errlen, "metric '%s': the registry is full (METRICS_MAX_FAMILIES %d)", name,
             METRICS_MAX_FAMILIES);
    return NULL;
  }
  f = calloc(1, sizeof *f);
  if (!f) goto oom;
  f->type = type;
  f->name = strdup(name);
  f->help = strdup(help ? help : "");
  if (!f->name || !f->help) goto oom;
  for (; f->nlabels < nlabels; f->nlabels++)
    if (!(f->label[f->nlabels] = strdup(labels[f->nlabels]))) goto oom;
  f->nbuckets = nbounds;
  if (nbounds) memcpy(f->bound, bounds, nbounds * sizeof *bounds);
  R.fam[R.n++] = f;
  if (!nlabels && !metrics_series(f, NULL, err, errlen)) return NULL; /* shown as 0 from the start */
  return f;
oom:
  family_free(f);
  snprintf(err, errlen, "metric '%s': out of memory", name);
  return NULL;
}

/* ---- series ---- */

static int labels_match(const metric_series_t *s, const char *const *values, size_t n) {
  const char *p = s->labels;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(p, values[i]) != 0) return 0;
    p += strlen(p) + 1;
  }
  return 1;
}

static int series_init(metric_family_t *f, metric_series_t *s, const char *const *values) {
  memset(s, 0, sizeof *s);
  for (size_t i = 0; i < f->nlabels; i++) s->labels_len += strlen(values[i]) + 1;
  s->labels = malloc(s->labels_len ? s->labels_len : 1);
  if (!s->labels) return -1;
  char *p = s->labels;
  for (size_t i = 0; i < f->nlabels; i++) {
    size_t l = strlen(values[i]) + 1;
    memcpy(p, values[i], l);
    p += l;
  }
  if (f->type == METRIC_HISTOGRAM && !(s->buckets = calloc(f->nbuckets, sizeof *s->buckets))) {
    free(s->labels);
    return -1;
  }
  return 0;
}

metric_series_t *metrics_series(metric_family_t *f, const char *const *values, char *err, size_t errlen) {
  for (size_t i = 0; i < f->nseries; i++)
    if (labels_match(&f->series[i], values, f->nlabels)) return &f->series[i];
  if (f->nseries == METRICS_MAX_SERIES) {
    snprintf(err, errlen, "metric '%s' has METRICS_MAX_SERIES (%d) label sets: a label takes too many values",
             f->name, METRICS_MAX_SERIES);
    return NULL;
  }
  if (f->nseries == f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 8;
    metric_series_t *s = realloc(f->series, cap * sizeof *s);
    if (!s) goto oom;
    f->series = s;
    f->cap = cap;
  }
  if (series_init(f, &f->series[f->nseries], values) < 0) goto oom;
  return &f->series[f->nseries++];
oom:
  snprintf(err, errlen, "metric '%s': out of memory", f->name);
  return NULL;
}

int metrics_add(metric_family_t *f, const char *const *values, double v, char *err, size_t errlen) {
  if (f->type == METRIC_HISTOGRAM || (f->type == METRIC_COUNTER && !(v >= 0))) {
    snprintf(err, errlen, "metric '%s': %s", f->name,
             f->type == METRIC_HISTOGRAM ? "a histogram takes observe(), not add" : "a counter only goes up");
    return -1;
  }
  metric_series_t *s = metrics_series(f, values, err, errlen);
  if (!s) return -1;
  s->value += v;
  return 0;
}

int metrics_set(metric_family_t *f, const char *const *values, double v, char *err, size_t errlen) {
  if (f->type != METRIC_GAUGE) {
    snprintf(err, errlen, "metric '%s' is a %s: only a gauge is set", f->name, metrics_type_name(f->type));
    return -1;
  }
  metric_series_t *s = metrics_series(f, values, err, errlen);
  if (!s) return -1;
  s->value = v;
  return 0;
}

int metrics_observe(metric_family_t *f, const char *const *values, double v, char *err, size_t errlen) {
  if (f->type != METRIC_HISTOGRAM || isnan(v)) {
    snprintf(err, errlen, "metric '%s': %s", f->name,
             f->type != METRIC_HISTOGRAM ? "only a histogram takes observations" : "NaN observed");
    return -1;
  }
  metric_series_t *s = metrics_series(f, values, err, errlen);
  if (!s) return -1;
  s->count++;
  s->value += v;
  for (size_t i = 0; i < f->nbuckets; i++)
    if (v <= f->bound[i]) {
      s->buckets[i]++;
      break;
    }
  return 0;
}

void metrics_clear(metric_family_t *f) {
  for (size_t i = 0; i < f->nseries; i++) {
    free(f->series[i].labels);
    free(f->series[i].buckets);
  }
  f->nseries = 0;
}

void metrics_count(const char *name, const char *const *values, double v) {
  static char warned[METRICS_MAX_FAMILIES];
  char err[256];
  metric_family_t *f = metrics_find(name);
  if (!f) return; /* not declared in this process (e.g. a one-shot command) */
  if (metrics_add(f, values, v, err, sizeof err) == 0) return;
  for (size_t i = 0; i < R.n; i++)
    if (R.fam[i] == f && !warned[i]) {
      warned[i] = 1;
      log_msg(LOG_WARN, "metrics.error", "%s (later errors of this metric are not logged)", err);
    }
}

/* ---- exposition ---- */

static int put(buf_t *b, const char *s) { return buf_append(b, s, strlen(s)); }

/* HELP escapes \ and newline; label values also escape ". */
static int put_escaped(buf_t *b, const char *s, int quote) {
  for (; *s; s++) {
    const char *e = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n" : quote && *s == '"' ? "\\\"" : NULL;
    if (e ? put(b, e) : buf_append(b, s, 1)) return -1;
  }
  return 0;
}

/* The shortest decimal that reads back as the same double; +Inf, -Inf, NaN as Go writes them. */
static void fmt_value(char *out, size_t n, double v) {
  if (isnan(v)) snprintf(out, n, "NaN");
  else if (isinf(v)) snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
  else {
    snprintf(out, n, "%.15g", v);
    if (strtod(out, NULL) != v) snprintf(out, n, "%.17g", v);
  }
}

static int put_value(buf_t *b, double v) {
  char s[40];
  fmt_value(s, sizeof s, v);
  return put(b, s);
}

/* name{l1="v1",...[,le="x"]} value */
static int put_sample(buf_t *b, const metric_family_t *f, const char *suffix, const metric_series_t *s,
                      const char *le, double v) {
  if (put(b, f->name) || put(b, suffix)) return -1;
  if (f->nlabels || le) {
    if (put(b, "{")) return -1;
    const char *p = s->labels;
    for (size_t i = 0; i < f->nlabels; i++, p += strlen(p) + 1)
      if ((i && put(b, ",")) || put(b, f->label[i]) || put(b, "=\"") || put_escaped(b, p, 1) || put(b, "\""))
        return -1;
    if (le && ((f->nlabels && put(b, ",")) || put(b, "le=\"") || put(b, le) || put(b, "\""))) return -1;
    if (put(b, "}")) return -1;
  }
  return put(b, " ") || put_value(b, v) || put(b, "\n");
}

static int put_histogram(buf_t *b, const metric_family_t *f, const metric_series_t *s) {
  uint64_t cum = 0;
  char le[40];
  for (size_t i = 0; i < f->nbuckets; i++) {
    cum += s->buckets[i];
    fmt_value(le, sizeof le, f->bound[i]);
    if (put_sample(b, f, "_bucket", s, le, (double)cum)) return -1;
  }
  return put_sample(b, f, "_bucket", s, "+Inf", (double)s->count) || put_sample(b, f, "_sum", s, NULL, s->value) ||
         put_sample(b, f, "_count", s, NULL, (double)s->count);
}

static int render_family(buf_t *b, const metric_family_t *f) {
  if (put(b, "# HELP ") || put(b, f->name) || put(b, " ") || put_escaped(b, f->help, 0) || put(b, "\n# TYPE ") ||
      put(b, f->name) || put(b, " ") || put(b, metrics_type_name(f->type)) || put(b, "\n"))
    return -1;
  for (size_t i = 0; i < f->nseries; i++) {
    const metric_series_t *s = &f->series[i];
    if (f->type == METRIC_HISTOGRAM ? put_histogram(b, f, s) : put_sample(b, f, "", s, NULL, s->value)) return -1;
  }
  return 0;
}

int metrics_render(buf_t *out) {
  for (size_t i = 0; i < R.n; i++)
    if (render_family(out, R.fam[i])) return -1;
  return 0;
}

void metrics_free_all(void) {
  for (size_t i = 0; i < R.n; i++) family_free(R.fam[i]);
  R.n = 0;
}
