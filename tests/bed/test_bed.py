"""Checks the test bed itself (run by tests/t/10-bed.t under the venv python): the emulator's
life cycle, that IAM checking is on and the documented policy is what the Rotator user
gets, the fixtures (table, backup, SNS -> SQS with filter policy, raw delivery, DLQ), the
notification templates against ../shared/testdata/events, and every fault of the proxy.
Talks to 127.0.0.1 only. Prints TAP."""

from __future__ import annotations

import email.utils
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bed  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402
from tap import Tap  # noqa: E402

from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError  # noqa: E402

t = Tap()

# Actions the brief says Rotator needs; the documented policy must allow each.
REQUIRED = [
    "dynamodb:RestoreTableFromBackup", "dynamodb:DescribeTable", "dynamodb:DescribeBackup",
    "dynamodb:ListTables", "dynamodb:ListTagsOfResource", "dynamodb:TagResource",
    "dynamodb:DeleteTable", "dynamodb:UpdateTimeToLive", "dynamodb:DescribeTimeToLive",
    "dynamodb:UpdateContinuousBackups", "dynamodb:UpdateTable", "dynamodb:BatchWriteItem",
    "dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan",
    "dynamodb:UpdateItem", "dynamodb:DeleteItem", "ssm:PutParameter", "ssm:GetParameter",
    "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "backup:StartRestoreJob",
    "backup:DescribeRestoreJob", "backup:PutRestoreValidationResult", "backup:DescribeBackupJob",
    "backup:DescribeCopyJob", "backup:DescribeRecoveryPoint", "iam:PassRole",
    "sns:Publish",
]

SOURCE = "orders-production"
TARGET = "orders-staging-20261125-03-00-00"
N_ITEMS = 60


def code_of(fn, *a, **kw):
    """The AWS error code a call fails with, or None if it succeeds."""
    try:
        fn(*a, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def pid_gone(pid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A zombie still answers kill(0); it is gone for our purposes once reaped or Z.
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
                return True
        except (OSError, IndexError):
            return True
        time.sleep(0.05)
    return False


def test_policy() -> None:
    policy, source = bed.load_iam_policy()
    t.note(f"least-privilege policy from {source}")
    allowed = set()
    for st in policy["Statement"]:
        if st.get("Effect") == "Allow":
            acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            allowed.update(acts)
    missing = [a for a in REQUIRED if a not in allowed]
    t.ok(not missing, "documented policy allows every action Rotator needs", f"missing: {missing}")
    stars = [a for a in allowed if "*" in a]
    t.ok(not stars, "documented policy names actions (no wildcards)", stars)

    import tempfile
    with tempfile.TemporaryDirectory() as d:
        readme = Path(d) / "README.md"
        readme.write_text("# X\n\n" + bed.POLICY_BEGIN + "\n```json\n" + json.dumps(policy, indent=2)
                          + "\n```\n" + bed.POLICY_END + "\n")
        got, src = bed.load_iam_policy(readme)
        t.ok(got == policy and "README" in src, "the policy is read from README.md's iam-policy block when present")
        readme.write_text(bed.POLICY_BEGIN + "\nno json here\n" + bed.POLICY_END + "\n")
        try:
            bed.load_iam_policy(readme)
            t.ok(False, "a README iam-policy section without a json block is an error")
        except ValueError:
            t.ok(True, "a README iam-policy section without a json block is an error")


def test_iam(emu: bed.Emulator) -> None:
    t.ok(emu.endpoint.startswith("http://127.0.0.1:"), f"emulator listens on 127.0.0.1 ({emu.endpoint})")
    ddb_admin = emu.admin_client("dynamodb")
    t.eq(code_of(ddb_admin.list_tables), None, "admin user's signed request is accepted")

    bad_secret = emu.client("dynamodb", keys=(emu.rotator_keys[0], "0" * 40), retries=0)
    t.eq(code_of(bad_secret.list_tables), "InvalidSignatureException",
         "request signed with a wrong secret is rejected (InvalidSignatureException)")
    unknown = emu.client("ssm", keys=("AKIAUNKNOWNUNKNOWN00", "0" * 40), retries=0)
    t.eq(code_of(unknown.get_parameter, Name="/rotator/x"), "UnrecognizedClientException",
         "unknown access key is rejected (UnrecognizedClientException)")
    bad_sqs = emu.client("sqs", keys=(emu.admin_keys[0], "0" * 40), retries=0)
    t.eq(code_of(bad_sqs.list_queues), "InvalidSignatureException", "SQS checks signatures too")

    backup_admin = emu.admin_client("backup", retries=0)
    t.eq(code_of(backup_admin.list_backup_vaults), None,
         "a signed body-less restJson GET (backup:ListBackupVaults) verifies")

    ddb = emu.rotator_client("dynamodb", retries=0)
    t.eq(code_of(ddb.create_table, TableName="x", BillingMode="PAY_PER_REQUEST",
                 KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                 AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}]),
         "AccessDeniedException", "Rotator user may not CreateTable (outside the policy)")


