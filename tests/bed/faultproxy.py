"""A fault-injecting HTTP/1.1 reverse proxy for the test bed (standard library only).

Sits between the client under test (the rotator binary, or boto3) and the emulator:

    proxy = FaultProxy(emu.endpoint).start()      # proxy.endpoint -> http://127.0.0.1:PORT
    proxy.throttle("DynamoDB_20120810.DescribeTable", count=2)
    proxy.creating(count=3, table="orders-staging-20261125-03-00-00")
    ... run the client against proxy.endpoint ...
    assert len(proxy.requests("DescribeTable")) == 6
    proxy.stop()

Requests are forwarded byte for byte: same method, path, header names, values and order
(the Host header included, so SigV4 signatures still verify upstream: moto recomputes the
signature from the headers it receives), same body. Each client connection gets its own
upstream keep-alive connection; client keep-alive is honoured.

Rules ("faults") apply to the next `count` matching requests, first rule first. A rule's
`match` is one of:
  "DynamoDB_20120810.DescribeTable"   the X-Amz-Target header, exactly
  "dynamodb:DescribeTable"            service (from the SigV4 credential scope) and action
  "DescribeTable"                     the action alone
  "*" or None                         every request
plus optional `method`, `path` (a regex searched in the request path) and `body` (a
substring of the request body, e.g. a table name) constraints. The action is the
X-Amz-Target suffix (awsJson), the Action form field (query protocol), or for restJson
APIs a known name (AWS Backup restore-job calls) else "METHOD /path".

Faults:
  throttle(match, count)                  HTTP 400 ThrottlingException in the service's
                                          protocol (see _error_body), x-amzn-RequestId
  error(match, status=500, count)         HTTP 500/503 InternalServerError/ServiceUnavailable
  reset(match, count, forward=True,       forwards (the call takes effect upstream) then sends
        fraction=0.5, phase="body")       the status line, headers and `fraction` of the body,
                                          then RST (SO_LINGER 0); phase="none": RST without
                                          any response byte (forward=False: before upstream)
  slow(match, seconds, count,             sleeps before answering (before forwarding unless
       forward_first=False)               forward_first)
  skew(match, seconds, count, error=True) a Date header `seconds` off the real clock; with
                                          error, a 400 InvalidSignatureException "Signature
                                          expired" (or "not yet current") body as AWS sends,
                                          without forwarding
  creating(count, table=None)             forwards the next `count` DescribeTable calls (of
                                          `table` only, if given) and rewrites TableStatus
                                          ACTIVE -> CREATING and RestoreSummary.
                                          RestoreInProgress -> true in their answers
                                          (x-amz-crc32 recomputed)
  rewrite(match, fn, count)               forwards, then fn(status, headers, body) ->
                                          (status, headers, body)

Every request is recorded (Record: seq, times, method, path, target, service, action,
status sent, fault applied, request headers and body, response body): requests(match)
filters them, wait_for(match, n) waits for them.

Control endpoint (for clients that are not Python): GET /__faults__ returns the rules and
the log as JSON; POST /__faults__ with {"kind": "throttle", "match": "...", "count": 2, ...}
(or a list of such) adds rules; DELETE /__faults__ clears rules and log. Never recorded.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import struct
import threading
import time
import uuid
import zlib
from dataclasses import asdict, dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlparse

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length",
              "proxy-connection", "te", "trailer", "upgrade"}

DYNAMODB_PREFIX = "com.amazonaws.dynamodb.v20120810#"

# restJson calls we name (AWS Backup jobs and recovery points); others are "METHOD /path".
REST_ACTIONS = [
    ("PUT", re.compile(r"^/restore-jobs/?$"), "StartRestoreJob"),
    ("GET", re.compile(r"^/restore-jobs/[^/]+/?$"), "DescribeRestoreJob"),
    ("PUT", re.compile(r"^/restore-jobs/[^/]+/validations/?$"), "PutRestoreValidationResult"),
    ("GET", re.compile(r"^/restore-jobs/?$"), "ListRestoreJobs"),
    ("GET", re.compile(r"^/backup-jobs/[^/]+/?$"), "DescribeBackupJob"),
    ("GET", re.compile(r"^/copy-jobs/[^/]+/?$"), "DescribeCopyJob"),
    ("GET", re.compile(r"^/backup-vaults/[^/]+/recovery-points/[^/]+/?$"), "DescribeRecoveryPoint"),
]


@dataclass
class Record:
    seq: int
    start: float            # time.monotonic() when the request had been read
    end: float              # time.monotonic() when the answer was sent (or cut)
    wall: float             # time.time() at start
    method: str
    path: str
    target: str | None      # X-Amz-Target
    service: str | None     # from the SigV4 credential scope
    action: str
    status: int | None      # status sent to the client (None: no status line was sent)
    fault: str | None       # kind of fault applied, if any
    connection: int         # id of the client connection (keep-alive reuse shows here)
    request_headers: list = field(default_factory=list)
    request_body: bytes = b""
    response_body: bytes = b""

    def to_json(self) -> dict:
        d = asdict(self)
        d["request_body"] = self.request_body.decode("utf-8", "replace")
        d["response_body"] = self.response_body.decode("utf-8", "replace")
        return d


@dataclass
class Rule:
    kind: str
    match: str | None = None
    count: int = 1
    method: str | None = None
    path: str | None = None
    body: str | None = None
    params: dict = field(default_factory=dict)
    fired: int = 0

    def matches(self, req: "_Req") -> bool:
        if self.count <= 0:
            return False
        if self.method and req.method.upper() != self.method.upper():
            return False
        if self.path and not re.search(self.path, req.path):
            return False
        if self.body and self.body.encode() not in req.body:
            return False
        m = self.match
        if not m or m == "*":
            return True
        if ":" in m:
            svc, _, act = m.partition(":")
            return (req.service or "").lower() == svc.lower() and req.action == act
        if "." in m:
            return req.target == m
        return req.action == m

    def describe(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "params"}
        d.update({k: v for k, v in self.params.items() if not callable(v)})
        return d


@dataclass
class _Req:
    method: str
    path: str
    headers: list
    body: bytes
    target: str | None
    service: str | None
    action: str
    content_type: str


def _credential_service(auth: str | None) -> str | None:
    m = re.search(r"Credential=[^/,]+/\d{8}/[^/,]+/([^/,]+)/aws4_request", auth or "")
    return m.group(1) if m else None


def _action_of(method: str, path: str, target: str | None, body: bytes, ctype: str) -> str:
    if target:
        return target.rsplit(".", 1)[-1]
    if "x-www-form-urlencoded" in ctype or (body[:7] == b"Action=") or "Action=" in path:
        try:
            q = parse_qs(body.decode("utf-8")) if body else {}
            if not q.get("Action"):
                q = parse_qs(urlparse(path).query)
            if q.get("Action"):
                return q["Action"][0]
        except UnicodeDecodeError:
            pass
    p = urlparse(path).path
    for meth, rx, name in REST_ACTIONS:
        if method.upper() == meth and rx.match(p):
            return name
    return f"{method.upper()} {p}"


def _protocol(req: _Req) -> str:
    if req.target:
        return "json"
    if "x-www-form-urlencoded" in req.content_type or req.action and req.body[:7] == b"Action=":
        return "query"
    return "rest-json"


def _amz_date(headers: list) -> str | None:
    for k, v in headers:
        if k.lower() == "x-amz-date":
            return v
    return None


def _fmt_amz(ts: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ts))


def _error_body(req: _Req, code: str, message: str, status: int) -> tuple[int, list, bytes]:
    """An error response in the request's protocol, the way AWS words it."""
    rid = str(uuid.uuid4())
    proto = _protocol(req)
    if proto == "json":
        svc = (req.service or "").lower()
        if svc == "dynamodb":
            prefix = "com.amazon.coral.service#" if code == "InvalidSignatureException" else DYNAMODB_PREFIX
            type_ = prefix + code
        else:
            type_ = code
        body = json.dumps({"__type": type_, "message": message}, separators=(",", ":")).encode()
        ctype = req.content_type or "application/x-amz-json-1.0"
        headers = [("x-amzn-RequestId", rid), ("Content-Type", ctype)]
        if svc == "dynamodb":
            headers.append(("x-amz-crc32", str(zlib.crc32(body) & 0xFFFFFFFF)))
    elif proto == "query":
        qcode = {"ThrottlingException": "Throttling",
                 "InvalidSignatureException": "SignatureDoesNotMatch"}.get(code, code)
        kind = "Receiver" if status >= 500 else "Sender"
        body = (f'<ErrorResponse xmlns="http://{req.service or "aws"}.amazonaws.com/doc/">'
                f"<Error><Type>{kind}</Type><Code>{qcode}</Code><Message>{message}</Message>"
                f"</Error><RequestId>{rid}</RequestId></ErrorResponse>").encode()
        headers = [("x-amzn-RequestId", rid), ("Content-Type", "text/xml")]
    else:
        body = json.dumps({"message": message}, separators=(",", ":")).encode()
        headers = [("x-amzn-RequestId", rid), ("x-amzn-ErrorType", f"{code}:"),
                   ("Content-Type", "application/json")]
    headers.append(("Date", formatdate(time.time(), usegmt=True)))
    return status, headers, body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, handler, proxy: "FaultProxy"):
        self.proxy = proxy
        self.conns: set = set()
        self.conns_lock = threading.Lock()
        super().__init__(addr, handler)

    def process_request(self, request, client_address):
        with self.conns_lock:
            self.conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.conns_lock:
            self.conns.discard(request)
        super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120  # idle keep-alive connections end after this
    server: _Server

    def setup(self):
        super().setup()
        self.conn_id = self.server.proxy._next_conn_id()
        self.upstream: http.client.HTTPConnection | None = None

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        if self.upstream is not None:
            self.upstream.close()

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, socket.timeout, OSError):
            self.close_connection = True

    def _read_body(self) -> bytes:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _dispatch(self):
        proxy = self.server.proxy
        body = self._read_body()
        if urlparse(self.path).path.rstrip("/") == "/__faults__":
            return self._control(body)
        headers = list(self.headers.items())
        target = self.headers.get("X-Amz-Target")
        ctype = self.headers.get("Content-Type") or ""
        req = _Req(
            method=self.command, path=self.path, headers=headers, body=body, target=target,
            service=_credential_service(self.headers.get("Authorization")),
            action=_action_of(self.command, self.path, target, body, ctype), content_type=ctype,
        )
        start = time.monotonic()
        rec = Record(seq=0, start=start, end=start, wall=time.time(), method=req.method,
                     path=req.path, target=target, service=req.service, action=req.action,
                     status=None, fault=None, connection=self.conn_id,
                     request_headers=headers, request_body=body)
        rule = proxy._take_rule(req)
        if rule is not None:
            rec.fault = rule.kind
        try:
            self._serve(req, rule, rec)
        finally:
            self._finish_record(rec)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _dispatch

    def _finish_record(self, rec: Record) -> None:
        """Logs the request once, before its last byte goes out, so a client that has its
        answer always finds the request in the log."""
        if rec.seq == 0 and rec.action != "control":
            rec.end = time.monotonic()
            self.server.proxy._record(rec)

    # -- answering ---------------------------------------------------------------------

    def _serve(self, req: _Req, rule: Rule | None, rec: Record):
        kind = rule.kind if rule else None
        p = rule.params if rule else {}
        if kind == "throttle":
            return self._send(rec, *_error_body(req, "ThrottlingException", p.get("message", "Rate exceeded"),
                                                p.get("status", 400)))
        if kind == "error":
            status = int(p.get("status", 500))
            if "body" in p:
                return self._send(rec, status, [("Content-Type", req.content_type or "application/json"),
                                                ("x-amzn-RequestId", str(uuid.uuid4()))],
                                  p["body"].encode() if isinstance(p["body"], str) else p["body"])
            code = "ServiceUnavailable" if status == 503 else "InternalServerError"
            msg = "Service unavailable" if status == 503 else "Internal server error"
            return self._send(rec, *_error_body(req, code, p.get("message", msg), status))
        if kind == "skew":
            return self._skew(req, p, rec)
        if kind == "slow" and not p.get("forward_first"):
            time.sleep(float(p.get("seconds", 1)))
        if kind == "reset" and (p.get("phase") == "none" and not p.get("forward", True)):
            return self._reset(rec, b"")
        if kind == "reset" and not p.get("forward", True):
            # Not forwarded: cut a synthetic 500 halfway.
            status, headers, body = _error_body(req, "InternalServerError", "Internal server error", 500)
            return self._reset(rec, self._head(status, headers, body), body, p)
        try:
            status, reason, headers, body = self._forward(req)
        except Exception as e:  # upstream down: 502, like a load balancer
            msg = f"fault proxy: upstream error: {e!r}".encode()
            return self._send(rec, 502, [("Content-Type", "text/plain")], msg)
        if kind == "slow" and p.get("forward_first"):
            time.sleep(float(p.get("seconds", 1)))
        if kind == "reset":
            if p.get("phase") == "none":
                return self._reset(rec, b"")
            return self._reset(rec, self._head(status, headers, body, reason), body, p)
        if kind == "creating":
            status, headers, body = self._creating(status, headers, body, rule)
        elif kind == "rewrite":
            status, headers, body = p["fn"](status, list(headers), body)
        return self._send(rec, status, headers, body, reason)

    def _forward(self, req: _Req):
        host, port = self.server.proxy._upstream
        for attempt in (0, 1):
            if self.upstream is None:
                self.upstream = http.client.HTTPConnection(host, port, timeout=self.server.proxy.upstream_timeout)
            conn = self.upstream
            try:
                conn.putrequest(req.method, req.path, skip_host=True, skip_accept_encoding=True)
                for k, v in req.headers:
                    if k.lower() in ("transfer-encoding", "content-length"):
                        continue
                    conn.putheader(k, v)
                if req.body or req.method.upper() in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(len(req.body)))
                conn.endheaders(req.body or None)
                resp = conn.getresponse()
                body = resp.read()
                headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
                if resp.will_close:
                    conn.close()
                    self.upstream = None
                return resp.status, resp.reason, headers, body
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                self.upstream = None
                if attempt:
                    raise
        raise RuntimeError("unreachable")

    def _head(self, status: int, headers: list, body: bytes, reason: str | None = None) -> bytes:
        reason = reason or http.client.responses.get(status, "Unknown")
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{k}: {v}" for k, v in headers if k.lower() not in HOP_BY_HOP]
        lines.append(f"Content-Length: {len(body)}")
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send(self, rec: Record, status: int, headers: list, body: bytes, reason: str | None = None):
        if not any(k.lower() == "date" for k, _ in headers):
            headers = list(headers) + [("Date", formatdate(time.time(), usegmt=True))]
        rec.status = status
        rec.response_body = body
        data = self._head(status, headers, body, reason)
        if self.command != "HEAD":
            data += body
        self._finish_record(rec)
        self.wfile.write(data)
        self.wfile.flush()

    def _reset(self, rec: Record, head: bytes, body: bytes = b"", p: dict | None = None):
        p = p or {}
        sent = head
        if head:
            frac = float(p.get("fraction", 0.5))
            cut = max(1, int(len(body) * frac)) if body else 0
            sent += body[:cut]
            rec.status = int(head.split(b" ", 2)[1])
            rec.response_body = body[:cut]
        self._finish_record(rec)
        try:
            if sent:
                self.wfile.write(sent)
                self.wfile.flush()
                time.sleep(float(p.get("delay", 0.05)))  # let the client read what was sent
            sock = self.connection
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()
            sock.close()  # with SO_LINGER {1, 0}: RST, not FIN
        except OSError:
            pass
        self.close_connection = True

    def _skew(self, req: _Req, p: dict, rec: Record):
        seconds = float(p.get("seconds", 1800))
        server_now = time.time() + seconds
        date = formatdate(server_now, usegmt=True)
        if not p.get("error", True):
            try:
                status, reason, headers, body = self._forward(req)
            except Exception as e:
                return self._send(rec, 502, [("Content-Type", "text/plain")], repr(e).encode())
            headers = [(k, v) for k, v in headers if k.lower() != "date"] + [("Date", date)]
            return self._send(rec, status, headers, body, reason)
        client = _amz_date(req.headers) or _fmt_amz(time.time())
        window = int(p.get("window_minutes", 15))
        if seconds >= 0:
            msg = (f"Signature expired: {client} is now earlier than "
                   f"{_fmt_amz(server_now - window * 60)} ({_fmt_amz(server_now)} - {window} min.)")
        else:
            msg = (f"Signature not yet current: {client} is still later than "
                   f"{_fmt_amz(server_now + window * 60)} ({_fmt_amz(server_now)} + {window} min.)")
        status = 403 if _protocol(req) == "rest-json" else 400
        status, headers, body = _error_body(req, "InvalidSignatureException", msg, status)
        headers = [(k, v) for k, v in headers if k.lower() != "date"] + [("Date", date)]
        return self._send(rec, status, headers, body)

    def _creating(self, status: int, headers: list, body: bytes, rule: Rule):
        if status != 200:
            return status, headers, body
        try:
            doc = json.loads(body)
        except ValueError:
            return status, headers, body
        table = doc.get("Table") if isinstance(doc, dict) else None
        if not isinstance(table, dict):
            return status, headers, body
        if table.get("TableStatus") == "ACTIVE":
            table["TableStatus"] = "CREATING"
        rs = table.get("RestoreSummary")
        if isinstance(rs, dict):
            rs["RestoreInProgress"] = True
        body = json.dumps(doc, separators=(",", ":")).encode()
        headers = [(k, str(zlib.crc32(body) & 0xFFFFFFFF)) if k.lower() == "x-amz-crc32" else (k, v)
                   for k, v in headers]
        return status, headers, body

    # -- control endpoint ----------------------------------------------------------------

    def _control(self, body: bytes):
        proxy = self.server.proxy
        rec = Record(0, 0, 0, 0, self.command, self.path, None, None, "control", None, None, 0)
        if self.command == "GET":
            out = {"rules": [r.describe() for r in proxy.rules()],
                   "requests": [r.to_json() for r in proxy.requests()]}
            return self._send(rec, 200, [("Content-Type", "application/json")], json.dumps(out).encode())
        if self.command == "DELETE":
            proxy.clear()
            return self._send(rec, 200, [("Content-Type", "application/json")], b"{}")
        if self.command == "POST":
            try:
                spec = json.loads(body or b"{}")
                for s in spec if isinstance(spec, list) else [spec]:
                    s = dict(s)
                    proxy.add(s.pop("kind"), s.pop("match", None), count=int(s.pop("count", 1)),
                              method=s.pop("method", None), path=s.pop("path", None),
                              body=s.pop("body_contains", None), **s)
            except Exception as e:
                return self._send(rec, 400, [("Content-Type", "text/plain")], repr(e).encode())
            return self._send(rec, 200, [("Content-Type", "application/json")], b"{}")
        return self._send(rec, 405, [("Content-Type", "text/plain")], b"method not allowed")


