#!/usr/bin/env sh
# A rule pattern that backtracks exponentially (`^([a-z0-9]+-?)*$`) against a table name
# that makes PCRE2 hit its match limit: never a crash. `replay` logs one
# notification.match_failed line naming the rule, the pattern and the table, plans the
# alert, and runs the next notification; the daemon on moto counts it (status), publishes
# the alert and leaves the SQS message undeleted (it reaches the dead-letter queue).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
export ROTATOR_ROOT="$root" ROTATOR="${ROTATOR:-$root/rotator}"
exec "$root/tests/bed/venv-python" - <<'PY'
import json, os, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.join(os.environ["ROTATOR_ROOT"], "tests/bed"))
import bed
from bed import stop_process, wait_until
from tap import Tap

t = Tap()
ROTATOR = os.environ["ROTATOR"]
PATTERN = "^([a-z0-9]+-?)*$"
BAD = "a" * 40 + "_"       # 41 characters: every split of the a's is tried before failing
GOOD = "orders"
TOPIC = "arn:aws:sns:us-east-1:123456789012:rotator-alerts"


def policy(tmp, topic):
    d = os.path.join(tmp, "policies")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "main.lua"), "w") as f:
        f.write('rule {\n  name = "backtracker",\n  source_pattern = "%s",\n  replacement = "$0-staging",\n'
                '  alert_topic_arn = "%s",\n}\n' % (PATTERN, topic))
    return d


def envelope(i, table):
    backup = f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}/backup/01795575600000-{i:08x}"
    n = bed.backup_notification(backup_arn=backup, job_id=f"job-{i:08d}", start_time="2026-11-25T03:00:00.226Z")
    return json.dumps(n.envelope())