def test_fixtures_and_policy(emu: bed.Emulator) -> dict:
    src_arn = emu.create_table(SOURCE, items=N_ITEMS, tags={"team": "orders"}, ttl_attribute="expires")
    t.eq(src_arn, f"arn:aws:dynamodb:us-east-1:123456789012:table/{SOURCE}", "create_table returns the table ARN")
    t.eq(emu.item_count(SOURCE), N_ITEMS, f"table holds {N_ITEMS} items")
    backup = emu.create_backup(SOURCE)
    t.ok(re.fullmatch(rf"arn:aws:dynamodb:us-east-1:123456789012:table/{SOURCE}/backup/\d{{14}}-[0-9a-f]{{8}}", backup),
         f"backup ARN has AWS's form ({backup})")

    ddb = emu.rotator_client("dynamodb", retries=0)
    with t.case("Rotator restores the backup into a staging table"):
        out = ddb.restore_table_from_backup(TargetTableName=TARGET, BackupArn=backup)["TableDescription"]
        assert out["RestoreSummary"]["SourceBackupArn"] == backup, out
    t.eq(emu.item_count(TARGET), N_ITEMS, "restored table holds every item")
    target_arn = emu.describe_table(TARGET)["TableArn"]

    allowed = {
        "DescribeBackup": lambda: ddb.describe_backup(BackupArn=backup),
        "ListTables": lambda: ddb.list_tables(),
        "DescribeTable (source)": lambda: ddb.describe_table(TableName=SOURCE),
        "DescribeTimeToLive (source)": lambda: ddb.describe_time_to_live(TableName=SOURCE),
        "ListTagsOfResource (source)": lambda: ddb.list_tags_of_resource(ResourceArn=src_arn),
        "DescribeTable": lambda: ddb.describe_table(TableName=TARGET),
        "TagResource": lambda: ddb.tag_resource(ResourceArn=target_arn, Tags=[{"Key": "rotator", "Value": "1"}]),
        "ListTagsOfResource": lambda: ddb.list_tags_of_resource(ResourceArn=target_arn),
        "UpdateTimeToLive": lambda: ddb.update_time_to_live(
            TableName=TARGET, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}),
        "DescribeTimeToLive": lambda: ddb.describe_time_to_live(TableName=TARGET),
        "UpdateContinuousBackups": lambda: ddb.update_continuous_backups(
            TableName=TARGET, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False}),
        "UpdateTable": lambda: ddb.update_table(TableName=TARGET, BillingMode="PAY_PER_REQUEST"),
        "PutItem": lambda: ddb.put_item(TableName=TARGET, Item={"pk": {"S": "probe"}}),
        "GetItem": lambda: ddb.get_item(TableName=TARGET, Key={"pk": {"S": "probe"}}),
        "UpdateItem": lambda: ddb.update_item(TableName=TARGET, Key={"pk": {"S": "probe"}},
                                              UpdateExpression="SET n = :n",
                                              ExpressionAttributeValues={":n": {"N": "1"}}),
        "Query": lambda: ddb.query(TableName=TARGET, KeyConditionExpression="pk = :p",
                                   ExpressionAttributeValues={":p": {"S": "probe"}}),
        "Scan": lambda: ddb.scan(TableName=TARGET, Limit=1),
        "DeleteItem": lambda: ddb.delete_item(TableName=TARGET, Key={"pk": {"S": "probe"}}),
        "BatchWriteItem": lambda: ddb.batch_write_item(RequestItems={TARGET: [
            {"PutRequest": {"Item": {"pk": {"S": "probe2"}}}}]}),
    }
    failures = {k: code_of(f) for k, f in allowed.items()}
    failures = {k: v for k, v in failures.items() if v}
    t.ok(not failures, f"Rotator may do its {len(allowed)} DynamoDB calls on backups and staging copies", failures)

    denied = {
        "RestoreTableFromBackup into a non-staging name": lambda: ddb.restore_table_from_backup(
            TargetTableName="orders-production-copy", BackupArn=backup),
        "PutItem on the source": lambda: ddb.put_item(TableName=SOURCE, Item={"pk": {"S": "x"}}),
        "DeleteTable on the source": lambda: ddb.delete_table(TableName=SOURCE),
        "UpdateTable on the source": lambda: ddb.update_table(TableName=SOURCE, BillingMode="PAY_PER_REQUEST"),
        "CreateBackup": lambda: ddb.create_backup(TableName=SOURCE, BackupName="not-allowed"),
    }
    wrong = {k: code_of(f) for k, f in denied.items()}
    wrong = {k: v for k, v in wrong.items() if v != "AccessDeniedException"}
    t.ok(not wrong, "Rotator may not touch production tables or create backups (resource scoping enforced)", wrong)
    return {"source_arn": src_arn, "backup": backup, "target_arn": target_arn}


