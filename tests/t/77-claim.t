#!/usr/bin/env sh
# The queue claim across reloads and stops, on moto: notifications published right after
# each of RELOADS `kill -HUP` and right after a SIGTERM (then a restart). SQS hands a
# message to whatever long poll is open; one cancelled by the client stays open at the
# other end, and the message sits in flight with no reader for the visibility timeout (300
# s here, the default). Every notification must be received once (ApproximateReceiveCount
# 1, the dead-letter queue, at maxReceiveCount 1, stays empty), processed within seconds
# and restored once. Credentials come from a credential_process that counts its runs: the
# AWS client belongs to the process, so reloads do not resolve them again.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
export ROTATOR_ROOT="$root" ROTATOR="${ROTATOR:-$root/rotator}"
exec "$root/tests/bed/venv-python" - <<'PY'
import collections, datetime, json, os, re, signal, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.join(os.environ["ROTATOR_ROOT"], "tests/bed"))
import bed
from bed import stop_process, wait_until
from tap import Tap

RELOADS = 20
PER_RELOAD = 2
AFTER_STOP = 10
BACKUPS = 5
LATENCY_MAX = 8.0  # seconds from publish to workflow.accepted (moto on a loaded 2-core box)
t = Tap()
ROTATOR = os.environ["ROTATOR"]
BASE = datetime.datetime(2026, 11, 1, 0, 0, 0, tzinfo=datetime.timezone.utc)
POLICY = 'rule { name = "claim", source_pattern = "^(claim)-production$", replacement = "$1-staging" }\n'


class Log:
    """A daemon's log file, read as it grows; ts= of each line as epoch seconds."""

    def __init__(self, path):
        self.path, self.pos, self.lines = path, 0, []

    def poll(self):
        with open(self.path) as f:
            f.seek(self.pos)
            chunk = f.read()
        cut = chunk.rfind("\n") + 1
        self.pos += len(chunk[:cut].encode())
        self.lines += chunk[:cut].splitlines()
        return self.lines

    def count(self, needle):
        return sum(1 for l in self.poll() if needle in l)

    def wait_count(self, needle, n, timeout):
        return wait_until(lambda: self.count(needle) >= n, timeout, step=0.02)


def ts_of(line):
    m = re.search(r"ts=(\S+)", line)
    return datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp() if m else None


