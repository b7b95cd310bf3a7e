#!/usr/bin/env sh
# Disk and journal faults, on moto behind the fault proxy, with the LD_PRELOAD disk-fault
# shim (tests/faults/diskfault.c) failing writes to the journal while a control file
# exists: the disk fills while a workflow is between ACTIVE and its "After Active" record,
# later fsync fails (EIO) and the state directory turns read-only (EROFS). Each time the
# daemon acknowledges nothing it could not journal (the SQS message stays, SSM does not
# move), receives no new message, says so once in the log and in `rotator status`, and
# resumes by itself when writes succeed, with every table restored and tagged once. As
# root, where mount works, a 1 MiB tmpfs also fills up for real. The test says which ran.
# Then damaged journals at start (garbage header, corrupt pages, truncated, a WAL of
# garbage or of another version) get one message naming the file and the next step;
# `rotator journal check` finds them, `rotator journal quarantine` refuses beside a
# running daemon, moves them aside otherwise, and a fresh start carries the work on.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
export ROTATOR_ROOT="$root" ROTATOR="${ROTATOR:-$root/rotator}" ROTATOR_BUILD="${ROTATOR_BUILD:-$root/build}"
exec "$root/tests/bed/venv-python" - <<'PY'
import collections, datetime, glob, json, os, random, re, shutil, signal, struct, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.join(os.environ["ROTATOR_ROOT"], "tests/bed"))
import bed
from bed import stop_process, wait_until
from faultproxy import FaultProxy
from tap import Tap

t = Tap()
ROTATOR = os.environ["ROTATOR"]
SHIM = os.path.join(os.environ["ROTATOR_BUILD"], "tests", "libdiskfault.so")
BASE = datetime.datetime(2026, 11, 20, 3, 0, 0, tzinfo=datetime.timezone.utc)
PARAM = "/rotator/disk"
POLICY = ('rule { name = "disk", source_pattern = "^(disk)-production$", replacement = "$1-staging", '
          'ssm_parameter = "%s" }\n' % PARAM)
JOBS = 6

if not os.path.exists(SHIM):
    t.ok(False, "the disk-fault shim is built (%s): run make all" % SHIM)
    sys.exit(t.done())


def start_of(i):
    return BASE + datetime.timedelta(hours=i)


def target(i):
    return "disk-staging-" + start_of(i).strftime("%Y%m%d-%H-%M-%S")


