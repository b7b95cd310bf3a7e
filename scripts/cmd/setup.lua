-- rotator setup [--topic-arn ARN] [--eventbridge] [--copy-jobs] [--queue-name NAME]
-- [--max-receive-count N]: creates (or checks) what Rotator needs around it, with the
-- operator's (admin) credentials:
--   the dead-letter queue NAME-dlq; the queue NAME with RedrivePolicy to it and a Policy
--   letting the topic and/or the EventBridge rule send; the topic's sqs subscription to
--   the queue with the filter policy {"EventType":["BACKUP_JOB"],"State":["COMPLETED"]};
--   the EventBridge rule NAME on the default bus (source aws.backup, "Backup Job State
--   Change", state COMPLETED) with the queue as its target. --copy-jobs adds copy jobs
--   (COPY_JOB, "Copy Job State Change") to both.
-- Each resource is read first and only what differs is changed, so a second run changes
-- nothing ("unchanged" lines). Then it prints the IAM policy Rotator's own identity needs.
local log = require "log"
local args = require "engine.args"
local json = require "json"
local task = require "engine.task"
local host = require "host"
local aws = require "aws"

local M = {}

local usage = [==[
usage: rotator setup [--topic-arn ARN] [--eventbridge] [--copy-jobs]
                     [--queue-name rotator-backup-events] [--max-receive-count 5]
                     [--policy-only]

Creates or checks, with the credentials in the environment (an operator's, not Rotator's
least-privilege identity): the SQS queue with a dead-letter queue (NAME-dlq, after
--max-receive-count receives) and a queue policy letting the notification sources send,
then the sources (one or both):
  --topic-arn ARN  the AWS Backup vault's SNS topic, checked first (sns:GetTopicAttributes:
                   if it does not exist, setup says so and creates nothing), then its sqs
                   subscription with the filter policy
                   {"EventType":["BACKUP_JOB"],"State":["COMPLETED"]}
  --eventbridge    an EventBridge rule NAME on the default bus: {"source":["aws.backup"],
                   "detail-type":["Backup Job State Change"],"detail":{"state":["COMPLETED"]}},
                   its target the queue
  --copy-jobs      copy jobs too (COPY_JOB; "Copy Job State Change"): their destination
                   recovery points are restored
Re-running changes nothing. Prints one line per resource (created / updated / unchanged),
the queue URL for `rotator run --queue-url`, then the IAM policy Rotator needs
(--policy-only prints just that). Needs sqs:GetQueueUrl, CreateQueue, GetQueueAttributes,
SetQueueAttributes; with --topic-arn sns:GetTopicAttributes, ListSubscriptionsByTopic,
Subscribe and SetSubscriptionAttributes; with --eventbridge events:DescribeRule, PutRule,
ListTargetsByRule and PutTargets.

Examples:
  rotator setup --topic-arn arn:aws:sns:us-east-1:123456789012:backup-notifications
  rotator setup --eventbridge --copy-jobs
  rotator setup --policy-only > rotator-iam-policy.json
]==]

M.FILTER_POLICY = { EventType = { "BACKUP_JOB" }, State = { "COMPLETED" } }

