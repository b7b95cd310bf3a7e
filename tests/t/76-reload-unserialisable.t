#!/usr/bin/env python3
"""A reload whose running state cannot be serialised (a function put into the daemon's
options from the REPL) fails with the encoder's reason, says so in `rotator status`, and
leaves the daemon serving on its previous state; once the value is gone, the next reload
succeeds."""
import json, os, signal, subprocess, sys, tempfile, time

ROOT = os.environ.get("ROTATOR_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("ROTATOR") or os.path.join(ROOT, "rotator")
sys.path.insert(0, os.path.join(ROOT, "tests", "bed"))
from tap import Tap  # noqa: E402

t = Tap()
state = tempfile.mkdtemp(prefix="rotator-reload-enc-")
policies = tempfile.mkdtemp(prefix="rotator-reload-enc-pol-")
with open(os.path.join(policies, "main.lua"), "w") as f:
    f.write('rule { name = "staging", source_pattern = "(?i)-production$", replacement = "-staging" }\n')
env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
env["ROTATOR_STATE_DIR"] = state
log_path = os.path.join(state, "daemon.log")
proc = subprocess.Popen([BIN, "--policies", policies, "run"], stdout=subprocess.DEVNULL,
                        stderr=open(log_path, "w"), env=env)


def text():
    with open(log_path) as f:
        return f.read()


def wait_for(needle, count=1, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if text().count(needle) >= count:
            return True
        time.sleep(0.05)
    return False


def repl(chunk):
    return subprocess.run([BIN, "repl"], input=chunk + "\n", capture_output=True, text=True, timeout=20, env=env)


def last_reload():
    r = subprocess.run([BIN, "status", "--json"], capture_output=True, text=True, timeout=10, env=env)
    return json.loads(r.stdout).get("last_reload") if r.returncode == 0 else None


try:
    t.ok(wait_for("daemon.ready"), "the daemon is ready")
    r = repl('require("daemon").opts.unserialisable = function() end return "set"')
    t.ok('"set"' in r.stdout, "a function is put into the state the reload hands over", r.stdout + r.stderr)
    proc.send_signal(signal.SIGHUP)
    t.ok(wait_for("reload.failed"), "the reload fails", text()[-500:])
    failed = [l for l in text().splitlines() if "reload.failed" in l]
    t.ok(failed and "could not be serialised" in failed[0] and "cannot encode a function value at $.opts.unserialisable" in failed[0],
         "reload.failed names the encoder's reason and the value's path", failed)
    lr = last_reload()
    t.ok(lr and lr.get("ok") is False and "could not be serialised" in lr.get("error", ""),
         "rotator status shows the failed reload", lr)
    t.ok(proc.poll() is None and '"alive"' in repl('return "alive"').stdout, "the daemon still serves")
    repl('require("daemon").opts.unserialisable = nil return 1')
    proc.send_signal(signal.SIGHUP)
    t.ok(wait_for("reload.ok"), "with the value gone, the next reload succeeds", text()[-500:])
    lr = last_reload()
    t.ok(lr and lr.get("ok") is True, "and status says so", lr)
finally:
    proc.send_signal(signal.SIGTERM)
    stop_by = time.monotonic() + 15
    while proc.poll() is None and time.monotonic() < stop_by:
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()  # the check below then fails
    rc = proc.wait()
t.ok(rc == 0, "the daemon stops cleanly (exit %s)" % rc)
sys.exit(t.done())
