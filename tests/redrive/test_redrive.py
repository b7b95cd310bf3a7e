"""`rotator redrive` end to end on moto (IAM checked), tests/t/92-redrive.t: three
notifications fail under a broken policy and reach the dead-letter queue
(maxReceiveCount 1); the policy is fixed (rotator check, kill -HUP); a redrive killed
after the first message leaves the other two in the DLQ; a second redrive restores them;
each job is restored exactly once, a redelivered done job is deleted without a second
restore, and the DLQ ends empty. --to-source moves a message back to the source queue."""
import json, os, signal, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.join(os.environ["ROTATOR_ROOT"], "tests/bed"))
import bed
from bed import stop_process, wait_until
from faultproxy import FaultProxy
from tap import Tap

t = Tap()
ROTATOR = os.environ["ROTATOR"]
BROKEN = """rule { name = "staging", source_pattern = "-production$", replacement = "-staging",
  target_name = function(ctx) return ctx.default_name .. ctx.no_such_field end }
"""
FIXED = 'rule { name = "staging", source_pattern = "-production$", replacement = "-staging" }\n'
TABLES = ["alpha-production", "bravo-production", "charlie-production"]


def target(table, hour):
    return table.replace("-production", "-staging") + "-20261125-%02d-00-00" % hour


def restores(proxy, name):
    return [r for r in proxy.requests("RestoreTableFromBackup")
            if json.loads(r.request_body or b"{}").get("TargetTableName") == name and r.status == 200]