def test_other_services(emu: bed.Emulator, pipe: bed.Pipeline, alerts: bed.Alerts) -> None:
    ssm = emu.rotator_client("ssm", retries=0)
    with t.case("Rotator may PutParameter/GetParameter under /rotator/"):
        ssm.put_parameter(Name="/rotator/orders/table-arn", Value="arn:x", Type="String", Overwrite=True)
        assert ssm.get_parameter(Name="/rotator/orders/table-arn")["Parameter"]["Value"] == "arn:x"
    t.eq(code_of(ssm.put_parameter, Name="/production/x", Value="x", Type="String"),
         "AccessDeniedException", "Rotator may not PutParameter outside /rotator/")

    sqs = emu.rotator_client("sqs", retries=0)
    with t.case("Rotator may use its queue (GetQueueUrl, attributes, receive, visibility, delete)"):
        url = sqs.get_queue_url(QueueName=bed.EVENTS_QUEUE)["QueueUrl"]
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        pipe.send_raw("probe")
        m = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"][0]
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
        m = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"][0]
        assert m["Body"] == "probe"
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    t.eq(code_of(sqs.receive_message, QueueUrl=pipe.queue.dlq_url), None,
         "Rotator may read the dead-letter queue (rotator redrive)")
    t.eq(code_of(sqs.send_message, QueueUrl=pipe.queue.dlq_url, MessageBody="x"), "AccessDeniedException",
         "Rotator may not send to the dead-letter queue (only to the source queue, for redrive --to-source)")

    sns = emu.rotator_client("sns", retries=0)
    with t.case("Rotator may publish alerts, and the alert is captured"):
        sns.publish(TopicArn=alerts.topic_arn, Message="restore failed: test")
        assert alerts.messages(wait=2) == ["restore failed: test"]
    t.eq(code_of(sns.publish, TopicArn=pipe.topic_arn, Message="x"), "AccessDenied",
         "Rotator may not publish to the backup topic")


