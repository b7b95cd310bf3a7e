#!/usr/bin/env python3
"""`make install` into a temporary prefix, run from `/`: the installed binary finds its
scripts, reads its (empty) policy folder under the prefix and acts on nothing; the example
policy lands in the doc folder, not among live policies; the original tool's settings
(SOURCE_PATTERN, REPLACEMENT_PATTERN, SSM_PARAMETER_NAME) make the rule; a copied binary
says where it looked for its scripts."""
import json, os, shutil, subprocess, sys, tempfile

ROOT = os.environ.get("ROTATOR_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("ROTATOR") or os.path.join(ROOT, "rotator")
sys.path.insert(0, os.path.join(ROOT, "tests", "bed"))
from tap import Tap  # noqa: E402
from make_target import make  # noqa: E402

t = Tap()
tmp = tempfile.mkdtemp(prefix="rotator-install-")
prefix = os.path.join(tmp, "prefix")
r = make(ROOT, BIN, "install", "PREFIX=" + prefix)
t.ok(r.returncode == 0, "make install PREFIX=<tmp> succeeds", r.stderr[-500:])
inst = os.path.join(prefix, "bin", "rotator")
live = os.path.join(prefix, "etc", "rotator", "policies")
t.ok(os.path.isdir(live) and os.listdir(live) == [], "the policy folder is created empty", live)
t.ok(os.path.isfile(os.path.join(prefix, "share", "doc", "rotator", "examples", "example.lua")),
     "the example policy is installed under the doc folder")
env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SOURCE_", "REPLACEMENT_", "SSM_", "ROTATOR_POLICIES"))}
env["AWS_EC2_METADATA_DISABLED"] = "true"


def run(*args, extra=None, binary=inst):
    return subprocess.run([binary, *args], capture_output=True, text=True, cwd="/", env=dict(env, **(extra or {})), timeout=30)


r = run("check")
t.ok(r.returncode == 0 and "0 rules" in r.stdout, "the installed check, from /, reports no rules", r.stdout + r.stderr)

arn = "arn:aws:dynamodb:us-east-1:123456789012:table/Customers-Production"
note = json.dumps({"Type": "Notification", "MessageId": "m-1",
                   "Message": ("An AWS Backup job was completed successfully. Recovery point ARN: " + arn +
                               "/backup/01795575600000-abcdef12. Backed up Resource ARN : " + arn +
                               ". Backup Job Id : job-1"),
                   "MessageAttributes": {k: {"Type": "String", "Value": v} for k, v in {
                       "EventType": "BACKUP_JOB", "State": "COMPLETED", "Id": "job-1",
                       "StartTime": "2026-11-25T03:00:00.226Z"}.items()}})
ev = os.path.join(tmp, "event.json")
with open(ev, "w") as f:
    f.write(note + "\n")
r = run("replay", "--dry-run", ev)
t.ok("RestoreTableFromBackup" not in r.stdout and "staging" not in r.stdout,
     "with no policies and no settings a notification restores nothing", r.stdout[-400:])
r = run("replay", "--dry-run", ev, extra={"SOURCE_PATTERN": "-Production$", "REPLACEMENT_PATTERN": "-qa",
                                          "SSM_PARAMETER_NAME": "/myapp/qa/table-arn"})
t.ok("Customers-qa-20261125-03-00-00" in r.stdout and "/myapp/qa/table-arn" in r.stdout,
     "the original tool's three settings make the rule: target name and SSM parameter", r.stdout[-600:])

copy = os.path.join(tmp, "elsewhere", "rotator")
os.makedirs(os.path.dirname(copy))
shutil.copy(inst, copy)
r = run("check", binary=copy)
t.ok(r.returncode == 2 and "scripts" in r.stderr and "make install" in r.stderr,
     "a copied binary without scripts names where it looked and how to fix it", r.stderr[-400:])
r = run("version", binary=copy)
t.ok(r.returncode == 0 and r.stdout.strip() != "", "version works without scripts", r.stdout + r.stderr)
t.done()