-- README.md's iam-policy block, verbatim (tests/lua/setup_test.lua keeps them equal).
M.IAM_POLICY = [==[
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "ConsumeBackupNotifications",
      "Effect": "Allow",
      "Action": [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl"
      ],
      "Resource": "arn:aws:sqs:*:*:rotator-backup-events"
    },
    {
      "Sid": "RedriveFromDeadLetterQueue",
      "Effect": "Allow",
      "Action": [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueUrl"
      ],
      "Resource": "arn:aws:sqs:*:*:rotator-backup-events-dlq"
    },
    {
      "Sid": "RedriveToSourceQueue",
      "Effect": "Allow",
      "Action": "sqs:SendMessage",
      "Resource": "arn:aws:sqs:*:*:rotator-backup-events"
    },
    {
      "Sid": "ListTables",
      "Effect": "Allow",
      "Action": "dynamodb:ListTables",
      "Resource": "*"
    },
    {
      "Sid": "FindNewestBackups",
      "Effect": "Allow",
      "Action": [
        "dynamodb:ListBackups",
        "backup:ListRecoveryPointsByResource",
        "backup:ListBackupJobs"
      ],
      "Resource": "*"
    },
    {
      "Sid": "ReadBackups",
      "Effect": "Allow",
      "Action": [
        "dynamodb:DescribeBackup",
        "dynamodb:RestoreTableFromBackup"
      ],
      "Resource": "arn:aws:dynamodb:*:*:table/*/backup/*"
    },
    {
      "Sid": "ReadSourceTableSettings",
      "Effect": "Allow",
      "Action": [
        "dynamodb:DescribeTable",
        "dynamodb:DescribeTimeToLive",
        "dynamodb:ListTagsOfResource",
        "dynamodb:DescribeContributorInsights",
        "dynamodb:GetResourcePolicy"
      ],
      "Resource": "arn:aws:dynamodb:*:*:table/*"
    },
    {
      "Sid": "RestoreIntoAndManageStagingCopies",
      "Effect": "Allow",
      "Action": [
        "dynamodb:RestoreTableFromBackup",
        "dynamodb:DescribeTable",
        "dynamodb:ListTagsOfResource",
        "dynamodb:TagResource",
        "dynamodb:DeleteTable",
        "dynamodb:UpdateTimeToLive",
        "dynamodb:DescribeTimeToLive",
        "dynamodb:UpdateContinuousBackups",
        "dynamodb:UpdateTable",
        "dynamodb:DescribeContributorInsights",
        "dynamodb:UpdateContributorInsights",
        "dynamodb:GetResourcePolicy",
        "dynamodb:PutResourcePolicy",
        "dynamodb:BatchWriteItem",
        "dynamodb:PutItem",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:Scan",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem"
      ],
      "Resource": "arn:aws:dynamodb:*:*:table/*-staging-*"
    },
    {
      "Sid": "PublishTableArn",
      "Effect": "Allow",
      "Action": [
        "ssm:PutParameter",
        "ssm:GetParameter"
      ],
      "Resource": "arn:aws:ssm:*:*:parameter/rotator/*"
    },
    {
      "Sid": "RestoreBackupManagedRecoveryPoints",
      "Effect": "Allow",
      "Action": [
        "backup:StartRestoreJob",
        "backup:DescribeRecoveryPoint"
      ],
      "Resource": "arn:aws:backup:*:*:recovery-point:*"
    },
    {
      "Sid": "TrackBackupCopyAndRestoreJobs",
      "Effect": "Allow",
      "Action": [
        "backup:DescribeBackupJob",
        "backup:DescribeCopyJob",
        "backup:DescribeRestoreJob",
        "backup:PutRestoreValidationResult"
      ],
      "Resource": "*"
    },
    {
      "Sid": "PassRestoreRoleToBackup",
      "Effect": "Allow",
      "Action": "iam:PassRole",
      "Resource": "arn:aws:iam::*:role/rotator-backup-restore",
      "Condition": {
        "StringEquals": {
          "iam:PassedToService": "backup.amazonaws.com"
        }
      }
    },
    {
      "Sid": "AssumeStagingAccountRole",
      "Effect": "Allow",
      "Action": "sts:AssumeRole",
      "Resource": "arn:aws:iam::*:role/rotator-staging"
    },
    {
      "Sid": "CopyAutoScaling",
      "Effect": "Allow",
      "Action": [
        "application-autoscaling:DescribeScalableTargets",
        "application-autoscaling:DescribeScalingPolicies",
        "application-autoscaling:RegisterScalableTarget",
        "application-autoscaling:PutScalingPolicy",
        "cloudwatch:DescribeAlarms",
        "cloudwatch:PutMetricAlarm",
        "cloudwatch:DeleteAlarms"
      ],
      "Resource": "*"
    },
    {
      "Sid": "AutoScalingServiceLinkedRole",
      "Effect": "Allow",
      "Action": "iam:CreateServiceLinkedRole",
      "Resource": "arn:aws:iam::*:role/aws-service-role/dynamodb.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_DynamoDBTable",
      "Condition": {
        "StringLike": {
          "iam:AWSServiceName": "dynamodb.application-autoscaling.amazonaws.com"
        }
      }
    },
    {
      "Sid": "Alert",
      "Effect": "Allow",
      "Action": "sns:Publish",
      "Resource": "arn:aws:sns:*:*:rotator-alerts"
    }
  ]
}]==]

