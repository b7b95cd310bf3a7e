"""Runs moto's server for the test bed (started by bed.Emulator, under the venv's python).

    python moto_launch.py [--host 127.0.0.1] [--parent-pid PID]

Binds an ephemeral port itself (no free-port race), then prints one JSON line
{"port": N, "pid": P} on stdout and serves until SIGTERM/SIGINT, or until its parent dies
(PR_SET_PDEATHSIG on Linux, plus a watchdog that polls the parent pid).

IAM: authentication follows moto's INITIAL_NO_AUTH_ACTION_COUNT environment variable (the
bed sets it). moto only matches a policy statement's "Resource" against the ARN of the
resource a request acts on when the service tells it which resource that is; SQS and IAM
do, DynamoDB, SSM and SNS do not, so moto checks every such request against the resource
"*", which matches no scoped statement, and a least-privilege policy would deny everything.
This launcher gives those services the ARN (DynamoDB: the table, target table of a restore,
backup or ResourceArn; SSM: the parameter; SNS: the topic; SQS GetQueueUrl: the queue) so
the policy's resource scoping is really enforced, and lets a resource that still cannot be
determined match any Resource pattern (action-level checking only) instead of never.

Errors: moto answers a refused signature, key or permission with a query-protocol XML body
and HTTP 403 whatever the service. For awsJson services (DynamoDB, SSM, SQS) AWS answers
HTTP 400 with a JSON body; this launcher does the same: InvalidSignatureException,
UnrecognizedClientException, AccessDeniedException ("com.amazon.coral.service#" prefixed
for DynamoDB and SQS), with AWS's messages.

AWS Backup jobs and recovery points (which moto lacks) are served in this process by
backup_plane.BackupPlane, in front of moto's app and backed by its backends; DynamoDB
contributor insights (which moto lacks too) by contributor_insights.ContributorInsights.

Signatures of body-less restJson requests (e.g. AWS Backup's GET /backup-vaults/): moto
hashes its parsed parameters instead of the empty body when re-computing the signature,
so every such request fails with SignatureDoesNotMatch. This launcher hashes the empty
body, except for form-encoded (query protocol) requests whose body moto only has parsed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from urllib.parse import parse_qs


def _set_pdeathsig() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except Exception:
        pass


def _watch_parent(parent_pid: int) -> None:
    def loop() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(0)
            time.sleep(0.5)

    threading.Thread(target=loop, name="parent-watch", daemon=True).start()


def _params(handler) -> dict:
    """The request's parameters, from a JSON body or a form-encoded one (query protocol)."""
    raw = getattr(handler, "raw_body", None) or getattr(handler, "body", None) or b""
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            return {}
    if not isinstance(raw, str) or not raw:
        # Query protocol: werkzeug has parsed the form already; moto keeps it here.
        qs = getattr(handler, "querystring", None) or {}
        return {k: (v[0] if isinstance(v, list) and v else v) for k, v in qs.items()}
    raw = raw.strip()
    if raw.startswith("{"):
        try:
            doc = json.loads(raw)
            return doc if isinstance(doc, dict) else {}
        except ValueError:
            return {}
    return {k: v[0] for k, v in parse_qs(raw).items()}


def _ctx(handler) -> tuple[str, str]:
    return handler.region, handler.current_account


def _dynamodb_resource(self) -> str:
    try:
        p = _params(self)
        region, account = _ctx(self)
        table = lambda name: f"arn:aws:dynamodb:{region}:{account}:table/{name}"  # noqa: E731
        if p.get("TargetTableName"):
            return table(p["TargetTableName"])
        if p.get("ResourceArn"):
            return p["ResourceArn"]
        if p.get("BackupArn"):
            return p["BackupArn"]
        if p.get("TableName"):
            name = p["TableName"]
            return name if name.startswith("arn:") else table(name)
        items = p.get("RequestItems")
        if isinstance(items, dict) and items:
            name = next(iter(items))
            return name if name.startswith("arn:") else table(name)
    except Exception:
        pass
    return "*"


def _ssm_resource(self) -> str:
    try:
        p = _params(self)
        region, account = _ctx(self)
        name = p.get("Name") or (p.get("Names") or [None])[0]
        if name:
            if name.startswith("arn:"):
                return name
            sep = "" if name.startswith("/") else "/"
            return f"arn:aws:ssm:{region}:{account}:parameter{sep}{name}"
    except Exception:
        pass
    return "*"


