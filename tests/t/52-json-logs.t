#!/usr/bin/env sh
# --log-format json on a real workflow: `rotator run` on moto (behind the fault proxy,
# which throttles the restore twice) with every AWS call traced. Every line the daemon
# writes to stderr must parse as JSON; numbers and booleans keep their types; every
# aws.* line of the workflow and of its message carries the workflow id and the message
# id. Then: a 100 KB value still gives one valid JSON line, shortened with a marker, and
# fatal errors follow --log-format json.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
export ROTATOR_ROOT="$root" ROTATOR="${ROTATOR:-$root/rotator}"
exec "$root/tests/bed/venv-python" - <<'PY'
import json, os, subprocess, sys, tempfile
sys.path.insert(0, os.path.join(os.environ["ROTATOR_ROOT"], "tests/bed"))
import bed
from bed import stop_process, wait_until
from faultproxy import FaultProxy
from tap import Tap

t = Tap()
ROTATOR = os.environ["ROTATOR"]
PARAM = "/rotator/orders-table-arn"
TARGET = "orders-staging-20261125-03-00-00"
JOB = "5a772b5a-36d5-4a69-9b18-ed2f5213c659"
POLICY = """
rule {
  name = "staging",
  source_pattern = "-production$",
  replacement = "-staging",
  ssm_parameter = "%s",
}
""" % PARAM
# The calls a workflow and the handling of its message make (not the poll or start-up).
WORKFLOW_CALLS = {"RestoreTableFromBackup", "DescribeTable", "PutParameter", "GetParameter",
                  "TagResource", "DeleteMessage", "ChangeMessageVisibility"}


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def parse_all(text):
    """Every non-empty line as JSON: (records, [bad lines])."""
    recs, bad = [], []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            recs.append(json.loads(line))
        except ValueError:
            bad.append(line)
    return recs, bad


with bed.Emulator() as emu, FaultProxy(emu.endpoint) as proxy, tempfile.TemporaryDirectory() as tmp:
    policies = os.path.join(tmp, "policies")
    os.mkdir(policies)
    with open(os.path.join(policies, "staging.lua"), "w") as f:
        f.write(POLICY)
    emu.create_table("orders-production", items=5)
    backup = emu.create_backup("orders-production")
    pipe = emu.create_backup_pipeline()
    pipe.publish(backup_arn=backup, job_id=JOB, start_time="2026-11-25T03:00:00Z", wording="legacy")
    proxy.throttle("DynamoDB_20120810.RestoreTableFromBackup", count=2)

    env = bed.env_for_rotator(emu, endpoint=proxy.endpoint, extra={
        "ROTATOR_WAIT_FIRST": "0.2", "ROTATOR_WAIT_MAX": "0.5", "ROTATOR_HEARTBEAT": "1",
        "ROTATOR_VISIBILITY_TIMEOUT": "30", "ROTATOR_TRACE_AWS": "1"})
    err_path = os.path.join(tmp, "stderr.log")
    errf = open(err_path, "w")
    proc = subprocess.Popen([ROTATOR, "--log-format", "json", "--policies", policies, "run",
                             "--queue-url", pipe.queue.url],
                            env=env, stdout=subprocess.DEVNULL, stderr=errf)
    try:
        value = wait_until(lambda: emu.get_parameter(PARAM), 60)
        t.ok(value, "the workflow ran to the SSM update")
        drained = wait_until(lambda: pipe.queue.depth()["visible"] + pipe.queue.depth()["in_flight"] == 0, 30)
        t.ok(drained, "the message was deleted", pipe.queue.depth())
    finally:
        rc = stop_process(proc)
        errf.close()
    text = open(err_path, encoding="utf-8").read()
    recs, bad = parse_all(text)
    t.ok(recs and not bad, "every stderr line parses as JSON (%d lines)" % len(recs), bad[:3])

    by_event = {}
    for r in recs:
        by_event.setdefault(r.get("event"), []).append(r)
    ready = (by_event.get("daemon.ready") or [{}])[0]
    t.ok(is_int(ready.get("pid")) and ready["pid"] == proc.pid, "daemon.ready: pid is an integer", ready)
    t.ok(isinstance(ready.get("dry_run"), bool) and is_int(ready.get("rules")), "daemon.ready: dry_run boolean, rules integer", ready)

    responses = by_event.get("aws.response", [])
    t.ok(responses and all(is_number(r.get("duration_ms")) and is_int(r.get("status")) and is_int(r.get("attempt"))
                           for r in responses),
         "aws.response: duration_ms, status and attempt are numbers (%d lines)" % len(responses),
         [r for r in responses if not is_number(r.get("duration_ms"))][:2])

    aws_lines = [r for e, rs in by_event.items() if e and e.startswith("aws.") for r in rs]
    ours = [r for r in aws_lines if r.get("action") in WORKFLOW_CALLS]
    missing = [r for r in ours if r.get("workflow") != JOB or not r.get("message_id")]
    t.ok(len(ours) >= 6 and not missing,
         "every aws.* line of the workflow and its message carries workflow and message_id (%d lines)" % len(ours),
         missing[:3])
    msg_ids = {r.get("message_id") for r in ours}
    t.ok(len(msg_ids) == 1, "one message id on all of them", msg_ids)
    retries = by_event.get("aws.retry", [])
    t.ok(len(retries) == 2 and all(r.get("workflow") == JOB and r.get("message_id") in msg_ids
                                   and is_int(r.get("delay_ms")) for r in retries),
         "the two throttled restores: aws.retry lines with the ids and a numeric delay", retries)
    actions = {r.get("action") for r in ours}
    t.ok({"RestoreTableFromBackup", "PutParameter", "DeleteMessage"} <= actions,
         "restore, SSM update and message delete are among them", sorted(actions))

    wf_lines = [r for e, rs in by_event.items() if e and e.startswith("workflow.") for r in rs]
    t.ok(wf_lines and all(r.get("workflow") == JOB and r.get("message_id") in msg_ids for r in wf_lines),
         "workflow.* lines carry both ids (%d lines)" % len(wf_lines), wf_lines[:2])
    deleted = by_event.get("message.deleted", [])
    t.ok(len(deleted) == 1 and deleted[0].get("workflow") == JOB and deleted[0].get("message_id") in msg_ids,
         "message.deleted carries both ids", deleted)
    complete = (by_event.get("workflow.complete") or [{}])[0]
    t.ok(is_number(complete.get("seconds")), "workflow.complete: seconds is a number", complete)

