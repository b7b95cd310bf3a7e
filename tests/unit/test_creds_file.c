/* Shared config/credentials files: INI parsing, profile resolution, role chains, loop
 * detection, and the error messages for missing profiles and unreadable files. Real files
 * in a temporary directory. Also the JSON/XML field readers (util/json_get, util/xml_get). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aws/creds/internal.h"
#include "tap.h"

static char dir[256], cfg_path[320], cred_path[320];

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) { perror(path); exit(2); }
  fputs(text, f);
  if (fclose(f) != 0) { perror(path); exit(2); }
}

static int resolve(const char *profile, int explicit_, creds_plan_t *plan, char *err, size_t len) {
  plan_input_t in = {cfg_path, cred_path, profile, explicit_};
  return creds_plan_resolve(&in, plan, err, len);
}

static void test_ini(void) {
  const char *text =
      "# comment\n"
      "; another\n"
      "[default]\r\n"
      "region = us-west-2 ; trailing comment\n"
      "[profile dev]\n"
      "Region=eu-west-1\n"
      "s3 =\n"
      "  max_concurrent_requests = 10\n"
      "[sso-session x]\n"
      "sso_region = us-east-1\n"
      "[profile   spaced  ]\n"
      "a = b=c\n"
      "[plain]\n"
      "k = v\n";
  ini_file_t *f = ini_parse(text, strlen(text), 1);
  ok(f != NULL, "config parses");
  is_str(ini_get(f, "default", "region"), "us-west-2", "default region, inline comment stripped");
  is_str(ini_get(f, "dev", "region"), "eu-west-1", "[profile dev], key case-insensitive");
  ok(ini_get(f, "dev", "max_concurrent_requests") == NULL, "sub-properties are not profile keys");
  ok(!ini_has_profile(f, "x") && !ini_has_profile(f, "sso-session x"), "sso-session is not a profile");
  is_str(ini_get(f, "spaced", "a"), "b=c", "value keeps later '=', name trimmed");
  ok(!ini_has_profile(f, "plain"), "bare [name] in config is not a profile");
  ini_free(f);

  const char *creds = "[dev]\naws_access_key_id = AKIDDEV\naws_access_key_id = AKIDDEV2\n[profile x]\nk=v\n";
  f = ini_parse(creds, strlen(creds), 0);
  is_str(ini_get(f, "dev", "aws_access_key_id"), "AKIDDEV2", "credentials [dev]: last value wins");
  ok(ini_has_profile(f, "profile x"), "credentials file takes section names literally");
  ini_free(f);
}

static void test_static_and_missing(void) {
  char err[CREDS_ERR_MAX];
  creds_plan_t plan;
  write_file(cfg_path, "[default]\nregion = us-east-2\n[profile dev]\nregion = eu-west-1\n"
                       "[profile proc]\ncredential_process = /bin/echo hi\n[profile half]\naws_access_key_id = AKIDHALF\n");
  write_file(cred_path, "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = SECRETDEFAULT\n"
                        "[dev]\naws_access_key_id = AKIDDEV\naws_secret_access_key = SECRETDEV\naws_session_token = TOK\n");
  is_int(resolve("default", 0, &plan, err, sizeof err), PLAN_OK, "default profile resolves");
  is_int(plan.kind, PLAN_STATIC, "static keys");
  is_str(plan.akid, "AKIDDEFAULT", "default access key id");
  is_str(plan.region, "us-east-2", "region from config");
  creds_plan_free(&plan);

  is_int(resolve("dev", 1, &plan, err, sizeof err), PLAN_OK, "dev resolves");
  is_str(plan.token, "TOK", "session token from credentials file");
  is_str(plan.region, "eu-west-1", "dev region");
  creds_plan_free(&plan);

  is_int(resolve("proc", 1, &plan, err, sizeof err), PLAN_OK, "credential_process profile");
  is_int(plan.kind, PLAN_PROCESS, "plan is a process");
  is_str(plan.process, "/bin/echo hi", "command kept whole");
  creds_plan_free(&plan);

  is_int(resolve("nope", 1, &plan, err, sizeof err), PLAN_ERR, "missing explicit profile is an error");
  ok(strstr(err, "\"nope\" not found") && strstr(err, cfg_path) && strstr(err, cred_path),
     "error names the profile and both files: %s", err);

  is_int(resolve("half", 1, &plan, err, sizeof err), PLAN_ERR, "key id without secret is an error");
  ok(strstr(err, "aws_secret_access_key") && strstr(err, "half"), "error names the setting: %s", err);
  ok(!strstr(err, "SECRET"), "no secret in the error");

  write_file(cred_path, "");
  write_file(cfg_path, "[profile dev]\nregion = eu-west-1\n");
  is_int(resolve("default", 0, &plan, err, sizeof err), PLAN_NONE, "absent default profile: chain moves on");
  creds_plan_free(&plan);
  is_int(resolve("dev", 1, &plan, err, sizeof err), PLAN_NONE, "profile with only a region: chain moves on");
  is_str(plan.region, "eu-west-1", "but its region is reported");
  creds_plan_free(&plan);
}

static void test_roles(void) {
  char err[CREDS_ERR_MAX];
  creds_plan_t plan;
  write_file(cred_path, "[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = SECRETBASE\n");
  write_file(cfg_path,
             "[profile a]\nrole_arn = arn:aws:iam::111111111111:role/a\nsource_profile = b\nexternal_id = ext\n"
             "duration_seconds = 1800\n"
             "[profile b]\nrole_arn = arn:aws:iam::111111111111:role/b\nsource_profile = base\n"
             "[profile self]\nrole_arn = arn:aws:iam::1:role/self\nsource_profile = self\n"
             "aws_access_key_id = AKIDSELF\naws_secret_access_key = S\n"
             "[profile loop1]\nrole_arn = arn:aws:iam::1:role/l1\nsource_profile = loop2\n"
             "[profile loop2]\nrole_arn = arn:aws:iam::1:role/l2\nsource_profile = loop1\n"
             "[profile dangling]\nrole_arn = arn:aws:iam::1:role/d\nsource_profile = ghost\n"
             "[profile wi]\nrole_arn = arn:aws:iam::1:role/wi\nweb_identity_token_file = /tmp/tok\nrole_session_name = s1\n"
             "[profile ec2]\nrole_arn = arn:aws:iam::1:role/e\ncredential_source = Ec2InstanceMetadata\n"
             "[profile badsrc]\nrole_arn = arn:aws:iam::1:role/e\ncredential_source = Moon\n"
             "[profile badduration]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = base\nduration_seconds = 5\n"
             "[profile norole]\nrole_arn = arn:aws:iam::1:role/x\n");
  is_int(resolve("a", 1, &plan, err, sizeof err), PLAN_OK, "a -> b -> base resolves: %s", err);
  is_int(plan.kind, PLAN_STATIC, "chain starts at static keys");
  is_str(plan.akid, "AKIDBASE", "source keys from base");
  is_int(plan.nroles, 2, "two AssumeRole hops");
  is_str(plan.roles[0].role_arn, "arn:aws:iam::111111111111:role/b", "b's role first");
  is_str(plan.roles[1].role_arn, "arn:aws:iam::111111111111:role/a", "then a's role");
  is_str(plan.roles[1].external_id, "ext", "external_id kept");
  is_int(plan.roles[1].duration_s, 1800, "duration_seconds kept");
  is_str(plan.roles[1].profile, "a", "hop remembers its profile");
  creds_plan_free(&plan);

  is_int(resolve("self", 1, &plan, err, sizeof err), PLAN_OK, "self-referencing source_profile with keys");
  is_str(plan.akid, "AKIDSELF", "uses its own keys");
  is_int(plan.nroles, 1, "then assumes its role");
  creds_plan_free(&plan);

  is_int(resolve("loop1", 1, &plan, err, sizeof err), PLAN_ERR, "source_profile loop detected");
  ok(strstr(err, "loop") && strstr(err, "loop1 -> loop2 -> loop1"), "loop error shows the cycle: %s", err);

  is_int(resolve("dangling", 1, &plan, err, sizeof err), PLAN_ERR, "missing source_profile");
  ok(strstr(err, "\"ghost\"") && strstr(err, "\"dangling\""), "names both profiles: %s", err);

  is_int(resolve("wi", 1, &plan, err, sizeof err), PLAN_OK, "web identity profile");
  is_int(plan.kind, PLAN_WEB_IDENTITY, "plan is web identity");
  is_str(plan.token_file, "/tmp/tok", "token file");
  is_str(plan.wi.session_name, "s1", "session name");
  is_int(plan.nroles, 0, "no extra hops");
  creds_plan_free(&plan);

  is_int(resolve("ec2", 1, &plan, err, sizeof err), PLAN_OK, "credential_source profile");
  is_int(plan.kind, PLAN_IMDS, "from IMDS");
  is_int(plan.nroles, 1, "then AssumeRole");
  creds_plan_free(&plan);

  is_int(resolve("badsrc", 1, &plan, err, sizeof err), PLAN_ERR, "bad credential_source");
  ok(strstr(err, "Moon") && strstr(err, "Ec2InstanceMetadata"), "says what is allowed: %s", err);
  is_int(resolve("badduration", 1, &plan, err, sizeof err), PLAN_ERR, "bad duration_seconds");
  ok(strstr(err, "duration_seconds"), "names the setting: %s", err);
  is_int(resolve("norole", 1, &plan, err, sizeof err), PLAN_ERR, "role_arn without a source");
  ok(strstr(err, "source_profile"), "says what to add: %s", err);
}

static void test_unreadable(void) {
  char err[CREDS_ERR_MAX];
  creds_plan_t plan;
  char sub[400];
  snprintf(sub, sizeof sub, "%s/adir", dir);
  if (mkdir(sub, 0700) != 0 && errno != EEXIST) { perror(sub); exit(2); }
  plan_input_t in = {cfg_path, sub, "default", 0};
  is_int(creds_plan_resolve(&in, &plan, err, sizeof err), PLAN_ERR, "credentials path that is a directory");
  ok(strstr(err, sub) && strstr(err, "Is a directory"), "error has path and strerror: %s", err);

  write_file(cred_path, "[default]\naws_access_key_id = A\naws_secret_access_key = B\n");
  if (geteuid() == 0) {
    ok(1, "# skip unreadable-file check as root");
    ok(1, "# skip");
    return;
  }
  if (chmod(cred_path, 0) != 0) { perror("chmod"); exit(2); }
  in.credentials_path = cred_path;
  is_int(creds_plan_resolve(&in, &plan, err, sizeof err), PLAN_ERR, "unreadable credentials file");
  ok(strstr(err, cred_path) && strstr(err, "Permission denied") && strstr(err, "AWS_SHARED_CREDENTIALS_FILE"),
     "error has path, strerror and the setting: %s", err);
  if (chmod(cred_path, 0600) != 0) perror("chmod");
}

static void test_paths(void) {
  char c[256], cr[256];
  setenv("HOME", "/home/someone", 1);
  unsetenv("AWS_CONFIG_FILE");
  setenv("AWS_SHARED_CREDENTIALS_FILE", "~/x/creds", 1);
  is_int(creds_file_paths(c, sizeof c, cr, sizeof cr), 0, "paths resolve");
  is_str(c, "/home/someone/.aws/config", "default config path");
  is_str(cr, "/home/someone/x/creds", "~ expanded in AWS_SHARED_CREDENTIALS_FILE");
  unsetenv("AWS_SHARED_CREDENTIALS_FILE");
}

/* The field readers the credential documents and AWS error bodies share. */
static void test_field_readers(void) {
  char out[16], tiny[3];
  const char *j = "{\"a\": {\"Key\": \"nested\"}, \"s\": \"x\\\"y\\u00e9\", \"Key\": \"top\", \"n\": 42}";
  is_int(json_get(j, strlen(j), "Key", out, sizeof out), 0, "json_get finds the top-level member");
  is_str(out, "top", "not the nested one of the same name");
  ok(json_get(j, strlen(j), "s", out, sizeof out) == 0 && strcmp(out, "x\"y\xc3\xa9") == 0, "escapes decoded");
  ok(json_get(j, strlen(j), "n", out, sizeof out) == 0 && strcmp(out, "42") == 0, "a number as text");
  is_int(json_get(j, strlen(j), "a", out, sizeof out), -1, "an object value is refused");
  is_int(json_get(j, strlen(j), "nope", out, sizeof out), -1, "missing key");
  is_int(json_get(j, strlen(j), "Key", tiny, sizeof tiny), JSON_GET_TOO_LONG, "too long is told apart");
  is_str(tiny, "to", "keeping the prefix that fits");
  const char *x = "<R><Code> Throttling </Code><Message>a &amp; b &lt;c&gt;</Message></R>";
  ok(xml_get(x, strlen(x), "Code", out, sizeof out) == 0 && strcmp(out, "Throttling") == 0, "xml_get trims");
  ok(xml_get(x, strlen(x), "Message", out, sizeof out) == 0 && strcmp(out, "a & b <c>") == 0, "entities decoded");
  is_int(xml_get(x, strlen(x), "Missing", out, sizeof out), -1, "missing element");
  is_int(xml_get(x, strlen(x), "Code", tiny, sizeof tiny), XML_GET_TOO_LONG, "too long is told apart");
}

