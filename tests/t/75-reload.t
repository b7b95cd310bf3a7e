#!/usr/bin/env sh
# Hot reload under load on the moto emulator behind the fault proxy (throttled restores,
# tables that stay CREATING): RELOADS `kill -HUP` while JOBS workflows move; one reload in
# the middle meets a broken policy and must keep the old one (logged with file:line).
# Every job must complete exactly once: one successful restore per backup and no step
# repeated (no second restore call answered TableAlreadyExists, one SSM decision per
# workflow), the queue drained, the journal all Complete.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
export ROTATOR_ROOT="$root" ROTATOR="${ROTATOR:-$root/rotator}"
exec "$root/tests/bed/venv-python" - <<'PY'
import collections, datetime, json, os, re, signal, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.join(os.environ["ROTATOR_ROOT"], "tests/bed"))
import bed
from bed import stop_process
from faultproxy import FaultProxy
from tap import Tap

JOBS = 40
RELOADS = 100
SOURCES = 4
t = Tap()
ROTATOR = os.environ["ROTATOR"]
BASE = datetime.datetime(2026, 11, 25, 0, 0, 0, tzinfo=datetime.timezone.utc)
POLICY = "".join('rule { name = "src%d", source_pattern = "^(src%d)-production$", replacement = "$1-staging", '
                 'ssm_parameter = "/rotator/reload/src%d" }\n' % (s, s, s) for s in range(SOURCES))


def target(src, start):
    return "src%d-staging-%s" % (src, start.strftime("%Y%m%d-%H-%M-%S"))


