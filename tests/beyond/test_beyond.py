"""Issue 7 end to end (tests/t/90-beyond.t): post-restore settings, retention, validation,
alerts, dry-run retention plan and `rotator setup`, on moto with IAM checking."""
import json, os, signal, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.join(os.environ["ROTATOR_ROOT"], "tests/bed"))
import bed
from bed import stop_process, wait_until
from tap import Tap

t = Tap()
ROTATOR = os.environ["ROTATOR"]
PARAM = "/rotator/orders-table-arn"
LOOKALIKE = "orders-staging-20200101-00-00-00"   # Rotator-like name, no Rotator tags
POLICY = """
rule {
  name = "staging",
  source_pattern = "-production$",
  replacement = "-staging",
  ssm_parameter = "%(param)s",
  copy_ttl = true,
  pitr = true,
  tags = { env = "staging" },
  retention = { keep = 2 },
  validation = {
    item_count = true, key_schema = true,
    check = function(ctx)
      local r = ctx.call("dynamodb", "GetItem", { TableName = ctx.table_name, Key = { pk = { S = "item-000001" } } })
      return r ~= nil and r.Item ~= nil, "known item item-000001 is missing"
    end,
  },
  alert_topic_arn = "%(topic)s",
}
"""


def copy(hour):
    return "orders-staging-20261125-%02d-00-00" % hour



def tags_of(emu, name):
    arn = emu.describe_table(name)["TableArn"]
    return {x["Key"]: x["Value"] for x in emu.admin_client("dynamodb").list_tags_of_resource(ResourceArn=arn)["Tags"]}


def start_daemon(args, env, path):
    out = open(path, "w")
    return subprocess.Popen([ROTATOR, *args], env=env, stdout=out, stderr=subprocess.STDOUT), out


def stop(proc, out):
    rc = stop_process(proc)
    out.close()
    return rc


