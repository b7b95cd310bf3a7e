#!/usr/bin/env python3
"""A scriptable HTTP server on 127.0.0.1 for the HTTP transport and AWS client tests.

Prints "PORT <n>" on stdout once listening, then serves until stdin closes (or killed).

Fixed routes:
  /ok                 200 "hello"
  /echo               200 JSON {method, path, body, headers}
  /big?n=N            200 with N bytes and a Content-Length
  /stream?n=N         200 with N bytes, chunked (no Content-Length)
  /slow?ms=M          waits M ms, then 200 "slow"
  /status/CODE        that status, text body
  /reset              closes the connection without answering

Everything else (the AWS tests) answers from a script:
  POST /__script__    body: JSON list of answers, each {"status", "body", "headers"} or
                      {"reset": true}; consumed one per request; when empty: 200 "{}"
                      (or the "default" answer set with POST /__default__)
  POST /__clock__     body: {"skew": seconds}: the server's clock runs that far from real
                      time; its Date header shows it, and a request whose X-Amz-Date is
                      more than 5 minutes off gets 400 InvalidSignatureException
  GET  /__log__       JSON list of the requests seen (method, path, headers, body, time)
  POST /__clear__     forget the request log
"""
import email.utils
import json
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

LOCK = threading.RLock()
STATE = {"script": [], "default": None, "skew": 0, "log": []}


def amz_date_epoch(s):
    try:
        return time.mktime(time.strptime(s, "%Y%m%dT%H%M%SZ")) - time.timezone
    except (ValueError, TypeError):
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def date_header(self):
        with LOCK:
            skew = STATE["skew"]
        return email.utils.formatdate(time.time() + skew, usegmt=True)

    def answer(self, status, body, headers=None, ctype="text/plain"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response_only(status)
        self.send_header("Date", self.date_header())
        self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def reset(self):
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def handle_any(self):
        body = self.read_body()
        u = urlparse(self.path)
        q = parse_qs(u.query)
        p = u.path
        if p.startswith("/__"):
            return self.control(p, body)
        with LOCK:
            STATE["log"].append({"method": self.command, "path": self.path,
                                 "headers": dict(self.headers.items()),
                                 "body": body.decode("utf-8", "replace"), "time": time.time()})
        if p == "/ok":
            return self.answer(200, "hello")
        if p == "/echo":
            return self.answer(200, json.dumps({"method": self.command, "path": self.path,
                                                "body": body.decode(), "headers": dict(self.headers.items())}),
                               ctype="application/json")
        if p == "/big":
            return self.answer(200, b"x" * int(q["n"][0]))
        if p == "/stream":
            return self.stream(int(q["n"][0]))
        if p == "/slow":
            time.sleep(int(q["ms"][0]) / 1000.0)
            return self.answer(200, "slow")
        if p.startswith("/status/"):
            return self.answer(int(p.split("/")[2]), "status body")
        if p == "/reset":
            return self.reset()
        return self.scripted()

    def stream(self, n):
        self.send_response_only(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"y" * 65536
        try:
            while n > 0:
                c = chunk[: min(n, len(chunk))]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
                n -= len(c)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True

    def control(self, p, body):
        with LOCK:
            if p == "/__script__":
                STATE["script"].extend(json.loads(body))
            elif p == "/__default__":
                STATE["default"] = json.loads(body)
            elif p == "/__clock__":
                STATE["skew"] = json.loads(body)["skew"]
            elif p == "/__log__":
                return self.answer(200, json.dumps(STATE["log"]), ctype="application/json")
            elif p == "/__clear__":
                STATE["log"].clear()
        return self.answer(200, "{}")

    def scripted(self):
        with LOCK:
            skew = STATE["skew"]
            ans = STATE["script"].pop(0) if STATE["script"] else STATE["default"]
        if skew:
            t = amz_date_epoch(self.headers.get("X-Amz-Date"))
            if t is None or abs(t - (time.time() + skew)) > 300:
                return self.answer(400, json.dumps({
                    "__type": "com.amazon.coral.service#InvalidSignatureException",
                    "message": "Signature expired: %s is now earlier than %s (%s - 5 min.)" % (
                        self.headers.get("X-Amz-Date"), "later", "now")}),
                    headers={"x-amzn-RequestId": "skew-req"}, ctype="application/x-amz-json-1.0")
        if ans is None:
            return self.answer(200, "{}", headers={"x-amzn-RequestId": "req-ok"},
                               ctype="application/x-amz-json-1.0")
        if ans.get("reset"):
            return self.reset()
        return self.answer(ans.get("status", 200), ans.get("body", "{}"), ans.get("headers"),
                           ans.get("content_type", "application/x-amz-json-1.0"))


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # resets provoked by the tests are expected


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print("PORT %d" % srv.server_address[1], flush=True)
    try:
        sys.stdin.read()  # until our parent closes the pipe
    except KeyboardInterrupt:
        pass
    srv.shutdown()


if __name__ == "__main__":
    main()