def test_pipeline(emu: bed.Emulator, pipe: bed.Pipeline, fx: dict) -> None:
    pipe.queue.drain()
    ok_job = "5a772b5a-36d5-4a69-9b18-ed2f5213c659"
    pipe.publish(backup_arn=fx["backup"], job_id=ok_job, start_time="2026-11-25T03:00:00.226Z")
    pipe.publish(table_arn=fx["source_arn"], job_id="2e3f4a5b-6c7d-4e8f-9a0b-1c2d3e4f5a6b", state="FAILED",
                 wording="documented")
    msgs = pipe.receive(wait=1, delete=True)
    t.eq(len(msgs), 1, "COMPLETED notification arrives; FAILED one is filtered out by the filter policy")
    env = json.loads(msgs[0]["Body"]) if msgs else {}
    want = bed.backup_notification(backup_arn=fx["backup"], job_id=ok_job, start_time="2026-11-25T03:00:00.226Z")
    t.eq(env.get("Message"), want.message, "SQS body is the SNS envelope carrying the Message text")
    t.eq({k: v["Value"] for k, v in env.get("MessageAttributes", {}).items()}, want.attributes,
         "envelope carries the MessageAttributes")
    t.eq((env.get("Type"), env.get("TopicArn"), env.get("Subject")),
         ("Notification", pipe.topic_arn, "Notification from AWS Backup"), "envelope Type, TopicArn, Subject")

    raw = emu.create_backup_pipeline(topic="backup-notifications-raw", queue="rotator-backup-events-raw", raw=True)
    raw.publish(backup_arn=fx["backup"], job_id=ok_job, start_time="2026-11-25T03:00:00.5Z", wording="documented")
    raw.publish(backup_arn=fx["backup"], state="FAILED")
    msgs = raw.receive(wait=1, delete=True)
    t.eq(len(msgs), 1, "raw delivery: only the COMPLETED notification arrives")
    if msgs:
        m = msgs[0]
        want = bed.backup_notification(backup_arn=fx["backup"], job_id=ok_job, start_time="2026-11-25T03:00:00.5Z",
                                       wording="documented")
        t.eq(m["Body"], want.message, "raw delivery: body is the bare Message text")
        t.eq({k: v["StringValue"] for k, v in m.get("MessageAttributes", {}).items()}, want.attributes,
             "raw delivery: attributes are SQS message attributes")

    malformed = '{"Type":"Notification","Message": "An AWS Backup job was completed successfully. Recovery point ARN: '
    pipe.send_raw(malformed)
    m = pipe.receive(wait=1, delete=True)
    t.ok(len(m) == 1 and m[0]["Body"] == malformed, "send_raw puts a malformed body straight into the queue")

    # Redrive: maxReceiveCount 3, so the 4th receive finds it in the DLQ instead.
    pipe.send_raw("poison")
    seen = sum(len(pipe.receive(visibility=0)) for _ in range(3))
    after = pipe.receive(visibility=0)
    t.ok(seen == 3 and not after and pipe.queue.depth()["dlq"] == 1,
         "a message received 3 times without delete moves to the dead-letter queue",
         f"seen={seen} after={len(after)} depth={pipe.queue.depth()}")
    pipe.queue.drain()


