"""Retention deletes only what it can prove is Rotator's, and the dry run is the run
(tests/t/92-retention.t), on moto with IAM checked.

The situation: Rotator copies of orders-production from earlier backups, the SSM
parameter left on an old copy, and look-alikes that must survive: a partly tagged
restore, a fully tagged restore of another source's backup, a copy whose tags cannot be
read and one that cannot be described (IAM deny), an untagged table of the right name.
A `run --dry-run` plans the DeleteTable calls; `rotator retention --explain` lists every
table with its reason; the real run then deletes exactly the planned tables, no more
than retention.max_deletes."""
import json, os, re, subprocess, sys, tempfile
sys.path.insert(0, os.path.join(os.environ["ROTATOR_ROOT"], "tests/bed"))
import bed
from bed import stop_process, wait_until
from tap import Tap

t = Tap()
ROTATOR = os.environ["ROTATOR"]
PARAM = "/rotator/orders-table-arn"
POLICY = """
rule {
  name = "staging",
  source_pattern = "-production$",
  replacement = "-staging",
  ssm_parameter = "%(param)s",
  retention = { keep = 2, max_deletes = 3 },
}
"""


def copy(hour, day=25):
    return "orders-staging-202611%02d-%02d-00-00" % (day, hour)


OLD = [copy(0, 24), copy(1), copy(2), copy(3), copy(4)]   # Rotator's, oldest first
NEW = copy(6)                                               # this run's copy
PARTLY = copy(5, 20)        # rotator:source + rotator:rule, no rotator:backup-job
FOREIGN = copy(6, 20)       # full tags, restored from invoices-production's backup
NO_TAGS_READ = copy(7, 20)  # ListTagsOfResource denied
NO_DESCRIBE = copy(8, 20)   # DescribeTable denied
UNTAGGED = copy(9, 20)      # right name, no tags, not a restore


def full_tags(job):
    return [{"Key": "rotator:source", "Value": "orders-production"}, {"Key": "rotator:rule", "Value": "staging"},
            {"Key": "rotator:backup-job", "Value": job}]


def start_daemon(args, env, path):
    out = open(path, "w")
    return subprocess.Popen([ROTATOR, *args], env=env, stdout=out, stderr=subprocess.STDOUT), out


def stop(proc, out):
    rc = stop_process(proc)
    out.close()
    return rc


def read(path):
    with open(path) as f:
        return f.read()


