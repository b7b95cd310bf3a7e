#!/usr/bin/env sh
# Metrics, health and a status that tells the truth, against the real daemon on the moto
# emulator (IAM checked) behind the fault proxy: a workflow runs, /metrics is scraped and
# parsed with prometheus_client's own text parser and checked value by value; a reload
# keeps the counts; the queue is deleted mid-run (/readyz 503, status --check 2, ONE
# daemon-level alert on the alert topic), recreated (/readyz 200, --check 0, ONE
# "recovered" alert). A non-loopback --metrics-listen is refused.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
export ROTATOR_ROOT="$root" ROTATOR="${ROTATOR:-$root/rotator}"
exec "$root/tests/bed/venv-python" - <<'PY'
import json, os, signal, socket, subprocess, sys, tempfile, time, urllib.error, urllib.request
sys.path.insert(0, os.path.join(os.environ["ROTATOR_ROOT"], "tests/bed"))
import bed
from bed import stop_process, wait_until
from faultproxy import FaultProxy
from prometheus_client.parser import text_string_to_metric_families
from tap import Tap

t = Tap()
ROTATOR = os.environ["ROTATOR"]
PARAM = "/rotator/orders-table-arn"
TARGET = "orders-staging-20261125-03-00-00"
POLICY = 'rule { name = "staging", source_pattern = "-production$", replacement = "-staging", ssm_parameter = "%s" }\n' % PARAM


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers.get("Content-Type", "")
    except OSError as e:
        return None, str(e), ""