with bed.Emulator() as emu, tempfile.TemporaryDirectory() as tmp:
    alerts = emu.create_alerts()
    policies = os.path.join(tmp, "policies")
    os.mkdir(policies)
    with open(os.path.join(policies, "staging.lua"), "w") as f:
        f.write(POLICY % {"param": PARAM, "topic": alerts.topic_arn})
    emu.create_table("orders-production", items=5, ttl_attribute="expires_at")
    emu.create_table(LOOKALIKE, items=1)
    pipe = emu.create_backup_pipeline()
    env = bed.env_for_rotator(emu, extra={
        "ROTATOR_WAIT_FIRST": "0.2", "ROTATOR_WAIT_MAX": "0.5", "ROTATOR_VISIBILITY_TIMEOUT": "30"})
    log_path = os.path.join(tmp, "rotator.log")
    proc, out = start_daemon(["--policies", policies, "run", "--queue-url", pipe.queue.url], env, log_path)
    ddb = emu.admin_client("dynamodb")
    try:
        # Three backups, oldest first: keep = 2 leaves the two newest copies.
        for hour in (1, 2, 3):
            b = emu.create_backup("orders-production")
            pipe.publish(backup_arn=b, start_time="2026-11-25T%02d:00:00Z" % hour)
            arn = wait_until(lambda: (emu.get_parameter(PARAM) or "").endswith(copy(hour)) and emu.get_parameter(PARAM), 60)
            t.ok(arn, "backup %d restored and SSM switched to %s" % (hour, copy(hour)))
        wait_until(lambda: emu.describe_table(copy(1)) is None, 20)
        names = emu.table_names()
        t.ok(copy(1) not in names, "keep=2: the oldest Rotator copy was deleted", names)
        t.ok(copy(2) in names and copy(3) in names, "the two newest copies are kept", names)
        t.ok(LOOKALIKE in names, "the untagged look-alike table is untouched")
        t.ok("orders-production" in names, "the source table is untouched")
        t.ok(emu.get_parameter(PARAM).endswith(copy(3)), "SSM points at the newest copy")

        tags = tags_of(emu, copy(3))
        t.eq({k: tags.get(k) for k in ("rotator:source", "rotator:rule", "env")},
             {"rotator:source": "orders-production", "rotator:rule": "staging", "env": "staging"},
             "restored copy tagged (rotator:source, rotator:rule, policy tags)")
        t.ok(tags.get("rotator:backup-job"), "rotator:backup-job tag set")
        ttl = ddb.describe_time_to_live(TableName=copy(3))["TimeToLiveDescription"]
        t.eq((ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")), ("ENABLED", "expires_at"), "TTL copied from the source")
        pitr = ddb.describe_continuous_backups(TableName=copy(3))["ContinuousBackupsDescription"]
        t.eq(pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"], "ENABLED", "PITR enabled")

        # Validation failure: the known item is gone from the backup -> Error, SSM kept,
        # no retention, one alert.
        ddb.delete_item(TableName="orders-production", Key={"pk": {"S": "item-000001"}})
        b4 = emu.create_backup("orders-production")
        pipe.publish(backup_arn=b4, start_time="2026-11-25T04:00:00Z")
        msgs = alerts.messages(wait=30)
        t.eq(len(msgs), 1, "a failed workflow publishes one alert")
        alert = json.loads(msgs[0]) if msgs else {}
        t.eq((alert.get("table"), alert.get("step")), (copy(4), "Validate Restore"), "alert names the table and the step")
        t.ok("item-000001" in (alert.get("error") or "") and alert.get("source_table") == "orders-production",
             "alert carries the error", alert)
        t.ok(emu.get_parameter(PARAM).endswith(copy(3)), "validation failure: SSM keeps the previous copy")
        t.ok(emu.describe_table(copy(2)) is not None, "validation failure: no retention ran")
        # The message comes back after its visibility timeout and fails again: no second alert.
        time.sleep(2)
        t.eq(len(alerts.messages(wait=0)), 0, "no duplicate alert")
    finally:
        rc = stop(proc, out)
    t.eq(rc, 0, "daemon stopped cleanly")
    log_text = open(log_path).read()
    t.ok("retention.deleted" in log_text and "beyond the newest 2" in log_text, "deletion logged with its reason")
    t.ok("validation.failed" in log_text, "validation failure logged")

    # Dry run: plans DeleteTable with a reason and deletes nothing. The failed workflow's
    # message, left for redelivery, comes back after its 30 s visibility timeout: drained
    # first, or the dry-run daemon (whose stop waits for its open long poll) may plan it too.
    wait_until(lambda: pipe.queue.depth()["in_flight"] == 0, 40)
    pipe.queue.drain()
    ddb.put_item(TableName="orders-production", Item=bed.Emulator.make_item(1))
    b5 = emu.create_backup("orders-production")
    pipe.publish(backup_arn=b5, start_time="2026-11-25T05:00:00Z")
    dry_path = os.path.join(tmp, "dry.out")
    proc, out = start_daemon(["--policies", policies, "--log-level", "warn", "run", "--dry-run",
                              "--queue-url", pipe.queue.url], env, dry_path)
    try:
        wait_until(lambda: '"dynamodb.DeleteTable"' in open(dry_path).read(), 30)
    finally:
        stop(proc, out)
    plans = [json.loads(l) for l in open(dry_path) if l.startswith('{"call"')]
    deletes = [p for p in plans if p["call"] == "dynamodb.DeleteTable"]
    # Planned on the state the workflow leaves: the parameter moves to the new copy (5), so
    # keep = 2 keeps 5 and 4 and the two older ones go, copy(3) (today's target) included,
    # exactly as the real run would delete them.
    t.eq([p["input"]["TableName"] for p in deletes], [copy(2), copy(3)],
         "dry run plans deleting the copies beyond keep=2, on the parameter as the run leaves it")
    t.ok(deletes and "beyond the newest 2" in deletes[0].get("reason", ""), "planned DeleteTable carries its reason", deletes)
    t.ok(emu.describe_table(copy(2)) is not None and emu.describe_table(copy(5)) is None, "dry run deleted and restored nothing")

    # rotator setup, twice, with the operator's (admin) keys: one queue (+ DLQ), one subscription.
    sns = emu.admin_client("sns")
    topic = sns.create_topic(Name="backup-notifications-setup")["TopicArn"]
    admin_env = bed.env_for_rotator(emu, keys=emu.admin_keys)
    runs = [subprocess.run([ROTATOR, "--log-level", "warn", "setup", "--topic-arn", topic, "--queue-name", "rotator-setup-events"],
                           env=admin_env, capture_output=True, text=True, timeout=60) for _ in range(2)]
    t.eq([r.returncode for r in runs], [0, 0], "setup runs twice with status 0")
    first, second = runs[0].stdout, runs[1].stdout
    t.ok(first.count("created") == 3, "first run creates the DLQ, the queue and the subscription")
    t.ok("created" not in second and "updated" not in second, "second run changes nothing")
    t.ok('"Sid": "ConsumeBackupNotifications"' in second, "setup prints the IAM policy")
    sqs = emu.admin_client("sqs")
    queues = sqs.list_queues(QueueNamePrefix="rotator-setup-events").get("QueueUrls", [])
    t.eq(sorted(q.rsplit("/", 1)[1] for q in queues), ["rotator-setup-events", "rotator-setup-events-dlq"], "one queue and its DLQ")
    subs = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    t.eq(len(subs), 1, "one subscription")
    if subs:
        attrs = sns.get_subscription_attributes(SubscriptionArn=subs[0]["SubscriptionArn"])["Attributes"]
        t.eq(json.loads(attrs.get("FilterPolicy", "{}")), {"EventType": ["BACKUP_JOB"], "State": ["COMPLETED"]}, "filter policy set")
    qurl = [q for q in queues if q.endswith("/rotator-setup-events")][0] if queues else None
    qa = sqs.get_queue_attributes(QueueUrl=qurl, AttributeNames=["All"])["Attributes"] if qurl else {}
    t.ok("rotator-setup-events-dlq" in qa.get("RedrivePolicy", "") and topic in qa.get("Policy", ""),
         "queue has the redrive policy and the topic's send permission")
    # The topic delivers into the new queue (the subscription and queue policy work).
    sns.publish(TopicArn=topic, Message="hello", MessageAttributes={
        "EventType": {"DataType": "String", "StringValue": "BACKUP_JOB"}, "State": {"DataType": "String", "StringValue": "COMPLETED"}})
    got = wait_until(lambda: sqs.receive_message(QueueUrl=qurl, WaitTimeSeconds=1).get("Messages"), 10) if qurl else None
    t.ok(got, "a matching notification reaches the queue")
    if t.failed:
        t.diag("setup stdout:\n" + first + "\n---\n" + second + runs[0].stderr + runs[1].stderr)
        t.diag(log_text[-8000:])
sys.exit(t.done())
