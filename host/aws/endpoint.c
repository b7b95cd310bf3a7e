/* Endpoint resolution: overrides first, then the partition's DNS suffix, then FIPS. */
#include "aws/endpoint.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Where a <prefix>-fips.<region> host exists (from AWS's FIPS endpoint list):
 *  FIPS_US     commercial us-* regions and all of GovCloud
 *  FIPS_US_CA  as FIPS_US plus ca-* (DynamoDB, SSM, Backup, SNS)
 * No service has FIPS endpoints in aws-cn. In GovCloud, SQS, STS and Application Auto
 * Scaling answer FIPS on their regular host name. */
enum { FIPS_US = 1, FIPS_US_CA = 2 };

static const aws_service_t SERVICES[] = {
    {"dynamodb", "DYNAMODB", "dynamodb", "dynamodb", AWS_JSON_1_0, "DynamoDB_20120810", NULL, FIPS_US_CA},
    {"sqs", "SQS", "sqs", "sqs", AWS_JSON_1_0, "AmazonSQS", NULL, FIPS_US},
    {"ssm", "SSM", "ssm", "ssm", AWS_JSON_1_1, "AmazonSSM", NULL, FIPS_US_CA},
    {"backup", "BACKUP", "backup", "backup", AWS_REST_JSON_1, NULL, NULL, FIPS_US_CA},
    {"sts", "STS", "sts", "sts", AWS_QUERY, NULL, "2011-06-15", FIPS_US},
    {"sns", "SNS", "sns", "sns", AWS_QUERY, NULL, "2010-03-31", FIPS_US_CA},
    {"application-autoscaling", "APPLICATION_AUTO_SCALING", "application-autoscaling",
     "application-autoscaling", AWS_JSON_1_1, "AnyScaleFrontendService", NULL, FIPS_US},
    {"events", "EVENTBRIDGE", "events", "events", AWS_JSON_1_1, "AWSEvents", NULL, FIPS_US},
};

const aws_service_t *aws_service(const char *name) {
  if (!name) return NULL;
  for (size_t i = 0; i < sizeof SERVICES / sizeof SERVICES[0]; i++)
    if (strcmp(SERVICES[i].name, name) == 0) return &SERVICES[i];
  return NULL;
}

const char *aws_partition(const char *region) {
  if (strncmp(region, "cn-", 3) == 0) return "aws-cn";
  if (strncmp(region, "us-gov-", 7) == 0) return "aws-us-gov";
  return "aws";
}

static int valid_region(const char *r) {
  size_t n = strlen(r);
  if (n == 0 || n > 32) return 0;
  for (size_t i = 0; i < n; i++)
    if (!(islower((unsigned char)r[i]) || isdigit((unsigned char)r[i]) || r[i] == '-')) return 0;
  return 1;
}

static const char *env(const char *(*getenv_fn)(const char *), const char *name) {
  const char *v = getenv_fn ? getenv_fn(name) : getenv(name);
  return v && *v ? v : NULL;
}

static int copy_url(const char *url, char *buf, size_t len, char *err, size_t errlen) {
  size_t n = strlen(url);
  while (n > 0 && url[n - 1] == '/') n--;
  if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
    snprintf(err, errlen, "endpoint override '%.100s' must start with http:// or https://", url);
    return -1;
  }
  if (n >= len) {
    snprintf(err, errlen, "endpoint override is too long");
    return -1;
  }
  memcpy(buf, url, n);
  buf[n] = '\0';
  return 0;
}

static int fips_host(const aws_service_t *svc, const char *region, const char *part, char *buf,
                     size_t len, char *err, size_t errlen) {
  int gov = strcmp(part, "aws-us-gov") == 0;
  int ok = gov || strncmp(region, "us-", 3) == 0 ||
           (svc->fips_regions == FIPS_US_CA && strncmp(region, "ca-", 3) == 0);
  if (strcmp(part, "aws-cn") == 0 || !ok) {
    snprintf(err, errlen, "%s has no FIPS endpoint in %s (AWS_USE_FIPS_ENDPOINT=true); "
             "set AWS_ENDPOINT_URL_%s to choose one", svc->name, region, svc->env_id);
    return -1;
  }
  const char *fmt = "https://%s-fips.%s.amazonaws.com";
  if (gov && (strcmp(svc->name, "sqs") == 0 || strcmp(svc->name, "sts") == 0 ||
              strcmp(svc->name, "application-autoscaling") == 0))
    fmt = "https://%s.%s.amazonaws.com";
  int n = snprintf(buf, len, fmt, svc->host_prefix, region);
  return n < 0 || (size_t)n >= len ? -1 : 0;
}

int aws_endpoint(const aws_service_t *svc, const char *region, const char *(*getenv_fn)(const char *),
                 char *buf, size_t len, char *err, size_t errlen) {
  char name[64];
  const char *v;
  if (!svc) {
    snprintf(err, errlen, "unknown service");
    return -1;
  }
  snprintf(name, sizeof name, "AWS_ENDPOINT_URL_%s", svc->env_id);
  if ((v = env(getenv_fn, name)) || (v = env(getenv_fn, "AWS_ENDPOINT_URL")))
    return copy_url(v, buf, len, err, errlen);
  if (!region || !valid_region(region)) {
    snprintf(err, errlen, "invalid or missing region '%.40s' (set AWS_REGION)", region ? region : "");
    return -1;
  }
  const char *part = aws_partition(region);
  v = env(getenv_fn, "AWS_USE_FIPS_ENDPOINT");
  if (v && strcasecmp(v, "true") == 0) return fips_host(svc, region, part, buf, len, err, errlen);
  const char *suffix = strcmp(part, "aws-cn") == 0 ? "amazonaws.com.cn" : "amazonaws.com";
  int n = snprintf(buf, len, "https://%s.%s.%s", svc->host_prefix, region, suffix);
  if (n < 0 || (size_t)n >= len) {
    snprintf(err, errlen, "endpoint too long");
    return -1;
  }
  return 0;
}
