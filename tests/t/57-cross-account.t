#!/usr/bin/env sh
# Cross-account restores on the bed's two accounts (SigV4 and IAM checked, README's policy):
# a backup in the central account, a copy job into the staging account's vault, the
# COPY_JOB notification on Rotator's queue (central account); the rule's assume_role_arn
# names a role of the staging account, so the destination recovery point is restored
# there: table, items, tags and SSM parameter in the staging account, none in the central
# one, one AssumeRole for the whole workflow. A user without sts:AssumeRole fails the
# workflow with AccessDenied named in the log and restores nothing. Against a local STS
# stand-in (tests/creds/servers.py): role credentials are cached while fresh and assumed
# again within the refresh margin of their expiry; a refused AssumeRole is the call's error.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
export ROTATOR_ROOT="$root" ROTATOR="${ROTATOR:-$root/rotator}"
exec "$root/tests/bed/venv-python" - <<'PY'
import json, os, re, subprocess, sys, tempfile
sys.path.insert(0, os.path.join(os.environ["ROTATOR_ROOT"], "tests/bed"))
sys.path.insert(0, os.path.join(os.environ["ROTATOR_ROOT"], "tests/creds"))
import bed
from servers import Servers
from bed import wait_until
from faultproxy import FaultProxy
from tap import Tap

t = Tap()
ROTATOR = os.environ["ROTATOR"]
POLICY = """
rule { name = "orders", source_pattern = "^orders-production$", replacement = "orders-staging",
  ssm_parameter = "/rotator/orders", iam_role_arn = "%(restore_role)s",
  assume_role_arn = "%(role)s", external_id = "central-7f3a",
  tags = { env = "staging" }, alert_topic_arn = "%(alerts)s" }
"""


def items(client, table):
    out, kw = [], {"TableName": table}
    while True:
        r = client.scan(**kw)
        out += r["Items"]
        if not r.get("LastEvaluatedKey"):
            return sorted(json.dumps(i, sort_keys=True) for i in out)
        kw["ExclusiveStartKey"] = r["LastEvaluatedKey"]


def param_of(ssm, name):
    try:
        return ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return None


def auth(record):
    """The Authorization header a FaultProxy record was sent with."""
    return next((v for k, v in record.request_headers if k.lower() == "authorization"), "")


def table_of(arn):
    return arn.rsplit("/", 1)[-1] if arn else None


def copy_to_staging(emu, staging, table):
    """A backup job of `table` in the central account, then a copy job of its recovery
    point into the staging vault; returns the destination recovery point's ARN."""
    job = emu.start_backup_job(table)
    b = emu.admin_client("backup")
    cj = b.start_copy_job(RecoveryPointArn=job["recovery_point_arn"], SourceBackupVaultName="Default",
                          IamRoleArn=emu.restore_role_arn, DestinationBackupVaultArn=staging.vault_arn)
    return wait_until(lambda: b.describe_copy_job(CopyJobId=cj["CopyJobId"])["CopyJob"].get(
        "DestinationRecoveryPointArn"), 30)