local SPEC = { ["--topic-arn"] = "string", ["--queue-name"] = "string", ["--max-receive-count"] = "string",
  ["--policy-only"] = "bool", ["--eventbridge"] = "bool", ["--copy-jobs"] = "bool" }

-- What the EventBridge rule matches (M.event_pattern(copy_jobs)).
function M.event_pattern(copy_jobs)
  local types = { "Backup Job State Change" }
  if copy_jobs then types[2] = "Copy Job State Change" end
  return { source = { "aws.backup" }, ["detail-type"] = types, detail = { state = { "COMPLETED" } } }
end

function M.filter_policy(copy_jobs)
  if not copy_jobs then return M.FILTER_POLICY end
  return { EventType = { "BACKUP_JOB", "COPY_JOB" }, State = { "COMPLETED" } }
end

local Fail = {}
local function check(what, res, err)
  if res then return res end
  error(setmetatable({ msg = ("%s: %s"):format(what, tostring(err)) }, Fail), 0)
end

local function say(kind, what, detail)
  io.stdout:write(("%-9s %s%s\n"):format(kind, what, detail and ("  " .. detail) or ""))
  log.info("setup." .. kind, { resource = what, detail = detail })
end

---------------------------------------------------------------- comparisons (pure)
local function canon(v)
  if type(v) == "string" then
    local ok, d = pcall(json.decode, v)
    if ok and type(d) == "table" then v = d end
  end
  if type(v) ~= "table" then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = tostring(k) .. "=" .. canon(v[k]) end
  return "{" .. table.concat(out, ",") .. "}"
end

-- The attributes of want whose value differs in have (JSON compared by meaning).
function M.diff(have, want)
  local d, n = {}, 0
  for k, v in pairs(want) do
    if have[k] == nil or canon(have[k]) ~= canon(v) then d[k], n = v, n + 1 end
  end
  return n > 0 and d or nil
end

-- The queue policy: the topic (sns.amazonaws.com) and/or the rule (events.amazonaws.com)
-- may send, each only from its own ARN.
function M.queue_policy(queue_arn, topic_arn, rule_arn)
  local st = {}
  local function allow(sid, service, source)
    st[#st + 1] = { Sid = sid, Effect = "Allow", Principal = { Service = service }, Action = "sqs:SendMessage",
      Resource = queue_arn, Condition = { ArnEquals = { ["aws:SourceArn"] = source } } }
  end
  if topic_arn then allow("AllowBackupTopic", "sns.amazonaws.com", topic_arn) end
  if rule_arn then allow("AllowBackupEventRule", "events.amazonaws.com", rule_arn) end
  return assert(json.encode({ Version = "2012-10-17", Statement = st }))
end

---------------------------------------------------------------- SQS
local function queue_url(name)
  local res, err = aws.call("sqs", "GetQueueUrl", { QueueName = name })
  if res then return res.QueueUrl end
  local code = type(err) == "table" and err.code or ""
  if code:match("NonExistentQueue") or code:match("QueueDoesNotExist") then return nil end
  check("GetQueueUrl " .. name, nil, err)
end

local function queue_arn(url)
  local res = check("GetQueueAttributes " .. url,
    aws.call("sqs", "GetQueueAttributes", { QueueUrl = url, AttributeNames = { "All" } }))
  return res.Attributes or {}
end

