"""Scheduled restore tests on the bed (tests/t/93-schedule.t): moto with IAM checked and
the AWS Backup control plane. A rule with schedule = "rate(1 minute)" restores the newest
recovery point (an AWS Backup one first, then a DynamoDB backup made in between),
validates it (PutRestoreValidationResult for the restore job), and deletes the copy
keep_for after its workflow ended. A SIGKILL right after a firing started and an
immediate restart neither repeats the firing nor loses it (its workflow resumes from the
journal, its copy is still deleted); a daemon down across two slots fires once at start,
for the latest of them."""
import datetime, json, os, re, signal, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.join(os.environ["ROTATOR_ROOT"], "tests/bed"))
import bed
from bed import stop_process, wait_until
from tap import Tap

t = Tap()
ROTATOR = os.environ["ROTATOR"]
KEEP_FOR = 15
POLICY = """
rule {
  name = "restore-test",
  source_pattern = "-production$",
  replacement = "-staging-rt",
  schedule = "rate(1 minute)",
  pick = "latest",
  keep_for = "%(keep)ds",
  iam_role_arn = "%(role)s",
  validation = {
    item_count = true,
    report_to_backup = true,
    check = function(ctx)
      local r = ctx.call("dynamodb", "Scan", { TableName = ctx.table_name, Select = "COUNT" })
      return r ~= nil and r.Count == 3, "expected the 3 items of the source"
    end,
  },
}
"""


def copy_name(slot):
    return "orders-staging-rt-" + slot.strftime("%Y%m%d-%H-%M-%S")


def events(path, name):
    """The key=value log lines of one event, as dicts."""
    out = []
    with open(path) as f:
        for line in f:
            if f"event={name} " in line or line.rstrip().endswith(f"event={name}"):
                out.append(dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line)))
    return out


def fired_slots(*paths):
    return [e["slot"].strip('"') for p in paths for e in events(p, "schedule.fired")]


def copies(emu):
    return sorted(n for n in emu.table_names() if n.startswith("orders-staging-rt-"))