class Log:
    """The daemon's log file, read as it grows."""

    def __init__(self, path):
        self.path, self.pos, self.lines = path, 0, []

    def poll(self):
        with open(self.path) as f:
            f.seek(self.pos)
            chunk = f.read()
        cut = chunk.rfind("\n") + 1
        self.pos += len(chunk[:cut].encode())
        self.lines += chunk[:cut].splitlines()

    def count(self, needle):
        self.poll()
        return sum(1 for l in self.lines if needle in l)

    def wait_count(self, needle, n, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.count(needle) >= n:
                return True
            time.sleep(0.02)
        return False


with bed.Emulator() as emu, FaultProxy(emu.endpoint) as proxy, tempfile.TemporaryDirectory() as tmp:
    policies = os.path.join(tmp, "policies")
    os.mkdir(policies)
    with open(os.path.join(policies, "reload.lua"), "w") as f:
        f.write(POLICY)
    jobs = []
    for s in range(SOURCES):
        emu.create_table("src%d-production" % s, items=2)
    for i in range(JOBS):
        s = i % SOURCES
        jobs.append(("reload-job-%04d" % i, emu.create_backup("src%d-production" % s), s,
                     BASE + datetime.timedelta(hours=i)))
    pipe = emu.create_backup_pipeline(visibility_timeout=20, max_receive_count=1000)
    for j, b, s, st in jobs:
        pipe.publish(backup_arn=b, job_id=j, start_time=st.strftime("%Y-%m-%dT%H:%M:%SZ"))
    proxy.throttle("DynamoDB_20120810.RestoreTableFromBackup", count=15)
    proxy.creating(count=JOBS * 8)

    env = bed.env_for_rotator(emu, endpoint=proxy.endpoint, extra={
        "ROTATOR_WAIT_FIRST": "0.3", "ROTATOR_WAIT_MAX": "0.6", "ROTATOR_HEARTBEAT": "3",
        "ROTATOR_VISIBILITY_TIMEOUT": "20", "ROTATOR_RESTORES_PER_SECOND": "3"})
    log_path = os.path.join(tmp, "rotator.log")
    logf = open(log_path, "w")
    state = os.path.join(tmp, "state")
    proc = subprocess.Popen([ROTATOR, "--policies", policies, "--state-dir", state, "run",
                             "--queue-url", pipe.queue.url], env=env, stdout=logf, stderr=subprocess.STDOUT)
    log = Log(log_path)
    try:
        t.ok(log.wait_count("event=intake.started", 1, 20), "daemon started")
        log.wait_count("event=workflow.accepted", 10, 20)
        ok_reloads, stalled, broken_line = 0, 0, None
        for i in range(RELOADS):
            if i == RELOADS // 2:
                with open(os.path.join(policies, "zz-broken.lua"), "w") as f:
                    f.write('-- a typo\nrule { name = "x", source_pattern = "a"\n  replacement = "b" }\n')
                failed_before = log.count("event=reload.failed")
                proc.send_signal(signal.SIGHUP)
                log.wait_count("event=reload.failed", failed_before + 1, 20)
                broken_line = next((l for l in reversed(log.lines) if "event=reload.failed" in l), None)
                os.unlink(os.path.join(policies, "zz-broken.lua"))
            before = log.count("event=reload.ok")
            proc.send_signal(signal.SIGHUP)
            if log.wait_count("event=reload.ok", before + 1, 30):
                ok_reloads += 1
            else:
                stalled += 1
            time.sleep(0.05 + (i % 7) * 0.03)
        t.eq(ok_reloads, RELOADS, "%d reloads while workflows were moving" % RELOADS)
        t.ok(broken_line is not None and "zz-broken.lua:3:" in broken_line and "configuration not changed" in broken_line,
             "a broken policy is refused with file:line and the old one kept", broken_line)
        inflight = [int(m.group(1)) for m in (re.search(r"event=reload.quiesced.* workflows=(\d+)", l)
                                              for l in log.lines) if m]
        t.ok(sum(1 for n in inflight if n > 0) >= RELOADS // 2,
             "most reloads carried workflows over (%d of %d, max %d at once)" % (
                 sum(1 for n in inflight if n > 0), len(inflight), max(inflight or [0])))
        t.ok(proc.poll() is None, "the daemon kept running")

        def finished():
            d = pipe.queue.depth()
            return d["visible"] + d["in_flight"] == 0 and log.count("event=workflow.complete") >= JOBS
        end = time.monotonic() + 120
        while time.monotonic() < end and not finished():
            time.sleep(0.5)
        t.ok(finished(), "every job finished and the queue drained", pipe.queue.depth())
    finally:
        rc = stop_process(proc)
        logf.close()
    t.eq(rc, 0, "SIGTERM stops the daemon cleanly")
    log.poll()

    restores = collections.defaultdict(list)
    for r in proxy.requests("RestoreTableFromBackup"):
        restores[json.loads(r.request_body)["BackupArn"]].append(r.status if r.fault is None else r.fault)
    bad = {b: v for b, v in restores.items() if [x for x in v if x != "throttle"] != [200]}
    missing = [j for j, b, _, _ in jobs if b not in restores]
    t.ok(not bad and not missing, "one restore call per backup, answered 200 (throttled retries aside)",
         {"bad": bad, "missing": missing[:5]})
    t.ok(any(v.count("throttle") for v in restores.values()), "throttled restores were ridden out")
    per = collections.Counter()
    for l in log.lines:
        m = re.search(r"event=(restore\.started|restore\.already_started|ssm\.updated|ssm\.kept_newer|workflow\.complete)"
                      r".* workflow=(\S+)", l)
        if m:
            per[(m.group(1), m.group(2))] += 1
    wrong = []
    for j, _, _, _ in jobs:
        got = (per[("restore.started", j)], per[("restore.already_started", j)],
               per[("ssm.updated", j)] + per[("ssm.kept_newer", j)], per[("workflow.complete", j)])
        if got != (1, 0, 1, 1):
            wrong.append((j, got))
    t.ok(not wrong, "every workflow: one restore started, one SSM decision, completed once", wrong[:5])
    names = set(emu.table_names())
    want = {target(s, st) for _, _, s, st in jobs} | {"src%d-production" % s for s in range(SOURCES)}
    t.eq(sorted(names ^ want), [], "exactly one table per backup")
    newest = {}
    for _, _, s, st in jobs:
        newest[s] = max(newest.get(s, st), st)
    wrong = {s: emu.get_parameter("/rotator/reload/src%d" % s) for s, st in newest.items()
             if not (emu.get_parameter("/rotator/reload/src%d" % s) or "").endswith("/" + target(s, st))}
    t.ok(not wrong, "SSM parameters point at the newest restores", wrong)
    out = subprocess.run([ROTATOR, "--state-dir", state, "journal", "list", "--json"], capture_output=True, text=True)
    try:
        rows = json.loads(out.stdout)
    except ValueError:
        rows = []
    t.eq(collections.Counter(r.get("state") for r in rows), collections.Counter({"Complete": JOBS}),
         "the journal holds every workflow, Complete")
    durations = sorted(int(m.group(1)) for m in (re.search(r"event=reload.ok.*duration_ms=(\d+)", l)
                                                 for l in log.lines) if m)
    if durations:
        t.diag("reload duration_ms p50=%d max=%d; rearmed=%d; receive cancelled=%d" % (
            durations[len(durations) // 2], durations[-1], sum("workflow.rearmed" in l for l in log.lines),
            sum("intake.receive_cancelled" in l for l in log.lines)))
    if t.failed:
        t.diag("\n".join(log.lines[-80:]))
sys.exit(t.done())
PY