/* Found by tests/fuzz/fuzz_json_get.c: a raw NUL or control byte inside a string used to
 * be copied, so the C string was silently cut short. RFC 8259 strings escape them. */
static void test_json_strict_strings(void) {
  char out[64];
  static const char nul[] = "{\"Expiration\": \"pir\001\000\000\000x\"}";
  is_int(json_get(nul, sizeof nul - 1, "Expiration", out, sizeof out), -1, "a raw NUL in a string is refused");
  const char *ctl = "{\"k\": \"a\tb\"}";
  is_int(json_get(ctl, strlen(ctl), "k", out, sizeof out), -1, "a raw control character is refused");
  const char *z = "{\"k\": \"a\\u0000b\"}";
  is_int(json_get(z, strlen(z), "k", out, sizeof out), -1, "\\u0000 is refused (it would cut the value)");
  /* found by tests/fuzz/fuzz_lua_json.c: a \u0000 in another member's string made the
   * whole lookup fail, though the object is valid JSON */
  const char *other = "{\"a\": \"x\\u0000y\", \"k\": \"v\"}";
  ok(json_get(other, strlen(other), "k", out, sizeof out) == 0 && strcmp(out, "v") == 0,
     "\\u0000 in a member skipped over does not hide the next one");
  const char *nulkey = "{\"k\\u0000\": \"no\", \"k\": \"yes\"}";
  ok(json_get(nulkey, strlen(nulkey), "k", out, sizeof out) == 0 && strcmp(out, "yes") == 0,
     "a name holding \\u0000 matches no name (its C prefix is not the name)");
  const char *lone = "{\"k\": \"\\ud83d\"}";
  is_int(json_get(lone, strlen(lone), "k", out, sizeof out), -1, "a lone surrogate is refused");
  const char *pair = "{\"k\": \"\\ud83d\\ude00\"}";
  ok(json_get(pair, strlen(pair), "k", out, sizeof out) == 0 && strcmp(out, "\xf0\x9f\x98\x80") == 0,
     "a surrogate pair becomes one UTF-8 code point");
  const char *bad = "{\"k\": \"\\x41\"}";
  is_int(json_get(bad, strlen(bad), "k", out, sizeof out), -1, "an unknown escape is refused");
  static const char xnul[] = "<Code>C,d\001\000\000e</Code>";
  is_int(xml_get(xnul, sizeof xnul - 1, "Code", out, sizeof out), -1, "xml_get: a raw NUL in element text is refused");
  const char *xtab = "<Code>a\tb</Code>";
  ok(xml_get(xtab, strlen(xtab), "Code", out, sizeof out) == 0 && strcmp(out, "a\tb") == 0, "xml_get: tab is allowed text");
  /* Found by tests/fuzz/fuzz_creds_answers.c: markup inside the element came back as its text */
  const char *cdata = "<SessionToken><![CDATA[t]]></SessionToken><Code><B>x</B></Code>";
  is_int(xml_get(cdata, strlen(cdata), "SessionToken", out, sizeof out), -1, "xml_get: CDATA is refused, not returned as text");
  is_int(xml_get(cdata, strlen(cdata), "Code", out, sizeof out), -1, "xml_get: an element with a child element is refused");
  /* Found by tests/fuzz/fuzz_lua_json.c (json_get against the decoder): a member name over
   * 63 bytes was cut to 63 and compared, so it could stand in for a 63-byte name */
  char k63[64], doc[400];
  memset(k63, 'k', 63);
  k63[63] = 0;
  snprintf(doc, sizeof doc, "{\"%sLONGER\": \"wrong\", \"%s\": \"right\"}", k63, k63);
  ok(json_get(doc, strlen(doc), k63, out, sizeof out) == 0 && strcmp(out, "right") == 0,
     "json_get: a longer name sharing a 63-byte prefix is not the member asked for");
  const char *slash = "{\"k\": \"a\\/b\\\\c\"}";
  ok(json_get(slash, strlen(slash), "k", out, sizeof out) == 0 && strcmp(out, "a/b\\c") == 0, "\\/ and \\\\ decode");
}

