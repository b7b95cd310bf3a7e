"""The credential chain against real local servers, real files and real processes.
Drives build/tests/test_creds_chain (tests/unit/test_creds_chain.c). Prints TAP."""
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.environ.get("ROTATOR_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
BUILD = os.environ.get("ROTATOR_BUILD") or os.path.join(ROOT, "build")
sys.path.insert(0, os.path.join(ROOT, "tests/bed"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from servers import IMDS_TOKEN, Servers  # noqa: E402
from tap import Tap  # noqa: E402

DRIVER = os.path.join(BUILD, "tests", "test_creds_chain")
SECRETS = ["SECRETBASE", "SECRETENV", "secret-", "session-token-", "web-identity-secret-token", "ecs-auth-secret",
           "PROCSECRET", "PROCTOKEN"]
t = Tap()
tmp = tempfile.mkdtemp(prefix="creds-test-")


def write(name, text, mode=0o600):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def base_env(**extra):
    # No ambient AWS settings or proxies: the tests that want a proxy set the stand-in as one.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k.lower() not in ("http_proxy", "https_proxy", "no_proxy")}
    env.update({"HOME": tmp, "AWS_CONFIG_FILE": os.path.join(tmp, "none-config"),
                "AWS_SHARED_CREDENTIALS_FILE": os.path.join(tmp, "none-credentials"),
                "AWS_EC2_METADATA_DISABLED": "true"})
    env.update({k: v for k, v in extra.items() if v is not None})
    for k in [k for k, v in extra.items() if v is None]:
        env.pop(k, None)
    return env


def run(env, *args, timeout=30):
    p = subprocess.run([DRIVER, "run", *args], env=env, capture_output=True, text=True, timeout=timeout)
    out = p.stdout + p.stderr
    leaked = [s for s in SECRETS if s in out]
    return p.returncode, p.stdout, out, leaked


def creds_lines(stdout):
    pat = re.compile(r"^creds source=(?P<source>.*) akid=(?P<akid>\S+) token=(?P<token>\S+) expires_in=(?P<exp>\S+)$")
    return [m.groupdict() for m in map(pat.match, stdout.splitlines()) if m]


def check(name, env, *args, source=None, akid=None, error=None, rc=None):
    code, stdout, out, leaked = run(env, *args)
    t.ok(not leaked, f"{name}: no secret in output")
    lines = creds_lines(stdout)
    if error:
        ok = code != 0 and all(e in stdout for e in ([error] if isinstance(error, str) else error))
        if not t.ok(ok, f"{name}: error says {error!r}"):
            t.diag(out)
        return stdout
    good = code == 0 and lines and (source is None or lines[0].get("source") == source) and \
        (akid is None or lines[0].get("akid") == akid)
    if not t.ok(good, f"{name}: source={source} akid={akid}"):
        t.diag(out)
    return stdout


# ---- environment ---------------------------------------------------------------------------
check("env", base_env(AWS_ACCESS_KEY_ID="AKIDENV", AWS_SECRET_ACCESS_KEY="SECRETENV"), source="env", akid="AKIDENV")
check("env without secret", base_env(AWS_ACCESS_KEY_ID="AKIDENV"),
      error=["AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"])
check("nothing configured", base_env(), error=["no AWS credentials found", "AWS_EC2_METADATA_DISABLED"])

# ---- shared files ---------------------------------------------------------------------------
cred = write("credentials", "[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = SECRETBASE\n"
                            "[dev]\naws_access_key_id = AKIDDEV\naws_secret_access_key = SECRETBASE\n")
procdir = os.path.join(ROOT, "tests/creds")
LONGNAME = "p" * 200  # a profile name past any small fixed buffer; its first 127 bytes name another
cfg = write("config", f"""[default]
region = us-west-2
[profile dev]
region = eu-west-1
[profile a]
role_arn = arn:aws:iam::111111111111:role/a
source_profile = b
[profile b]
role_arn = arn:aws:iam::111111111111:role/b
source_profile = base
role_session_name = sess-b
external_id = ext-1
[profile one]
region = us-west-2
role_arn = arn:aws:iam::111111111111:role/one
source_profile = base
[profile china]
region = cn-north-1
role_arn = arn:aws:iam::111111111111:role/china
source_profile = base
[profile longtok]
role_arn = arn:aws:iam::111111111111:role/longtoken
source_profile = base
[profile denied]
role_arn = arn:aws:iam::111111111111:role/denied
source_profile = base
[profile loop1]
role_arn = arn:aws:iam::1:role/x
source_profile = loop2
[profile loop2]
role_arn = arn:aws:iam::1:role/y
source_profile = loop1
[profile {LONGNAME}]
aws_access_key_id = AKIDLONGNAME
aws_secret_access_key = LONGNAMESECRET
[profile {LONGNAME[:127]}]
aws_access_key_id = AKIDCUTNAME
aws_secret_access_key = CUTNAMESECRET
[profile wi]
role_arn = arn:aws:iam::111111111111:role/wi
web_identity_token_file = {tmp}/webtoken
[profile proc]
credential_process = {procdir}/credential_process.sh ok
[profile proc_role]
role_arn = arn:aws:iam::111111111111:role/fromproc
source_profile = proc
[profile proc_fail]
credential_process = {procdir}/credential_process.sh fail
[profile proc_badjson]
credential_process = {procdir}/credential_process.sh badjson
[profile proc_version]
credential_process = {procdir}/credential_process.sh version2
[profile proc_slow]
credential_process = {procdir}/credential_process.sh slow
[profile proc_huge]
credential_process = {procdir}/credential_process.sh huge
""")
write("webtoken", "web-identity-secret-token\n")
files = {"AWS_CONFIG_FILE": cfg, "AWS_SHARED_CREDENTIALS_FILE": cred}

check("profile dev", base_env(AWS_PROFILE="dev", **files), source="profile:dev", akid="AKIDDEV")
check("a 200-character --profile is used whole", base_env(**files), "--profile", LONGNAME, akid="AKIDLONGNAME")
check("a config file path over the limit", base_env(AWS_PROFILE="dev", AWS_CONFIG_FILE="/tmp/" + "c" * 5000),
      error=["AWS_CONFIG_FILE", "byte limit"])
check("missing profile", base_env(AWS_PROFILE="nope", **files), error=['"nope" not found', cfg, cred])
check("source_profile loop", base_env(AWS_PROFILE="loop1", **files), error=["loop1 -> loop2 -> loop1"])
write("locked", "[default]\naws_access_key_id = A\naws_secret_access_key = B\n", 0)
if os.geteuid() != 0:
    check("unreadable credentials file", base_env(AWS_SHARED_CREDENTIALS_FILE=os.path.join(tmp, "locked")),
          error=[os.path.join(tmp, "locked"), "Permission denied"])
else:
    t.skip("unreadable credentials file", "running as root")

with Servers() as s:
    sts = {"AWS_ENDPOINT_URL_STS": s.url + "/", **files}

    # ---- STS AssumeRole (signed), chained ------------------------------------------------------
    check("assume role one hop", base_env(AWS_PROFILE="one", **sts),
          source="profile:one (assume-role arn:aws:iam::111111111111:role/one)", akid="ASIAROLEONE1")
    reqs = s.requests(lambda r: r["method"] == "POST")
    auth = reqs[-1]["headers"].get("Authorization", "") if reqs else ""
    t.ok(re.match(r"AWS4-HMAC-SHA256 Credential=AKIDBASE/\d{8}/us-west-2/sts/aws4_request, "
                  r"SignedHeaders=[a-z0-9;-]*host[a-z0-9;-]*, Signature=[0-9a-f]{64}$", auth),
         f"AssumeRole signed with the source keys, scope us-west-2/sts: {auth[:70]}")
    t.ok("Action=AssumeRole" in reqs[-1]["body"] and "RoleArn=arn%3Aaws%3Aiam%3A%3A111111111111%3Arole%2Fone"
         in reqs[-1]["body"], "query-protocol form body")
    s.clear()
    check("assume role chain a -> b -> base", base_env(AWS_PROFILE="a", **sts), akid="ASIAROLEA1")
    reqs = s.requests(lambda r: r["method"] == "POST")
    t.eq(len(reqs), 2, "two AssumeRole calls")
    if len(reqs) == 2:
        t.ok("Credential=AKIDBASE/" in reqs[0]["headers"].get("Authorization", ""), "first hop signed by base")
        t.ok("RoleSessionName=sess-b" in reqs[0]["body"] and "ExternalId=ext-1" in reqs[0]["body"],
             "session name and external id sent")
        t.ok("Credential=ASIAROLEB1/" in reqs[1]["headers"].get("Authorization", "") and
             reqs[1]["headers"].get("X-Amz-Security-Token") == "session-token-roleb-1",
             "second hop signed by b's temporary credentials with their token")
    check("STS session token over the limit", base_env(AWS_PROFILE="longtok", **sts),
          error=["SessionToken is longer than the 4095-byte limit"])
    check("AssumeRole denied", base_env(AWS_PROFILE="denied", **sts),
          error=['profile "denied"', "HTTP 403", "AccessDenied"])

    # ---- web identity ----------------------------------------------------------------------------
    s.clear()
    check("web identity from env", base_env(AWS_WEB_IDENTITY_TOKEN_FILE=os.path.join(tmp, "webtoken"),
                                            AWS_ROLE_ARN="arn:aws:iam::111111111111:role/wi",
                                            AWS_ROLE_SESSION_NAME="ci", AWS_REGION="us-east-2", **sts),
          source="web-identity", akid="ASIAWEBID1")
    reqs = s.requests(lambda r: r["method"] == "POST")
    t.ok(reqs and "Authorization" not in reqs[-1]["headers"] and "RoleSessionName=ci" in reqs[-1]["body"],
         "AssumeRoleWithWebIdentity is unsigned and carries the session name")
    check("web identity token file missing", base_env(AWS_WEB_IDENTITY_TOKEN_FILE=os.path.join(tmp, "absent"),
                                                      AWS_ROLE_ARN="arn:aws:iam::1:role/wi", **sts),
          error=["web identity token file", "absent", "No such file"])
    check("web identity profile", base_env(AWS_PROFILE="wi", **sts),
          source="profile:wi (web-identity arn:aws:iam::111111111111:role/wi)", akid="ASIAWEBID2")

    # ---- credential_process ----------------------------------------------------------------------
    check("credential_process", base_env(AWS_PROFILE="proc", **sts),
          source="profile:proc (credential_process)", akid="AKIDPROC")
    check("credential_process as source_profile", base_env(AWS_PROFILE="proc_role", **sts), akid="ASIAROLEFROMPROC1")
    check("credential_process exit status", base_env(AWS_PROFILE="proc_fail", **sts),
          error=['"proc_fail"', "exited with status 3"])
    check("credential_process bad JSON", base_env(AWS_PROFILE="proc_badjson", **sts),
          error=['"proc_badjson"', "Version"])
    check("credential_process wrong version", base_env(AWS_PROFILE="proc_version", **sts), error=["Version\": 1"])
    check("credential_process output over the limit", base_env(AWS_PROFILE="proc_huge", **sts),
          error=['"proc_huge"', "printed more than the 65536-byte limit"])
    t0 = time.monotonic()
    check("credential_process timeout", base_env(AWS_PROFILE="proc_slow", **sts), "--process-timeout-ms", "300",
          error=["did not finish in time"])
    t.ok(time.monotonic() - t0 < 5, f"slow process killed after the timeout ({time.monotonic() - t0:.2f}s)")

    # ---- ECS ---------------------------------------------------------------------------------------
    # The stand-in is also the HTTP proxy: the request for 169.254.170.2 never leaves the machine.
    proxy = {"http_proxy": s.url, "https_proxy": s.url, "HTTPS_PROXY": s.url, "no_proxy": "", "NO_PROXY": ""}
    ecs = base_env(AWS_CONTAINER_CREDENTIALS_RELATIVE_URI="/ecs/creds", AWS_CONTAINER_AUTHORIZATION_TOKEN="ecs-auth-secret",
                   **proxy)
    s.clear()
    check("ECS relative URI with token", ecs, source="ecs", akid="ASIAECS1")
    t.eq([r["host"] for r in s.requests()], ["169.254.170.2"], "RELATIVE_URI goes to the ECS agent address")
    tokfile = write("ecstoken", "ecs-auth-secret\n")
    check("ECS full URI with token file", base_env(AWS_CONTAINER_CREDENTIALS_FULL_URI=s.url + "/ecs/creds",
                                                    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=tokfile),
          source="ecs", akid="ASIAECS2")
    bigtok = write("ecstoken-big", "t" * 5000 + "\n")
    check("ECS token file over the limit", base_env(AWS_CONTAINER_CREDENTIALS_FULL_URI=s.url + "/ecs/creds",
                                                     AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=bigtok),
          error=["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "longer than the 4096-byte limit"])
    check("ECS wrong token", base_env(AWS_CONTAINER_CREDENTIALS_FULL_URI=s.url + "/ecs/creds",
                                      AWS_CONTAINER_AUTHORIZATION_TOKEN="wrong"), error=["HTTP 401"])
    check("ECS full URI not loopback", base_env(AWS_CONTAINER_CREDENTIALS_FULL_URI="http://10.1.2.3/creds"),
          error=["AWS_CONTAINER_CREDENTIALS_FULL_URI must be https"])

    # ---- STS through the AWS request path: endpoint resolver, retries ------------------------------
    # No endpoint override: the chain must resolve the real STS host. The proxy records the
    # CONNECT and refuses it, so nothing reaches AWS.
    s.clear()
    check("cn-north-1 role: the aws-cn STS endpoint", base_env(AWS_PROFILE="china", **files, **proxy),
          error=['profile "china"', "https://sts.cn-north-1.amazonaws.com.cn/"])
    hosts = [r["host"] for r in s.requests(lambda r: r["method"] == "CONNECT")]
    t.ok(hosts and all(h == "sts.cn-north-1.amazonaws.com.cn:443" for h in hosts),
         f"AssumeRole for a cn-north-1 profile connects to sts.cn-north-1.amazonaws.com.cn: {hosts}")
    t.eq(len(hosts), 3, "a failed STS connection is retried like any AWS call (3 attempts)")
    s.clear()
    check("FIPS STS endpoint", base_env(AWS_PROFILE="one", AWS_USE_FIPS_ENDPOINT="true", **files, **proxy),
          error=["https://sts-fips.us-west-2.amazonaws.com/"])
    hosts = sorted({r["host"] for r in s.requests(lambda r: r["method"] == "CONNECT")})
    t.eq(hosts, ["sts-fips.us-west-2.amazonaws.com:443"], "AWS_USE_FIPS_ENDPOINT=true is honoured for STS")
    s.clear()
    s.state.sts_fail_first = 1
    check("STS 503 retried", base_env(AWS_PROFILE="one", **sts), akid="ASIAROLEONE1")
    t.eq(len(s.requests(lambda r: r["method"] == "POST")), 2, "STS answered 503 once; the second attempt succeeds")

    # ---- IMDSv2 -----------------------------------------------------------------------------------
    import urllib.error
    import urllib.request
    try:
        urllib.request.urlopen(s.url + "/latest/meta-data/iam/security-credentials/", timeout=5)
        t.ok(False, "IMDS stand-in rejects a GET without the token")
    except urllib.error.HTTPError as e:
        t.eq(e.code, 401, "IMDS stand-in rejects a GET without the token")
    s.clear()
    imds = base_env(AWS_EC2_METADATA_DISABLED=None, AWS_EC2_METADATA_SERVICE_ENDPOINT=s.url)
    check("IMDSv2", imds, source="imds", akid="ASIAIMDS1")
    reqs = s.requests()
    t.ok(reqs and reqs[0]["method"] == "PUT" and reqs[0]["path"] == "/latest/api/token" and
         all(r["headers"].get("X-aws-ec2-metadata-token") == IMDS_TOKEN for r in reqs[1:]),
         "IMDS: token PUT first, then every GET carries the token")
    check("IMDS disabled", base_env(AWS_EC2_METADATA_SERVICE_ENDPOINT=s.url), error=["no AWS credentials found"])
    check("IMDS unreachable", base_env(AWS_EC2_METADATA_DISABLED=None,
                                       AWS_EC2_METADATA_SERVICE_ENDPOINT="http://127.0.0.1:9"),
          error=["IMDSv2 token request", "127.0.0.1:9"])

    # ---- region ---------------------------------------------------------------------------------
    out = run(base_env(AWS_REGION="ap-south-1", AWS_DEFAULT_REGION="x", AWS_ACCESS_KEY_ID="A",
                       AWS_SECRET_ACCESS_KEY="B"), "--region")[1]
    t.ok("region ap-south-1" in out, "region from AWS_REGION first")
    out = run(base_env(AWS_PROFILE="dev", **files), "--region")[1]
    t.ok("region eu-west-1" in out, "region from the profile")
    out = run(imds, "--region")[1]
    t.ok("region eu-central-1" in out, "region from IMDS")
    out = run(base_env(AWS_ACCESS_KEY_ID="A", AWS_SECRET_ACCESS_KEY="B"), "--region")[1]
    t.ok("error no AWS region configured: set AWS_REGION" in out, "missing region names the settings")

    # ---- cache, shared refresh, refresh before expiry -------------------------------------------
    s.clear()
    # Expiration has whole seconds, so a lifetime of 8 s is 7 to 8 s. Round 2 (2.6 s in: 4.4
    # to 5.4 s left) is well outside the 3 s margin, round 3 (5.2 s in: 1.8 to 2.8 s left)
    # well inside it, each with over a second of slack for a loaded machine.
    s.state.expires_in = 8
    out = check("refresh", imds, "--margin", "3", "--rounds", "3", "--sleep-ms", "2600", "--concurrent", "5")
    akids = [c.get("akid") for c in creds_lines(out)]
    t.eq(akids[:5], ["ASIAIMDS1"] * 5, "5 concurrent callers share one fetch")
    t.eq(akids[5:10], ["ASIAIMDS1"] * 5, "2.6 s later (4.4 s or more left, margin 3 s): served from the cache")
    t.eq(akids[10:15], ["ASIAIMDS2"] * 5, "5.2 s later (2.8 s or less left, inside the margin): refreshed once")
    t.eq(s.state.counts.get("imds"), 2, "two credential fetches in all")
    t.ok("describe source=imds access_key_id=ASIAIMDS2 session_token=yes expires=" in out,
         "creds_describe shows source, key id and expiry")

subprocess.run(["rm", "-rf", tmp])
sys.exit(t.done())
