"""Each case runs one aws.call in `rotator eval` (the real binary, signed requests, IAM
checked by moto) through the FaultProxy, then reads the proxy's request log: how many
attempts reached it, with which fault, and what Rotator made of them."""
import json, os, subprocess, sys

ROOT = os.environ.get("ROTATOR_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("ROTATOR") or os.path.join(ROOT, "rotator")
sys.path.insert(0, os.path.join(ROOT, "tests", "bed"))
import bed  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
TABLE = "orders-staging-faults"
DESCRIBE = "DynamoDB_20120810.DescribeTable"

CHUNK = r'''
local aws, json = require "aws", require "json"
local r, e = aws.call(%s, %s, %s, %s)
print(json.encode({ ok = r ~= nil, items = r and r.Table and r.Table.ItemCount or json.null,
  code = e and e.code or json.null, retryable = e and e.retryable or false,
  offset = aws.clock_offset() }))
'''


def lua_table(d):
    return "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in d.items()) + "}"


def call(env, service="dynamodb", action="DescribeTable", params=None, opts=None):
    chunk = CHUNK % (json.dumps(service), json.dumps(action), lua_table(params or {"TableName": TABLE}),
                     lua_table(opts or {}))
    r = subprocess.run([BIN, "--log-level", "warn", "eval", chunk], env=env, capture_output=True,
                       text=True, timeout=60)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1]), r.stderr
    except (ValueError, IndexError):
        return {"ok": False, "code": "no output", "stderr": r.stderr[-2000:]}, r.stderr


with bed.Emulator() as emu, FaultProxy(emu.endpoint) as proxy:
    emu.create_table(TABLE, items=2)
    env = bed.env_for_rotator(emu, endpoint=proxy.endpoint)

    def case(name, setup, want_ok, attempts, faults=None, opts=None, **kw):
        proxy.clear()
        if setup:
            setup()
        res, err = call(env, opts=opts, **kw)
        try:  # a slow answer is logged when it ends, after the client has moved on
            proxy.wait_for(DESCRIBE, n=attempts, timeout=10)
        except TimeoutError:
            pass
        reqs = sorted(proxy.requests(DESCRIBE), key=lambda r: r.start)  # arrival order
        seen = [r.fault for r in reqs]
        good = res.get("ok") == want_ok and len(reqs) == attempts and (faults is None or seen == faults)
        t.ok(good, f"{name}: {'answered' if want_ok else 'failed'} after {len(reqs)} attempt(s) {seen}",
             f"result {res}\n{err[-1500:]}")
        return res

    res = case("no fault", None, True, 1, [None])
    t.eq(res.get("items"), 2, "the answer is moto's, through the proxy (signatures checked upstream)")
    case("503 once", lambda: proxy.error(DESCRIBE, status=503), True, 2, ["error", None])
    case("500 twice", lambda: proxy.error(DESCRIBE, status=500, count=2), True, 3, ["error", "error", None])
    res = case("500 on every attempt", lambda: proxy.error(DESCRIBE, status=500, count=5), False, 3)
    t.ok(res.get("retryable") is True, "attempts are bounded (3 by default) and the error says retryable")
    case("throttled twice", lambda: proxy.throttle(DESCRIBE, count=2), True, 3, ["throttle", "throttle", None])
    case("connection reset mid-response", lambda: proxy.reset(DESCRIBE), True, 2, ["reset", None])
    case("slow past the timeout", lambda: proxy.slow(DESCRIBE, seconds=4), True, 2, ["slow", None],
         opts={"timeout": 1})
    res = case("skewed clock (30 min)", lambda: proxy.skew(DESCRIBE, seconds=1800), True, 2, ["skew", None])
    t.ok(abs(res.get("offset", 0) - 1800) < 120, f"the clock offset is taken from the server's Date ({res.get('offset')} s)")

    proxy.clear()
    res, _ = call(env, params={"TableName": "no-such-table-staging-x"})
    n = len(proxy.requests(DESCRIBE))
    t.ok(res.get("code") == "ResourceNotFoundException" and n == 1, f"a missing table is not retried ({n} attempt)")
    proxy.clear()
    res, _ = call(env, action="CreateTable", params={"TableName": "x-staging-y"})
    n = len(proxy.requests("DynamoDB_20120810.CreateTable"))
    t.ok(res.get("code") == "AccessDeniedException" and n == 1,
         f"an action outside the IAM policy is denied and not retried ({res.get('code')}, {n} attempt)")

sys.exit(t.done())
