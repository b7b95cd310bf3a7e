-- Which recovery point a scheduled restore test restores: `pick = "latest"` (the newest
-- completed one) or `pick = "random within 7d"` (one of those created in the last 7 days,
-- uniformly). Both sources are read (reconcile/backups.lua's M.each), every page of
-- each, one page in memory at a time:
--   DynamoDB ListBackups (TableName, BackupType ALL: user, system and AWS Backup-made
--     DynamoDB backups; AVAILABLE ones), paged by ExclusiveStartBackupArn;
--   AWS Backup ListRecoveryPointsByResource (the table's ARN; COMPLETED ones), paged by
--     NextToken. A point both list (AWS Backup-made DynamoDB backups) counts once.
-- The random choice is reservoir sampling seeded from the firing's workflow id, so the
-- same firing, re-run after a crash before it was journaled, picks the same point.
-- Memory: one page, plus (random only) the ARNs seen in the window, to count each once.
--   M.parse(text) -> { mode = "latest" } | { mode = "random", within = seconds } | nil, msg
--   M.choose(svc, table_name, table_arn, pick, now, seed) -> point | nil, why, err
--     point = { arn, created (epoch), via ("dynamodb"|"backup"), status }
local D = require "workflow.doc"
local backups = require "reconcile.backups"

local M = {}

M.PAGE = 100

function M.parse(text)
  if text == nil or text == "latest" then return { mode = "latest" } end
  if type(text) ~= "string" then return nil, "pick must be \"latest\" or \"random within <duration>\" (e.g. \"random within 7d\")" end
  local d = text:match("^random within%s+(%S+)$")
  if not d then
    return nil, ("pick %q: write \"latest\" or \"random within <duration>\" (e.g. \"random within 7d\")"):format(text)
  end
  local secs, why = D.duration(d)
  if not secs then return nil, ("pick %q: %s"):format(text, why) end
  return { mode = "random", within = secs }
end

-- A 32-bit xorshift seeded from a string: deterministic, independent of math.random.
local function rng(seed)
  local h = 2166136261
  for i = 1, #seed do h = ((h ~ seed:byte(i)) * 16777619) & 0xffffffff end
  if h == 0 then h = 1 end
  return function(n)
    h = h ~ ((h << 13) & 0xffffffff)
    h = h ~ (h >> 17)
    h = h ~ ((h << 5) & 0xffffffff)
    return h % n + 1
  end
end

-- One pass over every point (reconcile/backups.lua reads both lists); `keep(point)`
-- sees each eligible one.
local function each_point(svc, table_name, table_arn, lower, keep)
  local ok, err, action = backups.each({ svc = svc }, table_name, table_arn,
    { backup_type = "ALL", lower = lower, page = M.PAGE }, function(b)
      keep({ arn = b.arn, created = b.start_epoch, via = b.kind,
        status = b.kind == "dynamodb" and "AVAILABLE" or "COMPLETED" })
    end)
  if not ok then return nil, ("%s failed: %s"):format(action, tostring(err)), err end
  return true
end

function M.choose(svc, table_name, table_arn, pick, now, seed)
  local lower = pick.mode == "random" and math.floor(now - pick.within) or nil
  local best, seen, n, draw = nil, {}, 0, rng(seed or table_name)
  local ok, why, err = each_point(svc, table_name, table_arn, lower, function(p)
    if not p.created then return end
    if pick.mode == "latest" then
      if not best or p.created > best.created or (p.created == best.created and p.arn > best.arn) then best = p end
    elseif not seen[p.arn] then -- (only the random draw needs the set: a twice-listed point
      seen[p.arn] = true         --  would weigh double; the latest is the latest either way)
      n = n + 1
      if draw(n) == 1 then best = p end
    end
  end)
  if not ok then return nil, why, err end
  if not best then
    return nil, pick.mode == "latest" and ("no completed recovery point of table %s"):format(table_name)
      or ("no completed recovery point of table %s in the last %ds"):format(table_name, pick.within)
  end
  return best
end

return M