def scrape(base):
    """{(sample name, frozenset(labels)): value} and {family name: family} from /metrics."""
    status, text, ctype = get(base + "/metrics")
    samples, families = {}, {}
    for fam in text_string_to_metric_families(text):
        families[fam.name] = fam
        for s in fam.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return status, ctype, samples, families, text


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def check(state, sock_env):
    p = subprocess.run([ROTATOR, "--state-dir", state, "status", "--check"], env=sock_env,
                       capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout


def status_json(state, env):
    p = subprocess.run([ROTATOR, "--state-dir", state, "status", "--json"], env=env, capture_output=True,
                       text=True, timeout=30)
    return json.loads(p.stdout) if p.returncode == 0 else {}


with bed.Emulator() as emu, FaultProxy(emu.endpoint) as proxy, tempfile.TemporaryDirectory() as tmp:
    policies = os.path.join(tmp, "policies")
    state = os.path.join(tmp, "state")
    os.mkdir(policies)
    with open(os.path.join(policies, "staging.lua"), "w") as f:
        f.write(POLICY)
    emu.create_table("orders-production", items=5)
    backup = emu.create_backup("orders-production")
    pipe = emu.create_backup_pipeline()
    alerts = emu.create_alerts()
    proxy.throttle("DynamoDB_20120810.RestoreTableFromBackup", count=2)

    env = bed.env_for_rotator(emu, endpoint=proxy.endpoint, extra={
        "ROTATOR_WAIT_FIRST": "0.2", "ROTATOR_WAIT_MAX": "0.5", "ROTATOR_RECEIVE_WAIT": "1",
        "ROTATOR_STATE_DIR": state})
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    logf = open(os.path.join(tmp, "rotator.log"), "w")
    proc = subprocess.Popen([ROTATOR, "--policies", policies, "run", "--queue-url", pipe.queue.url,
                             "--metrics-listen", "127.0.0.1:%d" % port, "--alert-after", "2s",
                             "--alert-topic", alerts.topic_arn], env=env, stdout=logf, stderr=subprocess.STDOUT)
    try:
        t.eq(wait_until(lambda: get(base + "/healthz")[0], 20), 200, "/healthz answers 200 while the loop runs")
        t.eq(wait_until(lambda: get(base + "/readyz")[0] == 200, 20) and 200, 200,
             "/readyz 200: policies loaded, the queue answers, the journal is writable")
        t.eq(get(base + "/nope")[0], 404, "an unknown path is 404")

        published = time.time()
        pipe.publish(backup_arn=backup, job_id="job-metrics-1", start_time="2026-11-25T03:00:00Z")
        arn = wait_until(lambda: emu.get_parameter(PARAM), 60)
        t.ok(arn, "the workflow ran: SSM parameter written", arn)
        wait_until(lambda: pipe.queue.depth()["visible"] + pipe.queue.depth()["in_flight"] == 0, 30)
        # The message is deleted right after the workflow; the counters follow at once.
        samples = wait_until(lambda: (lambda s: s if value(s, "rotator_sqs_messages_deleted_total") == 1 else None)(
            scrape(base)[2]), 20)
        status, ctype, samples, families, text = scrape(base)
        t.eq(status, 200, "/metrics answers 200")
        t.ok(ctype.startswith("text/plain; version=0.0.4"), "Prometheus text format 0.0.4", ctype)
        bad = [n for n, f in families.items() if not n.startswith("rotator_") or not f.documentation]
        t.ok(families and not bad, "every family has the rotator_ prefix and a HELP line", bad)
        t.eq(families.get("rotator_aws_calls") and families["rotator_aws_calls"].type, "counter",
             "rotator_aws_calls_total is TYPE counter")
        t.eq(value(samples, "rotator_workflows_finished_total", outcome="complete", rule="staging"), 1.0,
             "one workflow finished complete, by rule")
        t.eq(value(samples, "rotator_workflow_duration_seconds_count", rule="staging", outcome="complete"), 1.0,
             "the whole-workflow duration histogram has the workflow")
        wsum = value(samples, "rotator_workflow_duration_seconds_sum", rule="staging", outcome="complete") or -1
        t.ok(0 < wsum < time.time() - published + 1, "its duration is within the test's own measure", wsum)
        t.eq(value(samples, "rotator_restore_duration_seconds_count", rule="staging"), 1.0,
             "the restore duration histogram has the restore")
        t.eq(value(samples, "rotator_restore_duration_seconds_bucket", rule="staging", le="+Inf"), 1.0,
             "histogram buckets end with le=+Inf")
        t.eq(value(samples, "rotator_aws_calls_total", service="dynamodb", action="RestoreTableFromBackup", outcome="ok"),
             1.0, "one RestoreTableFromBackup call, ok (its throttled attempts are retries)")
        t.eq(value(samples, "rotator_aws_throttles_total", service="dynamodb", action="RestoreTableFromBackup"), 2.0,
             "the two throttled responses counted")
        t.eq(value(samples, "rotator_aws_retries_total", service="dynamodb", action="RestoreTableFromBackup"), 2.0,
             "and retried twice")
        t.eq(value(samples, "rotator_aws_calls_total", service="ssm", action="PutParameter", outcome="ok"), 1.0,
             "one PutParameter")
        t.eq(value(samples, "rotator_aws_call_duration_seconds_count", service="ssm", action="PutParameter"), 1.0,
             "the AWS latency histogram has it")
        t.eq([value(samples, "rotator_sqs_messages_%s_total" % k) for k in ("received", "deleted", "left")],
             [1.0, 1.0, 0.0], "messages received 1, deleted 1, left 0")
        last = value(samples, "rotator_sqs_last_receive_timestamp_seconds") or 0
        t.ok(time.time() - 30 < last <= time.time() + 1, "last successful receive is recent (Unix seconds)", last)
        ssm_at = value(samples, "rotator_ssm_last_update_timestamp_seconds", parameter=PARAM) or 0
        t.ok(published - 1 <= ssm_at <= time.time() + 1, "the SSM update timestamp, by parameter", ssm_at)
        t.ok((value(samples, "rotator_journal_append_duration_seconds_count") or 0) >= 4,
             "journal appends timed (a histogram)", value(samples, "rotator_journal_append_duration_seconds_count"))
        t.ok((value(samples, "rotator_journal_size_bytes") or 0) > 0, "journal size in bytes")
        t.eq(value(samples, "rotator_aws_calls_in_flight"), 0.0, "no AWS call in flight: the long poll is apart")
        t.ok(value(samples, "rotator_sqs_long_polls_in_flight") in (0.0, 1.0), "the long poll gauge is 0 or 1")
        t.eq(value(samples, "rotator_health"), 0.0, "health gauge 0 (ok)")

        st = status_json(state, env)
        t.eq(st.get("health"), "ok", "status: health ok")
        t.eq((st.get("workflows") or {}).get("finished"), {"complete": 1}, "status: workflows finished by outcome")
        fam = (st.get("metrics") or {}).get("rotator_workflows_finished_total") or {}
        t.eq([s.get("value") for s in fam.get("series", [])], [1], "status --json carries the same figures")
        infl = st.get("inflight") or {}
        t.ok(infl.get("aws_calls") == 0 and infl.get("long_poll") in (0, 1), "status: AWS calls in flight apart from the long poll", infl)
        t.eq(check(state, env)[0], 0, "status --check exits 0 while healthy")

        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: (lambda s: value(s, "rotator_reloads_total", result="ok"))(scrape(base)[2]), 30)
        samples = scrape(base)[2]
        t.eq(value(samples, "rotator_reloads_total", result="ok"), 1.0, "a reload is counted by result")
        t.eq(value(samples, "rotator_workflows_finished_total", outcome="complete", rule="staging"), 1.0,
             "counts go on across the reload")

        # The queue disappears: every receive fails.
        emu.admin_client("sqs").delete_queue(QueueUrl=pipe.queue.url)
        code, body, _ = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(get(base + "/readyz")), 30) or (None, "", "")
        t.eq(code, 503, "/readyz 503 while the queue is missing")
        t.ok("receive" in body, "with the reason", body)
        rc, out = wait_until(lambda: (lambda r: r if r[0] == 2 else None)(check(state, env)), 30) or (None, "")
        t.ok(rc == 2, "status --check exits 2 while every receive fails", out)
        t.ok(out.startswith("failing") and "receive failing since" in out, "and says what fails since when", out)
        st = status_json(state, env)
        errs = [e for e in st.get("last_errors", []) if e.get("problem") == "receive"]
        t.ok(st.get("health") == "failing" and errs and errs[0].get("since"), "status: health failing, receive in last_errors", errs)
        failing = alerts.messages(wait=15)
        events = [json.loads(m).get("event") for m in failing]
        t.ok(events == ["rotator.daemon.failing"], "one daemon-level alert after --alert-after", failing)

        emu.admin_client("sqs").create_queue(QueueName=bed.EVENTS_QUEUE)
        rc, out = wait_until(lambda: (lambda r: r if r[0] == 0 else None)(check(state, env)), 60) or (None, "")
        t.ok(rc == 0, "status --check exits 0 after the queue is back", out)
        t.eq(wait_until(lambda: get(base + "/readyz")[0] == 200, 30) and 200, 200, "/readyz 200 again")
        recovered = alerts.messages(wait=15)
        time.sleep(3)  # nothing more may come
        recovered += alerts.messages()
        t.ok([json.loads(m).get("event") for m in recovered] == ["rotator.daemon.recovered"],
             "exactly one recovered alert", recovered)
        samples = scrape(base)[2]
        errs = sum(v for (n, _), v in samples.items() if n == "rotator_sqs_receive_errors_total")
        t.ok(errs >= 3, "receive errors counted", errs)

        # Other parts of the daemon report through the same model (daemon/health.lua).
        def repl(chunk):
            return subprocess.run([ROTATOR, "--state-dir", state, "repl"], input=chunk + "\n", env=env,
                                  capture_output=True, text=True, timeout=30)
        repl('require("daemon.health").set("journal", "degraded", "fsync takes 2 s")')
        rc, out = check(state, env)
        t.ok(rc == 1 and out.startswith("degraded") and "fsync takes 2 s" in out,
             "a degraded problem set from the live daemon: status --check exits 1", (rc, out))
        t.eq(value(scrape(base)[2], "rotator_health_problems", problem="journal", severity="degraded"), 1.0,
             "and it shows in rotator_health_problems")
        repl('require("daemon.health").clear("journal")')
        t.eq(check(state, env)[0], 0, "cleared: exit 0")
    finally:
        t.eq(stop_process(proc), 0, "the daemon exits 0 on SIGTERM")
        logf.close()

    for addr, why in (("0.0.0.0:%d" % free_port(), "--metrics-listen-any"), ("nonsense", "HOST:PORT")):
        p = subprocess.run([ROTATOR, "--policies", policies, "--state-dir", os.path.join(tmp, "s2"), "run",
                            "--metrics-listen", addr], env=env, capture_output=True, text=True, timeout=30)
        t.ok(p.returncode == 2 and why in p.stderr, "--metrics-listen %s is refused (exit 2, says %s)" % (addr, why),
             p.stderr)
    if t.failed:
        print("# daemon log:\n# " + open(os.path.join(tmp, "rotator.log")).read().replace("\n", "\n# ")[-6000:])

sys.exit(t.done())
PY
