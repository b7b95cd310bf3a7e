-- Start-up checks: before the daemon takes work, the region and the credentials resolve
-- and the queue answers (SQS GetQueueAttributes, which needs both).
--   M.check(svc, queue_url) -> report, one attempt:
--     report = { ok, permanent, failed = "region"|"credentials"|"queue"|nil, message,
--                checks = { { name, ok (true, false, nil: not checked), detail }, ... } }
--   M.classify(err, queue_url) -> what ("region"|"credentials"|"queue"), permanent, message
--     (with the next step), for any SQS error (the intake uses it on a failed receive)
--   M.wait(svc, queue_url, on_retry) -> report: checks until the queue answers or a problem
--     is permanent; a transient one is retried with backoff (1, 2, 4 ... 30 s), and
--     on_retry(report, attempt, delay) runs before each wait (the daemon logs and shows it).
-- Permanent (waiting cannot heal it): no region, no credentials anywhere in the chain,
-- credentials refused, the queue missing, access denied, a malformed queue URL. Transient:
-- network errors, timeouts, throttling, 5xx. GetQueueAttributes changes nothing at the
-- other end (a ReceiveMessage would count a receive against the messages' redrive limit).
local aws = require "aws"
local task = require "engine.task"

local M = { backoff_max = 30 }

local CREDENTIALS_REFUSED = {
  InvalidClientTokenId = true, UnrecognizedClientException = true, SignatureDoesNotMatch = true,
  InvalidSignatureException = true, MissingAuthenticationToken = true, IncompleteSignature = true,
  AuthFailure = true, ExpiredToken = true, ExpiredTokenException = true, InvalidAccessKeyId = true,
}
local DENIED = {
  AccessDenied = true, AccessDeniedException = true, AuthorizationError = true,
  ["AWS.SimpleQueueService.AccessDenied"] = true, KMS_AccessDenied = true, ["KMS.AccessDeniedException"] = true,
}
local MISSING = {
  QueueDoesNotExist = true, ["AWS.SimpleQueueService.NonExistentQueue"] = true, NonExistentQueue = true,
}

local NEEDED = "sqs:GetQueueAttributes, sqs:ReceiveMessage, sqs:DeleteMessage and sqs:ChangeMessageVisibility"

-- What failed and whether it can heal: name, permanent, message (with the next step).
local function classify(err, queue_url)
  local code, msg = tostring(err.code or ""), tostring(err.message or "")
  if code == "CredentialsError" then
    if msg:find("no AWS region", 1, true) then
      return "region", true, msg .. "; or run where EC2 instance metadata gives it (rotator whoami shows what resolves)"
    end
    return "credentials", true, msg
  end
  if CREDENTIALS_REFUSED[code] then
    local source = select(2, aws.resolved()) or "?"
    return "credentials", true, ("the credentials were refused (%s: %s; %s): check the keys or the profile "
      .. "(rotator whoami --call)"):format(code, msg, source)
  end
  if MISSING[code] then
    return "queue", true, ("queue %s does not exist (%s): create it and its subscription with "
      .. "`rotator setup --topic-arn ARN` (the AWS Backup SNS topic; it prints the queue URL), or fix "
      .. "--queue-url / ROTATOR_QUEUE_URL (Rotator calls region %s)"):format(queue_url, code, aws.resolved() or "?")
  end
  if DENIED[code] then
    local action = msg:match("perform: ([%w]+:[%w]+)") or "sqs:GetQueueAttributes"
    local who = msg:match("User: (%S+)") or msg:match("(arn:aws[%w-]*:[%w-]+::%d+:%S+)")
    return "queue", true, ("access denied on queue %s: %s is missing %s (%s: %s). Grant it %s on the queue "
      .. "(`rotator setup --policy-only` prints the policy)"):format(queue_url, who or "Rotator's identity", action,
        code, msg, NEEDED)
  end
  if err.retryable or code == "NetworkingError" or code == "TimeoutError" or (err.status or 0) >= 500 then
    return "queue", false, ("queue %s did not answer: %s: %s (endpoint %s)"):format(queue_url, code, msg,
      aws.endpoint("sqs", aws.resolved()) or "?")
  end
  return "queue", true, ("queue %s: %s: %s; check --queue-url / ROTATOR_QUEUE_URL"):format(queue_url, code, msg)
end

M.classify = classify

local ORDER = { "region", "credentials", "queue" }

function M.check(svc, queue_url)
  local res, err = svc:call("sqs", "GetQueueAttributes", { QueueUrl = queue_url,
    AttributeNames = { "QueueArn", "ApproximateNumberOfMessages", "RedrivePolicy" } }, { max_attempts = 1, timeout = 5 })
  local region, creds = aws.resolved()
  local report = { ok = res ~= nil, permanent = false, checks = {} }
  local failed, message
  if not res then
    failed, report.permanent, message = classify(err, queue_url)
    report.failed, report.message = failed, message
  end
  local details = {
    region = region or "unknown",
    credentials = creds,
    queue = res and (function()
      local a = res.Attributes or {}
      return ("%s answered: %s, %s messages waiting, %s"):format(queue_url, tostring(a.QueueArn or "?"),
        tostring(a.ApproximateNumberOfMessages or "?"),
        a.RedrivePolicy and "dead-letter queue set" or "no dead-letter queue (RedrivePolicy): a failing message comes back forever")
    end)() or nil,
  }
  local reached = true
  for _, name in ipairs(ORDER) do
    if name == failed then
      report.checks[#report.checks + 1] = { name = name, ok = false, detail = message }
      reached = false
    elseif reached then
      report.checks[#report.checks + 1] = { name = name, ok = true, detail = details[name] }
    else
      report.checks[#report.checks + 1] = { name = name, ok = nil, detail = "not checked (needs the " .. failed .. ")" }
    end
  end
  return report
end

function M.wait(svc, queue_url, on_retry, stopped)
  local delay, attempt = 1, 0
  while true do
    attempt = attempt + 1
    local report = M.check(svc, queue_url)
    if report.ok or report.permanent or (stopped and stopped()) then return report end
    if on_retry then on_retry(report, attempt, delay) end
    task.sleep(delay)
    if stopped and stopped() then return report end
    delay = math.min(delay * 2, M.backoff_max)
  end
end

return M
