"""What no restore carries over (tests/t/93-carry-over.t), on moto with IAM checked: a
provisioned source table with a GSI, a stream, Application Auto Scaling targets and
policies (table and GSI), contributor insights (table and GSI; served by the bed's
contributor_insights.py) and a resource policy; `rotator run` restores it with
carry_over = all four; the copy has each, the history shows each step; a daemon killed
after the last call (PutResourcePolicy forwarded, answer held) and restarted re-runs the
steps without doubling anything; a redelivered notification changes nothing."""
import json, os, signal, subprocess, sys, tempfile, zlib
sys.path.insert(0, os.path.join(os.environ["ROTATOR_ROOT"], "tests/bed"))
import bed
from bed import stop_process, wait_until
from faultproxy import FaultProxy
from tap import Tap

t = Tap()
ROTATOR = os.environ["ROTATOR"]
PARAM = "/rotator/orders-table-arn"
SOURCE = "orders-production"
COPY = "orders-staging-20261125-03-00-00"
GSI = "by-customer"
JOB = "7b1e8c1a-0f55-4d7e-9a43-5c7f0a2d9e11"
POLICY = """
rule {
  name = "staging",
  source_pattern = "-production$",
  replacement = "-staging",
  ssm_parameter = "%s",
  carry_over = { "stream", "autoscaling", "contributor_insights", "resource_policy" },
}
""" % PARAM
MUTATIONS = {
    "stream": "DynamoDB_20120810.UpdateTable",
    "insights": "DynamoDB_20120810.UpdateContributorInsights",
    "targets": "AnyScaleFrontendService.RegisterScalableTarget",
    "policies": "AnyScaleFrontendService.PutScalingPolicy",
    "resource_policy": "DynamoDB_20120810.PutResourcePolicy",
}
STEPS = ["Copy Stream", "Copy Contributor Insights", "Copy Auto Scaling", "Copy Resource Policy"]
TRACKING = {"TargetValue": 70.0, "PredefinedMetricSpecification": {
    "PredefinedMetricType": "DynamoDBReadCapacityUtilization"}, "ScaleInCooldown": 60, "ScaleOutCooldown": 60}


