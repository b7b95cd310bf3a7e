"""Retries, backoff, skew correction and error parsing of aws.call against tests/aws/httpd.py."""
import json
import os
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.environ["ROTATOR_ROOT"], "tests/bed"))
from tap import Tap  # noqa: E402

ROOT = os.environ["ROTATOR_ROOT"]
ROTATOR = os.environ["ROTATOR"]
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def ctl(port, path, body=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 data=json.dumps(body).encode() if body is not None else None,
                                 method="POST" if body is not None else "GET")
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read() or b"null")


def call(port, lua, extra=None):
    env = {"PATH": os.environ.get("PATH", ""), "AWS_ENDPOINT_URL": "http://127.0.0.1:%d" % port,
           "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
           "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": "TOKEN-SECRET-XYZ",
           "ROTATOR_TRACE_AWS": "1", "AWS_EC2_METADATA_DISABLED": "true"}
    env.update(extra or {})
    ctl(port, "/__clear__", {})
    p = subprocess.run([ROTATOR, "eval", 'local aws = require "aws"; ' + lua], env=env,
                       capture_output=True, text=True, timeout=60)
    return p, ctl(port, "/__log__")


THROTTLE = {"status": 400, "body": json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                                               "message": "Rate exceeded"})}
OK = {"status": 200, "body": '{"TableNames":["a"]}', "headers": {"x-amzn-RequestId": "RID-OK"}}
LISTV = 'local v, e = aws.call("dynamodb", "ListTables", {}); return v and v.TableNames[1], e'
LISTE = ('local v, e = aws.call("dynamodb", "ListTables", {}); '
         'return e and e.code, e and e.attempts, e and e.retryable, e and tostring(e)')


def main():
    t = Tap()
    srv = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests/aws/httpd.py")],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    port = int(srv.stdout.readline().split()[1])
    try:
        ctl(port, "/__script__", [THROTTLE, {"status": 503, "body": "oops"}, OK])
        p, log = call(port, LISTV)
        t.eq(p.stdout.strip(), '"a"\t"RID-OK"', "throttled, 503, then success: value and request id")
        t.eq(len(log), 3, "three attempts")
        gaps = [round((b["time"] - a["time"]) * 1000) for a, b in zip(log, log[1:])]
        t.diag("backoff gaps (ms): %s" % gaps)
        t.ok(all(g < 2100 for g in gaps), "backoff within full-jitter bounds (<= 1 s, <= 400 ms)")

        ctl(port, "/__script__", [THROTTLE] * 3)
        p, log = call(port, LISTE)
        t.ok(p.stdout.startswith('"ThrottlingException"\t3\ttrue'), "gives up after 3 attempts", p.stdout)
        ctl(port, "/__script__", [THROTTLE] * 5)
        p, log = call(port, LISTE, {"AWS_MAX_ATTEMPTS": "5"})
        t.eq(len(log), 5, "AWS_MAX_ATTEMPTS=5: five attempts")

        ctl(port, "/__script__", [{"status": 400, "body": json.dumps({"__type": "ValidationException",
                                                                     "message": "bad"})}])
        p, log = call(port, LISTE)
        t.ok(p.stdout.startswith('"ValidationException"\t1\tfalse'), "validation error: no retry", p.stdout)

        ctl(port, "/__script__", [{"reset": True}, OK])
        p, log = call(port, LISTV)
        t.ok(p.stdout.startswith('"a"'), "connection reset: retried", p.stdout + p.stderr[-400:])

        ctl(port, "/__script__", [{"status": 502, "body": "<html><body><h1>502 Bad Gateway</h1></body></html>",
                                   "content_type": "text/html"}] * 3)
        p, log = call(port, LISTE)
        t.ok('"HttpError"' in p.stdout and "HTTP 502: 502 Bad Gateway" in p.stdout,
             "HTML error body: HttpError with status and excerpt", p.stdout)

        ctl(port, "/__clock__", {"skew": 900})
        p, log = call(port, 'local v, e = aws.call("dynamodb", "ListTables", {}); '
                            'return v ~= nil, aws.clock_offset(), tostring(e)')
        ctl(port, "/__clock__", {"skew": 0})
        t.ok(p.stdout.startswith("true\t"), "skewed server clock: corrected and retried", p.stdout)
        off = int(p.stdout.split("\t")[1]) if p.stdout.startswith("true\t") else 0
        t.ok(890 <= off <= 910, "offset ~900 s (%d)" % off)
        t.eq(len(log), 2, "one retry for skew")

        out = "".join(json.dumps(r) for r in log) + p.stdout + p.stderr
        p2, _ = call(port, LISTV)
        out += p2.stderr
        t.ok(SECRET not in out and "TOKEN-SECRET-XYZ" not in p.stderr + p2.stderr,
             "trace output has no secret key or session token")
        t.ok("event=aws.request" in p2.stderr and "attempt=1" in p2.stderr, "--trace: requests logged")
    finally:
        srv.stdin.close()
        srv.wait(timeout=10)
    return t.done()


sys.exit(main())