-- Creates the queue or brings its attributes to `want` (a function of the queue's ARN).
local function ensure_queue(name, want_of)
  local url = queue_url(name)
  if not url then
    local res = check("CreateQueue " .. name, aws.call("sqs", "CreateQueue", { QueueName = name }))
    url = res.QueueUrl
    say("created", "sqs queue " .. name, url)
  end
  local attrs = queue_arn(url)
  local want = want_of(attrs.QueueArn)
  local d = M.diff(attrs, want)
  if d then
    check("SetQueueAttributes " .. name, aws.call("sqs", "SetQueueAttributes", { QueueUrl = url, Attributes = d }))
    local keys = {}
    for k in pairs(d) do keys[#keys + 1] = k end
    table.sort(keys)
    say("updated", "sqs queue " .. name, table.concat(keys, ","))
  else
    say("unchanged", "sqs queue " .. name)
  end
  return url, attrs.QueueArn
end

---------------------------------------------------------------- SNS
local function find_subscription(topic, endpoint)
  local token = nil
  repeat
    local res = check("ListSubscriptionsByTopic " .. topic,
      aws.call("sns", "ListSubscriptionsByTopic", { TopicArn = topic, NextToken = token }))
    local subs = res.Subscriptions or {}
    for _, s in ipairs(subs) do
      if s.Protocol == "sqs" and s.Endpoint == endpoint then return s.SubscriptionArn end
    end
    token = res.NextToken
  until not token or token == ""
end

-- The filter policy is set on creation, and re-asserted (same value: a no-op for SNS) on an
-- existing subscription: aws.lua's XML decoder keeps one <entry> of a map, so
-- GetSubscriptionAttributes cannot be compared reliably.
local function ensure_subscription(topic, qarn, copy_jobs)
  local arn = find_subscription(topic, qarn)
  local created = not arn
  if created then
    local res = check("Subscribe " .. topic, aws.call("sns", "Subscribe", { TopicArn = topic, Protocol = "sqs",
      Endpoint = qarn, ReturnSubscriptionArn = true }))
    arn = res.SubscriptionArn
  end
  local want = { FilterPolicyScope = "MessageAttributes", FilterPolicy = assert(json.encode(M.filter_policy(copy_jobs))) }
  for _, name in ipairs({ "FilterPolicyScope", "FilterPolicy" }) do
    check("SetSubscriptionAttributes " .. name, aws.call("sns", "SetSubscriptionAttributes",
      { SubscriptionArn = arn, AttributeName = name, AttributeValue = want[name] }))
  end
  say(created and "created" or "unchanged", "sns subscription " .. tostring(arn), "filter policy " .. want.FilterPolicy)
end

-- The topic must exist before anything is made for it: a queue subscribed to nothing
-- would sit there unnoticed.
local function ensure_topic(topic)
  local res, err = aws.call("sns", "GetTopicAttributes", { TopicArn = topic })
  if res then say("exists", "sns topic " .. topic) return end
  local code = type(err) == "table" and err.code or ""
  local region = topic:match("^arn:[%w-]+:sns:([%w-]+):") or "?"
  if code == "NotFound" or code == "NotFoundException" then
    error(setmetatable({ msg = ("sns topic %s does not exist (GetTopicAttributes: %s); nothing was created. "
      .. "Check --topic-arn: the topic AWS Backup notifies (its account and region, %s, must be the ones "
      .. "Rotator calls: AWS_REGION); AWS Backup's vault notifications name it (aws backup "
      .. "get-backup-vault-notifications --backup-vault-name VAULT)"):format(topic, tostring(err), region) }, Fail), 0)
  end
  if code == "AuthorizationError" or code == "AccessDenied" or code == "AccessDeniedException" then
    error(setmetatable({ msg = ("sns:GetTopicAttributes on %s was denied (%s); nothing was created. "
      .. "Run setup with credentials allowed sns:GetTopicAttributes on the topic"):format(topic, tostring(err)) }, Fail), 0)
  end
  check("GetTopicAttributes " .. topic .. " (nothing was created)", nil, err)
end

---------------------------------------------------------------- EventBridge
-- The rule (created, or its pattern brought back to ours); returns its ARN.
local function ensure_rule(name, copy_jobs)
  local pattern = assert(json.encode(M.event_pattern(copy_jobs)))
  local have, err = aws.call("events", "DescribeRule", { Name = name })
  if not have and not (type(err) == "table" and err.code == "ResourceNotFoundException") then
    check("DescribeRule " .. name, nil, err)
  end
  if have and canon(have.EventPattern) == canon(pattern) and have.State == "ENABLED" then
    say("unchanged", "eventbridge rule " .. name, pattern)
    return have.Arn
  end
  local res = check("PutRule " .. name, aws.call("events", "PutRule", { Name = name, EventPattern = pattern,
    State = "ENABLED", Description = "AWS Backup job state changes for Rotator" }))
  say(have and "updated" or "created", "eventbridge rule " .. name, pattern)
  return res.RuleArn
end

local function ensure_target(rule, qarn)
  local res = check("ListTargetsByRule " .. rule, aws.call("events", "ListTargetsByRule", { Rule = rule }))
  for _, tgt in ipairs(res.Targets or {}) do
    if tgt.Arn == qarn then say("unchanged", "eventbridge target " .. qarn) return end
  end
  local put = check("PutTargets " .. rule, aws.call("events", "PutTargets", { Rule = rule,
    Targets = { { Id = "rotator-queue", Arn = qarn } } }))
  if (put.FailedEntryCount or 0) > 0 then
    check("PutTargets " .. rule, nil, json.encode(put.FailedEntries))
  end
  say("created", "eventbridge target " .. qarn)
end

---------------------------------------------------------------- the command
local function setup(opts)
  if opts.topic_arn then ensure_topic(opts.topic_arn) end
  local name = opts.queue_name or "rotator-backup-events"
  local max = tostring(math.tointeger(tonumber(opts.max_receive_count or "5")) or 5)
  local rule_arn = opts.eventbridge and ensure_rule(name, opts.copy_jobs) or nil
  local _, dlq_arn = ensure_queue(name .. "-dlq", function() return {} end)
  local url, qarn = ensure_queue(name, function(arn)
    return { Policy = M.queue_policy(arn, opts.topic_arn, rule_arn),
      RedrivePolicy = assert(json.encode({ deadLetterTargetArn = dlq_arn, maxReceiveCount = max })) }
  end)
  if opts.topic_arn then ensure_subscription(opts.topic_arn, qarn, opts.copy_jobs) end
  if rule_arn then ensure_target(name, qarn) end
  io.stdout:write("\nqueue url: ", url, "\n")
end

local function run(argv)
  local opts, pos = args.parse(argv, SPEC, "setup")
  if not opts then io.stderr:write("rotator setup: ", pos, "\n") return 2 end
  if opts.policy_only then io.stdout:write(M.IAM_POLICY, "\n") return 0 end
  if opts.topic_arn and not opts.topic_arn:match("^arn:[%w-]+:sns:") then
    io.stderr:write("rotator setup: --topic-arn must be an SNS topic ARN (the AWS Backup vault's topic), got ",
      opts.topic_arn, "\n")
    return 2
  end
  if not opts.topic_arn and not opts.eventbridge then
    io.stderr:write("rotator setup: name a notification source: --topic-arn ARN (the vault's SNS topic) "
      .. "and/or --eventbridge\n", usage)
    return 2
  end
  task.spawn(function()
    local ok, err = pcall(setup, opts)
    if not ok then
      io.stderr:write("rotator setup: ", type(err) == "table" and err.msg or tostring(err), "\n")
      io.stdout:flush()
      return host.exit(1)
    end
    io.stdout:write("\nIAM policy for Rotator's identity (adjust the resource names):\n", M.IAM_POLICY, "\n")
    io.stdout:flush()
    host.exit(0)
  end)
end

M.summary = "create or check the queue, its DLQ and the topic subscription; print IAM policy"
M.usage, M.run = usage, run
return M
