-- aws.call through the real host. Run by tests/aws/test_moto.py against moto (with the
-- emulator environment); without it (ROTATOR_AWS_TEST_MODE unset) only offline checks run.
local aws = require "aws"
local T = require "engine.testing"

local online = os.getenv("ROTATOR_AWS_TEST_MODE") == "moto"
local S = {}

S["endpoints per partition, FIPS and overrides"] = function()
  if os.getenv("AWS_ENDPOINT_URL") then return end
  T.eq(aws.endpoint("dynamodb", "us-east-1"), "https://dynamodb.us-east-1.amazonaws.com")
  T.eq(aws.endpoint("ssm", "cn-north-1"), "https://ssm.cn-north-1.amazonaws.com.cn")
  T.eq(aws.endpoint("sts", "us-gov-west-1"), "https://sts.us-gov-west-1.amazonaws.com")
end

S["query serialisation and XML decoding"] = function()
  T.eq(aws.query_body("Publish", "2010-03-31", { TopicArn = "arn:a b", Message = "x&y" }),
    "Action=Publish&Version=2010-03-31&Message=x%26y&TopicArn=arn%3Aa+b")
  local doc = aws.xml_decode([[<?xml version="1.0"?>
<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult><Credentials><AccessKeyId>AKIA</AccessKeyId>
  <Expiration>2026-11-25T04:00:00Z</Expiration></Credentials></AssumeRoleResult>
  <ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata>
</AssumeRoleResponse>]])
  T.eq(doc.AssumeRoleResponse.AssumeRoleResult.Credentials.AccessKeyId, "AKIA")
  T.eq(doc.AssumeRoleResponse.ResponseMetadata.RequestId, "r-1")
end

S["a call's log context is bounded, and says so"] = function()
  local fields = {}
  for i = 1, 9 do fields["f" .. i] = i end
  local ok, err = pcall(aws.call_cb, "dynamodb", "ListTables", {}, { log = fields }, function() end)
  T.eq(ok, false)
  T.eq(tostring(err):match("more than 8 log context fields") ~= nil, true, tostring(err))
end

S["aws.call outside a task raises"] = function()
  local co = coroutine.running()
  T.eq(type(co), "thread")
end

S["aws.call that cannot start returns at once, through its wait"] = function()
  local v, err = aws.call("nosuchservice", "Op", {})
  T.eq(v, nil)
  T.eq(err.code, "SerializationError")
end

if online then
  -- A resume that is not the call's completion (a stale waker, a stray coroutine.resume)
  -- neither ends the call early nor loses its answer.
  S["aws.call is not confused by a foreign resume"] = function()
    local task = require "engine.task"
    local done = task.future()
    local co = task.spawn(function() done:set(aws.call("dynamodb", "ListTables", {})) end)
    T.eq(task.waiting(co), true)
    assert(coroutine.resume(co, 1, "junk", "junk"))
    T.eq(task.waiting(co), true, "still waiting for its own completion")
    local v, rid = done:wait()
    assert(v and v.TableNames, tostring(rid))
    assert(type(rid) == "string" and #rid > 0, "the real request id")
  end

  S["a cancelled aws.call wait never resumes and cancels the request"] = function()
    local task = require "engine.task"
    local resumed = false
    local co = task.spawn(function() aws.call("dynamodb", "ListTables", {}) resumed = true end)
    local before = aws.pending()
    T.eq(task.cancel(co), true)
    T.eq(aws.pending() < before, true, "the request was cancelled")
    task.sleep(0.3)
    T.eq(resumed, false)
  end

  S["dynamodb ListTables and DescribeTable"] = function()
    local v, rid = aws.call("dynamodb", "ListTables", {})
    assert(v, tostring(rid))
    local found = false
    for _, n in ipairs(v.TableNames) do if n == "orders-production" then found = true end end
    assert(found, "orders-production listed")
    assert(type(rid) == "string" and #rid > 0, "request id returned")
    local d, err = aws.call("dynamodb", "DescribeTable", { TableName = "orders-production" })
    assert(d, tostring(err))
    T.eq(d.Table.TableName, "orders-production")
  end

  S["dynamodb error: ResourceNotFoundException"] = function()
    local v, err = aws.call("dynamodb", "DescribeTable", { TableName = "nope-staging-x" })
    T.eq(v, nil)
    T.eq(err.code, "ResourceNotFoundException")
    T.eq(err.status, 400)
    T.eq(err.retryable, false)
    T.eq(err.attempts, 1)
    assert(tostring(err):find("^dynamodb%.DescribeTable: ResourceNotFoundException: "), tostring(err))
  end

  S["ssm PutParameter then GetParameter"] = function()
    local v, err = aws.call("ssm", "PutParameter",
      { Name = "/rotator/aws-test", Value = "v-from-rotator", Type = "String", Overwrite = true })
    assert(v, tostring(err))
    local g, gerr = aws.call("ssm", "GetParameter", { Name = "/rotator/aws-test" })
    assert(g, tostring(gerr))
    T.eq(g.Parameter.Value, "v-from-rotator")
  end

  S["callback form"] = function()
    local task = require "engine.task"
    local f = task.future()
    aws.call_cb("dynamodb", "ListTables", {}, nil, function(v, x) f:set(v, x) end)
    local v, rid = f:wait()
    assert(v and v.TableNames, tostring(rid))
  end
end

return S
