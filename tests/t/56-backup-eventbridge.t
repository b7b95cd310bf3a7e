#!/usr/bin/env sh
# AWS Backup through EventBridge on the bed (SigV4 and IAM checked, README's policy):
# `rotator setup --eventbridge --copy-jobs` makes an EventBridge rule on source aws.backup
# that delivers "Backup Job State Change" and "Copy Job
# State Change" events to the queue; `rotator run` restores the recovery point of a
# completed backup job and the destination recovery point of a completed copy job. The
# daemon is SIGKILLed while the restore job is RUNNING and restarted on the same state
# directory: it attaches to the journaled restore job and starts no second one. Killed
# again with the journal lost (a fresh state directory), the redelivered event calls
# StartRestoreJob again with the same IdempotencyToken and gets the same job back.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
export ROTATOR_ROOT="$root" ROTATOR="${ROTATOR:-$root/rotator}"
exec "$root/tests/bed/venv-python" - <<'PY'
import os, subprocess, sys, tempfile
sys.path.insert(0, os.path.join(os.environ["ROTATOR_ROOT"], "tests/bed"))
import bed
from bed import stop_process, wait_until
from tap import Tap

t = Tap()
ROTATOR = os.environ["ROTATOR"]
POLICY = """
rule { name = "payments", source_pattern = "^payments-production$", replacement = "payments-staging",
  ssm_parameter = "/rotator/payments", iam_role_arn = "%(role)s" }
"""


def table_of(arn):
    return arn.rsplit("/", 1)[-1] if arn else None


