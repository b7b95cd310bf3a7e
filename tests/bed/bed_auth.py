"""SigV4 and IAM checks for the handlers the bed serves inside the moto process
(backup_plane.py, contributor_insights.py), done the way moto checks its own requests.

    account, region, req = check(environ, body, "backup", "StartRestoreJob", resource_of)
    permit(req, "iam:PassRole", role_arn)        # a further action on another resource

resource_of(account, region) names the resource the action is checked on. Within moto's
INITIAL_NO_AUTH_ACTION_COUNT first requests nothing is checked and req is None. A refusal
raises Refused(code, message) with AWS's codes (InvalidSignatureException,
UnrecognizedClientException, AccessDeniedException) and wording; each handler turns it
into its protocol's error answer.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs


class Refused(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _denied(req, action: str, resource: str) -> Refused:
    return Refused("AccessDeniedException",
                   f"User: {req._access_key.arn} is not authorized to perform: {action} on resource: "
                   f"{resource} because no identity-based policy allows the {action} action")


def check(environ, body: bytes, service: str, action: str, resource_of):
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.exceptions import _RESTError as RESTError
    from moto.iam.access_control import IAMRequest
    from moto.iam.models import get_account_id_from

    m = re.search(r"Credential=([^/]+)/[^/]+/([^/]+)/", environ.get("HTTP_AUTHORIZATION", ""))
    if not m:
        raise Refused("MissingAuthenticationTokenException", "Request is missing Authentication Token")
    account = environ.get("HTTP_X_MOTO_ACCOUNT_ID") or get_account_id_from(m.group(1))
    region = m.group(2)
    checking = ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT
    ActionAuthenticatorMixin.request_count += 1
    if not checking:
        return account, region, None
    headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
    for k in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(k):
            headers[k.replace("_", "-").title()] = environ[k]
    resource = resource_of(account, region)
    try:
        req = IAMRequest(account_id=account, method=environ["REQUEST_METHOD"],
                         path=environ.get("RAW_URI") or environ.get("PATH_INFO", ""),
                         data={k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()},
                         body=body, headers=headers, action=action)
        req._body = body
        req._data = body
        req.check_signature()
        try:
            req.check_action_permitted(resource)
        except RESTError:
            raise _denied(req, f"{service}:{action}", resource) from None
    except RESTError as e:
        code = {"SignatureDoesNotMatch": "InvalidSignatureException",
                "InvalidClientTokenId": "UnrecognizedClientException"}.get(e.error_type, e.error_type)
        raise Refused(code, e.message) from None
    return account, region, req


def permit(req, action: str, resource: str) -> None:
    """A further action (e.g. iam:PassRole) on another resource, for the same caller."""
    from moto.core.exceptions import _RESTError as RESTError

    if req is None:
        return
    req._action = action
    try:
        req.check_action_permitted(resource)
    except RESTError:
        raise _denied(req, action, resource) from None