with bed.Emulator() as emu, tempfile.TemporaryDirectory() as tmp:
    policies = os.path.join(tmp, "policies")
    os.mkdir(policies)
    with open(os.path.join(policies, "staging.lua"), "w") as f:
        f.write(POLICY % {"param": PARAM})
    ddb = emu.admin_client("dynamodb")
    emu.create_table("orders-production", items=3)
    emu.create_table("invoices-production", items=1)
    orders_backup = emu.create_backup("orders-production")
    invoices_backup = emu.create_backup("invoices-production")

    def restore(name, backup, tags):
        ddb.restore_table_from_backup(TargetTableName=name, BackupArn=backup)
        wait_until(lambda: (emu.describe_table(name) or {}).get("TableStatus") == "ACTIVE", 30)
        if tags:
            ddb.tag_resource(ResourceArn=emu.describe_table(name)["TableArn"], Tags=tags)

    for i, name in enumerate(OLD):
        restore(name, orders_backup, full_tags("job-old-%d" % i))
    restore(PARTLY, orders_backup, full_tags("x")[:2])
    restore(FOREIGN, invoices_backup, full_tags("job-foreign"))
    restore(NO_TAGS_READ, orders_backup, full_tags("job-t"))
    restore(NO_DESCRIBE, orders_backup, full_tags("job-d"))
    emu.create_table(UNTAGGED, items=1)
    # The parameter was left on an old copy: the dry run must plan as if it had moved on.
    emu.put_parameter(PARAM, emu.describe_table(copy(2))["TableArn"])
    # Read failures for two candidates: an explicit IAM deny on the Rotator user.
    arn_of = {n: emu.describe_table(n)["TableArn"] for n in (NO_TAGS_READ, NO_DESCRIBE)}
    emu.admin_client("iam").put_user_policy(UserName=bed.ROTATOR_USER, PolicyName="deny-two-tables",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Action": "dynamodb:ListTagsOfResource", "Resource": arn_of[NO_TAGS_READ]},
            {"Effect": "Deny", "Action": "dynamodb:DescribeTable", "Resource": arn_of[NO_DESCRIBE]}]}))
    before = set(emu.table_names())

    pipe = emu.create_backup_pipeline()
    backup = emu.create_backup("orders-production")
    JOB = "7d1f0c52-3b7e-4a8e-9c1e-2f4b6a8d0e13"
    pipe.publish(backup_arn=backup, job_id=JOB, start_time="2026-11-25T06:00:00Z")
    state = os.path.join(tmp, "state")
    env = bed.env_for_rotator(emu, extra={"ROTATOR_STATE_DIR": state,
        "ROTATOR_WAIT_FIRST": "0.2", "ROTATOR_WAIT_MAX": "0.5", "ROTATOR_VISIBILITY_TIMEOUT": "2"})

    # 1. The dry run.
    dry_path = os.path.join(tmp, "dry.out")
    proc, out = start_daemon(["--policies", policies, "run", "--dry-run", "--queue-url", pipe.queue.url], env, dry_path)
    try:
        wait_until(lambda: "retention.done" in read(dry_path), 60)
    finally:
        stop(proc, out)
    dry_text = read(dry_path)
    plans = [json.loads(l) for l in dry_text.splitlines() if l.startswith('{"call"')]
    planned = [p["input"]["TableName"] for p in plans if p["call"] == "dynamodb.DeleteTable"]
    t.eq(planned, [copy(0, 24), copy(1), copy(2)], "dry run: the three oldest, the parameter's old value included")
    t.ok(all(p.get("reason", "").startswith("beyond the newest 2") for p in plans if p["call"] == "dynamodb.DeleteTable"),
         "each planned DeleteTable carries its reason", plans)
    t.eq(set(emu.table_names()), before, "the dry run deleted and restored nothing")
    warned = [l for l in dry_text.splitlines() if "event=retention.read_failed" in l and "level=warn" in l]
    t.ok(any("table=" + NO_TAGS_READ in l for l in warned) and any("table=" + NO_DESCRIBE in l for l in warned),
         "read failures are logged as warnings naming the table", warned)

    # 2. --explain: every table of the rule's name shape, with its reason (the parameter
    # where it is now: on copy(2)).
    ex = subprocess.run([ROTATOR, "--policies", policies, "--log-level", "warn", "retention", "--explain", "staging"],
                        env=env, capture_output=True, text=True, timeout=60)
    t.eq(ex.returncode, 0, "retention --explain exits 0")
    if ex.returncode != 0:
        t.diag(ex.stderr)
    rows = {}
    for line in ex.stdout.splitlines()[1:]:
        verdict, name, reason = line.split(None, 2)
        rows[name] = (verdict, reason)
    if not t.eq(sorted(rows), sorted(OLD + [PARTLY, FOREIGN, NO_TAGS_READ, NO_DESCRIBE, UNTAGGED]),
                "--explain lists every table considered"):
        t.diag(ex.stdout)
    want = {
        copy(4): ("keep", "within the retention policy"),
        copy(3): ("keep", "within the retention policy"),
        copy(2): ("keep", "the SSM parameter %s points to it" % PARAM),
        copy(1): ("DELETE", "beyond the newest 2"),
        copy(0, 24): ("DELETE", "beyond the newest 2"),
        PARTLY: ("keep", "tag rotator:backup-job is missing"),
        FOREIGN: ("keep", "restored from a backup of arn:aws:dynamodb:us-east-1:123456789012:table/invoices-production"),
        NO_TAGS_READ: ("keep", "could not read it (dynamodb.ListTagsOfResource: AccessDenied"),
        NO_DESCRIBE: ("keep", "could not read it (dynamodb.DescribeTable: AccessDenied"),
        UNTAGGED: ("keep", "tag rotator:source is missing"),
    }
    for name, (verdict, fragment) in want.items():
        got = rows.get(name, ("?", ""))
        t.ok(got[0] == verdict and fragment in got[1], "--explain %s: %s (%s)" % (name, verdict, fragment), got)

    # 3. The real run: exactly the planned deletions.
    run_path = os.path.join(tmp, "run.out")
    proc, out = start_daemon(["--policies", policies, "run", "--queue-url", pipe.queue.url], env, run_path)
    try:
        wait_until(lambda: "retention.done" in read(run_path), 60)
        # The REPL helper on the running daemon gives what --explain gives.
        in_repl = subprocess.run([ROTATOR, "repl"], input="return retention('staging')\n", env=env,
                                 capture_output=True, text=True, timeout=30)
        ex2 = subprocess.run([ROTATOR, "--policies", policies, "--log-level", "warn", "retention", "--explain", "staging"],
                             env=env, capture_output=True, text=True, timeout=60)
    finally:
        rc = stop(proc, out)
    def masked(text):  # AWS request ids differ from one read to the next
        return re.sub(r"request id [A-Za-z0-9]+", "request id ?", text).strip()
    t.ok(ex2.returncode == 0 and masked(ex2.stdout) and masked(ex2.stdout) in masked(in_repl.stdout),
         "retention('staging') in the REPL lists the same as --explain", [in_repl.stdout, in_repl.stderr, ex2.stdout])
    t.eq(rc, 0, "daemon stopped cleanly")
    run_text = read(run_path)
    after = set(emu.table_names())
    gone = sorted(before - after)
    t.eq(gone, sorted(planned), "the run deleted exactly what the dry run planned")
    t.ok(emu.get_parameter(PARAM).endswith(NEW), "SSM points at the new copy")
    t.ok(NEW in after and copy(4) in after, "the two newest are kept")
    t.ok(copy(3) in after, "the cap (max_deletes = 3) kept the fourth deletable copy")
    for name in (PARTLY, FOREIGN, NO_TAGS_READ, NO_DESCRIBE, UNTAGGED, "orders-production", "invoices-production"):
        t.ok(name in after, "%s survives" % name)
    deleted_lines = [l for l in run_text.splitlines() if "event=retention.deleted" in l]
    t.eq(len(deleted_lines), 3, "one log line per deletion")
    t.ok(all(any(("table=" + n) in l for l in deleted_lines) for n in planned) and
         all("source_backup_arn=" in l and "backup_job=job-old-" in l for l in deleted_lines),
         "each deletion's log line names the table and its evidence", deleted_lines)
    t.ok("retention.read_failed" in run_text, "the run skips the unreadable tables with a warning")

    # The journal holds the evidence of each deletion, recorded as its own step.
    jr = subprocess.run([ROTATOR, "--log-level", "warn", "journal", "show", JOB, "--json"], env=env,
                        capture_output=True, text=True, timeout=30)
    hist = json.loads(jr.stdout).get("history", []) if jr.returncode == 0 else []
    journaled = []
    for h in hist:
        if h["step"] == "Retention Delete":
            step = [x for x in h["doc"]["Steps"] if x["State"] == "Retention"][-1]
            e = step["Deletions"][-1]
            journaled.append((e["Table"], e["Evidence"]["tags"]["rotator:backup-job"].startswith("job-old-"),
                              e["Evidence"]["source_backup_arn"] == orders_backup, e.get("Result")))
    t.eq(journaled, [(n, True, True, None) for n in planned],
         "each deletion journaled, with its evidence, before its DeleteTable call")
    if t.failed:
        t.diag(dry_text[-6000:])
        t.diag(run_text[-6000:])
sys.exit(t.done())
