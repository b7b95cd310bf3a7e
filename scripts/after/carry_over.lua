-- What no restore carries over: settings of the source table that RestoreTableFromBackup
-- and StartRestoreJob leave behind, copied onto the restored table when a rule opts in:
--   carry_over = { "stream", "autoscaling", "contributor_insights", "resource_policy" }
-- (any subset, in any order). Each value is one step in the workflow history:
--   Copy Stream               "stream": the source's StreamSpecification (view type), set
--                             with UpdateTable
--   Copy Contributor Insights "contributor_insights": DescribeContributorInsights on the
--                             source table and each of its GSIs, UpdateContributorInsights
--                             ENABLE (with the source's mode) on the copy
--   Copy Auto Scaling         "autoscaling": the Application Auto Scaling scalable targets
--                             and scaling policies of table/SRC and table/SRC/index/IDX,
--                             registered and put on table/COPY and table/COPY/index/IDX
--                             (provisioned copies only; an on-demand copy skips it)
--   Copy Resource Policy      "resource_policy": GetResourcePolicy on the source, the source
--                             table's ARN rewritten to the copy's in the document (also as
--                             the prefix of .../index/* and .../stream/* ARNs), then
--                             PutResourcePolicy; the last step, so a policy that narrows
--                             access cannot lock the earlier steps out
-- Every step reads the copy first and changes only what differs, so a retry or a
-- redelivery after a crash between the call and the journal repeats nothing: a stream
-- already on, insights already enabled, a target or policy already equal, a policy
-- document already in place are "already set".
--   M.validate_rule(rule)        nil or a message starting with "carry_over"
--   M.steps_before_validation(rule) / M.steps_last(rule) -> { {state, fn}, ... }
--   fn(ctx, doc, rule, s) -> true, request_id | nil, err   (post_restore runs them)
-- UpdateTable leaves the table UPDATING for a while, and the steps after it (Deletion
-- Protection is another UpdateTable) need it ACTIVE: Copy Stream waits for ACTIVE again,
-- polling as the restore wait does (ROTATOR_WAIT_FIRST, doubling up to ROTATOR_WAIT_MAX),
-- at most M.ACTIVE_WITHIN seconds.
local json = require "json"
local task = require "engine.task"
local rules = require "policy.rules"
local config = require "workflow.config"
local H = require "workflow.doc"

local M = {}

M.VALUES = {
  stream = "Copy Stream",
  contributor_insights = "Copy Contributor Insights",
  autoscaling = "Copy Auto Scaling",
  resource_policy = "Copy Resource Policy",
}

local function known_list()
  local names = {}
  for k in pairs(M.VALUES) do names[#names + 1] = k end
  table.sort(names)
  return table.concat(names, ", ")
end

function M.validate_rule(rule)
  local v = rule.carry_over
  if v == nil then return nil end
  if type(v) ~= "table" then
    return ("carry_over must be a list such as { \"stream\", \"autoscaling\" }, not a %s"):format(type(v))
  end
  local n = #v
  for k in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 or k > n then
      return ("carry_over must be a list of names (%s), not a table keyed by %q"):format(known_list(), tostring(k))
    end
  end
  local seen = {}
  for _, name in ipairs(v) do
    if type(name) ~= "string" then
      return ("carry_over: %s is not a name; give some of %s"):format(tostring(name), known_list())
    end
    if not M.VALUES[name] then
      local near = rules.did_you_mean(name, M.VALUES)
      return ("carry_over: unknown value %q%s; known: %s"):format(name,
        near and (" (did you mean \"" .. near .. "\"?)") or "", known_list())
    end
    if seen[name] then return ("carry_over: %q is listed twice"):format(name) end
    seen[name] = true
  end
end

local function wants(rule, name)
  for _, v in ipairs(rule.carry_over or {}) do if v == name then return true end end
  return false
end

-- Deep equality of decoded JSON values.
local function same(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
M.same = same

-- The source's description, read once per run of the steps (memo on the step list).
local function describe(ctx, name)
  local res, err = ctx.svc:call("dynamodb", "DescribeTable", { TableName = name })
  if not res then return nil, err end
  return res.Table or {}, err
end

local function offline(err, s, what)
  if H.code(err) == "DryRunOffline" then
    s.Skipped = "offline dry run: source " .. what .. " unknown"
    return true
  end
end

-- The source's description and, unless planning, the copy's: src, copy | nil, err.
local function tables(ctx, doc, memo)
  local src, err = memo.source(ctx, doc)
  if not src then return nil, err end
  if ctx.dry_run then return src end
  local copy, cerr = describe(ctx, doc.TargetTableName)
  if not copy then return nil, cerr end
  return src, copy
end

local function gsi_names(t)
  local out = {}
  for _, g in ipairs(t and t.GlobalSecondaryIndexes or {}) do out[#out + 1] = g.IndexName end
  table.sort(out)
  return out
end

local function has_gsi(t, name)
  for _, g in ipairs(t and t.GlobalSecondaryIndexes or {}) do if g.IndexName == name then return true end end
  return false
end

-------------------------------------------------------------------------- stream

M.ACTIVE_WITHIN = 900

-- Poll the copy until ACTIVE: true | nil, err. s.WaitedSeconds says how long it took.
local function until_active(ctx, name, s)
  if ctx.dry_run then return true end
  local delay, waited = config.values.first_poll, 0
  while true do
    local t, err = describe(ctx, name)
    if not t then return nil, err end
    if t.TableStatus == nil or t.TableStatus == "ACTIVE" then
      if waited > 0 then s.WaitedSeconds = waited end
      return true
    end
    if waited >= M.ACTIVE_WITHIN then
      return nil, ("%s is still %s %d s after UpdateTable; see it with DescribeTable, then redrive the message")
        :format(name, tostring(t.TableStatus), waited)
    end
    task.sleep(delay)
    waited = waited + delay
    delay = math.min(delay * config.values.poll_factor, config.values.max_poll)
  end
end

local function stream_of(t)
  local spec = t and t.StreamSpecification
  if spec and spec.StreamEnabled then return spec.StreamViewType or "NEW_AND_OLD_IMAGES" end
end

local function copy_stream(ctx, doc, _, s, memo)
  local src, err = memo.source(ctx, doc)
  if not src then return offline(err, s, "stream") or nil, err end
  local view = stream_of(src)
  if not view then s.Skipped = "source has no stream" return true end
  s.StreamViewType = view
  local function current()
    if ctx.dry_run then return nil end
    local t, cerr = describe(ctx, doc.TargetTableName)
    if not t then return false, cerr end
    return stream_of(t), t
  end
  local have, t = current()
  if have == false then return nil, t end
  if have == view then
    s.Skipped, s.StreamArn = "already streaming", t.LatestStreamArn
    if t.TableStatus and t.TableStatus ~= "ACTIVE" then return until_active(ctx, doc.TargetTableName, s) end
    return true
  end
  if have then
    return nil, ("the copy streams %s and the source %s: a stream's view type cannot change in place;"
      .. " disable the copy's stream or drop \"stream\" from carry_over"):format(have, view)
  end
  local res, rid = ctx.svc:call("dynamodb", "UpdateTable", { TableName = doc.TargetTableName,
    StreamSpecification = { StreamEnabled = true, StreamViewType = view } })
  if not res then
    -- Enabled meanwhile (a redelivered workflow racing this one): done if it is the same.
    local again = current()
    if again == view then s.Skipped = "already streaming" return true end
    return nil, rid
  end
  local td = res.TableDescription or {}
  s.StreamArn = td.LatestStreamArn
  local ok, werr = until_active(ctx, doc.TargetTableName, s)
  if not ok then return nil, werr end
  return true, rid
end

------------------------------------------------------------ contributor insights

local function insights_on(status)
  return status == "ENABLED" or status == "ENABLING"
end

local function insights(ctx, table_name, index)
  return ctx.svc:call("dynamodb", "DescribeContributorInsights", { TableName = table_name, IndexName = index })
end

local function copy_insights(ctx, doc, _, s, memo)
  local src, copy = tables(ctx, doc, memo)
  if not src then return offline(copy, s, "contributor insights") or nil, copy end
  local targets = { false }
  for _, g in ipairs(gsi_names(src)) do targets[#targets + 1] = g end
  local enabled, already, missing, last_rid = {}, {}, {}, nil
  for _, index in ipairs(targets) do
    local label = index or "table"
    local cur, rid = insights(ctx, src.TableName or doc.SourceTableName, index or nil)
    if not cur then return nil, rid end
    if insights_on(cur.ContributorInsightsStatus) then
      if index and copy and not has_gsi(copy, index) then
        missing[#missing + 1] = index
      else
        local mine
        if not ctx.dry_run then
          mine, rid = insights(ctx, doc.TargetTableName, index or nil)
          if not mine then return nil, rid end
        end
        if mine and insights_on(mine.ContributorInsightsStatus)
          and (mine.ContributorInsightsMode or "") == (cur.ContributorInsightsMode or "") then
          already[#already + 1] = label
        else
          local res, urid = ctx.svc:call("dynamodb", "UpdateContributorInsights", { TableName = doc.TargetTableName,
            IndexName = index or nil, ContributorInsightsAction = "ENABLE", ContributorInsightsMode = cur.ContributorInsightsMode })
          if not res then return nil, urid end
          enabled[#enabled + 1], last_rid = label, urid
        end
      end
    end
  end
  if #enabled + #already + #missing == 0 then s.Skipped = "source has contributor insights off" return true end
  if #enabled > 0 then s.Enabled = table.concat(enabled, ",") end
  if #already > 0 then s.AlreadySet = table.concat(already, ",") end
  if #missing > 0 then s.NotOnCopy = table.concat(missing, ",") end
  if #enabled == 0 then s.Skipped = "already set" end
  return true, last_rid
end

----------------------------------------------------------------- auto scaling

local AAS = "application-autoscaling"

-- Every item of a paginated Describe* (list_key), those keep(item) accepts.
local function pages(ctx, action, params, list_key, keep)
  local out, token, rid = {}, nil, nil
  repeat
    params.NextToken = token
    local res, r = ctx.svc:call(AAS, action, params)
    if not res then return nil, r end
    rid = r
    for _, x in ipairs(res[list_key] or {}) do if keep(x) then out[#out + 1] = x end end
    token = res.NextToken
  until token == nil or token == json.null or token == ""
  return out, rid
end

-- The scalable targets of exactly these resource ids.
local function targets_of(ctx, ids)
  local want = {}
  for _, id in ipairs(ids) do want[id] = true end
  return pages(ctx, "DescribeScalableTargets", { ServiceNamespace = "dynamodb", ResourceIds = ids },
    "ScalableTargets", function(t) return want[t.ResourceId] end)
end

-- The scaling policies of exactly this resource id (a prefix match is not enough).
local function policies_of(ctx, id)
  return pages(ctx, "DescribeScalingPolicies", { ServiceNamespace = "dynamodb", ResourceId = id },
    "ScalingPolicies", function(p) return p.ResourceId == id end)
end

local function obj(v) if type(v) == "table" then return v end end

local function key(p) return p.ResourceId .. " " .. p.ScalableDimension .. " " .. (p.PolicyName or "") end

local function same_target(a, b)
  return a and b and a.MinCapacity == b.MinCapacity and a.MaxCapacity == b.MaxCapacity
    and same(obj(a.SuspendedState) or {}, obj(b.SuspendedState) or {})
end

local function same_policy(a, b)
  return a and b and a.PolicyType == b.PolicyType
    and same(obj(a.TargetTrackingScalingPolicyConfiguration), obj(b.TargetTrackingScalingPolicyConfiguration))
    and same(obj(a.StepScalingPolicyConfiguration), obj(b.StepScalingPolicyConfiguration))
end

local function copy_autoscaling(ctx, doc, _, s, memo)
  local src, copy = tables(ctx, doc, memo)
  if not src then return offline(copy, s, "auto scaling") or nil, copy end
  local mode = copy and copy.BillingModeSummary and copy.BillingModeSummary.BillingMode
  if mode == "PAY_PER_REQUEST" then s.Skipped = "copy is on-demand (no provisioned capacity to scale)" return true end
  local from, to = "table/" .. (src.TableName or doc.SourceTableName), "table/" .. doc.TargetTableName
  local ids, map = { from }, { [from] = to }
  for _, g in ipairs(gsi_names(src)) do
    if not copy or has_gsi(copy, g) then
      ids[#ids + 1] = from .. "/index/" .. g
      map[from .. "/index/" .. g] = to .. "/index/" .. g
    end
  end
  local source_targets, rid = targets_of(ctx, ids)
  if not source_targets then return nil, rid end
  if #source_targets == 0 then s.Skipped = "source has no scalable targets" return true end
  local mine = {}
  if not ctx.dry_run then
    local cids = {}
    for _, id in ipairs(ids) do cids[#cids + 1] = map[id] end
    local list, cerr = targets_of(ctx, cids)
    if not list then return nil, cerr end
    for _, t in ipairs(list) do mine[t.ResourceId .. " " .. t.ScalableDimension] = t end
  end
  local registered, put, unchanged, last = 0, 0, 0, nil
  for _, t in ipairs(source_targets) do
    local id = map[t.ResourceId]
    if same_target(t, mine[id .. " " .. t.ScalableDimension]) then unchanged = unchanged + 1
    else
      -- No RoleARN: for DynamoDB, Application Auto Scaling uses its service-linked role.
      local res, r = ctx.svc:call(AAS, "RegisterScalableTarget", { ServiceNamespace = "dynamodb",
        ResourceId = id, ScalableDimension = t.ScalableDimension, MinCapacity = t.MinCapacity,
        MaxCapacity = t.MaxCapacity, SuspendedState = obj(t.SuspendedState) })
      if not res then return nil, r end
      registered, last = registered + 1, r
    end
  end
  local seen = {}
  for _, t in ipairs(source_targets) do
    if not seen[t.ResourceId] then
      seen[t.ResourceId] = true
      local id = map[t.ResourceId]
      local theirs, perr = policies_of(ctx, t.ResourceId)
      if not theirs then return nil, perr end
      local have = {}
      if not ctx.dry_run then
        local list, cerr = policies_of(ctx, id)
        if not list then return nil, cerr end
        for _, p in ipairs(list) do have[key(p)] = p end
      end
      for _, p in ipairs(theirs) do
        local want = { PolicyName = p.PolicyName, ServiceNamespace = "dynamodb", ResourceId = id,
          ScalableDimension = p.ScalableDimension, PolicyType = p.PolicyType,
          TargetTrackingScalingPolicyConfiguration = obj(p.TargetTrackingScalingPolicyConfiguration),
          StepScalingPolicyConfiguration = obj(p.StepScalingPolicyConfiguration) }
        if same_policy(want, have[key(want)]) then unchanged = unchanged + 1
        else
          local res, r = ctx.svc:call(AAS, "PutScalingPolicy", want)
          if not res then return nil, r end
          put, last = put + 1, r
        end
      end
    end
  end
  s.Targets, s.Policies, s.Unchanged = registered, put, unchanged
  if registered + put == 0 then s.Skipped = "already set" end
  return true, last
end

---------------------------------------------------------------- resource policy

-- Every string of the document equal to the source ARN, or under it ("ARN/..."), is
-- rewritten to the copy's. Returns the new value and how many strings changed.
local function rewrite(v, from, to)
  if type(v) == "string" then
    if v == from then return to, 1 end
    if v:sub(1, #from + 1) == from .. "/" then return to .. v:sub(#from + 1), 1 end
    return v, 0
  end
  if type(v) ~= "table" then return v, 0 end
  local out, n = setmetatable({}, getmetatable(v)), 0
  for k, x in pairs(v) do
    local y, m = rewrite(x, from, to)
    out[k], n = y, n + m
  end
  return out, n
end
M.rewrite = rewrite

local function policy_of(ctx, arn)
  local res, err = ctx.svc:call("dynamodb", "GetResourcePolicy", { ResourceArn = arn })
  if res then return res end
  if H.code(err) == "PolicyNotFoundException" then return false end
  return nil, err
end

local function copy_policy(ctx, doc, _, s, memo)
  local src, err = memo.source(ctx, doc)
  if not src then return offline(err, s, "resource policy") or nil, err end
  local from = src.TableArn
  local to = doc.TableArn or (from and from:gsub("table/.*$", "table/" .. doc.TargetTableName))
  local theirs, perr = policy_of(ctx, from)
  if theirs == nil then return nil, perr end
  if not theirs then s.Skipped = "source has no resource policy" return true end
  local parsed, jerr = json.decode(theirs.Policy or "")
  if parsed == nil then return nil, "the source's resource policy is not JSON: " .. tostring(jerr) end
  local want, n = rewrite(parsed, from, to)
  s.Rewritten = n
  local expected = "NO_POLICY"
  if not ctx.dry_run then
    local mine, merr = policy_of(ctx, to)
    if mine == nil then return nil, merr end
    if mine then
      local cur = json.decode(mine.Policy or "")
      if cur ~= nil and same(cur, want) then
        s.Skipped, s.RevisionId = "already set", mine.RevisionId
        return true
      end
      expected = mine.RevisionId
    end
  end
  local body, eerr = json.encode(want)
  if not body then return nil, "cannot encode the copy's resource policy: " .. tostring(eerr) end
  local res, rid = ctx.svc:call("dynamodb", "PutResourcePolicy", { ResourceArn = to, Policy = body,
    ExpectedRevisionId = expected })
  if not res then return nil, rid end
  s.RevisionId = res.RevisionId
  return true, rid
end

------------------------------------------------------------------------ steps

-- A memo of one run of the steps: the source's description, read once.
local function new_memo()
  local memo = {}
  function memo.source(ctx, doc)
    if memo.table then return memo.table end
    local t, err = describe(ctx, doc.SourceTableName)
    if t then memo.table = t end
    return t, err
  end
  return memo
end

local function with(memo, fn)
  return function(ctx, doc, rule, s) return fn(ctx, doc, rule, s, memo) end
end

-- The steps before Validate Restore, and the one after Deletion Protection. One memo
-- serves both lists of a run: pass the first call's memo (second result) to the second.
function M.steps_before_validation(rule)
  local memo, list = new_memo(), {}
  if wants(rule, "stream") then list[#list + 1] = { M.VALUES.stream, with(memo, copy_stream) } end
  if wants(rule, "contributor_insights") then
    list[#list + 1] = { M.VALUES.contributor_insights, with(memo, copy_insights) }
  end
  if wants(rule, "autoscaling") then list[#list + 1] = { M.VALUES.autoscaling, with(memo, copy_autoscaling) } end
  return list, memo
end

function M.steps_last(rule, memo)
  if not wants(rule, "resource_policy") then return {} end
  return { { M.VALUES.resource_policy, with(memo or new_memo(), copy_policy) } }
end

return M
