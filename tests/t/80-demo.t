#!/usr/bin/env sh
# `make demo` (tests/demo/run) runs end to end and its summary says what the README shows:
# a restored table orders-staging-YYYYMMDD-HH-mm-ss with as many items as the source, the
# SSM parameter holding that table's ARN, and nothing left running afterwards.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
export ROTATOR_ROOT="$root" ROTATOR="${ROTATOR:-$root/rotator}"
exec "$root/tests/bed/venv-python" - <<'PY'
import os, re, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.join(os.environ["ROTATOR_ROOT"], "tests/bed"))
from tap import Tap

t = Tap()
root = os.environ["ROTATOR_ROOT"]
run = os.path.join(root, "tests/demo/run")

h = subprocess.run([run, "--help"], capture_output=True, text=True, timeout=30)
t.eq(h.returncode, 0, "tests/demo/run --help exits 0")
t.ok("make demo" in h.stdout and "--timeout" in h.stdout, "--help describes the demo and its options")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not running (it only waits for its parent).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


with tempfile.TemporaryDirectory() as tmp:
    start = time.monotonic()
    p = subprocess.run([run, "--dir", tmp, "--items", "300"], capture_output=True, text=True, timeout=120)
    took = time.monotonic() - start
    out = p.stdout
    t.ok(p.returncode == 0, "the demo exits 0", f"exit {p.returncode}: {p.stderr[-2000:]}")
    t.ok(took < 45, f"the demo runs in well under a minute ({took:.1f} s)")
    t.ok(re.search(r"^Result\s+OK: orders-production restored to ", out, re.M), "summary says Result OK")

    m_src = re.search(r"^Source table\s+orders-production\s+(\d+) items", out, re.M)
    m_dst = re.search(r"^Restored table\s+(\S+)\s+(\d+) items\s+ACTIVE", out, re.M)
    m_ssm = re.search(r"^SSM parameter\s+(/rotator/\S+)\n\s+new value\s+(\S+)", out, re.M)
    t.ok(m_src and m_dst and m_ssm, "summary has the source, restored table and SSM lines")
    name = m_dst.group(1) if m_dst else ""
    t.ok(re.fullmatch(r"orders-staging-\d{8}-\d{2}-\d{2}-\d{2}", name), f"restored table name {name!r}")
    t.eq(m_src and m_src.group(1), "300", "source item count")
    t.eq(m_dst and m_dst.group(2), m_src and m_src.group(1), "restored item count equals the source's")
    t.eq(m_ssm and m_ssm.group(2), f"arn:aws:dynamodb:us-east-1:123456789012:table/{name}",
         "SSM parameter value is the restored table's ARN")
    for step in ("Restore Backup", "Wait for Restore", "Check Restore Status", "Update SSM Parameter"):
        t.ok(re.search(rf"^  {step}\s+\d\d:\d\d:\d\d\.\d{{3}}\s+\d+\.\d{{3}} s", out, re.M),
             f"step table lists {step} with a start time and duration")

    m_log = re.search(r"^Full log\s+(\S+)", out, re.M)
    log_path = m_log and m_log.group(1)
    t.eq(log_path, os.path.join(tmp, "rotator.log"), "summary names the full rotator log")
    log_text = open(log_path).read() if log_path and os.path.exists(log_path) else ""
    t.ok("event=workflow.complete" in log_text and name in log_text, "the log records the completed workflow")
    t.ok(re.search(r"^Stopped\s+rotator: SIGTERM, exit 0", out, re.M), "rotator stopped by SIGTERM with exit 0")

    pids = [int(x) for x in re.findall(r"\(pid (\d+)\)", out)]
    t.ok(len(pids) == 2, "summary names the emulator's and rotator's pids", pids)
    time.sleep(0.2)
    t.ok(pids and not any(alive(x) for x in pids), "no emulator or rotator process left running")
    if t.failed:
        t.diag(out[-6000:])
        t.diag(p.stderr[-3000:])
sys.exit(t.done())
PY
