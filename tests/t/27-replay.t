#!/usr/bin/env python3
"""`rotator replay --dry-run` on files with good, corrupt and non-DynamoDB records: the
plan for every good one, one error line (with its line number) per bad one, the
summary counts and the exit status; pretty-printed and concatenated documents; stdin;
a directory and a missing file say so with the next step."""
import json, os, re, subprocess, sys, tempfile

ROOT = os.environ.get("ROTATOR_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("ROTATOR") or os.path.join(ROOT, "rotator")
sys.path.insert(0, os.path.join(ROOT, "tests", "bed"))
from tap import Tap  # noqa: E402

t = Tap()
ACCT = "arn:aws:dynamodb:us-east-1:123456789012:table/"
TMP = tempfile.mkdtemp(prefix="rotator-replay-")
POLICIES = os.path.join(TMP, "policies")
os.mkdir(POLICIES)
with open(os.path.join(POLICIES, "main.lua"), "w") as f:
    f.write('rule { name = "staging", source_pattern = "(?i)-production$", replacement = "-staging" }\n')


def envelope(i, service="dynamodb"):
    table = f"t{i}-production"
    arn = f"arn:aws:{service}:us-east-1:123456789012:table/{table}" if service == "dynamodb" else \
        f"arn:aws:rds:us-east-1:123456789012:db:{table}"
    msg = (f"An AWS Backup job was completed successfully. Recovery point ARN: {arn}/backup/"
           f"01795575600000-{i:08x}. Backed up Resource ARN : {arn}. Backup Job Id : job-{i:08d}")
    attrs = {"EventType": "BACKUP_JOB", "State": "COMPLETED", "Id": f"job-{i:08d}",
             "StartTime": "2026-11-25T03:00:00.226Z"}
    return json.dumps({"Type": "Notification", "MessageId": f"m-{i}", "Message": msg,
                       "MessageAttributes": {k: {"Type": "String", "Value": v} for k, v in attrs.items()}})


def write(name, text):
    p = os.path.join(TMP, name)
    with open(p, "w") as f:
        f.write(text)
    return p


def replay(*paths, stdin=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run([BIN, "--policies", POLICIES, "--log-level", "warn", "replay", "--dry-run", *paths],
                          capture_output=True, text=True, timeout=60, env=env, input=stdin)


def restored(out):
    """Source tables of the planned restores, in order (from the backups restored)."""
    return [json.loads(l)["input"]["BackupArn"].split("/")[1] for l in out.stdout.splitlines()
            if json.loads(l)["call"] == "dynamodb.RestoreTableFromBackup"]


def bad_lines(out):
    return [int(m.group(1)) for m in re.finditer(r"event=replay\.bad_record .*?\bline=(\d+)", out.stderr)]


# 1..9 good, 3 truncated mid-string, 5 cut between tokens, 7 not a notification,
# 8 an RDS backup (skipped), 10 garbage
lines = [envelope(1), envelope(2), envelope(3)[:150], envelope(4), envelope(5)[:40], envelope(6),
         '{"hello": "world"}', envelope(8, service="rds"), envelope(9), "#### garbage ####", envelope(11)]
mixed = write("mixed.ndjson", "\n".join(lines) + "\n")
out = replay(mixed)
t.eq(restored(out), ["t1-production", "t2-production", "t4-production", "t6-production", "t9-production",
                     "t11-production"], "a plan for every good record, in order")
t.eq(bad_lines(out), [3, 5, 7, 10], "one error line per bad record, with its line number")
t.ok(re.search(r"line=3 offset=\d+ reason=\"line break inside a JSON string", out.stderr),
     "the reason and byte offset are given")
t.ok("rotator replay: " + mixed + ": 6 done, 1 skipped, 4 bad, 0 failed" in out.stderr, "summary counts")
t.eq(out.returncode, 3, "exit 3: some records were bad")
planned = [json.loads(l)["call"] for l in out.stdout.splitlines()]
t.eq(planned.count("dynamodb.TagResource"), 6, "each good record fully planned")

good = write("good.ndjson", envelope(1) + "\n" + envelope(2) + "\n")
out = replay(good)
t.eq((out.returncode, len(restored(out))), (0, 2), "all good: exit 0")

pretty = json.dumps(json.loads(envelope(1)), indent=2) + "\n" + json.dumps(json.loads(envelope(2)), indent=2)[:300] \
    + "\n" + json.dumps(json.loads(envelope(3)), indent=2) + json.dumps(json.loads(envelope(4)))
out = replay(write("pretty.json", pretty))
t.eq(restored(out), ["t1-production", "t3-production", "t4-production"],
     "pretty-printed and concatenated documents; a broken one costs only itself")
t.eq(len(bad_lines(out)), 1, "the broken document is one bad record")

out = replay("-", stdin="\n".join(lines[:4]) + "\n")
t.eq((restored(out), bad_lines(out)), (["t1-production", "t2-production", "t4-production"], [3]), "stdin")
t.ok("rotator replay: stdin: 3 done, 0 skipped, 1 bad, 0 failed" in out.stderr, "stdin summary")

out = replay(TMP)
t.ok(f"cannot read {TMP}: Is a directory; give the notification files inside it" in out.stderr,
     "a directory says so with the next step")
t.eq(out.returncode, 2, "exit 2 for an unreadable input")
out = replay(os.path.join(TMP, "missing.json"), good)
t.ok("No such file or directory; check the path" in out.stderr, "a missing file says so")
t.eq((out.returncode, len(restored(out))), (2, 2), "the other files still run")

help_ = subprocess.run([BIN, "replay", "--help"], capture_output=True, text=True)
t.ok("3  some records were bad" in help_.stdout and "Example" in help_.stdout, "--help documents the exit codes")
sys.exit(t.done())
