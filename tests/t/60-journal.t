#!/usr/bin/env python3
"""The durable journal, with real processes: a writer SIGKILLed mid-stream loses no
acknowledged record and leaves nothing corrupt; compaction keeps the journal bounded;
`rotator journal` reads a journal with no daemon and beside a running writer."""
import json, os, random, shutil, signal, sqlite3, subprocess, sys, tempfile, time

ROOT = os.environ.get("ROTATOR_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("ROTATOR") or os.path.join(ROOT, "rotator")
sys.path.insert(0, os.path.join(ROOT, "tests", "bed"))
from tap import Tap  # noqa: E402

t = Tap()
ENV = dict(os.environ, ROTATOR_LOG_LEVEL="error")

# Appends records n = START, START+1, ... (ten per workflow, the tenth finishes it) and
# prints "acked N" only after store:record returned, i.e. after the commit was fsync'd.
WRITER = r'''
local s = assert(require("daemon.store").open())
for n = START, START + 200000 do
  local job = "job-" .. (n // 10)
  local doc = { BackupJobId = job, SourceTableName = "orders-production", n = n,
                Status = (n % 10 == 9) and "Complete" or nil }
  assert(s:record(doc, "step-" .. n))
  io.stdout:write("acked ", n, "\n")
  io.stdout:flush()
  if PACE > 0 then require("engine.task").sleep(PACE) end
end
'''


def rotator(*args, state=None, timeout=60):
    pre = ["--state-dir", state] if state else []
    return subprocess.run([BIN, *pre, *args], capture_output=True, text=True, timeout=timeout, env=ENV)


def writer(state, start, pace=0.0):
    chunk = WRITER.replace("START", str(start)).replace("PACE", repr(pace))
    return subprocess.Popen([BIN, "--state-dir", state, "eval", chunk], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def kill(p):
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
    out, err = p.communicate(timeout=30)
    return out, err


def acked(out):
    """Record numbers the writer acknowledged (a torn last line is not an ack)."""
    got = []
    for line in out.split("\n")[:-1]:
        if line.startswith("acked "):
            got.append(int(line[6:]))
    return got


def steps(db):
    c = sqlite3.connect(db)
    try:
        ok = c.execute("PRAGMA integrity_check").fetchone()[0]
        rows = {r[0] for r in c.execute("SELECT step FROM transitions")}
        return ok, rows
    finally:
        c.close()


def last_frame(path):
    """Offset of the last frame of the WAL's current generation (salts match the header)."""
    with open(path, "rb") as f:
        data = f.read()
    page = int.from_bytes(data[8:12], "big")
    salts, off, last = data[16:24], 32, None
    while off + 24 + page <= len(data) and data[off + 8:off + 16] == salts:
        last, off = off, off + 24 + page
    return last, page


# --- SIGKILL mid-stream, several times ---
state = tempfile.mkdtemp(prefix="rotator-journal-")
db = os.path.join(state, "journal.db")
rng = random.Random(60)
next_n, all_acked = 0, []
for round_ in range(1, 6):
    p = writer(state, next_n)
    time.sleep(0.3 + rng.random() * 0.5)
    out, err = kill(p)
    got = acked(out)
    all_acked += got
    t.ok(p.returncode == -signal.SIGKILL and got, f"kill {round_}: writer killed after {len(got)} acked appends",
         err[-2000:])
    r = rotator("journal", "list", "--json", "--limit", "3", state=state)
    t.ok(r.returncode == 0 and json.loads(r.stdout), f"kill {round_}: the journal opens and lists", r.stderr)
    ok, present = steps(db)
    missing = [n for n in all_acked if f"step-{n}" not in present]
    t.ok(ok == "ok" and not missing,
         f"kill {round_}: integrity ok and every acknowledged record present ({len(all_acked)} so far)",
         f"integrity={ok} missing={missing[:10]}")
    next_n = max(all_acked) + 1 if all_acked else next_n

r = rotator("journal", "unfinished", "--json", state=state)
unf = json.loads(r.stdout) if r.returncode == 0 else None
t.ok(unf is not None and all(not w["finished"] for w in unf), "unfinished lists only live workflows", r.stderr)

# --- a torn last WAL frame (a write cut short by a crash) is detected and ignored ---
def backfilled(shm):
    """Frames the last checkpoint already copied into the database file (nBackfill in the
    wal-index's checkpoint info, after the two 48-byte header copies; native byte order)."""
    try:
        with open(shm, "rb") as f:
            data = f.read(100)
    except FileNotFoundError:
        return 0
    return int.from_bytes(data[96:100], sys.byteorder) if len(data) >= 100 else 0


# A crash can tear only a frame being written, never one a checkpoint has already copied
# into the database (the journal checkpoints every ~64 pages): a kill that lands just after
# a checkpoint leaves no frame a crash could tear, so the writer runs again.
for attempt in range(1, 11):
    torn = tempfile.mkdtemp(prefix="rotator-torn-")
    p = writer(torn, 0)
    time.sleep(0.5)
    out, _ = kill(p)
    got = acked(out)
    wal = os.path.join(torn, "journal.db-wal")
    size = os.path.getsize(wal) if os.path.exists(wal) else 0
    frame, page = last_frame(wal) if size > 32 else (None, 0)
    if frame is None or (frame - 32) // (24 + page) + 1 > backfilled(wal[:-4] + "-shm"):
        break
t.ok(size > 4096, f"the killed writer left a WAL to tear ({size} bytes, attempt {attempt})")
t.ok(frame is not None, f"found the WAL's last frame not yet checkpointed (offset {frame})")
with open(wal, "r+b") as f:  # tear it: the page's second half is garbage, as after a torn write
    f.seek(frame + 24 + page // 2)
    f.write(random.Random(6).randbytes(page // 2))
r = rotator("journal", "list", "--json", state=torn)
t.ok(r.returncode == 0, "the journal opens after a torn write", r.stderr)
ok, present = steps(os.path.join(torn, "journal.db"))
ns = sorted(int(x[5:]) for x in present)
t.ok(ok == "ok" and ns == list(range(len(ns))) and len(got) - 1 <= len(ns) <= len(got) + 1,
     f"the torn last commit is detected and dropped, nothing else ({len(got)} acked before the tear, {len(ns)} readable)",
     f"integrity={ok} first gaps={[n for i, n in enumerate(ns) if n != i][:5]}")

# --- compaction keeps the journal bounded ---
FILL = r'''
local store = require "daemon.store"
local s = assert(store.open(nil, { keep_finished = 100, retain = 0 }))
local lfs = function() local f = io.open(s:path(), "rb"); local n = f:seek("end"); f:close(); return n end
local out = {}
local t0 = require("clock").mono()
for w = OFFSET, OFFSET + 999 do
  for k = 1, 10 do
    assert(s:record({ BackupJobId = "fill-" .. w, k = k, pad = ("x"):rep(200),
                      Status = k == 10 and "Complete" or nil }, "step-" .. k))
  end
end
out.ms_per_append = (require("clock").mono() - t0) / 10000 * 1000
out.workflows_before, out.transitions_before = s:counts()
out.bytes_before = lfs()
assert(s:compact())
out.workflows_after, out.transitions_after = s:counts()
out.bytes_after = lfs()
io.stdout:write(require("json").encode(out), "\n")
'''
cstate = tempfile.mkdtemp(prefix="rotator-compact-")
sizes = []
for offset in (0, 1000, 2000):
    r = rotator("eval", FILL.replace("OFFSET", str(offset)), state=cstate, timeout=300)
    res = json.loads(r.stdout.splitlines()[0]) if r.returncode == 0 and r.stdout else {}
    if not t.ok(res, f"fill {offset // 1000 + 1}: 10,000 transitions across 1,000 workflows, then compact", r.stderr[-2000:]):
        break
    t.note(f"compaction round {offset // 1000 + 1}: {res}")
    t.ok(res["transitions_after"] <= 100 * 10 and res["workflows_after"] <= 100,
         f"round {offset // 1000 + 1}: bounded to the 100 kept histories "
         f"({res['workflows_after']} workflows, {res['transitions_after']} transitions)")
    sizes.append(res["bytes_after"])
if len(sizes) == 3:
    t.ok(sizes[2] <= sizes[0] * 1.25 + 65536 and sizes[2] < 2 * 1024 * 1024,
         f"the file does not grow across rounds ({sizes} bytes)")
wal = os.path.join(cstate, "journal.db-wal")
t.ok(not os.path.exists(wal) or os.path.getsize(wal) < 1024 * 1024, "the WAL is checkpointed")

# --- rotator journal with no daemon, and beside a running writer ---
r = rotator("journal", "show", "job-0", state=state)
t.ok(r.returncode == 0 and "step-0" in r.stdout and "latest document:" in r.stdout,
     "show prints a workflow's history with no daemon running", r.stderr)
r = rotator("journal", "show", "job-0", "--json", state=state)
doc = json.loads(r.stdout) if r.returncode == 0 else {}
t.ok(doc.get("id") == "job-0" and doc.get("history") and doc["history"][0]["step"] == "step-0",
     "show --json has the history", r.stderr)
r = rotator("journal", "show", "no-such-job", state=state)
t.ok(r.returncode == 1 and "no-such-job" in r.stderr, "show of an unknown id exits 1 naming it")
empty = tempfile.mkdtemp(prefix="rotator-nojournal-")
r = rotator("journal", state=os.path.join(empty, "absent"))
t.ok(r.returncode == 1 and "absent/journal.db" in r.stderr and "--state-dir" in r.stderr,
     "a missing journal names the path and the flag", r.stderr)
t.ok(not os.path.exists(os.path.join(empty, "absent")), "reading never creates a state directory")
r = rotator("journal", "--help")
t.ok(r.returncode == 0 and "usage: rotator journal" in r.stdout and "Examples:" in r.stdout, "journal --help has an example")

live = tempfile.mkdtemp(prefix="rotator-live-")
p = writer(live, 0, pace=0.02)
try:
    os.set_blocking(p.stdout.fileno(), True)
    first = p.stdout.readline()
    t.ok(first.startswith("acked "), "a writer holds the journal open and appends", first)
    time.sleep(0.3)
    r1 = rotator("journal", "list", "--json", state=live)
    time.sleep(0.3)
    r2 = rotator("journal", "show", "job-0", "--json", state=live)
    l1 = json.loads(r1.stdout) if r1.returncode == 0 else None
    s2 = json.loads(r2.stdout) if r2.returncode == 0 else None
    t.ok(l1 and s2 and s2["history"], "list and show work while the writer runs (WAL readers)", r1.stderr + r2.stderr)
    r3 = rotator("journal", "show", "job-0", "--json", state=live)
    s3 = json.loads(r3.stdout) if r3.returncode == 0 else None
    t.ok(s3 and len(s3["history"]) >= len(s2["history"]), "readers see the writer's later commits")
    alive = p.poll() is None
    t.ok(alive, "the writer kept running while being read")
finally:
    out, _ = kill(p)
t.ok(len(acked(first + out)) > 10, "the writer was not blocked by readers")

for d in (state, torn, cstate, empty, live):
    shutil.rmtree(d, ignore_errors=True)
sys.exit(t.done())
