-- Notification parsing: the shared corpus (../shared/testdata/events, compared with its
-- expected.json) when present, and inline fixtures of our own that always run.
local T = require "engine.testing"
local host = require "host"
local json = require "json"
local N = require "workflow.notification"

local function shared_dir()
  local base = os.getenv("ROTATOR_SHARED")
  if not base then
    local root = os.getenv("ROTATOR_ROOT") or "."
    base = root .. "/../shared"
  end
  return base .. "/testdata/events"
end

local FIELDS = { "backup_job_id", "recovery_point_arn", "resource_arn", "table_name", "start_time", "restore_via", "skip" }

local function pick(rec)
  if rec.skip then return { skip = rec.skip } end
  local out = {}
  for _, k in ipairs(FIELDS) do out[k] = rec[k] end
  return out
end

local function expected_view(want)
  local out = {}
  for _, k in ipairs(FIELDS) do out[k] = want[k] end
  if want.skip == nil and want.restore_via == nil then out.restore_via = N.RESTORE_DYNAMODB end
  return out
end

local BODY_LEGACY = "An AWS Backup job was completed successfully. Recovery point ARN: "
  .. "arn:aws:dynamodb:eu-west-1:111122223333:table/Orders-Production/backup/01795575600000-a1b2c3d4. "
  .. "Backed up Resource ARN : arn:aws:dynamodb:eu-west-1:111122223333:table/Orders-Production. "
  .. "Backup Job Id : 5a772b5a-36d5-4a69-9b18-ed2f5213c659"

local function envelope(message, attrs)
  local ma = {}
  for k, v in pairs(attrs or {}) do ma[k] = { Type = "String", Value = v } end
  return json.encode({ Type = "Notification", MessageId = "m-1", Message = message,
    Timestamp = "2026-11-25T03:41:07.512Z", MessageAttributes = ma })
end

