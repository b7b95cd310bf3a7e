-- Retention planning (ranking, per-run cap, ACTIVE floor, proof before delete, dry run
-- equal to the run, journal before DeleteTable, explain), rule-field validation, and the
-- post-restore dry-run request shapes (TagResource, UpdateTimeToLive,
-- UpdateContinuousBackups, UpdateTable, PutRestoreValidationResult, sns.Publish).
local T = require "engine.testing"
local json = require "json"
local services = require "aws.services"
local rules = require "policy.rules"
local H = require "workflow.doc"
local retention = require "after.retention"
local store = require "daemon.store"
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

-- A stand-in for the AWS account (DynamoDB and SSM answers as AWS gives them), so the
-- planner runs against many table shapes at once; tests/beyond/test_retention.py runs
-- the same on moto. tables: {name -> {tags, protection, status, from = source of the
-- backup it was restored from | false (not a restore), summary = RestoreSummary,
-- fail = "DescribeTable"|"ListTagsOfResource"}}.
local function fake(tables, ssm_value, on_delete)
  return function(service, action, p)
    local key = service .. "." .. action
    if key == "dynamodb.ListTables" then
      local n = {}
      for name in pairs(tables) do n[#n + 1] = name end
      table.sort(n)
      return { TableNames = n }, "rid-list"
    elseif key == "dynamodb.DescribeTable" then
      local t = tables[p.TableName]
      if not t then return nil, services.error(service, action, "ResourceNotFoundException", "no table", { request_id = "rid-nf" }) end
      if t.fail == action then return nil, services.error(service, action, "AccessDeniedException", "denied", { request_id = "rid-deny" }) end
      local summary = t.summary
      if summary == nil and t.from ~= false then
        local src = PREFIX .. (t.from or "orders-production")
        summary = { SourceBackupArn = src .. "/backup/0176", SourceTableArn = src, RestoreInProgress = false }
      end
      return { Table = { TableName = p.TableName, TableArn = PREFIX .. p.TableName, TableStatus = t.status or "ACTIVE",
        DeletionProtectionEnabled = t.protection or false, RestoreSummary = summary or nil } }, "rid-d"
    elseif key == "dynamodb.ListTagsOfResource" then
      local t = tables[H.table_name(p.ResourceArn)]
      if t.fail == action then return nil, services.error(service, action, "AccessDeniedException", "denied", { request_id = "rid-deny" }) end
      local tags = {}
      for k, v in pairs(t.tags or {}) do tags[#tags + 1] = { Key = k, Value = v } end
      return { Tags = tags }, "rid-t"
    elseif key == "ssm.GetParameter" then
      return { Parameter = { Value = PREFIX .. ssm_value } }, "rid-ssm"
    elseif key == "dynamodb.DeleteTable" then
      if on_delete then on_delete(p.TableName) end
      tables[p.TableName] = nil
      return {}, "rid-del"
    end
    error("fake has no " .. key)
  end
end

local FULL = { ["rotator:source"] = "orders-production", ["rotator:rule"] = "staging", ["rotator:backup-job"] = "j" }

local function ours(extra)
  local t = { tags = {} }
  for k, v in pairs(FULL) do t.tags[k] = v end
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

local function copy(hour, day) return ("orders-staging-202611%02d-%02d-00-00"):format(day or 25, hour) end

local RULE = { name = "staging", source_pattern = "-production$", replacement = "-staging",
  ssm_parameter = "/rotator/orders", retention = { keep = 2 } }

local function rule_with(retention_policy)
  local r = {}
  for k, v in pairs(RULE) do r[k] = v end
  r.retention = retention_policy
  return r
end

local function doc_for(target)
  return { WorkflowId = "wf-1", BackupJobId = "job-1", SourceTableName = "orders-production", Rule = "staging",
    TargetTableName = target, TableArn = PREFIX .. target, RecoveryPointArn = PREFIX .. "orders-production/backup/1",
    SSMParameterName = "/rotator/orders", UpdateSSMParameterOutput = {}, Steps = {} }
end

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = deep_copy(x) end
  return out
end

-- The situation of issue-like reports: the parameter still points at an old copy while
-- the workflow's update is planned; old copies, look-alikes and unprovable tables around.
local function situation()
  return {
    [copy(1)] = ours(), [copy(2)] = ours(), [copy(3)] = ours(), [copy(4)] = ours(),
    [copy(0, 24)] = ours({ protection = true }),
    [copy(5, 20)] = { tags = { ["rotator:source"] = "orders-production", ["rotator:rule"] = "staging" } }, -- partly tagged
    [copy(6, 20)] = ours({ from = "invoices-production" }),        -- full tags, another source's backup
    [copy(7, 20)] = ours({ from = false }),                          -- full tags, not a restore
    [copy(8, 20)] = ours({ summary = { SourceTableArn = PREFIX .. "orders-production" } }), -- point-in-time restore
    [copy(9, 20)] = ours({ summary = { SourceBackupArn = "arn:aws:backup:us-east-1:123456789012:recovery-point:rp-1" } }),
    [copy(10, 20)] = ours({ fail = "DescribeTable" }),
    [copy(11, 20)] = ours({ fail = "ListTagsOfResource" }),
    [copy(12, 20)] = ours({ status = "UPDATING" }),
    ["orders-staging-old-20261101-00-00-00"] = ours(),              -- not the rule's name shape
    ["orders-staging-20200101-00-00-00"] = {},                       -- untagged look-alike
    ["orders-staging-20261123-00-00-00"] = { tags = { ["rotator:source"] = "orders-production", ["rotator:rule"] = "other",
      ["rotator:backup-job"] = "j" } },
    ["orders-production"] = ours(),
  }
end

local function reasons(ds)
  local out = {}
  for _, d in ipairs(ds) do out[d.name] = d.reason end
  return out
end

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  return p .. "-retention"
end

return {
  keep_two_deletes_the_rest_oldest_first = function()
    local ds = retention.decide(copies({ 1, 30, 2, 50 }), { keep = 2 }, NOW)
    T.eq(names(ds, false), { "c1", "c2" })
    T.eq(names(ds, true), { "c30", "c50" })
    T.eq(ds[3].reason, "beyond the newest 2 (rank 3)")
  end,

  max_age_alone_and_never_below_keep = function()
    local ds = retention.decide(copies({ 1, 30, 80 }), { max_age = "2d" }, NOW)
    T.eq(names(ds, true), { "c80" })
    T.eq(ds[3].reason:match("^older than 2d"), "older than 2d")
    ds = retention.decide(copies({ 1, 30, 80 }), { keep = 2, max_age = "1d" }, NOW)
    T.eq(names(ds, true), { "c80" }, "the oldest goes; the next would leave 1 ACTIVE copy")
    T.eq(ds[2].reason:match("^kept: refused, deleting it would leave 1 ACTIVE copies, fewer than keep = 2"),
      "kept: refused, deleting it would leave 1 ACTIVE copies, fewer than keep = 2")
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

  the_per_run_cap_deletes_the_oldest_first = function()
    local ds = retention.decide(copies({ 1, 2, 3, 4, 5, 6 }), { keep = 1 }, NOW)
    T.eq(names(ds, true), { "c5", "c6" }, "default cap 2: the two oldest")
    T.eq(ds[4].reason, "kept: over the per-run cap retention.max_deletes = 2 (a later run deletes it) although beyond the newest 1 (rank 4)")
    ds = retention.decide(copies({ 1, 2, 3, 4, 5, 6 }), { keep = 1, max_deletes = 4 }, NOW)
    T.eq(names(ds, true), { "c3", "c4", "c5", "c6" })
  end,

  copies_that_are_not_active_do_not_count_toward_keep = function()
    local list = copies({ 1, 2, 3, 4 }, { c2 = "status UPDATING" })
    list[2].active = false
    local ds = retention.decide(list, { keep = 2, max_deletes = 5 }, NOW)
    T.eq(names(ds, true), { "c4" }, "c3 would leave one ACTIVE copy (c1): refused")
    T.eq(ds[3].reason:match("^kept: refused"), "kept: refused")
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
    T.eq(check({ retention = { keep = 2, max_age = "7d", max_deletes = 3 }, copy_ttl = true, pitr = false, deletion_protection = true,
      tags = { env = "staging" }, validation = { item_count = true, check = function() return true end },
      alert_topic_arn = "arn:aws:sns:us-east-1:123456789012:rotator-alerts" }), nil)
    T.eq(check({ retention = { keep = 0 } }):match("keep must be"), "keep must be")
    T.eq(check({ retention = {} }):match("needs keep"), "needs keep")
    T.eq(check({ retention = { keep = 2, older = "1d" } }):match("unknown field 'older'"), "unknown field 'older'")
    T.eq(check({ retention = { max_age = "a week" } }):match("max_age"), "max_age")
    T.eq(check({ retention = { keep = 1, max_deletes = 0 } }):match("max_deletes must be"), "max_deletes must be")
    T.eq(check({ retention = { keep = 1, max_deletes = 1.5 } }):match("max_deletes must be"), "max_deletes must be")
    T.eq(check({ tags = { ["rotator:source"] = "x" } }):match("reserved"), "reserved")
    T.eq(check({ validation = { count = true } }):match("unknown field 'count'"), "unknown field 'count'")
    T.eq(check({ alert_topic_arn = "rotator-alerts" }):match("not an SNS topic ARN"), "not an SNS topic ARN")
    T.eq(check({ pitr = "yes" }):match("must be a boolean"), "must be a boolean")
  end,

  only_provable_copies_are_deleted = function()
    local tables = situation()
    local svc = services.new({ backend = fake(tables, copy(2)) })
    local doc = doc_for(copy(9))
    local ds = retention.after_switch({ svc = svc }, doc, rule_with({ keep = 2, max_deletes = 10 }))
    T.eq(names(ds, true), { copy(3), copy(2), copy(1) }, "this workflow's copy + copy(4) kept; the parameter moves past copy(2)")
    T.eq(tables[copy(2)], nil, "the parameter's old value is deleted: it will point at the new copy")
    local why = reasons(ds)
    T.eq(why[copy(4)], "kept: within the retention policy")
    T.eq(why[copy(9)], "kept (the copy this workflow restored); within the retention policy")
    T.eq(why[copy(3)], "beyond the newest 2 (rank 3)")
    T.eq(why[copy(2)], "beyond the newest 2 (rank 4)")
    T.eq(tables[copy(3)], nil)
    for name, want in pairs({
      [copy(5, 20)] = "tag rotator:backup-job is missing",
      [copy(6, 20)] = "restored from a backup of " .. PREFIX .. "invoices-production, not of orders-production",
      [copy(7, 20)] = "not a restored table (no RestoreSummary)",
      [copy(8, 20)] = "not restored from a backup (RestoreSummary has no SourceBackupArn: a point-in-time restore?)",
      [copy(9, 20)] = "cannot prove its source",
      ["orders-staging-20200101-00-00-00"] = "tag rotator:source is missing",
      ["orders-staging-20261123-00-00-00"] = "tag rotator:rule is 'other', not staging",
    }) do
      T.eq(tables[name] ~= nil, true, name .. " survives")
      T.eq(why[name] and why[name]:find(want, 1, true) ~= nil, true, name .. ": " .. tostring(why[name]))
    end
    T.eq(why[copy(10, 20)]:match("^kept: could not read it %(dynamodb.DescribeTable: AccessDeniedException"),
      "kept: could not read it (dynamodb.DescribeTable: AccessDeniedException")
    T.eq(why[copy(11, 20)]:match("^kept: could not read it %(dynamodb.ListTagsOfResource: AccessDeniedException"),
      "kept: could not read it (dynamodb.ListTagsOfResource: AccessDeniedException")
    T.eq(why[copy(0, 24)]:match("^kept %(deletion protection is on%)"), "kept (deletion protection is on)")
    T.eq(why[copy(12, 20)]:match("^kept %(status UPDATING%)"), "kept (status UPDATING)")
    for _, name in ipairs({ copy(0, 24), copy(10, 20), copy(11, 20), copy(12, 20), "orders-production",
      "orders-staging-old-20261101-00-00-00" }) do
      T.eq(tables[name] ~= nil, true, name .. " survives")
    end
    T.eq(why["orders-production"], nil, "the source is not even considered")
    T.eq(why["orders-staging-old-20261101-00-00-00"], nil, "another name shape is not considered")
    local step = doc.Steps[#doc.Steps]
    T.eq({ step.State, step.Deleted }, { "Retention", { copy(1), copy(2), copy(3) } }, "oldest first")
  end,

  a_recovery_point_restore_is_proven_by_its_source_table_arn = function()
    local tables = { [copy(1)] = ours({ summary = { SourceBackupArn = "arn:aws:backup:us-east-1:123456789012:recovery-point:rp-1",
      SourceTableArn = PREFIX .. "orders-production" } }), [copy(2)] = ours() }
    local svc = services.new({ backend = fake(tables, copy(2)) })
    local ds = retention.after_switch({ svc = svc }, doc_for(copy(3)), rule_with({ keep = 2 }))
    T.eq(names(ds, true), { copy(1) })
  end,

  the_dry_run_plans_exactly_what_the_run_deletes = function()
    local rule = rule_with({ keep = 2, max_deletes = 10 })
    local planned, plan_reasons = {}, {}
    local dry_tables = situation()
    local dry = services.new({ dry_run = true, backend = fake(dry_tables, copy(2)),
      emit = function(l)
        local c = json.decode(l)
        planned[#planned + 1] = c.input.TableName
        plan_reasons[c.input.TableName] = c.reason
      end })
    retention.after_switch({ svc = dry, dry_run = true }, doc_for(copy(9)), rule)
    T.eq(planned, { copy(1), copy(2), copy(3) }, "the parameter's current value, copy(2), is planned too")
    local count = 0
    for _ in pairs(dry_tables) do count = count + 1 end
    T.eq(count, 17, "a dry run deletes nothing")
    local deleted = {}
    local real = services.new({ backend = fake(situation(), copy(2), function(n) deleted[#deleted + 1] = n end) })
    local ds = retention.after_switch({ svc = real }, doc_for(copy(9)), rule)
    T.eq(planned, deleted, "the same DeleteTable calls, in the same order")
    for _, d in ipairs(ds) do
      if d.delete then T.eq(plan_reasons[d.name], d.reason, "same reason for " .. d.name) end
    end
  end,

  a_table_changed_since_planning_is_not_deleted = function()
    local tables = { [copy(1)] = ours(), [copy(2)] = ours(), [copy(3)] = ours() }
    local backend = fake(tables, copy(3))
    local describes = 0
    local svc = services.new({ backend = function(service, action, p)
      if action == "DescribeTable" and p.TableName == copy(1) then
        describes = describes + 1
        if describes == 2 then tables[copy(1)].protection = true end -- turned on by an operator meanwhile
      end
      return backend(service, action, p)
    end })
    local ds = retention.after_switch({ svc = svc }, doc_for(copy(4)), rule_with({ keep = 1 }))
    T.eq(tables[copy(1)] ~= nil, true, "re-read right before DeleteTable: protected now, kept")
    T.eq(tables[copy(2)], nil)
    T.eq(reasons(ds)[copy(1)], "kept: deletion protection is on")
  end,

  each_deletion_is_journaled_before_the_call = function()
    local dir = tmpdir()
    local s <close> = assert(store.open(dir))
    local doc = doc_for(copy(3))
    local seen = {}
    local svc = services.new({ backend = fake({ [copy(1)] = ours(), [copy(2)] = ours() }, copy(2), function(name)
      local hist = assert(s:history(doc.WorkflowId))
      local last = hist[#hist]
      local step = last.doc.Steps[#last.doc.Steps]
      local entry = step.Deletions[#step.Deletions]
      seen[#seen + 1] = { last.step, entry.Table, entry.Reason, entry.Evidence.source_backup_arn, entry.Evidence.tags["rotator:backup-job"] }
      T.eq(name, entry.Table, "the journaled entry is the table being deleted")
    end) })
    local ds = retention.after_switch({ svc = svc, store = s }, doc, rule_with({ keep = 1 }))
    T.eq(names(ds, true), { copy(2), copy(1) })
    T.eq(seen, {
      { "Retention Delete", copy(1), "beyond the newest 1 (rank 3)", PREFIX .. "orders-production/backup/0176", "j" },
      { "Retention Delete", copy(2), "beyond the newest 1 (rank 2)", PREFIX .. "orders-production/backup/0176", "j" },
    })
    for _, f in ipairs { "journal.db", "journal.db-wal", "journal.db-shm" } do os.remove(dir .. "/" .. f) end
    os.remove(dir)
  end,

  explain_lists_every_table_considered = function()
    local tables = situation()
    local svc = services.new({ dry_run = true, backend = fake(tables, copy(4)), emit = function(l) error("mutating call " .. l) end })
    local list = { rule_with({ keep = 2 }) }
    for _, what in ipairs({ "staging", "orders-production" }) do
      local rows, info = assert(retention.explain(what, { rules = list, svc = svc }))
      local by = {}
      for _, r in ipairs(rows) do by[r.name] = r end
      T.eq(#rows, 15, what .. ": every table of the rule's name shape")
      T.eq(by[copy(4)].reason, "kept (the SSM parameter /rotator/orders points to it); within the retention policy")
      T.eq({ by[copy(1)].delete, by[copy(2)].delete }, { true, true }, what)
      T.eq(by[copy(5, 20)].reason:match("rotator:backup%-job is missing") ~= nil, true)
      T.eq(by[copy(1)].source, "orders-production")
      local text = retention.explain_text(rows, info)
      T.eq(text:match("^rule staging: 1 source table%(s%), keep = 2") ~= nil, true, text)
      T.eq(text:find("DELETE " .. copy(1), 1, true) ~= nil, true, text)
    end
    T.eq(select(2, retention.explain("nope", { rules = list, svc = svc })):match("no rule"), "no rule")
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
