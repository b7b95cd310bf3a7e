#!/usr/bin/env sh
# Dormant workflows on moto behind the fault proxy: a workflow whose table stays CREATING
# sleeps as a compact entry (no task, no document in memory) between its polls. It must
# be seen by `rotator status` (running, dormant, its phase), a redelivered notification
# must attach to it (no second restore), a reload must hand it over as an entry
# (reload.adopted active=0 dormant=1) and it must wake after the reload, and after a
# SIGKILL the restarted daemon must make it dormant again from the journal and carry it
# to Complete: one restore call in all.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
export ROTATOR_ROOT="$root" ROTATOR="${ROTATOR:-$root/rotator}"
exec "$root/tests/bed/venv-python" - <<'PY'
import json, os, re, signal, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.join(os.environ["ROTATOR_ROOT"], "tests/bed"))
import bed
from bed import wait_until
from faultproxy import FaultProxy
from tap import Tap

t = Tap()
ROTATOR = os.environ["ROTATOR"]
JOB = "dormant-job-1"
POLICY = 'rule { name = "dorm", source_pattern = "^(orders)-production$", replacement = "$1-staging", ' \
         'ssm_parameter = "/rotator/dormant/orders" }\n'


def status(state, env):
    p = subprocess.run([ROTATOR, "--state-dir", state, "status", "--json"], env=env, capture_output=True,
                       text=True, timeout=30)
    return (json.loads(p.stdout) if p.returncode == 0 else {}).get("workflows") or {}


def polls(proxy):
    return len(proxy.requests("dynamodb:DescribeTable"))


with bed.Emulator() as emu, FaultProxy(emu.endpoint) as proxy, tempfile.TemporaryDirectory() as tmp:
    policies, state = os.path.join(tmp, "policies"), os.path.join(tmp, "state")
    os.mkdir(policies)
    with open(os.path.join(policies, "dorm.lua"), "w") as f:
        f.write(POLICY)
    emu.create_table("orders-production", items=2)
    backup = emu.create_backup("orders-production")
    pipe = emu.create_backup_pipeline(visibility_timeout=6, max_receive_count=100)
    proxy.creating(count=100000)  # the restored table stays CREATING until the rules are cleared
    env = bed.env_for_rotator(emu, endpoint=proxy.endpoint, extra={
        "ROTATOR_WAIT_FIRST": "0.6", "ROTATOR_WAIT_MAX": "0.6", "ROTATOR_DORMANT_AFTER": "0.3",
        "ROTATOR_HEARTBEAT": "2", "ROTATOR_VISIBILITY_TIMEOUT": "6", "ROTATOR_RECEIVE_WAIT": "1",
        "ROTATOR_STATE_DIR": state})
    d = bed.Daemon(tmp, "first", env, policies, pipe.queue.url)
    second = None
    try:
        t.ok(wait_until(lambda: d.events("intake.started"), 30), "daemon started")
        pipe.publish(backup_arn=backup, job_id=JOB, start_time="2026-11-25T03:00:00Z")
        st = wait_until(lambda: (lambda s: s if s.get("dormant") == 1 and polls(proxy) >= 2 else None)(status(state, env)), 60)
        t.ok(st, "the waiting workflow is dormant between its polls", st)
        st = st or {}
        t.eq((st.get("running"), (st.get("by_state") or {}).get("Wait for Restore"), (st.get("by_rule") or {}).get("dorm")),
             (1, 1, 1), "status lists it: running, in Wait for Restore, under its rule")

        # A second delivery of the same job attaches to the dormant workflow.
        pipe.publish(backup_arn=backup, job_id=JOB, start_time="2026-11-25T03:00:00Z")
        attached = wait_until(lambda: [l for l in d.events("message.attached") if "workflow=" + JOB in l], 30)
        t.ok(attached, "a redelivered notification attaches to the dormant workflow", d.text()[-2000:])

        # A reload hands it over as a compact entry, and it wakes in the new state.
        d.proc.send_signal(signal.SIGHUP)
        t.ok(wait_until(lambda: d.events("reload.ok"), 30), "reload ok")
        adopted = (d.events("reload.adopted") or [""])[-1]
        t.ok(" active=0 " in adopted and " dormant=1 " in adopted and " workflows=1" in adopted,
             "the reload carried one dormant entry and re-armed nothing", adopted)
        before = polls(proxy)
        t.ok(wait_until(lambda: polls(proxy) >= before + 2, 30), "it woke and polled again after the reload")
        t.ok(wait_until(lambda: status(state, env).get("dormant") == 1, 30), "and went dormant again")

        # SIGKILL; the next daemon resumes it from the journal as a dormant entry.
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        d.logf.close()
        second = bed.Daemon(tmp, "second", env, policies, pipe.queue.url)
        resumed = wait_until(lambda: second.events("journal.resumed"), 30)
        t.ok(resumed and " dormant=1 " in resumed[0] and " active=0 " in resumed[0],
             "the restart made it dormant again from the journal", resumed)
        t.ok(wait_until(lambda: [l for l in second.events("message.attached") if "workflow=" + JOB in l], 60),
             "the redelivered messages attach to it after the restart", second.text()[-2000:])
        proxy.clear_rules()  # the table turns ACTIVE
        done = wait_until(lambda: second.events("workflow.complete"), 60)
        t.ok(done, "it woke from the journal and completed", second.text()[-3000:])
        t.ok(wait_until(lambda: sum(pipe.queue.depth().values()) == 0, 60), "both messages were deleted",
             pipe.queue.depth())
    finally:
        if second:
            rc = second.stop()
        if d.proc.poll() is None:
            d.stop()
    t.eq(rc if second else None, 0, "SIGTERM stops the daemon cleanly")
    restores = [r for r in proxy.requests("DynamoDB_20120810.RestoreTableFromBackup") if r.fault is None]
    t.eq([r.status for r in restores], [200], "one restore call in all")
    param = emu.get_parameter("/rotator/dormant/orders") or ""
    t.ok(param.endswith(":table/orders-staging-20261125-03-00-00"), "the parameter names the new table", param)
    show = subprocess.run([ROTATOR, "--state-dir", state, "journal", "show", JOB, "--json"], env=env,
                          capture_output=True, text=True, timeout=30)
    waits = []

    def walk(v):
        if isinstance(v, dict):
            if v.get("State") == "Wait for Restore":
                waits.append(v)
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    try:
        walk(json.loads(show.stdout))
    except ValueError:
        pass
    t.ok(waits and all("Seconds" in w for w in waits), "every wait is a closed step in the journal",
         show.stdout[-1500:] + show.stderr[-500:])
t.done()
PY