with bed.Emulator() as emu, FaultProxy(emu.endpoint) as proxy, tempfile.TemporaryDirectory() as tmp:
    policies = os.path.join(tmp, "policies")
    os.mkdir(policies)
    policy = os.path.join(policies, "staging.lua")
    with open(policy, "w") as f:
        f.write(BROKEN)
    pipe = emu.create_backup_pipeline(max_receive_count=1)
    env = bed.env_for_rotator(emu, endpoint=proxy.endpoint, extra={
        "ROTATOR_STATE_DIR": os.path.join(tmp, "state"), "ROTATOR_WAIT_FIRST": "0.2", "ROTATOR_WAIT_MAX": "0.5",
        "ROTATOR_VISIBILITY_TIMEOUT": "2", "ROTATOR_HEARTBEAT": "1", "ROTATOR_QUEUE_URL": pipe.queue.url})
    # redrive's own claim: long enough for a loaded machine, short enough to wait out
    renv = dict(env, ROTATOR_VISIBILITY_TIMEOUT="6")
    log_path = os.path.join(tmp, "rotator.log")
    out = open(log_path, "w")
    daemon = subprocess.Popen([ROTATOR, "--policies", policies, "run"], env=env, stdout=out, stderr=subprocess.STDOUT)

    def redrive(*args, timeout=60):
        return subprocess.run([ROTATOR, "--policies", policies, "redrive", *args], env=renv,
                              capture_output=True, text=True, timeout=timeout)
    try:
        for i, table in enumerate(TABLES, start=1):
            emu.create_table(table, items=2)
            b = emu.create_backup(table)
            pipe.publish(backup_arn=b, job_id="job-%d" % i, start_time="2026-11-25T%02d:00:00Z" % i)
        depth = wait_until(lambda: (lambda d: d["dlq"] == 3 and d["visible"] + d["in_flight"] == 0 and d)(pipe.queue.depth()), 40)
        t.ok(depth, "the three notifications that failed under the broken policy are in the DLQ", pipe.queue.depth())

        dry = redrive("--dry-run")
        t.ok(dry.returncode == 0, "redrive --dry-run exits 0", dry.stdout + dry.stderr[-2000:])
        shown = [l for l in dry.stdout.splitlines() if l.strip().startswith("table ")]
        t.eq(sorted(l.split()[1].rstrip(",") for l in shown), TABLES, "dry run shows each message's table")
        t.ok(all("rule now: staging" in l and "journal: Error" in l and "target_name failed" in l
                 for l in shown), "with the rule it matches now and why it failed before", dry.stdout)
        t.eq(pipe.queue.depth()["dlq"], 3, "a dry run changes nothing")
        t.eq(proxy.requests("RestoreTableFromBackup"), [], "no restore so far")

        with open(policy, "w") as f:
            f.write(FIXED)
        chk = subprocess.run([ROTATOR, "--policies", policies, "check"], env=env, capture_output=True, text=True, timeout=30)
        t.ok(chk.returncode == 0, "rotator check passes on the fixed policy", chk.stderr)
        daemon.send_signal(signal.SIGHUP)
        t.ok(wait_until(lambda: "reload.ok" in open(log_path).read(), 20), "the daemon reloaded the fixed policy")

        # Killed after the first message: the others stay in the DLQ.
        p = subprocess.Popen([ROTATOR, "--policies", policies, "redrive"], env=renv, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
        first = None
        for line in p.stdout:
            if "deleted from the dead-letter queue" in line:
                first = line
                p.kill()
                break
        p.wait(timeout=20)
        t.ok(first and "-> done" in first, "the first message was done and deleted", first)
        done_first = [tb for i, tb in enumerate(TABLES, 1) if first and target(tb, i) in first]
        t.eq(len(done_first), 1, "one message done before the kill")
        t.eq(pipe.queue.depth()["dlq"], 2, "the other two are still in the DLQ")

        # A redelivery of the done job (as if killed between journal and delete).
        idx = TABLES.index(done_first[0]) + 1 if done_first else 1
        n = bed.backup_notification(table_arn=None, backup_arn=emu.admin_client("dynamodb").list_backups(
            TableName=TABLES[idx - 1])["BackupSummaries"][0]["BackupArn"], job_id="job-%d" % idx,
            start_time="2026-11-25T%02d:00:00Z" % idx)
        emu.admin_client("sqs").send_message(QueueUrl=pipe.queue.dlq_url, MessageBody=json.dumps(n.envelope()))

        time.sleep(6.5)  # the message in hand at the kill comes back after its visibility timeout
        second = redrive()
        t.ok(second.returncode == 0, "the second redrive exits 0", second.stdout + second.stderr[-3000:])
        t.ok("3 messages: 3 done" in second.stderr, "it handled the two left and the redelivery", second.stderr[-500:])
        t.eq(pipe.queue.depth(), {"visible": 0, "in_flight": 0, "dlq": 0}, "the DLQ is empty")
        for i, table in enumerate(TABLES, start=1):
            name = target(table, i)
            t.ok(emu.describe_table(name), "%s restored" % name)
            t.eq(len(restores(proxy, name)), 1, "%s restored exactly once" % name)
        t.ok("message.already_complete" in second.stderr, "the redelivered done job was recognised from the journal")

        # --to-source: the daemon gets it back through the source queue (maxReceiveCount is
        # still 1: the receive in flight at the reload was handed over, not abandoned).
        n = bed.backup_notification(backup_arn=emu.create_backup(TABLES[0]), job_id="job-4",
                                    start_time="2026-11-25T04:00:00Z")
        emu.admin_client("sqs").send_message(QueueUrl=pipe.queue.dlq_url, MessageBody=json.dumps(n.envelope()))
        moved = redrive("--to-source")
        t.ok(moved.returncode == 0 and "sent to the source queue" in moved.stdout
             and "deleted from the dead-letter queue" in moved.stdout, "--to-source sends it back and deletes it",
             moved.stdout + moved.stderr[-2000:])
        t.ok(wait_until(lambda: emu.describe_table(target(TABLES[0], 4)), 45), "the daemon restored it from the source queue",
             pipe.queue.depth())
        t.eq(pipe.queue.depth()["dlq"], 0, "and it left the DLQ")
    finally:
        stop_process(daemon)
        out.close()
        if t.failed:
            t.diag(open(log_path).read()[-4000:])
sys.exit(t.done())
