-- Parsing AWS Backup notifications in every form Rotator is handed one:
--   * an SQS message as ReceiveMessage returns it ({MessageId, Body, MessageAttributes})
--     whose Body is an SNS envelope (JSON) or, with raw delivery, the bare message text;
--   * an SNS envelope ({"Type":"Notification","Message":...,"MessageAttributes":...});
--   * a Lambda-style {"Records":[{"Sns":{...}}, ...]} document (every record is handled);
--   * an EventBridge "Backup Job State Change" or "Copy Job State Change" event (the rule's
--     target delivers the event document itself as the SQS body).
-- Backup jobs and copy jobs both name a recovery point to restore: a copy job's is the
-- destination recovery point (in the destination vault). A copy job's record carries
-- job_type = "COPY_JOB" and copy_job_id; its backup_job_id (the workflow's key) is the
-- copy job's id.
-- M.parse(input) takes a string or a decoded table and returns a list of records, or
-- nil and a reason when the input is not a notification at all. A record is either
--   { skip = "reason", ... }   (not a DynamoDB table, not COMPLETED, ...)
-- or
--   { backup_job_id, job_type ("BACKUP_JOB" | "COPY_JOB"), copy_job_id, recovery_point_arn,
--     resource_arn, table_name, start_time (RFC 3339 text as received), start_epoch,
--     restore_via, message, message_id, notes = {...} }
-- Message attributes (EventType, State, StartTime, Id) win over the body text.
local json = require "json"
local clock = require "clock"

local M = {}

M.RESTORE_DYNAMODB = "dynamodb:RestoreTableFromBackup"
M.RESTORE_BACKUP = "backup:StartRestoreJob"

-- "arn:aws:dynamodb:us-east-1:1234:table/NAME" -> NAME (nil for anything else)
function M.table_name(arn)
  if type(arn) ~= "string" then return nil end
  return arn:match("^arn:[%w-]+:dynamodb:[%w-]*:%d*:table/([%w_.-]+)$")
end

-- "arn:aws:dynamodb:REGION:ACCOUNT:..." -> partition, region, account
function M.arn_parts(arn)
  return (arn or ""):match("^arn:([%w-]+):[%w-]+:([%w-]*):(%d*):")
end

local function restore_via(rp_arn)
  if type(rp_arn) == "string" and rp_arn:match("^arn:[%w-]+:backup:") then return M.RESTORE_BACKUP end
  return M.RESTORE_DYNAMODB
end

-- The value after a label in the message body: a run of non-space characters, less the
-- full stop that ends the sentence ("...table/billing.v2_ledger. Backup Job Id : ...").
-- A label is found by a fixed part of it first (plain find, no pattern backtracking at
-- every byte of the body); every match of the label has that part at most `back` bytes
-- after its start, so the pattern starts looking there. In a text whose only white
-- space is " " (the usual one line), the value (%S+) runs to the next space: the label
-- is matched without it (the 4th pattern) and the value's end found by a plain find,
-- instead of testing %S byte by byte.
local LABELS = {
  recovery_point_arn = { "[Rr]ecovery [Pp]oint ARN%s*:%s*(%S+)", "oint ARN", 10, "[Rr]ecovery [Pp]oint ARN%s*:%s*" },
  resource_arn = { "Resource ARN%s*:%s*(%S+)", "Resource ARN", 0, "Resource ARN%s*:%s*" },
  backup_job_id = { "Backup ?Job I[Dd]%s*:%s*(%S+)", "Job I", 7, "Backup ?Job I[Dd]%s*:%s*" },
  -- ("Job I" would find the backup job's label)
  copy_job_id = { "Copy ?Job I[Dd]%s*:%s*(%S+)", "Copy", 0, "Copy ?Job I[Dd]%s*:%s*" },
}

-- Is " " the text's only white space (of what %s matches)?
local function only_spaces(text)
  return not (text:find("\n", 1, true) or text:find("\t", 1, true) or text:find("\r", 1, true)
    or text:find("\f", 1, true) or text:find("\v", 1, true))
end

local function after(text, label, spaces)
  local at = text:find(label[2], 1, true)
  if not at then return nil end
  local init = at > label[3] and at - label[3] or 1
  local v
  if spaces then
    -- %s* took every space, so text[e + 1] starts the value unless the text ends there
    local _, e = text:find(label[4], init)
    if e and e < #text then v = text:sub(e + 1, (text:find(" ", e + 1, true) or 0) - 1) end
  else
    v = text:match(label[1], init)
  end
  if v and v:sub(-1) == "." then v = v:sub(1, -2) end
  return v
end

-- Facts the body text carries (both wordings AWS has used).
function M.parse_body(text)
  if type(text) ~= "string" then return nil end
  local state
  if text:find("completed successfully", 1, true) then state = "COMPLETED"
  elseif text:find("failed", 1, true) then state = "FAILED"
  elseif text:find("expired", 1, true) then state = "EXPIRED"
  elseif text:find("aborted", 1, true) then state = "ABORTED" end
  local spaces = only_spaces(text)
  local facts = {
    recovery_point_arn = after(text, LABELS.recovery_point_arn, spaces),
    resource_arn = after(text, LABELS.resource_arn, spaces),
    backup_job_id = after(text, LABELS.backup_job_id, spaces),
    copy_job_id = after(text, LABELS.copy_job_id, spaces),
    state = state,
  }
  if not (facts.resource_arn or facts.recovery_point_arn or facts.backup_job_id or facts.copy_job_id) then return nil end
  return facts
end

-- SNS attributes are {Type, Value}; SQS ones {DataType, StringValue}; Lambda-SQS ones
-- {dataType, stringValue}. Returns a flat name -> string table.
local function flat_attributes(attrs)
  local out = {}
  if type(attrs) ~= "table" then return out end
  for k, v in pairs(attrs) do
    if type(v) == "table" then
      local s = v.Value or v.StringValue or v.stringValue or v.value
      if type(s) == "string" then out[k] = s end
    elseif type(v) == "string" then
      out[k] = v
    end
  end
  return out
end

local function nonempty(s)
  if type(s) == "string" and s ~= "" then return s end
end

-- Turn body facts + attributes into a record (or a skip record).
local function record_from(message, attrs, meta)
  local facts = M.parse_body(message)
  if not facts then return nil, "message text is not an AWS Backup notification" end
  local rec = {
    message = message,
    message_id = meta.message_id,
    notification_time = meta.timestamp,
    backup_job_id = nonempty(attrs.Id) or facts.backup_job_id or facts.copy_job_id,
    recovery_point_arn = facts.recovery_point_arn,
    resource_arn = facts.resource_arn,
    state = nonempty(attrs.State) or facts.state,
    event_type = nonempty(attrs.EventType) or (facts.copy_job_id and not facts.backup_job_id and "COPY_JOB") or nil,
    start_time = nonempty(attrs.StartTime),
    notes = {},
  }
  if rec.event_type == "COPY_JOB" then rec.copy_job_id = rec.backup_job_id end
  return rec
end

local function finish(rec)
  if rec.event_type and rec.event_type ~= "BACKUP_JOB" and rec.event_type ~= "COPY_JOB" then
    return { skip = "event type " .. rec.event_type .. " is not BACKUP_JOB or COPY_JOB", backup_job_id = rec.backup_job_id }
  end
  rec.job_type = rec.event_type or "BACKUP_JOB"
  rec.table_name = M.table_name(rec.resource_arn)
  if not rec.table_name then
    return { skip = "not a DynamoDB table", resource_arn = rec.resource_arn, backup_job_id = rec.backup_job_id }
  end
  if rec.state ~= "COMPLETED" then
    return { skip = ("state %s is not COMPLETED"):format(rec.state or "unknown"), table_name = rec.table_name,
      backup_job_id = rec.backup_job_id }
  end
  if not rec.recovery_point_arn then
    return { skip = "no recovery point ARN in the notification", table_name = rec.table_name,
      backup_job_id = rec.backup_job_id }
  end
  if not rec.backup_job_id then
    return { skip = ("no %s id in the notification"):format(rec.job_type == "COPY_JOB" and "copy job" or "backup job"),
      table_name = rec.table_name }
  end
  if not rec.start_time then
    rec.start_time = rec.notification_time
    rec.notes[#rec.notes + 1] = "StartTime missing: using the notification time " .. tostring(rec.start_time)
  end
  local epoch, err = rec.start_time and clock.parse_rfc3339(rec.start_time)
  if not epoch then
    return { skip = "no usable backup start time: " .. tostring(err or "none given"), table_name = rec.table_name,
      backup_job_id = rec.backup_job_id }
  end
  rec.start_epoch = epoch
  rec.restore_via = restore_via(rec.recovery_point_arn)
  return rec
end

local function from_sns(env)
  local rec, err = record_from(env.Message, flat_attributes(env.MessageAttributes),
    { message_id = env.MessageId, timestamp = env.Timestamp })
  if not rec then return nil, err end
  return finish(rec)
end

local function from_eventbridge(ev)
  local d = type(ev.detail) == "table" and ev.detail or {}
  local kind = ev["detail-type"]
  if kind == "Copy Job State Change" then
    return finish({
      message = json.encode(ev), message_id = ev.id, notification_time = ev.time,
      event_type = "COPY_JOB", backup_job_id = d.copyJobId, copy_job_id = d.copyJobId,
      recovery_point_arn = d.destinationRecoveryPointArn, resource_arn = d.resourceArn,
      state = d.state, start_time = nonempty(d.creationDate), notes = {},
    })
  elseif kind ~= nil and kind ~= "Backup Job State Change" then
    return { skip = ("EventBridge event %q is not a backup or copy job state change"):format(tostring(kind)),
      backup_job_id = d.backupJobId or d.restoreJobId }
  end
  local rec = {
    message = json.encode(ev),
    message_id = ev.id,
    notification_time = ev.time,
    backup_job_id = d.backupJobId,
    recovery_point_arn = d.recoveryPointArn or (type(ev.resources) == "table" and ev.resources[1]) or nil,
    resource_arn = d.resourceArn,
    state = d.state,
    start_time = nonempty(d.creationDate),
    notes = {},
  }
  return finish(rec)
end

local parse_value

-- An SQS message (ReceiveMessage shape, or the Lambda SQS-event record shape).
local function from_sqs(msg)
  local body = msg.Body or msg.body
  local id = msg.MessageId or msg.messageId
  if type(body) ~= "string" then return nil, "SQS message has no Body" end
  local decoded, jerr = json.decode(body)
  if type(decoded) == "table" then return parse_value(decoded) end
  if body:match("^%s*[{%[]") then
    return nil, "body is not valid JSON nor a recognised notification (" .. tostring(jerr) .. ")"
  end
  local rec, err = record_from(body, flat_attributes(msg.MessageAttributes or msg.messageAttributes),
    { message_id = id })
  if not rec then return nil, "body is not valid JSON nor a recognised notification (" .. err .. ")" end
  return { finish(rec) }
end

function parse_value(v)
  if type(v) ~= "table" then return nil, "not a JSON object" end
  if type(v.Records) == "table" then
    local out = {}
    for i, r in ipairs(v.Records) do
      local got, err
      if type(r) ~= "table" then got, err = nil, "not an object"
      elseif r.Sns then got, err = from_sns(r.Sns)
      elseif r.body or r.Body then
        local list
        list, err = from_sqs(r)
        if list then table.move(list, 1, #list, #out + 1, out) end
        got = false
      else got, err = nil, "neither an SNS nor an SQS record" end
      if got then out[#out + 1] = got
      elseif got == nil then out[#out + 1] = { skip = ("record %d: %s"):format(i, err), error = true } end
    end
    return out
  end
  if v.Body ~= nil or v.body ~= nil then return from_sqs(v) end
  if v.Message ~= nil then
    local r, err = from_sns(v)
    if not r then return nil, err end
    return { r }
  end
  if v["detail-type"] == "Backup Job State Change" or v["detail-type"] == "Copy Job State Change"
    or (v.source == "aws.backup" and (v.detail or v["detail-type"])) then
    return { from_eventbridge(v) }
  end
  return nil, "JSON document is not an SQS message, SNS envelope, Records list or EventBridge event"
end

-- Parse a notification (string or decoded table). Returns the records or nil, reason.
function M.parse(input)
  if type(input) == "table" then return parse_value(input) end
  if type(input) ~= "string" then return nil, "expected a string or table, got " .. type(input) end
  local decoded, jerr = json.decode(input)
  if decoded ~= nil then return parse_value(decoded) end
  if input:match("^%s*[{%[]") then return nil, "not valid JSON: " .. tostring(jerr) end
  -- Raw message delivery straight from a file or stdin: the bare text.
  local rec, err = record_from(input, {}, {})
  if not rec then return nil, "not valid JSON (" .. tostring(jerr) .. ") nor a notification text (" .. err .. ")" end
  return { finish(rec) }
end

return M
