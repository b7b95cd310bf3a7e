#!/usr/bin/env python3
"""CLI and signals, against the real binary: help texts, check on broken policies,
eval, SIGHUP reload (good and broken), SIGTERM graceful stop (idle, drained, deadline,
forced), JSON log format, secret redaction in logs."""
import json, os, signal, subprocess, sys, tempfile, time

ROOT = os.environ.get("ROTATOR_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("ROTATOR") or os.path.join(ROOT, "rotator")
sys.path.insert(0, os.path.join(ROOT, "tests", "bed"))
from tap import Tap  # noqa: E402

t = Tap()
GOOD = 'rule { name = "staging", source_pattern = "(?i)-production$", replacement = "-staging" }\n'


def rotator(*args, env=None, timeout=20, stdin=None):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout, env=e, input=stdin)


def policy_dir(text=GOOD):
    d = tempfile.mkdtemp(prefix="rotator-cli-")
    with open(os.path.join(d, "main.lua"), "w") as f:
        f.write(text)
    return d


class Daemon:
    """A running `rotator run`; collects stderr lines for assertions."""

    def __init__(self, *args):
        self.p = subprocess.Popen([BIN, *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        self.lines = []

    def wait_for(self, needle, timeout=10):
        os.set_blocking(self.p.stderr.fileno(), False)
        end = time.time() + timeout
        while time.time() < end:
            line = self.p.stderr.readline()
            if line:
                self.lines.append(line)
                if needle in line:
                    return line
            elif self.p.poll() is not None:
                return None
            else:
                time.sleep(0.02)
        return None

    def finish(self, timeout=10):
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = self.p.wait()
        rest = self.p.stderr.read() or ""
        self.lines.extend(rest.splitlines(True))
        return rc, "".join(self.lines)


# --- help and version ---
r = rotator("--help")
t.ok(r.returncode == 0 and "Commands:" in r.stdout and "Examples:" in r.stdout and not r.stderr,
     "rotator --help lists commands with examples", r.stderr)
# The Commands section, as generated from the C command table and scripts/cmd/.
section = r.stdout.split("\nCommands:\n", 1)[-1].split("\n\n", 1)[0]
listed = [line.split()[0] for line in section.splitlines() if line.startswith("  ") and line.split()]
C_COMMANDS = ("repl", "status", "whoami", "sign", "bench", "version")
lua_commands = sorted(f[:-4] for f in os.listdir(os.path.join(ROOT, "scripts", "cmd")) if f.endswith(".lua"))
hidden = [c for c in lua_commands
          if rotator("eval", f'require("cmd.{c}").hidden == true').stdout.strip() == "true"]
want = [c for c in lua_commands if c not in hidden] + list(C_COMMANDS)
t.ok(hidden == ["repl-serve"], "only repl-serve is an internal command", hidden)
t.eq(sorted(listed), sorted(want), "rotator --help lists every command of scripts/cmd/ and of the C table, once")
t.ok("setup" in listed and all(g in r.stdout for g in ("--scripts", "--state-dir", "--trace-aws", "ROTATOR_LOG_LEVEL")),
     "rotator --help lists setup and the global options")
for cmd in listed + hidden:
    r = rotator(cmd, "--help")
    t.ok(r.returncode == 0 and "usage: rotator " + cmd in r.stdout and "Example" in r.stdout,
         f"rotator {cmd} --help exits 0 with usage and an example", r.stdout[-300:] + r.stderr[-300:])
r = rotator("--scripts", "/nonexistent", "--help")
t.ok(r.returncode == 1 and "sign" in r.stdout and "/nonexistent" in r.stderr and "--scripts" in r.stderr,
     "--help with a broken scripts folder still lists the C commands and names the folder", r.stderr)
for args, needle in ((("sign", "--bogus"), "rotator sign: unknown option: --bogus"),
                     (("sign", "--region"), "rotator sign: missing value for: --region"),
                     (("whoami", "extra"), "rotator whoami: unexpected argument: extra"),
                     (("bench", "sign", "--iterations", "0"), "--iterations wants 1..100000000"),
                     (("status", "--jsn"), "rotator status: unknown option: --jsn"),
                     (("repl", "--socket"), "rotator repl: missing value for: --socket")):
    r = rotator(*args)
    t.ok(r.returncode == 2 and needle in r.stderr and f"rotator {args[0]} --help" in r.stderr,
         f"usage error {' '.join(args)}: exit 2, named, with a pointer to --help", r.stderr)
# --- bench sign on a request file: the header it prints is the one `rotator sign` makes ---
REQ = os.path.join(ROOT, "tests", "bench", "dynamodb-describetable.txt")
r = rotator("bench", "sign", "--request", REQ, "--iterations", "50")
auth = [l for l in r.stdout.splitlines() if l.startswith("Authorization: ")]
t.ok(r.returncode == 0 and len(auth) == 1 and "ns/signature (mean)" in r.stdout and "floor:" in r.stdout,
     "bench sign --request prints the Authorization header and the mean ns/signature beside the floor", r.stdout + r.stderr)
with open(REQ) as f:
    signed = rotator("sign", "--service", "dynamodb", "--region", "us-east-1", "--time", "2015-08-30T12:36:00Z", stdin=f.read(),
                     env={"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                          "AWS_SESSION_TOKEN": "IQoJb3JpZ2luX2VjEXAMPLEtokenAQoDYXdzEJr//////////wEaCXVzLWVhc3QtMSJGMEQCIBench==",
                          "AWS_PROFILE": "", "AWS_EC2_METADATA_DISABLED": "true"})
want = [l.split(":", 1)[1].strip() for l in signed.stdout.splitlines() if l.lower().startswith("authorization:")]
t.eq([a.split(": ", 1)[1] for a in auth], want, "bench sign signs the file as rotator sign does (same credentials and time)")
r = rotator("bench", "sign", "--request", "/nonexistent/req.txt")
t.ok(r.returncode == 1 and "/nonexistent/req.txt" in r.stderr and "check the path" in r.stderr,
     "bench sign names a missing request file", r.stderr)
r = rotator("bench", "sign")
t.ok(r.returncode == 2 and "--request FILE is required" in r.stderr, "bench sign without --request is a usage error", r.stderr)
r = rotator("version")
t.ok(r.returncode == 0 and r.stdout.startswith("rotator "), "rotator version")
r = rotator("frobnicate")
t.ok(r.returncode == 2 and "unknown command 'frobnicate'" in r.stderr, "unknown command: exit 2 with a pointer to --help")
r = rotator("--log-format", "xml", "check")
t.ok(r.returncode == 2 and "unknown log format 'xml'" in r.stderr, "bad --log-format is named")

# --- check ---
d = policy_dir()
r = rotator("--policies", d, "check")
t.ok(r.returncode == 0 and "1 rules" in r.stdout, "check passes a good policy folder")
bad = policy_dir('rule {\n  name = "x",\n  source_pattern = "a"\n  replacement = "b" }\n')
r = rotator("--policies", bad, "check")
t.ok(r.returncode == 2, "check exits 2 on a syntax error")
t.ok(os.path.join(bad, "main.lua") + ":4:" in r.stderr, "the error names file:line", r.stderr)
r = rotator("check", os.path.join(bad, "main.lua"))
t.ok(r.returncode == 2 and "main.lua:4:" in r.stderr, "check FILE checks just that file")
r = rotator("--policies", "/nonexistent", "check")
t.ok(r.returncode == 2 and "/nonexistent" in r.stderr and "--policies" in r.stderr, "a missing policy folder is named with the fix")

# --- eval ---
r = rotator("--policies", d, "eval", "1 + 1")
t.eq(r.stdout.strip(), "2", "eval prints an expression value")
r = rotator("--policies", d, "eval", "error('boom')")
t.ok(r.returncode == 1 and "boom" in r.stderr and "traceback" in r.stderr, "eval error: exit 1 with traceback")

# --- logging ---
r = rotator("--log-format", "json", "--policies", d, "eval",
            'require("log").info("test.event", {table="orders", secret_key="wJalrXUtnFEMI", session_token="FwoGZX"})')
lines = [l for l in r.stderr.splitlines() if l.strip()]
try:
    ev = json.loads(lines[-1])
    t.ok(ev["event"] == "test.event" and ev["table"] == "orders" and ev["level"] == "info", "--log-format json: one JSON object per line")
except (ValueError, IndexError, KeyError) as e:
    t.ok(False, "--log-format json: one JSON object per line", f"{e}: {r.stderr}")
t.ok("wJalrXUtnFEMI" not in r.stderr and "FwoGZX" not in r.stderr and "[redacted]" in r.stderr, "secret-looking fields are redacted")
r = rotator("--policies", d, "eval", 'require("log").info("text.event", {msg="two words", n=3})')
t.ok('event=text.event' in r.stderr and 'msg="two words"' in r.stderr and "n=3" in r.stderr, "text format: key=value, quoted when needed")

# --- run: reload on SIGHUP ---
pd = policy_dir()
dm = Daemon("--policies", pd, "run")
t.ok(dm.wait_for("daemon.ready") is not None, "run starts and logs daemon.ready")
dm.p.send_signal(signal.SIGHUP)
t.ok(dm.wait_for("reload.ok") is not None, "SIGHUP reloads a good policy set")
with open(os.path.join(pd, "main.lua"), "w") as f:
    f.write("rule { broken = }\n")
dm.p.send_signal(signal.SIGHUP)
line = dm.wait_for("reload.failed")
t.ok(line is not None and "main.lua:1:" in line and "configuration not changed" in line, "a broken reload is logged with file:line and keeps the old policies", line)
t.ok(dm.p.poll() is None, "the daemon keeps running after a failed reload")
dm.p.send_signal(signal.SIGTERM)
rc, out = dm.finish()
t.ok(rc == 0 and "stop.done" in out and "how=idle" in out, "SIGTERM on an idle daemon exits 0", out[-400:])

r = rotator("--policies", bad, "run")
t.ok(r.returncode == 2 and "main.lua:4:" in r.stderr, "a policy error at start is fatal (exit 2) with file:line")

# --- graceful stop with in-flight work ---
HOLD = ('local h = require("host").hold(); require("log").info("held"); '
        'require("timer").after(%s, function() h:release() end); require("engine.task").sleep(30)')
dm = Daemon("--policies", d, "eval", HOLD % "0.5")
dm.wait_for("held")
start = time.time()
dm.p.send_signal(signal.SIGTERM)
rc, out = dm.finish()
took = time.time() - start
t.ok(rc == 0 and "how=drained" in out and took < 5, f"SIGTERM waits for in-flight work, then exits 0 ({took:.2f}s)", out[-300:])

dm = Daemon("--policies", d, "--stop-timeout", "0.3", "eval", HOLD % "60")
dm.wait_for("held")
start = time.time()
dm.p.send_signal(signal.SIGTERM)
rc, out = dm.finish()
took = time.time() - start
t.ok(rc == 0 and "how=deadline" in out and "abandoned=1" in out and took < 5, f"the stop deadline bounds the drain ({took:.2f}s)", out[-300:])

dm = Daemon("--policies", d, "eval", HOLD % "60")
dm.wait_for("held")
dm.p.send_signal(signal.SIGTERM)
dm.wait_for("stop.begin")
dm.p.send_signal(signal.SIGINT)
rc, out = dm.finish()
t.ok(rc == 1 and "stop.forced" in out, "a second signal during the drain exits at once with 1")

sys.exit(t.done())