def test_templates(pipe: bed.Pipeline) -> None:
    d = bed.shared_events_dir()
    if d is None:
        t.skip("notification templates match ../shared/testdata/events", f"no {bed.SHARED_EVENTS}")
        return
    expected = json.loads((d / "expected.json").read_text())
    arn_re = r"(arn:\S+?)\. (?=Backed up Resource ARN|Resource ARN|Backup Job Id|BackupJob ID)"
    bad = []
    checked = 0
    for name in sorted(expected):
        for message, attrs in bed.shared_notifications(name):
            wording = "legacy" if "Backed up Resource ARN" in message else "documented"
            rp = re.search(r"Recovery point ARN: " + arn_re, message)
            res = re.search(r"Resource ARN : " + arn_re, message)
            if not res:
                continue
            n = bed.backup_notification(res.group(1), rp.group(1) if rp else None, job_id=attrs["Id"],
                                        start_time=attrs.get("StartTime", bed.OMIT), state=attrs["State"],
                                        wording=wording, account=attrs["AccountId"])
            checked += 1
            if n.message != message or list(n.attributes.items()) != list(attrs.items()):
                bad.append((name, n.message, message, n.attributes, attrs))
    t.ok(checked >= 9 and not bad, f"bed's templates reproduce all {checked} shared notifications exactly "
                                   "(text and attributes, in order)", bad)

    with t.case("send_shared puts each shared file in the queue as SQS would hold it"):
        pipe.queue.drain()
        for name in sorted(expected):
            pipe.send_shared(name)
            m = pipe.receive(wait=1, delete=True)
            assert len(m) == 1, name
            doc = json.loads((d / name).read_text())
            if "Body" in doc:
                assert m[0]["Body"] == doc["Body"], name
                want = {k: v["StringValue"] for k, v in (doc.get("MessageAttributes") or {}).items()}
                got = {k: v["StringValue"] for k, v in (m[0].get("MessageAttributes") or {}).items()}
                assert got == want, (name, got, want)
            else:
                assert json.loads(m[0]["Body"]) == doc, name


def test_env(emu: bed.Emulator) -> None:
    base = {"PATH": "/usr/bin", "AWS_PROFILE": "prod", "AWS_SESSION_TOKEN": "x", "AWS_DEFAULT_REGION": "eu-west-1"}
    env = bed.env_for_rotator(emu, base=base)
    aws = {k: v for k, v in env.items() if k.startswith("AWS_")}
    t.eq(sorted(aws), ["AWS_ACCESS_KEY_ID", "AWS_EC2_METADATA_DISABLED", "AWS_ENDPOINT_URL", "AWS_REGION",
                       "AWS_SECRET_ACCESS_KEY"], "env_for_rotator sets exactly the five AWS_* variables")
    t.ok(env["AWS_ENDPOINT_URL"] == emu.endpoint and env["AWS_ACCESS_KEY_ID"] == emu.rotator_keys[0]
         and env["AWS_REGION"] == "us-east-1" and env["AWS_EC2_METADATA_DISABLED"] == "true"
         and env["PATH"] == "/usr/bin", "env_for_rotator: emulator endpoint, Rotator's keys, region, rest of base kept")


def test_proxy(emu: bed.Emulator, fx: dict) -> None:
    proxy = FaultProxy(emu.endpoint).start()
    try:
        _test_proxy(emu, proxy, fx)
    finally:
        proxy.stop()


