/* `rotator whoami`: the operator's first AWS debugging step. Resolves credentials and the
 * region exactly as aws.call does (one aws client, its credential provider) and prints
 * where they came from, the region and each service's endpoint; --call also asks STS
 * GetCallerIdentity who those credentials are. Never prints a secret. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/client.h"
#include "cli/args.h"
#include "cli/chain.h"
#include "cli/cli.h"
#include "core/loop.h"
#include "util/xml_get.h"

static const char *const SERVICES[] = {"dynamodb", "ssm", "sqs", "backup", "sts"};

typedef struct {
  int call;
  const char *profile, *region;
} whoami_opts;

typedef struct {
  chain_answer_t chain;
  int call_done, call_ok;
  char account[64], arn[512], call_err[2304];
} whoami_state;

static const char HELP[] =
    "usage: rotator whoami [--call] [--profile NAME] [--region REGION]\n"
    "\n"
    "Resolves AWS credentials and the region the way every AWS call of Rotator does,\n"
    "and prints where the credentials came from (source, access key id, expiry; never\n"
    "a secret), the region and the endpoint each service would use. Credentials come\n"
    "from the environment, web identity, AWS_PROFILE and the shared ~/.aws files, or\n"
    "container / EC2 instance roles; AWS_ENDPOINT_URL[_<SERVICE>] overrides endpoints.\n"
    "\n"
    "  --call            also call STS GetCallerIdentity and print the account and ARN\n"
    "  --profile NAME    use this profile (as AWS_PROFILE=NAME would)\n"
    "  --region R        use this region instead of resolving it\n"
    "\n"
    "Exit status: 0 when everything resolved (and the call succeeded), 1 otherwise.\n"
    "\n"
    "Example:\n"
    "  AWS_PROFILE=staging rotator whoami --call\n";

enum { O_CALL = 256, O_PROFILE, O_REGION };

static const struct option OPTIONS[] = {{"call", no_argument, NULL, O_CALL},
                                        {"profile", required_argument, NULL, O_PROFILE},
                                        {"region", required_argument, NULL, O_REGION},
                                        {NULL, 0, NULL, 0}};

static int on_option(void *ud, int id, const char *arg) {
  whoami_opts *o = ud;
  if (id == O_CALL) return o->call = 1, 0;
  if (!*arg) return cli_usage_error("whoami", "empty value for", id == O_PROFILE ? "--profile" : "--region");
  if (id == O_PROFILE) o->profile = arg;
  else o->region = arg;
  return 0;
}

/* 0 = run, 1 = help printed, 2 = usage error. argv[0] is the command name. */
static int parse_args(int argc, char **argv, whoami_opts *o) {
  int first;
  memset(o, 0, sizeof *o);
  int rc = cli_parse(argc, argv, OPTIONS, HELP, on_option, o, &first);
  if (rc == 0 && first < argc) return cli_usage_error("whoami", "unexpected argument", argv[first]);
  return rc;
}

/* ---- STS GetCallerIdentity ---- */

static void on_identity(void *ud, const aws_result_t *r) {
  whoami_state *s = ud;
  s->call_done = 1;
  if (!r->ok) {
    snprintf(s->call_err, sizeof s->call_err, "%s: %s (HTTP %d)", r->err->code, r->err->message, r->status);
    return;
  }
  s->call_ok = xml_get(r->body, r->body_len, "Account", s->account, sizeof s->account) == 0 &&
               xml_get(r->body, r->body_len, "Arn", s->arn, sizeof s->arn) == 0;
  if (!s->call_ok) snprintf(s->call_err, sizeof s->call_err, "no Account/Arn in the STS answer");
}

static int call_identity(loop_t *loop, aws_client_t *client, whoami_state *s) {
  static const char body[] = "Action=GetCallerIdentity&Version=2011-06-15";
  aws_call_t call = {.service = "sts", .action = "GetCallerIdentity", .region = s->chain.region,
                     .body = body, .body_len = sizeof body - 1};
  if (!aws_call_start(client, &call, on_identity, s, s->call_err, sizeof s->call_err)) {
    s->call_done = 1;
    return 0;
  }
  while (!s->call_done)
    if (loop_run_once(loop, -1) < 0) return -1;
  return 0;
}