def make_source(emu):
    ddb = emu.admin_client("dynamodb")
    pt = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
    arn = ddb.create_table(
        TableName=SOURCE, BillingMode="PROVISIONED", ProvisionedThroughput=pt,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "customer", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": GSI, "KeySchema": [{"AttributeName": "customer", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}, "ProvisionedThroughput": pt}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["TableArn"]
    emu.put_items(SOURCE, ({"pk": {"S": "item-%03d" % i}, "customer": {"S": "c%d" % (i % 3)}} for i in range(9)))
    aas = emu.admin_client("application-autoscaling")
    for rid, dim, lo, hi in ((f"table/{SOURCE}", "dynamodb:table:ReadCapacityUnits", 5, 50),
                             (f"table/{SOURCE}", "dynamodb:table:WriteCapacityUnits", 5, 20),
                             (f"table/{SOURCE}/index/{GSI}", "dynamodb:index:ReadCapacityUnits", 2, 30)):
        aas.register_scalable_target(ServiceNamespace="dynamodb", ResourceId=rid, ScalableDimension=dim,
                                     MinCapacity=lo, MaxCapacity=hi)
    for rid, dim, name in ((f"table/{SOURCE}", "dynamodb:table:ReadCapacityUnits", "orders-read"),
                           (f"table/{SOURCE}/index/{GSI}", "dynamodb:index:ReadCapacityUnits", "orders-gsi-read")):
        aas.put_scaling_policy(PolicyName=name, ServiceNamespace="dynamodb", ResourceId=rid, ScalableDimension=dim,
                               PolicyType="TargetTrackingScaling", TargetTrackingScalingPolicyConfiguration=TRACKING)
    ddb.update_contributor_insights(TableName=SOURCE, ContributorInsightsAction="ENABLE")
    ddb.update_contributor_insights(TableName=SOURCE, IndexName=GSI, ContributorInsightsAction="ENABLE",
                                    ContributorInsightsMode="THROTTLED_KEYS")
    account = arn.split(":")[4]
    policy = {"Version": "2012-10-17", "Statement": [{
        "Sid": "ReadersOnly", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
        "Action": ["dynamodb:GetItem", "dynamodb:Query"], "Resource": [arn, arn + "/index/*"]}]}
    ddb.put_resource_policy(ResourceArn=arn, Policy=json.dumps(policy))
    return arn, policy


def targets(aas, table):
    got = aas.describe_scalable_targets(ServiceNamespace="dynamodb",
                                        ResourceIds=[f"table/{table}", f"table/{table}/index/{GSI}"])
    return sorted((x["ResourceId"].replace(table, "T"), x["ScalableDimension"], x["MinCapacity"], x["MaxCapacity"])
                  for x in got["ScalableTargets"] if x["ResourceId"].split("/")[1] == table)


def policies(aas, table):
    out = []
    for rid in (f"table/{table}", f"table/{table}/index/{GSI}"):
        for p in aas.describe_scaling_policies(ServiceNamespace="dynamodb", ResourceId=rid)["ScalingPolicies"]:
            if p["ResourceId"] == rid:
                out.append((rid.replace(table, "T"), p["PolicyName"], p["ScalableDimension"], p["PolicyType"],
                            # numbers compared as numbers (70 and 70.0 are one value)
                            json.dumps(json.loads(json.dumps(p["TargetTrackingScalingPolicyConfiguration"]),
                                                  parse_int=float), sort_keys=True)))
    return sorted(out)


def counts(proxy):
    n = {k: len([r for r in proxy.requests(m) if r.status == 200]) for k, m in MUTATIONS.items()}
    n["stream"] = len([r for r in proxy.requests(MUTATIONS["stream"])
                       if r.status == 200 and b"StreamSpecification" in r.request_body])
    return n


def history(env, job):
    r = subprocess.run([ROTATOR, "journal", "show", job, "--json"], env=env, capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        return {}, r.stderr
    return json.loads(r.stdout), r.stderr


def steps_of(shown):
    doc = shown.get("doc") or {}
    return {s.get("State"): s for s in doc.get("Steps") or []}


def updating(status, headers, body):
    """A DescribeTable answer as AWS gives it right after UpdateTable: UPDATING."""
    doc = json.loads(body or b"{}")
    if isinstance(doc.get("Table"), dict) and doc["Table"].get("TableStatus") == "ACTIVE":
        doc["Table"]["TableStatus"] = "UPDATING"
        body = json.dumps(doc, separators=(",", ":")).encode()
        headers = [(k, str(zlib.crc32(body) & 0xFFFFFFFF)) if k.lower() == "x-amz-crc32" else (k, v)
                   for k, v in headers]
    return status, headers, body


def start(env, policies_dir, queue, path):
    out = open(path, "a")
    return subprocess.Popen([ROTATOR, "--policies", policies_dir, "run", "--queue-url", queue],
                            env=env, stdout=out, stderr=subprocess.STDOUT), out


with bed.Emulator() as emu, FaultProxy(emu.endpoint) as proxy, tempfile.TemporaryDirectory() as tmp:
    pdir = os.path.join(tmp, "policies")
    os.mkdir(pdir)
    with open(os.path.join(pdir, "staging.lua"), "w") as f:
        f.write(POLICY)
    r = subprocess.run([ROTATOR, "--policies", pdir, "check"], capture_output=True, text=True, timeout=30)
    t.ok(r.returncode == 0, "rotator check accepts carry_over with all four values", r.stderr)
    bad = os.path.join(tmp, "bad")
    os.mkdir(bad)
    with open(os.path.join(bad, "p.lua"), "w") as f:
        f.write('rule {\n  source_pattern = "x",\n  replacement = "y",\n  carry_over = { "stream",\n'
                '    "autoscalling" },\n}\n')
    r = subprocess.run([ROTATOR, "--policies", bad, "check"], capture_output=True, text=True, timeout=30)
    t.ok(r.returncode == 2 and "p.lua:4: carry_over: unknown value \"autoscalling\"" in r.stderr
         and "did you mean \"autoscaling\"" in r.stderr, "an unknown carry_over value is refused at its line", r.stderr)

    source_arn, source_policy = make_source(emu)
    # The bed checks IAM for what these steps call: the README's policy scopes changes to
    # *-staging-* tables and grants no DeregisterScalableTarget.
    denied = {}
    for name, call in (
            ("dynamodb:UpdateContributorInsights", lambda: emu.rotator_client("dynamodb").update_contributor_insights(
                TableName=SOURCE, ContributorInsightsAction="DISABLE")),
            ("application-autoscaling:DeregisterScalableTarget", lambda: emu.rotator_client(
                "application-autoscaling").deregister_scalable_target(
                ServiceNamespace="dynamodb", ResourceId=f"table/{SOURCE}",
                ScalableDimension="dynamodb:table:ReadCapacityUnits"))):
        try:
            call()
            denied[name] = "allowed"
        except Exception as e:  # botocore ClientError
            denied[name] = getattr(e, "response", {}).get("Error", {}).get("Code")
    t.eq(denied, {"dynamodb:UpdateContributorInsights": "AccessDeniedException",
                  "application-autoscaling:DeregisterScalableTarget": "AccessDeniedException"},
         "the bed refuses what the README's policy does not grant (contributor insights, auto scaling)")
    backup = emu.create_backup(SOURCE)
    pipe = emu.create_backup_pipeline()
    env = bed.env_for_rotator(emu, endpoint=proxy.endpoint, extra={
        "ROTATOR_WAIT_FIRST": "0.2", "ROTATOR_WAIT_MAX": "0.5", "ROTATOR_VISIBILITY_TIMEOUT": "5"})
    log_path = os.path.join(tmp, "rotator.log")
    ddb = emu.admin_client("dynamodb")
    aas = emu.admin_client("application-autoscaling")

    # Crash after the last call of the first pass: PutResourcePolicy reaches moto, its
    # answer is held, the daemon is SIGKILLed before it can journal the step.
    proxy.slow(MUTATIONS["resource_policy"], seconds=30, forward_first=True)
    # The stream's UpdateTable answer is held a moment, long enough to make the copy's next
    # two DescribeTable answers UPDATING, as AWS's are right after the update.
    proxy.slow(MUTATIONS["stream"], seconds=2, forward_first=True, body="StreamSpecification")
    proc, out = start(env, pdir, pipe.queue.url, log_path)
    try:
        pipe.publish(backup_arn=backup, job_id=JOB, start_time="2026-11-25T03:00:00Z")
        try:
            proxy.wait_for(MUTATIONS["stream"], 1, timeout=60)
            proxy.rewrite("dynamodb:DescribeTable", updating, count=2, body=f'"{COPY}"')
        except TimeoutError:
            pass
        try:
            proxy.wait_for(MUTATIONS["resource_policy"], 1, timeout=60)
            reached = True
        except TimeoutError:
            reached = False
        t.ok(reached, "the first pass reached PutResourcePolicy")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        out.close()
        first = counts(proxy)
        first["resource_policy"] = len(proxy.requests(MUTATIONS["resource_policy"]))
        t.eq(first, {"stream": 1, "insights": 2, "targets": 3, "policies": 2, "resource_policy": 1},
             "the first pass made each change once")
        t.ok(emu.get_parameter(PARAM) is None, "killed before the SSM switch")
        polled = proxy.requests("dynamodb:DescribeTable", fault="rewrite")
        next_change = proxy.requests(MUTATIONS["insights"])
        t.ok(len(polled) == 2 and next_change and max(r.end for r in polled) <= next_change[0].start,
             "after the stream's UpdateTable the copy was UPDATING twice, and waited for ACTIVE before the next step",
             [(r.fault, r.status) for r in polled])

        proxy.clear_rules()
        proxy.clear_log()
        proc, out = start(env, pdir, pipe.queue.url, log_path)
        value = wait_until(lambda: emu.get_parameter(PARAM), 60)
        copy = emu.describe_table(COPY)
        t.ok(value and copy and value == copy["TableArn"], "the restarted daemon finished: SSM names the copy")
        again = counts(proxy)
        t.eq(again, {"stream": 0, "insights": 0, "targets": 0, "policies": 0, "resource_policy": 0},
             "the restarted workflow changed nothing already done (no call repeated)")

        # The copy has each setting.
        spec = (copy or {}).get("StreamSpecification") or {}
        t.eq((spec.get("StreamEnabled"), spec.get("StreamViewType")), (True, "NEW_AND_OLD_IMAGES"),
             "the copy streams NEW_AND_OLD_IMAGES like the source")
        t.eq(targets(aas, COPY), targets(aas, SOURCE), "the copy has the source's scalable targets (table and GSI)")
        t.ok(len(targets(aas, COPY)) == 3, "three targets on the copy", targets(aas, COPY))
        t.eq(policies(aas, COPY), policies(aas, SOURCE), "the copy has the source's scaling policies by name")
        cw = emu.admin_client("cloudwatch")
        alarms = [a for a in cw.describe_alarms()["MetricAlarms"]
                  if any(f"resource/dynamodb/table/{COPY}" in x for x in a.get("AlarmActions") or [])]
        t.eq(len(alarms), 8, "one set of target-tracking alarms per copied policy (none doubled)")
        ci = ddb.describe_contributor_insights(TableName=COPY)
        cg = ddb.describe_contributor_insights(TableName=COPY, IndexName=GSI)
        t.ok(ci["ContributorInsightsStatus"] in ("ENABLED", "ENABLING"), "contributor insights on for the copy", ci)
        t.eq((cg["ContributorInsightsStatus"] in ("ENABLED", "ENABLING"), cg.get("ContributorInsightsMode")),
             (True, "THROTTLED_KEYS"), "and for its GSI, in the source's mode")
        pol = json.loads(ddb.get_resource_policy(ResourceArn=copy["TableArn"])["Policy"])
        want = json.loads(json.dumps(source_policy).replace(source_arn, copy["TableArn"]))
        t.eq(pol, want, "the copy's resource policy is the source's with the copy's ARN")
        t.ok(source_arn not in json.dumps(pol), "no source ARN left in the copy's policy")

        shown, err = history(env, JOB)
        steps = steps_of(shown)
        t.ok(all(s in steps for s in STEPS), "the history shows each carry-over step", sorted(steps) or err)
        t.ok(all(not steps.get(s, {}).get("Error") for s in STEPS), "none of them failed",
             {s: steps.get(s, {}).get("Error") for s in STEPS})
        t.eq(steps.get("Copy Stream", {}).get("Skipped"), "already streaming", "Copy Stream after the restart: already streaming")
        t.eq(steps.get("Copy Auto Scaling", {}).get("Unchanged"), 5, "Copy Auto Scaling: 3 targets + 2 policies unchanged")
        t.eq(steps.get("Copy Resource Policy", {}).get("Skipped"), "already set", "Copy Resource Policy: already set")
        t.eq(steps.get("Copy Resource Policy", {}).get("Rewritten"), 2, "two ARNs rewritten in the policy")
        names = [s.get("State") for s in (shown.get("doc") or {}).get("Steps") or []]
        last = [n for n in names if n in STEPS or n in ("Validate Restore",)]
        t.ok(last and last[-1] == "Copy Resource Policy", "the resource policy is the last post-restore step", names)

        # Redelivery of the same notification after Complete: nothing changes.
        proxy.clear_log()
        pipe.publish(backup_arn=backup, job_id=JOB, start_time="2026-11-25T03:00:00Z", wording="documented")
        t.ok(wait_until(lambda: len(proxy.requests("sqs:DeleteMessage")) >= 1, 30), "redelivered notification handled")
        t.eq(counts(proxy), {"stream": 0, "insights": 0, "targets": 0, "policies": 0, "resource_policy": 0},
             "redelivery repeated no change")
    finally:
        if proc.poll() is None:
            stop_process(proc)
        if not out.closed:
            out.close()
    log_text = open(log_path).read()
    t.ok("AccessDenied" not in log_text, "the README's IAM policy allows every carry-over call")
    t.ok(emu.rotator_keys.secret_access_key not in log_text, "no secret in the log")
    if t.failed:
        t.diag(log_text[-8000:])
sys.exit(t.done())
