-- Issue 7 planning logic: retention decisions, rule-field validation, dry-run request
-- shapes (TagResource, UpdateTimeToLive, UpdateContinuousBackups, UpdateTable,
-- DeleteTable with reason, PutRestoreValidationResult, sns.Publish).
local T = require "engine.testing"
local json = require "json"
local services = require "aws.services"
local rules = require "policy.rules"
local H = require "workflow.doc"
local retention = require "after.retention"
local post_restore = require "after.post_restore"
local validation = require "after.validation"
local alerts = require "after.alerts"

local DAY = 86400
local NOW = 1795575600 -- 2026-11-25T03:00:00Z
local PREFIX = "arn:aws:dynamodb:us-east-1:123456789012:table/"

local function names(ds, want)
  local out = {}
  for _, d in ipairs(ds) do if d.delete == want then out[#out + 1] = d.name end end
  return out
end

local function copies(hours_ago, protect)
  local list = {}
  for i, h in ipairs(hours_ago) do
    list[i] = { name = "c" .. h, start = NOW - h * 3600, protect = protect and protect["c" .. h] }
  end
  return list
end

-- A fake account for retention: tables {name -> {tags, protection, status}}, one SSM value.
local function fake(tables, ssm_value)
  return function(service, action, p)
    local key = service .. "." .. action
    if key == "dynamodb.ListTables" then
      local n = {}
      for name in pairs(tables) do n[#n + 1] = name end
      table.sort(n)
      return { TableNames = n }, "rid-list"
    elseif key == "dynamodb.DescribeTable" then
      local t = tables[p.TableName]
      return { Table = { TableName = p.TableName, TableArn = PREFIX .. p.TableName, TableStatus = t.status or "ACTIVE",
        DeletionProtectionEnabled = t.protection or false } }, "rid-d"
    elseif key == "dynamodb.ListTagsOfResource" then
      local t = tables[H.table_name(p.ResourceArn)]
      local tags = {}
      for k, v in pairs(t.tags or {}) do tags[#tags + 1] = { Key = k, Value = v } end
      return { Tags = tags }, "rid-t"
    elseif key == "ssm.GetParameter" then
      return { Parameter = { Value = PREFIX .. ssm_value } }, "rid-ssm"
    elseif key == "dynamodb.DeleteTable" then
      tables[p.TableName] = nil
      return {}, "rid-del"
    end
    error("fake has no " .. key)
  end
end

local function ours(extra)
  local t = { tags = { ["rotator:source"] = "orders-production", ["rotator:rule"] = "staging", ["rotator:backup-job"] = "j" } }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

local RULE = { name = "staging", source_pattern = "-production$", replacement = "-staging",
  ssm_parameter = "/rotator/orders", retention = { keep = 2 } }

local function doc_for(target)
  return { WorkflowId = "wf-1", BackupJobId = "job-1", SourceTableName = "orders-production", Rule = "staging",
    TargetTableName = target, TableArn = PREFIX .. target, RecoveryPointArn = PREFIX .. "orders-production/backup/1",
    SSMParameterName = "/rotator/orders", UpdateSSMParameterOutput = {}, Steps = {} }
end

return {
  keep_two_deletes_the_rest_newest_first = function()
    local ds = retention.decide(copies({ 1, 30, 2, 50 }), { keep = 2 }, NOW)
    T.eq(names(ds, false), { "c1", "c2" })
    T.eq(names(ds, true), { "c30", "c50" })
    T.eq(ds[3].reason, "beyond the newest 2 (rank 3)")
  end,

  max_age_alone_and_combined = function()
    local ds = retention.decide(copies({ 1, 30, 80 }), { max_age = "2d" }, NOW)
    T.eq(names(ds, true), { "c80" })
    T.eq(ds[3].reason:match("^older than 2d"), "older than 2d")
    ds = retention.decide(copies({ 1, 30, 80 }), { keep = 5, max_age = "1d" }, NOW)
    T.eq(names(ds, true), { "c30", "c80" }, "either condition deletes")
  end,

  protected_copies_are_kept_with_the_reason = function()
    local ds = retention.decide(copies({ 1, 2, 3 }, { c3 = "SSM parameter /p points to it" }), { keep = 1 }, NOW)
    T.eq(names(ds, true), { "c2" })
    T.eq(ds[3].reason, "kept (SSM parameter /p points to it) although beyond the newest 1 (rank 3)")
  end,

  unknown_age_is_never_deleted = function()
    local ds = retention.decide({ { name = "x" }, { name = "y", start = NOW - 10 * DAY } }, { keep = 1, max_age = "1d" }, NOW)
    T.eq(names(ds, true), { "y" })
    T.eq(names(ds, false), { "x" }, "a copy of unknown age is kept")
  end,

  durations = function()
    T.eq(H.duration("7d"), 7 * DAY)
    T.eq(H.duration("1d12h"), 36 * 3600)
    T.eq(H.duration(90), 90)
    T.eq(select(2, H.duration("7 days")) ~= nil, true)
    T.eq(select(2, H.duration(0)) ~= nil, true)
  end,

  rule_fields_are_validated = function()
    local function check(extra)
      local r = { source_pattern = "-production$", replacement = "-staging" }
      for k, v in pairs(extra) do r[k] = v end
      return rules.validate(r)
    end
    T.eq(check({ retention = { keep = 2, max_age = "7d" }, copy_ttl = true, pitr = false, deletion_protection = true,
      tags = { env = "staging" }, validation = { item_count = true, check = function() return true end },
      alert_topic_arn = "arn:aws:sns:us-east-1:123456789012:rotator-alerts" }), nil)
    T.eq(check({ retention = { keep = 0 } }):match("keep must be"), "keep must be")
    T.eq(check({ retention = {} }):match("needs keep"), "needs keep")
    T.eq(check({ retention = { keep = 2, older = "1d" } }):match("unknown field 'older'"), "unknown field 'older'")
    T.eq(check({ retention = { max_age = "a week" } }):match("max_age"), "max_age")
    T.eq(check({ tags = { ["rotator:source"] = "x" } }):match("reserved"), "reserved")
    T.eq(check({ validation = { count = true } }):match("unknown field 'count'"), "unknown field 'count'")
    T.eq(check({ alert_topic_arn = "rotator-alerts" }):match("not an SNS topic ARN"), "not an SNS topic ARN")
    T.eq(check({ pitr = "yes" }):match("must be a boolean"), "must be a boolean")
  end,

  after_switch_deletes_only_tagged_unprotected_non_current = function()
    local tables = {
      ["orders-staging-20261125-01-00-00"] = ours(),
      ["orders-staging-20261125-02-00-00"] = ours(),          -- SSM target (out of order)
      ["orders-staging-20261125-03-00-00"] = ours(),          -- this workflow's copy
      ["orders-staging-20261124-00-00-00"] = ours({ protection = true }),
      ["orders-staging-20200101-00-00-00"] = {},              -- untagged look-alike
      ["orders-production"] = {},
      ["orders-staging-20261123-00-00-00"] = { tags = { ["rotator:source"] = "orders-production", ["rotator:rule"] = "other" } },
    }
    local svc = services.new({ backend = fake(tables, "orders-staging-20261125-02-00-00") })
    local doc = doc_for("orders-staging-20261125-03-00-00")
    local ds = retention.after_switch({ svc = svc }, doc, { name = "staging", ssm_parameter = "/rotator/orders", retention = { keep = 1 } })
    T.eq(names(ds, true), { "orders-staging-20261125-01-00-00" })
    T.eq(tables["orders-staging-20261125-01-00-00"], nil, "deleted")
    T.eq(tables["orders-staging-20261124-00-00-00"] ~= nil, true, "deletion protection kept it")
    T.eq(tables["orders-staging-20200101-00-00-00"] ~= nil, true, "untagged look-alike kept")
    T.eq(tables["orders-staging-20261123-00-00-00"] ~= nil, true, "another rule's copy kept")
    T.eq(doc.Steps[#doc.Steps].State, "Retention")
  end,

  dry_run_plans_delete_table_with_reason = function()
    local tables = { ["orders-staging-20261125-01-00-00"] = ours(), ["orders-staging-20261125-02-00-00"] = ours() }
    local lines = {}
    local svc = services.new({ dry_run = true, backend = fake(tables, "orders-staging-20261125-02-00-00"),
      emit = function(l) lines[#lines + 1] = l end })
    retention.after_switch({ svc = svc, dry_run = true }, doc_for("orders-staging-20261125-03-00-00"), RULE)
    T.eq(#lines, 1)
    T.eq(json.decode(lines[1]), { call = "dynamodb.DeleteTable", input = { TableName = "orders-staging-20261125-01-00-00" },
      reason = "beyond the newest 2 (rank 3)" })
    T.eq(tables["orders-staging-20261125-01-00-00"] ~= nil, true, "nothing deleted in a dry run")
  end,

  repl_plan_lists_candidates_with_reasons = function()
    local tables = { ["orders-staging-20261125-01-00-00"] = ours(), ["orders-staging-20261125-02-00-00"] = ours(),
      ["orders-staging-20261125-03-00-00"] = ours() }
    local svc = services.new({ dry_run = true, backend = fake(tables, "orders-staging-20261125-03-00-00"), emit = function() end })
    for _, what in ipairs({ "staging", "orders-production" }) do
      local ds = assert(retention.plan(what, { rules = { RULE }, svc = svc }))
      T.eq(names(ds, true), { "orders-staging-20261125-01-00-00" }, what)
      T.eq(ds[1].source, "orders-production")
    end
    T.eq(select(2, retention.plan("nope", { rules = { RULE }, svc = svc })):match("no rule"), "no rule")
  end,

  post_restore_dry_run_request_shapes = function()
    local planned = {}
    local svc = services.new({ dry_run = true, emit = function(l) planned[#planned + 1] = json.decode(l) end,
      backend = function(service, action)
        if action == "DescribeTimeToLive" then
          return { TimeToLiveDescription = { TimeToLiveStatus = "ENABLED", AttributeName = "expires_at" } }, "rid"
        end
        error("unexpected " .. service .. "." .. action)
      end })
    local doc = doc_for("orders-staging-20261125-03-00-00")
    local rule = { name = "staging", tags = { env = "staging" }, copy_ttl = true, pitr = true, deletion_protection = true }
    post_restore.after_active({ svc = svc, dry_run = true }, doc, rule, {}) -- raises on a failed step
    T.eq(planned[1], { call = "dynamodb.TagResource", input = { ResourceArn = PREFIX .. "orders-staging-20261125-03-00-00",
      Tags = { { Key = "rotator:source", Value = "orders-production" }, { Key = "rotator:backup-job", Value = "job-1" },
        { Key = "rotator:rule", Value = "staging" }, { Key = "env", Value = "staging" } } } })
    T.eq(planned[2], { call = "dynamodb.UpdateTimeToLive", input = { TableName = "orders-staging-20261125-03-00-00",
      TimeToLiveSpecification = { Enabled = true, AttributeName = "expires_at" } } })
    T.eq(planned[3], { call = "dynamodb.UpdateContinuousBackups", input = { TableName = "orders-staging-20261125-03-00-00",
      PointInTimeRecoverySpecification = { PointInTimeRecoveryEnabled = true } } })
    T.eq(planned[4], { call = "dynamodb.UpdateTable", input = { TableName = "orders-staging-20261125-03-00-00",
      DeletionProtectionEnabled = true } })
    local states = {}
    for _, s in ipairs(doc.Steps) do states[#states + 1] = s.State end
    T.eq(states, { "Tag Table", "Copy TTL", "Point-in-time Recovery", "Validate Restore", "Deletion Protection" })
  end,

  put_restore_validation_result_shape = function()
    local planned = {}
    local svc = services.new({ dry_run = true, offline = true, emit = function(l) planned[#planned + 1] = json.decode(l) end })
    local doc = doc_for("t-staging-20261125-03-00-00")
    doc.RestoreJobId = "rj-1"
    validation.report({ svc = svc, dry_run = true }, doc, "FAILED", "restored item count 4 differs from the backup's 5")
    T.eq(planned[1], { call = "backup.PutRestoreValidationResult", input = { RestoreJobId = "rj-1", ValidationStatus = "FAILED",
      ValidationStatusMessage = "restored item count 4 differs from the backup's 5" } })
  end,

  validation_comparisons = function()
    T.eq(validation.compare_key_schema({ { AttributeName = "pk", KeyType = "HASH" } }, { { AttributeName = "pk", KeyType = "HASH" } }), nil)
    T.eq(validation.compare_key_schema({ { AttributeName = "id", KeyType = "HASH" } }, { { AttributeName = "pk", KeyType = "HASH" } })
      :match("key schema differs"), "key schema differs")
    T.eq(validation.compare_count(25, 25), nil)
    T.eq(validation.compare_count(24, 25):match("differs"), "differs")
    T.eq(validation.compare_count(99, 100, 0.02), nil)
  end,

  a_failed_validation_raises_the_step_failure_and_does_not_alert_itself = function()
    local published = {}
    local svc = services.new({ backend = function(service, action, p)
      local key = service .. "." .. action
      if key == "dynamodb.TagResource" then return {}, "rid-tag"
      elseif key == "dynamodb.DescribeBackup" then
        return { BackupDescription = { SourceTableDetails = { ItemCount = 5, KeySchema = { { AttributeName = "pk", KeyType = "HASH" } } } } }, "rid-b"
      elseif key == "dynamodb.Scan" then return { Count = 4 }, "rid-scan"
      elseif key == "sns.Publish" then published[#published + 1] = p return { MessageId = "m-1" }, "rid-pub" end
      error("unexpected " .. key)
    end })
    local rule = { name = "staging", validation = { item_count = true }, alert_topic_arn = "arn:aws:sns:us-east-1:123456789012:rotator-alerts" }
    local doc = doc_for("orders-staging-20261125-09-00-00")
    local ok, e = pcall(post_restore.after_active, { svc = svc }, doc, rule, {})
    T.eq(ok, false)
    T.eq(H.is_failure(e), true, tostring(e))
    T.eq(e.msg:match("restored item count 4 differs from the backup's 5") ~= nil, true, e.msg)
    T.eq(doc.Steps[#doc.Steps].State, "Validate Restore")
    T.eq(#published, 0, "the workflow publishes the one alert, not the step")
  end,

  alerts_are_deduplicated_per_ctx = function()
    local published = 0
    local function ctx() return { svc = services.new({ backend = function() published = published + 1 return { MessageId = "m" }, "r" end }) } end
    local rule = { alert_topic_arn = "arn:aws:sns:us-east-1:123456789012:rotator-alerts" }
    local real, dry = ctx(), ctx()
    T.eq(alerts.workflow_failed(dry, { WorkflowId = "wf-d" }, rule, { msg = "x" }), true)
    T.eq(alerts.workflow_failed(real, { WorkflowId = "wf-d" }, rule, { msg = "x" }), true, "another ctx still alerts")
    T.eq(alerts.workflow_failed(real, { WorkflowId = "wf-d" }, rule, { msg = "x" }), false, "the same ctx does not")
    T.eq(published, 2)
  end,
}
