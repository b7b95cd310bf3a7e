"""aws.call against moto (signatures and IAM checked): DynamoDB ListTables/DescribeTable,
SSM PutParameter/GetParameter, a ResourceNotFound error, and a corrupted secret key
(ROTATOR_TEST_CORRUPT_SECRET=1, test-only) that moto must reject."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ["ROTATOR_ROOT"], "tests/bed"))
import bed  # noqa: E402
from tap import Tap  # noqa: E402

ROTATOR = os.environ["ROTATOR"]
ROOT = os.environ["ROTATOR_ROOT"]


def run_test_file(env):
    p = subprocess.run([ROTATOR, "test", os.path.join(ROOT, "tests/lua/aws_test.lua")],
                       env=env, capture_output=True, text=True, timeout=120)
    return p


def main():
    t = Tap()
    with bed.Emulator() as emu:
        emu.create_table("orders-production", items=3)
        env = bed.env_for_rotator(emu, base=dict(os.environ))
        env["ROTATOR_AWS_TEST_MODE"] = "moto"
        p = run_test_file(env)
        for line in p.stdout.splitlines():
            if line.startswith("ok ") or line.startswith("not ok "):
                t.ok(line.startswith("ok "), "lua: " + line.split(" - ", 1)[-1])
            elif line.startswith("#"):
                t.diag(line)
        t.eq(p.returncode, 0, "rotator test exits 0")
        if p.returncode:
            t.diag(p.stderr[-2000:])
        t.eq(emu.get_parameter("/rotator/aws-test"), "v-from-rotator", "moto holds the parameter we put")

        env["ROTATOR_TEST_CORRUPT_SECRET"] = "1"
        code = ('local aws = require "aws"; local v, e = aws.call("dynamodb", "ListTables", {}); '
                'return e and e.code, e and e.status, e and tostring(e)')
        p = subprocess.run([ROTATOR, "eval", code], env=env, capture_output=True, text=True, timeout=60)
        t.diag(p.stdout.strip())
        t.ok("Signature" in p.stdout and "400" in p.stdout, "corrupt secret: moto rejects the signature",
             p.stdout + p.stderr[-500:])
        secret = emu.rotator_keys.secret_access_key
        t.ok(secret not in p.stdout + p.stderr, "the secret key appears in no output")
    return t.done()


sys.exit(main())
