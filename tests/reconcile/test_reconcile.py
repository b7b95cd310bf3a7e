"""Reconcile end to end (tests/t/93-reconcile.t). The daemon is stopped while three AWS
Backup jobs of orders-production complete; their notifications are deleted from the queue.
`rotator reconcile --dry-run` prints one line: restore the newest; a daemon started with
reconcile on brings the SSM parameter to that copy with one restore (not three); the late
notification of that job is deleted without a second restore. Then a fourth backup, the
daemon SIGKILLed mid-restore and restarted: one restore job, the pointer on the newest.
A plain DynamoDB backup is reconciled under its ARN; select.tags leaves untagged tables."""
import json, os, signal, subprocess, sys, tempfile, time
from datetime import datetime, timezone
sys.path.insert(0, os.path.join(os.environ["ROTATOR_ROOT"], "tests/bed"))
import bed
from bed import stop_process, wait_until
from faultproxy import FaultProxy
from tap import Tap

t = Tap()
ROTATOR = os.environ["ROTATOR"]


def stamp(epoch):
    return datetime.fromtimestamp(int(epoch), timezone.utc).strftime("%Y%m%d-%H-%M-%S")


def iso(epoch):
    return datetime.fromtimestamp(int(epoch), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


with bed.Emulator() as emu, FaultProxy(emu.endpoint) as proxy, tempfile.TemporaryDirectory() as tmp:
    policies = os.path.join(tmp, "policies")
    os.mkdir(policies)
    with open(os.path.join(policies, "staging.lua"), "w") as f:
        f.write(f'''rule {{ name = "orders", source_pattern = "^orders-production$", replacement = "orders-staging",
  ssm_parameter = "/rotator/orders", iam_role_arn = "{emu.restore_role_arn}" }}
rule {{ name = "ledger", source_pattern = "^ledger-production$", replacement = "ledger-staging",
  ssm_parameter = "/rotator/ledger" }}
rule {{ name = "tagged", source_pattern = "^(.*)-tagprod$", replacement = "${{1}}-staging",
  select = {{ tags = {{ env = "production" }} }} }}
''')
    pipe = emu.create_backup_pipeline(filter_policy=None)
    emu.vault_notifications(pipe.topic_arn)
    emu.backup_timing(pending=0.1, running=0.3)
    emu.create_table("orders-production", items=3)
    emu.create_table("unrelated-table", items=1)
    emu.put_parameter("/rotator/orders", "arn:aws:dynamodb:us-east-1:123456789012:table/orders-staging-20200101-00-00-00")
    state = os.path.join(tmp, "state")
    env = bed.env_for_rotator(emu, endpoint=proxy.endpoint, extra={
        "ROTATOR_STATE_DIR": state, "ROTATOR_WAIT_FIRST": "0.2", "ROTATOR_WAIT_MAX": "0.5",
        "ROTATOR_QUEUE_URL": pipe.queue.url, "ROTATOR_RECEIVE_WAIT": "1"})

    def cli(*args, timeout=90):
        return subprocess.run([ROTATOR, "--policies", policies, *args], env=env, capture_output=True, text=True,
                              timeout=timeout)

    def restore_jobs():
        return emu.admin_client("backup").list_restore_jobs().get("RestoreJobs", [])

    def pointer(name="/rotator/orders"):
        return (emu.get_parameter(name) or "").rsplit("/", 1)[-1]

    # Three backups while the daemon is down; their notifications are lost.
    jobs = []
    for i in range(3):
        jobs.append(emu.start_backup_job("orders-production"))
        time.sleep(1.1)  # the copies' names carry the start time to the second
    b = emu.admin_client("backup")
    created = [b.describe_backup_job(BackupJobId=j["job_id"])["CreationDate"].timestamp() for j in jobs]
    newest = "orders-staging-" + stamp(created[2])
    t.ok(wait_until(lambda: pipe.queue.depth()["visible"] >= 3, 20), "three notifications reached the queue",
         pipe.queue.depth())
    t.eq(pipe.queue.drain(), 3, "and were deleted (lost)")

    dry = cli("reconcile", "--dry-run", "--rule", "orders")
    lines = dry.stdout.splitlines()
    t.ok(dry.returncode == 0, "reconcile --dry-run exits 0", dry.stderr[-2000:])
    want = (f"rule=orders source=orders-production pointer=orders-staging-20200101-00-00-00 "
            f"newest={iso(created[2])} (job {jobs[2]['job_id']}) action=restore -> {newest} "
            f'reason="pointer behind the newest backup"')
    t.eq(lines, [want, "reconcile: 2 tables, 1 in scope, 1 stale, 1 restores planned, 0 errors"],
         "the plan: one line, restore the newest of the three")
    t.eq(proxy.requests("backup:StartRestoreJob") + proxy.requests("RestoreTableFromBackup"), [],
         "a dry run restores nothing")
    t.eq(pointer(), "orders-staging-20200101-00-00-00", "nor moves the pointer")
    t.ok(len(proxy.requests("ListBackups")) >= 1 and any("/recovery-points/" in r.path for r in proxy.requests()),
         "it read both backup lists")

    log_path = os.path.join(tmp, "daemon.log")
    out = open(log_path, "w")
    daemon = subprocess.Popen([ROTATOR, "--policies", policies, "run", "--reconcile-every", "1h"], env=env,
                              stdout=out, stderr=subprocess.STDOUT)
    try:
        t.ok(wait_until(lambda: pointer() == newest, 60), "the daemon brought the pointer to the newest copy",
             pointer())
        t.eq(len(restore_jobs()), 1, "with one restore, not three")
        t.eq([r["RecoveryPointArn"] for r in restore_jobs()], [jobs[2]["recovery_point_arn"]], "of the newest backup")
        logs = open(log_path).read()
        stale = [l for l in logs.splitlines() if "event=reconcile.stale" in l]
        t.ok(len(stale) == 1 and "table=orders-production" in stale[0] and f"workflow={jobs[2]['job_id']}" in stale[0],
             "one reconcile.stale line naming the table and the workflow (the backup job id)", logs[-3000:])

        # The late notification of the same job attaches to that workflow: no second restore.
        pipe.publish(table_arn=jobs[2]["resource_arn"], backup_arn=jobs[2]["recovery_point_arn"],
                     job_id=jobs[2]["job_id"], start_time=iso(created[2]))
        t.ok(wait_until(lambda: "message.already_complete" in open(log_path).read()
                        and pipe.queue.depth() == {"visible": 0, "in_flight": 0, "dlq": 0}, 30),
             "the late notification finds the workflow Complete and is deleted", pipe.queue.depth())
        t.eq(len(restore_jobs()), 1, "still one restore")
        again = cli("reconcile", "--dry-run", "--rule", "orders")
        t.ok(again.returncode == 0 and 'action=none reason="up to date"' in again.stdout,
             "a dry run while the daemon runs (reading its journal) says up to date", again.stdout + again.stderr[-1500:])
        st = subprocess.run([ROTATOR, "status"], env=env, capture_output=True, text=True, timeout=20)
        t.ok("reconcile" in st.stdout and "stale_total" in st.stdout, "status shows the reconcile", st.stdout[-1500:])
        sj = subprocess.run([ROTATOR, "status", "--json"], env=env, capture_output=True, text=True, timeout=20)
        mets = (json.loads(sj.stdout or "{}").get("metrics") or {})
        def series(name):
            return {tuple(sorted((s.get("labels") or {}).items())): s.get("value")
                    for s in (mets.get(name) or {}).get("series") or []}
        t.eq(series("rotator_reconcile_stale_total"), {(("rule", "orders"),): 1},
             "metrics: one stale pointer counted for the rule")
        t.eq(series("rotator_reconcile_runs_total"), {(("result", "ok"),): 1}, "metrics: one reconcile run, ok")
        daemon.send_signal(signal.SIGHUP)
        t.ok(wait_until(lambda: "event=reload.ok" in open(log_path).read(), 30), "a reload with reconcile on succeeds",
             open(log_path).read()[-2000:])
        st = subprocess.run([ROTATOR, "status"], env=env, capture_output=True, text=True, timeout=20)
        t.ok("3600" in st.stdout, "and the reloaded state keeps the reconcile period", st.stdout[-1500:])
    finally:
        t.ok(stop_process(daemon) == 0, "the daemon stops cleanly")
        out.close()

    # A fourth backup; the restore is slow; SIGKILL mid-restore, restart: one restore job.
    j4 = emu.start_backup_job("orders-production")
    c4 = b.describe_backup_job(BackupJobId=j4["job_id"])["CreationDate"].timestamp()
    pipe.queue.drain()
    emu.backup_timing(pending=0.1, running=4)
    out = open(log_path, "w")
    daemon = subprocess.Popen([ROTATOR, "--policies", policies, "run", "--reconcile-every", "1h"], env=env,
                              stdout=out, stderr=subprocess.STDOUT)
    t.ok(wait_until(lambda: len(restore_jobs()) == 2, 30), "the reconcile started the fourth backup's restore")
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()
    out.close()
    out = open(log_path, "w")
    daemon = subprocess.Popen([ROTATOR, "--policies", policies, "run", "--reconcile-every", "1h"], env=env,
                              stdout=out, stderr=subprocess.STDOUT)
    try:
        t.ok(wait_until(lambda: pointer() == "orders-staging-" + stamp(c4), 60),
             "after SIGKILL and restart the pointer reaches the fourth copy", pointer())
        t.eq(len(restore_jobs()), 2, "one restore job for it (the resumed workflow, not a second one)")
        logs = open(log_path).read()
        t.ok("journal.resumed" in logs, "the killed workflow resumed from the journal", logs[-2000:])
        t.ok("event=reconcile.done" in logs and "event=reconcile.stale" not in logs,
             "the restarted reconcile found no stale pointer (the journaled workflow covers it)", logs[-2000:])
    finally:
        stop_process(daemon)
        out.close()

    # A plain DynamoDB backup (no job, no notification): its workflow id is the backup ARN.
    emu.create_table("ledger-production", items=2)
    ledger_backup = emu.create_backup("ledger-production")
    emu.create_table("a-tagprod", tags={"env": "production"})
    emu.create_table("b-tagprod", tags={"env": "test"})
    emu.create_backup("a-tagprod")
    emu.create_backup("b-tagprod")
    dry = cli("reconcile", "--dry-run")
    rows = {l.split()[1]: l for l in dry.stdout.splitlines() if l.startswith("rule=")}
    t.ok("pointer=none" in rows.get("source=ledger-production", "") and
         f"(backup {ledger_backup})" in rows.get("source=ledger-production", ""),
         "a plain DynamoDB backup is named by its ARN; the missing parameter is pointer=none", dry.stdout)
    t.ok("source=a-tagprod" in rows and "source=b-tagprod" not in rows,
         "select.tags keeps the tagged table and leaves the other", dry.stdout)
    real = cli("reconcile", "--rule", "ledger")
    t.ok(real.returncode == 0, "rotator reconcile --rule ledger restores", real.stdout + real.stderr[-2000:])
    t.ok(pointer("/rotator/ledger").startswith("ledger-staging-"), "and moves the ledger pointer", pointer("/rotator/ledger"))
    j = subprocess.run([ROTATOR, "journal", "show", ledger_backup], env=env, capture_output=True, text=True, timeout=20)
    t.ok(j.returncode == 0 and "Complete" in j.stdout, "its journaled workflow is the backup ARN's", j.stdout + j.stderr)
    bad = cli("reconcile", "--rule", "nope", "--dry-run")
    t.ok(bad.returncode == 2, "an unknown rule is bad usage", bad.stderr)
    badflag = cli("run", "--reconcile-every", "6x")
    t.ok(badflag.returncode == 2 and "--reconcile-every" in badflag.stderr and "7d" in badflag.stderr,
         "a bad --reconcile-every is refused at start, naming the flag and the syntax", badflag.stderr)
sys.exit(t.done())
