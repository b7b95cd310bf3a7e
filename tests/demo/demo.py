"""`make demo`: Rotator end to end on the moto emulator (see tests/demo/run --help).

Runs under the test bed's venv python. Everything talks to 127.0.0.1 only. Nothing is left
running: rotator runs in its own session with PR_SET_PDEATHSIG, is stopped with SIGTERM in
a finally block (Ctrl-C and SIGTERM of this process raise into it), and the emulator is
stopped by bed.Emulator (also on signals and at exit).
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from importlib import metadata
from pathlib import Path

ROOT = Path(os.environ.get("ROTATOR_ROOT") or Path(__file__).resolve().parents[2])
sys.path.insert(0, str(ROOT / "tests" / "bed"))

SOURCE = "orders-production"
PARAM = "/rotator/staging/orders-table-arn"
POLICY = """-- Written by tests/demo/run. Production tables restore into dated staging copies.
rule {
  name = "staging",
  source_pattern = "(?i)-production$",
  replacement = "-staging",
  ssm_parameter = "%s",
}
""" % PARAM
TUNING = {  # the daemon's defaults suit AWS (first DescribeTable after 5 s); the emulator is instant
    "ROTATOR_WAIT_FIRST": "0.2", "ROTATOR_WAIT_MAX": "1", "ROTATOR_HEARTBEAT": "10",
    "ROTATOR_VISIBILITY_TIMEOUT": "30",
}


class Interrupted(BaseException):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


T0 = time.monotonic()


def say(line: str = "") -> None:
    print(line, flush=True)


def secs(s: float) -> str:
    return f"{s:.1f} s" if s >= 10 else f"{s:.2f} s"


# ---------------------------------------------------------------------------------------
# rotator's text log: ts=... level=... event=... key=value key="quoted value"

PAIR = re.compile(r'([A-Za-z_][\w.]*)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_line(line: str) -> dict | None:
    if not line.startswith("ts="):
        return None
    out = {}
    for k, v in PAIR.findall(line):
        if v.startswith('"'):
            try:
                v = json.loads(v)
            except ValueError:
                v = v[1:-1]
        out[k] = v
    return out if "event" in out else None


def short(s: str, n: int = 60) -> str:
    return s if len(s) <= n else s[: n - 3] + "..."


def plural(n, word: str) -> str:
    return f"{n} {word}" if str(n) == "1" else f"{n} {word}s"


def describe(ev: dict) -> str:
    """One human line for a log event."""
    e = ev.get("event", "?")
    if e == "daemon.ready":
        return (f"rotator ready: {plural(ev.get('policies'), 'policy file')}, {plural(ev.get('rules'), 'rule')}, "
                f"polling {ev.get('queue', '?').rsplit('/', 1)[-1]}")
    if e == "workflow.accepted":
        return f"notification: backup of {ev.get('source')} matches rule \"{ev.get('rule')}\""
    if e == "restore.started":
        return f"RestoreTableFromBackup -> {ev.get('target')}"
    if e == "restore.already_started":
        return f"{ev.get('target')} already restoring from this backup ({ev.get('status')})"
    if e == "restore.status":
        return f"DescribeTable {ev.get('target')}: {ev.get('status')}"
    if e == "restore.complete":
        return f"{ev.get('target')} is ACTIVE"
    if e == "post_restore.applied":
        extra = f" (skipped: {ev['skipped']})" if ev.get("skipped") else ""
        return f"post-restore: {ev.get('step')}{extra}"
    if e == "ssm.updated":
        value = str(ev.get("value", ""))
        return f"PutParameter {ev.get('parameter')} = ...:{value.rsplit(':', 1)[-1]}"
    if e == "workflow.complete":
        return f"workflow complete in {ev.get('seconds')} s"
    if e == "workflow.failed":
        return f"WORKFLOW FAILED: {ev.get('error')}"
    if e == "message.deleted":
        return "SQS message deleted (the notification is done)"
    if e == "notification.skipped":
        return f"notification skipped: {ev.get('reason')}"
    keys = [k for k in ev if k not in ("ts", "level", "event")]
    detail = " ".join(f"{k}={short(str(ev[k]), 80)}" for k in keys[:4])
    return f"{e} {detail}".rstrip()


# restore.complete follows the ACTIVE restore.status line at once: one line is enough.
QUIET = {"intake.started", "creds.resolved", "journal.opened", "journal.resumed", "restore.complete"}


def is_shown(ev: dict) -> bool:
    if ev.get("level") in ("warn", "error"):
        return True
    return ev.get("event") not in QUIET


class LogWatcher:
    """Follows rotator's log file; prints notable events as they come."""

    def __init__(self, path: Path, t_ref: float):
        self.path = path
        self.pos = 0
        self.partial = ""
        self.events: list[dict] = []
        self.t_ref = t_ref

    def poll(self) -> list[dict]:
        try:
            with open(self.path, "r", errors="replace") as f:
                f.seek(self.pos)
                data = f.read()
                self.pos = f.tell()
        except FileNotFoundError:
            return []
        data = self.partial + data
        lines = data.split("\n")
        self.partial = lines.pop()
        new = []
        for line in lines:
            ev = parse_line(line)
            if ev is None:
                if line.strip():
                    new.append({"event": "output", "level": "info", "text": line})
                continue
            new.append(ev)
        for ev in new:
            self.events.append(ev)
            if ev["event"] == "output":
                say(f"  {'':>8}  | {short(ev['text'], 100)}")
            elif is_shown(ev):
                level = ev.get("level", "")
                mark = "!" if level in ("warn", "error") else " "
                say(f"  {self.rel(ev):>8} {mark} {describe(ev)}")
        return new

    def rel(self, ev: dict) -> str:
        try:
            t = dt.datetime.strptime(ev["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)
        except (KeyError, ValueError):
            return ""
        return f"+{t.timestamp() - self.t_ref:.2f}s"

    def find(self, event: str) -> dict | None:
        for ev in self.events:
            if ev.get("event") == event:
                return ev
        return None


# ---------------------------------------------------------------------------------------


def _pdeathsig():
    """In the child: killed when the demo dies abruptly (SIGKILL); normal paths SIGTERM it first."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def start_rotator(rotator: str, env: dict, policies: Path, state: Path, log_path: Path, queue_url: str):
    argv = [rotator, "--policies", str(policies), "--state-dir", str(state), "--log-format", "text",
            "run", "--queue-url", queue_url]
    log = open(log_path, "wb")
    try:
        return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, preexec_fn=_pdeathsig)
    finally:
        log.close()


def stop_rotator(proc: subprocess.Popen, emu) -> str:
    """SIGTERM, as an operator would. rotator finishes in-flight work first, which includes
    its SQS long poll (up to 20 s); stopping the emulator ends that poll early. Returns
    how it went, for the summary."""
    if proc.poll() is not None:
        return f"had already exited ({proc.returncode})"
    t = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(0.5)
        return f"SIGTERM, exit {rc} in {secs(time.monotonic() - t)}"
    except subprocess.TimeoutExpired:
        pass
    emu.stop()  # ends the long poll in flight
    try:
        rc = proc.wait(15)
        return (f"SIGTERM, exit {rc} in {secs(time.monotonic() - t)}; emulator: stopped\n"
                "             (stopping the emulator ended rotator's 20 s SQS long poll)")
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return f"did not stop within {secs(time.monotonic() - t)} of SIGTERM: killed (SIGKILL)"


def journal_doc(rotator: str, state: Path, workflow_id: str) -> dict | None:
    try:
        out = subprocess.run([rotator, "--state-dir", str(state), "journal", "show", workflow_id, "--json"],
                             capture_output=True, text=True, timeout=10, env={
                                 k: v for k, v in os.environ.items() if not k.startswith("AWS_")})
        if out.returncode != 0:
            return None
        return json.loads(out.stdout).get("doc")
    except (OSError, ValueError, subprocess.TimeoutExpired, AttributeError):
        return None


def step_rows(doc: dict | None, watcher: LogWatcher) -> list[tuple[str, str, str, str]]:
    """(step, started, took, note) rows: from the workflow document's Steps, else from
    the log lines."""
    rows = []
    if doc and isinstance(doc.get("Steps"), list) and doc["Steps"]:
        for s in doc["Steps"]:
            started = str(s.get("Started", ""))
            started = started[11:23] if len(started) >= 23 else started
            took = f"{float(s['Seconds']):.3f} s" if isinstance(s.get("Seconds"), (int, float)) else "-"
            note = ""
            if s.get("Error"):
                note = "error: " + short(str(s["Error"]), 60)
            elif s.get("Skipped"):
                note = "skipped: " + str(s["Skipped"])
            elif s.get("TableStatus"):
                note = f"table {s['TableStatus']}"
            elif s.get("Tags") is not None:
                note = f"{s['Tags']} tag(s)"
            elif s.get("RequestId"):
                note = "request " + short(str(s["RequestId"]), 20)
            rows.append((str(s.get("State", "?")), started, took, note))
        return rows
    prev = None
    for ev in watcher.events:
        if ev.get("event") in ("workflow.accepted", "restore.started", "restore.status", "restore.complete",
                               "post_restore.applied", "ssm.updated", "workflow.complete"):
            ts = ev.get("ts", "")
            rows.append((ev["event"], ts[11:23], "", ""))
            prev = ts
    del prev
    return rows


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="tests/demo/run", add_help=False)
    ap.add_argument("--items", type=int, default=300)
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--dir", default=str(ROOT / ".demo"))
    args = ap.parse_args(argv)
    rotator = os.environ.get("ROTATOR") or str(ROOT / "rotator")
    out_dir = Path(args.dir).resolve()

    # Our handlers first: bed chains to them after stopping its emulators, and they raise
    # into the finally blocks below (rotator stopped, emulator stopped).
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupted)
    # Explicitly: a shell starting us in the background (`run &`) leaves SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    import bed  # after the handlers (bed installs its own on the first Emulator start)

    for sub in ("policies", "state"):
        shutil.rmtree(out_dir / sub, ignore_errors=True)
    for f in ("rotator.log", "moto.log"):
        (out_dir / f).unlink(missing_ok=True)
    policies, state, log_path = out_dir / "policies", out_dir / "state", out_dir / "rotator.log"
    policies.mkdir(parents=True)
    state.mkdir()
    (policies / "demo.lua").write_text(POLICY)

    try:
        moto_version = metadata.version("moto")
    except metadata.PackageNotFoundError:
        moto_version = "?"

    say("Rotator demo: a DynamoDB backup restored end to end on a local AWS emulator")
    say("=" * 78)
    emu = bed.Emulator(keep_log=True)  # its log is copied to DIR/moto.log, then removed
    proc = None
    stopped = "not started"
    failure = None
    try:
        t = time.monotonic()
        emu.start()
        say(f"Emulator     moto {moto_version} at {emu.endpoint} (pid {emu.pid}), started in {secs(time.monotonic() - t)}")
        say("             SigV4 signatures and IAM policies checked: rotator runs as IAM user")
        say("             \"rotator\" whose only policy is README.md's least-privilege policy")

        t = time.monotonic()
        emu.create_table(SOURCE, items=args.items)
        start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        backup = emu.create_backup(SOURCE)
        say(f"Table        {SOURCE}: {args.items} items, on-demand backup, in {secs(time.monotonic() - t)}")
        say(f"             {backup}")
        pipe = emu.create_backup_pipeline()
        say(f"Queue        SNS {bed.BACKUP_TOPIC} -> SQS {pipe.queue.url.rsplit('/', 1)[-1]} (+ -dlq),")
        say(f"             filter {json.dumps(bed.FILTER_POLICY, separators=(',', ':'))}")
        say(f"Policy       {policies / 'demo.lua'}")
        say(f"             (?i)-production$ -> -staging, SSM parameter {PARAM}")

        job_id = str(uuid.uuid4())
        expected = "orders-staging-" + start.strftime("%Y%m%d-%H-%M-%S")
        env = bed.env_for_rotator(emu, extra=TUNING)
        proc = start_rotator(rotator, env, policies, state, log_path, pipe.queue.url)
        t_pub = time.time()
        pipe.publish(backup_arn=backup, job_id=job_id, start_time=start.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                     wording="documented")
        say(f"Published    \"{bed.SUBJECT}\": backup job {job_id} COMPLETED,")
        say(f"             StartTime {start.strftime('%Y-%m-%dT%H:%M:%SZ')}")
        say()
        say(f"rotator run (pid {proc.pid}); times are relative to the notification. First table")
        say(f"check after {TUNING['ROTATOR_WAIT_FIRST']} s (ROTATOR_WAIT_FIRST; 5 s by default, for AWS's minutes-long restores):")
        watcher = LogWatcher(log_path, t_pub)
        deadline = time.monotonic() + args.timeout
        done = failed = None
        while True:
            watcher.poll()
            done = done or watcher.find("workflow.complete")
            failed = failed or watcher.find("workflow.failed")
            if (done and watcher.find("message.deleted")) or failed:
                break
            if proc.poll() is not None:
                watcher.poll()
                failure = f"rotator exited with status {proc.returncode} before the workflow completed"
                break
            if time.monotonic() > deadline:
                failure = (f"timed out: the workflow had not completed {args.timeout:g} s after the "
                           "notification (rotator was still running; a slow machine? try --timeout 60)")
                break
            time.sleep(0.05)
        if failed and not failure:
            failure = f"the workflow failed: {failed.get('error')}"

        say()
        if failure:
            say(f"Result       FAILED: {failure}")
            tail = log_path.read_text(errors="replace").splitlines()[-12:]
            if tail:
                say("             last rotator log lines:")
                for line in tail:
                    say("               " + short(line, 160))
        else:
            doc = journal_doc(rotator, state, job_id)
            target = (doc or {}).get("TargetTableName") or done.get("target")
            arn_logged = done.get("table_arn")
            src_n = emu.item_count(SOURCE)
            table = emu.describe_table(target) if target else None
            dst_n = emu.item_count(target) if table else None
            value = emu.get_parameter(PARAM)
            problems = []
            if target != expected:
                problems.append(f"restored table is {target}, expected {expected}")
            if dst_n != src_n:
                problems.append(f"item counts differ: {src_n} vs {dst_n}")
            if not table or value != table.get("TableArn"):
                problems.append("the SSM parameter does not hold the restored table's ARN")
            if table and table.get("TableStatus") != "ACTIVE":
                problems.append(f"{target} is {table.get('TableStatus')}")
            wf_seconds = (doc or {}).get("Seconds") or done.get("seconds")

            say(f"Result       {'OK' if not problems else 'FAILED'}: {SOURCE} restored to {target}"
                f" (workflow: {wf_seconds} s)")
            say()
            say(f"Workflow {job_id}")
            rows = step_rows(doc, watcher)
            w0 = max([len(r[0]) for r in rows] + [4])
            say(f"  {'step':<{w0}}  {'started (UTC)':<13}  {'took':>9}  note")
            for name, started, took, note in rows:
                say(f"  {name:<{w0}}  {started:<13}  {took:>9}  {note}".rstrip())
            if isinstance(wf_seconds, (int, float)) or (isinstance(wf_seconds, str) and wf_seconds):
                say(f"  {'total':<{w0}}  {'':<13}  {float(wf_seconds):>7.3f} s  the whole workflow")
            say()
            wname = max(len(SOURCE), len(target or ""))
            say(f"Source table    {SOURCE:<{wname}}  {src_n:>6} items")
            say(f"Restored table  {target:<{wname}}  {dst_n if dst_n is not None else '?':>6} items"
                f"  {table.get('TableStatus') if table else 'MISSING'}")
            say(f"SSM parameter   {PARAM}")
            say(f"  new value     {value}")
            if arn_logged and arn_logged != value:
                problems.append(f"log says {arn_logged}")
            if problems:
                failure = "; ".join(problems)
                say()
                say(f"Result       FAILED: {failure}")
    except Interrupted as e:
        failure = f"interrupted ({e})"
        say()
        say(f"demo: {failure}; stopping everything")
    except KeyboardInterrupt:
        failure = "interrupted (Ctrl-C)"
        say()
        say(f"demo: {failure}; stopping everything")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # one clean teardown, even on a second Ctrl-C
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if proc is not None:
            stopped = stop_rotator(proc, emu)
        emu.stop()
        if emu.log_path is not None:
            try:
                shutil.copyfile(emu.log_path, out_dir / "moto.log")
            except OSError:
                pass
            shutil.rmtree(emu.log_path.parent, ignore_errors=True)
    say()
    if "emulator:" not in stopped:
        stopped += "; emulator: stopped"
    say(f"Stopped      rotator: {stopped}")
    say(f"Full log     {log_path}")
    if proc is not None and (state / "journal.db").exists():
        say(f"Journal      {rotator} --state-dir {state} journal show {job_id}")
    say(f"Demo took    {secs(time.monotonic() - T0)}")
    if failure:
        return 130 if failure.startswith("interrupted") else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
