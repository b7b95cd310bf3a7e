#!/usr/bin/env sh
# A stop that begins while a reload quiesces (a restore call held 4 s by the fault proxy):
# the swap does not adopt a new state; the running one takes its work back, stops taking
# new work, finishes the workflow and exits 0 with the queue empty (the long poll handed
# over, not cancelled).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
export ROTATOR_ROOT="$root" ROTATOR="${ROTATOR:-$root/rotator}"
exec "$root/tests/bed/venv-python" - <<'PY'
import os, signal, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.join(os.environ["ROTATOR_ROOT"], "tests/bed"))
import bed
from bed import stop_process, wait_until
from faultproxy import FaultProxy
from tap import Tap

t = Tap()
ROTATOR = os.environ["ROTATOR"]
TARGET = "held-staging-20261125-03-00-00"
with bed.Emulator() as emu, FaultProxy(emu.endpoint) as proxy, tempfile.TemporaryDirectory() as tmp:
    policies = os.path.join(tmp, "policies")
    os.mkdir(policies)
    with open(os.path.join(policies, "held.lua"), "w") as f:
        f.write('rule { name = "held", source_pattern = "^(held)-production$", replacement = "$1-staging" }\n')
    emu.create_table("held-production", items=2)
    backup = emu.create_backup("held-production")
    pipe = emu.create_backup_pipeline(visibility_timeout=300, max_receive_count=1)
    proxy.slow("DynamoDB_20120810.RestoreTableFromBackup", seconds=4, forward_first=False)
    env = bed.env_for_rotator(emu, endpoint=proxy.endpoint, extra={
        "ROTATOR_WAIT_FIRST": "0.2", "ROTATOR_WAIT_MAX": "0.4", "ROTATOR_RECEIVE_WAIT": "3"})
    log_path = os.path.join(tmp, "rotator.log")
    logf = open(log_path, "w")
    proc = subprocess.Popen([ROTATOR, "--policies", policies, "--state-dir", os.path.join(tmp, "state"), "run",
                             "--queue-url", pipe.queue.url], env=env, stdout=logf, stderr=subprocess.STDOUT)

    def text():
        with open(log_path) as f:
            return f.read()
    try:
        t.ok(wait_until(lambda: "event=intake.started" in text(), 20, step=0.05), "daemon started")
        pipe.publish(backup_arn=backup, job_id="held-job", start_time="2026-11-25T03:00:00Z")
        t.ok(wait_until(lambda: "event=workflow.accepted" in text(), 10, step=0.05), "workflow accepted")
        time.sleep(0.5)  # the restore call is held by the proxy
        proc.send_signal(signal.SIGHUP)
        t.ok(wait_until(lambda: "event=reload.quiescing" in text(), 5, step=0.05), "the reload waits for the restore call")
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            rc = stop_process(proc)
    finally:
        if proc.poll() is None:
            stop_process(proc)
        logf.close()
    log = text()
    t.eq(rc, 0, "the daemon stops cleanly")
    t.ok("event=reload.abandoned" in log and "event=reload.ok" not in log,
         "the swap honours the stop: no new state adopted")
    t.ok("event=workflow.complete" in log and "workflow=held-job" in log, "the running state finished the workflow")
    t.ok(log.count("event=intake.started") == 2 and log.count("event=intake.stopped") >= 1,
         "it took its intake back and stopped it")
    t.ok("intake.receive_cancelled" not in log, "no long poll cancelled")
    t.eq(pipe.queue.depth(), {"visible": 0, "in_flight": 0, "dlq": 0}, "queue empty: the message deleted")
    t.eq(len([r for r in proxy.requests("RestoreTableFromBackup") if r.status == 200]), 1, "one restore")
    if t.failed:
        t.diag(log[-6000:])
sys.exit(t.done())
PY