def _test_proxy(emu: bed.Emulator, proxy: FaultProxy, fx: dict) -> None:
    t.ok(proxy.endpoint.startswith("http://127.0.0.1:"), f"proxy listens on 127.0.0.1 ({proxy.endpoint})")
    ddb = emu.rotator_client("dynamodb", endpoint=proxy.endpoint, retries=0)
    ssm = emu.rotator_client("ssm", endpoint=proxy.endpoint, retries=0)

    with t.case("signed requests pass the proxy and verify upstream (Host header preserved)"):
        ddb.describe_table(TableName=TARGET)
        ddb.describe_table(TableName=TARGET)
    recs = proxy.requests("DynamoDB_20120810.DescribeTable")
    t.ok(len(recs) == 2 and recs[0].connection == recs[1].connection and recs[1].status == 200,
         "keep-alive: the client reuses its connection to the proxy", [(r.connection, r.status) for r in recs])
    bad = emu.client("dynamodb", keys=(emu.rotator_keys[0], "0" * 40), endpoint=proxy.endpoint, retries=0)
    t.eq(code_of(bad.list_tables), "InvalidSignatureException", "a bad signature is still refused through the proxy")

    if shutil.which("curl"):
        k = emu.rotator_keys
        url = proxy.endpoint + "/"
        before = len(proxy.requests())
        out = subprocess.run(
            ["curl", "-sS", "--aws-sigv4", "aws:amz:us-east-1:dynamodb", "--user", f"{k[0]}:{k[1]}",
             "-H", "X-Amz-Target: DynamoDB_20120810.ListTables", "-H", "Content-Type: application/x-amz-json-1.0",
             "-d", "{}", url, "-d", "{}", url, "-w", "\n%{http_code} %{num_connects}\n"],
            capture_output=True, text=True, timeout=20)
        recs = proxy.requests()[before:]
        t.ok(out.returncode == 0 and len(recs) == 2 and all(r.status == 200 for r in recs)
             and recs[0].connection == recs[1].connection,
             "libcurl (curl --aws-sigv4) signs, passes and keeps its connection alive through the proxy",
             out.stdout + out.stderr + repr([(r.status, r.connection) for r in recs]))
    else:
        t.skip("libcurl through the proxy", "no curl")

    # throttle
    proxy.throttle("DynamoDB_20120810.DescribeTable", count=1)
    try:
        ddb.describe_table(TableName=TARGET)
        err = None
    except ClientError as e:
        err = e.response
    t.ok(err and err["Error"]["Code"] == "ThrottlingException" and err["ResponseMetadata"]["HTTPStatusCode"] == 400
         and err["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-requestid"),
         "throttle: DynamoDB gets HTTP 400 ThrottlingException with x-amzn-RequestId", err)
    rec = proxy.requests("DescribeTable")[-1]
    t.eq(json.loads(rec.response_body), {"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                                         "message": "Rate exceeded"}, "throttle: DynamoDB body is exactly AWS's")
    t.eq((rec.fault, rec.status), ("throttle", 400), "throttle: recorded with fault and status")
    t.eq(code_of(ddb.describe_table, TableName=TARGET), None, "throttle: count 1 means only the next request")

    proxy.throttle("AmazonSSM.PutParameter", count=1)
    t.eq(code_of(ssm.put_parameter, Name="/rotator/x", Value="v", Type="String", Overwrite=True),
         "ThrottlingException", "throttle: SSM gets ThrottlingException")
    t.eq(json.loads(proxy.requests("ssm:PutParameter")[-1].response_body),
         {"__type": "ThrottlingException", "message": "Rate exceeded"}, "throttle: SSM body is exactly AWS's")

    # retries are visible in the log, with their timing
    proxy.clear_log()
    proxy.throttle("dynamodb:DescribeTable", count=2)
    retrying = emu.rotator_client("dynamodb", endpoint=proxy.endpoint, retries=2)
    t0 = time.monotonic()
    code = code_of(retrying.describe_table, TableName=TARGET)
    recs = proxy.requests("DescribeTable")
    t.ok(code is None and [r.status for r in recs] == [400, 400, 200]
         and recs[0].start < recs[1].start < recs[2].start,
         "log shows two throttled attempts and the successful retry, in order",
         (code, [(r.status, round(r.start - t0, 3)) for r in recs]))
    t.note("boto3 standard-mode backoff observed: " +
           ", ".join(f"{recs[i + 1].start - recs[i].end:.3f}s" for i in range(len(recs) - 1)))

    # 500 / 503
    for status, code in ((500, "InternalServerError"), (503, "ServiceUnavailable")):
        proxy.error("DescribeTable", status=status)
        try:
            ddb.describe_table(TableName=TARGET)
            got = None
        except ClientError as e:
            got = (e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"])
        t.eq(got, (status, code), f"error: HTTP {status} {code}")

    # connection reset mid-response, after the call took effect upstream
    proxy.reset("dynamodb:PutItem")
    try:
        ddb.put_item(TableName=TARGET, Item={"pk": {"S": "reset-probe"}}, ReturnConsumedCapacity="TOTAL")
        got = None
    except ConnectionClosedError as e:
        got = e
    except Exception as e:  # noqa: BLE001 - report what it was
        got = e
    t.ok(isinstance(got, ConnectionClosedError), "reset: boto3 sees the connection closed mid-response", repr(got))
    t.ok("Item" in emu.admin_client("dynamodb").get_item(TableName=TARGET, Key={"pk": {"S": "reset-probe"}}),
         "reset: the call had taken effect upstream (forwarded first)")
    t.ok(_raw_reset_check(proxy), "reset: a raw client reads the status line, headers and part of the body, then ECONNRESET")

    # slow
    proxy.slow("DescribeTable", seconds=1.5)
    quick = emu.rotator_client("dynamodb", endpoint=proxy.endpoint, retries=0, timeout=0.5)
    t0 = time.monotonic()
    try:
        quick.describe_table(TableName=TARGET)
        got = None
    except ReadTimeoutError as e:
        got = e
    t.ok(isinstance(got, ReadTimeoutError) and time.monotonic() - t0 < 1.4,
         "slow: a client with a 0.5 s read timeout times out", repr(got))
    proxy.slow("DescribeTable", seconds=0.4)
    t0 = time.monotonic()
    code = code_of(ddb.describe_table, TableName=TARGET)
    took = time.monotonic() - t0
    rec = proxy.requests("DescribeTable")[-1]
    t.ok(code is None and took >= 0.4 and rec.fault == "slow" and rec.end - rec.start >= 0.4,
         f"slow: answered after the delay ({took:.2f}s)")

    # skewed clock
    for seconds, prefix in ((1800, "Signature expired: "), (-1800, "Signature not yet current: ")):
        proxy.skew("DescribeTable", seconds=seconds)
        try:
            ddb.describe_table(TableName=TARGET)
            err = None
        except ClientError as e:
            err = e.response
        date = err and err["ResponseMetadata"]["HTTPHeaders"].get("date")
        off = date and email.utils.parsedate_to_datetime(date).timestamp() - time.time()
        t.ok(err and err["Error"]["Code"] == "InvalidSignatureException"
             and err["Error"]["Message"].startswith(prefix) and err["ResponseMetadata"]["HTTPStatusCode"] == 400
             and abs(off - seconds) < 5,
             f"skew {seconds:+d}s: 400 InvalidSignatureException '{prefix.strip()}...' and a Date header that far off",
             (err, off))
    t.note("skew message: " + (err["Error"]["Message"] if err else "-"))
    proxy.skew("DescribeTable", seconds=-3600, error=False)
    try:
        r = ddb.describe_table(TableName=TARGET)
        off = email.utils.parsedate_to_datetime(r["ResponseMetadata"]["HTTPHeaders"]["date"]).timestamp() - time.time()
    except ClientError as e:
        off = repr(e)
    t.ok(isinstance(off, float) and abs(off + 3600) < 5, "skew without error: a normal answer with a skewed Date", off)
    proxy.skew("AmazonSSM.GetParameter", seconds=1200)
    t.eq(code_of(ssm.get_parameter, Name="/rotator/x"), "InvalidSignatureException", "skew: SSM too")

    # table CREATING for the first N DescribeTable calls of that table
    proxy.creating(count=2, table=TARGET)
    seen = []
    for _ in range(3):
        tbl = ddb.describe_table(TableName=TARGET)["Table"]  # botocore checks x-amz-crc32
        seen.append((tbl["TableStatus"], tbl["RestoreSummary"]["RestoreInProgress"]))
    src = ddb.describe_table(TableName=SOURCE)["Table"]["TableStatus"]
    t.eq(seen, [("CREATING", True), ("CREATING", True), ("ACTIVE", False)],
         "creating: TableStatus CREATING and RestoreInProgress true for the first 2 calls, then ACTIVE")
    t.eq(src, "ACTIVE", "creating: other tables are not rewritten")

    # control endpoint
    with t.case("control endpoint: POST adds a rule, GET lists rules and requests, DELETE clears"):
        req = urllib.request.Request(proxy.endpoint + "/__faults__", method="POST",
                                     data=json.dumps({"kind": "error", "match": "DescribeTable",
                                                      "status": 503}).encode())
        urllib.request.urlopen(req, timeout=5).read()
        assert code_of(ddb.describe_table, TableName=TARGET) == "ServiceUnavailable"
        state = json.loads(urllib.request.urlopen(proxy.endpoint + "/__faults__", timeout=5).read())
        assert any(r["kind"] == "error" and r["fired"] == 1 for r in state["rules"]), state["rules"]
        assert state["requests"] and state["requests"][-1]["status"] == 503
        urllib.request.urlopen(urllib.request.Request(proxy.endpoint + "/__faults__", method="DELETE"), timeout=5)
        assert proxy.requests() == [] and proxy.rules() == []


def _raw_reset_check(proxy: FaultProxy) -> bool:
    proxy.reset("DynamoDB_20120810.ListTables", fraction=0.5)
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    body = b"{}"
    s.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: DynamoDB_20120810.ListTables\r\n"
              b"Content-Type: application/x-amz-json-1.0\r\nContent-Length: 2\r\n\r\n" + body)
    got = b""
    reset = False
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except ConnectionResetError:
        reset = True
    finally:
        s.close()
    head, _, part = got.partition(b"\r\n\r\n")
    m = re.search(rb"Content-Length: (\d+)", head, re.I)
    return reset and head.startswith(b"HTTP/1.1 ") and m is not None and 0 < len(part) < int(m.group(1))


def test_cleanup_on_signals() -> None:
    child = r"""
import sys, time, os
sys.path.insert(0, %r)
import bed
emu = bed.Emulator(iam=False).start()
print(emu.pid, flush=True)
time.sleep(60)
""" % str(HERE)
    for sig, name in ((signal.SIGTERM, "SIGTERM"), (signal.SIGKILL, "SIGKILL")):
        p = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
        try:
            line = p.stdout.readline()
            moto_pid = int(line)
            p.send_signal(sig)
            p.wait(10)
            t.ok(pid_gone(moto_pid, 5), f"test process killed by {name}: its emulator exits too")
        except Exception as e:  # noqa: BLE001
            t.ok(False, f"test process killed by {name}: its emulator exits too", repr(e))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


def main() -> int:
    t0 = time.monotonic()
    test_policy()
    emu = bed.Emulator()
    with t.case("emulator starts with IAM checking on and the Rotator user set up"):
        emu.start()
        assert emu.rotator_keys and emu.admin_keys
    if emu.proc is None:
        t.bail("no emulator")
    t.note(f"emulator pid {emu.pid} at {emu.endpoint} ready in {time.monotonic() - t0:.2f}s; policy from {emu.policy_source}")
    pid = emu.pid
    try:
        test_iam(emu)
        fx = test_fixtures_and_policy(emu)
        pipe = emu.create_backup_pipeline()
        alerts = emu.create_alerts()
        test_other_services(emu, pipe, alerts)
        test_pipeline(emu, pipe, fx)
        test_templates(pipe)
        test_env(emu)
        test_proxy(emu, fx)
    except Exception:
        import traceback
        t.ok(False, "bed self-test ran to the end", traceback.format_exc())
        t.diag(emu.log_text()[-4000:])
    finally:
        emu.stop()
    t.ok(pid_gone(pid), "emulator stopped: its process is gone")
    try:
        os.killpg(pid, 0)
        t.ok(False, "no process left in the emulator's process group")
    except ProcessLookupError:
        t.ok(True, "no process left in the emulator's process group")
    test_cleanup_on_signals()
    t.note(f"bed self-test took {time.monotonic() - t0:.1f}s")
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
