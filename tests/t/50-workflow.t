#!/usr/bin/env sh
# End to end on the moto emulator (IAM checked) behind the fault proxy: `rotator run`
# consumes the Backup notification queue, restores, waits, updates SSM. The Python part
# below runs in the test bed's venv and prints TAP.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
export ROTATOR_ROOT="$root" ROTATOR="${ROTATOR:-$root/rotator}"
exec "$root/tests/bed/venv-python" - <<'PY'
import json, os, signal, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.join(os.environ["ROTATOR_ROOT"], "tests/bed"))
import bed
from bed import stop_process, wait_until
from faultproxy import FaultProxy
from tap import Tap

t = Tap()
ROTATOR = os.environ["ROTATOR"]
PARAM = "/rotator/orders-table-arn"
TARGET = "orders-staging-20261125-03-00-00"
POLICY = """
rule {
  name = "staging",
  source_pattern = "-production$",
  replacement = "-staging",
  ssm_parameter = "%s",
}
""" % PARAM



def ok_status(records):
    return [r for r in records if r.status == 200]


with bed.Emulator() as emu, FaultProxy(emu.endpoint) as proxy, tempfile.TemporaryDirectory() as tmp:
    policies = os.path.join(tmp, "policies")
    os.mkdir(policies)
    with open(os.path.join(policies, "staging.lua"), "w") as f:
        f.write(POLICY)
    emu.create_table("orders-production", items=25)
    emu.create_table("users-dev", items=3)
    orders_backup = emu.create_backup("orders-production")
    users_backup = emu.create_backup("users-dev")
    pipe = emu.create_backup_pipeline()
    job = "5a772b5a-36d5-4a69-9b18-ed2f5213c659"
    pipe.publish(backup_arn=orders_backup, job_id=job, start_time="2026-11-25T03:00:00Z", wording="legacy")
    pipe.publish(backup_arn=users_backup, start_time="2026-11-25T03:00:00Z", wording="documented")
    pipe.publish(table_arn="arn:aws:ec2:us-east-1:123456789012:volume/vol-0123",
                 backup_arn="arn:aws:ec2:us-east-1::snapshot/snap-0123", start_time="2026-11-25T03:00:00Z")
    # FAILED jobs are filtered out by the subscription; put one straight into the queue.
    failed = bed.backup_notification(table_arn=orders_backup.split("/backup/")[0], job_id="f-1",
                                     start_time="2026-11-25T03:00:00Z", state="FAILED")
    pipe.send_raw(json.dumps(failed.envelope()) if isinstance(failed.envelope(), dict) else failed.envelope())
    proxy.throttle("DynamoDB_20120810.RestoreTableFromBackup", count=2)
    proxy.creating(count=3, table=TARGET)

    env = bed.env_for_rotator(emu, endpoint=proxy.endpoint, extra={
        "ROTATOR_WAIT_FIRST": "0.2", "ROTATOR_WAIT_MAX": "0.5", "ROTATOR_HEARTBEAT": "5",
        "ROTATOR_VISIBILITY_TIMEOUT": "30"})
    log_path = os.path.join(tmp, "rotator.log")
    logf = open(log_path, "w")
    proc = subprocess.Popen([ROTATOR, "--policies", policies, "run", "--queue-url", pipe.queue.url],
                            env=env, stdout=logf, stderr=subprocess.STDOUT)
    try:
        value = wait_until(lambda: emu.get_parameter(PARAM), 60)
        drained = wait_until(lambda: pipe.queue.depth()["visible"] + pipe.queue.depth()["in_flight"] == 0, 30)
        t.ok(drained, "every message deleted (handled or deliberately skipped)", pipe.queue.depth())
        table = emu.describe_table(TARGET)
        t.ok(table is not None, "matching backup restored to " + TARGET)
        t.eq(table and table.get("TableStatus"), "ACTIVE", "restored table is ACTIVE")
        t.eq(emu.item_count(TARGET) if table else None, 25, "restored table has the source's items")
        t.eq(value, table and table["TableArn"], "SSM parameter holds the restored table's ARN")
        t.ok(len(proxy.requests("dynamodb:DescribeTable", fault="creating")) >= 3, "CREATING phases ridden out")
        restores = proxy.requests("RestoreTableFromBackup")
        t.ok(len([r for r in restores if r.fault == "throttle"]) == 2, "throttled restores were retried")
        t.eq(len(ok_status(restores)), 1, "exactly one restore started")
        bodies = b"".join(r.request_body for r in restores)
        t.ok(b"users-dev" not in bodies and b"vol-0123" not in bodies and b"f-1" not in bodies,
             "non-matching table, non-DynamoDB resource and FAILED job made no restore call")
        t.eq(sorted(emu.table_names()), sorted(["orders-production", "users-dev", TARGET]), "no other table created")

        # Redelivery of the same job: no second restore, parameter unchanged, message deleted.
        proxy.clear()
        pipe.publish(backup_arn=orders_backup, job_id=job, start_time="2026-11-25T03:00:00Z", wording="documented")
        drained = wait_until(lambda: len(proxy.requests("sqs:DeleteMessage")) >= 1, 30)
        restores = proxy.requests("RestoreTableFromBackup")
        t.ok(drained, "redelivered notification handled and deleted")
        t.eq(len(ok_status(restores)), 0, "redelivery started no second restore")
        t.eq(emu.get_parameter(PARAM), value, "SSM parameter unchanged after redelivery")

        # An older backup finishing late must not move the parameter backwards.
        old_backup = emu.create_backup("orders-production")
        pipe.publish(backup_arn=old_backup, start_time="2026-11-25T02:00:00Z")
        older = "orders-staging-20261125-02-00-00"
        t.ok(wait_until(lambda: emu.describe_table(older) and emu.describe_table(older)["TableStatus"] == "ACTIVE", 30),
             "a late, older backup is still restored (" + older + ")")
        wait_until(lambda: pipe.queue.depth()["visible"] + pipe.queue.depth()["in_flight"] == 0, 30)
        t.eq(emu.get_parameter(PARAM), value, "SSM parameter keeps the newer backup's copy")
    finally:
        stop_started = time.time()
        rc = stop_process(proc)
        stop_took = time.time() - stop_started
        logf.close()
    t.eq(rc, 0, "SIGTERM stops the daemon cleanly")
    log_text = open(log_path).read()
    # The idle daemon sits in a 20 s long poll. A cancelled poll stays open at SQS and would
    # take the next message to nobody, so the stop waits for it (at most its wait time).
    t.ok("intake.receive_cancelled" not in log_text and "event=intake.stopping receive=open" in log_text
         and stop_took < 25, f"SIGTERM lets the SQS long poll finish rather than cancel it ({stop_took:.2f} s)")
    t.ok("notification.skipped" in log_text and "not a DynamoDB table" in log_text, "skips are logged with a reason")
    t.ok(emu.rotator_keys.secret_access_key not in log_text, "no secret in the log")
    if t.failed:
        t.diag(log_text[-6000:])
sys.exit(t.done())
PY
