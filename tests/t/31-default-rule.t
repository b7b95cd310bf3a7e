#!/usr/bin/env python3
"""The original tool's settings beside policy rules: SOURCE_PATTERN / REPLACEMENT_PATTERN /
SSM_PARAMETER_NAME (or the flags) with policy files that declare rules make run, replay
and check refuse (exit 2) naming the files and the settings, until --default-rule says
where the default rule goes: first (before the policy rules), last (after), off (dropped).
The plans `replay --dry-run` prints show which rule acted."""
import json, os, subprocess, sys, tempfile

ROOT = os.environ.get("ROTATOR_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("ROTATOR") or os.path.join(ROOT, "rotator")
sys.path.insert(0, os.path.join(ROOT, "tests", "bed"))
from tap import Tap  # noqa: E402

t = Tap()
tmp = tempfile.mkdtemp(prefix="rotator-default-rule-")
pol = os.path.join(tmp, "policies")
os.mkdir(pol)
policy_file = os.path.join(pol, "staging.lua")
with open(policy_file, "w") as f:
    f.write('rule { name = "staging", source_pattern = "-production$", replacement = "-staging",\n'
            '       ssm_parameter = "/rotator/staging/table-arn" }\n')
event = os.path.join(tmp, "event.json")
with open(event, "w") as f:
    json.dump({"Records": [{"EventSource": "aws:sns", "Sns": {
        "Type": "Notification", "Subject": "Notification from AWS Backup",
        "Message": "An AWS Backup job was completed successfully. Recovery point ARN: "
                   "arn:aws:dynamodb:us-east-1:123456789012:table/Customers-production/backup/01795575600000-a1b2c3d4. "
                   "Resource ARN : arn:aws:dynamodb:us-east-1:123456789012:table/Customers-production. "
                   "BackupJob ID : 5a772b5a-36d5-4a69-9b18-ed2f5213c659",
        "MessageAttributes": {"EventType": {"Type": "String", "Value": "BACKUP_JOB"},
                              "State": {"Type": "String", "Value": "COMPLETED"},
                              "StartTime": {"Type": "String", "Value": "2026-11-25T03:00:00Z"}}}}]}, f)

base = {k: v for k, v in os.environ.items()
        if not k.startswith("AWS_") and k not in ("SOURCE_PATTERN", "REPLACEMENT_PATTERN", "SSM_PARAMETER_NAME",
                                                  "ROTATOR_DEFAULT_RULE", "ROTATOR_QUEUE_URL")}
base.update(ROTATOR_STATE_DIR=os.path.join(tmp, "state"), AWS_EC2_METADATA_DISABLED="true")
SETTINGS = {"SOURCE_PATTERN": "-production$", "REPLACEMENT_PATTERN": "-qa", "SSM_PARAMETER_NAME": "/myapp/qa/table-arn"}


def eq(got, want, name, diag=None):
    t.ok(got == want, name, f"got {got!r}, want {want!r}\n{diag or ''}")


def rot(args, extra=None, timeout=30):
    env = dict(base, **(extra or {}))
    return subprocess.run([BIN, "--policies", pol] + args, env=env, capture_output=True, text=True, timeout=timeout)


def plans(r):
    out = {}
    for line in r.stdout.splitlines():
        c = json.loads(line)
        if c["call"] == "dynamodb.RestoreTableFromBackup":
            out["table"] = c["input"]["TargetTableName"]
        if c["call"] == "ssm.PutParameter":
            out["parameter"] = c["input"]["Name"]
    return out


def refused(r, what, names):
    t.ok(r.returncode == 2, f"{what}: refused with exit 2", (r.returncode, r.stderr[-400:]))
    missing = [n for n in names + [policy_file, "--default-rule"] if n not in r.stderr]
    t.ok(not missing, f"{what}: the message names the policy file, the settings and --default-rule", (missing, r.stderr))


# Policy rules alone, and the settings alone: no question to ask.
r = rot(["replay", "--dry-run", event])
eq(plans(r), {"table": "Customers-staging-20261125-03-00-00", "parameter": "/rotator/staging/table-arn"},
     "policy rules alone: the policy acts", r.stderr[-300:])
empty = os.path.join(tmp, "empty")
os.mkdir(empty)
r = subprocess.run([BIN, "--policies", empty, "replay", "--dry-run", event], env=dict(base, **SETTINGS),
                   capture_output=True, text=True, timeout=30)
eq(plans(r), {"table": "Customers-qa-20261125-03-00-00", "parameter": "/myapp/qa/table-arn"},
     "settings alone: the default rule acts (the original tool's behaviour)", r.stderr[-300:])

# Both: refused everywhere, by environment and by flags.
names = list(SETTINGS)
refused(rot(["replay", "--dry-run", event], SETTINGS), "replay with the environment settings", names)
refused(rot(["check"], SETTINGS), "check with the environment settings", names)
r = rot(["run"], SETTINGS, timeout=15)
refused(r, "run with the environment settings", names)
t.ok(not os.path.exists(os.path.join(tmp, "state", "journal.db")), "the refused run opened no journal")
refused(rot(["replay", "--dry-run", "--source-pattern", "-production$", "--replacement-pattern", "-qa", event]),
        "replay with the flags", ["--source-pattern", "--replacement-pattern"])
refused(rot(["check"], {"SSM_PARAMETER_NAME": "/myapp/qa/table-arn"}), "a single setting", ["SSM_PARAMETER_NAME"])

# The operator says which wins.
r = rot(["replay", "--dry-run", "--default-rule", "first", event], SETTINGS)
eq(plans(r), {"table": "Customers-qa-20261125-03-00-00", "parameter": "/myapp/qa/table-arn"},
     "--default-rule first: the default rule is evaluated before the policy rules", r.stderr[-300:])
r = rot(["replay", "--dry-run", "--default-rule", "last", event], SETTINGS)
eq(plans(r), {"table": "Customers-staging-20261125-03-00-00", "parameter": "/rotator/staging/table-arn"},
     "--default-rule last: the policy rule matches first", r.stderr[-300:])
other = dict(SETTINGS, SOURCE_PATTERN="^Customers-")
r = rot(["replay", "--dry-run", "--default-rule", "last", event], dict(other, REPLACEMENT_PATTERN="Reporting-"))
eq(plans(r).get("table"), "Customers-staging-20261125-03-00-00", "--default-rule last: still the policy rule for its table")
r = rot(["replay", "--dry-run", event], dict(SETTINGS, ROTATOR_DEFAULT_RULE="off"))
eq(plans(r), {"table": "Customers-staging-20261125-03-00-00", "parameter": "/rotator/staging/table-arn"},
     "ROTATOR_DEFAULT_RULE=off: the default rule is dropped", r.stderr[-300:])
r = rot(["check", "--default-rule", "first"], SETTINGS)
t.ok(r.returncode == 0 and "--default-rule first" in r.stdout and "1 rules" in r.stdout,
     "check with --default-rule passes and says where the default rule goes", (r.returncode, r.stdout, r.stderr))
r = rot(["check", "--default-rule", "sometimes"], SETTINGS)
t.ok(r.returncode == 2 and "first, last or off" in r.stderr, "an unknown --default-rule value is refused", r.stderr)
t.ok("--default-rule first|last|off" in rot(["run", "--help"]).stdout, "run --help documents --default-rule")
sys.exit(t.done())
