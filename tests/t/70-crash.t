#!/usr/bin/env sh
# Crash safety on the moto emulator behind the fault proxy: JOBS backup notifications;
# `rotator run` is SIGKILLed at random moments and restarted (same state directory),
# then left to finish. Every job must complete exactly once: one successful
# RestoreTableFromBackup per backup (the proxy's request log), one table per backup in
# moto, every SSM parameter on the newest backup's copy, the queue drained, the journal
# holding every workflow as Complete.
# JOBS is the issue's 200 (about 90 s here, 25 kills); ROTATOR_CRASH_JOBS overrides.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
export ROTATOR_ROOT="$root" ROTATOR="${ROTATOR:-$root/rotator}"
exec "$root/tests/bed/venv-python" - <<'PY'
import collections, datetime, json, os, random, signal, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.join(os.environ["ROTATOR_ROOT"], "tests/bed"))
import bed
from bed import stop_process, wait_until
from faultproxy import FaultProxy
from tap import Tap

JOBS = int(os.environ.get("ROTATOR_CRASH_JOBS", "200"))
SOURCES = 6
KILLS = 25                                               # SIGKILLs at most (kill phase)
BUDGET = 150                                             # seconds for the kill phase + finish
t = Tap()
ROTATOR = os.environ["ROTATOR"]
rng = random.Random(int(os.environ.get("ROTATOR_CRASH_SEED", str(int(time.time())))))
BASE = datetime.datetime(2026, 11, 25, 0, 0, 0, tzinfo=datetime.timezone.utc)


def policy():
    out = []
    for s in range(SOURCES):
        out.append('rule { name = "src%d", source_pattern = "^(src%d)-production$", replacement = "$1-staging", '
                   'ssm_parameter = "/rotator/crash/src%d" }' % (s, s, s))
    return "\n".join(out) + "\n"


def target(src, start):
    return "src%d-staging-%s" % (src, start.strftime("%Y%m%d-%H-%M-%S"))



