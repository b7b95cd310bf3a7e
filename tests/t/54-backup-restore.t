#!/usr/bin/env sh
# AWS Backup recovery points end to end on the bed's Backup control plane (SigV4 and IAM
# checked, README's policy): the vault's SNS notifications (both body wordings) reach the
# queue, `rotator run` restores each recovery point with StartRestoreJob, waits on the
# restore job, validates (PutRestoreValidationResult), updates SSM. Also: a copy job's
# destination recovery point; FAILED and ABORTED restore jobs (AWS's StatusMessage, one
# alert); a policy without the Describe actions (the prose fallback); a policy without
# iam:PassRole (AccessDenied named in the log).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
export ROTATOR_ROOT="$root" ROTATOR="${ROTATOR:-$root/rotator}"
exec "$root/tests/bed/venv-python" - <<'PY'
import json, os, sys, tempfile
sys.path.insert(0, os.path.join(os.environ["ROTATOR_ROOT"], "tests/bed"))
import bed
from bed import wait_until
from faultproxy import FaultProxy
from tap import Tap

t = Tap()
ROTATOR = os.environ["ROTATOR"]
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/7f1c7b52-3d5e-4a0e-9a43-1f9a55c2b1a0"
CHECK = """
  validation = { check = function(ctx)
    local src = assert(ctx.call("dynamodb", "DescribeTable", { TableName = ctx.source_table }))
    local n, start = 0, nil
    repeat
      local r = assert(ctx.call("dynamodb", "Scan", { TableName = ctx.table_name, Select = "COUNT",
        ExclusiveStartKey = start }))
      n, start = n + r.Count, r.LastEvaluatedKey
    until not start
    if n ~= src.Table.ItemCount then return false, ("restored %d items, the source has %d"):format(n, src.Table.ItemCount) end
    return true
  end },
"""
POLICY = """
rule { name = "orders", source_pattern = "^orders-production$", replacement = "orders-staging",
  ssm_parameter = "/rotator/orders", iam_role_arn = "%(role)s", copy_source_tags = true,
  tags = { env = "staging" }, retention = { keep = 1 }, %(check)s }
rule { name = "users", source_pattern = "^users-production$", replacement = "users-staging",
  ssm_parameter = "/rotator/users", iam_role_arn = "%(role)s",
  restore = { SSESpecificationOverride = { Enabled = true, SSEType = "KMS", KMSMasterKeyId = "%(kms)s" } } }
rule { name = "broken", source_pattern = "^(fail|abort)-production$", replacement = "$1-staging",
  ssm_parameter = "/rotator/broken", iam_role_arn = "%(role)s", alert_topic_arn = "%(alerts)s" }
rule { name = "prose", source_pattern = "^prose-production$", replacement = "prose-staging",
  ssm_parameter = "/rotator/prose", iam_role_arn = "%(role)s" }
rule { name = "guarded", source_pattern = "^guarded-production$", replacement = "guarded-staging",
  ssm_parameter = "/rotator/guarded", iam_role_arn = "%(role)s", alert_topic_arn = "%(alerts)s" }
"""


def items(emu, table):
    ddb, out, kw = emu.admin_client("dynamodb"), [], {"TableName": table}
    while True:
        r = ddb.scan(**kw)
        out += r["Items"]
        if not r.get("LastEvaluatedKey"):
            return sorted(json.dumps(i, sort_keys=True) for i in out)
        kw["ExclusiveStartKey"] = r["LastEvaluatedKey"]


def table_of(arn):
    return arn.rsplit("/", 1)[-1] if arn else None


def restore_jobs(emu):
    return emu.admin_client("backup").list_restore_jobs()["RestoreJobs"]