def start(env, policies, path):
    out = open(path, "a")
    proc = subprocess.Popen([ROTATOR, "--policies", policies, "run"], env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc, out


def slot_of(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


with bed.Emulator() as emu, tempfile.TemporaryDirectory() as tmp:
    emu.backup_timing(pending=0.2, running=0.5)
    policies = os.path.join(tmp, "policies")
    os.mkdir(policies)
    with open(os.path.join(policies, "restore-test.lua"), "w") as f:
        f.write(POLICY % {"keep": KEEP_FOR, "role": emu.restore_role_arn})
    state = os.path.join(tmp, "state")
    env = bed.env_for_rotator(emu, extra={"ROTATOR_STATE_DIR": state})
    emu.create_table("orders-production", items=3)
    emu.create_table("orders-staging-old", items=0)   # not matched: not a source
    old_backup = emu.create_backup("orders-production")
    time.sleep(1.1)
    rp = emu.start_backup_job("orders-production")["recovery_point_arn"]   # newest: AWS Backup-managed

    check = subprocess.run([ROTATOR, "--policies", policies, "check"], env=env, capture_output=True, text=True)
    t.eq(check.returncode, 0, "rotator check accepts the schedule fields: " + check.stdout + check.stderr)

    # --- 1. first start: armed, fires at the next minute, killed right after the restore began
    log1, log2, log3 = (os.path.join(tmp, n) for n in ("run1.log", "run2.log", "run3.log"))
    proc, out = start(env, policies, log1)
    wait_until(lambda: events(log1, "schedule.armed"), 20)
    st = subprocess.run([ROTATOR, "status", "--json"], env=env, capture_output=True, text=True, timeout=20)
    sched = json.loads(st.stdout or "{}").get("schedules", {}).get("restore-test", {})
    t.ok(sched.get("schedule") == "rate(1 minute)" and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:00Z$", sched.get("next") or ""),
         "rotator status shows the schedule and its next firing: %r" % sched)
    next1 = sched.get("next")
    mets = json.loads(st.stdout or "{}").get("metrics") or {}
    nxt = [x.get("value") for x in (mets.get("rotator_schedule_next_firing_timestamp_seconds") or {}).get("series") or []
           if (x.get("labels") or {}).get("rule") == "restore-test"]
    t.ok(nxt and next1 and datetime.datetime.fromtimestamp(nxt[0], datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") == next1,
         "the metrics carry the same next firing: %r" % nxt)
    started = wait_until(lambda: events(log1, "restore.started"), 90)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    out.close()
    t.ok(started, "the first firing started a restore")
    slots = fired_slots(log1)
    t.eq(slots, [next1], "fired once, at the slot status announced")
    first = slot_of(next1)
    t.ok(started and "restore_job" in started[0], "the newest point is AWS Backup's: StartRestoreJob (%r)" % started[:1])

    # --- 2. restart at once: the workflow resumes, the firing is not repeated, the copy is deleted on time
    proc, out = start(env, policies, log2)
    name1 = copy_name(first)
    active = wait_until(lambda: (emu.describe_table(name1) or {}).get("TableStatus") == "ACTIVE", 60)
    t.ok(active, "the copy of the first firing is restored: " + name1)
    ready = wait_until(lambda: events(log2, "schedule.copy_ready"), 60)
    t.ok(ready and ready[0].get("status") == "Complete", "its workflow completed after the restart: %r" % ready[:1])
    jobs = emu.client("backup").list_restore_jobs()["RestoreJobs"]
    t.eq(len(jobs), 1, "one restore job, not two, for the first firing")
    t.eq([j.get("ValidationStatus") for j in jobs], ["SUCCESSFUL"], "validation reported to AWS Backup")
    t.eq([s for s in fired_slots(log2) if s == next1], [], "the restarted daemon does not fire that slot again")
    ready_at = time.time()
    gone = wait_until(lambda: name1 not in emu.table_names(), KEEP_FOR + 30)
    t.ok(gone, "the copy is deleted after keep_for")
    lag = time.time() - ready_at
    t.ok(gone and KEEP_FOR - 3 <= lag <= KEEP_FOR + 10, "deleted on time: %.1fs after ready (keep_for %ds)" % (lag, KEEP_FOR))
    deleted = events(log2, "schedule.copy_deleted")
    t.eq([d.get("table") for d in deleted], [name1], "the deletion is logged with the table")
    t.ok(emu.describe_table("orders-staging-old") is not None and emu.describe_table("orders-production") is not None,
         "nothing else deleted")

    # --- on demand, from the REPL: the same path, a copy named after this second
    def repl(code):
        return subprocess.run([ROTATOR, "repl"], input=code + "\n", env=env, capture_output=True, text=True,
                              timeout=30).stdout
    said = repl("return restore_test('restore-test')")
    at = re.search(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)", said)
    t.ok(at, "restore_test answers with its firing time: " + said.strip()[:200])
    name2 = copy_name(slot_of(at.group(1))) if at else "?"
    t.ok(wait_until(lambda: (emu.describe_table(name2) or {}).get("TableStatus") == "ACTIVE", 30),
         "the on-demand test restores " + name2)
    t.ok(wait_until(lambda: name2 not in emu.table_names(), KEEP_FOR + 30), "and deletes it after keep_for")
    t.ok("no scheduled rule" in repl("return restore_test('nope')"), "an unknown rule is refused by name")

    # --- 3. down across two slots: one firing at start, for the latest slot
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    out.close()
    killed_at = datetime.datetime.now(datetime.timezone.utc)
    newest = emu.create_backup("orders-production")   # now the newest point: a DynamoDB backup
    # wait until two more slots have passed while the daemon is down
    target = (killed_at.replace(second=0, microsecond=0) + datetime.timedelta(minutes=2, seconds=3))
    time.sleep(max(0, (target - datetime.datetime.now(datetime.timezone.utc)).total_seconds()))
    missed_latest = target.replace(second=0)
    proc, out = start(env, policies, log3)
    fired = wait_until(lambda: events(log3, "schedule.fired"), 20)
    t.ok(fired and fired[0].get("missed") == "true", "a missed firing runs at start: %r" % fired[:1])
    t.eq(fired_slots(log3)[:1], [missed_latest.strftime("%Y-%m-%dT%H:%M:%SZ")], "for the latest missed slot only")
    name3 = copy_name(missed_latest)
    restoring = wait_until(lambda: events(log3, "schedule.restoring"), 30)
    t.ok(restoring and restoring[0].get("recovery_point") == newest, "it restores the newest point, the DynamoDB backup")
    t.ok(wait_until(lambda: name3 not in emu.table_names() and events(log3, "schedule.copy_deleted"), 90),
         "that copy too is restored, validated and deleted")
    skipped = copy_name(missed_latest - datetime.timedelta(minutes=1))
    t.ok(not any(skipped in line for line in open(log3)), "no copy for the older missed slot " + skipped)
    # A firing the restart found mid-way (its workflow resumed from the journal, or its
    # copy waiting for keep_for) is finished and cleaned up by this daemon too.
    left = wait_until(lambda: copies(emu) == [], KEEP_FOR + 40) or copies(emu)
    stop_process(proc)
    out.close()
    for p in (log1, log2, log3):
        for e in events(p, "workflow.failed") + events(p, "schedule.copy_kept"):
            t.diag("%s: %r" % (os.path.basename(p), e))
    all_slots = fired_slots(log1, log2, log3)
    t.eq(len(all_slots), len(set(all_slots)), "no slot fired twice across the three daemons: %r" % all_slots)
    t.eq(left, True, "no copy left behind")
sys.exit(t.done())
