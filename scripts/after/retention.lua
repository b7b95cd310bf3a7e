-- Rotation of old copies. A rule's `retention = { keep = N, max_age = "7d", max_deletes = 2 }`
-- deletes the restored copies of a source table beyond the newest N and/or older than
-- max_age (either condition marks a copy), at most max_deletes per run (default 2), and
-- never one whose deletion would leave fewer than `keep` (default 1) ACTIVE copies (so
-- max_age never takes a rule below keep).
--
-- One planner (M.plan) serves the real run, the dry run and `rotator retention --explain`:
-- it decides on the state the workflow will leave (the SSM parameter as it will be after
-- this workflow's update), so a dry run lists exactly the DeleteTable calls the run makes.
--
-- Proof before delete. A table is a candidate only when all of these hold, read fresh
-- (DescribeTable + ListTagsOfResource) inside the step, and read again right before its
-- DeleteTable:
--   * Rotator's full tag set for this source and rule: rotator:source = the source,
--     rotator:rule = the rule's label, rotator:backup-job present (post_restore sets them);
--   * RestoreSummary proves it was restored from a backup of that source table:
--       - a DynamoDB backup ARN embeds its table: SourceBackupArn must be
--         <source table ARN>/backup/<id> (and SourceTableArn, when given, the source);
--       - an AWS Backup recovery point ARN (arn:...:backup:...:recovery-point:...) does not
--         name its table, so RestoreSummary.SourceTableArn must be the source table's ARN;
--         without it the table is kept ("cannot prove its source");
--       - a point-in-time restore or no RestoreSummary at all: not Rotator's;
--   * its name is the rule's name for the source at the time in its suffix
--     (rules.target_name: the replacement applied to the source + "-YYYYMMDD-HH-mm-ss");
--   * not the source, not the parameter's target (as it will be), not this workflow's
--     copy, not deletion-protected; only ACTIVE tables are deleted.
-- A read error on one table keeps that table (warning); a ListTables error skips the run.
-- Each deletion is journaled (ctx.store:record, "Retention Delete") with its evidence in
-- the Retention step before the DeleteTable call, and logged with the table's name.
--
--   M.after_switch(ctx, doc, rule)      workflow call site: after the SSM parameter switched
--   M.plan(svc, rule, situation)        the planner: every table considered, with reasons
--   M.decide(copies, policy, now)       pure ranking/limits over proven copies
--   M.explain(what, opts)               rule label or source table -> rows (CLI, REPL)
--   M.explain_text(rows, info)          those rows as text (info: explain's second value)
--   M.validate_rule(rule)               validator of rule.retention
local log = require "log"
local clock = require "clock"
local task = require "engine.task"
local rules = require "policy.rules"
local H = require "workflow.doc"

local M = {}

M.TAG_SOURCE, M.TAG_JOB, M.TAG_RULE = "rotator:source", "rotator:backup-job", "rotator:rule"
M.DEFAULT_MAX_DELETES = 2

---------------------------------------------------------------- rule field
local FIELDS = { keep = true, max_age = true, max_deletes = true }

-- Validator for rule.retention (called from rules.validate): nil or a message.
function M.validate_rule(rule)
  local r = rule.retention
  if r == nil then return end
  for k in pairs(r) do
    if not FIELDS[k] then
      return ("retention: unknown field '%s' (keep, max_age, max_deletes)"):format(tostring(k))
    end
  end
  if r.keep == nil and r.max_age == nil then return "retention needs keep (a count) and/or max_age (e.g. \"7d\")" end
  if r.keep ~= nil and (math.type(r.keep) ~= "integer" or r.keep < 1) then
    return "retention.keep must be an integer >= 1 (the copies to keep, the current one included)"
  end
  if r.max_age ~= nil then
    local _, why = H.duration(r.max_age)
    if why then return "retention.max_age: " .. why end
  end
  if r.max_deletes ~= nil and (math.type(r.max_deletes) ~= "integer" or r.max_deletes < 1) then
    return ("retention.max_deletes must be an integer >= 1 (deletions per run; default %d)"):format(M.DEFAULT_MAX_DELETES)
  end
end

---------------------------------------------------------------- deciding (pure)
local function age_text(sec)
  if sec >= 86400 then return ("%.1fd"):format(sec / 86400) end
  if sec >= 3600 then return ("%.1fh"):format(sec / 3600) end
  return ("%ds"):format(math.floor(sec))
end

local function delete_reason(c, rank, policy, max_age, now)
  local why = {}
  if policy.keep and rank > policy.keep then
    why[#why + 1] = ("beyond the newest %d (rank %d)"):format(policy.keep, rank)
  end
  if max_age and c.start and now - c.start > max_age then
    why[#why + 1] = ("older than %s (age %s)"):format(tostring(policy.max_age), age_text(now - c.start))
  end
  if #why > 0 then return table.concat(why, "; ") end
end

local function by_newest(a, b)
  if a.start ~= b.start then return (a.start or -1) > (b.start or -1) end
  return a.name > b.name
end

-- Oldest first: each deletion must leave at least `floor` ACTIVE copies, and at most
-- `cap` are made in one run. out: decisions newest first; wanted: those marked, newest first.
local function limit(out, wanted, floor, cap)
  local active = 0
  for _, d in ipairs(out) do if d.active then active = active + 1 end end
  local n = 0
  for i = #wanted, 1, -1 do
    local d = wanted[i]
    if d.active and active - 1 < floor then
      d.delete, d.refused = false, true
      d.reason = ("kept: refused, deleting it would leave %d ACTIVE copies, fewer than keep = %d; although %s")
        :format(active - 1, floor, d.reason)
    elseif n >= cap then
      d.delete = false
      d.reason = ("kept: over the per-run cap retention.max_deletes = %d (a later run deletes it) although %s")
        :format(cap, d.reason)
    else
      n = n + 1
      if d.active then active = active - 1 end
    end
  end
end

-- copies: Rotator's proven copies { {name, start = epoch|nil, protect = reason|nil,
-- active = bool (default true)}... }; policy = rule.retention.
-- Returns the copies newest first, each with delete = bool and reason. Limits, taking
-- the oldest first: a deletion that would leave fewer than policy.keep (default 1) ACTIVE
-- copies is refused, and at most policy.max_deletes (default 2) are made.
function M.decide(copies, policy, now)
  local max_age = policy.max_age and H.duration(policy.max_age)
  local list = {}
  for _, c in ipairs(copies) do list[#list + 1] = c end
  table.sort(list, by_newest)
  local out, wanted = {}, {}
  for rank, c in ipairs(list) do
    local d = { name = c.name, arn = c.arn, start = c.start, rank = rank, evidence = c.evidence,
      active = c.active ~= false }
    local why = delete_reason(c, rank, policy, max_age, now)
    if not c.start then
      d.delete, d.reason = false, "kept: no backup start time in its name"
    elseif not why then
      d.delete, d.reason = false, c.protect and ("kept (%s); within the retention policy"):format(c.protect)
        or "kept: within the retention policy"
    elseif c.protect then
      d.delete, d.reason = false, ("kept (%s) although %s"):format(c.protect, why)
    else
      d.delete, d.reason = true, why
      wanted[#wanted + 1] = d
    end
    out[#out + 1] = d
  end
  limit(out, wanted, policy.keep or 1, policy.max_deletes or M.DEFAULT_MAX_DELETES)
  return out
end

---------------------------------------------------------------- reading the account
local function list_tables(svc)
  local names, start = {}, nil
  repeat
    local res, err = svc:call("dynamodb", "ListTables", { ExclusiveStartTableName = start })
    if not res then return nil, err end
    for _, n in ipairs(res.TableNames or {}) do names[#names + 1] = n end
    start = res.LastEvaluatedTableName
  until not start
  return names
end

local function tags_of(svc, arn)
  local tags, token = {}, nil
  repeat
    local res, err = svc:call("dynamodb", "ListTagsOfResource", { ResourceArn = arn, NextToken = token })
    if not res then return nil, err end
    for _, t in ipairs(res.Tags or {}) do tags[t.Key] = t.Value end
    token = res.NextToken
  until not token
  return tags
end

-- The name the rule gives a copy of `source` taken at `start` (job: the backup job id a
-- target_name hook may use), or nil.
local function rule_name(rule, source, start, job)
  return (rules.target_name(rule, { table_name = source, start_epoch = start, backup_job_id = job }))
end

-- Cheap pre-filter on the name alone (before any per-table call).
local function shaped(rule, source, name)
  local start = rules.start_from_name(name)
  if not start or name == source then return false end
  if rule.target_name then return true end -- checked in full once the tags give the job id
  return rule_name(rule, source, start) == name
end

-- The source table's ARN, in the copy's partition, region and account.
local function source_arn_for(copy_arn, source)
  local head = type(copy_arn) == "string" and copy_arn:match("^(arn:[^:]+:dynamodb:[^:]*:[^:]*:table/)")
  return head and head .. source
end

-- Does RestoreSummary prove the table was restored from a backup of `source`?
-- true, evidence | false, why
local function restored_from(t, source)
  local rs = t.RestoreSummary
  if type(rs) ~= "table" then return false, "not a restored table (no RestoreSummary)" end
  local want = source_arn_for(t.TableArn, source)
  if not want then return false, ("its ARN %s is not a DynamoDB table ARN"):format(tostring(t.TableArn)) end
  local b, st = rs.SourceBackupArn, rs.SourceTableArn
  local ev = { source_backup_arn = b, source_table_arn = st }
  if st and st ~= want then return false, ("restored from a backup of %s, not of %s"):format(st, source) end
  if type(b) ~= "string" then
    return false, "not restored from a backup (RestoreSummary has no SourceBackupArn: a point-in-time restore?)"
  end
  local of = b:match("^(arn:[^:]+:dynamodb:[^:]*:[^:]*:table/[^/]+)/backup/[^/]+$")
  if of then
    if of ~= want then return false, ("restored from backup %s of another table, not of %s"):format(b, source) end
    return true, ev
  end
  if b:match("^arn:[^:]+:backup:[^:]*:[^:]*:recovery%-point:") then
    if st == want then return true, ev end
    return false, ("restored from recovery point %s, and RestoreSummary names no source table: cannot prove its source"):format(b)
  end
  return false, ("restored from %s, not from a backup of %s"):format(b, source)
end

local function tag_mismatch(tags, key, want)
  if tags[key] == nil then return ("tag %s is missing"):format(key) end
  return ("tag %s is '%s', not %s"):format(key, tags[key], want)
end

-- One table, read now. Returns an entry { name, arn, start, proven, why, evidence,
-- protect, active } or nil, err on a read error; false when the table has gone.
-- want = { source, label, rule }
function M.examine(svc, name, want)
  local d, err = svc:call("dynamodb", "DescribeTable", { TableName = name })
  if not d then
    if H.code(err) == "ResourceNotFoundException" then return false end
    return nil, err
  end
  local t = d.Table or {}
  local tags, terr = tags_of(svc, t.TableArn)
  if not tags then return nil, terr end
  local e = { name = name, arn = t.TableArn, start = rules.start_from_name(name), status = t.TableStatus,
    active = t.TableStatus == "ACTIVE", proven = false }
  local job = tags[M.TAG_JOB]
  if tags[M.TAG_SOURCE] ~= want.source then
    e.why = tag_mismatch(tags, M.TAG_SOURCE, want.source)
  elseif tags[M.TAG_RULE] ~= want.label then
    e.why = tag_mismatch(tags, M.TAG_RULE, want.label)
  elseif type(job) ~= "string" or job == "" then
    e.why = ("tag %s is missing"):format(M.TAG_JOB)
  elseif name == want.source then
    e.why = "it is the source table"
  elseif not e.start or rule_name(want.rule, want.source, e.start, job) ~= name then
    e.why = ("its name is not rule %s's name for a copy of %s"):format(want.label, want.source)
  else
    local ok, ev = restored_from(t, want.source)
    if not ok then
      e.why = ev
    else
      e.proven = true
      e.evidence = { table_arn = t.TableArn, status = t.TableStatus, deletion_protection = t.DeletionProtectionEnabled == true,
        source_backup_arn = ev.source_backup_arn, source_table_arn = ev.source_table_arn,
        tags = { [M.TAG_SOURCE] = tags[M.TAG_SOURCE], [M.TAG_RULE] = tags[M.TAG_RULE], [M.TAG_JOB] = job } }
    end
  end
  if t.DeletionProtectionEnabled then e.protect = "deletion protection is on"
  elseif not e.active then e.protect = "status " .. tostring(t.TableStatus) end
  return e
end

---------------------------------------------------------------- the planner
-- situation = {
--   source = table name, label = the rule's label (the rotator:rule tag),
--   own = this workflow's copy (taken as ACTIVE and never read: the same in a dry run,
--         where it does not exist yet, and in the run),
--   target = the table the SSM parameter points to once this workflow is done (or nil),
--   target_note = why it is kept, names = ListTables result (optional), now = epoch }
-- Returns { considered = rows newest first ({name, delete, reason, evidence...}),
--   deletions = the rows to delete, oldest first } or nil, err (ListTables failed).
local function read_failed(name, sit, label, err)
  local c = task.context() -- plan() runs inside a workflow's task, or a command's
  log.warn("retention.read_failed", { table = name, source = sit.source, rule = label,
    error = tostring(err), request_id = H.rid(err), reason = "table skipped",
    workflow = c and c.workflow, message_id = c and c.message_id })
  return { name = name, delete = false, read_error = true, reason = ("kept: could not read it (%s); skipped"):format(tostring(err)) }
end

function M.plan(svc, rule, sit)
  local names = sit.names
  if not names then
    local err
    names, err = list_tables(svc)
    if not names then return nil, err end
  end
  local want = { source = sit.source, label = sit.label or rules.label(rule), rule = rule }
  local protect = {}
  if sit.target then protect[sit.target] = sit.target_note or "the SSM parameter points to it" end
  local copies, others = {}, {}
  if sit.own then
    copies[1] = { name = sit.own, start = rules.start_from_name(sit.own), protect = "the copy this workflow restored", active = true }
  end
  for _, name in ipairs(names) do
    if name ~= sit.own and shaped(rule, sit.source, name) then
      local e, err = M.examine(svc, name, want)
      if e == nil then
        others[#others + 1] = read_failed(name, sit, want.label, err)
      elseif e and not e.proven then
        others[#others + 1] = { name = name, delete = false,
          reason = ("kept: not provably Rotator's copy of %s (%s)"):format(sit.source, e.why) }
      elseif e then
        e.protect = protect[name] or e.protect
        copies[#copies + 1] = e
      end
    end
  end
  local considered = M.decide(copies, rule.retention, sit.now or clock.now())
  table.sort(others, function(a, b) return a.name > b.name end)
  for _, row in ipairs(others) do considered[#considered + 1] = row end
  local deletions = {}
  for _, d in ipairs(considered) do if d.delete then table.insert(deletions, 1, d) end end
  return { considered = considered, deletions = deletions }
end

-- The table the rule's SSM parameter points to once this workflow is done: name, note.
local function target_after(doc, rule)
  local param = doc.SSMParameterName or rule.ssm_parameter
  if not param then return nil end
  local out = doc.UpdateSSMParameterOutput
  if type(out) == "table" and out.Skipped then
    return H.table_name(out.Current), ("the SSM parameter %s points to it (kept: newer than this backup)"):format(param)
  end
  return doc.TargetTableName, ("the SSM parameter %s points to it after this workflow's update"):format(param)
end

---------------------------------------------------------------- the workflow step
-- Re-read right before the DeleteTable: still a proven, unprotected, ACTIVE copy?
local function still_deletable(svc, d, want)
  local e, err = M.examine(svc, d.name, want)
  if e == nil then return nil, ("could not read it again before deleting (%s)"):format(tostring(err)), err end
  if e == false then return nil, "it has gone" end
  if not e.proven then return nil, "no longer provably Rotator's: " .. tostring(e.why) end
  if e.protect then return nil, e.protect end
  return e
end

local function delete_one(ctx, doc, s, d, want)
  local f = H.fields(doc, { table = d.name, reason = d.reason, dry_run = ctx.dry_run or nil })
  local e, why, rerr = still_deletable(ctx.svc, d, want)
  if not e then
    d.delete, d.reason = false, "kept: " .. why
    f.reason, f.request_id = why, H.rid(rerr)
    log.warn("retention.not_deleted", f)
    return true
  end
  local entry = { Table = d.name, Reason = d.reason, Evidence = e.evidence, At = clock.rfc3339(clock.now()) }
  s.Deletions = s.Deletions or {}
  s.Deletions[#s.Deletions + 1] = entry
  if ctx.store and not ctx.dry_run then
    local ok, jerr = ctx.store:record_wait(doc, "Retention Delete")
    if not ok then
      d.delete, d.reason = false, "kept: the deletion could not be journaled: " .. tostring(jerr)
      entry.Result = "not deleted: journal failed"
      f.error = tostring(jerr)
      log.error("retention.journal_failed", f)
      return false, jerr, true
    end
  end
  f.source_backup_arn, f.source_table_arn = e.evidence.source_backup_arn, e.evidence.source_table_arn
  f.backup_job = e.evidence.tags[M.TAG_JOB]
  local res, rid = ctx.svc:call("dynamodb", "DeleteTable", { TableName = d.name }, { reason = d.reason })
  if res then
    entry.Result, entry.RequestId = ctx.dry_run and "planned" or "deleted", rid
    f.request_id = rid
    log.info(ctx.dry_run and "retention.would_delete" or "retention.deleted", f)
    return true
  end
  entry.Result, entry.Error = "failed", tostring(rid)
  f.request_id, f.error = H.rid(rid), tostring(rid)
  log.error("retention.delete_failed", f)
  return false, rid
end

local function summary(rows)
  local out = {}
  for _, d in ipairs(rows) do out[#out + 1] = { name = d.name, delete = d.delete, reason = d.reason, rank = d.rank } end
  return out
end

-- Call site: after the SSM parameter switched (or was planned to, in a dry run). Never
-- fails the workflow: errors are logged and recorded in the step. Returns the decisions
-- (every table considered, newest first), or nil, err.
function M.after_switch(ctx, doc, rule)
  if not rule.retention then return end
  if doc.UpdateSSMParameterOutput == nil and doc.SSMParameterName then return end
  local s = H.step(doc, "Retention")
  local target, note = target_after(doc, rule)
  local p, err = M.plan(ctx.svc, rule, { source = doc.SourceTableName, label = doc.Rule, own = doc.TargetTableName,
    target = target, target_note = note })
  if not p then
    H.done(s, H.rid(err), err)
    log.warn("retention.skipped", H.fields(doc, { reason = tostring(err), request_id = H.rid(err) }))
    return nil, err
  end
  local want = { source = doc.SourceTableName, label = doc.Rule, rule = rule }
  doc.Retention = summary(p.considered)
  local deleted, failed = {}, nil
  for _, d in ipairs(p.deletions) do
    local ok, derr, stop = delete_one(ctx, doc, s, d, want)
    if d.delete and ok then deleted[#deleted + 1] = d.name end
    if not ok then failed = derr end
    if stop then break end -- the journal failed: delete nothing more
    doc.Retention = summary(p.considered)
  end
  s.Deleted = deleted
  H.done(s, nil, failed)
  doc.Retention = summary(p.considered)
  log.info("retention.done", H.fields(doc, { considered = #p.considered, deleted = #deleted, dry_run = ctx.dry_run or nil }))
  return p.considered
end

---------------------------------------------------------------- explain (CLI, REPL)
-- The table name the rule's SSM parameter points to now: name | false | nil, err.
local function ssm_now(svc, rule)
  if not rule.ssm_parameter then return false end
  local res, err = svc:call("ssm", "GetParameter", { Name = rule.ssm_parameter })
  if res then return H.table_name(res.Parameter and res.Parameter.Value) or false end
  if H.code(err) == "ParameterNotFound" then return false end
  return nil, err
end

-- What the next run of a rule would do, table by table. `what`: a rule's label, or a
-- source table name (its rule is the first that matches it). Reads only.
-- opts = { rules = the rules in force (required), svc = services object, now = epoch }
-- Returns rows { source, rule, name, delete, reason } or nil, message.
function M.explain(what, opts)
  local list = opts.rules or {}
  local rule
  for _, r in ipairs(list) do if rules.label(r) == what then rule = r end end
  local only = not rule and what or nil
  rule = rule or rules.match(list, what)
  if not rule then return nil, ("no rule named %q and none matching table %q"):format(tostring(what), tostring(what)) end
  local label = rules.label(rule)
  if not rule.retention then return nil, ("rule %s has no retention policy"):format(label) end
  local svc = opts.svc
  local names, err = list_tables(svc)
  if not names then return nil, "ListTables: " .. tostring(err) end
  local target, serr = ssm_now(svc, rule)
  if target == nil then return nil, ("GetParameter %s: %s"):format(rule.ssm_parameter, tostring(serr)) end
  local sources = {}
  if only then sources = { only }
  else
    for _, n in ipairs(names) do
      if rules.match(list, n) == rule and not rules.start_from_name(n) then sources[#sources + 1] = n end
    end
  end
  local rows = {}
  for _, src in ipairs(sources) do
    local p, perr = M.plan(svc, rule, { source = src, label = label, names = names, now = opts.now,
      target = target or nil, target_note = rule.ssm_parameter and ("the SSM parameter %s points to it"):format(rule.ssm_parameter) })
    if not p then return nil, tostring(perr) end
    for _, d in ipairs(p.considered) do
      rows[#rows + 1] = { source = src, rule = label, name = d.name, delete = d.delete, reason = d.reason }
    end
  end
  return rows, { rule = label, sources = sources, keep = rule.retention.keep, max_age = rule.retention.max_age,
    max_deletes = rule.retention.max_deletes or M.DEFAULT_MAX_DELETES }
end

function M.explain_text(rows, info)
  local lines = {}
  if info then
    lines[1] = ("rule %s: %d source table(s), keep = %s, max_age = %s, max_deletes = %d"):format(info.rule, #info.sources,
      tostring(info.keep or "-"), tostring(info.max_age or "-"), info.max_deletes)
  end
  for _, r in ipairs(rows) do
    lines[#lines + 1] = ("%-6s %-48s %s  [source %s]"):format(r.delete and "DELETE" or "keep", r.name, r.reason, r.source)
  end
  if #rows == 0 then lines[#lines + 1] = "(no table has the rule's name shape for these sources)" end
  return table.concat(lines, "\n")
end

return M