with bed.Emulator() as emu, FaultProxy(emu.endpoint) as proxy, tempfile.TemporaryDirectory() as tmp:
    alerts = emu.create_alerts()
    policies = os.path.join(tmp, "policies")
    os.mkdir(policies)
    with open(os.path.join(policies, "backup.lua"), "w") as f:
        f.write(POLICY % {"role": emu.restore_role_arn, "check": CHECK, "kms": KMS_KEY, "alerts": alerts.topic_arn})
    emu.create_table("orders-production", items=40, tags={"team": "orders"})
    emu.create_table("users-production", items=7)
    for name in ("fail-production", "abort-production", "prose-production", "guarded-production"):
        emu.create_table(name, items=3)
    pipe = emu.create_backup_pipeline(filter_policy={"EventType": ["BACKUP_JOB", "COPY_JOB"], "State": ["COMPLETED"]})
    emu.vault_notifications(pipe.topic_arn, wording="legacy")
    extra = {"ROTATOR_WAIT_FIRST": "0.2", "ROTATOR_WAIT_MAX": "0.5", "ROTATOR_HEARTBEAT": "5",
             "ROTATOR_VISIBILITY_TIMEOUT": "60", "ROTATOR_RECEIVE_WAIT": "2"}
    env = bed.env_for_rotator(emu, endpoint=proxy.endpoint, extra=extra)
    d = bed.Daemon(tmp, "rotator", env, policies, pipe.queue.url)
    try:
        # 1. A backup job of orders-production; the vault's notification in the legacy wording.
        orders = emu.start_backup_job("orders-production")
        value = wait_until(lambda: emu.get_parameter("/rotator/orders"), 60)
        target = table_of(value)
        t.ok(target and target.startswith("orders-staging-"), "SSM parameter names the restored copy", value)
        t.eq(items(emu, target) if target else None, items(emu, "orders-production"),
             "restored table holds exactly the source's items")
        jobs = [j for j in restore_jobs(emu) if table_of(j.get("CreatedResourceArn")) == target]
        t.eq(len(jobs), 1, "one restore job for the backup")
        job = jobs[0] if jobs else {}
        t.eq(job.get("RecoveryPointArn"), orders["recovery_point_arn"], "the backup job's recovery point restored")
        t.eq(emu.describe_table(target)["RestoreSummary"]["SourceBackupArn"] if target else None,
             orders["recovery_point_arn"], "the table's RestoreSummary names the recovery point")
        t.eq(job.get("IamRoleArn"), emu.restore_role_arn, "IamRoleArn is the rule's role")
        t.eq((job.get("ValidationStatus"), job.get("ValidationStatusMessage")),
             ("SUCCESSFUL", "Rotator validation passed"), "validation reported with PutRestoreValidationResult, "
             "visible in DescribeRestoreJob")
        tags = {x["Key"]: x["Value"] for x in emu.admin_client("dynamodb").list_tags_of_resource(
            ResourceArn=value)["Tags"]} if value else {}
        t.eq((tags.get("team"), tags.get("env"), tags.get("rotator:source")),
             ("orders", "staging", "orders-production"),
             "source tags copied (CopySourceTagsToRestoredResource), rule and Rotator tags added")
        start = [json.loads(r.request_body) for r in proxy.requests("StartRestoreJob")]
        t.eq([(s["Metadata"], s.get("CopySourceTagsToRestoredResource"), s["IdempotencyToken"]) for s in start],
             [({"targetTableName": target}, True, f"rotator-{orders['job_id']}-1")],
             "StartRestoreJob: Metadata targetTableName, CopySourceTagsToRestoredResource, a stable token")
        t.ok(proxy.requests("DescribeBackupJob") and proxy.requests("DescribeRecoveryPoint"),
             "the recovery point and table confirmed with DescribeBackupJob and DescribeRecoveryPoint")
        statuses = [line.split("status=")[1].split()[0] for line in d.events("restore_job.status")]
        t.ok(len(statuses) >= 2 and statuses[-1] == "COMPLETED" and set(statuses[:-1]) <= {"PENDING", "RUNNING"},
             "waited on DescribeRestoreJob (PENDING/RUNNING) until COMPLETED", statuses)

        # Redelivery of the same backup's notification: no second restore job.
        before = len(restore_jobs(emu))
        pipe.publish(table_arn=orders["resource_arn"], backup_arn=orders["recovery_point_arn"],
                     job_id=orders["job_id"], wording="documented", start_time=emu.admin_client("backup")
                     .describe_backup_job(BackupJobId=orders["job_id"])["CreationDate"])
        t.ok(wait_until(lambda: d.events("message.already_complete"), 30), "redelivery: journal says complete")
        t.eq(len(restore_jobs(emu)), before, "redelivery started no second restore job")

        # 2. The documented wording; the rule asks for a KMS key. DescribeBackupJob answers 503
        #    however often it is retried: the prose is the fallback.
        proxy.clear_log()
        proxy.error("DescribeBackupJob", status=503, count=50)
        emu.vault_notifications(pipe.topic_arn, wording="documented")
        emu.start_backup_job("users-production")
        users = table_of(wait_until(lambda: emu.get_parameter("/rotator/users"), 60))
        proxy.clear_rules()
        t.eq(emu.item_count(users) if users else None, 7, "documented wording: restored, SSM updated")
        fb = [line for line in d.events("recovery_point.prose_fallback") if "users-production" in line]
        t.ok(fb and "DescribeBackupJob" in fb[0] and len(proxy.requests("DescribeBackupJob")) > 1,
             "DescribeBackupJob failing transiently (after retries): restored from the prose, logged", fb)
        meta = [json.loads(r.request_body)["Metadata"] for r in proxy.requests("StartRestoreJob")]
        t.eq(meta, [{"targetTableName": users, "encryptionType": "KMS", "kmsMasterKeyArn": KMS_KEY}],
             "Metadata carries the rule's encryption (encryptionType KMS, kmsMasterKeyArn)")

        # A notification naming a backup job AWS does not know: nothing restored, the workflow fails.
        before = len(restore_jobs(emu))
        pipe.publish(table_arn="arn:aws:dynamodb:us-east-1:123456789012:table/users-production",
                     backup_arn="arn:aws:backup:us-east-1:123456789012:recovery-point:0b8c3a7e-unknown",
                     job_id="0B8C3A7E-0000-4000-8000-000000000000", start_time="2026-11-25T04:00:00Z")
        failed = wait_until(lambda: [line for line in d.events("workflow.failed") if "0B8C3A7E" in line], 30)
        t.ok(failed and "ResourceNotFoundException" in failed[0] and "DescribeBackupJob" in failed[0],
             "an unknown backup job fails the workflow with AWS's answer", failed)
        t.eq(len(restore_jobs(emu)), before, "and starts no restore job")

        # 3. A copy job into another vault: its destination recovery point is restored.
        b = emu.admin_client("backup")
        b.create_backup_vault(BackupVaultName="staging")
        cj = b.start_copy_job(RecoveryPointArn=orders["recovery_point_arn"], SourceBackupVaultName="Default",
                              IamRoleArn=emu.restore_role_arn,
                              DestinationBackupVaultArn="arn:aws:backup:us-east-1:123456789012:backup-vault:staging")
        dest = wait_until(lambda: b.describe_copy_job(CopyJobId=cj["CopyJobId"])["CopyJob"].get(
            "DestinationRecoveryPointArn"), 30)
        copied = wait_until(lambda: [j for j in restore_jobs(emu) if j["RecoveryPointArn"] == dest
                                     and j["Status"] == "COMPLETED"], 60)
        t.ok(copied, "COPY_JOB notification: the destination recovery point restored", dest)
        ctable = table_of(copied[0]["CreatedResourceArn"]) if copied else None
        t.ok(wait_until(lambda: ctable and emu.get_parameter("/rotator/orders") == copied[0]["CreatedResourceArn"], 30),
             "the copy's table became the SSM parameter's value", ctable)
        t.eq(items(emu, ctable) if ctable else None, items(emu, "orders-production"), "copy restored with the items")
        t.ok(wait_until(lambda: emu.describe_table(target) is None, 30),
             "retention deleted the older recovery point's copy (keep = 1)", target)

        # 4. FAILED and ABORTED restore jobs: the workflow fails with AWS's StatusMessage, one alert each.
        for status, table, message in (("FAILED", "fail-production", "Access denied to KMS key"),
                                       ("ABORTED", "abort-production", "Restore aborted by an operator")):
            emu.backup_fault("restore", status, message, count=1)
            emu.start_backup_job(table)
            failed = wait_until(lambda: [line for line in d.events("workflow.failed") if table in line], 60)
            t.ok(failed and message in failed[0] and status in failed[0],
                 f"{status} restore job fails the workflow with AWS's StatusMessage", failed)
        got = alerts.messages(wait=5)
        t.eq(len(got), 2, "one alert per failed workflow")
        t.ok(all(any(m in a for a in got) for m in ("Access denied to KMS key", "Restore aborted by an operator")),
             "the alerts carry AWS's StatusMessage")
        t.eq(emu.get_parameter("/rotator/broken"), None, "no SSM update for a failed restore")
    finally:
        rc = d.stop()
    t.eq(rc, 0, "SIGTERM stops the daemon cleanly")
    log_text = d.text()
    t.ok(emu.rotator_keys.secret_access_key not in log_text, "no secret in the log")
    if t.failed:
        t.diag(log_text[-8000:])
    failed_before = t.failed

    # 5. A policy without the Describe actions: the notification's text is the fallback.
    keys = emu.user_without("rotator-nodescribe", {"backup:DescribeBackupJob", "backup:DescribeCopyJob",
                                                    "backup:DescribeRecoveryPoint"})
    d = bed.Daemon(tmp, "nodescribe", bed.env_for_rotator(emu, keys=keys, extra=extra), policies, pipe.queue.url)
    try:
        emu.start_backup_job("prose-production")
        prose = table_of(wait_until(lambda: emu.get_parameter("/rotator/prose"), 60))
        t.eq(emu.item_count(prose) if prose else None, 3, "without DescribeBackupJob: restored from the prose")
        fb = d.events("recovery_point.prose_fallback")
        t.ok(fb and "AccessDeniedException" in fb[0] and "backup:DescribeBackupJob" in fb[0],
             "the fallback is logged with AWS's refusal", fb)
    finally:
        d.stop()

    # 6. A policy without iam:PassRole: StartRestoreJob refused, AccessDenied named in the log.
    keys = emu.user_without("rotator-nopassrole", {"iam:PassRole"})
    d = bed.Daemon(tmp, "nopassrole", bed.env_for_rotator(emu, keys=keys, extra=extra), policies, pipe.queue.url)
    try:
        before = len(restore_jobs(emu))
        emu.start_backup_job("guarded-production")
        failed = wait_until(lambda: d.events("workflow.failed"), 60)
        line = failed[0] if failed else ""
        t.ok("AccessDeniedException" in line and "iam:PassRole" in line and emu.restore_role_arn in line,
             "missing iam:PassRole: AccessDenied, the action and the role in the log", line)
        t.eq(len(restore_jobs(emu)), before, "no restore job started")
        t.eq(len(alerts.messages(wait=5)), 1, "one alert")
    finally:
        d.stop()
    if t.failed > failed_before:
        t.diag(d.text()[-4000:])
sys.exit(t.done())
PY