with bed.Emulator() as emu, FaultProxy(emu.endpoint) as proxy, tempfile.TemporaryDirectory() as tmp:
    policies = os.path.join(tmp, "policies")
    state = os.path.join(tmp, "state")
    os.mkdir(policies)
    with open(os.path.join(policies, "crash.lua"), "w") as f:
        f.write(policy())
    jobs = []   # (job id, backup arn, source index, start time)
    for s in range(SOURCES):
        emu.create_table("src%d-production" % s, items=2)
    for i in range(JOBS):
        s = i % SOURCES
        jobs.append(("crash-job-%04d" % i, emu.create_backup("src%d-production" % s), s,
                     BASE + datetime.timedelta(hours=rng.randrange(0, 10000))))
    # distinct start times per source (the target name carries it)
    seen = set()
    for k, (j, b, s, st) in enumerate(jobs):
        while (s, st) in seen:
            st += datetime.timedelta(seconds=1)
        seen.add((s, st))
        jobs[k] = (j, b, s, st)
    pipe = emu.create_backup_pipeline(visibility_timeout=6, max_receive_count=1000)
    order = list(jobs)
    rng.shuffle(order)
    for j, b, s, st in order:
        pipe.publish(backup_arn=b, job_id=j, start_time=st.strftime("%Y-%m-%dT%H:%M:%SZ"))
    # restores paced at 4/s and tables that stay CREATING for a while: kills land in every phase
    proxy.creating(count=JOBS * 4)

    env = bed.env_for_rotator(emu, endpoint=proxy.endpoint, extra={
        "ROTATOR_WAIT_FIRST": "0.2", "ROTATOR_WAIT_MAX": "0.5", "ROTATOR_HEARTBEAT": "2",
        "ROTATOR_VISIBILITY_TIMEOUT": "6", "ROTATOR_RESTORES_PER_SECOND": "4"})
    cmd = [ROTATOR, "--policies", policies, "--state-dir", state, "run", "--queue-url", pipe.queue.url]
    log_path = os.path.join(tmp, "rotator.log")
    logf = open(log_path, "w")

    def finished():
        d = pipe.queue.depth()
        if d["visible"] + d["in_flight"] > 0:
            return False
        names = set(emu.table_names())
        return all(target(s, st) in names for _, _, s, st in jobs)

    started = time.monotonic()
    kills = 0
    while time.monotonic() - started < BUDGET * 0.4 and kills < KILLS and not finished():
        proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT)
        time.sleep(rng.uniform(0.4, 2.5))
        proc.kill()
        proc.wait()
        kills += 1
        logf.write("### SIGKILL %d\n" % kills)
        logf.flush()
    t.ok(kills >= 5, "killed the daemon %d times mid-work" % kills)
    proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT)
    try:
        done = wait_until(finished, max(30, BUDGET - (time.monotonic() - started)), step=0.5)
        t.ok(done, "after the last restart every job finished and the queue drained", pipe.queue.depth())
        # a moment for the last SSM updates of workflows resumed from the journal
        wait_until(lambda: subprocess.run([ROTATOR, "--state-dir", state, "journal", "unfinished", "--json"],
                                          capture_output=True, text=True).stdout.strip() in ("[]", ""), 20, step=0.5)
    finally:
        rc = stop_process(proc)
        logf.close()
    t.eq(rc, 0, "the last daemon stops cleanly")

    # exactly one successful restore per backup
    ok_restores = collections.Counter()
    for r in proxy.requests("RestoreTableFromBackup"):
        if r.status == 200:
            ok_restores[json.loads(r.request_body)["BackupArn"]] += 1
    twice = {b: n for b, n in ok_restores.items() if n != 1}
    missing = [j for j, b, _, _ in jobs if ok_restores[b] == 0]
    t.ok(not twice and not missing, "exactly one successful RestoreTableFromBackup per backup (%d)" % JOBS,
         {"twice": twice, "missing": missing[:10]})
    names = set(emu.table_names())
    want = {target(s, st) for _, _, s, st in jobs} | {"src%d-production" % s for s in range(SOURCES)}
    t.eq(sorted(names - want), [], "no table beyond one per backup")
    t.eq(len(names & want), len(want), "one restored table per backup")
    newest = {}
    for _, _, s, st in jobs:
        if s not in newest or st > newest[s]:
            newest[s] = st
    wrong = {}
    for s, st in newest.items():
        table = emu.describe_table(target(s, st))
        got = emu.get_parameter("/rotator/crash/src%d" % s)
        if not table or got != table["TableArn"]:
            wrong[s] = (got, target(s, st))
    t.ok(not wrong, "every SSM parameter points at the newest backup's restore", wrong)
    depth = pipe.queue.depth()
    t.eq(depth["visible"] + depth["in_flight"] + depth["dlq"], 0, "queue and dead-letter queue empty")
    out = subprocess.run([ROTATOR, "--state-dir", state, "journal", "list", "--json"], capture_output=True, text=True)
    try:
        rows = json.loads(out.stdout)
    except ValueError:
        rows = []
    states = collections.Counter((r.get("state"), bool(r.get("finished"))) for r in rows)
    t.eq(dict(states), {("Complete", True): JOBS}, "the journal holds every workflow, Complete")
    log_text = open(log_path).read()
    if os.environ.get("ROTATOR_CRASH_LOG"):
        with open(os.environ["ROTATOR_CRASH_LOG"], "w") as f:
            f.write(log_text)
    t.ok("journal.resumed" in log_text, "a restarted daemon resumed unfinished workflows from the journal")
    t.ok("message.already_complete" in log_text or "restore.already_started" in log_text,
         "redeliveries of jobs already done/started were recognised")
    t.diag("kills=%d resumed=%d already_complete=%d already_started=%d" % (
        kills, log_text.count("journal.resumed"), log_text.count("message.already_complete"),
        log_text.count("restore.already_started")))
    if t.failed:
        t.diag(log_text[-6000:])
sys.exit(t.done())
PY
