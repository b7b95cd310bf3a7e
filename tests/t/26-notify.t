#!/usr/bin/env python3
"""The systemd notify protocol, against the real binary: `rotator run` with NOTIFY_SOCKET
pointing at a datagram listener of the test's own. Checks READY at start, RELOADING with
MONOTONIC_USEC then READY around a SIGHUP reload, STOPPING at SIGTERM, and WATCHDOG=1
pings that stop while the loop is blocked (the ROTATOR_TEST_HOOKS-only loop blocker)."""
import os, signal, socket, subprocess, sys, tempfile, time

ROOT = os.environ.get("ROTATOR_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("ROTATOR") or os.path.join(ROOT, "rotator")
sys.path.insert(0, os.path.join(ROOT, "tests", "bed"))
from tap import Tap  # noqa: E402

t = Tap()
tmp = tempfile.mkdtemp(prefix="rotator-notify-")
pol = os.path.join(tmp, "policies")
os.mkdir(pol)
with open(os.path.join(pol, "main.lua"), "w") as f:
    f.write('rule { name = "staging", source_pattern = "-production$", replacement = "-staging" }\n')
sock_path = os.path.join(tmp, "notify.sock")
srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
srv.bind(sock_path)
srv.settimeout(0.2)


def messages_until(pred, timeout=10):
    got, end = [], time.time() + timeout
    while time.time() < end:
        try:
            data = srv.recv(4096).decode()
        except socket.timeout:
            continue
        fields = dict(line.split("=", 1) for line in data.split("\n") if "=" in line)
        got.append(fields)
        if pred(fields):
            return got
    return got


def start(extra_env):
    global state
    state = os.path.join(tmp, "state-%d" % time.monotonic_ns())
    env = dict(os.environ, NOTIFY_SOCKET=sock_path, ROTATOR_STATE_DIR=state, **extra_env)
    return subprocess.Popen([BIN, "--policies", pol, "run"], env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


p = start({})
got = messages_until(lambda m: "READY" in m)
ready = [m for m in got if m.get("READY") == "1"]
t.ok(len(ready) == 1 and "1 rules" in ready[0].get("STATUS", ""), "READY=1 with a STATUS line once policies are loaded", got)
t.ok(not any("WATCHDOG" in m for m in got), "no watchdog pings without WATCHDOG_USEC", got)

p.send_signal(signal.SIGHUP)
got = messages_until(lambda m: m.get("READY") == "1")
kinds = ["RELOADING" if "RELOADING" in m else "READY" if "READY" in m else "other" for m in got]
t.ok(kinds[:1] == ["RELOADING"] and kinds[-1] == "READY", "a reload sends RELOADING=1 then READY=1", got)
mono = got[0].get("MONOTONIC_USEC", "") if got else ""
now_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
t.ok(mono.isdigit() and 0 <= now_us - int(mono) < 10_000_000, "RELOADING carries MONOTONIC_USEC from CLOCK_MONOTONIC", mono)
t.ok("reload ok" in (got[-1].get("STATUS", "") if got else ""), "the READY after a reload says how it went", got[-1:])

p.send_signal(signal.SIGTERM)
got = messages_until(lambda m: "STOPPING" in m)
t.ok(any(m.get("STOPPING") == "1" for m in got), "SIGTERM sends STOPPING=1", got)
t.ok(p.wait(10) == 0, "the daemon exits 0 after STOPPING")

# Watchdog: 400 ms -> a ping every 200 ms; a loop blocked for 1.5 s sends none.
p = start({"WATCHDOG_USEC": "400000", "ROTATOR_TEST_HOOKS": "1"})
messages_until(lambda m: "READY" in m)
got = messages_until(lambda m: False, timeout=1.0)
pings = sum(1 for m in got if m.get("WATCHDOG") == "1")
t.ok(2 <= pings <= 9, f"WATCHDOG=1 about every 200 ms while the loop is healthy ({pings} in 1 s)")
# Block the loop from the live daemon's REPL: the blocker runs on the loop thread.
repl = subprocess.Popen([BIN, "--state-dir", state, "repl"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL, text=True)
marker = os.path.join(state, "blocking")
# The chunk marks the moment the loop is blocked: counting starts from there, however long
# the REPL took to connect (slow under sanitizers and on a loaded machine).
repl.stdin.write(f'require("host").test_block_loop(3, {marker!r})\n')
repl.stdin.flush()
deadline = time.monotonic() + 20
while not os.path.exists(marker) and time.monotonic() < deadline:
    time.sleep(0.02)
t.ok(os.path.exists(marker), "the REPL's chunk started blocking the loop")
messages_until(lambda m: False, timeout=0.1)  # pings sent before the block began
got = messages_until(lambda m: False, timeout=1.0)
blocked_pings = sum(1 for m in got if m.get("WATCHDOG") == "1")
t.ok(blocked_pings == 0, f"no pings while the loop is blocked ({blocked_pings} in 1 s)", got)
repl.stdin.close()
repl.wait(10)
got = messages_until(lambda m: False, timeout=3.5)
t.ok(sum(1 for m in got if m.get("WATCHDOG") == "1") >= 2, "pings resume when the loop is free again", got)
p.send_signal(signal.SIGTERM)
t.ok(p.wait(10) == 0, "the watchdog daemon stops cleanly")

# WATCHDOG_PID names the process the watchdog is for: another pid's gets no pings.
p = start({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": str(os.getpid())})
got = messages_until(lambda m: "READY" in m)
got += messages_until(lambda m: False, timeout=1.0)
t.ok(any(m.get("READY") == "1" for m in got) and not any("WATCHDOG" in m for m in got),
     "WATCHDOG_PID of another process: READY, and no pings", got)
p.send_signal(signal.SIGTERM)
p.wait(10)

# NOTIFY_SOCKET=@name is a socket in the abstract namespace (no file).
abstract = "rotator-notify-%d" % os.getpid()
srv.close()
srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
srv.bind("\0" + abstract)
srv.settimeout(0.2)
sock_path = "@" + abstract
p = start({})
got = messages_until(lambda m: "READY" in m)
t.ok(any(m.get("READY") == "1" for m in got), "READY=1 reaches an abstract-namespace NOTIFY_SOCKET (@name)", got)
p.send_signal(signal.SIGTERM)
got = messages_until(lambda m: "STOPPING" in m)
t.ok(any(m.get("STOPPING") == "1" for m in got) and p.wait(10) == 0, "and STOPPING=1 at SIGTERM", got)
t.done()