return {
  shared_corpus = function()
    local dir = shared_dir()
    local names = host.list_dir(dir)
    if not names then
      T.skip(dir .. " is absent (a user's clone has no ../shared; set ROTATOR_SHARED)")
    end
    local expected = assert(json.decode(assert(host.read_file(dir .. "/expected.json"))))
    local seen = 0
    for _, name in ipairs(names) do
      if name:match("%.json$") and name ~= "expected.json" then
        local want = expected[name]
        assert(want, name .. " has no entry in expected.json")
        local recs, err = N.parse(assert(host.read_file(dir .. "/" .. name)))
        if want.error then
          T.eq(recs, nil, name .. ": should be an error")
          assert(type(err) == "string" and #err > 0, name .. ": error needs a reason")
        else
          assert(recs, name .. ": " .. tostring(err))
          T.eq(#recs, #want.records, name .. ": record count")
          for i, w in ipairs(want.records) do
            T.eq(pick(recs[i]), expected_view(w), name .. " record " .. i)
          end
        end
        seen = seen + 1
      end
    end
    assert(seen >= 10, "expected at least 10 corpus files, saw " .. seen)
  end,

  legacy_wording_envelope = function()
    local recs = assert(N.parse(envelope(BODY_LEGACY, { State = "COMPLETED", StartTime = "2026-11-25T03:00:00Z" })))
    T.eq(#recs, 1)
    T.eq(recs[1].table_name, "Orders-Production")
    T.eq(recs[1].backup_job_id, "5a772b5a-36d5-4a69-9b18-ed2f5213c659")
    T.eq(recs[1].start_epoch, 1795575600)
    T.eq(recs[1].restore_via, N.RESTORE_DYNAMODB)
  end,

  documented_wording_and_attribute_preference = function()
    local body = "An AWS Backup job was completed successfully. Recovery point ARN: "
      .. "arn:aws:dynamodb:us-east-1:1:table/a_b.c-d/backup/1-x. Resource ARN : "
      .. "arn:aws:dynamodb:us-east-1:1:table/a_b.c-d. BackupJob ID : body-id"
    local recs = assert(N.parse(envelope(body, { Id = "attr-id", StartTime = "2026-01-01T00:00:00Z" })))
    T.eq(recs[1].table_name, "a_b.c-d")
    T.eq(recs[1].backup_job_id, "attr-id")
    T.eq(recs[1].recovery_point_arn, "arn:aws:dynamodb:us-east-1:1:table/a_b.c-d/backup/1-x")
  end,

  attribute_state_wins_over_body = function()
    local recs = assert(N.parse(envelope(BODY_LEGACY, { State = "FAILED", StartTime = "2026-11-25T03:00:00Z" })))
    T.eq(recs[1].skip, "state FAILED is not COMPLETED")
  end,

  missing_start_time_falls_back_with_note = function()
    local recs = assert(N.parse(envelope(BODY_LEGACY, {})))
    T.eq(recs[1].start_time, "2026-11-25T03:41:07.512Z")
    assert(recs[1].notes[1]:find("StartTime missing"), "note about the fallback")
  end,

  raw_text_body = function()
    local recs = assert(N.parse(BODY_LEGACY))
    T.eq(recs[1].table_name, "Orders-Production")
  end,

  sqs_raw_delivery_attributes = function()
    local msg = { MessageId = "q-1", Body = BODY_LEGACY, MessageAttributes = {
      StartTime = { DataType = "String", StringValue = "2026-11-25T03:00:00.5Z" } } }
    local recs = assert(N.parse(msg))
    T.eq(recs[1].start_time, "2026-11-25T03:00:00.5Z")
  end,

  records_every_one_handled = function()
    local doc = { Records = {
      { Sns = { Message = BODY_LEGACY, Timestamp = "2026-11-25T03:41:07Z" } },
      { Sns = { Message = BODY_LEGACY:gsub("Orders%-Production", "Users-Production"), Timestamp = "2026-11-25T03:41:07Z" } },
    } }
    local recs = assert(N.parse(json.encode(doc)))
    T.eq(#recs, 2)
    T.eq(recs[2].table_name, "Users-Production")
  end,

  non_dynamodb_skipped = function()
    local body = "An AWS Backup job was completed successfully. Recovery point ARN: arn:aws:ec2:us-east-1::snapshot/snap-1. "
      .. "Resource ARN : arn:aws:ec2:us-east-1:1:volume/vol-1. BackupJob ID : x"
    local recs = assert(N.parse(envelope(body, {})))
    T.eq(recs[1].skip, "not a DynamoDB table")
  end,

  eventbridge_backup_recovery_point = function()
    local ev = { ["detail-type"] = "Backup Job State Change", source = "aws.backup", id = "e1",
      time = "2026-11-25T03:41:17Z",
      resources = { "arn:aws:backup:us-east-1:1:recovery-point:abc" },
      detail = { backupJobId = "j1", resourceArn = "arn:aws:dynamodb:us-east-1:1:table/t-production",
        state = "COMPLETED", creationDate = "2026-11-25T03:00:31.207Z" } }
    local recs = assert(N.parse(json.encode(ev)))
    T.eq(recs[1].restore_via, N.RESTORE_BACKUP)
    T.eq(recs[1].table_name, "t-production")
  end,

  copy_job_sns_both_wordings = function()
    local rp = "arn:aws:backup:us-east-1:1:recovery-point:dest-1"
    local res = "arn:aws:dynamodb:us-east-1:1:table/t-production"
    for _, body in ipairs({
      "An AWS Backup copy job was completed successfully. Recovery point ARN: " .. rp
        .. ". Backed up Resource ARN : " .. res .. ". Copy Job Id : c-1",
      "An AWS Backup copy job was completed successfully. Recovery point ARN: " .. rp
        .. ". Resource ARN : " .. res .. ". CopyJob ID : c-1",
    }) do
      local with_attrs = assert(N.parse(envelope(body, { EventType = "COPY_JOB", State = "COMPLETED", Id = "c-1",
        StartTime = "2026-11-25T03:00:00Z" })))[1]
      T.eq({ with_attrs.job_type, with_attrs.copy_job_id, with_attrs.backup_job_id, with_attrs.recovery_point_arn,
        with_attrs.table_name, with_attrs.restore_via }, { "COPY_JOB", "c-1", "c-1", rp, "t-production", N.RESTORE_BACKUP })
      local prose = assert(N.parse(envelope(body, { StartTime = "2026-11-25T03:00:00Z" })))[1]
      T.eq({ prose.job_type, prose.copy_job_id }, { "COPY_JOB", "c-1" }, "the prose alone says copy job")
    end
  end,

  eventbridge_copy_and_other_events = function()
    local ev = { ["detail-type"] = "Copy Job State Change", source = "aws.backup", id = "e2",
      time = "2026-11-25T03:41:17Z", resources = { "arn:aws:backup:us-east-1:1:recovery-point:src" },
      detail = { copyJobId = "c-2", resourceArn = "arn:aws:dynamodb:us-east-1:1:table/t-production",
        destinationRecoveryPointArn = "arn:aws:backup:us-east-1:2:recovery-point:dest", state = "COMPLETED",
        creationDate = "2026-11-25T03:00:31.207Z" } }
    local r = assert(N.parse(json.encode(ev)))[1]
    T.eq({ r.job_type, r.copy_job_id, r.recovery_point_arn, r.table_name },
      { "COPY_JOB", "c-2", "arn:aws:backup:us-east-1:2:recovery-point:dest", "t-production" })
    ev["detail-type"] = "Restore Job State Change"
    r = assert(N.parse(json.encode(ev)))[1]
    assert(r.skip and r.skip:find("not a backup or copy job state change", 1, true), r.skip)
  end,

  malformed_is_an_error_not_a_crash = function()
    local recs, err = N.parse('{"Type":"Notification","Message": "An AWS Backup job')
    T.eq(recs, nil)
    assert(err:find("not valid JSON"), err)
    T.eq(select(1, N.parse("hello")), nil)
    T.eq(select(1, N.parse("null")), nil)
    T.eq(select(1, N.parse("{}")), nil)
    T.eq(select(1, N.parse("{\"a\":1}\n" .. BODY_LEGACY)), nil, "broken JSON is never read as message text")
  end,
}
