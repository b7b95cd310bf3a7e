#!/usr/bin/env python3
"""One daemon per state directory: a second `rotator run` on the same state directory
exits 2 naming the first one's pid; after the first dies (even by SIGKILL) the next start
takes the lock."""
import os, signal, subprocess, sys, tempfile, time

ROOT = os.environ.get("ROTATOR_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("ROTATOR") or os.path.join(ROOT, "rotator")
sys.path.insert(0, os.path.join(ROOT, "tests", "bed"))
from tap import Tap  # noqa: E402

t = Tap()
tmp = tempfile.mkdtemp(prefix="rotator-lock-")
pol = os.path.join(tmp, "policies")
os.mkdir(pol)
with open(os.path.join(pol, "main.lua"), "w") as f:
    f.write('rule { name = "staging", source_pattern = "-production$", replacement = "-staging" }\n')
env = dict(os.environ, ROTATOR_STATE_DIR=os.path.join(tmp, "state"))
env.pop("ROTATOR_QUEUE_URL", None)


def start():
    p = subprocess.Popen([BIN, "--policies", pol, "run"], env=env, stderr=subprocess.PIPE, text=True)
    os.set_blocking(p.stderr.fileno(), False)
    end, seen = time.time() + 10, ""
    while time.time() < end and "daemon.ready" not in seen and p.poll() is None:
        seen += p.stderr.readline() or ""
        time.sleep(0.02)
    return p, seen


first, seen = start()
t.ok("daemon.ready" in seen, "the first daemon starts", seen[-300:])
r = subprocess.run([BIN, "--policies", pol, "run"], env=env, capture_output=True, text=True, timeout=15)
t.ok(r.returncode == 2, "a second daemon on the same state directory exits 2", r.returncode)
t.ok(f"pid {first.pid}" in r.stderr and "--state-dir" in r.stderr, "its message names the first one's pid and the way out", r.stderr)
t.ok(first.poll() is None, "the first daemon keeps running")
first.send_signal(signal.SIGKILL)
first.wait(10)
second, seen = start()
t.ok("daemon.ready" in seen, "after the first is killed, a new daemon takes the lock", seen[-300:])
with open(os.path.join(tmp, "state", "rotator.lock")) as f:
    t.ok(f.read().strip() == str(second.pid), "the lock file holds the running daemon's pid")
second.send_signal(signal.SIGTERM)
t.ok(second.wait(15) == 0, "it stops cleanly")
t.done()