# ---- replay: the first notification hits the limit, the second is processed
with tempfile.TemporaryDirectory() as tmp:
    pol = policy(tmp, TOPIC)
    path = os.path.join(tmp, "two.ndjson")
    with open(path, "w") as f:
        f.write(envelope(1, BAD) + "\n" + envelope(2, GOOD) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    r = subprocess.run([ROTATOR, "--policies", pol, "replay", "--dry-run", path], capture_output=True,
                       text=True, timeout=60, env=env)
    calls = [json.loads(line) for line in r.stdout.splitlines()]
    t.ok("record.crashed" not in r.stderr and "message.crashed" not in r.stderr, "no crash")
    lines = [l for l in r.stderr.splitlines() if "event=notification.match_failed" in l]
    t.eq(len(lines), 1, "one match_failed line")
    line = lines[0] if lines else ""
    for want in ("rule=backtracker", f"pattern={PATTERN}", f"table={BAD}", 'error="match limit exceeded"',
                 "message_id=%s:1" % path, "backup_job=job-00000001", "rule_at=%s/main.lua:1" % pol):
        t.ok(want in line, f"the line names {want}")
    restores = [c["input"]["TargetTableName"] for c in calls if c["call"] == "dynamodb.RestoreTableFromBackup"]
    t.eq(restores, [f"{GOOD}-staging-20261125-03-00-00"], "the next notification is restored, the first is not")
    alerts = [json.loads(c["input"]["Message"]) for c in calls if c["call"] == "sns.Publish"]
    t.eq(len(alerts), 1, "one alert planned")
    if alerts:
        a = alerts[0]
        t.ok(a["source_table"] == BAD and a["rule"] == "backtracker" and PATTERN in a["error"]
             and "match limit" in a["error"], "the alert names the table, the rule and the pattern")
    t.ok(f"{path}: 1 done, 0 skipped, 0 bad, 1 failed" in r.stderr, "counted as failed")
    t.eq(r.returncode, 1, "exit 1: a notification was not processed")
    if t.failed:
        t.diag(r.stderr[-3000:])

# ---- the daemon on moto: the message stays, the next one is processed
with bed.Emulator() as emu, tempfile.TemporaryDirectory() as tmp:
    alerts = emu.create_alerts()
    pol = policy(tmp, alerts.topic_arn)
    emu.create_table(BAD, items=1)
    emu.create_table(GOOD, items=1)
    bad_backup, good_backup = emu.create_backup(BAD), emu.create_backup(GOOD)
    pipe = emu.create_backup_pipeline(visibility_timeout=300, max_receive_count=1)
    state = os.path.join(tmp, "state")
    # a short visibility: the left message comes back within seconds and, past
    # max_receive_count, the queue's redrive policy moves it to the dead-letter queue
    env = bed.env_for_rotator(emu, extra={"ROTATOR_WAIT_FIRST": "0.2", "ROTATOR_WAIT_MAX": "0.4",
                                          "ROTATOR_RECEIVE_WAIT": "1", "ROTATOR_STATE_DIR": state,
                                          "ROTATOR_VISIBILITY_TIMEOUT": "3", "ROTATOR_HEARTBEAT": "1"})
    log_path = os.path.join(tmp, "rotator.log")
    logf = open(log_path, "w")
    proc = subprocess.Popen([ROTATOR, "--policies", pol, "--state-dir", state, "run", "--queue-url",
                             pipe.queue.url], env=env, stdout=logf, stderr=subprocess.STDOUT)

    def text():
        with open(log_path) as f:
            return f.read()
    status = {}
    try:
        t.ok(wait_until(lambda: "event=intake.started" in text(), 20, step=0.05), "daemon started")
        pipe.publish(backup_arn=bad_backup, job_id="bad-job", start_time="2026-11-25T03:00:00Z")
        pipe.publish(backup_arn=good_backup, job_id="good-job", start_time="2026-11-25T03:00:00Z")
        t.ok(wait_until(lambda: "event=notification.match_failed" in text(), 20, step=0.05), "match failure logged")
        t.ok(wait_until(lambda: "event=workflow.complete" in text() and "workflow=good-job" in text(), 30,
                        step=0.1), "the next notification's workflow completed")
        t.ok(wait_until(lambda: text().count("event=message.deleted") >= 1, 10, step=0.05), "its message deleted")
        t.ok(wait_until(lambda: "event=message.left" in text(), 10, step=0.05), "the failing message is left")
        t.ok(wait_until(lambda: pipe.queue.depth()["dlq"] == 1, 30, step=0.5),
             "the left message reached the dead-letter queue")
        r = subprocess.run([ROTATOR, "--state-dir", state, "status", "--json"], capture_output=True, text=True,
                           timeout=10, env=env)
        try:
            status = json.loads(r.stdout)
        except ValueError:
            t.diag("status: " + r.stdout + r.stderr)
    finally:
        stop_process(proc)
        logf.close()
    log = text()
    t.ok("record.crashed" not in log and "message.crashed" not in log, "no crash in the daemon")
    t.ok(f"event=policy.warning at={pol}/main.lua:3 " in log and "(backtrack)" in log,
         "the daemon logged check's warning at the pattern's line when it loaded the policy")
    t.eq((status.get("queue") or {}).get("match_failed"), 1, "status counts the match failure")
    t.eq(pipe.queue.depth(), {"visible": 0, "in_flight": 0, "dlq": 1},
         "the failing message was never deleted: it is in the DLQ, the other one is gone")
    got = [json.loads(m) for m in alerts.messages(wait=5)]
    t.ok(len(got) == 1 and got[0]["source_table"] == BAD and PATTERN in got[0]["error"],
         "the alert reached the topic, naming table and pattern")
    t.ok(BAD + "-staging" not in " ".join(emu.table_names()), "nothing restored for the failing table")
    t.ok(any(n.startswith(GOOD + "-staging-") for n in emu.table_names()), "the good table restored")
    if t.failed:
        t.diag(log[-6000:])
sys.exit(t.done())
PY