# --- a 100 KB value: one valid JSON line, shortened inside the string ---
with tempfile.TemporaryDirectory() as d:
    def rotator(*args):
        return subprocess.run([ROTATOR, *args], capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, ROTATOR_STATE_DIR=d))
    big = 100 * 1024
    r = rotator("--log-format", "json", "--policies", d, "eval",
                'require("log").info("test.big", {body = string.rep("x", %d), n = 7, ok = true})' % big)
    recs, bad = parse_all(r.stderr)
    ev = [x for x in recs if x.get("event") == "test.big"]
    t.ok(not bad and len(ev) == 1, "a 100 KB value gives one line that parses", bad[:1] and bad[0][:200])
    body = ev[0]["body"] if ev else ""
    t.ok(body.startswith("x" * 8000) and body.endswith("\u2026[truncated %d bytes]" % (big - 8192)),
         "the value is shortened with a marker inside the string", body[-60:])
    t.ok(ev and ev[0].get("n") == 7 and ev[0].get("ok") is True, "the fields after it are intact and typed")
    r = rotator("--policies", d, "eval", 'require("log").info("test.big", {body = string.rep("y", %d)})' % big)
    t.ok(r.stderr.count("\n") == 1 and ('\u2026[truncated %d bytes]"' % (big - 8192)) in r.stderr,
         "text mode: the same marker, one line")

    # --- every field of a Lua log call is written, however many ---
    r = rotator("--log-format", "json", "--policies", d, "eval",
                'local f = {} for i = 1, 100 do f["k" .. i] = i end require("log").info("test.wide", f)')
    recs, bad = parse_all(r.stderr)
    ev = [x for x in recs if x.get("event") == "test.wide"]
    t.ok(ev and all(ev[0].get("k%d" % i) == i for i in range(1, 101)), "100 fields: all written, as integers",
         r.stderr[:200])

    # --- a replay (dry run, offline) under json: every line parses, the summary is typed ---
    note = os.path.join(d, "note.json")
    msg = ("An AWS Backup job was completed successfully. Recovery point ARN: "
           "arn:aws:dynamodb:eu-west-1:111122223333:table/orders-production/backup/01795575600000-a1b2c3d4. "
           "Backed up Resource ARN : arn:aws:dynamodb:eu-west-1:111122223333:table/orders-production. "
           "Backup Job Id : " + JOB)
    with open(note, "w") as f:
        json.dump({"Type": "Notification", "MessageId": "m-1", "Message": msg, "Timestamp": "2026-11-25T03:41:07.512Z",
                   "MessageAttributes": {"State": {"Type": "String", "Value": "COMPLETED"},
                                         "StartTime": {"Type": "String", "Value": "2026-11-25T03:00:00Z"}}}, f)
    r = rotator("--log-format", "json", "--policies", d, "replay", "--dry-run", "--source-pattern", "-production$",
                "--replacement-pattern", "-staging", note)
    recs, bad = parse_all(r.stderr)
    summary = [x for x in recs if x.get("event") == "replay.summary"]
    t.ok(r.returncode == 0 and recs and not bad and len(summary) == 1 and summary[0].get("done") == 1
         and summary[0].get("failed") == 0 and summary[0].get("level") == "info",
         "replay under json: every line parses; replay.summary with integer counts", r.stderr[-400:])
    wf = [x for x in recs if str(x.get("event", "")).startswith("workflow.")]
    t.ok(wf and all(x.get("workflow") == JOB and x.get("message_id") for x in wf),
         "its workflow lines carry the workflow and where the record came from", wf[:2])

    # --- fatal errors follow --log-format json ---
    for args, what in ((["--log-format", "json", "--stop-timeout", "soon", "run"], "a bad global flag"),
                       (["--log-format", "json", "run", "--no-such-flag"], "a bad command flag"),
                       (["--log-format", "json", "no-such-command"], "an unknown command"),
                       (["--log-format", "json", "--policies"], "a global flag without its value"),
                       (["--log-format", "json", "--policies", os.path.join(d, "missing"), "run",
                         "--queue-url", "http://127.0.0.1:9/q"], "a start-up failure")):
        r = rotator(*args)
        recs, bad = parse_all(r.stderr)
        t.ok(r.returncode != 0 and recs and not bad and any(x.get("level") == "error" for x in recs),
             "%s: exit %d, JSON error lines only" % (what, r.returncode), r.stderr[:300])
sys.exit(t.done())
PY
