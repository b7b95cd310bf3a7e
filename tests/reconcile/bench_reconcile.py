"""`rotator reconcile --dry-run` over N tables (BENCH_TABLES, default 2000) with M backups
each (BENCH_BACKUPS, default 50) on the emulator, unpaced (--rate 0). Prints the peak RSS
(VmHWM) and wall time of the process, first for N/10 tables (the baseline), then for N:
memory is bounded when the two peaks are close (reconcile streams table by table and
keeps the newest backup only). It fails if the plan misses a table."""
import os, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.join(os.environ["ROTATOR_ROOT"], "tests/bed"))
import bed

N = int(os.environ.get("BENCH_TABLES", "2000"))
M = int(os.environ.get("BENCH_BACKUPS", "50"))
ROTATOR = os.environ["ROTATOR"]


def peak_run(cmd, env):
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    hwm = 0
    lines = []
    import threading
    reader = threading.Thread(target=lambda: lines.extend(p.stdout))
    reader.start()
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for l in f:
                    if l.startswith("VmHWM:"):
                        hwm = max(hwm, int(l.split()[1]))
        except OSError:
            pass
        time.sleep(0.05)
    reader.join()
    return p.returncode, hwm, time.monotonic() - t0, lines


with bed.Emulator() as emu, tempfile.TemporaryDirectory() as tmp:
    policies = os.path.join(tmp, "policies")
    os.mkdir(policies)
    with open(os.path.join(policies, "p.lua"), "w") as f:
        f.write('rule { name = "bulk", source_pattern = "^bulk", replacement = "copy", ssm_parameter = "/rotator/bulk" }\n'
                'rule { name = "base", source_pattern = "^base", replacement = "copy", ssm_parameter = "/rotator/base" }\n')
    t0 = time.monotonic()
    for prefix, n in (("base", N // 10), ("bulk", N)):
        for start in range(0, n, 50):
            emu.backup_control("bulk", tables=min(50, n - start), backups=M, prefix=prefix, offset=start)
    made = emu.backup_control("bulk", tables=0)
    print(f"fixtures: {made['tables']} tables, {made['backups']} backups in {time.monotonic() - t0:.0f} s")
    env = bed.env_for_rotator(emu, extra={"ROTATOR_STATE_DIR": os.path.join(tmp, "state")})
    status = 0
    for rule, n in (("base", N // 10), ("bulk", N)):
        rc, hwm, secs, lines = peak_run([ROTATOR, "--policies", policies, "reconcile", "--dry-run", "--rate", "0",
                                         "--rule", rule], env)
        rows = [l for l in lines if l.startswith("rule=") and "action=restore" in l]
        print(f"reconcile {n} tables x {M} backups: peak RSS {hwm / 1024:.1f} MiB, {secs:.1f} s, "
              f"{len(rows)} stale")
        if rc != 0 or len(rows) != n:
            print(f"FAIL: exit {rc}, {len(rows)} of {n} tables planned")
            status = 1
sys.exit(status)