def rotator(state, *args, env=None, timeout=60):
    return subprocess.run([ROTATOR, "--state-dir", state, *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


with bed.Emulator() as emu, FaultProxy(emu.endpoint) as proxy, tempfile.TemporaryDirectory() as tmp:
    policies = os.path.join(tmp, "policies")
    os.mkdir(policies)
    with open(os.path.join(policies, "disk.lua"), "w") as f:
        f.write(POLICY)
    emu.create_table("disk-production", items=2)
    backups = [emu.create_backup("disk-production") for _ in range(JOBS)]
    pipe = emu.create_backup_pipeline(visibility_timeout=4, max_receive_count=50)
    state = os.path.join(tmp, "state")
    control, hits = os.path.join(tmp, "disk-fault"), os.path.join(tmp, "fault-hits")
    asan = os.environ.get("ASAN_OPTIONS", "")
    env = bed.env_for_rotator(emu, endpoint=proxy.endpoint, extra={
        "ROTATOR_STATE_DIR": state, "ROTATOR_WAIT_FIRST": "0.2", "ROTATOR_WAIT_MAX": "0.4",
        "ROTATOR_JOURNAL_RETRY": "0.3", "ROTATOR_RECEIVE_WAIT": "1",
        "ROTATOR_VISIBILITY_TIMEOUT": "4", "ROTATOR_HEARTBEAT": "1",
        "LD_PRELOAD": SHIM, "DISKFAULT_PATTERN": state + "/journal.db*",
        "DISKFAULT_CONTROL": control, "DISKFAULT_HITS": hits,
        # the shim comes before the sanitizer runtime in an ASan build
        "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"})
    plain = {k: v for k, v in env.items() if not k.startswith("DISKFAULT_") and k != "LD_PRELOAD"}
    cmd = [ROTATOR, "--policies", policies, "--state-dir", state, "run", "--queue-url", pipe.queue.url]
    log_path = os.path.join(tmp, "rotator.log")

    def text():
        with open(log_path) as f:
            return f.read()

    def count(needle):
        return text().count(needle)

    def publish(i):
        pipe.publish(backup_arn=backups[i], job_id="disk-job-%d" % i,
                     start_time=start_of(i).strftime("%Y-%m-%dT%H:%M:%SZ"))

    def fault(what):
        with open(control, "w") as f:
            f.write(what + "\n")

    def status():
        r = rotator(state, "status", "--json", env=plain)
        try:
            return json.loads(r.stdout)
        except ValueError:
            return {"error": r.stdout + r.stderr}

    def tags_by_table():
        out = collections.Counter()
        for r in proxy.requests("dynamodb:TagResource"):
            out[json.loads(r.request_body)["ResourceArn"].rsplit("/", 1)[-1]] += 1
        return out

    def restores_by_backup():
        out = collections.Counter()
        for r in proxy.requests("dynamodb:RestoreTableFromBackup"):
            if r.status == 200:
                out[json.loads(r.request_body)["BackupArn"]] += 1
        return out

    def hit_lines():
        try:
            with open(hits) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def steps_of(i):
        r = rotator(state, "journal", "show", "disk-job-%d" % i, "--json", env=plain)
        try:
            return [h["step"] for h in json.loads(r.stdout)["history"]]
        except (ValueError, KeyError):
            return ["unreadable: " + r.stderr]

    def completes():
        return count("event=workflow.complete")

    logf = open(log_path, "w")
    proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT)
    try:
        t.ok(wait_until(lambda: "event=intake.started" in text(), 20), "daemon started with the shim loaded")
        publish(0)
        t.ok(wait_until(lambda: completes() >= 1, 40), "a first job completes on a healthy disk")

        # --- the disk fills between ACTIVE and the "After Active" record ---
        proxy.slow("dynamodb:TagResource", seconds=2.0, count=1)
        publish(1)
        t.ok(wait_until(lambda: re.search(r"event=restore.complete .*disk-job-1", text()), 40),
             "job 1's table is ACTIVE")
        fault("ENOSPC")
        t.ok(wait_until(lambda: "event=journal.write_failed" in text(), 20), "the failed append is logged")
        failed = [l for l in text().splitlines() if "event=journal.write_failed" in l]
        t.ok(failed and 'step="After Active"' in failed[0] and "kind=disk_full" in failed[0]
             and "next=" in failed[0], "it names the step, the kind (disk_full) and the next step", failed[:1])
        time.sleep(1.5)  # the open long poll (1 s) ends; no new one opens
        publish(2)
        time.sleep(4)
        depth = pipe.queue.depth()
        t.ok(depth["visible"] == 1, "no new message is received while the journal cannot write", depth)
        t.eq(count("event=intake.paused"), 1, "the intake says once that it paused")
        t.eq(count("event=journal.write_failed"), 1, "the failure is logged once, not per retry")
        tries = len([h for h in hit_lines() if "ENOSPC" in h])
        t.ok(tries >= 3, "the append was retried in place meanwhile (%d writes refused by the shim)" % tries)
        st = status()
        j = st.get("journal") or {}
        t.ok(j.get("state") == "failing" and j.get("kind") == "disk_full" and j.get("repeats", 0) >= 1,
             "rotator status: journal failing, disk_full, with a count of repeats", j)
        errs = st.get("last_errors") or []
        t.ok(errs and errs[0].get("journal", "").endswith("/journal.db") and errs[0].get("next"),
             "rotator status: last_errors leads with the journal and its next step", errs[:1])
        first_table = emu.describe_table(target(0))["TableArn"]
        t.eq(emu.get_parameter(PARAM), first_table, "SSM has not moved to the table it could not journal")
        t.eq(tags_by_table()[target(1)], 1, "job 1's table was tagged once before the fault")
        t.ok(depth["in_flight"] >= 1, "job 1's message is still held, not deleted", depth)

        os.remove(control)
        t.ok(wait_until(lambda: completes() >= 3, 60), "the disk is free again: job 1 and job 2 complete by themselves")
        t.eq(count("event=journal.recovered"), 1, "journal.recovered logged once")
        t.eq(count("event=intake.resumed"), 1, "intake.resumed logged once")
        t.ok(steps_of(1).count("After Active") == 1, "job 1's After Active is journaled once", steps_of(1))
        t.eq((status().get("journal") or {}).get("state"), "ok", "rotator status: journal ok again")

        # --- fsync fails (EIO) while a new job is accepted ---
        fault("EIO fsync")
        publish(3)
        t.ok(wait_until(lambda: count("event=journal.write_failed") >= 2, 30), "a failing fsync is seen as a failed append")
        time.sleep(2)
        t.eq(restores_by_backup()[backups[3]], 0, "nothing is restored for a job whose acceptance is not journaled")
        os.remove(control)
        t.ok(wait_until(lambda: completes() >= 4, 60), "fsync works again: the job completes")

        # --- the state directory turns read-only ---
        if os.geteuid() == 0:
            t.diag("read-only state directory: EROFS from the shim (root ignores chmod)")
        else:
            t.diag("read-only state directory: EROFS from the shim (chmod does not affect open descriptors)")
        fault("EROFS")
        publish(4)
        t.ok(wait_until(lambda: count("event=journal.write_failed") >= 3, 30), "a read-only journal is a failed append")
        os.remove(control)
        t.ok(wait_until(lambda: completes() >= 5, 60), "writable again: the job completes")
        t.ok(wait_until(lambda: sum(pipe.queue.depth().values()) == 0, 20), "queue and dead-letter queue empty",
             pipe.queue.depth())

        r = rotator(state, "journal", "quarantine", env=plain)
        t.ok(r.returncode == 1 and "refusing" in r.stderr and os.path.exists(os.path.join(state, "journal.db")),
             "journal quarantine refuses while the daemon holds the state directory", r.stderr)
    finally:
        rc = stop_process(proc)
    t.eq(rc, 0, "the daemon stops cleanly")

    tags = tags_by_table()
    t.eq({n: tags[n] for n in (target(i) for i in range(5))}, {target(i): 1 for i in range(5)},
         "every table tagged exactly once (TagResource calls)")
    moto_tags = emu.admin_client("dynamodb").list_tags_of_resource(
        ResourceArn=emu.describe_table(target(1))["TableArn"])["Tags"]
    t.ok({"Key": "rotator:backup-job", "Value": "disk-job-1"} in moto_tags, "job 1's table carries its tags", moto_tags)
    restores = restores_by_backup()
    t.eq([restores[backups[i]] for i in range(5)], [1] * 5, "exactly one successful restore per backup")
    t.eq(emu.get_parameter(PARAM), emu.describe_table(target(4))["TableArn"], "SSM points at the newest copy")
    r = rotator(state, "journal", "check", env=plain)
    t.ok(r.returncode == 0 and "ok" in r.stdout, "journal check: the journal came through sound", r.stdout + r.stderr)
    t.diag("daemon faults via the LD_PRELOAD shim (%d failures injected)" % len(hit_lines()))

    # --- damaged journals at start ---
    good = os.path.join(tmp, "good")
    shutil.copytree(state, good, ignore=shutil.ignore_patterns("*.sock", "rotator.lock"))
    size = os.path.getsize(os.path.join(good, "journal.db"))
    rng = random.Random(62)

    def variant(name, fn):
        d = os.path.join(tmp, name)
        shutil.copytree(good, d)
        fn(os.path.join(d, "journal.db"))
        return d

    def garbage_header(db):
        with open(db, "r+b") as f:
            f.write(b"this is not an SQLite file " * 4)

    def corrupt_pages(db):
        page = struct.unpack(">H", open(db, "rb").read()[16:18])[0]
        with open(db, "r+b") as f:
            for p in range(2, size // page):
                f.seek(p * page)
                f.write(rng.randbytes(page))

    def truncated(db):
        with open(db, "r+b") as f:
            f.truncate(size // 2)

    def garbage_wal(db):
        with open(db + "-wal", "wb") as f:
            f.write(rng.randbytes(8192))

    def other_version_wal(db):
        # a well-formed WAL header (valid checksum) carrying another format version
        hdr = struct.pack(">IIIIII", 0x377f0683, 3007001, 4096, 1, 0x1234, 0x5678)
        s0 = s1 = 0
        for i in range(0, 24, 8):
            a, b = struct.unpack(">II", hdr[i:i + 8])
            s0 = (s0 + a + s1) & 0xffffffff
            s1 = (s1 + b + s0) & 0xffffffff
        with open(db + "-wal", "wb") as f:
            f.write(hdr + struct.pack(">II", s0, s1) + rng.randbytes(4096 + 24))

    cases = [("garbage header", garbage_header), ("corrupt pages", corrupt_pages), ("truncated", truncated),
             ("garbage WAL", garbage_wal), ("WAL of another version", other_version_wal)]
    dirs = {}
    for name, fn in cases:
        d = dirs[name] = variant(name.replace(" ", "-"), fn)
        r = subprocess.run([ROTATOR, "--policies", policies, "--state-dir", d, "run", "--queue-url", pipe.queue.url],
                           capture_output=True, text=True, timeout=60, env=plain)
        out = (r.stdout + r.stderr).strip()
        lines = out.splitlines()
        t.ok(r.returncode != 0 and len(lines) == 1 and "journal.db" in out and "rotator journal check" in out
             and "rotator journal quarantine" in out and "traceback" not in out.lower() and "daemon.ready" not in out,
             "%s: the daemon refuses to start with one message naming the file and the next step" % name, out[-800:])
        r = rotator(d, "journal", "check", env=plain)
        t.ok(r.returncode == 1 and "DAMAGED" in r.stdout, "%s: journal check reports the damage (exit 1)" % name,
             r.stdout + r.stderr)

    # --- quarantine, then a fresh start re-derives the work from the queue ---
    d = dirs["garbage header"]
    r = rotator(d, "journal", "quarantine", env=plain)
    moved = sorted(os.path.basename(p) for p in glob.glob(os.path.join(d, "journal-quarantined-*")))
    t.ok(r.returncode == 0 and moved and not os.path.exists(os.path.join(d, "journal.db")),
         "quarantine moves the damaged journal aside: %s" % moved, r.stdout + r.stderr)
    # A job whose workflow was under way (restored, not finished) when its journal was lost:
    # the message comes back, the fresh journal knows nothing, the table-exists check carries it.
    env2 = dict(env, ROTATOR_STATE_DIR=d, DISKFAULT_PATTERN=d + "/journal.db*")
    logf.write("### second daemon, on the quarantined state directory\n")
    logf.flush()
    proxy.slow("dynamodb:TagResource", seconds=2.0, count=1)
    publish(5)
    cmd2 = [ROTATOR, "--policies", policies, "--state-dir", d, "run", "--queue-url", pipe.queue.url]
    proc = subprocess.Popen(cmd2, env=env2, stdout=logf, stderr=subprocess.STDOUT)
    try:
        t.ok(wait_until(lambda: re.search(r"event=restore.complete .*disk-job-5", text()), 40),
             "after quarantine the daemon starts fresh and takes job 5 up")
        fault("ENOSPC")
        t.ok(wait_until(lambda: count("event=journal.write_failed") >= 4, 20), "its After Active cannot be journaled")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    os.remove(control)
    garbage_header(os.path.join(d, "journal.db"))
    r = rotator(d, "journal", "quarantine", env=plain)
    t.ok(r.returncode == 0, "the lost journal is quarantined again", r.stdout + r.stderr)
    proc = subprocess.Popen(cmd2, env=env2, stdout=logf, stderr=subprocess.STDOUT)
    try:
        t.ok(wait_until(lambda: completes() >= 6, 60), "the redelivered message completes job 5 on a fresh journal")
        t.ok(wait_until(lambda: sum(pipe.queue.depth().values()) == 0, 20), "queue empty again", pipe.queue.depth())
    finally:
        rc = stop_process(proc)
    logf.close()
    t.eq(rc, 0, "the fresh daemon stops cleanly")
    t.eq(restores_by_backup()[backups[5]], 1, "still one successful restore for job 5 (the table-exists check)")
    t.ok("event=restore.already_started" in text(), "the existing table was recognised, not restored again")
    t.eq(emu.get_parameter(PARAM), emu.describe_table(target(5))["TableArn"], "SSM points at job 5's table")
    if t.failed:
        t.diag(text()[-8000:])

    # --- a real full file system: a 1 MiB tmpfs, when this runs as root and mount works ---
    mnt = os.path.join(tmp, "tmpfs")
    os.mkdir(mnt)
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt],
                                                   capture_output=True).returncode == 0
    if not mounted:
        t.diag("tmpfs: not used (not root, or mount refused): disk full is covered by the shim above")
    else:
        t.diag("tmpfs: a 1 MiB tmpfs, filled by the journal itself")
        FILL = r'''
local s = assert(require("daemon.store").open())
local pad, n, kind = string.rep("x", 4000), 0, nil
while true do
  local ok, _, k = s:record({ BackupJobId = "fill-" .. (n + 1), Pad = pad }, "Accepted")
  if not ok then kind = k break end
  n = n + 1
end
io.stdout:write("full ", n, " ", tostring(kind), "\n") io.stdout:flush()
io.stdin:read("l") -- the test frees space
assert(s:record_wait({ BackupJobId = "after-full" }, "Accepted"))
io.stdout:write("recovered ", s:health_report().state, "\n")
'''
        try:
            with open(os.path.join(mnt, "ballast"), "wb") as f:
                f.write(b"\0" * 256 * 1024)
            sd = os.path.join(mnt, "state")
            p = subprocess.Popen([ROTATOR, "--state-dir", sd, "eval", FILL], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=plain)
            first = p.stdout.readline().split()
            t.ok(len(first) == 3 and first[0] == "full" and first[2] == "disk_full",
                 "tmpfs: appends fail with disk_full once the file system is full (%s)" % " ".join(first))
            os.remove(os.path.join(mnt, "ballast"))
            out, err = p.communicate("\n", timeout=60)
            t.ok(p.returncode == 0 and "recovered ok" in out, "tmpfs: space freed, the waiting append goes through",
                 out + err[-1500:])
            t.eq(err.count("event=journal.write_failed"), 1, "tmpfs: the failure logged once")
            r = rotator(sd, "journal", "list", "--json", env=plain)
            rows = json.loads(r.stdout) if r.returncode == 0 else []
            t.eq(len(rows), int(first[1]) + 1 if len(first) == 3 else -1,
                 "tmpfs: every acknowledged append is in the journal, and the one after")
            r = rotator(sd, "journal", "check", env=plain)
            t.ok(r.returncode == 0, "tmpfs: the journal is sound after the disk was full", r.stdout + r.stderr)
        finally:
            subprocess.run(["umount", mnt], capture_output=True)
sys.exit(t.done())
PY
