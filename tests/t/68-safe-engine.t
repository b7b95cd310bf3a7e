#!/usr/bin/env python3
"""The safe engine against real processes: a looping policy (plain and inside a
coroutine) fails `check` on its instruction budget with file:line; SIGTERM during a
looping load exits in time; `kill -HUP` with a looping policy fails the reload while
`rotator status` keeps answering; a timer a policy arms at its top level during a reload
fires in the new state, after the swap; a looping target_name fails its workflow (a REPL
dry run) on the budget while the daemon serves; in the attached REPL os.exit() and io
are refused and the daemon runs on, and Ctrl-C (a cancel frame, and the real client in a
pty) interrupts `while true do end`."""
import json, os, pty, select, signal, socket, struct, subprocess, sys, tempfile, time

ROOT = os.environ.get("ROTATOR_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("ROTATOR") or os.path.join(ROOT, "rotator")
sys.path.insert(0, os.path.join(ROOT, "tests", "bed"))
from tap import Tap  # noqa: E402

t = Tap()
GOOD = 'rule { name = "staging", source_pattern = "(?i)-production$", replacement = "-staging" }\n'
LOOP = 'local n = 0\nwhile true do n = n + 1 end\n'
CO_LOOP = 'coroutine.wrap(function()\n  while true do end\nend)()\n'


def env(**extra):
    e = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    e.update(extra)
    return e


def policy_dir(text):
    d = tempfile.mkdtemp(prefix="rotator-safe-")
    write(d, text)
    return d


def write(d, text):
    with open(os.path.join(d, "main.lua"), "w") as f:
        f.write(text)


def rotator(*args, timeout=30, **kw):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout, env=env(**kw))


# --- check: the budget, with file:line, plain and in a coroutine ---
for name, text, line in (("a top-level loop", LOOP, 2), ("a loop inside coroutine.wrap", CO_LOOP, 2)):
    d = policy_dir(text)
    start = time.monotonic()
    r = rotator("--policies", d, "check")
    took = time.monotonic() - start
    want = f"{d}/main.lua:{line}: policy exceeded 50000000 instructions"
    t.ok(r.returncode == 2 and want in r.stderr and took < 20, f"check: {name} fails on the budget with file:line ({took:.1f}s)", r.stderr)

d = policy_dir('rule { name = "x", source_pattern = "x", replacement = "y" }\nrequire("os").execute("true")\n')
r = rotator("--policies", d, "check")
t.ok(r.returncode == 2 and "main.lua:2: require 'os'" in r.stderr, "check: require('os') is refused with file:line", r.stderr)


