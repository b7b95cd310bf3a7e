#!/usr/bin/env python3
"""Group commit in the journal, end to end in a real process: 100 tasks journal
transitions in a loop (store:record_wait, as workflow steps do) and print each one once
it returns; the process is SIGKILLed mid-flight. Every transition a task was told about
must be in the journal afterwards (durable before acknowledged), with the sequence number
the task got; and the records must have shared commits (far fewer commits than records),
which they do not without group commit (ROTATOR_JOURNAL_GROUP=0, checked too)."""
import os, signal, sqlite3, subprocess, sys, tempfile, time

ROOT = os.environ.get("ROTATOR_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("ROTATOR") or os.path.join(ROOT, "rotator")
sys.path.insert(0, os.path.join(ROOT, "tests", "bed"))
from tap import Tap  # noqa: E402

CHUNK = r"""
local store, task = require "daemon.store", require "engine.task"
local s = assert(store.open())
for i = 1, 100 do
  task.spawn(function()
    local d = { WorkflowId = "kill-" .. i, BackupJobId = "kill-" .. i, Status = "Running" }
    local k = 0
    while true do
      k = k + 1
      d.Step = k
      local seq = assert(s:record_wait(d, "Step " .. k))
      io.stdout:write(("acked %s %d %d %d %d\n"):format(d.WorkflowId, seq, k, s.commits, s.records))
      io.stdout:flush()
    end
  end)
end
task.park()
"""

t = Tap()


def run(state, group, acks_wanted):
    env = dict(os.environ, ROTATOR_STATE_DIR=state, ROTATOR_JOURNAL_GROUP=group, ROTATOR_LOG_LEVEL="warn")
    p = subprocess.Popen([BIN, "--policies", os.path.join(state, "none"), "eval", CHUNK], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    acks, deadline = [], time.monotonic() + 60
    while len(acks) < acks_wanted and time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        acks.append(line.split())
    p.send_signal(signal.SIGKILL)
    rest, err = p.communicate()
    acks += [l.split() for l in rest.splitlines() if l.startswith("acked ")]
    return acks, err


with tempfile.TemporaryDirectory() as tmp:
    state = os.path.join(tmp, "state")
    os.makedirs(os.path.join(state, "none"))
    acks, err = run(state, "1", 3000)
    t.ok(len(acks) >= 3000, "the tasks acknowledged transitions until the kill", err[-2000:])
    db = sqlite3.connect(os.path.join(state, "journal.db"))
    rows = {seq: (wf, step) for seq, wf, step in db.execute("SELECT seq, workflow, step FROM transitions")}
    missing = [a for a in acks if rows.get(int(a[2])) != (a[1], "Step " + a[3])]
    t.eq(missing[:5], [], "every acknowledged transition is in the journal after SIGKILL, with its sequence number")
    last = {}
    for a in acks:
        last[a[1]] = max(last.get(a[1], 0), int(a[3]))
    behind = [wf for wf, k in last.items()
              if db.execute("SELECT step FROM transitions WHERE workflow = ? ORDER BY seq DESC LIMIT 1",
                            (wf,)).fetchone()[0] not in
              ("Step %d" % k, "Step %d" % (k + 1))]
    t.eq(behind, [], "each workflow's latest transition is its last acknowledged step (or the one committed as it died)")
    db.close()
    commits, records = int(acks[-1][4]), int(acks[-1][5])
    t.ok(commits * 10 <= records, f"records shared commits: {commits} commits for {records} records")

    state2 = os.path.join(tmp, "state2")
    os.makedirs(os.path.join(state2, "none"))
    acks2, err2 = run(state2, "0", 300)
    t.ok(len(acks2) >= 300 and int(acks2[-1][4]) == int(acks2[-1][5]),
         "without group commit every record is its own commit (so the check above can fail)",
         acks2[-1] if acks2 else err2[-2000:])

sys.exit(t.done())