with bed.Emulator() as emu, FaultProxy(emu.endpoint) as proxy, tempfile.TemporaryDirectory() as tmp:
    staging = emu.create_staging(external_id="central-7f3a")
    alerts = emu.create_alerts()
    policies = os.path.join(tmp, "policies")
    os.mkdir(policies)
    with open(os.path.join(policies, "cross.lua"), "w") as f:
        f.write(POLICY % {"role": staging.role_arn, "restore_role": staging.restore_role_arn,
                          "alerts": alerts.topic_arn})
    check = subprocess.run([ROTATOR, "--policies", policies, "check"], capture_output=True, text=True, timeout=30)
    t.ok(check.returncode == 0, "rotator check accepts assume_role_arn and external_id", check.stdout + check.stderr)

    emu.create_table("orders-production", items=25, tags={"team": "orders"})
    # Only copy jobs reach the queue: the backup job itself is not restored in the central account.
    pipe = emu.create_backup_pipeline(filter_policy={"EventType": ["COPY_JOB"], "State": ["COMPLETED"]})
    emu.vault_notifications(pipe.topic_arn, wording="documented")
    extra = {"ROTATOR_WAIT_FIRST": "0.2", "ROTATOR_WAIT_MAX": "0.5", "ROTATOR_HEARTBEAT": "5",
             "ROTATOR_VISIBILITY_TIMEOUT": "60", "ROTATOR_RECEIVE_WAIT": "2"}
    sddb, sssm, sb = emu.staging_client("dynamodb"), emu.staging_client("ssm"), emu.staging_client("backup")
    central_tables = set(emu.table_names())

    d = bed.Daemon(tmp, "rotator", bed.env_for_rotator(emu, endpoint=proxy.endpoint, extra=extra), policies,
               pipe.queue.url)
    try:
        dest = copy_to_staging(emu, staging, "orders-production")
        t.ok(dest and f":{staging.account}:recovery-point:" in dest, "the copy's recovery point is in the staging account", dest)
        done = wait_until(lambda: [j for j in sb.list_restore_jobs()["RestoreJobs"]
                                   if j["RecoveryPointArn"] == dest and j["Status"] == "COMPLETED"], 60)
        t.ok(done, "the staging account's restore job of the destination recovery point COMPLETED", dest)
        created = done[0]["CreatedResourceArn"] if done else None
        target = table_of(created)
        t.ok(created and created.startswith(f"arn:aws:dynamodb:us-east-1:{staging.account}:table/orders-staging-"),
             "the restored table is in the staging account", created)
        t.ok(wait_until(lambda: param_of(sssm, "/rotator/orders") == created, 30) if created else False,
             "SSM parameter /rotator/orders in the staging account names the restored table", param_of(sssm, "/rotator/orders"))
        t.eq(emu.get_parameter("/rotator/orders"), None, "no SSM parameter in the central account")
        t.eq(items(sddb, target) if target else None, items(emu.admin_client("dynamodb"), "orders-production"),
             "the staging copy holds the source's items")
        t.eq(set(emu.table_names()) - central_tables, set(), "no table created in the central account")
        tags = {x["Key"]: x["Value"] for x in sddb.list_tags_of_resource(ResourceArn=created)["Tags"]} if created else {}
        t.ok((tags.get("env"), tags.get("rotator:source")) == ("staging", "orders-production"),
             "rule and Rotator tags on the staging table", tags)
        complete = wait_until(lambda: d.events("workflow.complete"), 30)
        t.ok(complete and staging.account in complete[0], "the workflow completes", complete)
        sts_calls = proxy.requests("sts:AssumeRole")
        t.eq(len(sts_calls), 1, "one AssumeRole serves every call of the workflow (cached)")
        t.ok(sts_calls and b"ExternalId=central-7f3a" in sts_calls[0].request_body
             and staging.role_arn.replace(":", "%3A").replace("/", "%2F").encode() in sts_calls[0].request_body,
             "AssumeRole names the rule's role and external id")
        described = [r for r in proxy.requests("backup:DescribeCopyJob")]
        t.ok(described and all(emu.rotator_keys.access_key_id in auth(r)
                               for r in described),
             "the copy job (central account) is described with the daemon's own credentials")
        signed = proxy.requests("backup:StartRestoreJob") + proxy.requests("ssm:PutParameter")
        t.ok(len(signed) >= 2 and all(emu.rotator_keys.access_key_id not in auth(r) and auth(r).startswith("AWS4")
                                      for r in signed),
             "StartRestoreJob and PutParameter are signed with the assumed role's credentials")
    finally:
        rc = d.stop()
    t.eq(rc, 0, "SIGTERM stops the daemon cleanly")
    log_text = d.text()
    t.ok(emu.rotator_keys.secret_access_key not in log_text and "SessionToken" not in log_text
         and "SecretAccessKey" not in log_text, "no secret in the log")
    if t.failed:
        t.diag(log_text[-8000:])
    failed_before = t.failed

    # Without sts:AssumeRole: the workflow fails with STS's AccessDenied, nothing is restored.
    keys = emu.user_without("rotator-noassume", {"sts:AssumeRole"})
    before = len(sb.list_restore_jobs()["RestoreJobs"])
    d = bed.Daemon(tmp, "noassume", bed.env_for_rotator(emu, keys=keys, extra=extra), policies, pipe.queue.url)
    try:
        emu.put_items("orders-production", [bed.Emulator.make_item(1000)])
        copy_to_staging(emu, staging, "orders-production")
        failed = wait_until(lambda: d.events("workflow.failed"), 60)
        line = failed[0] if failed else ""
        t.ok("AccessDenied" in line and "sts:AssumeRole" in line and staging.role_arn in line,
             "missing sts:AssumeRole: AccessDenied, the action and the role in the log", line)
        t.eq(len(sb.list_restore_jobs()["RestoreJobs"]), before, "no restore job started")
        t.eq(len(alerts.messages(wait=5)), 1, "one alert")
    finally:
        d.stop()
    if t.failed > failed_before:
        t.diag(d.text()[-4000:])