# --- SIGTERM during a looping load ---
def term_during(cmd_args, what):
    d = policy_dir(CO_LOOP)
    p = subprocess.Popen([BIN, "--policies", d, "--stop-timeout", "2", *cmd_args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env(ROTATOR_POLICY_INSTRUCTIONS="1000000000000",
                                                                     ROTATOR_STATE_DIR=tempfile.mkdtemp()))
    time.sleep(1.0)
    start = time.monotonic()
    p.send_signal(signal.SIGTERM)
    try:
        _, err = p.communicate(timeout=10)
        took = time.monotonic() - start
        t.ok(took < 3 and "interrupted: the daemon is stopping" in err, f"SIGTERM during a looping load ends {what} in {took:.2f}s", err[-400:])
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        t.ok(False, f"SIGTERM during a looping load ends {what}", "still running 10 s after SIGTERM")


term_during(["check"], "`rotator check`")
term_during(["run"], "`rotator run`")


# --- a daemon: control socket client ---
def frame(kind, payload=b""):
    return kind + struct.pack(">I", len(payload)) + payload


class Control:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(30)
        self.s.connect(path)
        self.buf = b""

    def send(self, kind, text=""):
        self.s.sendall(frame(kind, text.encode()))

    def recv(self):
        """Frames until a final one: (type, text of every frame)."""
        out = []
        while True:
            while len(self.buf) < 5 or len(self.buf) < 5 + struct.unpack(">I", self.buf[1:5])[0]:
                chunk = self.s.recv(65536)
                if not chunk:
                    return None, "".join(out)
                self.buf += chunk
            n = struct.unpack(">I", self.buf[1:5])[0]
            kind, text, self.buf = self.buf[:1], self.buf[5:5 + n].decode(errors="replace"), self.buf[5 + n:]
            out.append(text)
            if kind != b"o":
                return kind, "".join(out)

    def eval(self, chunk):
        self.send(b"e", chunk)
        return self.recv()

    def close(self):
        self.s.close()


class Daemon:
    def __init__(self, policies, **extra):
        self.state = tempfile.mkdtemp(prefix="rotator-safe-state-")
        self.log = os.path.join(self.state, "daemon.log")
        self.env = env(ROTATOR_STATE_DIR=self.state, **extra)
        self.p = subprocess.Popen([BIN, "--policies", policies, "run"], stdout=subprocess.DEVNULL,
                                  stderr=open(self.log, "w"), env=self.env)
        self.sock = os.path.join(self.state, "rotator.sock")
        self.wait_for("daemon.ready")

    def text(self):
        with open(self.log) as f:
            return f.read()

    def wait_for(self, needle, count=1, timeout=20):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.text().count(needle) >= count:
                return True
            time.sleep(0.05)
        return False

    def status(self):
        r = subprocess.run([BIN, "status", "--json"], capture_output=True, text=True, timeout=10, env=self.env)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(15)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.wait()


# --- kill -HUP with a looping policy: the reload fails, the daemon answers meanwhile ---
pd = policy_dir(GOOD)
BUDGET = 300000000  # a few seconds of looping: long enough to ask for the status meanwhile
dm = Daemon(pd, ROTATOR_POLICY_INSTRUCTIONS=str(BUDGET))
write(pd, GOOD + CO_LOOP)
start = time.monotonic()
dm.p.send_signal(signal.SIGHUP)
answered, worst = 0, 0.0
while time.monotonic() - start < 30 and "reload.failed" not in dm.text():
    t0 = time.monotonic()
    st = dm.status()
    worst = max(worst, time.monotonic() - t0)
    answered += 1 if st and st.get("pid") == dm.p.pid else 0
failed = [l for l in dm.text().splitlines() if "reload.failed" in l]
t.ok(failed and f"main.lua:3: policy exceeded {BUDGET} instructions" in failed[0] and "configuration not changed" in failed[0],
     "kill -HUP with a looping policy: reload.failed with file:line, configuration not changed", failed)
t.ok(answered >= 3, f"rotator status answered {answered} times while the candidate looped (slowest {worst * 1000:.0f} ms)")
st = dm.status()
t.ok(st and st["pid"] == dm.p.pid and dm.p.poll() is None, "the running state still serves after the failed reload")

# --- a timer armed at a policy's top level during a reload fires in the new state ---
TIMER = GOOD + '''local timer, log, clock = require "timer", require "log", require "clock"
-- one name per load: a table's address is no name (a new state may reuse the old one's memory)
local me = ("%.6f"):format(clock.now())
log.info("policy.loaded", { instance = me })
timer.after(0, function() log.info("policy.fired", { instance = me }) end)
'''
write(pd, TIMER)
ok_before = dm.text().count("reload.ok")
for i in range(3):
    dm.p.send_signal(signal.SIGHUP)
    dm.wait_for("reload.ok", ok_before + i + 1)
    dm.wait_for("policy.fired", i + 1)
lines = [l for l in dm.text().splitlines() if "policy.loaded" in l or "policy.fired" in l or "reload.ok" in l]
seq, ok = [], True
for l in lines:
    inst = l.split("instance=")[-1].strip().strip('"') if "instance=" in l else None
    seq.append(("loaded" if "policy.loaded" in l else "fired" if "policy.fired" in l else "swap", inst))
loaded = [i for k, i in seq if k == "loaded"]
for inst in loaded:
    k_load = seq.index(("loaded", inst))
    fired = [n for n, (k, i) in enumerate(seq) if k == "fired" and i == inst]
    swaps = [n for n, (k, _) in enumerate(seq) if k == "swap" and n > k_load]
    if len(fired) != 1 or not swaps or fired[0] < swaps[0]:
        ok = False
others = [i for k, i in seq if k == "fired" and i not in loaded]
t.ok(len(loaded) == 3 and ok and not others, "each candidate's timer fired once, in its own state, after its swap", lines)

# --- a looping target_name fails its workflow on the budget; the daemon serves ---
write(pd, 'rule { name = "spin", source_pattern = "(?i)-production$", target_name = function(ctx)\n  while true do end\nend }\n')
dm.p.send_signal(signal.SIGHUP)
dm.wait_for("reload.ok", ok_before + 4)
note = os.path.join(dm.state, "note.json")
msg = ("An AWS Backup job was completed successfully. Recovery point ARN: "
       "arn:aws:dynamodb:eu-west-1:111122223333:table/Orders-Production/backup/01795575600000-a1b2c3d4. "
       "Backed up Resource ARN : arn:aws:dynamodb:eu-west-1:111122223333:table/Orders-Production. "
       "Backup Job Id : 5a772b5a-36d5-4a69-9b18-ed2f5213c659")
with open(note, "w") as f:
    json.dump({"Type": "Notification", "MessageId": "m-1", "Message": msg, "Timestamp": "2026-11-25T03:41:07.512Z",
               "MessageAttributes": {"State": {"Type": "String", "Value": "COMPLETED"},
                                     "StartTime": {"Type": "String", "Value": "2026-11-25T03:00:00Z"}}}, f)
c = Control(dm.sock)
start = time.monotonic()
kind, text = c.eval(f"dry_run({json.dumps(note)})")
took = time.monotonic() - start
t.ok(took < 30 and f"main.lua:2: policy exceeded {BUDGET} instructions" in dm.text(),
     f"a looping target_name fails on the budget ({took:.1f}s) with file:line", dm.text()[-600:])
t.ok(dm.status() is not None and dm.p.poll() is None, "and the daemon keeps serving")

# --- the REPL cannot hurt the daemon ---
kind, text = c.eval("os.exit(3)")
t.ok(kind == b"x" and "os.exit is not available in the REPL" in text, "os.exit() in the REPL is an error that says why", text)
kind, text = c.eval("io.read()")
t.ok(kind == b"x" and "io is not available" in text, "io is not reachable from the REPL", text)
kind, text = c.eval("require('os').exit(1)")
t.ok(kind == b"x" and "os.exit is not available" in text, "nor through require('os')", text)
time.sleep(0.2)
t.ok(dm.p.poll() is None and dm.status() is not None, "the daemon is still running")
c.send(b"e", "while true do end")
time.sleep(0.5)
start = time.monotonic()
c.send(b"c")
kind, text = c.recv()
took = time.monotonic() - start
t.ok(kind == b"x" and "stdin:1: chunk interrupted (Ctrl-C)" in text and took < 2, f"a cancel frame interrupts `while true do end` ({took:.2f}s)", text)
kind, text = c.eval("1 + 1")
t.ok(kind == b"r" and text.strip() == "2", "the session goes on", text)
c.close()

# The real client in a pty: Ctrl-C.
pid, fd = pty.fork()
if pid == 0:
    os.execve(BIN, [BIN, "repl"], dict(dm.env, TERM="dumb", HOME=dm.state))


def expect(needle, timeout=10):
    buf, end = b"", time.time() + timeout
    while time.time() < end:
        if needle.encode() in buf:
            return buf.decode(errors="replace")
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                buf += os.read(fd, 4096)
            except OSError:
                break
    return None


expect("> ")
os.write(fd, b"while true do end\r")
time.sleep(0.5)
os.write(fd, b"\x03")
out = expect("> ", timeout=5)
t.ok(out and "interrupted (Ctrl-C)" in out, "Ctrl-C in `rotator repl` stops `while true do end`", out)
os.write(fd, b"1 + 1\r")
out = expect("2", timeout=5)
t.ok(out is not None and dm.p.poll() is None, "the prompt returns and the daemon runs on", out)
os.kill(pid, signal.SIGTERM)
os.waitpid(pid, 0)
os.close(fd)

rc = dm.stop()
t.ok(rc == 0, "the daemon stops cleanly")

# --- SIGTERM while a reload loads a looping policy: the daemon stops in time ---
pd2 = policy_dir(GOOD)
dm = Daemon(pd2, ROTATOR_POLICY_INSTRUCTIONS="1000000000000")
write(pd2, GOOD + CO_LOOP)
dm.p.send_signal(signal.SIGHUP)
time.sleep(1.0)
start = time.monotonic()
rc = dm.stop()
took = time.monotonic() - start
t.ok(rc == 0 and took < 5 and "reload.failed" in dm.text() and "stopping" in dm.text(),
     f"SIGTERM during a looping reload: the reload gives up and the daemon exits 0 in {took:.2f}s", dm.text()[-500:])
sys.exit(t.done())