/* ---- output ---- */

/* The settings as given: the files are named the way the chain will look them up. */
static void print_settings(const whoami_opts *o) {
  const char *env = getenv("AWS_PROFILE"), *cfg = getenv("AWS_CONFIG_FILE");
  const char *cr = getenv("AWS_SHARED_CREDENTIALS_FILE");
  const char *profile = o->profile ? o->profile : env && *env ? env : "default";
  printf("profile      %s%s\n", profile, o->profile ? " (--profile)" : env && *env ? " (AWS_PROFILE)" : "");
  printf("files        %s, %s\n", cfg && *cfg ? cfg : "~/.aws/config",
         cr && *cr ? cr : "~/.aws/credentials");
}

/* Which setting the resolved region most likely came from (the chain's order). */
static const char *region_origin(const whoami_opts *o) {
  const char *r = getenv("AWS_REGION"), *d = getenv("AWS_DEFAULT_REGION");
  if (o->region) return " (--region)";
  if (r && *r) return " (AWS_REGION)";
  if (d && *d) return " (AWS_DEFAULT_REGION)";
  return " (profile region, or EC2 instance metadata)";
}

static void print_endpoints(const char *region) {
  for (size_t i = 0; i < sizeof SERVICES / sizeof *SERVICES; i++) {
    char url[2048], err[256];
    const char *label = i ? "            " : "endpoints   ";
    if (aws_endpoint(aws_service(SERVICES[i]), region, NULL, url, sizeof url, err, sizeof err) == 0)
      printf("%s %-9s %s\n", label, SERVICES[i], url);
    else
      printf("%s %-9s (%s)\n", label, SERVICES[i], err);
  }
}

static int report_identity(const whoami_state *s) {
  if (s->call_ok) return printf("account      %s\narn          %s\n", s->account, s->arn), 0;
  if (s->call_done) printf("identity     error: sts.GetCallerIdentity: %s\n", s->call_err);
  else printf("identity     not asked: credentials and region are needed first\n");
  return 1;
}

static int report(const whoami_opts *o, const whoami_state *s) {
  const chain_answer_t *a = &s->chain;
  int rc = 0;
  print_settings(o);
  if (a->creds_ok) printf("credentials  %s\n", a->describe);
  else printf("credentials  error: %s\n", a->creds_err), rc = 1;
  if (a->region[0]) printf("region       %s%s\n", a->region, region_origin(o));
  else printf("region       error: %s\n", a->region_err), rc = 1;
  if (a->region[0]) print_endpoints(a->region);
  if (o->call && report_identity(s)) rc = 1;
  return rc;
}

static int whoami(const whoami_opts *o, whoami_state *s) {
  loop_t *loop = loop_new();
  aws_client_t *client = loop ? aws_client_new(loop) : NULL;
  int rc = 1;
  if (!client) {
    fprintf(stderr, "rotator whoami: cannot set up the event loop and HTTP client\n");
  } else if (chain_resolve(loop, aws_client_creds(client), o->region, &s->chain) < 0 ||
             (o->call && !chain_error(&s->chain) && call_identity(loop, client, s) < 0)) {
    fprintf(stderr, "rotator whoami: %s\n", s->chain.creds_err[0] ? s->chain.creds_err : "event loop failure");
  } else {
    rc = report(o, s);
    if (fflush(stdout) != 0) rc = 1;
  }
  aws_client_free(client);
  if (loop) loop_free(loop);
  return rc;
}

int cmd_whoami(int argc, char **argv) {
  whoami_opts o;
  int rc = parse_args(argc, argv, &o);
  if (rc) return rc == 1 ? 0 : 2;
  if (o.profile && setenv("AWS_PROFILE", o.profile, 1) != 0) {
    fprintf(stderr, "rotator whoami: cannot set AWS_PROFILE\n");
    return 1;
  }
  whoami_state *s = calloc(1, sizeof *s);
  if (!s) {
    fprintf(stderr, "rotator whoami: out of memory\n");
    return 1;
  }
  rc = whoami(&o, s);
  chain_clear(&s->chain);
  free(s);
  return rc;
}