# Refresh: three calls through one role, with credentials that expire in an hour (one
# AssumeRole) and in two minutes (inside the 300 s refresh margin: assumed again each time).
ROLE = "arn:aws:iam::210987654321:role/rotator-staging"
SCRIPT = """
local aws = require "aws"
local out = {}
for _ = 1, 3 do
  local _, e = aws.call("sts", "GetCallerIdentity", {}, { role_arn = "%s", max_attempts = 1 })
  out[#out + 1] = e and e.code or "OK"
end
local _, e = aws.call("sts", "GetCallerIdentity", {}, { role_arn = "arn:aws:iam::210987654321:role/denied" })
out[#out + 1] = e.code .. ": " .. e.message
return table.concat(out, " | ")
""" % ROLE
for expires_in, want in ((3600, ["ASIAROLEROTATORSTAGING1"] * 3),
                         (120, ["ASIAROLEROTATORSTAGING1", "ASIAROLEROTATORSTAGING2", "ASIAROLEROTATORSTAGING3"])):
    with Servers() as sts:
        sts.state.expires_in = expires_in
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"AWS_ACCESS_KEY_ID": "AKIABASE", "AWS_SECRET_ACCESS_KEY": "SECRETBASE", "AWS_REGION": "us-east-1",
                    "AWS_ENDPOINT_URL": sts.url, "AWS_EC2_METADATA_DISABLED": "true",
                    "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"})
        p = subprocess.run([ROTATOR, "eval", SCRIPT], env=env, capture_output=True, text=True, timeout=60)
        log = sts.requests()
        assumes = [r for r in log if "Action=AssumeRole" in r["body"]]
        signed = [re.search(r"Credential=([A-Z0-9]+)/", r["headers"].get("Authorization", "")).group(1)
                  for r in log if "Action=GetCallerIdentity" in r["body"]]
        t.eq(signed, want, f"credentials expiring in {expires_in}s: the calls signed with {sorted(set(want))}")
        t.eq(len([r for r in assumes if "rotator-staging" in r["body"]]), len(set(want)),
             f"credentials expiring in {expires_in}s: {len(set(want))} AssumeRole")
        t.ok(all("Credential=AKIABASE/" in r["headers"].get("Authorization", "") for r in assumes),
             "AssumeRole is signed with the chain's own credentials")
        t.ok("CredentialsError" in p.stdout and "AccessDenied" in p.stdout and "role/denied" in p.stdout,
             "a refused AssumeRole fails the call: CredentialsError naming STS's AccessDenied and the role",
             p.stdout + p.stderr)
        t.ok(not any(x in p.stdout + p.stderr for x in ("SECRETBASE", "secret-role", "session-token-")),
             "no secret in the output")
sys.exit(t.done())
PY
