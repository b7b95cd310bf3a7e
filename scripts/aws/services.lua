-- The one place Rotator calls AWS. A service object wraps aws.call so a dry run can
-- intercept mutating calls: it prints each as one JSON line,
--   {"call":"dynamodb.RestoreTableFromBackup","input":{...}}
-- and answers with a plausible result instead. In offline mode (replay --dry-run) read
-- calls fail with code "DryRunOffline" instead of touching the network, so a plan needs
-- no credentials. Tests may pass `backend` (a function with aws.call's contract).
-- svc:as_role(arn, external_id) -> a view of svc whose every call signs with that role's
--   credentials (opts.role_arn; aws/init.lua); nil arn: svc itself
-- svc:call_cb(service, action, params, opts, fn) -> cancel, id: the same with a callback
--   (id: the aws call id, for aws.release/aws.adopt; nil with a test backend).
--   local svc = services.new { dry_run = true, offline = true }
--   local res, request_id = svc:call("dynamodb", "DescribeTable", { TableName = "t" })
--   -- or nil, err  with err = {code, message, status, request_id, retryable, ...}
local json = require "json"
local aws = require "aws"
local task = require "engine.task"

local M = {}

-- Calls that change something. SQS visibility changes are housekeeping of the claim on a
-- message and pass through (a dry-run daemon must still hold what it is planning).
M.MUTATING = {
  ["dynamodb.RestoreTableFromBackup"] = true, ["dynamodb.DeleteTable"] = true,
  ["dynamodb.UpdateTable"] = true, ["dynamodb.TagResource"] = true,
  ["dynamodb.UpdateTimeToLive"] = true, ["dynamodb.UpdateContinuousBackups"] = true,
  ["dynamodb.PutItem"] = true, ["dynamodb.UpdateItem"] = true, ["dynamodb.DeleteItem"] = true,
  ["dynamodb.BatchWriteItem"] = true, ["dynamodb.UpdateContributorInsights"] = true,
  ["dynamodb.PutResourcePolicy"] = true,
  ["application-autoscaling.RegisterScalableTarget"] = true,
  ["application-autoscaling.PutScalingPolicy"] = true,
  ["ssm.PutParameter"] = true, ["ssm.DeleteParameter"] = true,
  ["backup.StartRestoreJob"] = true, ["backup.PutRestoreValidationResult"] = true,
  ["sqs.DeleteMessage"] = true, ["sns.Publish"] = true,
}

local err_mt = {
  __tostring = function(e)
    return ("%s.%s: %s: %s"):format(e.service or "?", e.action or "?", e.code or "Error", e.message or "")
  end,
}

function M.error(service, action, code, message, extra)
  local e = { service = service, action = action, code = code, message = message, retryable = false }
  if extra then for k, v in pairs(extra) do e[k] = v end end
  return setmetatable(e, err_mt)
end

local function arn_prefix(params)
  local arn = params.BackupArn or params.RecoveryPointArn or ""
  local partition, region, account = arn:match("^arn:([%w-]+):[%w-]+:([%w-]*):(%d*):")
  return ("arn:%s:dynamodb:%s:%s:table/"):format(partition or "aws", region or "us-east-1", account or "000000000000")
end

-- Plausible answers to planned calls, so the workflow can carry on planning.
local PLANNED = {
  ["dynamodb.RestoreTableFromBackup"] = function(p)
    return { TableDescription = { TableName = p.TargetTableName, TableStatus = "CREATING",
      TableArn = arn_prefix(p) .. p.TargetTableName,
      RestoreSummary = { SourceBackupArn = p.BackupArn, RestoreInProgress = true } } }
  end,
  ["backup.StartRestoreJob"] = function(p)
    return { RestoreJobId = "dry-run-" .. tostring(p.IdempotencyToken) }
  end,
  ["ssm.PutParameter"] = function() return { Version = 0, Tier = "Standard" } end,
}

local Svc = {}
Svc.__index = Svc

function M.new(opts)
  opts = opts or {}
  return setmetatable({
    dry_run = opts.dry_run or false,
    offline = opts.offline or false,
    backend = opts.backend,
    custom_backend = opts.backend ~= nil,
    emit = opts.emit or function(line) io.stdout:write(line, "\n") io.stdout:flush() end,
    planned = {},     -- every planned call, in order ({call=, input=}); none kept with
                      -- opts.keep_plan == false (replay: each is printed, and that is all)
    keep_plan = opts.keep_plan ~= false,
    calls = 0,
  }, Svc)
end

-- opts.reason (e.g. retention's "beyond the newest 2") is appended as "reason".
-- A key ("dynamodb.TagResource") needs no JSON escaping: it is quoted as it is (and
-- remembered: the keys are the few actions the workflow calls).
local QUOTED = {}
for key in pairs(M.MUTATING) do QUOTED[key] = '"' .. key .. '"' end

function Svc:plan_line(key, params, opts)
  local reason = opts and opts.reason and ',"reason":' .. assert(json.encode(tostring(opts.reason))) or ""
  local quoted = QUOTED[key] or key:find("^[%w.]+$") and '"' .. key .. '"' or assert(json.encode(key))
  return '{"call":' .. quoted .. ',"input":' .. assert(json.encode(params)) .. reason .. "}"
end

-- "service.action", made once per pair (service -> action -> key)
local KEYS = {}
local function key_of(service, action)
  local names = KEYS[service]
  local key = names and names[action]
  if key then return key end
  key = service .. "." .. action
  if not names then names = {} KEYS[service] = names end
  names[action] = key
  return key
end

function Svc:call(service, action, params, opts)
  local key = key_of(service, action)
  self.calls = self.calls + 1
  if self.dry_run and M.MUTATING[key] then
    if self.keep_plan then self.planned[#self.planned + 1] = { call = key, input = params, reason = opts and opts.reason } end
    self.emit(self:plan_line(key, params, opts))
    local planner = PLANNED[key]
    return planner and planner(params) or {}, "dry-run"
  end
  if self.offline then
    return nil, M.error(service, action, "DryRunOffline", "replay --dry-run makes no network call")
  end
  self.backend = self.backend or aws.call
  return self.backend(service, action, params, opts)
end

local function with_role(opts, role)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.role_arn, o.external_id = role.arn, role.external_id
  return o
end

-- The view shares everything (dry-run plan, counters, backend) with svc: reads and writes
-- of its fields go to svc; only call and call_cb add the role.
function Svc:as_role(arn, external_id)
  if not arn then return self end
  local base, role = self, { arn = arn, external_id = external_id }
  local view = {
    role_arn = arn,
    call = function(v, service, action, params, opts) return Svc.call(v, service, action, params, with_role(opts, role)) end,
    call_cb = function(v, service, action, params, opts, fn)
      return Svc.call_cb(v, service, action, params, with_role(opts, role), fn)
    end,
  }
  return setmetatable(view, { __index = base, __newindex = base })
end

-- The same call with a callback, cancellable: returns cancel() (which drops the answer).
-- With the real AWS client the request itself is aborted (aws.cancel); a test backend
-- runs in a task.
function Svc:call_cb(service, action, params, opts, fn)
  local cancelled = false
  local function deliver(v, e) if not cancelled then fn(v, e) end end
  local key = key_of(service, action)
  -- A real AWS call (no test backend given to new()): use the cancellable callback form.
  if not self.custom_backend and not self.offline and not (self.dry_run and M.MUTATING[key]) then
    self.calls = self.calls + 1
    local id = aws.call_cb(service, action, params, opts, deliver)
    return function()
      cancelled = true
      if id then aws.cancel(id) end
    end, id
  end
  task.spawn(function() deliver(self:call(service, action, params, opts)) end)
  return function() cancelled = true end
end

return M
