"""The test bed: a real AWS emulator (moto, IAM checking on) plus fixtures for Rotator tests.

Runs under the venv python that tests/bed/venv.sh prints. Typical use:

    import bed
    with bed.Emulator() as emu:                       # moto on 127.0.0.1:<free port>
        src = emu.create_table("orders-production", items=50)
        backup = emu.create_backup("orders-production")
        pipe = emu.create_backup_pipeline()           # SNS topic -> SQS queue (+ DLQ)
        pipe.publish(backup_arn=backup, job_id="5a772b5a-...", start_time="2026-11-25T03:00:00Z")
        env = bed.env_for_rotator(emu)                # AWS_ENDPOINT_URL, least-privilege keys
        subprocess.run([os.environ["ROTATOR"], ...], env=env)

Everything talks to 127.0.0.1 only. The emulator process is killed (its whole process
group) on exit, on SIGTERM/SIGINT/SIGHUP of the test process and at interpreter exit; it
also exits by itself when the test process dies.

IAM: moto checks SigV4 signatures and IAM policies once INITIAL_NO_AUTH_ACTION_COUNT
requests have been served. The bed sets it to BOOTSTRAP_REQUESTS (6): CreateUser,
PutUserPolicy and CreateAccessKey for an admin user ("bed-admin", Action "*"), sent
without valid credentials, in the main account and in a second one (STAGING_ACCOUNT,
chosen by moto's x-moto-account-id header for these three only: afterwards moto finds an
access key's account by itself, as AWS does). Every later request, the rest of the set-up included, is signed
with the admin's keys and checked. The Rotator user ("rotator") gets as its only (inline)
policy the least-privilege policy documented in README.md between `<!-- iam-policy:begin -->`
and `<!-- iam-policy:end -->` (a ```json block).
"""

from __future__ import annotations

import atexit
import datetime as _dt
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, NamedTuple

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
REGION = "us-east-1"
ACCOUNT = "123456789012"            # moto's default account, also the templates' account
README = ROOT / "README.md"
POLICY_BEGIN = "<!-- iam-policy:begin -->"
POLICY_END = "<!-- iam-policy:end -->"

STAGING_ACCOUNT = "210987654321"    # the second account (a staging account a central vault copies into)
BOOTSTRAP_REQUESTS = 6             # requests moto serves before it starts checking IAM
STAGING_ROLE = "rotator-staging"   # the role Rotator assumes in the staging account
ADMIN_USER = "bed-admin"
ROTATOR_USER = "rotator"
ROTATOR_POLICY_NAME = "rotator-least-privilege"
RESTORE_ROLE = "rotator-backup-restore"  # the role Rotator passes to AWS Backup

# Names the documented policy grants access to; the fixtures use them by default.
BACKUP_TOPIC = "backup-notifications"
EVENTS_QUEUE = "rotator-backup-events"
ALERTS_TOPIC = "rotator-alerts"
PARAMETER_PREFIX = "/rotator/"

FILTER_POLICY = {"EventType": ["BACKUP_JOB"], "State": ["COMPLETED"]}