with bed.Emulator() as emu, tempfile.TemporaryDirectory() as tmp:
    policies = os.path.join(tmp, "policies")
    os.mkdir(policies)
    with open(os.path.join(policies, "claim.lua"), "w") as f:
        f.write(POLICY)
    emu.create_table("claim-production", items=2)
    backups = [emu.create_backup("claim-production") for _ in range(BACKUPS)]
    pipe = emu.create_backup_pipeline(visibility_timeout=300, max_receive_count=1)

    # Credentials through a credential_process that counts its runs.
    counter = os.path.join(tmp, "creds-runs")
    helper = os.path.join(tmp, "creds.sh")
    keys = emu.rotator_keys
    with open(helper, "w") as f:
        f.write("#!/bin/sh\necho run >> %s\nprintf '%%s\\n' '%s'\n" % (counter, json.dumps(
            {"Version": 1, "AccessKeyId": keys.access_key_id, "SecretAccessKey": keys.secret_access_key})))
    os.chmod(helper, 0o700)
    config = os.path.join(tmp, "aws-config")
    with open(config, "w") as f:
        f.write("[default]\ncredential_process = %s\n" % helper)
    env = bed.env_for_rotator(emu, extra={"ROTATOR_WAIT_FIRST": "0.2", "ROTATOR_WAIT_MAX": "0.4",
                                          "AWS_CONFIG_FILE": config,
                                          "AWS_SHARED_CREDENTIALS_FILE": os.path.join(tmp, "none")})
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]

    def runs():
        try:
            with open(counter) as f:
                return len(f.readlines())
        except FileNotFoundError:
            return 0

    published = {}  # job id -> wall time of the publish

    def publish(n):
        for _ in range(n):
            i = len(published)
            job = "claim-job-%03d" % i
            st = BASE + datetime.timedelta(hours=i)
            pipe.publish(backup_arn=backups[i % BACKUPS], job_id=job, start_time=st.strftime("%Y-%m-%dT%H:%M:%SZ"))
            published[job] = time.time()

    state = os.path.join(tmp, "state")
    cmd = [ROTATOR, "--policies", policies, "--state-dir", state, "run", "--queue-url", pipe.queue.url]
    logs = [os.path.join(tmp, "first.log"), os.path.join(tmp, "second.log")]
    logf = open(logs[0], "w")
    proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT)
    log = Log(logs[0])
    second = None
    try:
        t.ok(log.wait_count("event=intake.started", 1, 20), "daemon started")
        # the first receive is open once credentials were resolved
        t.ok(wait_until(lambda: runs() == 1, 10), "credentials resolved once at start")
        time.sleep(0.3)
        ok_reloads = 0
        for i in range(RELOADS):
            before = log.count("event=reload.ok")
            proc.send_signal(signal.SIGHUP)
            if log.wait_count("event=reload.ok", before + 1, 20):
                ok_reloads += 1
            publish(PER_RELOAD)
            time.sleep(0.3 + (i % 4) * 0.1)
        t.eq(ok_reloads, RELOADS, "%d reloads, %d notifications published right after each" % (RELOADS, PER_RELOAD))
        reloaded = list(published)
        t.ok(log.wait_count("event=workflow.complete", len(reloaded), 60),
             "every notification published after a reload completed (%d)" % len(reloaded))
        t.eq(runs(), 1, "credentials not resolved again by %d reloads (credential_process runs)" % RELOADS)

        # A stop with the long poll open, notifications right after it began, a restart.
        proc.send_signal(signal.SIGTERM)
        stop_began = time.time()
        publish(AFTER_STOP)
        try:
            rc = proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        stop_took = time.time() - stop_began
        t.eq(rc, 0, "SIGTERM stops the daemon cleanly (%.1f s)" % stop_took)
        t.ok(stop_took < 30, "the stop waited for the open poll, no longer than its wait time allows")
        d = pipe.queue.depth()
        t.ok(d["in_flight"] == 0, "after the stop no message is in flight without a reader", d)
        logf.close()
        logf = open(logs[1], "w")
        restart = time.time()
        proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT)
        second = Log(logs[1])

        def all_done():
            done = set()
            for path in logs:
                for l in Log(path).poll():
                    m = re.search(r"event=workflow.complete .*workflow=(\S+)", l)
                    if m:
                        done.add(m.group(1))
            return done >= set(published)
        t.ok(wait_until(all_done, 60), "every notification published after the stop completed")
        t.ok(wait_until(lambda: sum(pipe.queue.depth().values()) == 0, 20), "queue and dead-letter queue empty",
             pipe.queue.depth())
    finally:
        rc2 = stop_process(proc)
        logf.close()
    t.eq(rc2, 0, "the restarted daemon stops cleanly")

    lines = Log(logs[0]).poll() + Log(logs[1]).poll()
    counts = collections.Counter(m.group(1) for m in (re.search(r"event=message.received .*receive_count=(\S+)", l)
                                                        for l in lines) if m)
    t.eq(dict(counts), {"1": len(published)}, "every message received once, ApproximateReceiveCount 1")
    accepted, complete = {}, collections.Counter()
    for l in lines:
        m = re.search(r"event=workflow.accepted .*workflow=(\S+)", l)
        if m:
            accepted.setdefault(m.group(1), ts_of(l))
        m = re.search(r"event=workflow.complete .*workflow=(\S+)", l)
        if m:
            complete[m.group(1)] += 1
    late = {}
    for job, at in published.items():
        # after the stop the clock starts at the publish or the restart, whichever is later
        start = at if job in reloaded else max(at, restart if accepted.get(job, 0) > restart else at)
        if job not in accepted or accepted[job] - start > LATENCY_MAX:
            late[job] = None if job not in accepted else round(accepted[job] - start, 1)
    t.eq(late, {}, "every notification taken up within %.0f s of its publish" % LATENCY_MAX)
    t.eq({j: n for j, n in complete.items() if n != 1}, {}, "every workflow completed once")
    t.eq(sorted(complete), sorted(published), "every published job completed")
    cancelled = sum("intake.receive_cancelled" in l for l in lines)
    t.eq(cancelled, 0, "no long poll was cancelled")
    adopted = sum("event=intake.receive_adopted" in l and "result=pending" in l for l in lines)
    t.diag("receives handed over by reloads: %d of %d; stop took %.1f s" % (adopted, RELOADS, stop_took))
    if t.failed:
        t.diag("\n".join(lines[-120:]))
sys.exit(t.done())
PY
