"""`rotator run` fails fast on what cannot heal and retries what can; `run --preflight`
runs the same checks once. Against the real binary:
  * an empty environment (HOME an empty folder, no AWS_* credentials, IMDS disabled):
    no region, then no credentials, whose message lists every provider of the chain;
  * a closed loopback port: the queue does not answer, the daemon keeps retrying with
    backoff, shows it in `rotator status`, never says READY=1, stops cleanly;
  * moto with IAM checked: a queue that does not exist, a queue Rotator's least-privilege
    identity may not read (AccessDenied), and a good queue behind a FaultProxy answering
    503 twice: READY=1 comes only after GetQueueAttributes answered.
Nothing here reaches anything but 127.0.0.1."""
import json, os, signal, socket, subprocess, sys, tempfile, time

ROOT = os.environ.get("ROTATOR_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("ROTATOR") or os.path.join(ROOT, "rotator")
sys.path.insert(0, os.path.join(ROOT, "tests", "bed"))
from tap import Tap  # noqa: E402
import bed  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402

t = Tap()
tmp = tempfile.mkdtemp(prefix="rotator-startup-")
pol = os.path.join(tmp, "policies")
os.mkdir(pol)
with open(os.path.join(pol, "main.lua"), "w") as f:
    f.write('rule { name = "staging", source_pattern = "-production$", replacement = "-staging" }\n')
home = os.path.join(tmp, "home")
os.mkdir(home)


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


CLOSED = f"http://127.0.0.1:{closed_port()}"
QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/rotator-backup-events"


def empty_env(**extra):
    """No AWS_* variable from outside, HOME an empty folder, IMDS off, every endpoint a
    closed loopback port (so even a bug could not reach AWS)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and not k.startswith("ROTATOR_")}
    env.update(HOME=home, AWS_EC2_METADATA_DISABLED="true", AWS_ENDPOINT_URL=CLOSED,
               ROTATOR_STATE_DIR=tempfile.mkdtemp(prefix="state-", dir=tmp))
    env.update(extra)
    return env


def run(env, queue=QUEUE, args=(), timeout=30):
    start = time.monotonic()
    r = subprocess.run([BIN, "--policies", pol, "run", "--queue-url", queue] + list(args), env=env,
                       capture_output=True, text=True, timeout=timeout)
    return r, time.monotonic() - start


def fails_fast(what, env, queue, needles):
    r, secs = run(env, queue)
    failed = [line for line in r.stderr.splitlines() if "event=startup.failed" in line]
    t.ok(r.returncode == 1 and secs < 10, f"{what}: run exits 1 within 10 s ({secs:.1f} s)", (r.returncode, r.stderr[-600:]))
    t.ok(len(failed) == 1, f"{what}: one startup.failed message", r.stderr[-600:])
    missing = [n for n in needles if n not in (failed[0] if failed else "")]
    t.ok(not missing, f"{what}: it names {', '.join(needles)}", (missing, failed))
    t.ok("daemon.ready" not in r.stderr, f"{what}: the daemon never said it was ready", r.stderr[-300:])
    p, _ = run(env, queue, ["--preflight"])
    t.ok(p.returncode == 1 and "preflight failed" in p.stdout, f"{what}: --preflight exits 1 naming the failure",
         (p.returncode, p.stdout, p.stderr[-300:]))
    return r, p


# ---- no region, no credentials: an empty environment
r, p = fails_fast("no region", empty_env(AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret-x"), QUEUE,
                  ["check=region", "AWS_REGION", "AWS_DEFAULT_REGION"])
t.ok("region       FAIL" in p.stdout and "credentials  skip" in p.stdout and "queue        skip" in p.stdout,
     "preflight: the region fails, the checks that need it are skipped", p.stdout)
t.ok("secret-x" not in r.stderr + p.stdout + p.stderr, "no secret in any output")

r, p = fails_fast("no credentials", empty_env(AWS_REGION="us-east-1"), QUEUE,
                  ["check=credentials", "1) environment: AWS_ACCESS_KEY_ID is not set", "2) web identity",
                   f'3) profile \\"default\\"', os.path.join(home, ".aws", "config") + " does not exist",
                   os.path.join(home, ".aws", "credentials") + " does not exist", "credential_process",
                   "4) ECS container credentials", "5) EC2 instance metadata (IMDS): disabled by AWS_EC2_METADATA_DISABLED",
                   "Next: export AWS_ACCESS_KEY_ID"])
t.ok("region       ok   us-east-1" in p.stdout and "credentials  FAIL no AWS credentials found" in p.stdout,
     "preflight: region ok, credentials fail with the chain", p.stdout)

# A profile file that exists but lacks the profile is told apart from a missing file.
os.makedirs(os.path.join(home, ".aws"))
with open(os.path.join(home, ".aws", "config"), "w") as f:
    f.write("[profile other]\nregion = eu-west-1\n")
p, _ = run(empty_env(AWS_REGION="us-east-1"), QUEUE, ["--preflight"])
t.ok(os.path.join(home, ".aws", "config") + " has no such profile" in p.stdout, "an existing file without the profile says so",
     p.stdout)
os.remove(os.path.join(home, ".aws", "config"))
os.rmdir(os.path.join(home, ".aws"))

# ---- a closed port: transient, retried with backoff, visible in status, no READY
sock_path = os.path.join(tmp, "notify.sock")
srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
srv.bind(sock_path)
srv.settimeout(0.2)


def notifications(seconds, until=None):
    got, end = [], time.time() + seconds
    while time.time() < end:
        try:
            data = srv.recv(4096).decode()
        except socket.timeout:
            continue
        got.append((time.monotonic(), dict(line.split("=", 1) for line in data.split("\n") if "=" in line)))
        if until and until(got[-1][1]):
            break
    return got


env = empty_env(AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret-x",
                NOTIFY_SOCKET=sock_path)
d = subprocess.Popen([BIN, "--policies", pol, "run", "--queue-url", QUEUE], env=env, stdout=subprocess.DEVNULL,
                     stderr=subprocess.PIPE, text=True)
got = notifications(4.5)
t.ok(d.poll() is None, "closed port: the daemon keeps running (a network error may heal)")
t.ok(not any(m.get("READY") == "1" for _, m in got), "closed port: no READY=1 while the queue does not answer", got)
t.ok(any("waiting for the queue" in m.get("STATUS", "") for _, m in got), "closed port: STATUS says what it waits for", got)
st = subprocess.run([BIN, "--state-dir", env["ROTATOR_STATE_DIR"], "status", "--json"], env=env, capture_output=True,
                    text=True, timeout=15)
status = json.loads(st.stdout) if st.returncode == 0 else {}
startup = status.get("startup", {})
t.ok(startup.get("state") == "waiting for the queue" and "did not answer" in startup.get("error", "")
     and startup.get("attempts", 0) >= 2, "closed port: rotator status shows the start-up waiting and why", status)
t.ok(any(e.get("source") == "startup" for e in status.get("last_errors", [])), "closed port: and lists it in last_errors",
     status.get("last_errors"))
d.send_signal(signal.SIGHUP)
time.sleep(0.5)
t.ok(d.poll() is None, "closed port: a SIGHUP while starting leaves the daemon waiting")
d.send_signal(signal.SIGTERM)
rc = d.wait(15)
log = d.stderr.read()
t.ok("event=reload.refused" in log and "event=reload.ok" not in log, "closed port: the reload is refused, and says why",
     [line for line in log.splitlines() if "reload" in line])
waits = [line for line in log.splitlines() if "event=startup.waiting" in line]
delays = [int(line.split("retry_in=")[1].split()[0]) for line in waits]
t.ok(len(waits) >= 3 and delays[:3] == [1, 2, 4], "closed port: each retry is logged, with backoff 1, 2, 4 s", waits)
t.ok(CLOSED.split("//")[1] in (waits[0] if waits else ""), "the retry line names the endpoint", waits[:1])
t.ok(rc == 0, "closed port: SIGTERM while waiting stops it cleanly (exit 0)", (rc, log[-400:]))
p, _ = run(env, QUEUE, ["--preflight"])
t.ok(p.returncode == 1 and "queue        FAIL" in p.stdout and "did not answer" in p.stdout
     and f"preflight failed: queue {QUEUE}" in p.stdout, "closed port: --preflight does not wait: it fails naming the queue",
     p.stdout)

# ---- moto, IAM checked
with bed.Emulator() as emu, FaultProxy(emu.endpoint) as proxy:
    good = emu.create_queue(bed.EVENTS_QUEUE)
    other = emu.create_queue("someone-elses-queue", dlq=False)
    missing_url = good.url.rsplit("/", 1)[0] + "/rotator-backup-events-typo"

    def menv(**extra):
        e = bed.env_for_rotator(emu, endpoint=proxy.endpoint)
        e.update(HOME=home, ROTATOR_STATE_DIR=tempfile.mkdtemp(prefix="state-", dir=tmp))
        e.update(extra)
        return e

    r, p = fails_fast("missing queue", menv(), missing_url,
                      ["check=queue", missing_url, "does not exist", "rotator setup --topic-arn", "--queue-url"])
    t.ok("queue        FAIL" in p.stdout and "credentials  ok   source=env" in p.stdout,
         "missing queue: preflight passes region and credentials, fails the queue", p.stdout)
    r, p = fails_fast("access denied", menv(), other.url,
                      ["check=queue", "access denied on queue " + other.url, "sqs:GetQueueAttributes",
                       "sqs:ReceiveMessage", "user/rotator", "rotator setup --policy-only"])

    p, _ = run(menv(), good.url, ["--preflight"])
    t.ok(p.returncode == 0 and "preflight: all checks passed" in p.stdout and good.arn in p.stdout
         and "dead-letter queue set" in p.stdout, "a good queue: every preflight check passes, exit 0", (p.stdout, p.stderr[-300:]))
    t.eq(good.depth()["visible"] + good.depth()["in_flight"], 0, "preflight received nothing")

    # 503 twice: retried with backoff; READY=1 only once the queue answered.
    proxy.clear_log()
    proxy.error("GetQueueAttributes", status=503, count=2)
    env = menv(NOTIFY_SOCKET=sock_path)
    d = subprocess.Popen([BIN, "--policies", pol, "run", "--queue-url", good.url], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    got = notifications(15, until=lambda m: m.get("READY") == "1")
    ready_at = next((ts for ts, m in got if m.get("READY") == "1"), None)
    gqa = proxy.requests("GetQueueAttributes")
    answered = [rec for rec in gqa if rec.status == 200]
    t.ok(ready_at is not None, "503 twice: the daemon becomes ready", got)
    t.ok(len(gqa) == 3 and [rec.status for rec in gqa] == [503, 503, 200], "503 twice: GetQueueAttributes retried until it answered",
         [(rec.status, rec.fault) for rec in gqa])
    t.ok(answered and ready_at and answered[0].end <= ready_at, "READY=1 comes after the queue answered")
    t.ok(not [rec for rec in proxy.requests("ReceiveMessage") if rec.start < answered[0].end] if answered else False,
         "no ReceiveMessage before the queue answered")
    d.send_signal(signal.SIGTERM)
    rc = d.wait(30)
    log = d.stderr.read()
    t.eq(sum("event=startup.waiting" in line for line in log.splitlines()), 2, "each 503 logged as a start-up retry")
    t.ok("event=startup.checked" in log and rc == 0, "then startup.checked, and a clean stop", (rc, log[-500:]))

    # The queue deleted under a running daemon: the failed receive says what to do.
    env = menv(NOTIFY_SOCKET=sock_path, ROTATOR_RECEIVE_WAIT="1")
    d = subprocess.Popen([BIN, "--policies", pol, "run", "--queue-url", good.url], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    notifications(15, until=lambda m: m.get("READY") == "1")
    emu.admin_client("sqs").delete_queue(QueueUrl=good.url)
    time.sleep(4)
    d.send_signal(signal.SIGTERM)
    rc = d.wait(30)
    log = d.stderr.read()
    failed = [line for line in log.splitlines() if "event=intake.receive_failed" in line]
    t.ok(failed and "problem=queue" in failed[0] and "rotator setup --topic-arn" in failed[0] and "heals=false" in failed[0],
         "a receive failing on a deleted queue logs the problem and the next step", failed[:1] or log[-1500:])
    t.ok(rc == 0, "and the daemon still stops cleanly")

sys.exit(t.done())
