/* AWS endpoint resolution for the services Rotator calls: partitions aws, aws-cn and
 * aws-us-gov, FIPS endpoints (AWS_USE_FIPS_ENDPOINT=true), and the SDK-standard overrides
 * AWS_ENDPOINT_URL_<SERVICE> and AWS_ENDPOINT_URL, which win over everything. */
#ifndef ROTATOR_AWS_ENDPOINT_H
#define ROTATOR_AWS_ENDPOINT_H
#include <stddef.h>

typedef enum { AWS_JSON_1_0, AWS_JSON_1_1, AWS_REST_JSON_1, AWS_QUERY } aws_protocol_t;

typedef struct {
  const char *name;          /* "dynamodb": the name scripts use */
  const char *env_id;        /* "DYNAMODB": AWS_ENDPOINT_URL_<env_id> */
  const char *signing_name;  /* SigV4 service */
  const char *host_prefix;   /* "dynamodb" in dynamodb.us-east-1.amazonaws.com */
  aws_protocol_t protocol;
  const char *target_prefix; /* X-Amz-Target prefix (JSON protocols), or NULL */
  const char *api_version;   /* query protocol Version, or NULL */
  int fips_regions;          /* which regions have a <prefix>-fips host; see aws/endpoint.c */
} aws_service_t;

const aws_service_t *aws_service(const char *name); /* NULL if unknown */

/* The partition of a region: "aws", "aws-cn" or "aws-us-gov". */
const char *aws_partition(const char *region);

/* Writes the endpoint URL (scheme://host[:port][/path], no trailing '/') into buf.
 * getenv_fn lets tests supply the environment (NULL: getenv). Returns 0, or -1 with a
 * message in err (unknown service, bad region, no FIPS endpoint there, too long). */
int aws_endpoint(const aws_service_t *svc, const char *region, const char *(*getenv_fn)(const char *),
                 char *buf, size_t len, char *err, size_t errlen);

#endif
