-- Scheduled restore tests: the recovery-point choice (schedule/pick.lua) over paged
-- ListBackups and ListRecoveryPointsByResource answers, the rule fields' validation, and
-- the deterministic workflow id of a firing.
local T = require "engine.testing"
local services = require "aws.services"
local rules = require "policy.rules"
local clock = require "clock"
local pick = require "schedule.pick"
local schedule = require "schedule"
local loader = require "policy.loader"

local TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/orders-production"
local NOW = 1795575600 -- 2026-11-25T03:00:00Z

-- n DynamoDB backups (one an hour back from NOW) and m AWS Backup points, served
-- `page` at a time; calls are counted, and the lower time bound is honoured.
local function account(n, m, page, extra)
  local calls = { ListBackups = 0, ListRecoveryPointsByResource = 0 }
  local backups, points = {}, {}
  for i = 1, n do
    backups[i] = { BackupArn = TABLE .. "/backup/" .. string.format("%05d", i), BackupCreationDateTime = NOW - i * 3600,
      BackupStatus = i == 1 and "CREATING" or "AVAILABLE", TableArn = TABLE }
  end
  for i = 1, m do
    points[i] = { RecoveryPointArn = "arn:aws:backup:us-east-1:123456789012:recovery-point:" .. i,
      CreationDate = NOW - (i + 2) * 3600 - 1800, Status = "COMPLETED" }
  end
  for _, p in ipairs(extra or {}) do points[#points + 1] = p end
  local function backend(service, action, p)
    calls[action] = (calls[action] or 0) + 1
    if action == "ListBackups" then
      local start = 1
      if p.ExclusiveStartBackupArn then
        for i, b in ipairs(backups) do if b.BackupArn == p.ExclusiveStartBackupArn then start = i + 1 end end
      end
      local out = {}
      local i = start
      while #out < page and i <= #backups do
        local b = backups[i]
        if not p.TimeRangeLowerBound or b.BackupCreationDateTime >= p.TimeRangeLowerBound then out[#out + 1] = b end
        i = i + 1
      end
      return { BackupSummaries = out, LastEvaluatedBackupArn = i <= #backups and out[#out] and out[#out].BackupArn or nil }, "rid"
    elseif action == "ListRecoveryPointsByResource" then
      T.eq(p.ResourceArn, TABLE, "by the table's ARN")
      local start = tonumber(p.NextToken or "1")
      local out = table.move(points, start, math.min(#points, start + page - 1), 1, {})
      local nxt = start + page <= #points and tostring(start + page) or nil
      return { RecoveryPoints = out, NextToken = nxt }, "rid"
    end
    error("unexpected call " .. service .. "." .. action)
  end
  return services.new({ backend = backend }), calls
end

local tests = {}

tests["latest reads every page of both sources and takes the newest completed point"] = function()
  local svc, calls = account(250, 120, 100)
  local p = assert(pick.choose(svc, "orders-production", TABLE, { mode = "latest" }, NOW, "id"))
  T.eq(p.arn, TABLE .. "/backup/00002", "the newest AVAILABLE one (the newest is still CREATING)")
  T.eq(p.via, "dynamodb")
  T.eq(calls.ListBackups, 3, "3 pages of ListBackups")
  T.eq(calls.ListRecoveryPointsByResource, 2, "2 pages of ListRecoveryPointsByResource")
  local svc2 = account(3, 3, 2, { { RecoveryPointArn = "arn:aws:backup:us-east-1:123456789012:recovery-point:new",
    CreationDate = clock.rfc3339(NOW - 60), Status = "COMPLETED" } })
  local q = assert(pick.choose(svc2, "orders-production", TABLE, { mode = "latest" }, NOW, "id"))
  T.eq(q.arn, "arn:aws:backup:us-east-1:123456789012:recovery-point:new", "an AWS Backup point (RFC 3339 date) can win")
  T.eq(q.via, "backup")
end

tests["random within a window: only points inside it, the same pick for the same firing"] = function()
  local svc = account(200, 0, 50)
  local within = assert(pick.parse("random within 1d"))
  T.eq(within, { mode = "random", within = 86400 })
  local seen = {}
  for i = 1, 40 do
    local p = assert(pick.choose(svc, "orders-production", nil, within, NOW, "firing-" .. i))
    assert(p.created >= NOW - 86400, "inside the window")
    seen[p.arn] = true
    T.eq(assert(pick.choose(svc, "orders-production", nil, within, NOW, "firing-" .. i)).arn, p.arn, "deterministic per firing")
  end
  local n = 0
  for _ in pairs(seen) do n = n + 1 end
  assert(n >= 8, "spread over the window's 23 points, got " .. n)
  local none, why = pick.choose(account(0, 0, 10), "orders-production", TABLE, within, NOW, "x")
  T.eq(none, nil)
  assert(why:find("no completed recovery point of table orders-production in the last 86400s", 1, true), why)
end

tests["a failed page is reported with the call that failed"] = function()
  local svc = services.new({ backend = function(service, action)
    return nil, services.error(service, action, "AccessDeniedException", "not allowed")
  end })
  local p, why = pick.choose(svc, "orders-production", TABLE, { mode = "latest" }, NOW, "x")
  T.eq(p, nil)
  assert(why:find("ListBackups failed", 1, true) and why:find("AccessDeniedException", 1, true), why)
end

tests["pick texts"] = function()
  T.eq(pick.parse(nil), { mode = "latest" })
  T.eq(pick.parse("latest"), { mode = "latest" })
  local _, err = pick.parse("oldest")
  assert(err:find('pick "oldest"', 1, true), err)
  _, err = pick.parse("random within soon")
  assert(err:find("duration", 1, true), err)
end

tests["rule fields: each problem names its field"] = function()
  local function check(extra)
    local r = { source_pattern = "-production$", replacement = "-rt" }
    for k, v in pairs(extra) do r[k] = v end
    local msg, field = rules.validate(r)
    return msg, field
  end
  T.eq(check({ schedule = "cron(0 3 ? * SUN *)", schedule_tz = "Europe/Paris", pick = "random within 7d",
    keep_for = "4h" }), nil)
  T.eq(check({ schedule = "rate(1 hour)", update_ssm = true, ssm_parameter = "/rotator/x" }), nil)
  T.eq(select(2, check({ schedule = "cron(0 3 ? * FUNDAY *)" })), "schedule")
  T.eq(select(2, check({ schedule = "rate(1 hour)", schedule_tz = "Nowhere/Land" })), "schedule_tz")
  T.eq(select(2, check({ schedule = "rate(1 hour)", pick = "newest" })), "pick")
  T.eq(select(2, check({ schedule = "rate(1 hour)", keep_for = "4 hours" })), "keep_for")
  T.eq(select(2, check({ keep_for = "4h" })), "keep_for", "keep_for without schedule")
  T.eq(select(2, check({ schedule = "rate(1 hour)", update_ssm = true })), "update_ssm", "no parameter to update")
  T.eq(select(2, check({ schedule = "rate(1 hour)", update_ssm = true, ssm_parameter = "/p", keep_for = "1h" })),
    "keep_for", "the SSM target is not deleted")
  T.eq(select(2, check({ schedule = 5 })), "schedule", "type")
end

tests["rotator check's loader reports each schedule field at its own line"] = function()
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write([[
rule {
  name = "weekly",
  source_pattern = "-production$",
  replacement = "-rt",
  schedule = "cron(0 3 ? * FUNDAY *)",
}
rule {
  name = "tz",
  source_pattern = "-p$",
  replacement = "-rt",
  schedule = "rate(1 hour)",

  schedule_tz = "Mars/Base",
}
rule {
  name = "keep",
  source_pattern = "-q$",
  replacement = "-rt",
  keep_for = "4h",
}
]])
  f:close()
  local rules_, _, problems = loader.load_file(path)
  os.remove(path)
  T.eq(rules_, nil)
  T.eq(#problems, 3)
  local function at(i) return problems[i]:match("^.-:(%d+): ") end
  T.eq({ at(1), at(2), at(3) }, { "5", "13", "19" }, "the lines of schedule, schedule_tz and keep_for")
  assert(problems[1]:find("day-of-week field 'FUNDAY'", 1, true), problems[1])
  assert(problems[2]:find("no such zone", 1, true), problems[2])
  assert(problems[3]:find("keep_for: only means something with schedule", 1, true), problems[3])
end

tests["a firing's workflow id depends on rule, table and slot only"] = function()
  T.eq(schedule.workflow_id("weekly", "orders-production", NOW), "schedule:weekly:orders-production:20261125T030000Z")
  T.eq(schedule.workflow_id("weekly", "orders-production", NOW + 0), schedule.workflow_id("weekly", "orders-production", NOW))
  assert(schedule.workflow_id("weekly", "orders-production", NOW + 60) ~= schedule.workflow_id("weekly", "orders-production", NOW))
end

return tests
