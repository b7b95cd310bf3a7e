"""Local stand-ins for the credential endpoints, on 127.0.0.1 (stdlib only).

One ThreadingHTTPServer plays three roles by path:
  IMDSv2  PUT /latest/api/token (needs X-aws-ec2-metadata-token-ttl-seconds) -> token;
          GET /latest/meta-data/... rejected with 401 unless X-aws-ec2-metadata-token
          carries that token; role "test-role"; region "eu-central-1".
  ECS     GET /ecs/creds: 401 unless Authorization equals .ecs_token.
  STS     POST / (query protocol): AssumeRole must carry a SigV4 Authorization header
          (shape and credential scope checked); AssumeRoleWithWebIdentity must not, and
          its WebIdentityToken must equal .web_token. A role ARN ending in "/denied"
          gets a 403 AccessDenied XML error; one ending in "/longtoken" gets a 5 KB session token.
  Proxy   It is also an HTTP proxy (http_proxy / https_proxy pointed at it), so requests
          for the real AWS host names never leave the machine: an absolute-form request
          ("GET http://169.254.170.2/ecs/creds") is served as if it came to its path, and a
          CONNECT (https, e.g. to sts.cn-north-1.amazonaws.com.cn:443) is recorded and
          refused with 403. Each logged request carries the host it was meant for.
          .sts_fail_first makes the first N STS requests answer 503 ServiceUnavailable.
Temporary credentials expire .expires_in seconds from issue; each issue bumps a counter
that becomes part of the access key id (ASIAIMDS1, ASIAIMDS2, ...).
"""
import json
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

IMDS_TOKEN = "imds-session-token-1"
AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<akid>[A-Z0-9]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/sts/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=[0-9a-f]{64}$")


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.log = []
        self.counts = {}
        self.expires_in = 3600
        self.ecs_token = "ecs-auth-secret"
        self.web_token = "web-identity-secret-token"
        self.sts_fail_first = 0

    def issue(self, kind):
        with self.lock:
            n = self.counts.get(kind, 0) + 1
            self.counts[kind] = n
        exp = datetime.now(timezone.utc) + timedelta(seconds=self.expires_in)
        return {"AccessKeyId": f"ASIA{kind.upper()}{n}", "SecretAccessKey": f"secret-{kind}-{n}",
                "Token": f"session-token-{kind}-{n}", "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ")}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="text/plain"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def record(self, body=""):
        st = self.server.state
        with st.lock:
            st.log.append({"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                           "body": body, "host": getattr(self, "target_host", None) or self.headers.get("Host")})

    def parse_request(self):
        ok = super().parse_request()
        self.target_host = None
        if ok and self.path.startswith("http://"):  # proxied: absolute form
            rest = self.path[len("http://"):]
            self.target_host, _, path = rest.partition("/")
            self.path = "/" + path
        return ok

    def do_CONNECT(self):
        self.target_host = self.path
        self.record()
        self.close_connection = True
        return self.reply(403, "this test proxy does not tunnel")

    def do_PUT(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        self.record()
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self.reply(200, IMDS_TOKEN)
        return self.reply(400, "bad token request")

    def do_GET(self):
        self.record()
        st = self.server.state
        if self.path.startswith("/latest/"):
            if self.headers.get("X-aws-ec2-metadata-token") != IMDS_TOKEN:
                return self.reply(401, "IMDSv2 token required")
            if self.path == "/latest/meta-data/iam/security-credentials/":
                return self.reply(200, "test-role")
            if self.path == "/latest/meta-data/iam/security-credentials/test-role":
                doc = st.issue("imds")
                doc.update({"Code": "Success", "Type": "AWS-HMAC"})
                return self.reply(200, json.dumps(doc), "application/json")
            if self.path == "/latest/meta-data/placement/region":
                return self.reply(200, "eu-central-1")
            return self.reply(404, "not found")
        if self.path == "/ecs/creds":
            if self.headers.get("Authorization") != st.ecs_token:
                return self.reply(401, "bad authorization")
            doc = st.issue("ecs")
            doc["RoleArn"] = "arn:aws:iam::111111111111:role/task"
            return self.reply(200, json.dumps(doc), "application/json")
        return self.reply(404, "not found")

    def sts_error(self, status, code, msg):
        body = (f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
                f"<Code>{code}</Code><Message>{msg}</Message></Error></ErrorResponse>")
        return self.reply(status, body, "text/xml")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode()
        self.record(body)
        st = self.server.state
        with st.lock:
            flaky = st.sts_fail_first > 0
            st.sts_fail_first -= 1 if flaky else 0
        if flaky:
            return self.sts_error(503, "ServiceUnavailable", "try again")
        form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
        action = form.get("Action")
        auth = self.headers.get("Authorization")
        if action == "AssumeRole":
            m = AUTH_RE.match(auth or "")
            if not m or not self.headers.get("X-Amz-Date") or "host" not in m.group("signed").split(";"):
                return self.sts_error(403, "IncompleteSignature", "request is not SigV4-signed")
        elif action == "AssumeRoleWithWebIdentity":
            if auth:
                return self.sts_error(400, "InvalidRequest", "AssumeRoleWithWebIdentity must be unsigned")
            if form.get("WebIdentityToken") != st.web_token:
                return self.sts_error(400, "InvalidIdentityToken", "bad token")
        else:
            return self.sts_error(400, "InvalidAction", "unknown action")
        role = form.get("RoleArn", "")
        if role.endswith("/denied"):
            return self.sts_error(403, "AccessDenied", f"not authorized to assume {role}")
        name = re.sub(r"[^A-Za-z0-9]", "", role.rsplit("/", 1)[-1])
        doc = st.issue("role" + name if action == "AssumeRole" else "webid")
        if role.endswith("/longtoken"):
            doc["Token"] = "session-token-" + "x" * 5000
        res = action + "Result"
        xml = (f'<{action}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><{res}>'
               f"<Credentials><AccessKeyId>{doc['AccessKeyId']}</AccessKeyId>"
               f"<SecretAccessKey>{doc['SecretAccessKey']}</SecretAccessKey>"
               f"<SessionToken>{doc['Token']}</SessionToken><Expiration>{doc['Expiration']}</Expiration>"
               f"</Credentials><AssumedRoleUser><Arn>{role}/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId>"
               f"</AssumedRoleUser></{res}><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata>"
               f"</{action}Response>")
        return self.reply(200, xml, "text/xml")


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        import sys
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return  # a client that hung up after a refused CONNECT
        super().handle_error(request, client_address)


class Servers:
    """with Servers() as s: s.url, s.port, s.state (log, counts, expires_in, tokens)."""

    def __enter__(self):
        self.state = State()
        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.state = self.state
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def requests(self, pred=lambda r: True):
        with self.state.lock:
            return [r for r in self.state.log if pred(r)]

    def clear(self):
        with self.state.lock:
            self.state.log.clear()
            self.state.counts.clear()