/* The STS answer reader (creds_from_sts_xml). Found by tests/fuzz/fuzz_creds_answers.c:
 * an empty AccessKeyId or SecretAccessKey was accepted and only failed at signing. */
static void test_sts_answer(void) {
  creds_t c;
  char why[256];
  const char *good = "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIA1</AccessKeyId>"
      "<SecretAccessKey>s&amp;1</SecretAccessKey><SessionToken>t</SessionToken>"
      "<Expiration>2026-11-25T04:00:00Z</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>";
  ok(creds_from_sts_xml(good, strlen(good), &c, why, sizeof why) == 0 && strcmp(c.access_key_id, "ASIA1") == 0 &&
     strcmp(c.secret_access_key, "s&1") == 0 && c.expiration == 1795579200, "an STS answer reads");
  const char *empty = "<Credentials><AccessKeyId></AccessKeyId><SecretAccessKey>s</SecretAccessKey>"
      "<SessionToken>t</SessionToken><Expiration>2026-11-25T04:00:00Z</Expiration></Credentials>";
  ok(creds_from_sts_xml(empty, strlen(empty), &c, why, sizeof why) == -1 && strstr(why, "no AccessKeyId"),
     "an empty AccessKeyId is refused, naming it");
  const char *nosecret = "<Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey> </SecretAccessKey>"
      "<SessionToken>t</SessionToken><Expiration>2026-11-25T04:00:00Z</Expiration></Credentials>";
  ok(creds_from_sts_xml(nosecret, strlen(nosecret), &c, why, sizeof why) == -1 && strstr(why, "no SecretAccessKey") &&
     c.access_key_id[0] == 0, "a blank SecretAccessKey is refused and nothing is kept");
  const char *proc = "{\"Version\": 2, \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"s\"}";
  ok(creds_from_process_json(proc, strlen(proc), &c, why, sizeof why) == -1 && strstr(why, "Version"),
     "credential_process output without Version 1 is refused");
  const char *imds = "{\"Code\": \"AssumeRoleUnauthorizedAccess\", \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"s\"}";
  ok(creds_from_imds_json(imds, strlen(imds), &c, why, sizeof why) == -1 && strstr(why, "AssumeRoleUnauthorizedAccess"),
     "an IMDS answer whose Code is not Success is refused with the code");
  is_int((int)creds_first_word("role-a\r\nrole-b", 14, "\r\n"), 6, "the first line of an IMDS listing");
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/test_creds_file.XXXXXX");
  if (!mkdtemp(dir)) { perror("mkdtemp"); return 2; }
  snprintf(cfg_path, sizeof cfg_path, "%s/config", dir);
  snprintf(cred_path, sizeof cred_path, "%s/credentials", dir);
  test_ini();
  test_static_and_missing();
  test_roles();
  test_unreadable();
  test_paths();
  test_field_readers();
  test_json_strict_strings();
  test_sts_answer();
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) printf("# could not remove %s\n", dir);
  return tap_done();
}
