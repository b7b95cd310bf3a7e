"""The bed's AWS Backup control plane (backup_plane.py) against moto, IAM checked."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bed  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()


def code(fn):
    try:
        fn()
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"]["Message"]
    return None, None


with bed.Emulator() as emu:
    emu.create_table("orders-production", items=30, tags={"team": "orders"})
    pipe = emu.create_backup_pipeline(filter_policy=None)
    emu.vault_notifications(pipe.topic_arn, wording="documented")
    evq = emu.create_eventbridge_pipeline(queue="events-capture")
    a = emu.admin_client("backup")

    job = emu.start_backup_job("orders-production")
    rp = job["recovery_point_arn"]
    t.ok(rp.startswith("arn:aws:backup:us-east-1:123456789012:recovery-point:"), "recovery point ARN")
    d = a.describe_backup_job(BackupJobId=job["job_id"])
    t.eq((d["State"], d["RecoveryPointArn"], d["ResourceArn"]), ("COMPLETED", rp, job["resource_arn"]),
         "DescribeBackupJob")
    t.eq([r["RecoveryPointArn"] for r in a.list_recovery_points_by_resource(
        ResourceArn=job["resource_arn"])["RecoveryPoints"]], [rp], "ListRecoveryPointsByResource")
    t.eq([r["RecoveryPointArn"] for r in a.list_recovery_points_by_backup_vault(
        BackupVaultName="Default")["RecoveryPoints"]], [rp], "ListRecoveryPointsByBackupVault")
    t.eq(a.describe_recovery_point(BackupVaultName="Default", RecoveryPointArn=rp)["ResourceArn"],
         job["resource_arn"], "DescribeRecoveryPoint")
    t.eq(code(lambda: a.describe_restore_job(RestoreJobId="nope"))[0], "ResourceNotFoundException",
         "unknown restore job: ResourceNotFoundException")

    # Signature and IAM: the Rotator user's policy grants no backup:ListRecoveryPointsByBackupVault
    # (it lists by resource, never a whole vault) -> AccessDenied.
    c, m = code(lambda: emu.rotator_client("backup", retries=0).list_recovery_points_by_backup_vault(
        BackupVaultName="Default"))
    t.eq(c, "AccessDeniedException", "IAM policy checked for backup:*")
    t.ok("backup:ListRecoveryPointsByBackupVault" in (m or ""), "message names the action", m)
    t.eq(emu.rotator_client("backup", retries=0).describe_backup_job(BackupJobId=job["job_id"])["State"],
         "COMPLETED", "the documented policy grants DescribeBackupJob")
    t.eq(emu.rotator_client("backup", retries=0).describe_recovery_point(
        BackupVaultName="Default", RecoveryPointArn=rp)["RecoveryPointArn"], rp,
        "the documented policy grants DescribeRecoveryPoint (authorized on the recovery point)")
    bad = emu.client("backup", keys=bed.Keys(emu.admin_keys[0], "wrong" * 8), retries=0)
    t.eq(code(lambda: bad.list_backup_jobs())[0], "InvalidSignatureException", "signature checked")

    iam = emu.admin_client("iam")
    iam.create_user(UserName="no-passrole")
    iam.put_user_policy(UserName="no-passrole", PolicyName="p", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "backup:*", "Resource": "*"}]}))
    k = iam.create_access_key(UserName="no-passrole")["AccessKey"]
    np = emu.client("backup", keys=bed.Keys(k["AccessKeyId"], k["SecretAccessKey"]), retries=0)
    c, m = code(lambda: np.start_restore_job(RecoveryPointArn=rp, IamRoleArn=emu.restore_role_arn,
                                             Metadata={"targetTableName": "never"}))
    t.eq(c, "AccessDeniedException", "StartRestoreJob without iam:PassRole refused")
    t.ok("iam:PassRole" in (m or "") and emu.restore_role_arn in (m or ""), "names PassRole and the role", m)

    kw = dict(RecoveryPointArn=rp, IamRoleArn=emu.restore_role_arn, ResourceType="DynamoDB",
              CopySourceTagsToRestoredResource=True)
    r1 = a.start_restore_job(IdempotencyToken="wf-1", Metadata={"targetTableName": "orders-copy"}, **kw)
    r2 = a.start_restore_job(IdempotencyToken="wf-1", Metadata={"TargetTableName": "orders-copy"}, **kw)
    t.eq(r1["RestoreJobId"], r2["RestoreJobId"], "same IdempotencyToken, same job")
    seen = set()
    done = bed.wait_until(lambda: seen.add(a.describe_restore_job(RestoreJobId=r1["RestoreJobId"])["Status"])
                          or "COMPLETED" in seen, 15, step=0.05)
    t.ok(done and {"RUNNING", "COMPLETED"} <= seen, "restore job PENDING -> RUNNING -> COMPLETED", seen)
    d = a.describe_restore_job(RestoreJobId=r1["RestoreJobId"])
    t.eq(d["CreatedResourceArn"], "arn:aws:dynamodb:us-east-1:123456789012:table/orders-copy", "CreatedResourceArn")
    t.eq(emu.item_count("orders-copy"), 30, "restored table holds the source's items")
    t.eq(emu.describe_table("orders-copy")["RestoreSummary"]["SourceBackupArn"], rp,
         "RestoreSummary names the recovery point")
    tags = emu.admin_client("dynamodb").list_tags_of_resource(ResourceArn=d["CreatedResourceArn"])["Tags"]
    t.eq(tags, [{"Key": "team", "Value": "orders"}], "CopySourceTagsToRestoredResource")
    a.put_restore_validation_result(RestoreJobId=r1["RestoreJobId"], ValidationStatus="SUCCESSFUL",
                                    ValidationStatusMessage="items equal")
    d = a.describe_restore_job(RestoreJobId=r1["RestoreJobId"])
    t.eq((d["ValidationStatus"], d["ValidationStatusMessage"]), ("SUCCESSFUL", "items equal"),
         "PutRestoreValidationResult visible in DescribeRestoreJob")

    emu.backup_fault("restore", "FAILED", "Access denied to KMS key", count=1)
    r3 = a.start_restore_job(Metadata={"targetTableName": "orders-failed"}, **kw)
    bed.wait_until(lambda: a.describe_restore_job(RestoreJobId=r3["RestoreJobId"])["Status"] == "FAILED", 15)
    d = a.describe_restore_job(RestoreJobId=r3["RestoreJobId"])
    t.eq((d["Status"], d.get("StatusMessage")), ("FAILED", "Access denied to KMS key"), "fault: FAILED with StatusMessage")
    t.eq(emu.describe_table("orders-failed"), None, "a failed restore creates no table")
    t.eq(code(lambda: a.start_restore_job(Metadata={"encryptionType": "KMS", "targetTableName": "x"}, **kw))[0],
         "InvalidParameterValueException", "KMS without kmsMasterKeyArn refused")

    a.create_backup_vault(BackupVaultName="staging")
    cj = a.start_copy_job(RecoveryPointArn=rp, SourceBackupVaultName="Default", IamRoleArn=emu.restore_role_arn,
                          DestinationBackupVaultArn="arn:aws:backup:us-east-1:123456789012:backup-vault:staging")
    bed.wait_until(lambda: a.describe_copy_job(CopyJobId=cj["CopyJobId"])["CopyJob"]["State"] == "COMPLETED", 15)
    c = a.describe_copy_job(CopyJobId=cj["CopyJobId"])["CopyJob"]
    t.ok(c.get("DestinationRecoveryPointArn", "").startswith("arn:aws:backup:"), "copy job: DestinationRecoveryPointArn")
    t.eq(a.describe_recovery_point(BackupVaultName="staging", RecoveryPointArn=c["DestinationRecoveryPointArn"])[
        "ResourceArn"], job["resource_arn"], "copied recovery point in the destination vault")

    bodies = [json.loads(m["Body"]) for m in pipe.receive(wait=1)] + [json.loads(m["Body"]) for m in pipe.receive()]
    kinds = {(b["MessageAttributes"]["EventType"]["Value"], b["MessageAttributes"]["State"]["Value"]) for b in bodies}
    t.ok({("BACKUP_JOB", "COMPLETED"), ("COPY_JOB", "COMPLETED")} <= kinds, "SNS notifications for backup and copy jobs", kinds)
    backup_msg = next(b["Message"] for b in bodies if b["MessageAttributes"]["EventType"]["Value"] == "BACKUP_JOB")
    t.ok(f"Recovery point ARN: {rp}. Resource ARN : " in backup_msg and "BackupJob ID : " in backup_msg,
         "documented wording", backup_msg)
    events = []
    while True:
        got = evq.receive()
        if not got:
            break
        events += [json.loads(m["Body"]) for m in got]
    types = {(e["detail-type"], e["detail"].get("state")) for e in events}
    t.ok(("Backup Job State Change", "COMPLETED") in types and ("Copy Job State Change", "COMPLETED") in types,
         "EventBridge events through the rule to SQS", types)
    t.ok(all(e["source"] == "aws.backup" for e in events), "source aws.backup")
sys.exit(t.done())