ADMIN_POLICY = {"Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}

SHARED_EVENTS = Path(os.environ.get("ROTATOR_SHARED_EVENTS")
                     or ROOT.parent / "shared" / "testdata" / "events")


class Keys(NamedTuple):
    access_key_id: str
    secret_access_key: str


class Staging(NamedTuple):
    """Emulator.create_staging(): the second account's ids."""
    account: str
    role_arn: str            # the role Rotator assumes
    restore_role_arn: str    # AWS Backup's restore role in that account
    vault_arn: str           # the vault copies go to


# ---------------------------------------------------------------------------------------
# The least-privilege policy


def load_iam_policy(readme: Path = README) -> tuple[dict, str]:
    """(policy, where it came from): README.md's iam-policy block, the one place the
    least-privilege policy is written down. A README without a parseable block is an error.
    """
    text = readme.read_text(encoding="utf-8")
    if POLICY_BEGIN not in text:
        raise ValueError(f"{readme}: no {POLICY_BEGIN} section holding Rotator's IAM policy")
    section = text.split(POLICY_BEGIN, 1)[1]
    if POLICY_END not in section:
        raise ValueError(f"{readme}: {POLICY_BEGIN} without {POLICY_END}")
    section = section.split(POLICY_END, 1)[0]
    m = re.search(r"```json[ \t]*\n(.*?)\n[ \t]*```", section, re.S)
    if not m:
        raise ValueError(f"{readme}: no ```json block inside the iam-policy section")
    return json.loads(m.group(1)), f"{readme.name} iam-policy block"


# ---------------------------------------------------------------------------------------
# Process clean-up: every live emulator is stopped at exit and on fatal signals

_LIVE: set["Emulator"] = set()
_LIVE_LOCK = threading.Lock()
_HANDLERS_INSTALLED = False


def _stop_all() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for emu in live:
        try:
            emu.stop()
        except Exception:
            pass


def _install_handlers() -> None:
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED:
        return
    _HANDLERS_INSTALLED = True
    atexit.register(_stop_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        previous = signal.getsignal(sig)

        def handler(signum, frame, previous=previous):
            _stop_all()
            if callable(previous):
                return previous(signum, frame)
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

        try:
            signal.signal(sig, handler)
        except (ValueError, OSError):
            pass


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


# ---------------------------------------------------------------------------------------
# The emulator


class Emulator:
    """moto_server in its own process group on 127.0.0.1:<ephemeral port>.

    Emulator(iam=True): IAM checking on, admin and Rotator users created (see module doc).
    Emulator(iam=False): no checking at all (any credentials work).
    """

    def __init__(self, iam: bool = True, policy: dict | None = None, region: str = REGION,
                 start_timeout: float = 30, keep_log: bool | None = None):
        self.iam = iam
        self.region = region
        self.start_timeout = start_timeout
        self.keep_log = bool(os.environ.get("ROTATOR_BED_KEEP")) if keep_log is None else keep_log
        if policy is None and iam:
            policy, self.policy_source = load_iam_policy()
        else:
            self.policy_source = "argument" if policy is not None else None
        self.policy = policy
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.admin_keys: Keys | None = None
        self.rotator_keys: Keys | None = None
        self.restore_role_arn: str | None = None
        self.staging_admin_keys: Keys | None = None
        self._tmp: str | None = None
        self.log_path: Path | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> "Emulator":
        if self.proc is not None:
            return self
        _install_handlers()
        self._tmp = tempfile.mkdtemp(prefix="rotator-bed-")
        self.log_path = Path(self._tmp) / "moto.log"
        env = _clean_env()
        env["AWS_EC2_METADATA_DISABLED"] = "true"
        if self.iam:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(BOOTSTRAP_REQUESTS)
        else:
            env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
        env["PYTHONUNBUFFERED"] = "1"
        log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE / "moto_launch.py"), "--host", "127.0.0.1",
                 "--parent-pid", str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, env=env,
                cwd=self._tmp, start_new_session=True, close_fds=True)
        finally:
            log.close()
        with _LIVE_LOCK:
            _LIVE.add(self)
        try:
            self.port = self._read_port()
            if self.iam:
                self._bootstrap_iam()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_port(self) -> int:
        assert self.proc and self.proc.stdout
        deadline = time.monotonic() + self.start_timeout
        buf = b""
        fd = self.proc.stdout.fileno()
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"moto did not start within {self.start_timeout}s:\n{self.log_text()}")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise RuntimeError(f"moto exited ({self.proc.wait()}) at start:\n{self.log_text()}")
                buf += chunk
        return int(json.loads(buf.split(b"\n", 1)[0])["port"])

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if proc is not None:
            for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            # The group may still hold children that outlived the leader.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if proc.stdout:
                proc.stdout.close()
        if self._tmp and not self.keep_log:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace") if self.log_path else ""
        except OSError:
            return ""

    @property
    def endpoint(self) -> str:
        assert self.port, "start() first"
        return f"http://127.0.0.1:{self.port}"

    # -- clients -------------------------------------------------------------------------

    def client(self, service: str, keys: Keys | tuple[str, str] | None = None,
               endpoint: str | None = None, retries: int | None = None,
               timeout: float | None = None, **config: Any):
        """A boto3 client for this emulator. keys: default the admin's; retries: retries
        after the first attempt (0 = off; default botocore's standard mode); timeout:
        connect and read timeout in seconds; endpoint: e.g. a FaultProxy's."""
        keys = keys or self.admin_keys or Keys("bed-bootstrap", "bed-bootstrap")
        cfg: dict[str, Any] = {"retries": {"mode": "standard"}}
        if retries is not None:
            cfg["retries"]["total_max_attempts"] = retries + 1
        if timeout is not None:
            cfg["connect_timeout"] = timeout
            cfg["read_timeout"] = timeout
        cfg.update(config)
        return boto3.session.Session().client(
            service, region_name=self.region, endpoint_url=endpoint or self.endpoint,
            aws_access_key_id=keys[0], aws_secret_access_key=keys[1], config=Config(**cfg))

    def admin_client(self, service: str, **kw: Any):
        return self.client(service, keys=self.admin_keys, **kw)

    def rotator_client(self, service: str, **kw: Any):
        return self.client(service, keys=self.rotator_keys, **kw)

    def staging_client(self, service: str, **kw: Any):
        """A client of the second account (STAGING_ACCOUNT), with its admin's keys."""
        return self.client(service, keys=self.staging_admin_keys, **kw)

    def create_staging(self, role: str = STAGING_ROLE, policy: dict | None = None,
                       external_id: str | None = None, vault: str = "staging") -> "Staging":
        """The staging account's side of a cross-account set-up: a backup vault, AWS
        Backup's restore role (RESTORE_ROLE, as in the main account) and the role Rotator
        assumes (trusting the main account's rotator user, with ExternalId when given) with
        `policy` (default: README's policy) as its inline policy."""
        iam = self.staging_client("iam")
        backup_trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "backup.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
        try:
            restore_arn = iam.create_role(RoleName=RESTORE_ROLE,
                                          AssumeRolePolicyDocument=json.dumps(backup_trust))["Role"]["Arn"]
        except ClientError as e:
            if e.response["Error"]["Code"] != "EntityAlreadyExists":
                raise
            restore_arn = iam.get_role(RoleName=RESTORE_ROLE)["Role"]["Arn"]
        trust: dict[str, Any] = {"Effect": "Allow", "Action": "sts:AssumeRole",
                                 "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{ROTATOR_USER}"}}
        if external_id:
            trust["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
        role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [trust]}))["Role"]["Arn"]
        iam.put_role_policy(RoleName=role, PolicyName=ROTATOR_POLICY_NAME,
                            PolicyDocument=json.dumps(policy if policy is not None else self.policy))
        b = self.staging_client("backup")
        try:
            b.create_backup_vault(BackupVaultName=vault)
        except ClientError as e:
            if e.response["Error"]["Code"] not in ("AlreadyExistsException",):
                raise
        return Staging(account=STAGING_ACCOUNT, role_arn=role_arn, restore_role_arn=restore_arn,
                       vault_arn=f"arn:aws:backup:{self.region}:{STAGING_ACCOUNT}:backup-vault:{vault}")

    # -- IAM -----------------------------------------------------------------------------

    def _bootstrap_iam(self) -> None:
        # Exactly BOOTSTRAP_REQUESTS requests, no retries: moto serves these unchecked.
        def admin_of(account: str | None) -> Keys:
            boot = self.client("iam", keys=Keys("bed-bootstrap", "bed-bootstrap"), retries=0)
            if account:
                def to_account(request, **_):
                    request.headers["x-moto-account-id"] = account
                boot.meta.events.register("before-sign.iam.*", to_account)
            boot.create_user(UserName=ADMIN_USER)
            boot.put_user_policy(UserName=ADMIN_USER, PolicyName="AdministratorAccess",
                                 PolicyDocument=json.dumps(ADMIN_POLICY))
            key = boot.create_access_key(UserName=ADMIN_USER)["AccessKey"]
            return Keys(key["AccessKeyId"], key["SecretAccessKey"])
        self.admin_keys = admin_of(None)
        self.staging_admin_keys = admin_of(STAGING_ACCOUNT)

        # From here on every request is signed and checked.
        self.rotator_keys = self.create_user(ROTATOR_USER, self.policy, ROTATOR_POLICY_NAME)
        iam = self.admin_client("iam")
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "backup.amazonaws.com"},
            "Action": "sts:AssumeRole"}]}
        self.restore_role_arn = iam.create_role(
            RoleName=RESTORE_ROLE, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]

        # Guard: an unknown key must now be refused, or IAM checking is not on.
        try:
            self.client("sts", keys=Keys("AKIABEDUNKNOWNKEY000", "x" * 40), retries=0).get_caller_identity()
        except ClientError as e:
            if e.response["Error"]["Code"] != "InvalidClientTokenId":
                raise
        else:
            raise RuntimeError("moto accepted an unknown access key: IAM checking is off")

    def create_user(self, name: str, policy: dict, policy_name: str = "rotator") -> Keys:
        """An IAM user of the central account with `policy` inline; its access key."""
        iam = self.admin_client("iam")
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName=policy_name, PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return Keys(key["AccessKeyId"], key["SecretAccessKey"])

    def user_without(self, name: str, drop: set[str]) -> Keys:
        """An IAM user with the README's policy less the actions in `drop` (statements left
        empty go): a test of what a missing permission does."""
        policy = json.loads(json.dumps(self.policy))
        kept = []
        for st in policy["Statement"]:
            acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            acts = [a for a in acts if a not in drop]
            if acts:
                st["Action"] = acts
                kept.append(st)
        policy["Statement"] = kept
        return self.create_user(name, policy)

    # -- DynamoDB ------------------------------------------------------------------------

    @staticmethod
    def make_item(i: int, key: str = "pk", sort_key: str | None = None) -> dict:
        item = {key: {"S": f"item-{i:06d}"}, "n": {"N": str(i)},
                "payload": {"S": f"payload {i} " + "x" * (i % 17)},
                "tags": {"SS": ["a", f"t{i % 5}"]}, "active": {"BOOL": i % 2 == 0}}
        if sort_key:
            item[sort_key] = {"N": str(i % 7)}
        return item

    def create_table(self, name: str, items: int = 0, key: str = "pk", sort_key: str | None = None,
                     tags: dict[str, str] | None = None, ttl_attribute: str | None = None,
                     pitr: bool = False, billing: str = "PAY_PER_REQUEST") -> str:
        """Creates a table (hash key `key`, string; optional numeric `sort_key`) with `items`
        items (make_item), returns its ARN."""
        ddb = self.admin_client("dynamodb")
        schema = [{"AttributeName": key, "KeyType": "HASH"}]
        attrs = [{"AttributeName": key, "AttributeType": "S"}]
        if sort_key:
            schema.append({"AttributeName": sort_key, "KeyType": "RANGE"})
            attrs.append({"AttributeName": sort_key, "AttributeType": "N"})
        kw: dict[str, Any] = {"BillingMode": billing}
        if billing == "PROVISIONED":
            kw["ProvisionedThroughput"] = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        if tags:
            kw["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        arn = ddb.create_table(TableName=name, KeySchema=schema, AttributeDefinitions=attrs,
                               **kw)["TableDescription"]["TableArn"]
        ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
        self.put_items(name, (self.make_item(i, key, sort_key) for i in range(items)))
        if ttl_attribute:
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
                "Enabled": True, "AttributeName": ttl_attribute})
        if pitr:
            ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
                "PointInTimeRecoveryEnabled": True})
        return arn

    def put_items(self, table: str, items: Iterable[dict]) -> int:
        ddb = self.admin_client("dynamodb")
        batch: list[dict] = []
        n = 0

        def flush() -> None:
            pending = {table: [{"PutRequest": {"Item": it}} for it in batch]}
            while pending:
                pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            batch.clear()

        for it in items:
            batch.append(it)
            n += 1
            if len(batch) == 25:
                flush()
        if batch:
            flush()
        return n

    def create_backup(self, table: str, name: str | None = None) -> str:
        """On-demand backup; returns arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/backup/ID."""
        ddb = self.admin_client("dynamodb")
        name = name or f"{re.sub(r'[^A-Za-z0-9_.-]', '-', table)}-{uuid.uuid4().hex[:8]}"
        return ddb.create_backup(TableName=table, BackupName=name)["BackupDetails"]["BackupArn"]

    # -- AWS Backup (the bed's control plane, backup_plane.py) ---------------------------

    def backup_control(self, action: str, **body: Any) -> dict:
        """POST /__backup__/<action> (fault, timing, wording) or GET state (body empty)."""
        import urllib.request
        data = json.dumps(body).encode() if body else None
        req = urllib.request.Request(f"{self.endpoint}/__backup__/{action}", data=data,
                                     method="POST" if data is not None else "GET")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"{}")

    def backup_fault(self, job: str = "restore", status: str = "FAILED",
                     message: str = "Restore failed", count: int = 1) -> None:
        """The next `count` jobs of that kind (backup|restore|copy) end in `status`
        (FAILED|ABORTED) with StatusMessage `message` instead of COMPLETED."""
        self.backup_control("fault", job=job, status=status, message=message, count=count)

    def backup_timing(self, pending: float = 0.3, running: float = 1.0) -> None:
        """How long jobs stay PENDING (CREATED) and RUNNING, in seconds."""
        self.backup_control("timing", pending=pending, running=running)

    def start_backup_job(self, table: str, vault: str = "Default", wait: float = 30,
                         account: str | None = None) -> dict:
        """AWS Backup job of a table (admin keys): {"job_id", "recovery_point_arn",
        "resource_arn"}; waits until the job is COMPLETED unless wait=0."""
        b = self.admin_client("backup")
        resource = f"arn:aws:dynamodb:{self.region}:{account or ACCOUNT}:table/{table}"
        out = b.start_backup_job(BackupVaultName=vault, ResourceArn=resource,
                                 IamRoleArn=self.restore_role_arn or
                                 f"arn:aws:iam::{ACCOUNT}:role/{RESTORE_ROLE}")
        if wait:
            done = wait_until(lambda: b.describe_backup_job(BackupJobId=out["BackupJobId"])["State"]
                              in ("COMPLETED", "FAILED", "ABORTED"), wait, step=0.1)
            if not done:
                raise RuntimeError(f"backup job {out['BackupJobId']} not done within {wait}s")
        return {"job_id": out["BackupJobId"], "recovery_point_arn": out["RecoveryPointArn"],
                "resource_arn": resource}

    def vault_notifications(self, topic_arn: str, vault: str = "Default",
                            events: Iterable[str] = ("BACKUP_JOB_COMPLETED", "COPY_JOB_SUCCESSFUL",
                                                     "COPY_JOB_FAILED", "BACKUP_JOB_FAILED"),
                            wording: str = "legacy") -> None:
        """PutBackupVaultNotifications: the vault's job notifications go to the topic, in
        the given body wording."""
        self.backup_control("wording", wording=wording)
        self.admin_client("backup").put_backup_vault_notifications(
            BackupVaultName=vault, SNSTopicArn=topic_arn, BackupVaultEvents=list(events))

    def create_eventbridge_pipeline(self, queue: str = EVENTS_QUEUE, rule: str = "rotator-backup-events",
                                    dlq: bool = True, max_receive_count: int = 3) -> "Queue":
        """EventBridge rule (source aws.backup, Backup/Copy Job State Change) -> SQS queue
        with a queue policy allowing events.amazonaws.com from that rule."""
        ev = self.admin_client("events")
        pattern = {"source": ["aws.backup"],
                   "detail-type": ["Backup Job State Change", "Copy Job State Change"]}
        rule_arn = ev.put_rule(Name=rule, EventPattern=json.dumps(pattern))["RuleArn"]
        q = self.create_queue(queue, dlq=dlq, max_receive_count=max_receive_count)
        policy = {"Version": "2012-10-17", "Statement": [{
            "Sid": "AllowEventBridge", "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
            "Resource": q.arn, "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}}]}
        self.admin_client("sqs").set_queue_attributes(QueueUrl=q.url, Attributes={"Policy": json.dumps(policy)})
        ev.put_targets(Rule=rule, Targets=[{"Id": "rotator", "Arn": q.arn}])
        return q

    def table_names(self) -> list[str]:
        ddb = self.admin_client("dynamodb")
        names: list[str] = []
        kw: dict[str, Any] = {}
        while True:
            out = ddb.list_tables(**kw)
            names += out.get("TableNames", [])
            if not out.get("LastEvaluatedTableName"):
                return names
            kw["ExclusiveStartTableName"] = out["LastEvaluatedTableName"]

    def describe_table(self, name: str) -> dict | None:
        try:
            return self.admin_client("dynamodb").describe_table(TableName=name)["Table"]
        except ClientError as e:
            if e.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise

    def item_count(self, name: str) -> int:
        ddb = self.admin_client("dynamodb")
        n, kw = 0, {"TableName": name, "Select": "COUNT"}
        while True:
            out = ddb.scan(**kw)
            n += out["Count"]
            if "LastEvaluatedKey" not in out:
                return n
            kw["ExclusiveStartKey"] = out["LastEvaluatedKey"]

    # -- SSM -----------------------------------------------------------------------------

    def get_parameter(self, name: str) -> str | None:
        try:
            return self.admin_client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
        except ClientError as e:
            if e.response["Error"]["Code"] == "ParameterNotFound":
                return None
            raise

    def put_parameter(self, name: str, value: str) -> None:
        self.admin_client("ssm").put_parameter(Name=name, Value=value, Type="String", Overwrite=True)

    # -- SNS / SQS -----------------------------------------------------------------------

    def create_queue(self, name: str, dlq: bool = True, max_receive_count: int = 3,
                     visibility_timeout: int = 30, topic_arn: str | None = None) -> "Queue":
        sqs = self.admin_client("sqs")
        q = Queue(emu=self, name=name)
        attrs = {"VisibilityTimeout": str(visibility_timeout)}
        if dlq:
            q.dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
            q.dlq_arn = sqs.get_queue_attributes(QueueUrl=q.dlq_url, AttributeNames=["QueueArn"])[
                "Attributes"]["QueueArn"]
            attrs["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": q.dlq_arn,
                                                 "maxReceiveCount": str(max_receive_count)})
        q.url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
        q.arn = sqs.get_queue_attributes(QueueUrl=q.url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        if topic_arn:
            policy = {"Version": "2012-10-17", "Statement": [{
                "Sid": "AllowTopic", "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage",
                "Resource": q.arn, "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}}}]}
            sqs.set_queue_attributes(QueueUrl=q.url, Attributes={"Policy": json.dumps(policy)})
        return q

    def create_backup_pipeline(self, topic: str = BACKUP_TOPIC, queue: str = EVENTS_QUEUE,
                               raw: bool = False, dlq: bool = True, max_receive_count: int = 3,
                               visibility_timeout: int = 30,
                               filter_policy: dict | None = FILTER_POLICY) -> "Pipeline":
        """AWS Backup's notification path: SNS topic -> SQS queue (filter policy, queue
        policy allowing the topic, dead-letter queue after max_receive_count receives).
        raw=True: raw message delivery (the body is the bare Message text, the attributes
        become SQS message attributes)."""
        sns = self.admin_client("sns")
        topic_arn = sns.create_topic(Name=topic)["TopicArn"]
        q = self.create_queue(queue, dlq=dlq, max_receive_count=max_receive_count,
                              visibility_timeout=visibility_timeout, topic_arn=topic_arn)
        attrs = {}
        if raw:
            attrs["RawMessageDelivery"] = "true"
        if filter_policy is not None:
            attrs["FilterPolicy"] = json.dumps(filter_policy)
            attrs["FilterPolicyScope"] = "MessageAttributes"
        sub = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=q.arn,
                            Attributes=attrs, ReturnSubscriptionArn=True)["SubscriptionArn"]
        return Pipeline(emu=self, topic_arn=topic_arn, queue=q, subscription_arn=sub, raw=raw)

    def create_alerts(self, topic: str = ALERTS_TOPIC) -> "Alerts":
        """The alerts topic Rotator publishes to, with a raw-delivery queue that captures
        every alert so tests can read them (Alerts.messages())."""
        sns = self.admin_client("sns")
        topic_arn = sns.create_topic(Name=topic)["TopicArn"]
        q = self.create_queue(f"{topic}-capture", dlq=False, topic_arn=topic_arn)
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=q.arn,
                      Attributes={"RawMessageDelivery": "true"})
        return Alerts(topic_arn=topic_arn, queue=q)


# ---------------------------------------------------------------------------------------
# Queues, the notification pipeline, alerts


@dataclass
class Queue:
    emu: Emulator
    name: str
    url: str = ""
    arn: str = ""
    dlq_url: str | None = None
    dlq_arn: str | None = None

    def send(self, body: str, attributes: dict[str, str] | None = None) -> str:
        """SendMessage straight to the queue (bypassing SNS): e.g. a malformed body."""
        kw: dict[str, Any] = {}
        if attributes:
            kw["MessageAttributes"] = {k: {"DataType": "String", "StringValue": v}
                                       for k, v in attributes.items()}
        return self.emu.admin_client("sqs").send_message(QueueUrl=self.url, MessageBody=body,
                                                         **kw)["MessageId"]

    def receive(self, max_messages: int = 10, wait: float = 0, visibility: int | None = None,
                dlq: bool = False, delete: bool = False) -> list[dict]:
        """ReceiveMessage (counts as a receive for the redrive policy). With delete, the
        messages are deleted after reading."""
        sqs = self.emu.admin_client("sqs")
        url = self.dlq_url if dlq else self.url
        kw: dict[str, Any] = {"QueueUrl": url, "MaxNumberOfMessages": max_messages,
                              "WaitTimeSeconds": int(wait), "MessageAttributeNames": ["All"],
                              "MessageSystemAttributeNames": ["All"]}
        if visibility is not None:
            kw["VisibilityTimeout"] = visibility
        msgs = sqs.receive_message(**kw).get("Messages", [])
        if delete:
            for m in msgs:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return msgs

    def depth(self) -> dict[str, int]:
        """Message counts without receiving anything: visible, in_flight, dlq."""
        sqs = self.emu.admin_client("sqs")
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        a = sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=names)["Attributes"]
        out = {"visible": int(a[names[0]]), "in_flight": int(a[names[1]]), "dlq": 0}
        if self.dlq_url:
            d = sqs.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=names)["Attributes"]
            out["dlq"] = int(d[names[0]]) + int(d[names[1]])
        return out

    def drain(self) -> int:
        """Receives and deletes every visible message of the queue and its DLQ (PurgeQueue
        is limited to once a minute per queue, in moto as in AWS); returns how many."""
        n = 0
        for dlq in (False, True) if self.dlq_url else (False,):
            while True:
                got = self.receive(dlq=dlq, delete=True)
                if not got:
                    break
                n += len(got)
        return n


@dataclass
class Pipeline:
    emu: Emulator
    topic_arn: str
    queue: Queue
    subscription_arn: str
    raw: bool = False

    @property
    def queue_url(self) -> str:
        return self.queue.url

    def publish(self, table_arn: str | None = None, backup_arn: str | None = None,
                **kw: Any) -> str:
        """Publishes an AWS Backup job notification to the topic (see backup_notification
        for the arguments); returns the SNS MessageId."""
        return self.publish_notification(backup_notification(table_arn, backup_arn, **kw))

    def publish_notification(self, n: "Notification") -> str:
        return self.emu.admin_client("sns").publish(
            TopicArn=self.topic_arn, Subject=n.subject, Message=n.message,
            MessageAttributes=n.sns_attributes())["MessageId"]

    def send_raw(self, body: str, attributes: dict[str, str] | None = None) -> str:
        return self.queue.send(body, attributes)

    def send_shared(self, name: str, replace: dict[str, str] | None = None) -> str:
        """Puts one of ../shared/testdata/events/<name> into the queue the way it would sit
        there: an SQS message file's Body (with its MessageAttributes, raw delivery), an SNS
        envelope as the body (SNS -> SQS), any other document (Lambda Records, EventBridge
        event) as the body. replace: {old: new} substitutions on the text first (e.g. the
        template's backup ARN by a real one)."""
        text = shared_event_text(name)
        for old, new in (replace or {}).items():
            text = text.replace(old, new)
        doc = json.loads(text)
        if isinstance(doc, dict) and "Body" in doc and "ReceiptHandle" in doc:
            attrs = {k: v["StringValue"] for k, v in (doc.get("MessageAttributes") or {}).items()}
            return self.queue.send(doc["Body"], attrs or None)
        return self.queue.send(json.dumps(doc, indent=2))

    def receive(self, **kw: Any) -> list[dict]:
        return self.queue.receive(**kw)


@dataclass
class Alerts:
    topic_arn: str
    queue: Queue

    def messages(self, wait: float = 0) -> list[str]:
        """Every alert published so far (consumed: each is returned once)."""
        out: list[str] = []
        deadline = time.monotonic() + wait
        while True:
            got = self.queue.receive(delete=True)
            out += [m["Body"] for m in got]
            if got:
                continue
            if out or time.monotonic() >= deadline:
                return out
            time.sleep(0.1)


# ---------------------------------------------------------------------------------------
# AWS Backup notifications (the project's own templates; the self-test checks them against
# ../shared/testdata/events when that folder exists)

OMIT = object()  # start_time=OMIT: no StartTime attribute (AWS does that sometimes)

MESSAGES = {
    ("COMPLETED", "legacy"): "An AWS Backup job was completed successfully. Recovery point ARN: "
                             "{recovery_point}. Backed up Resource ARN : {resource}. "
                             "Backup Job Id : {job_id}",
    ("COMPLETED", "documented"): "An AWS Backup job was completed successfully. Recovery point "
                                 "ARN: {recovery_point}. Resource ARN : {resource}. "
                                 "BackupJob ID : {job_id}",
    ("FAILED", "documented"): "An AWS Backup job failed. Resource ARN : {resource}. "
                              "BackupJob ID : {job_id}",
    ("FAILED", "legacy"): "An AWS Backup job failed. Backed up Resource ARN : {resource}. "
                          "Backup Job Id : {job_id}",
}
SUBJECT = "Notification from AWS Backup"


@dataclass
class Notification:
    subject: str
    message: str
    attributes: dict[str, str]   # name -> string value, in AWS's order

    def sns_attributes(self) -> dict:
        return {k: {"DataType": "String", "StringValue": v} for k, v in self.attributes.items()}

    def envelope(self, topic_arn: str = f"arn:aws:sns:{REGION}:{ACCOUNT}:{BACKUP_TOPIC}",
                 timestamp: str | None = None) -> dict:
        """The SNS envelope SQS would hold for this notification (non-raw delivery), with
        placeholder signature fields, as in the shared templates."""
        sub = f"{topic_arn}:0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
        return {
            "Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": topic_arn,
            "Subject": self.subject, "Message": self.message,
            "Timestamp": timestamp or iso_now(), "SignatureVersion": "1",
            "Signature": "EXAMPLE", "SigningCertURL":
                f"https://sns.{REGION}.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
            "UnsubscribeURL": f"https://sns.{REGION}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={sub}",
            "MessageAttributes": {k: {"Type": "String", "Value": v} for k, v in self.attributes.items()},
        }


def iso_now() -> str:
    now = _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def backup_notification(table_arn: str | None = None, backup_arn: str | None = None,
                        job_id: str | None = None, start_time: Any = None,
                        state: str = "COMPLETED", wording: str = "legacy",
                        account: str | None = None, message: str | None = None) -> Notification:
    """The SNS notification AWS Backup sends for a backup job.

    table_arn: the backed-up resource (default: derived from backup_arn);
    backup_arn: the recovery point (a DynamoDB backup ARN, or arn:aws:backup:...:recovery-point:...);
    job_id: default a new uuid4; start_time: ISO-8601 string or datetime, default now,
    OMIT for no StartTime attribute; state: COMPLETED or FAILED (others need `message`);
    wording: "legacy" (Backed up Resource ARN : / Backup Job Id :) or "documented"
    (Resource ARN : / BackupJob ID :)."""
    if table_arn is None:
        if not backup_arn or "/backup/" not in backup_arn:
            raise ValueError("table_arn is needed unless backup_arn is a DynamoDB backup ARN")
        table_arn = backup_arn.split("/backup/", 1)[0]
    if wording not in ("legacy", "documented"):
        raise ValueError(f"wording must be legacy or documented, not {wording!r}")
    job_id = job_id or str(uuid.uuid4())
    if message is None:
        template = MESSAGES.get((state, wording))
        if template is None:
            raise ValueError(f"no message template for state {state!r}; pass message=")
        if state == "COMPLETED" and not backup_arn:
            raise ValueError("a COMPLETED notification needs backup_arn")
        message = template.format(recovery_point=backup_arn, resource=table_arn, job_id=job_id)
    account = account or (table_arn.split(":")[4] if table_arn.count(":") >= 5 else ACCOUNT)
    attrs = {"EventType": "BACKUP_JOB", "State": state, "AccountId": account, "Id": job_id}
    if start_time is not OMIT:
        if start_time is None:
            start_time = iso_now()
        elif isinstance(start_time, _dt.datetime):
            start_time = start_time.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        attrs["StartTime"] = str(start_time)
    return Notification(subject=SUBJECT, message=message, attributes=attrs)


def eventbridge_backup_event(recovery_point_arn: str, resource_arn: str, job_id: str | None = None,
                             state: str = "COMPLETED", creation_date: str | None = None,
                             account: str = ACCOUNT, region: str = REGION) -> dict:
    """An EventBridge "Backup Job State Change" event (as an EventBridge -> SQS target
    delivers it: the whole event is the body). Send with Queue.send(json.dumps(event))."""
    now = iso_now()
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Backup Job State Change",
        "source": "aws.backup", "account": account, "time": now[:19] + "Z", "region": region,
        "resources": [recovery_point_arn],
        "detail": {
            "backupJobId": job_id or str(uuid.uuid4()), "backupSizeInBytes": "36048",
            "backupVaultArn": f"arn:aws:backup:{region}:{account}:backup-vault:Default",
            "backupVaultName": "Default", "bytesTransferred": "36048",
            "creationDate": creation_date or now,
            "iamRoleArn": f"arn:aws:iam::{account}:role/service-role/AWSBackupDefaultServiceRole",
            "resourceArn": resource_arn, "resourceType": "DynamoDB", "state": state,
            "completionDate": now, "startBy": now, "percentDone": 100, "retryCount": 0,
        },
    }


# -- the shared example notifications (read at run time, never copied) --------------------


def shared_events_dir() -> Path | None:
    return SHARED_EVENTS if (SHARED_EVENTS / "expected.json").exists() else None


def shared_event_text(name: str) -> str:
    d = shared_events_dir()
    if d is None:
        raise FileNotFoundError(f"no shared events at {SHARED_EVENTS} (set ROTATOR_SHARED_EVENTS)")
    return (d / name).read_text(encoding="utf-8")


def shared_notifications(name: str) -> list[tuple[str, dict[str, str]]]:
    """(Message text, {attribute: value}) of each notification in a shared file, whatever
    its form (SNS envelope, SQS message holding one, raw delivery, Lambda Records)."""
    doc = json.loads(shared_event_text(name))
    out: list[tuple[str, dict[str, str]]] = []

    def envelope(env: dict) -> None:
        attrs = {k: v["Value"] for k, v in (env.get("MessageAttributes") or {}).items()}
        out.append((env["Message"], attrs))

    if "Records" in doc:
        for r in doc["Records"]:
            envelope(r["Sns"])
    elif "Body" in doc:
        try:
            inner = json.loads(doc["Body"])
        except ValueError:
            inner = None
        if isinstance(inner, dict) and "Message" in inner:
            envelope(inner)
        else:
            attrs = {k: v["StringValue"] for k, v in (doc.get("MessageAttributes") or {}).items()}
            out.append((doc["Body"], attrs))
    elif doc.get("Type") == "Notification":
        envelope(doc)
    return out


# ---------------------------------------------------------------------------------------
# Running the rotator


class Daemon:
    """`rotator --policies P run --queue-url Q` with its log in TMP/NAME.log."""

    def __init__(self, tmp: str, name: str, env: dict, policies: str, queue_url: str,
                 binary: str | None = None):
        self.path = os.path.join(tmp, name + ".log")
        self.logf = open(self.path, "w")
        self.proc = subprocess.Popen([binary or os.environ["ROTATOR"], "--policies", policies, "run",
                                      "--queue-url", queue_url],
                                     env=env, stdout=self.logf, stderr=subprocess.STDOUT)

    def stop(self):
        rc = stop_process(self.proc)
        self.logf.close()
        return rc

    def text(self) -> str:
        with open(self.path) as f:
            return f.read()

    def events(self, event: str) -> list[str]:
        return [line for line in self.text().splitlines() if f"event={event} " in line]


def stop_process(proc, timeout: float = 40):
    """SIGTERM a daemon and wait for it; SIGKILL it if it has not exited within timeout.
    Returns its exit status, or None when it had to be killed."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def wait_until(fn, timeout: float, step: float = 0.2):
    """Poll fn() until it returns something truthy or timeout seconds pass; returns its
    last value (falsy on timeout), so callers assert on what they got."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


def env_for_rotator(emu: Emulator | None = None, endpoint: str | None = None,
                    keys: Keys | tuple[str, str] | None = None, region: str = REGION,
                    base: dict[str, str] | None = None, extra: dict[str, str] | None = None
                    ) -> dict[str, str]:
    """The environment to run the rotator binary against the emulator (or a FaultProxy in
    front of it: endpoint=proxy.endpoint): base (default os.environ) without any AWS_*
    variable, plus AWS_ENDPOINT_URL, AWS_REGION, the least-privilege user's
    AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and AWS_EC2_METADATA_DISABLED=true, and a fresh
    private ROTATOR_STATE_DIR (a journal of its own: never the machine's /var/lib/rotator)
    unless extra names one."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("AWS_")}
    if keys is None:
        if emu is None or emu.rotator_keys is None:
            raise ValueError("no keys: pass keys= or an Emulator started with iam=True")
        keys = emu.rotator_keys
    if endpoint is None:
        if emu is None:
            raise ValueError("pass endpoint= or emu=")
        endpoint = emu.endpoint
    env.update({
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": region,
        "AWS_ACCESS_KEY_ID": keys[0],
        "AWS_SECRET_ACCESS_KEY": keys[1],
        "AWS_EC2_METADATA_DISABLED": "true",
        "ROTATOR_STATE_DIR": tempfile.mkdtemp(prefix="rotator-state-"),
    })
    env.update(extra or {})
    return env
