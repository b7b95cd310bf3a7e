"""Errors an operator meets on the first day say what happened and what to do:
`rotator setup --topic-arn` with a topic that does not exist fails before creating any
queue (moto, IAM checked); `rotator replay` on an unreadable file names the path and the
way out; `rotator status` refused by the control socket's permissions says
"permission denied: run as the daemon's user" instead of "is the daemon running?"."""
import os, shutil, signal, subprocess, sys, tempfile, time

ROOT = os.environ.get("ROTATOR_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("ROTATOR") or os.path.join(ROOT, "rotator")
sys.path.insert(0, os.path.join(ROOT, "tests", "bed"))
from tap import Tap  # noqa: E402
import bed  # noqa: E402

t = Tap()
tmp = tempfile.mkdtemp(prefix="rotator-operator-errors-")
base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "ROTATOR_QUEUE_URL"}
base.update(AWS_EC2_METADATA_DISABLED="true")


def without_override(cmd):
    """cmd subject to permission bits against a mode-0 file or socket: as root, without
    CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH (root ignores the bits otherwise; the checkout
    may sit in a folder other users cannot enter)."""
    if os.geteuid() == 0:
        caps = "-dac_override,-dac_read_search"
        return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"] + cmd
    return cmd


# ---- setup: the topic first
with bed.Emulator() as emu:
    env = bed.env_for_rotator(emu, keys=emu.admin_keys)
    missing = f"arn:aws:sns:{bed.REGION}:123456789012:no-such-topic"
    r = subprocess.run([BIN, "setup", "--topic-arn", missing, "--queue-name", "rotator-orphan"], env=env,
                       capture_output=True, text=True, timeout=60)
    t.ok(r.returncode == 1, "setup with a missing topic fails", (r.returncode, r.stderr))
    t.ok(f"sns topic {missing} does not exist" in r.stderr and "nothing was created" in r.stderr
         and "--topic-arn" in r.stderr, "the message names the topic, says nothing was created and what to check", r.stderr)
    queues = emu.admin_client("sqs").list_queues(QueueNamePrefix="rotator-orphan").get("QueueUrls", [])
    t.ok(queues == [], "no queue (nor dead-letter queue) was created", queues)
    topic = emu.admin_client("sns").create_topic(Name="backup-notifications-day-one")["TopicArn"]
    r = subprocess.run([BIN, "setup", "--topic-arn", topic, "--queue-name", "rotator-orphan"], env=env,
                       capture_output=True, text=True, timeout=60)
    t.ok(r.returncode == 0 and f"exists    sns topic {topic}" in r.stdout and r.stdout.count("created") == 3,
         "with the topic in place setup checks it, then creates the queues and the subscription", (r.stdout, r.stderr))
    # Rotator's own least-privilege identity may not read topics: denied, and still nothing made.
    env = bed.env_for_rotator(emu)
    r = subprocess.run([BIN, "setup", "--topic-arn", topic, "--queue-name", "rotator-denied"], env=env,
                       capture_output=True, text=True, timeout=60)
    t.ok(r.returncode == 1 and "sns:GetTopicAttributes" in r.stderr and "nothing was created" in r.stderr,
         "a denied topic check names the IAM action and creates nothing", r.stderr)
    t.ok(emu.admin_client("sqs").list_queues(QueueNamePrefix="rotator-denied").get("QueueUrls", []) == [],
         "no queue after the denied check")

# ---- replay: an unreadable file
unreadable = os.path.join(tmp, "notification.json")
with open(unreadable, "w") as f:
    f.write("{}\n")
os.chmod(unreadable, 0)
empty = os.path.join(tmp, "policies")
os.mkdir(empty)
r = subprocess.run(without_override([BIN, "--policies", empty, "--state-dir", os.path.join(tmp, "replay-state"),
                                  "replay", "--dry-run", unreadable]),
                   env=base, capture_output=True, text=True, timeout=30)
t.ok(r.returncode == 2, "replay of an unreadable file exits 2", (r.returncode, r.stderr))
t.ok(f"cannot read {unreadable}: Permission denied; run as a user who may read it" in r.stderr
     and "Input/output error" not in r.stderr, "it names the file, the reason and what to do", r.stderr)

# ---- the control socket: permission denied is not "not running"
pol = os.path.join(tmp, "daemon-policies")
os.mkdir(pol)
with open(os.path.join(pol, "main.lua"), "w") as f:
    f.write('rule { name = "staging", source_pattern = "-production$", replacement = "-staging" }\n')
state = os.path.join(tmp, "state")
os.mkdir(state)
sock = os.path.join(state, "rotator.sock")
d = subprocess.Popen([BIN, "--policies", pol, "--state-dir", state, "run"], env=base,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
end = time.time() + 10
while time.time() < end and not os.path.exists(sock):
    time.sleep(0.05)
t.ok(os.path.exists(sock), "the daemon listens on its control socket")
os.chmod(sock, 0)
r = subprocess.run(without_override([BIN, "status", "--socket", sock]), env=base, capture_output=True, text=True, timeout=15)
t.ok(r.returncode != 0 and f"permission denied on the control socket {sock}" in r.stderr
     and "run as the daemon's user" in r.stderr, "status refused by the socket's permissions says so", r.stderr)
t.ok("Is `rotator run` running" not in r.stderr, "and does not suggest the daemon is down", r.stderr)
os.chmod(sock, 0o600)
r = subprocess.run([BIN, "status", "--socket", sock], env=base, capture_output=True, text=True, timeout=15)
t.ok(r.returncode == 0, "the daemon's own user still gets the status", r.stderr)
d.send_signal(signal.SIGTERM)
t.ok(d.wait(15) == 0, "the daemon stops cleanly")
r = subprocess.run([BIN, "status", "--socket", sock], env=base, capture_output=True, text=True, timeout=15)
t.ok(r.returncode != 0 and "Is `rotator run` running" in r.stderr, "with no daemon the message still says so", r.stderr)
shutil.rmtree(tmp, ignore_errors=True)
sys.exit(t.done())