def _sns_resource(self) -> str:
    try:
        p = _params(self)
        return p.get("TopicArn") or p.get("TargetArn") or "*"
    except Exception:
        return "*"


JSON_AUTH_ERRORS = {
    "SignatureDoesNotMatch": "InvalidSignatureException",
    "InvalidClientTokenId": "UnrecognizedClientException",
    "AccessDenied": "AccessDeniedException",
}


def _patch_auth_errors() -> None:
    from moto.core.exceptions import JsonRESTError, _RESTError
    from moto.core.responses import BaseResponse

    original = BaseResponse._authenticate_and_authorize_normal_action

    def checked(self, resource: str = "*") -> None:
        try:
            original(self, resource)
        except _RESTError as e:
            target = self.headers.get("X-Amz-Target") or ""
            code = JSON_AUTH_ERRORS.get(e.error_type)
            if not target or isinstance(e, JsonRESTError) or code is None:
                raise
            message = e.message
            if code == "AccessDeniedException":
                action = message.rsplit(" ", 1)[-1]
                if resource != "*":
                    message += f" on resource: {resource}"
                message += f" because no identity-based policy allows the {action} action"
            prefix = "com.amazon.coral.service#" if target.startswith(("DynamoDB_", "AmazonSQS")) else ""
            err = JsonRESTError(prefix + code, message)
            err.code = 400
            raise err from None

    BaseResponse._authenticate_and_authorize_normal_action = checked


def _patch_empty_body_signature() -> None:
    from moto.iam.access_control import IAMRequestBase

    original = IAMRequestBase._create_aws_request

    def create(self):
        ctype = ""
        for k, v in self._headers.items():
            if k.lower() == "content-type":
                ctype = v.lower()
        if not self._body and "x-www-form-urlencoded" not in ctype:
            saved, self._data = self._data, b""
            try:
                return original(self)
            finally:
                self._data = saved
        return original(self)

    IAMRequestBase._create_aws_request = create


def _patch_moto() -> None:
    from moto.dynamodb.responses import DynamoHandler
    from moto.iam import access_control
    from moto.sns.responses import SNSResponse
    from moto.sqs.responses import SQSResponse
    from moto.ssm.responses import SimpleSystemManagerResponse

    DynamoHandler._determine_resource = _dynamodb_resource
    SimpleSystemManagerResponse._determine_resource = _ssm_resource
    SNSResponse._determine_resource = _sns_resource

    sqs_original = SQSResponse._determine_resource

    def _sqs_resource(self) -> str:
        arn = sqs_original(self)
        if arn == "*":
            name = _params(self).get("QueueName")
            if name:
                region, account = _ctx(self)
                return f"arn:aws:sqs:{region}:{account}:{name}"
        return arn

    SQSResponse._determine_resource = _sqs_resource

    original = access_control.IAMPolicyStatement._check_element_matches

    def _check_element_matches(self, element, value):
        if element == "Resource" and value == "*":
            return True
        return original(self, element, value)

    access_control.IAMPolicyStatement._check_element_matches = _check_element_matches


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--parent-pid", type=int, default=0)
    ap.add_argument("--no-resource-patch", action="store_true")
    ap.add_argument("--no-error-patch", action="store_true")
    args = ap.parse_args()

    _set_pdeathsig()
    if args.parent_pid:
        if os.getppid() != args.parent_pid:
            sys.exit(0)
        _watch_parent(args.parent_pid)

    from werkzeug.serving import make_server

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )

    if not args.no_resource_patch:
        _patch_moto()
    if not args.no_error_patch:
        _patch_auth_errors()
    _patch_empty_body_signature()

    from backup_plane import BackupPlane
    from contributor_insights import ContributorInsights

    app = DomainDispatcherApplication(create_backend_app)
    app = BackupPlane().wrap(ContributorInsights().wrap(app))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    server.daemon_threads = True
    port = server.server_address[1]
    os.environ["MOTO_PORT"] = str(port)

    def stop(_signum, _frame):
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, stop)

    sys.stdout.write(json.dumps({"port": port, "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
