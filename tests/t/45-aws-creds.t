#!/usr/bin/env python3
"""aws.call, `rotator whoami` and `rotator sign` with credentials from the real chain:
a shared credentials file + AWS_PROFILE against moto with signature checking on; a profile
that does not exist, a missing region and an unreadable credentials file each give one
clear error naming the profile, setting or file; an expired session token is resolved
again and retried once; whoami never prints the secret; sign
with a profile reproduces a case of the shared SigV4 suite. Only 127.0.0.1."""
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading

ROOT = os.environ.get("ROTATOR_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# moto lives in the test bed's virtualenv: re-run this file with its python.
if not os.environ.get("ROTATOR_45_IN_VENV"):
    venv = subprocess.run([os.path.join(ROOT, "tests/bed/venv.sh")], capture_output=True, text=True)
    if venv.returncode != 0 or not venv.stdout.strip():
        print("1..1\nnot ok 1 - test bed virtualenv (tests/bed/venv.sh failed)")
        sys.stderr.write(venv.stderr[-2000:])
        sys.exit(1)
    py = venv.stdout.strip().splitlines()[-1]
    os.execve(py, [py, os.path.abspath(__file__)], dict(os.environ, ROTATOR_45_IN_VENV="1", ROTATOR_ROOT=ROOT))

sys.path.insert(0, os.path.join(ROOT, "tests/bed"))
import bed  # noqa: E402
from tap import Tap  # noqa: E402

BIN = os.environ.get("ROTATOR") or os.path.join(ROOT, "rotator")
SHARED_CASE = os.path.join(ROOT, "..", "shared", "testdata", "sigv4", "v4", "get-vanilla")
SUITE_KEY = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")

CALL = ('local aws = require "aws"\n'
        'local v, e = aws.call(%s)\n'
        'if v then return "OK", require("json").encode(v) end\n'
        'return "ERR", e.code, e.message')

t = Tap()
tmp = tempfile.TemporaryDirectory(prefix="rotator-45-")


def write(name, text, mode=0o600):
    path = os.path.join(tmp.name, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def profile_files(tag, keys, profile="rotator-test", region=None):
    """A credentials file holding keys under [profile] and a config file (region optional)."""
    creds = write(f"{tag}-credentials", f"[{profile}]\naws_access_key_id = {keys[0]}\n"
                                         f"aws_secret_access_key = {keys[1]}\n")
    cfg = write(f"{tag}-config", f"[profile {profile}]\n" + (f"region = {region}\n" if region else ""))
    return creds, cfg


def chain_env(creds, cfg, profile="rotator-test", endpoint=None, region="us-east-1"):
    """No AWS_* from outside: credentials only through AWS_PROFILE and the two files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "ROTATOR_TRACE_AWS"}
    env.update({"HOME": tmp.name, "AWS_EC2_METADATA_DISABLED": "true", "AWS_PROFILE": profile,
                "AWS_SHARED_CREDENTIALS_FILE": creds, "AWS_CONFIG_FILE": cfg,
                "AWS_ENDPOINT_URL": endpoint or "http://127.0.0.1:9"})
    if region:
        env["AWS_REGION"] = region
    return env


def rotator(args, env, stdin=None, timeout=60):
    return subprocess.run([BIN, *args], env=env, input=stdin, capture_output=True, text=True, timeout=timeout)


def aws_eval(env, call_args):
    return rotator(["eval", CALL % call_args], env)


def error_lines(p):
    return [line for line in (p.stdout + p.stderr).splitlines() if "CredentialsError" in line]


# ---- (a) aws.call on moto with the keys in a shared credentials file --------------------

with bed.Emulator() as emu:
    emu.create_table("orders-production", items=2)
    keys = (emu.rotator_keys.access_key_id, emu.rotator_keys.secret_access_key)
    creds, cfg = profile_files("moto", keys)
    env = chain_env(creds, cfg, endpoint=emu.endpoint)
    p = aws_eval(env, '"dynamodb", "DescribeTable", {TableName = "orders-production"}')
    t.ok(p.returncode == 0 and '"OK"' in p.stdout and "orders-production" in p.stdout,
         "aws.call DescribeTable on moto signs with the profile's keys (no AWS_ACCESS_KEY_ID)", p.stdout + p.stderr[-1500:])
    t.ok("source=profile:rotator-test" in p.stderr, "the creds.resolved log names the profile source", p.stderr[-800:])

    p = aws_eval(dict(env, ROTATOR_TEST_CORRUPT_SECRET="1"), '"dynamodb", "ListTables", {}')
    t.ok('"ERR"' in p.stdout and "Signature" in p.stdout, "moto checks the signature: a corrupted profile secret is refused",
         p.stdout + p.stderr[-800:])

    p = rotator(["whoami", "--call"], env)
    arn = f"arn:aws:iam::{bed.ACCOUNT}:user/rotator"
    t.ok(p.returncode == 0 and "account      " in p.stdout and arn in p.stdout,
         "whoami --call prints the account and the ARN from STS GetCallerIdentity", p.stdout + p.stderr[-800:])
    t.ok(keys[1] not in p.stdout + p.stderr, "whoami --call prints no secret")

    p = rotator(["--trace-aws", "eval", CALL % '"dynamodb", "ListTables", {}'], env)
    t.ok("event=aws.request" in p.stderr and "event=aws.response" in p.stderr,
         "--trace-aws logs the request and the response", p.stderr[-800:])
    t.ok(keys[1] not in p.stdout + p.stderr, "the trace shows no secret")

# ---- (b) a profile that does not exist -----------------------------------------------

creds, cfg = profile_files("b", SUITE_KEY)
p = aws_eval(chain_env(creds, cfg, profile="no-such-profile"), '"ssm", "GetParameter", {Name = "/x"}')
lines = error_lines(p)
t.ok(len(lines) == 1 and 'profile \\"no-such-profile\\" not found' in lines[0] and creds in lines[0] and cfg in lines[0],
     "a missing profile: one CredentialsError naming the profile and both files", p.stdout + p.stderr[-800:])

# ---- (c) no region anywhere -----------------------------------------------------------

p = aws_eval(chain_env(creds, cfg, region=None), '"dynamodb", "ListTables", {}')
lines = error_lines(p)
t.ok(len(lines) == 1 and "no AWS region" in lines[0] and "AWS_REGION" in lines[0] and "AWS_DEFAULT_REGION" in lines[0]
     and "region" in lines[0].split("AWS_DEFAULT_REGION", 1)[1],
     "a missing region: one CredentialsError naming AWS_REGION, AWS_DEFAULT_REGION and the profile's region",
     p.stdout + p.stderr[-800:])
creds_r, cfg_r = profile_files("c", SUITE_KEY, region="eu-west-3")
p = rotator(["whoami"], chain_env(creds_r, cfg_r, region=None))
t.ok(p.returncode == 0 and "region       eu-west-3" in p.stdout and "dynamodb  http://127.0.0.1:9" in p.stdout,
     "the profile's region is used when AWS_REGION is unset", p.stdout + p.stderr[-800:])

# ---- (d) an unreadable credentials file -----------------------------------------------

unreadable = os.path.join(tmp.name, "d-credentials-dir")  # a directory cannot be read, even by root
os.mkdir(unreadable)
p = aws_eval(chain_env(unreadable, cfg), '"dynamodb", "ListTables", {}')
lines = error_lines(p)
t.ok(len(lines) == 1 and unreadable in lines[0] and "AWS_SHARED_CREDENTIALS_FILE" in lines[0],
     "an unreadable credentials file: one CredentialsError naming the file and the setting", p.stdout + p.stderr[-800:])
if os.geteuid() != 0:
    locked = write("d-locked", "[rotator-test]\n", mode=0o000)
    p = aws_eval(chain_env(locked, cfg), '"dynamodb", "ListTables", {}')
    t.ok(locked in p.stdout and "ermission" in p.stdout, "a credentials file without read permission is named",
         p.stdout + p.stderr[-800:])
else:
    t.skip("a credentials file without read permission is named", "running as root: mode 000 is still readable")

# ---- (e) whoami: source and key id, never the secret ----------------------------------

p = rotator(["whoami"], chain_env(creds, cfg))
t.ok(p.returncode == 0 and "source=profile:rotator-test" in p.stdout and "access_key_id=AKIDEXAMPLE" in p.stdout,
     "whoami prints the source and the access key id", p.stdout + p.stderr[-800:])
t.ok(all(f"{s} " in p.stdout for s in ("dynamodb", "ssm", "sqs", "backup", "sts")) and "region       us-east-1" in p.stdout,
     "whoami prints the region and every service's endpoint", p.stdout)
t.ok(SUITE_KEY[1] not in p.stdout + p.stderr, "whoami prints no secret")
p = rotator(["whoami"], chain_env(creds, cfg, profile="no-such-profile"))
t.ok(p.returncode == 1 and 'profile "no-such-profile" not found' in p.stdout and SUITE_KEY[1] not in p.stdout + p.stderr,
     "whoami with a missing profile: exit 1 and the chain's error", p.stdout + p.stderr[-800:])
p = rotator(["whoami", "--help"], chain_env(creds, cfg))
t.ok(p.returncode == 0 and "--call" in p.stdout and "Example" in p.stdout, "whoami --help shows the options and an example")

# ---- an expired session token: credentials resolved again, one retry ------------------


class ExpiringServer(http.server.BaseHTTPRequestHandler):
    """DynamoDB stand-in: ExpiredTokenException for the first `expire` requests, then 200."""
    tokens: list = []
    expire = 1

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        ExpiringServer.tokens.append(self.headers.get("X-Amz-Security-Token"))
        if len(ExpiringServer.tokens) <= ExpiringServer.expire:
            status, body = 400, {"__type": "com.amazon.coral.service#ExpiredTokenException",
                                 "message": "The security token included in the request is expired"}
        else:
            status, body = 200, {"TableNames": []}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("x-amzn-RequestId", f"rid-{len(ExpiringServer.tokens)}")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def expiring_run(expire):
    """aws.call through credential_process (a new session token per run) against the stand-in."""
    ExpiringServer.tokens, ExpiringServer.expire = [], expire
    counter = os.path.join(tmp.name, f"proc-count-{expire}")
    script = write(f"proc-{expire}.sh", "#!/bin/sh\n"
                   f"n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); echo $n > {counter}\n"
                   'printf \'{"Version":1,"AccessKeyId":"AKIDPROC","SecretAccessKey":"proc-secret",'
                   '"SessionToken":"tok-%s"}\' "$n"\n', mode=0o700)
    cfg = write(f"proc-{expire}-config", f"[profile proc]\ncredential_process = {script}\n")
    creds = write(f"proc-{expire}-credentials", "")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ExpiringServer)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        env = chain_env(creds, cfg, profile="proc", endpoint=f"http://127.0.0.1:{srv.server_address[1]}")
        return aws_eval(env, '"dynamodb", "ListTables", {}, {max_attempts = 1}')
    finally:
        srv.shutdown()
        srv.server_close()


p = expiring_run(expire=1)
t.ok('"OK"' in p.stdout and ExpiringServer.tokens == ["tok-1", "tok-2"],
     "ExpiredTokenException: credentials resolved again (a new token) and the call retried once",
     f"tokens={ExpiringServer.tokens}\n{p.stdout}{p.stderr[-800:]}")
p = expiring_run(expire=5)
t.ok('"ExpiredTokenException"' in p.stdout and len(ExpiringServer.tokens) == 2,
     "a token rejected again is not retried a second time", f"tokens={ExpiringServer.tokens}\n{p.stdout}")
t.ok("proc-secret" not in p.stdout + p.stderr and "tok-" not in p.stdout + p.stderr,
     "neither the secret nor the session token appears in the output")

# ---- (f) sign with a profile reproduces a shared suite case ---------------------------

if os.path.isdir(SHARED_CASE):
    creds_f, cfg_f = profile_files("f", SUITE_KEY, profile="suite", region="us-east-1")
    env = chain_env(creds_f, cfg_f, profile="suite", region=None)
    with open(os.path.join(SHARED_CASE, "request.txt")) as f:
        request = f.read()
    with open(os.path.join(SHARED_CASE, "header-signed-request.txt")) as f:
        want = f.read()
    p = rotator(["sign", "--service", "service", "--time", "2015-08-30T12:36:00Z"], env, stdin=request)
    t.eq(p.stdout, want, "sign: profile credentials and the profile's region reproduce get-vanilla byte for byte")
    t.ok(SUITE_KEY[1] not in p.stderr, "sign logs no secret")
    p = rotator(["sign", "--service", "service"], chain_env(creds_f, cfg_f, profile="absent"), stdin=request)
    t.ok(p.returncode == 1 and 'profile "absent" not found' in p.stderr, "sign with a missing profile: the chain's error",
         p.stderr[-800:])
else:
    t.skip("sign: profile credentials reproduce get-vanilla", f"{SHARED_CASE} does not exist")

tmp.cleanup()
sys.exit(t.done())
