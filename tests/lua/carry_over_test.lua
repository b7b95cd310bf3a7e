-- carry_over: the rule field's validation, the resource policy's ARN rewrite, and each
-- step reading the copy first (a copy already set makes no call), against a recorded
-- AWS backend behind the services.lua contract.
local T = require "engine.testing"
local json = require "json"
local services = require "aws.services"
local carry = require "after.carry_over"
local config = require "workflow.config"

local SRC = "arn:aws:dynamodb:us-east-1:123456789012:table/orders-production"
local DST = "arn:aws:dynamodb:us-east-1:123456789012:table/orders-staging-1"

local function doc()
  return { SourceTableName = "orders-production", TargetTableName = "orders-staging-1", TableArn = DST }
end

-- A backend answering from `answers[service.action]` (a value or fn(params)), recording calls.
local function backend(answers)
  local calls = {}
  local fn = function(service, action, p)
    local key = service .. "." .. action
    calls[#calls + 1] = key
    local a = answers[key]
    if type(a) == "function" then return a(p) end
    if a == nil then return nil, services.error(service, action, "Unexpected", key) end
    return a, "rid-" .. #calls
  end
  return fn, calls
end

local function count(calls, key)
  local n = 0
  for _, c in ipairs(calls) do if c == key then n = n + 1 end end
  return n
end

local function run(list, ctx, d)
  local s = {}
  local ok, err = list[1][2](ctx, d, {}, s)
  return ok, err, s
end

return {
  validation = function()
    T.eq(carry.validate_rule({}), nil)
    T.eq(carry.validate_rule({ carry_over = { "stream", "autoscaling", "contributor_insights", "resource_policy" } }), nil)
    T.eq(carry.validate_rule({ carry_over = {} }), nil)
    local msg = carry.validate_rule({ carry_over = { "streams" } })
    T.eq(msg:match("^carry_over: unknown value \"streams\" %(did you mean \"stream\"%?%)") ~= nil, true, msg)
    msg = carry.validate_rule({ carry_over = { stream = true } })
    T.eq(msg:match("^carry_over must be a list") ~= nil, true, msg)
    msg = carry.validate_rule({ carry_over = { "stream", "stream" } })
    T.eq(msg, 'carry_over: "stream" is listed twice')
    msg = carry.validate_rule({ carry_over = "stream" })
    T.eq(msg:match("^carry_over must be a list") ~= nil, true, msg)
  end,

  rewrite_only_the_source_arn = function()
    local policy = json.decode(json.encode({ Statement = { { Resource = { SRC, SRC .. "/index/*",
      SRC .. "-archive", "arn:aws:dynamodb:us-east-1:123456789012:table/other" } } } }))
    local out, n = carry.rewrite(policy, SRC, DST)
    T.eq(n, 2)
    T.eq(out.Statement[1].Resource[1], DST)
    T.eq(out.Statement[1].Resource[2], DST .. "/index/*")
    T.eq(out.Statement[1].Resource[3], SRC .. "-archive")
    T.eq(json.encode(out.Statement[1].Resource):sub(1, 1), "[")
  end,

  stream_already_on_makes_no_update = function()
    local fn, calls = backend({
      ["dynamodb.DescribeTable"] = function(p)
        return { Table = { TableName = p.TableName, TableArn = p.TableName == "orders-production" and SRC or DST,
          StreamSpecification = { StreamEnabled = true, StreamViewType = "KEYS_ONLY" } } }, "r"
      end,
    })
    local ctx = { svc = services.new({ backend = fn }) }
    local ok, err, s = run(carry.steps_before_validation({ carry_over = { "stream" } }), ctx, doc())
    T.eq(ok, true, tostring(err))
    T.eq(s.Skipped, "already streaming")
    T.eq(count(calls, "dynamodb.UpdateTable"), 0)
  end,

  stream_update_waits_for_active_again = function()
    local updated, polls = false, 0
    local fn, calls = backend({
      ["dynamodb.DescribeTable"] = function(p)
        local t = { TableName = p.TableName, TableStatus = "ACTIVE" }
        if p.TableName == "orders-production" then
          t.StreamSpecification = { StreamEnabled = true, StreamViewType = "NEW_IMAGE" }
        elseif updated then
          polls = polls + 1
          t.StreamSpecification = { StreamEnabled = true, StreamViewType = "NEW_IMAGE" }
          if polls <= 2 then t.TableStatus = "UPDATING" end
        end
        return { Table = t }, "r"
      end,
      ["dynamodb.UpdateTable"] = function(p)
        T.eq(p.StreamSpecification.StreamViewType, "NEW_IMAGE")
        updated = true
        return { TableDescription = { LatestStreamArn = DST .. "/stream/x" } }, "r"
      end,
    })
    local saved = { config.values.first_poll, config.values.max_poll }
    config.values.first_poll, config.values.max_poll = 0.01, 0.02
    local ok, err, s = run(carry.steps_before_validation({ carry_over = { "stream" } }),
      { svc = services.new({ backend = fn }) }, doc())
    config.values.first_poll, config.values.max_poll = saved[1], saved[2]
    T.eq(ok, true, tostring(err))
    T.eq(count(calls, "dynamodb.UpdateTable"), 1)
    T.eq(polls, 3)
    T.eq(s.WaitedSeconds ~= nil and s.WaitedSeconds > 0, true)
    T.eq(s.StreamArn, DST .. "/stream/x")
  end,

  dry_run_plans_the_changes_without_reading_the_copy = function()
    local fn, calls = backend({
      ["dynamodb.DescribeTable"] = function(p)
        T.eq(p.TableName, "orders-production", "a plan reads the source only")
        return { Table = { TableName = p.TableName, TableArn = SRC,
          StreamSpecification = { StreamEnabled = true, StreamViewType = "KEYS_ONLY" } } }, "r"
      end,
      ["dynamodb.GetResourcePolicy"] = function(p)
        T.eq(p.ResourceArn, SRC, "a plan reads the source's policy only")
        return { Policy = json.encode({ Statement = { { Resource = SRC } } }), RevisionId = "1" }, "r"
      end,
    })
    local lines = {}
    local ctx = { dry_run = true, svc = services.new({ dry_run = true, backend = fn,
      emit = function(line) lines[#lines + 1] = line end }) }
    local rule = { carry_over = { "stream", "resource_policy" } }
    local list, memo = carry.steps_before_validation(rule)
    T.eq(run(list, ctx, doc()), true)
    T.eq(run(carry.steps_last(rule, memo), ctx, doc()), true)
    T.eq(#lines, 2)
    T.eq(json.decode(lines[1]).call, "dynamodb.UpdateTable")
    T.eq(json.decode(lines[2]).call, "dynamodb.PutResourcePolicy")
    T.eq(json.decode(json.decode(lines[2]).input.Policy).Statement[1].Resource, DST)
    T.eq(count(calls, "dynamodb.DescribeTable"), 1, "the source is described once for both steps")
  end,

  stream_view_type_conflict_fails = function()
    local fn = backend({
      ["dynamodb.DescribeTable"] = function(p)
        return { Table = { TableName = p.TableName, StreamSpecification = { StreamEnabled = true,
          StreamViewType = p.TableName == "orders-production" and "NEW_IMAGE" or "KEYS_ONLY" } } }, "r"
      end,
    })
    local ok, err = run(carry.steps_before_validation({ carry_over = { "stream" } }),
      { svc = services.new({ backend = fn }) }, doc())
    T.eq(ok, nil)
    T.eq(tostring(err):match("cannot change in place") ~= nil, true, tostring(err))
  end,

  autoscaling_skips_an_on_demand_copy = function()
    local fn, calls = backend({
      ["dynamodb.DescribeTable"] = function(p)
        return { Table = { TableName = p.TableName, BillingModeSummary = { BillingMode =
          p.TableName == "orders-production" and "PROVISIONED" or "PAY_PER_REQUEST" } } }, "r"
      end,
    })
    local ok, _, s = run(carry.steps_before_validation({ carry_over = { "autoscaling" } }),
      { svc = services.new({ backend = fn }) }, doc())
    T.eq(ok, true)
    T.eq(s.Skipped:match("^copy is on%-demand") ~= nil, true, s.Skipped)
    T.eq(count(calls, "application-autoscaling.DescribeScalableTargets"), 0)
  end,

  resource_policy_put_once_then_already_set = function()
    local stored
    local fn, calls = backend({
      ["dynamodb.DescribeTable"] = { Table = { TableName = "orders-production", TableArn = SRC } },
      ["dynamodb.GetResourcePolicy"] = function(p)
        if p.ResourceArn == SRC then
          return { Policy = json.encode({ Statement = { { Resource = SRC } } }), RevisionId = "1" }, "r"
        end
        if stored then return { Policy = stored, RevisionId = "2" }, "r" end
        return nil, services.error("dynamodb", "GetResourcePolicy", "PolicyNotFoundException", "none")
      end,
      ["dynamodb.PutResourcePolicy"] = function(p)
        T.eq(p.ExpectedRevisionId, "NO_POLICY")
        stored = p.Policy
        return { RevisionId = "2" }, "r"
      end,
    })
    local ctx = { svc = services.new({ backend = fn }) }
    local ok, err, s = run(carry.steps_last({ carry_over = { "resource_policy" } }), ctx, doc())
    T.eq(ok, true, tostring(err))
    T.eq(s.Rewritten, 1)
    T.eq(json.decode(stored).Statement[1].Resource, DST)
    ok, err, s = run(carry.steps_last({ carry_over = { "resource_policy" } }), ctx, doc())
    T.eq(ok, true, tostring(err))
    T.eq(s.Skipped, "already set")
    T.eq(count(calls, "dynamodb.PutResourcePolicy"), 1)
  end,
}
