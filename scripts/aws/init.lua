-- AWS calls from Lua. Serialises params per protocol, hands the request to the C client
-- (aws_core: signing, retries, errors), and decodes the response.
--
--   local v, request_id = aws.call("dynamodb", "DescribeTable", {TableName = "t"})
--     inside a task: waits; returns the decoded result table and the request id, or
--     nil, err with err = {code, message, status, request_id, retryable, service, action,
--     attempts}; tostring(err) = "dynamodb.DescribeTable: Code: message (request id ...)"
--   aws.call_cb(service, action, params, opts, function(v, err_or_reqid) ... end)
--     the same without a coroutine; returns a call id for aws.cancel(id)
--   aws.release(id) / aws.adopt(id, service, action, fn)
--     hand a call_cb call in flight over across a hot reload: the running state releases
--     it (its callback will not run), the adopting state adopts it with its own callback;
--     false when the call is unknown (it finished and its result was dropped)
-- opts: timeout (seconds per attempt), max_attempts, region, log (fields every aws.* log
-- line of the call carries; default: the running task's context, task.context()),
-- role_arn (+ external_id): sign with that role's credentials, which the C client assumes
-- with the daemon's own (STS AssumeRole), caches and refreshes; secrets never reach Lua.
-- C never resumes coroutines: it calls M._dispatch(id, ok, result), which does.
local core = require "aws_core"
local json = require "json"
local log = require "log"
local task = require "engine.task"
local clock = require "clock"
local metrics = require "engine.metrics"

local M = {}
local waiting = {} -- call id -> {fn, service, action, proto, started}

local Error = {}
Error.__index = Error
Error.__tostring = function(e)
  local s = ("%s.%s: %s: %s"):format(e.service, e.action, e.code, e.message)
  if e.request_id and e.request_id ~= "" then s = s .. " (request id " .. e.request_id .. ")" end
  return s
end
M.Error = Error

local function new_error(service, action, t)
  return setmetatable({
    code = t.code or "ClientError", message = t.message or "", status = t.status or 0,
    request_id = t.request_id or "", retryable = t.retryable or false,
    attempts = t.attempts or 0, service = service, action = action,
  }, Error)
end

-- restJson1 operations: method and URI template; {Name} comes out of params; `query`
-- maps the params a GET sends in its query string to their wire names.
local REST = {
  backup = {
    ListRecoveryPointsByResource = { "GET", "/resources/{ResourceArn}/recovery-points/",
      query = { NextToken = "nextToken", MaxResults = "maxResults", ManagedByAWSBackupOnly = "managedByAWSBackupOnly" } },
    StartRestoreJob = { "PUT", "/restore-jobs" },
    DescribeRestoreJob = { "GET", "/restore-jobs/{RestoreJobId}" },
    PutRestoreValidationResult = { "PUT", "/restore-jobs/{RestoreJobId}/validations" },
    -- GET operations: the third field maps parameters to query-string names.
    ListRecoveryPointsByResource = { "GET", "/resources/{ResourceArn}/recovery-points/",
      { NextToken = "nextToken", MaxResults = "maxResults", ManagedByAWSBackupOnly = "managedByAWSBackupOnly" } },
    ListBackupJobs = { "GET", "/backup-jobs/", { NextToken = "nextToken", MaxResults = "maxResults",
      ByResourceArn = "resourceArn", ByState = "state", ByCreatedAfter = "createdAfter",
      ByCreatedBefore = "createdBefore", ByBackupVaultName = "backupVaultName", ByResourceType = "resourceType" } },
    DescribeBackupJob = { "GET", "/backup-jobs/{BackupJobId}" },
    DescribeCopyJob = { "GET", "/copy-jobs/{CopyJobId}" },
    DescribeRecoveryPoint = { "GET", "/backup-vaults/{BackupVaultName}/recovery-points/{RecoveryPointArn}" },
  },
}

-- RFC 3986 percent-encoding of everything but the unreserved bytes. With `form`, the
-- application/x-www-form-urlencoded variant the query protocol's servers decode and
-- re-encode when they check a signature: a space is "+", every other reserved byte %XX.
local function escape(s, form)
  local keep = form and "[^%w%-%._~ ]" or "[^%w%-%._~]"
  local out = tostring(s):gsub(keep, function(c) return ("%%%02X"):format(c:byte()) end)
  if form then out = out:gsub(" ", "+") end
  return out
end
local function pct(s) return escape(s, false) end
local function form(s) return escape(s, true) end

-- query protocol: nested params flattened the way STS/SNS expect.
local function flatten(prefix, v, out)
  if type(v) ~= "table" then
    out[#out + 1] = form(prefix) .. "=" .. form(v == true and "true" or v == false and "false" or v)
  elseif #v > 0 or (getmetatable(v) == json.array_mt) then
    for i, x in ipairs(v) do flatten(prefix .. ".member." .. i, x, out) end
  elseif prefix:match("MessageAttributes$") or prefix:match("Attributes$") then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys)
    for i, k in ipairs(keys) do
      out[#out + 1] = form(prefix .. ".entry." .. i .. ".Name") .. "=" .. form(k)
      flatten(prefix .. ".entry." .. i .. ".Value", v[k], out)
    end
  else
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do flatten(prefix .. "." .. k, v[k], out) end
  end
end

function M.query_body(action, version, params)
  local out = { "Action=" .. form(action), "Version=" .. form(version) }
  local keys = {}
  for k in pairs(params or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do flatten(k, params[k], out) end
  return table.concat(out, "&")
end

local ENTITIES = { amp = "&", lt = "<", gt = ">", quot = '"', apos = "'" }
local function unescape(s)
  return (s:gsub("&(%a+);", ENTITIES):gsub("&#(%d+);", function(n) return utf8.char(tonumber(n)) end))
end

-- Minimal XML → table: elements with children become tables (repeated <member> an array),
-- leaves become strings. Enough for STS and SNS responses.
function M.xml_decode(s)
  s = s:gsub("<%?.-%?>", "")
  local pos = 1
  local function parse_children()
    local t, n = {}, 0
    while true do
      local a, b, close = s:find("^%s*<(/?)", pos)
      if not a then return t, n end
      if close == "/" then return t, n end
      local _, e, name, selfclose = s:find("^%s*<([%w_:%-%.]+)[^>]-(/?)>", pos)
      if not name then error("xml: malformed at byte " .. pos) end
      pos = e + 1
      local val
      if selfclose == "/" then
        val = ""
      else
        local ts, te = s:find("^[^<]*", pos)
        local text = s:sub(ts, te)
        local nextc = s:find("^</", te + 1)
        if nextc then
          pos = te + 1
          val = unescape(text)
        else
          pos = te + 1
          local kids, nk = parse_children()
          val = nk > 0 and kids or unescape(text)
        end
        local _, ce = s:find("^%s*</[^>]+>", pos)
        if not ce then error("xml: missing </" .. name .. ">") end
        pos = ce + 1
      end
      n = n + 1
      if name == "member" then t[#t + 1] = val else t[name] = val end
    end
  end
  local t = parse_children()
  return t
end

local function build(service, action, params, opts)
  local proto, version = core.protocol(service)
  if not proto then return nil, "unknown service '" .. tostring(service) .. "'" end
  local rq = { service = service, action = action, region = opts.region, timeout = opts.timeout,
               max_attempts = opts.max_attempts, log = opts.log or task.context(),
               role_arn = opts.role_arn, external_id = opts.external_id }
  if proto == "awsJson1_0" or proto == "awsJson1_1" then
    local body, err = json.encode(params or json.object())
    if not body then return nil, err end
    rq.body = body
  elseif proto == "restJson1" then
    local op = REST[service] and REST[service][action]
    if not op then return nil, service .. ": unknown operation " .. action end
    local rest = {}
    for k, v in pairs(params or {}) do rest[k] = v end
    rq.method = op[1]
    rq.path = op[2]:gsub("{(%w+)}", function(k)
      local v = rest[k]
      rest[k] = nil
      return v and pct(v) or ""
    end)
    if op.query then
      local q = {}
      for k, wire in pairs(op.query) do
        if rest[k] ~= nil then q[#q + 1] = pct(wire) .. "=" .. pct(tostring(rest[k])) rest[k] = nil end
      end
      table.sort(q)
      if #q > 0 then rq.query = table.concat(q, "&") end
    end
    if op[1] ~= "GET" then
      local body, err = json.encode(rest)
      if not body then return nil, err end
      rq.body = body
    else
      local q = {}
      for k, v in pairs(rest) do
        local name = op[3] and op[3][k]
        if not name then return nil, ("%s.%s: parameter %s has no query-string name"):format(service, action, k) end
        q[#q + 1] = pct(name) .. "=" .. pct(v == true and "true" or v == false and "false" or v)
      end
      table.sort(q)
      if #q > 0 then rq.query = table.concat(q, "&") end
    end
  else
    rq.body = M.query_body(action, version, params)
  end
  return rq, proto
end

local function decode(proto, action, res)
  if proto == "query" then
    local ok, doc = pcall(M.xml_decode, res.body)
    if not ok then return nil, doc end
    local top = doc[action .. "Response"] or {}
    local result = top[action .. "Result"]
    if type(result) ~= "table" then result = {} end
    local meta = top.ResponseMetadata
    return result, (type(meta) == "table" and meta.RequestId) or res.request_id
  end
  if res.body == "" then return {}, res.request_id end
  local v, err = json.decode(res.body)
  if v == nil then return nil, err end
  return v, res.request_id
end

local function complete(w, ok, res)
  if not ok then return nil, new_error(w.service, w.action, res) end
  local v, rid = decode(w.proto, w.action, res)
  if v == nil then
    return nil, new_error(w.service, w.action, { code = "DecodeError", message = tostring(rid),
      status = res.status, request_id = res.request_id, attempts = res.attempts })
  end
  return v, rid
end

-- Observers see every finished call (the REPL's trace()): fn{service=, action=, ok=,
-- code=, request_id=, ms=}. They must not raise; an error in one is logged and it is
-- removed, so a broken observer cannot break calls.
M.observers = {}

local function notify(w, v, extra)
  if not next(M.observers) then return end
  local ev = { service = w.service, action = w.action, ok = v ~= nil,
    ms = math.floor((clock.mono() - w.started) * 1000 + 0.5) }
  if v ~= nil then ev.request_id = extra else ev.code, ev.request_id = extra.code, extra.request_id end
  for key, fn in pairs(M.observers) do
    local ok, err = pcall(fn, ev)
    if not ok then
      M.observers[key] = nil
      log.warn("aws.observer_removed", { error = tostring(err) })
    end
  end
end

-- Every finished call counts (rotator_aws_calls_total and its latency).
local function count(w, v, extra)
  local labels = { service = w.service, action = w.action, outcome = v ~= nil and "ok" or "error" }
  metrics.inc("rotator_aws_calls_total", labels)
  metrics.observe("rotator_aws_call_duration_seconds", labels, clock.mono() - w.started)
  if v == nil then
    metrics.inc("rotator_aws_call_errors_total", { service = w.service, action = w.action, code = extra.code })
  end
end

function M._dispatch(id, ok, res)
  local w = waiting[id]
  if not w then return end
  waiting[id] = nil
  local v, extra = complete(w, ok, res)
  count(w, v, extra)
  notify(w, v, extra)
  w.fn(v, extra)
end
core.set_dispatcher(M._dispatch)

local function start(service, action, params, opts, w)
  opts = opts or {}
  local rq, proto = build(service, action, params, opts)
  if not rq then return nil, new_error(service, action, { code = "SerializationError", message = proto }) end
  local id, err = core.start(rq)
  if not id then return nil, new_error(service, action, { code = "ClientError", message = err }) end
  w.service, w.action, w.proto, w.started = service, action, proto, clock.mono()
  waiting[id] = w
  return id
end

-- Waits through task.wait: only this call's completion resumes the caller, and a
-- cancelled wait (task.cancel) cancels the request.
function M.call(service, action, params, opts)
  local _, main = coroutine.running()
  if main then error("aws.call waits, so it must run inside a task (task.spawn); see aws.call_cb", 2) end
  local id, err
  local v, extra = task.wait(function(wake)
    id, err = start(service, action, params, opts, { fn = wake })
    if not id then wake() return nil end -- not started: no wait
    return function() M.cancel(id) end
  end)
  if not id then return nil, err end
  return v, extra
end

function M.call_cb(service, action, params, opts, fn)
  assert(type(fn) == "function", "aws.call_cb: fn must be a function")
  local id, err = start(service, action, params, opts, { fn = fn })
  if not id then
    task.defer(function() fn(nil, err) end)
    return nil, err
  end
  return id
end

function M.release(id)
  if waiting[id] == nil then return false end
  waiting[id] = nil
  return core.release(id)
end

function M.adopt(id, service, action, fn)
  assert(type(fn) == "function", "aws.adopt: fn must be a function")
  local w = { fn = fn, service = service, action = action, proto = core.protocol(service), started = clock.mono() }
  local st, ok, res = core.claim(id)
  if st == "pending" then
    waiting[id] = w
  elseif st == "done" then
    task.defer(function()
      local v, extra = complete(w, ok, res)
      count(w, v, extra)
      notify(w, v, extra)
      fn(v, extra)
    end)
  else
    return false
  end
  return true
end

function M.cancel(id)
  if waiting[id] == nil then return false end
  waiting[id] = nil
  return core.cancel(id)
end

-- Calls this state waits for: (calls, long_polls), the SQS long poll counted apart.
function M.in_flight()
  local calls, polls = 0, 0
  for _, w in pairs(waiting) do
    if w.service == "sqs" and w.action == "ReceiveMessage" then polls = polls + 1 else calls = calls + 1 end
  end
  return calls, polls
end

M.pending = core.pending
M.clock_offset = core.clock_offset
M.retry_tokens = core.retry_tokens
M.endpoint = core.endpoint
M.resolved = core.resolved -- region or nil, credentials description (no secret)

return M
