-- Rotation of old copies. A rule's `retention = { keep = N, max_age = "7d" }` deletes the
-- restored copies of a source table beyond the newest N and/or older than max_age (either
-- condition is enough). Only tables Rotator made are candidates: they carry its tags
-- (rotator:source, rotator:backup-job, rotator:rule; set by post_restore once ACTIVE) for
-- this source AND this rule, and a name ending in Rotator's "-YYYYMMDD-HH-mm-ss" suffix
-- (a cheap pre-filter before DescribeTable/ListTagsOfResource). Never deleted: the table
-- the rule's SSM parameter points to, the copy this workflow restored, a table with
-- deletion protection on, a table that is not ACTIVE.
-- Age and order come from the backup start time in the name (the table's
-- CreationDateTime when the name carries none).
--   M.after_switch(ctx, doc, rule)   workflow call site: after the SSM parameter switched
--   M.decide(copies, policy, now)    pure planning: copies -> {name, delete, reason}
--   M.plan(rule_name_or_source)      REPL: the candidates with reasons (nothing deleted)
local log = require "log"
local clock = require "clock"
local rules = require "policy.rules"
local services = require "aws.services"
local H = require "workflow.doc"

local M = {}

M.TAG_SOURCE, M.TAG_JOB, M.TAG_RULE = "rotator:source", "rotator:backup-job", "rotator:rule"

---------------------------------------------------------------- rule field
-- Validator for rule.retention (called from rules.validate): nil or a message.
function M.validate_rule(rule)
  local r = rule.retention
  if r == nil then return end
  for k in pairs(r) do
    if k ~= "keep" and k ~= "max_age" then
      return ("retention: unknown field '%s' (keep, max_age)"):format(tostring(k))
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
end

---------------------------------------------------------------- planning (pure)
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

