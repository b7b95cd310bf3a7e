"""DynamoDB contributor insights for the test bed, served inside the moto server process.

moto 5.2.5 has no DescribeContributorInsights, UpdateContributorInsights or
ListContributorInsights (it answers them with an unknown-action error). This module
serves those three X-Amz-Target operations of DynamoDB_20120810 on the moto port, in
front of moto's app, with the shapes of botocore's `dynamodb` model, for the tables and
global secondary indexes of moto's own DynamoDB backend:

- UpdateContributorInsights ENABLE moves a table or GSI to ENABLING, and ENABLED after
  `ENABLING_SECONDS`; DISABLE to DISABLING, then DISABLED (AWS's states).
  ContributorInsightsMode (ACCESSED_AND_THROTTLED_KEYS, the default, or THROTTLED_KEYS) is
  kept and returned.
- DescribeContributorInsights answers DISABLED for a table never enabled, and the rule
  names AWS creates ("DynamoDBContributorInsights-PKC-<table>-<epoch>", ...) once enabled.
- An unknown table or index is ResourceNotFoundException. A table deleted and created
  again under the same name starts with insights off (the state is keyed by creation time).

Requests are checked like moto checks its own: the SigV4 signature, then the IAM policy
for dynamodb:<Action> on the table's ARN; a refusal is HTTP 400
com.amazon.coral.service#AccessDeniedException with AWS's wording (as moto_launch makes
moto's own DynamoDB refusals).
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import bed_auth

ACTIONS = ("DescribeContributorInsights", "UpdateContributorInsights", "ListContributorInsights")
TARGET = "DynamoDB_20120810."
ENABLING_SECONDS = 0.5
MODES = ("ACCESSED_AND_THROTTLED_KEYS", "THROTTLED_KEYS")


class _Error(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class ContributorInsights:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.state: dict[tuple, dict] = {}   # (account, region, table, created, index) -> entry

    def wrap(self, app):
        def wsgi(environ, start_response):
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            if target.startswith(TARGET) and target[len(TARGET):] in ACTIONS:
                return self._serve(environ, start_response, target[len(TARGET):])
            return app(environ, start_response)
        return wsgi

    def _reply(self, start_response, status: int, doc: dict):
        body = json.dumps(doc).encode()
        start_response(f"{status} {'OK' if status == 200 else 'Bad Request'}",
                       [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(body))),
                        ("x-amzn-RequestId", str(uuid.uuid4()))])
        return [body]

    def _serve(self, environ, start_response, action: str):
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length else b""
        try:
            params = json.loads(body or b"{}")
            if not isinstance(params, dict):
                raise ValueError("not an object")
            account, region = self._authorize(environ, body, action, params)
            with self.lock:
                doc = getattr(self, "_" + action)(account, region, params)
        except ValueError:
            return self._reply(start_response, 400, {"__type": "com.amazon.coral.service#SerializationException",
                                                     "message": "The request body is not a JSON object"})
        except _Error as e:
            prefix = "com.amazon.coral.service#" if e.code in (
                "AccessDeniedException", "InvalidSignatureException", "UnrecognizedClientException") \
                else "com.amazonaws.dynamodb.v20120810#"
            return self._reply(start_response, 400, {"__type": prefix + e.code, "message": e.message})
        return self._reply(start_response, 200, doc)

    # -- SigV4 and IAM -------------------------------------------------------------------

    @staticmethod
    def _authorize(environ, body: bytes, action: str, params: dict):
        def resource(account: str, region: str) -> str:
            name = params.get("TableName") or ""
            if action == "ListContributorInsights" and not name:
                return "*"
            return name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{account}:table/{name}"
        try:
            account, region, _ = bed_auth.check(environ, body, "dynamodb", action, resource)
        except bed_auth.Refused as e:
            raise _Error(e.code, e.message)
        return account, region

    # -- state -----------------------------------------------------------------------------

    @staticmethod
    def _table(account: str, region: str, name: str, index: str | None):
        from moto.dynamodb.models import dynamodb_backends
        if not name:
            raise _Error("ValidationException", "1 validation error detected: Value null at 'tableName' "
                                                "failed to satisfy constraint: Member must not be null")
        name = name.split(":table/", 1)[-1]
        table = dynamodb_backends[account][region].tables.get(name)
        if table is None:
            raise _Error("ResourceNotFoundException", f"Requested resource not found: Table: {name} not found")
        if index and index not in [i.name for i in table.global_indexes]:
            raise _Error("ResourceNotFoundException",
                         f"Requested resource not found: Index: {index} not found for table {name}")
        return table

    def _entry(self, account, region, table, index) -> dict:
        key = (account, region, table.name, str(table.created_at), index or "")
        e = self.state.setdefault(key, {"status": "DISABLED", "mode": None, "since": 0.0, "updated": None})
        if e["status"] in ("ENABLING", "DISABLING") and time.time() - e["since"] >= ENABLING_SECONDS:
            e["status"] = "ENABLED" if e["status"] == "ENABLING" else "DISABLED"
        return e

    @staticmethod
    def _rules(table, index, e) -> list[str]:
        if e["status"] not in ("ENABLED", "ENABLING"):
            return []
        base = f"{table.name}/index/{index}" if index else table.name
        stamp = int(e["since"])
        names = [f"DynamoDBContributorInsights-PKT-{base}-{stamp}"]
        if e["mode"] != "THROTTLED_KEYS":
            names.insert(0, f"DynamoDBContributorInsights-PKC-{base}-{stamp}")
        return names

    def _DescribeContributorInsights(self, account, region, p):
        index = p.get("IndexName")
        table = self._table(account, region, p.get("TableName"), index)
        e = self._entry(account, region, table, index)
        doc = {"TableName": table.name, "ContributorInsightsStatus": e["status"],
               "ContributorInsightsRuleList": self._rules(table, index, e)}
        if index:
            doc["IndexName"] = index
        if e["updated"]:
            doc["LastUpdateDateTime"] = e["updated"]
        if e["mode"] and e["status"] in ("ENABLED", "ENABLING"):
            doc["ContributorInsightsMode"] = e["mode"]
        return doc

    def _UpdateContributorInsights(self, account, region, p):
        index = p.get("IndexName")
        action = p.get("ContributorInsightsAction")
        if action not in ("ENABLE", "DISABLE"):
            raise _Error("ValidationException", f"1 validation error detected: Value '{action}' at "
                                                "'contributorInsightsAction' failed to satisfy constraint: "
                                                "Member must satisfy enum value set: [ENABLE, DISABLE]")
        mode = p.get("ContributorInsightsMode")
        if mode is not None and mode not in MODES:
            raise _Error("ValidationException", f"1 validation error detected: Value '{mode}' at "
                                                "'contributorInsightsMode' failed to satisfy constraint: "
                                                f"Member must satisfy enum value set: [{', '.join(MODES)}]")
        table = self._table(account, region, p.get("TableName"), index)
        e = self._entry(account, region, table, index)
        now = time.time()
        if action == "ENABLE":
            if e["status"] not in ("ENABLED", "ENABLING"):
                e.update(status="ENABLING", since=now)
            e["mode"] = mode or e["mode"] or "ACCESSED_AND_THROTTLED_KEYS"
        elif e["status"] not in ("DISABLED", "DISABLING"):
            e.update(status="DISABLING", since=now, mode=None)
        e["updated"] = now
        doc = {"TableName": table.name, "ContributorInsightsStatus": e["status"]}
        if index:
            doc["IndexName"] = index
        if e["mode"]:
            doc["ContributorInsightsMode"] = e["mode"]
        return doc

    def _ListContributorInsights(self, account, region, p):
        from moto.dynamodb.models import dynamodb_backends
        name = p.get("TableName")
        tables = [self._table(account, region, name, None)] if name else \
            list(dynamodb_backends[account][region].tables.values())
        out = []
        for table in tables:
            for index in [None] + [i.name for i in table.global_indexes]:
                e = self._entry(account, region, table, index)
                if name or e["status"] != "DISABLED":
                    s = {"TableName": table.name, "ContributorInsightsStatus": e["status"]}
                    if index:
                        s["IndexName"] = index
                    if e["mode"] and e["status"] in ("ENABLED", "ENABLING"):
                        s["ContributorInsightsMode"] = e["mode"]
                    out.append(s)
        return {"ContributorInsightsSummaries": out}
