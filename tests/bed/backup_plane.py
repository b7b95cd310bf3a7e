"""The AWS Backup control plane of the test bed, served inside the moto server process.

moto has no backup jobs, recovery points, restore jobs or copy jobs. This module serves
them (AWS Backup's REST-JSON API, shapes and error codes as in botocore's `backup` model)
on the moto port, in front of moto's own WSGI app, backed by moto's in-process backends:

- StartBackupJob makes a moto DynamoDB backup (CreateBackup) and a recovery point
  arn:aws:backup:REGION:ACCOUNT:recovery-point:<uuid> in the named vault (moto's vaults,
  or "Default", which AWS creates itself).
- StartRestoreJob (DynamoDB Metadata keys case-insensitive: targetTableName,
  encryptionType, kmsMasterKeyArn) restores that backup with moto's
  RestoreTableFromBackup when the job completes; the table's RestoreSummary names the
  recovery point, as AWS's does. IdempotencyToken: same token and input, same job.
- Jobs move PENDING -> RUNNING -> COMPLETED on a clock (BackupPlane.timing), or FAILED /
  ABORTED with a StatusMessage when a fault planted through the control endpoint says so.
- StartCopyJob copies a recovery point into a vault of another account (the backup is
  copied into that account's moto DynamoDB backend).
- Every state change publishes what AWS Backup publishes: the vault's SNS notifications
  (PutBackupVaultNotifications; both body wordings, MessageAttributes) and EventBridge
  events (source aws.backup) through moto's events backend, whose rules deliver to SQS.

Requests are checked like moto checks its own: the SigV4 signature, then the IAM policy
for the backup:* action on the resource, and iam:PassRole on IamRoleArn (which moto never
checks). Refusals are HTTP 403 AccessDeniedException with AWS's message wording.

Control endpoint for tests (unsigned, loopback only): POST /__backup__/fault with
{"job": "restore"|"copy"|"backup", "status": "FAILED"|"ABORTED", "message": "...",
"count": 1}; POST /__backup__/timing {"pending": s, "running": s}; POST /__backup__/wording
{"wording": "legacy"|"documented"} (the SNS body wording of vaults configured afterwards);
GET /__backup__/state.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import re
import threading
import time
import uuid
from urllib.parse import parse_qs, unquote

import bed_auth

WORDING = ("legacy", "documented")

ROUTES = [
    ("PUT", r"/backup-jobs", "StartBackupJob"),
    ("GET", r"/backup-jobs/", "ListBackupJobs"),
    ("GET", r"/backup-jobs/(?P<job>[^/]+)", "DescribeBackupJob"),
    ("GET", r"/resources/(?P<resource>.+)/recovery-points/", "ListRecoveryPointsByResource"),
    ("GET", r"/backup-vaults/(?P<vault>[^/]+)/recovery-points/", "ListRecoveryPointsByBackupVault"),
    ("GET", r"/backup-vaults/(?P<vault>[^/]+)/recovery-points/(?P<rp>.+)", "DescribeRecoveryPoint"),
    ("PUT", r"/backup-vaults/(?P<vault>[^/]+)/notification-configuration", "PutBackupVaultNotifications"),
    ("GET", r"/backup-vaults/(?P<vault>[^/]+)/notification-configuration", "GetBackupVaultNotifications"),
    ("PUT", r"/restore-jobs", "StartRestoreJob"),
    ("GET", r"/restore-jobs/", "ListRestoreJobs"),
    ("GET", r"/restore-jobs/(?P<job>[^/]+)", "DescribeRestoreJob"),
    ("PUT", r"/restore-jobs/(?P<job>[^/]+)/validations", "PutRestoreValidationResult"),
    ("PUT", r"/copy-jobs", "StartCopyJob"),
    ("GET", r"/copy-jobs/", "ListCopyJobs"),
    ("GET", r"/copy-jobs/(?P<job>[^/]+)", "DescribeCopyJob"),
]
ROUTES = [(m, re.compile(p + r"\Z"), a) for m, p, a in ROUTES]

DONE = ("COMPLETED", "FAILED", "ABORTED")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _now() -> float:
    return time.time()


def _iso(t: float) -> str:
    d = _dt.datetime.fromtimestamp(t, _dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def _arn_parts(arn: str) -> tuple[str, str, str, str]:
    parts = arn.split(":", 5)
    if len(parts) < 6:
        raise ApiError(400, "InvalidParameterValueException", f"Invalid ARN: {arn}")
    return parts[2], parts[3], parts[4], parts[5]   # service, region, account, resource


def _hide_recovery_point_backups() -> None:
    """A recovery point's DynamoDB backup is how the plane stores it, not a DynamoDB
    backup of the account: as on AWS (tables with AWS Backup's advanced features), it is
    absent from DynamoDB ListBackups, so a client finds it through AWS Backup only."""
    from moto.dynamodb.models import DynamoDBBackend
    if getattr(DynamoDBBackend.list_backups, "_hides_recovery_points", False):
        return
    listed = DynamoDBBackend.list_backups

    def list_backups(self, *args, **kwargs):
        return [b for b in listed(self, *args, **kwargs) if not getattr(b, "recovery_point", False)]
    list_backups._hides_recovery_points = True
    DynamoDBBackend.list_backups = list_backups


class BackupPlane:
    def __init__(self) -> None:
        _hide_recovery_point_backups()
        self.lock = threading.RLock()
        self.vault_notifications: dict[tuple[str, str, str], dict] = {}   # (account, region, vault)
        self.recovery_points: dict[str, dict] = {}
        self.backup_jobs: dict[str, dict] = {}
        self.restore_jobs: dict[str, dict] = {}
        self.copy_jobs: dict[str, dict] = {}
        self.tokens: dict[tuple[str, str, str], str] = {}    # (account, kind, token) -> job id
        self.faults: list[dict] = []
        self.timing = {"pending": 0.3, "running": 1.0}
        self.published: list[dict] = []
        self.wording = "legacy"     # body wording of the SNS notifications of vaults set up next
        threading.Thread(target=self._ticker, name="backup-plane", daemon=True).start()

    # -- WSGI ----------------------------------------------------------------------------

    def wrap(self, app):
        def wsgi(environ, start_response):
            path = environ.get("PATH_INFO", "")
            if path.startswith("/__backup__/"):
                return self._control(environ, start_response)
            auth = environ.get("HTTP_AUTHORIZATION", "")
            m = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/", auth)
            if m and m.group(1) == "backup":
                route = self._route(environ.get("REQUEST_METHOD", ""), environ.get("RAW_URI") or path)
                if route:
                    return self._serve(environ, start_response, *route)
            return app(environ, start_response)
        return wsgi

    @staticmethod
    def _route(method: str, raw: str):
        raw = raw.split("?", 1)[0]
        for m, rx, action in ROUTES:
            g = rx.match(raw) if m == method else None
            if g:
                return action, {k: unquote(v) for k, v in g.groupdict().items()}
        return None

    def _reply(self, start_response, status: int, doc: dict | None, extra=()):
        body = b"" if doc is None else json.dumps(doc).encode()
        reason = {200: "OK", 204: "No Content", 400: "Bad Request", 403: "Forbidden",
                  404: "Not Found"}.get(status, "Error")
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                   ("x-amzn-RequestId", str(uuid.uuid4()))] + list(extra)
        start_response(f"{status} {reason}", headers)
        return [body]

    def _serve(self, environ, start_response, action: str, path_params: dict):
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length else b""
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        try:
            params = json.loads(body) if body else {}
            if not isinstance(params, dict):
                raise ValueError("not an object")
        except ValueError:
            return self._reply(start_response, 400, {"Code": "InvalidParameterValueException",
                                                     "Message": "The request body is not a JSON object"},
                               [("x-amzn-ErrorType", "InvalidParameterValueException")])
        try:
            account, region = self._authorize(environ, body, action, path_params, params)
            with self.lock:
                self._advance()
                status, doc = getattr(self, "_" + action)(account, region, path_params, query, params)
        except ApiError as e:
            return self._reply(start_response, e.status, {"Code": e.code, "Message": e.message,
                                                          "message": e.message},
                               [("x-amzn-ErrorType", e.code)])
        return self._reply(start_response, status, doc)

    # -- SigV4 and IAM -------------------------------------------------------------------

    def _authorize(self, environ, body: bytes, action: str, path_params: dict, params: dict):
        try:
            account, region, req = bed_auth.check(
                environ, body, "backup", action,
                lambda account, region: self._resource(account, region, action, path_params, params))
            role = params.get("IamRoleArn")
            if role and action in ("StartRestoreJob", "StartBackupJob", "StartCopyJob"):
                bed_auth.permit(req, "iam:PassRole", role)
        except bed_auth.Refused as e:
            raise ApiError(403, e.code, e.message)
        return account, region

    def _resource(self, account, region, action, pp, params) -> str:
        vault = lambda name: f"arn:aws:backup:{region}:{account}:backup-vault:{name}"  # noqa: E731
        if "rp" in pp:      # DescribeRecoveryPoint: AWS authorizes it on the recovery point
            return pp["rp"]
        if "vault" in pp:
            return vault(pp["vault"])
        if action in ("StartRestoreJob", "StartCopyJob"):
            return params.get("RecoveryPointArn") or "*"
        if action == "StartBackupJob":
            return vault(params.get("BackupVaultName", ""))
        if action == "ListRecoveryPointsByResource":
            return pp.get("resource", "*")
        return "*"

    # -- moto backends -------------------------------------------------------------------

    @staticmethod
    def _ddb(account: str, region: str):
        from moto.dynamodb.models import dynamodb_backends
        return dynamodb_backends[account][region]

    @staticmethod
    def _vault_exists(account: str, region: str, name: str) -> bool:
        if name == "Default":
            return True
        from moto.backup.models import backup_backends
        try:
            backup_backends[account][region].describe_backup_vault(name)
            return True
        except Exception:
            return False

    def _need_vault(self, account, region, name):
        if not name:
            raise ApiError(400, "MissingParameterValueException", "BackupVaultName is required")
        if not self._vault_exists(account, region, name):
            raise ApiError(404, "ResourceNotFoundException", f"Backup vault {name} does not exist")

    # -- jobs ----------------------------------------------------------------------------

    def _idempotent(self, account: str, kind: str, token: str | None, make):
        if token:
            existing = self.tokens.get((account, kind, token))
            if existing:
                return existing
        job_id = make()
        if token:
            self.tokens[(account, kind, token)] = job_id
        return job_id

    def _job(self, kind: str, account: str, region: str, **fields) -> dict:
        t = _now()
        job = {"kind": kind, "account": account, "region": region, "id": str(uuid.uuid4()).upper()
               if kind == "backup" else str(uuid.uuid4()), "created": t, "state": "CREATED",
               "completed": None, "status_message": None}
        job.update(fields)
        fault = next((f for f in self.faults if f["job"] == kind and f["count"] > 0), None)
        if fault:
            fault["count"] -= 1
            job["fault"] = {"status": fault["status"], "message": fault["message"]}
        return job

    def _StartBackupJob(self, account, region, pp, q, p):
        vault, resource = p.get("BackupVaultName"), p.get("ResourceArn")
        if not resource or not p.get("IamRoleArn"):
            raise ApiError(400, "MissingParameterValueException", "ResourceArn and IamRoleArn are required")
        self._need_vault(account, region, vault)
        service, _, _, res = _arn_parts(resource)
        if service != "dynamodb" or not res.startswith("table/"):
            raise ApiError(400, "InvalidParameterValueException", f"Unsupported resource for this bed: {resource}")
        table = res.split("/", 1)[1]
        if table not in self._ddb(account, region).tables:
            raise ApiError(404, "ResourceNotFoundException", f"Resource {resource} does not exist")

        def make() -> str:
            job = self._job("backup", account, region, vault=vault, resource=resource, table=table,
                            role=p["IamRoleArn"], recovery_point=f"arn:aws:backup:{region}:{account}"
                            f":recovery-point:{uuid.uuid4()}")
            self.backup_jobs[job["id"]] = job
            self._move(job, "CREATED")
            return job["id"]

        job = self.backup_jobs[self._idempotent(account, "backup", p.get("IdempotencyToken"), make)]
        return 200, {"BackupJobId": job["id"], "RecoveryPointArn": job["recovery_point"],
                     "CreationDate": job["created"]}

    def _backup_job_doc(self, job) -> dict:
        doc = {"AccountId": job["account"], "BackupJobId": job["id"], "BackupVaultName": job["vault"],
               "BackupVaultArn": self._vault_arn(job["account"], job["region"], job["vault"]),
               "ResourceArn": job["resource"], "CreationDate": job["created"], "State": job["state"],
               "PercentDone": "100.0" if job["state"] == "COMPLETED" else "0.0",
               "IamRoleArn": job["role"], "ResourceType": "DynamoDB", "ResourceName": job["table"],
               "BackupSizeInBytes": 36048, "StartBy": job["created"] + 3600}
        if job["state"] == "COMPLETED":
            doc["RecoveryPointArn"] = job["recovery_point"]
        self._ended(doc, job)
        return doc

    @staticmethod
    def _ended(doc: dict, job: dict) -> None:
        if job["completed"]:
            doc["CompletionDate"] = job["completed"]
        if job["status_message"]:
            doc["StatusMessage"] = job["status_message"]

    @staticmethod
    def _vault_arn(account, region, vault) -> str:
        return f"arn:aws:backup:{region}:{account}:backup-vault:{vault}"

    def _get(self, table: dict, job_id: str, what: str, account: str) -> dict:
        job = table.get(job_id)
        if not job or job["account"] != account:
            raise ApiError(404, "ResourceNotFoundException", f"{what} {job_id} does not exist")
        return job

    def _DescribeBackupJob(self, account, region, pp, q, p):
        return 200, self._backup_job_doc(self._get(self.backup_jobs, pp["job"], "Backup job", account))

    def _ListBackupJobs(self, account, region, pp, q, p):
        jobs = [self._backup_job_doc(j) for j in self.backup_jobs.values() if j["account"] == account
                and q.get("resourceArn", j["resource"]) == j["resource"]
                and q.get("state", j["state"]) == j["state"]
                and q.get("backupVaultName", j["vault"]) == j["vault"]]
        return 200, {"BackupJobs": jobs}

    # -- recovery points -----------------------------------------------------------------

    def _rp_doc(self, rp: dict, shape: str) -> dict:
        doc = {"RecoveryPointArn": rp["arn"], "BackupVaultName": rp["vault"],
               "BackupVaultArn": self._vault_arn(rp["account"], rp["region"], rp["vault"]),
               "ResourceArn": rp["resource"], "ResourceType": "DynamoDB", "ResourceName": rp["table"],
               "IamRoleArn": rp["role"], "Status": "COMPLETED", "CreationDate": rp["created"],
               "CompletionDate": rp["created"], "BackupSizeInBytes": 36048, "IsEncrypted": False,
               "StorageClass": "WARM", "VaultType": "BACKUP_VAULT", "IsParent": False}
        if rp.get("source_vault"):
            doc["SourceBackupVaultArn"] = rp["source_vault"]
        if rp.get("backup_job"):
            doc["CreatedBy"] = {}
        if shape == "resource":
            doc = {k: doc[k] for k in ("RecoveryPointArn", "CreationDate", "Status", "BackupVaultName",
                                       "ResourceName", "VaultType", "IsParent")}
            doc["BackupSizeBytes"] = 36048
        elif shape == "vault":
            doc.pop("StorageClass")
        return doc

    def _ListRecoveryPointsByResource(self, account, region, pp, q, p):
        rps = [self._rp_doc(r, "resource") for r in self.recovery_points.values()
               if r["account"] == account and r["resource"] == pp["resource"]]
        rps.sort(key=lambda d: d["CreationDate"], reverse=True)
        return 200, {"RecoveryPoints": rps}

    def _ListRecoveryPointsByBackupVault(self, account, region, pp, q, p):
        self._need_vault(account, region, pp["vault"])
        rps = [self._rp_doc(r, "vault") for r in self.recovery_points.values()
               if r["account"] == account and r["vault"] == pp["vault"]
               and q.get("resourceArn", r["resource"]) == r["resource"]]
        rps.sort(key=lambda d: d["CreationDate"], reverse=True)
        return 200, {"RecoveryPoints": rps}

    def _DescribeRecoveryPoint(self, account, region, pp, q, p):
        rp = self.recovery_points.get(pp["rp"])
        if not rp or rp["account"] != account or rp["vault"] != pp["vault"]:
            raise ApiError(404, "ResourceNotFoundException",
                           f"Recovery point {pp['rp']} does not exist in vault {pp['vault']}")
        return 200, self._rp_doc(rp, "describe")

    def _PutBackupVaultNotifications(self, account, region, pp, q, p):
        self._need_vault(account, region, pp["vault"])
        if not p.get("SNSTopicArn") or not p.get("BackupVaultEvents"):
            raise ApiError(400, "MissingParameterValueException", "SNSTopicArn and BackupVaultEvents are required")
        self.vault_notifications[(account, region, pp["vault"])] = {
            "SNSTopicArn": p["SNSTopicArn"], "BackupVaultEvents": list(p["BackupVaultEvents"]),
            "wording": self.wording}
        return 200, None

    def _GetBackupVaultNotifications(self, account, region, pp, q, p):
        n = self.vault_notifications.get((account, region, pp["vault"]))
        if not n:
            raise ApiError(404, "ResourceNotFoundException", f"No notifications for vault {pp['vault']}")
        return 200, {"BackupVaultName": pp["vault"], "SNSTopicArn": n["SNSTopicArn"],
                     "BackupVaultEvents": n["BackupVaultEvents"],
                     "BackupVaultArn": self._vault_arn(account, region, pp["vault"])}

    # -- restore jobs --------------------------------------------------------------------

    def _StartRestoreJob(self, account, region, pp, q, p):
        arn, role = p.get("RecoveryPointArn"), p.get("IamRoleArn")
        meta = p.get("Metadata")
        if not arn or not isinstance(meta, dict):
            raise ApiError(400, "MissingParameterValueException", "RecoveryPointArn and Metadata are required")
        if not role:
            raise ApiError(400, "MissingParameterValueException", "IamRoleArn is required")
        rp = self.recovery_points.get(arn)
        if not rp or rp["account"] != account:
            raise ApiError(404, "ResourceNotFoundException", f"Recovery point {arn} does not exist")
        lower = {k.lower(): v for k, v in meta.items()}
        target = lower.get("targettablename")
        if not target:
            raise ApiError(400, "InvalidParameterValueException",
                           "Metadata targetTableName is required to restore a DynamoDB recovery point")
        enc = lower.get("encryptiontype", "Default")
        if enc not in ("Default", "KMS"):
            raise ApiError(400, "InvalidParameterValueException", f"Invalid encryptionType: {enc}")
        if enc == "KMS" and not lower.get("kmsmasterkeyarn"):
            raise ApiError(400, "InvalidParameterValueException", "kmsMasterKeyArn is required with encryptionType KMS")

        def make() -> str:
            job = self._job("restore", account, region, recovery_point=arn, rp=rp, target=target,
                            role=role, metadata=meta, copy_tags=bool(p.get("CopySourceTagsToRestoredResource")),
                            validation=None, validation_message=None)
            self.restore_jobs[job["id"]] = job
            self._move(job, "PENDING")
            return job["id"]

        job_id = self._idempotent(account, "restore", p.get("IdempotencyToken"), make)
        return 200, {"RestoreJobId": job_id}

    def _restore_job_doc(self, job) -> dict:
        rp = job["rp"]
        doc = {"AccountId": job["account"], "RestoreJobId": job["id"], "RecoveryPointArn": job["recovery_point"],
               "SourceResourceArn": rp["resource"], "BackupVaultArn": self._vault_arn(rp["account"], rp["region"], rp["vault"]),
               "CreationDate": job["created"], "Status": job["state"], "IamRoleArn": job["role"],
               "ResourceType": "DynamoDB", "RecoveryPointCreationDate": rp["created"],
               "PercentDone": "100.00%" if job["state"] == "COMPLETED" else "0.00%",
               "BackupSizeInBytes": 36048, "ExpectedCompletionTimeMinutes": 1, "IsParent": False}
        if job["state"] == "COMPLETED":
            doc["CreatedResourceArn"] = f"arn:aws:dynamodb:{job['region']}:{job['account']}:table/{job['target']}"
        self._ended(doc, job)
        if job["validation"]:
            doc["ValidationStatus"] = job["validation"]
            if job["validation_message"]:
                doc["ValidationStatusMessage"] = job["validation_message"]
        return doc

    def _DescribeRestoreJob(self, account, region, pp, q, p):
        return 200, self._restore_job_doc(self._get(self.restore_jobs, pp["job"], "Restore job", account))

    def _ListRestoreJobs(self, account, region, pp, q, p):
        jobs = [self._restore_job_doc(j) for j in self.restore_jobs.values()
                if j["account"] == account and q.get("status", j["state"]) == j["state"]]
        return 200, {"RestoreJobs": jobs}

    def _PutRestoreValidationResult(self, account, region, pp, q, p):
        job = self._get(self.restore_jobs, pp["job"], "Restore job", account)
        status = p.get("ValidationStatus")
        if status not in ("FAILED", "SUCCESSFUL", "TIMED_OUT", "VALIDATING"):
            raise ApiError(400, "InvalidParameterValueException", f"Invalid ValidationStatus: {status}")
        if job["state"] != "COMPLETED":
            raise ApiError(400, "InvalidRequestException",
                           f"Restore job {job['id']} is {job['state']}; validation results need a COMPLETED job")
        job["validation"], job["validation_message"] = status, p.get("ValidationStatusMessage")
        return 204, None

    # -- copy jobs -----------------------------------------------------------------------

    def _StartCopyJob(self, account, region, pp, q, p):
        arn, dest, vault = p.get("RecoveryPointArn"), p.get("DestinationBackupVaultArn"), p.get("SourceBackupVaultName")
        if not arn or not dest or not vault or not p.get("IamRoleArn"):
            raise ApiError(400, "MissingParameterValueException",
                           "RecoveryPointArn, SourceBackupVaultName, DestinationBackupVaultArn and IamRoleArn are required")
        rp = self.recovery_points.get(arn)
        if not rp or rp["account"] != account or rp["vault"] != vault:
            raise ApiError(404, "ResourceNotFoundException", f"Recovery point {arn} does not exist in vault {vault}")
        service, dregion, daccount, res = _arn_parts(dest)
        if service != "backup" or not res.startswith("backup-vault:"):
            raise ApiError(400, "InvalidParameterValueException", f"Invalid DestinationBackupVaultArn: {dest}")
        dvault = res.split(":", 1)[1]
        if not self._vault_exists(daccount, dregion, dvault):
            raise ApiError(404, "ResourceNotFoundException", f"Backup vault {dest} does not exist")

        def make() -> str:
            job = self._job("copy", account, region, rp=rp, source=arn, dest_vault=dvault, dest_account=daccount,
                            dest_region=dregion, role=p["IamRoleArn"],
                            dest_rp=f"arn:aws:backup:{dregion}:{daccount}:recovery-point:{uuid.uuid4()}")
            self.copy_jobs[job["id"]] = job
            self._move(job, "CREATED")
            return job["id"]

        job = self.copy_jobs[self._idempotent(account, "copy", p.get("IdempotencyToken"), make)]
        return 200, {"CopyJobId": job["id"], "CreationDate": job["created"], "IsParent": False}

    def _copy_job_doc(self, job) -> dict:
        rp = job["rp"]
        doc = {"AccountId": job["account"], "CopyJobId": job["id"],
               "SourceBackupVaultArn": self._vault_arn(rp["account"], rp["region"], rp["vault"]),
               "SourceRecoveryPointArn": job["source"],
               "DestinationBackupVaultArn": self._vault_arn(job["dest_account"], job["dest_region"], job["dest_vault"]),
               "ResourceArn": rp["resource"], "ResourceName": rp["table"], "CreationDate": job["created"],
               "State": job["state"], "BackupSizeInBytes": 36048, "IamRoleArn": job["role"],
               "ResourceType": "DynamoDB", "IsParent": False}
        if job["state"] == "COMPLETED":
            doc["DestinationRecoveryPointArn"] = job["dest_rp"]
        self._ended(doc, job)
        return doc

    def _DescribeCopyJob(self, account, region, pp, q, p):
        return 200, {"CopyJob": self._copy_job_doc(self._get(self.copy_jobs, pp["job"], "Copy job", account))}

    def _ListCopyJobs(self, account, region, pp, q, p):
        return 200, {"CopyJobs": [self._copy_job_doc(j) for j in self.copy_jobs.values()
                                  if j["account"] == account and q.get("state", j["state"]) == j["state"]]}

    # -- the clock: jobs move on -----------------------------------------------------------

    def _ticker(self) -> None:
        while True:
            time.sleep(0.05)
            try:
                with self.lock:
                    self._advance()
            except Exception as e:   # keep serving; the failure shows in moto's log
                print(f"backup-plane: {e!r}", flush=True)

    def _advance(self) -> None:
        now = _now()
        pending, running = self.timing["pending"], self.timing["running"]
        for job in [*self.backup_jobs.values(), *self.restore_jobs.values(), *self.copy_jobs.values()]:
            if job["state"] in DONE:
                continue
            age = now - job["created"]
            if job["state"] in ("CREATED", "PENDING") and age >= pending:
                self._move(job, "RUNNING")
            if job["state"] == "RUNNING" and age >= pending + running:
                fault = job.get("fault")
                if fault:
                    job["status_message"] = fault["message"]
                    self._move(job, fault["status"])
                    continue
                try:
                    getattr(self, "_finish_" + job["kind"])(job)
                except ApiError as e:
                    job["status_message"] = e.message
                    self._move(job, "FAILED")
                    continue
                except Exception as e:    # a bed bug: the job fails visibly, once
                    job["status_message"] = f"bed control plane error: {e!r}"
                    self._move(job, "FAILED")
                    continue
                self._move(job, "COMPLETED")

    def _finish_backup(self, job) -> None:
        try:
            backup = self._ddb(job["account"], job["region"]).create_backup(job["table"], f"awsbackup-{job['id']}")
        except Exception as e:
            raise ApiError(400, "InvalidRequestException", f"CreateBackup of {job['table']} failed: {e}")
        backup.recovery_point = True
        self.recovery_points[job["recovery_point"]] = {
            "arn": job["recovery_point"], "account": job["account"], "region": job["region"], "vault": job["vault"],
            "resource": job["resource"], "table": job["table"], "role": job["role"], "created": job["created"],
            "backup_arn": backup.arn, "backup_job": job["id"]}

    def _finish_restore(self, job) -> None:
        from moto.dynamodb.exceptions import TableAlreadyExistsException
        rp = job["rp"]
        ddb = self._ddb(job["account"], job["region"])
        try:
            table = ddb.restore_table_from_backup(job["target"], rp["backup_arn"])
        except TableAlreadyExistsException:
            raise ApiError(400, "InvalidRequestException", f"Table already exists: {job['target']}")
        table.source_backup_arn = rp["arn"]
        if job["copy_tags"]:
            src = self._ddb(rp["account"], rp["region"]).tables.get(rp["table"])
            table.tags = copy.deepcopy(src.tags) if src is not None else []

    def _finish_copy(self, job) -> None:
        rp = job["rp"]
        src = self._ddb(rp["account"], rp["region"]).backups[rp["backup_arn"]]
        dest = self._ddb(job["dest_account"], job["dest_region"])
        backup = copy.deepcopy(src)
        backup.account_id, backup.region_name = job["dest_account"], job["dest_region"]
        backup.recovery_point = True
        dest.backups[backup.arn] = backup
        self.recovery_points[job["dest_rp"]] = {
            "arn": job["dest_rp"], "account": job["dest_account"], "region": job["dest_region"],
            "vault": job["dest_vault"], "resource": rp["resource"], "table": rp["table"], "role": job["role"],
            "created": _now(), "backup_arn": backup.arn, "copy_job": job["id"],
            "source_vault": self._vault_arn(rp["account"], rp["region"], rp["vault"])}

    # -- what AWS Backup publishes -------------------------------------------------------

    def _move(self, job: dict, state: str) -> None:
        job["state"] = state
        if state in DONE:
            job["completed"] = _now()
        self._eventbridge(job)
        self._sns(job)

    def _eventbridge(self, job: dict) -> None:
        kind = job["kind"]
        if kind == "backup":
            detail_type = "Backup Job State Change"
            detail = {"backupJobId": job["id"], "backupVaultName": job["vault"],
                      "backupVaultArn": self._vault_arn(job["account"], job["region"], job["vault"]),
                      "resourceArn": job["resource"], "resourceType": "DynamoDB", "state": job["state"],
                      "iamRoleArn": job["role"], "creationDate": _iso(job["created"]),
                      "backupSizeInBytes": "36048", "bytesTransferred": "36048", "percentDone": 100 if
                      job["state"] == "COMPLETED" else 0}
            resources = [job["recovery_point"]] if job["state"] == "COMPLETED" else []
        elif kind == "copy":
            rp = job["rp"]
            detail_type = "Copy Job State Change"
            detail = {"copyJobId": job["id"], "sourceRecoveryPointArn": job["source"],
                      "sourceBackupVaultArn": self._vault_arn(rp["account"], rp["region"], rp["vault"]),
                      "destinationBackupVaultArn": self._vault_arn(job["dest_account"], job["dest_region"],
                                                                   job["dest_vault"]),
                      "resourceArn": rp["resource"], "resourceType": "DynamoDB", "state": job["state"],
                      "iamRoleArn": job["role"], "creationDate": _iso(job["created"]), "backupSizeInBytes": "36048"}
            if job["state"] == "COMPLETED":
                detail["destinationRecoveryPointArn"] = job["dest_rp"]
            resources = [job["source"]]
        else:
            rp = job["rp"]
            detail_type = "Restore Job State Change"
            detail = {"restoreJobId": job["id"], "recoveryPointArn": job["recovery_point"],
                      "resourceType": "DynamoDB", "status": job["state"], "iamRoleArn": job["role"],
                      "creationDate": _iso(job["created"]), "backupSizeInBytes": "36048",
                      "sourceResourceArn": rp["resource"]}
            if job["state"] == "COMPLETED":
                detail["createdResourceArn"] = (f"arn:aws:dynamodb:{job['region']}:{job['account']}:table/"
                                                f"{job['target']}")
            resources = [job["recovery_point"]]
        if job["completed"]:
            detail["completionDate"] = _iso(job["completed"])
        if job["status_message"]:
            detail["statusMessage"] = job["status_message"]
        event = {"Source": "aws.backup", "DetailType": detail_type, "Detail": json.dumps(detail),
                 "Resources": resources}
        from moto.events.models import events_backends
        try:
            events_backends[job["account"]][job["region"]].put_events([event])
        except Exception as e:
            print(f"backup-plane: put_events: {e!r}", flush=True)
        self.published.append({"via": "events", "detail-type": detail_type, "state": job["state"]})

    SNS_EVENTS = {("backup", "COMPLETED"): "BACKUP_JOB_COMPLETED", ("backup", "FAILED"): "BACKUP_JOB_FAILED",
                  ("backup", "ABORTED"): "BACKUP_JOB_FAILED", ("backup", "RUNNING"): "BACKUP_JOB_STARTED",
                  ("copy", "COMPLETED"): "COPY_JOB_SUCCESSFUL", ("copy", "FAILED"): "COPY_JOB_FAILED",
                  ("copy", "RUNNING"): "COPY_JOB_STARTED", ("restore", "COMPLETED"): "RESTORE_JOB_COMPLETED",
                  ("restore", "FAILED"): "RESTORE_JOB_COMPLETED", ("restore", "RUNNING"): "RESTORE_JOB_STARTED"}

    def _sns(self, job: dict) -> None:
        kind, state = job["kind"], job["state"]
        vault_key = ((job["account"], job["region"], job["vault"]) if kind == "backup"
                     else (job["rp"]["account"], job["rp"]["region"], job["rp"]["vault"]))
        conf = self.vault_notifications.get(vault_key)
        event = self.SNS_EVENTS.get((kind, state))
        if not conf or event not in conf["BackupVaultEvents"] or state not in ("COMPLETED", "FAILED", "ABORTED"):
            return
        legacy = conf["wording"] == "legacy"
        if kind == "backup":
            resource, rp_arn = job["resource"], job["recovery_point"]
            event_type = "BACKUP_JOB"
        elif kind == "copy":
            resource, rp_arn = job["rp"]["resource"], job["dest_rp"]
            event_type = "COPY_JOB"
        else:
            resource, rp_arn = job["rp"]["resource"], job["recovery_point"]
            event_type = "RESTORE_JOB"
        res_label = "Backed up Resource ARN" if legacy else "Resource ARN"
        id_label = {"BACKUP_JOB": ("Backup Job Id", "BackupJob ID"), "COPY_JOB": ("Copy Job Id", "CopyJob ID"),
                    "RESTORE_JOB": ("Restore Job Id", "RestoreJob ID")}[event_type][0 if legacy else 1]
        if state == "COMPLETED":
            what = {"BACKUP_JOB": "An AWS Backup job was completed successfully.",
                    "COPY_JOB": "An AWS Backup copy job was completed successfully.",
                    "RESTORE_JOB": "An AWS Backup restore job was completed successfully."}[event_type]
            message = f"{what} Recovery point ARN: {rp_arn}. {res_label} : {resource}. {id_label} : {job['id']}"
        else:
            what = {"BACKUP_JOB": "An AWS Backup job failed.", "COPY_JOB": "An AWS Backup copy job failed.",
                    "RESTORE_JOB": "An AWS Backup restore job failed."}[event_type]
            message = f"{what} {res_label} : {resource}. {id_label} : {job['id']}"
            if job["status_message"]:
                message += f". Status message : {job['status_message']}"
        attrs = {"EventType": event_type, "State": state, "AccountId": job["account"], "Id": job["id"],
                 "StartTime": _iso(job["created"])}
        from moto.sns.models import sns_backends
        topic = conf["SNSTopicArn"]
        _, tregion, taccount, _ = _arn_parts(topic)
        try:
            sns_backends[taccount][tregion].publish(
                message, arn=topic, subject="Notification from AWS Backup",
                message_attributes={k: {"Type": "String", "Value": v} for k, v in attrs.items()})
        except Exception as e:
            print(f"backup-plane: sns publish: {e!r}", flush=True)
        self.published.append({"via": "sns", "event": event_type, "state": state})

    # -- test control ----------------------------------------------------------------------

    def _control(self, environ, start_response):
        action = environ["PATH_INFO"][len("/__backup__/"):]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        try:
            p = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}
        except ValueError:
            return self._reply(start_response, 400, {"error": "body is not JSON"})
        with self.lock:
            if action == "fault":
                if p.get("job") not in ("backup", "restore", "copy") or p.get("status") not in ("FAILED", "ABORTED"):
                    return self._reply(start_response, 400, {"error": "job: backup|restore|copy, status: FAILED|ABORTED"})
                self.faults.append({"job": p["job"], "status": p["status"], "count": int(p.get("count", 1)),
                                    "message": p.get("message") or "Restore failed"})
                return self._reply(start_response, 200, {"ok": True})
            if action == "timing":
                for k in ("pending", "running"):
                    if k in p:
                        self.timing[k] = float(p[k])
                return self._reply(start_response, 200, dict(self.timing))
            if action == "wording":
                if p.get("wording") not in WORDING:
                    return self._reply(start_response, 400, {"error": "wording: legacy|documented"})
                self.wording = p["wording"]
                return self._reply(start_response, 200, {"wording": self.wording})
            if action == "bulk":
                # Fixtures at scale, straight into moto's DynamoDB backend (a benchmark's
                # 100,000 backups would take minutes one signed request at a time).
                ddb = self._ddb(str(p.get("account", "123456789012")), p.get("region", "us-east-1"))
                n, m, prefix = int(p.get("tables", 0)), int(p.get("backups", 0)), str(p.get("prefix", "bulk"))
                for i in range(int(p.get("offset", 0)), int(p.get("offset", 0)) + n):
                    name = f"{prefix}{i:05d}"
                    if name not in ddb.tables:
                        ddb.create_table(name, schema=[{"AttributeName": "pk", "KeyType": "HASH"}], throughput=None,
                                         attr=[{"AttributeName": "pk", "AttributeType": "S"}], global_indexes=None,
                                         indexes=None, streams=None, billing_mode="PAY_PER_REQUEST",
                                         sse_specification=None, tags=[], deletion_protection_enabled=False,
                                         warm_throughput=None)
                    for k in range(m):
                        ddb.create_backup(name, f"{name}-b{k}")
                return self._reply(start_response, 200, {"tables": len(ddb.tables), "backups": len(ddb.backups)})
            if action == "state":
                return self._reply(start_response, 200, {
                    "restore_jobs": len(self.restore_jobs), "backup_jobs": len(self.backup_jobs),
                    "copy_jobs": len(self.copy_jobs), "published": self.published[-200:]})
        return self._reply(start_response, 404, {"error": f"unknown control action {action!r}"})