-- copies: { {name, start = epoch|nil, protect = reason|nil}... }; policy = rule.retention.
-- Returns the copies newest first, each with delete = bool and reason.
function M.decide(copies, policy, now)
  local max_age = policy.max_age and H.duration(policy.max_age)
  local list = {}
  for _, c in ipairs(copies) do list[#list + 1] = c end
  table.sort(list, by_newest)
  local out = {}
  for rank, c in ipairs(list) do
    local d = { name = c.name, arn = c.arn, start = c.start, rank = rank }
    local why = delete_reason(c, rank, policy, max_age, now)
    if not c.start then
      d.delete, d.reason = false, "kept: no backup start time in its name and no CreationDateTime"
    elseif not why then
      d.delete, d.reason = false, "kept: within the retention policy"
    elseif c.protect then
      d.delete, d.reason = false, ("kept (%s) although %s"):format(c.protect, why)
    else
      d.delete, d.reason = true, why
    end
    out[#out + 1] = d
  end
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

local function start_of(name, t)
  return rules.start_from_name(name) or (type(t.CreationDateTime) == "number" and t.CreationDateTime or nil)
end

-- One table as a copy, or nil when it is not Rotator's (or vanished). want(tags) -> bool.
local function inspect(svc, name, want)
  local d, err = svc:call("dynamodb", "DescribeTable", { TableName = name })
  if not d then
    if H.code(err) == "ResourceNotFoundException" then return nil end
    return nil, err
  end
  local t = d.Table or {}
  local tags, terr = tags_of(svc, t.TableArn)
  if not tags then return nil, terr end
  if not tags[M.TAG_SOURCE] or not want(tags) then return nil end
  local c = { name = name, arn = t.TableArn, start = start_of(name, t), tags = tags, status = t.TableStatus }
  if t.DeletionProtectionEnabled then c.protect = "deletion protection is on"
  elseif t.TableStatus ~= "ACTIVE" then c.protect = "status " .. tostring(t.TableStatus) end
  return c
end

-- Rotator's copies matching want(tags): list or nil, err.
function M.collect(svc, want)
  local names, err = list_tables(svc)
  if not names then return nil, err end
  local copies = {}
  for _, name in ipairs(names) do
    if rules.start_from_name(name) then
      local c, cerr = inspect(svc, name, want)
      if cerr then return nil, cerr end
      copies[#copies + 1] = c
    end
  end
  return copies
end

-- The table name the rule's SSM parameter points to: name | false (no parameter) | nil, err.
local function ssm_target(svc, rule)
  if not rule.ssm_parameter then return false end
  local res, err = svc:call("ssm", "GetParameter", { Name = rule.ssm_parameter })
  if res then return H.table_name(res.Parameter and res.Parameter.Value) or false end
  if H.code(err) == "ParameterNotFound" then return false end
  return nil, err
end

local function protect(copies, names)
  for _, c in ipairs(copies) do
    if not c.protect and names[c.name] then c.protect = names[c.name] end
  end
end

---------------------------------------------------------------- the workflow step
local function delete(ctx, doc, d)
  local res, rid = ctx.svc:call("dynamodb", "DeleteTable", { TableName = d.name }, { reason = d.reason })
  local f = H.fields(doc, { table = d.name, reason = d.reason, dry_run = ctx.dry_run or nil })
  if res then
    f.request_id = rid
    log.info(ctx.dry_run and "retention.would_delete" or "retention.deleted", f)
    return true
  end
  f.request_id, f.error = H.rid(rid), tostring(rid)
  log.error("retention.delete_failed", f)
  return false, rid
end

-- Copies of this workflow's source/rule, the new copy included (planned in a dry run).
local function own_copies(ctx, doc, rule)
  local label = doc.Rule
  local copies, err = M.collect(ctx.svc, function(tags)
    return tags[M.TAG_SOURCE] == doc.SourceTableName and tags[M.TAG_RULE] == label
  end)
  if not copies then return nil, err end
  local seen = false
  for _, c in ipairs(copies) do if c.name == doc.TargetTableName then seen = true end end
  if not seen then
    copies[#copies + 1] = { name = doc.TargetTableName, arn = doc.TableArn, start = rules.start_from_name(doc.TargetTableName) }
  end
  local current, serr = ssm_target(ctx.svc, rule)
  if current == nil then return nil, serr end
  local keep = { [doc.TargetTableName] = "the copy this workflow restored" }
  if current then keep[current] = ("SSM parameter %s points to it"):format(rule.ssm_parameter) end
  protect(copies, keep)
  return copies
end

-- Call site: after the SSM parameter switched. Never fails the workflow: errors are logged
-- and recorded in the step. Returns the decisions (or nil, err).
function M.after_switch(ctx, doc, rule)
  if not rule.retention then return end
  if doc.UpdateSSMParameterOutput == nil and doc.SSMParameterName then return end
  local s = H.step(doc, "Retention")
  local copies, err = own_copies(ctx, doc, rule)
  if not copies then
    H.done(s, H.rid(err), err)
    log.warn("retention.skipped", H.fields(doc, { reason = tostring(err), request_id = H.rid(err) }))
    return nil, err
  end
  local decisions = M.decide(copies, rule.retention, clock.now())
  local deleted, failed = {}, nil
  for _, d in ipairs(decisions) do
    if d.delete then
      local ok, derr = delete(ctx, doc, d)
      if ok then deleted[#deleted + 1] = d.name else failed = derr end
    end
  end
  s.Deleted = deleted
  H.done(s, nil, failed)
  doc.Retention = decisions
  log.info("retention.done", H.fields(doc, { copies = #decisions, deleted = #deleted, dry_run = ctx.dry_run or nil }))
  return decisions
end

---------------------------------------------------------------- REPL
-- retention.plan("staging") or retention.plan("orders-production"): what the next run of
-- that rule (or of the rule matching that source) would delete and why. Reads only.
-- opts: { rules = list (the console passes the daemon's), svc = services object }
function M.plan(what, opts)
  opts = opts or {}
  local list = opts.rules or {}
  local rule
  for _, r in ipairs(list) do if rules.label(r) == what then rule = r end end
  local by_source = not rule and what or nil
  rule = rule or rules.match(list, what)
  if not rule then return nil, ("no rule named %q and none matching table %q"):format(what, what) end
  if not rule.retention then return nil, ("rule %s has no retention policy"):format(rules.label(rule)) end
  local svc = opts.svc or services.new({ dry_run = true, emit = function() end })
  local label = rules.label(rule)
  local copies, err = M.collect(svc, function(tags)
    return tags[M.TAG_RULE] == label and (not by_source or tags[M.TAG_SOURCE] == by_source)
  end)
  if not copies then return nil, tostring(err) end
  local current, serr = ssm_target(svc, rule)
  if current == nil then return nil, tostring(serr) end
  if current then protect(copies, { [current] = ("SSM parameter %s points to it"):format(rule.ssm_parameter) }) end
  local groups, out = {}, {}
  for _, c in ipairs(copies) do
    local src = c.tags[M.TAG_SOURCE]
    groups[src] = groups[src] or {}
    table.insert(groups[src], c)
  end
  for src, g in pairs(groups) do
    for _, d in ipairs(M.decide(g, rule.retention, clock.now())) do
      d.source = src
      out[#out + 1] = d
    end
  end
  return out
end

return M