class FaultProxy:
    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0,
                 upstream_timeout: float = 60):
        u = urlparse(upstream)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        self._upstream = (u.hostname, u.port or 80)
        self._bind = (host, port)
        self.upstream_timeout = upstream_timeout
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._rules: list[Rule] = []
        self._log: list[Record] = []
        self._seq = 0
        self._conn_seq = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> "FaultProxy":
        self._server = _Server(self._bind, _Handler, self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="faultproxy",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        srv, self._server = self._server, None
        if srv is None:
            return
        srv.shutdown()
        with srv.conns_lock:
            conns = list(srv.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        srv.server_close()
        if self._thread:
            self._thread.join(5)

    def __enter__(self) -> "FaultProxy":
        return self.start() if self._server is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- rules ---------------------------------------------------------------------------

    def add(self, kind: str, match: str | None = None, count: int = 1, method: str | None = None,
            path: str | None = None, body: str | None = None, **params: Any) -> Rule:
        if kind not in ("throttle", "error", "reset", "slow", "skew", "creating", "rewrite"):
            raise ValueError(f"unknown fault kind {kind!r}")
        rule = Rule(kind=kind, match=match, count=count, method=method, path=path, body=body,
                    params=params)
        with self._lock:
            self._rules.append(rule)
        return rule

    def throttle(self, match: str | None, count: int = 1, **kw: Any) -> Rule:
        return self.add("throttle", match, count, **kw)

    def error(self, match: str | None, status: int = 500, count: int = 1, **kw: Any) -> Rule:
        return self.add("error", match, count, status=status, **kw)

    def reset(self, match: str | None, count: int = 1, forward: bool = True, fraction: float = 0.5,
              phase: str = "body", **kw: Any) -> Rule:
        return self.add("reset", match, count, forward=forward, fraction=fraction, phase=phase, **kw)

    def slow(self, match: str | None, seconds: float, count: int = 1, forward_first: bool = False,
             **kw: Any) -> Rule:
        return self.add("slow", match, count, seconds=seconds, forward_first=forward_first, **kw)

    def skew(self, match: str | None, seconds: float = 1800, count: int = 1, error: bool = True,
             **kw: Any) -> Rule:
        return self.add("skew", match, count, seconds=seconds, error=error, **kw)

    def creating(self, count: int = 1, table: str | None = None,
                 match: str = "dynamodb:DescribeTable", **kw: Any) -> Rule:
        body = f'"{table}"' if table else None
        return self.add("creating", match, count, body=body, **kw)

    def rewrite(self, match: str | None, fn: Callable[[int, list, bytes], tuple[int, list, bytes]],
                count: int = 1, **kw: Any) -> Rule:
        return self.add("rewrite", match, count, fn=fn, **kw)

    def rules(self) -> list[Rule]:
        with self._lock:
            return list(self._rules)

    def clear_rules(self) -> None:
        with self._lock:
            self._rules.clear()

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._log.clear()

    # -- log -----------------------------------------------------------------------------

    def requests(self, match: str | None = None, fault: str | None = None) -> list[Record]:
        probe = Rule(kind="probe", match=match, count=1)
        with self._lock:
            out = list(self._log)
        out = [r for r in out if probe.matches(_Req(r.method, r.path, r.request_headers, r.request_body,
                                                     r.target, r.service, r.action, ""))]
        if fault is not None:
            out = [r for r in out if r.fault == fault]
        return out

    def wait_for(self, match: str | None, n: int = 1, timeout: float = 10) -> list[Record]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.requests(match)
            if len(got) >= n:
                return got
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(got)} of {n} {match!r} requests within {timeout}s")
            with self._cond:
                self._cond.wait(min(left, 0.2))

    # -- internals -----------------------------------------------------------------------

    def _next_conn_id(self) -> int:
        with self._lock:
            self._conn_seq += 1
            return self._conn_seq

    def _take_rule(self, req: _Req) -> Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(req):
                    rule.count -= 1
                    rule.fired += 1
                    return rule
        return None

    def _record(self, rec: Record) -> None:
        with self._cond:
            self._seq += 1
            rec.seq = self._seq
            self._log.append(rec)
            self._cond.notify_all()