with bed.Emulator() as emu, tempfile.TemporaryDirectory() as tmp:
    policies, state = os.path.join(tmp, "policies"), os.path.join(tmp, "state")
    os.mkdir(policies)
    with open(os.path.join(policies, "payments.lua"), "w") as f:
        f.write(POLICY % {"role": emu.restore_role_arn})
    emu.create_table("payments-production", items=12)
    # `rotator setup --eventbridge --copy-jobs` (operator's keys) makes the rule, queue and policy.
    setup_env = bed.env_for_rotator(emu, keys=emu.admin_keys)
    runs = [subprocess.run([ROTATOR, "setup", "--eventbridge", "--copy-jobs"], env=setup_env,
                           capture_output=True, text=True, timeout=60) for _ in range(2)]
    t.ok([r.returncode for r in runs] == [0, 0], "setup --eventbridge succeeds twice", [r.stderr for r in runs])
    t.ok("created   eventbridge rule rotator-backup-events" in runs[0].stdout
         and "created   eventbridge target" in runs[0].stdout, "first run creates the rule and its target",
         runs[0].stdout)
    t.ok(all(line.startswith("unchanged") for line in runs[1].stdout.split("\n\n")[0].splitlines()),
         "second run changes nothing", runs[1].stdout)
    url = emu.admin_client("sqs").get_queue_url(QueueName="rotator-backup-events")["QueueUrl"]
    queue = bed.Queue(emu=emu, name="rotator-backup-events", url=url)
    b = emu.admin_client("backup")
    env = bed.env_for_rotator(emu, extra={
        "ROTATOR_WAIT_FIRST": "0.2", "ROTATOR_WAIT_MAX": "0.5", "ROTATOR_HEARTBEAT": "2",
        "ROTATOR_VISIBILITY_TIMEOUT": "6", "ROTATOR_RECEIVE_WAIT": "2"})
    cmd = [ROTATOR, "--policies", policies, "--state-dir", state, "run", "--queue-url", queue.url]
    log_path = os.path.join(tmp, "rotator.log")
    logf = open(log_path, "w")

    def lines(event, since=0):
        with open(log_path) as f:
            return [line for line in f.read()[since:].splitlines() if f"event={event} " in line]

    # The backup job completes (its events wait in the queue); restore jobs then stay RUNNING.
    job = emu.start_backup_job("payments-production")
    emu.backup_timing(pending=0.2, running=600)
    proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT)
    try:
        running = wait_until(lambda: [j for j in b.list_restore_jobs()["RestoreJobs"] if j["Status"] == "RUNNING"]
                             and [line for line in lines("restore_job.status") if "status=RUNNING" in line], 60)
        t.ok(running, "Backup Job State Change event: restore job started and RUNNING")
        jobs_before = b.list_restore_jobs()["RestoreJobs"]
        proc.kill()
        proc.wait()
        logf.write("### SIGKILL\n")
        logf.flush()
        killed_at = len(open(log_path).read())
        proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT)
        polled = wait_until(lambda: [line for line in lines("restore_job.status", killed_at)
                                     if "status=RUNNING" in line], 30)
        t.ok(polled and jobs_before[0]["RestoreJobId"] in polled[0],
             "the restarted daemon polls the journaled restore job (DescribeRestoreJob)", polled[:1])
        emu.backup_timing(pending=0.2, running=0.5)
        value = wait_until(lambda: emu.get_parameter("/rotator/payments"), 60)
        target = table_of(value)
        jobs = b.list_restore_jobs()["RestoreJobs"]
        t.eq(len(jobs), 1, "one restore job across the SIGKILL and restart")
        t.eq(jobs[0]["RecoveryPointArn"] if jobs else None, job["recovery_point_arn"],
             "the backup job's recovery point (the event's resources) restored")
        t.eq(table_of(jobs[0].get("CreatedResourceArn")) if jobs else None, target, "SSM names the job's table")
        t.eq(emu.item_count(target) if target else None, 12, "restored table holds the source's items")
        after = open(log_path).read()[killed_at:]
        t.ok("event=workflow.rearmed" in after and "event=restore.started" not in after,
             "after the restart: the journaled workflow re-armed, no second StartRestoreJob")

        # A copy job into another vault: the Copy Job State Change event's destination point.
        b.create_backup_vault(BackupVaultName="staging")
        cj = b.start_copy_job(RecoveryPointArn=job["recovery_point_arn"], SourceBackupVaultName="Default",
                              IamRoleArn=emu.restore_role_arn,
                              DestinationBackupVaultArn="arn:aws:backup:us-east-1:123456789012:backup-vault:staging")
        dest = wait_until(lambda: b.describe_copy_job(CopyJobId=cj["CopyJobId"])["CopyJob"].get(
            "DestinationRecoveryPointArn"), 30)
        copied = wait_until(lambda: [j for j in b.list_restore_jobs()["RestoreJobs"]
                                     if j["RecoveryPointArn"] == dest and j["Status"] == "COMPLETED"], 60)
        t.ok(copied, "Copy Job State Change event: the destination recovery point restored", dest)
        ctable = table_of(copied[0]["CreatedResourceArn"]) if copied else None
        t.ok(wait_until(lambda: ctable and emu.get_parameter("/rotator/payments") == copied[0]["CreatedResourceArn"],
                        30), "the copy's table became the SSM parameter's value")
        t.ok(wait_until(lambda: queue.depth()["visible"] + queue.depth()["in_flight"] == 0, 30),
             "every event handled and deleted", queue.depth())
        t.eq([line for line in lines("notification.skipped") if "not COMPLETED" in line], [],
             "the rule's pattern delivers only COMPLETED jobs' events (nothing left to skip)")

        # The journal lost as well (a new host, a fresh state directory): the redelivered
        # event starts the workflow again, and the same IdempotencyToken gets the same job.
        stop_process(proc)
        second = emu.start_backup_job("payments-production")
        emu.backup_timing(pending=0.2, running=600)
        proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT)
        first_job = wait_until(lambda: [j for j in b.list_restore_jobs()["RestoreJobs"]
                                        if j["RecoveryPointArn"] == second["recovery_point_arn"]
                                        and j["Status"] == "RUNNING"], 60)
        proc.kill()
        proc.wait()
        logf.write("### SIGKILL, new state directory\n")
        logf.flush()
        mark = len(open(log_path).read())
        cmd = [ROTATOR, "--policies", policies, "--state-dir", os.path.join(tmp, "state2"), "run",
               "--queue-url", queue.url]
        proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT)
        again = wait_until(lambda: lines("restore.started", mark), 60)
        emu.backup_timing(pending=0.2, running=0.5)
        t.ok(first_job and again and first_job[0]["RestoreJobId"] in again[0],
             "without a journal: StartRestoreJob again, the same token, the same restore job", again)
        done = wait_until(lambda: [j for j in b.list_restore_jobs()["RestoreJobs"]
                                   if j["RecoveryPointArn"] == second["recovery_point_arn"]
                                   and j["Status"] == "COMPLETED"], 60)
        t.ok(done and wait_until(lambda: emu.get_parameter("/rotator/payments") == done[0]["CreatedResourceArn"], 30),
             "that job completes and the workflow finishes")
        t.eq(len([j for j in b.list_restore_jobs()["RestoreJobs"]
                  if j["RecoveryPointArn"] == second["recovery_point_arn"]]), 1, "one restore job for that backup")
    finally:
        rc = stop_process(proc)
        logf.close()
    t.eq(rc, 0, "SIGTERM stops the daemon cleanly")
    log_text = open(log_path).read()
    t.ok(emu.rotator_keys.secret_access_key not in log_text, "no secret in the log")
    if t.failed:
        t.diag(log_text[-8000:])
sys.exit(t.done())
PY
