/* `rotator whoami`: the operator's first AWS debugging step. Resolves credentials and the
 * region exactly as aws.call does (one aws client, its credential provider) and prints
 * where they came from, the region and each service's endpoint; --call also asks STS
 * GetCallerIdentity who those credentials are. Never prints a secret. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/call.h"
#include "aws/creds/internal.h"
#include "core/loop.h"

static const char *const SERVICES[] = {"dynamodb", "ssm", "sqs", "backup", "sts"};

typedef struct {
  int call;
  const char *profile, *region;
} whoami_opts;

typedef struct {
  int creds_done, region_done;
  int creds_ok;
  char creds_err[CREDS_ERR_MAX];
  char region[CREDS_REGION_MAX];
  char region_err[CREDS_ERR_MAX];
  int call_done, call_ok;
  char account[64], arn[512], call_err[1024];
} whoami_state;

static void usage(FILE *f) {
  fputs("usage: rotator whoami [--call] [--profile NAME] [--region REGION]\n"
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
        "  AWS_PROFILE=staging rotator whoami --call\n",
        f);
}

static int usage_error(const char *what, const char *arg) {
  fprintf(stderr, "rotator whoami: %s%s%s\nTry 'rotator whoami --help'.\n", what, arg ? ": " : "",
          arg ? arg : "");
  return 2;
}

/* 0 = run, 1 = help printed, 2 = usage error. argv[0] is the command name. */
static int parse_args(int argc, char **argv, whoami_opts *o) {
  memset(o, 0, sizeof *o);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout), 1;
    if (!strcmp(a, "--call")) { o->call = 1; continue; }
    const char **dst = !strcmp(a, "--profile") ? &o->profile : !strcmp(a, "--region") ? &o->region : NULL;
    if (!dst) return usage_error("unknown argument", a);
    if (i + 1 >= argc || !*argv[i + 1]) return usage_error("missing value for", a);
    *dst = argv[++i];
  }
  return 0;
}

/* ---- resolution on the loop ---- */

static void on_creds(void *ud, const creds_t *c, const char *err) {
  whoami_state *s = ud;
  s->creds_done = 1;
  s->creds_ok = c != NULL;
  if (!c) snprintf(s->creds_err, sizeof s->creds_err, "%s", err);
}

static void on_region(void *ud, const char *region, const char *err) {
  whoami_state *s = ud;
  s->region_done = 1;
  if (region) snprintf(s->region, sizeof s->region, "%s", region);
  else snprintf(s->region_err, sizeof s->region_err, "%s", err);
}

static void on_identity(void *ud, const aws_result_t *r) {
  whoami_state *s = ud;
  s->call_done = 1;
  if (!r->ok) {
    snprintf(s->call_err, sizeof s->call_err, "%s: %s (HTTP %d)", r->err->code, r->err->message, r->status);
    return;
  }
  s->call_ok = creds_xml_get(r->body, r->body_len, "Account", s->account, sizeof s->account) == 0 &&
               creds_xml_get(r->body, r->body_len, "Arn", s->arn, sizeof s->arn) == 0;
  if (!s->call_ok) snprintf(s->call_err, sizeof s->call_err, "no Account/Arn in the STS answer");
}

/* Runs the loop until *flag is set; 0, or -1 on a loop failure. */
static int run_until(loop_t *loop, const int *flag) {
  while (!*flag)
    if (loop_run_once(loop, -1) < 0) return -1;
  return 0;
}

static int resolve(loop_t *loop, aws_client_t *client, const whoami_opts *o, whoami_state *s) {
  creds_provider_t *p = aws_client_creds(client);
  if (creds_get(p, on_creds, s) != 0) return -1;
  if (o->region) {
    snprintf(s->region, sizeof s->region, "%s", o->region);
    s->region_done = 1;
  } else if (creds_region(p, on_region, s) != 0) {
    return -1;
  }
  if (run_until(loop, &s->creds_done) < 0) return -1;
  return run_until(loop, &s->region_done);
}

static int call_identity(loop_t *loop, aws_client_t *client, whoami_state *s) {
  static const char body[] = "Action=GetCallerIdentity&Version=2011-06-15";
  aws_call_t call = {.service = "sts", .action = "GetCallerIdentity", .region = s->region,
                     .body = body, .body_len = sizeof body - 1};
  if (!aws_call_start(client, &call, on_identity, s, s->call_err, sizeof s->call_err)) {
    s->call_done = 1;
    return 0;
  }
  return run_until(loop, &s->call_done);
}

/* ---- output ---- */

static void print_settings(const whoami_opts *o) {
  char cfg[1024], cr[1024];
  const char *env = getenv("AWS_PROFILE");
  const char *profile = o->profile ? o->profile : env && *env ? env : "default";
  printf("profile      %s%s\n", profile, o->profile ? " (--profile)" : env && *env ? " (AWS_PROFILE)" : "");
  if (creds_file_paths(cfg, sizeof cfg, cr, sizeof cr) == 0)
    printf("files        %s, %s\n", cfg, cr);
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

static int report(aws_client_t *client, const whoami_opts *o, const whoami_state *s) {
  char desc[CREDS_ERR_MAX];
  int rc = 0;
  print_settings(o);
  if (s->creds_ok) printf("credentials  %s\n", creds_describe(aws_client_creds(client), desc, sizeof desc));
  else printf("credentials  error: %s\n", s->creds_err), rc = 1;
  if (s->region[0]) printf("region       %s%s\n", s->region, region_origin(o));
  else printf("region       error: %s\n", s->region_err), rc = 1;
  if (s->region[0]) print_endpoints(s->region);
  if (!o->call) return rc;
  if (s->call_ok) printf("account      %s\narn          %s\n", s->account, s->arn);
  else if (s->call_done) printf("identity     error: sts.GetCallerIdentity: %s\n", s->call_err), rc = 1;
  else printf("identity     not asked: credentials and region are needed first\n"), rc = 1;
  return rc;
}

static int whoami(const whoami_opts *o) {
  whoami_state s;
  memset(&s, 0, sizeof s);
  loop_t *loop = loop_new();
  aws_client_t *client = loop ? aws_client_new(loop) : NULL;
  int rc = 1;
  if (!client) {
    fprintf(stderr, "rotator whoami: cannot set up the event loop and HTTP client\n");
  } else if (resolve(loop, client, o, &s) < 0 ||
             (o->call && s.creds_ok && s.region[0] && call_identity(loop, client, &s) < 0)) {
    fprintf(stderr, "rotator whoami: event loop failure or out of memory\n");
  } else {
    rc = report(client, o, &s);
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
  return whoami(&o);
}
