-- reconcile/backups.lua and reconcile/pace.lua: the newest backup is found across pages
-- of both lists (only the best kept), a recovery point wins a near-tie and brings its
-- backup job id, a read error names the call; the token bucket paces to its rate.
local T = require "engine.testing"
local clock = require "clock"
local services = require "aws.services"
local backups = require "reconcile.backups"
local pace = require "reconcile.pace"
local rules = require "policy.rules"

local TABLE_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/orders-production"
local T0 = 1795575600 -- 2026-11-25T03:00:00Z

-- An account where orders-production has DynamoDB backups on `ddb_pages` pages and
-- recovery points on `rp_pages` pages (epochs), and the backup jobs that made them.
local function account(ddb_pages, rp_pages, log)
  return function(service, action, p)
    log[#log + 1] = service .. "." .. action
    if action == "ListBackups" then
      T.eq({ p.TableName, p.BackupType }, { "orders-production", "USER" })
      local i = p.ExclusiveStartBackupArn and tonumber(p.ExclusiveStartBackupArn:match("page(%d+)$")) + 1 or 1
      local out = { BackupSummaries = {} }
      for k, at in ipairs(ddb_pages[i]) do
        out.BackupSummaries[k] = { BackupArn = ("%s/backup/b%d"):format(TABLE_ARN, at), TableArn = TABLE_ARN,
          BackupCreationDateTime = at, BackupStatus = at % 7 == 0 and "CREATING" or "AVAILABLE" }
      end
      if ddb_pages[i + 1] then out.LastEvaluatedBackupArn = TABLE_ARN .. "/backup/page" .. i end
      return out
    elseif action == "ListRecoveryPointsByResource" then
      T.eq(p.ResourceArn, TABLE_ARN)
      local i = tonumber(p.NextToken or "1")
      local out = { RecoveryPoints = {} }
      for k, at in ipairs(rp_pages[i] or {}) do
        out.RecoveryPoints[k] = { RecoveryPointArn = "arn:aws:backup:us-east-1:123456789012:recovery-point:rp" .. at,
          CreationDate = at, Status = "COMPLETED" }
      end
      if rp_pages[i + 1] then out.NextToken = tostring(i + 1) end
      return out
    elseif action == "ListBackupJobs" then
      T.eq({ p.ByResourceArn, p.ByState }, { TABLE_ARN, "COMPLETED" })
      if not p.NextToken then return { BackupJobs = { { BackupJobId = "other", RecoveryPointArn = "x" } }, NextToken = "2" } end
      local jobs = {}
      for _, page in ipairs(rp_pages) do
        for _, at in ipairs(page) do
          jobs[#jobs + 1] = { BackupJobId = "job-" .. at, CreationDate = at - 1,
            RecoveryPointArn = "arn:aws:backup:us-east-1:123456789012:recovery-point:rp" .. at }
        end
      end
      return { BackupJobs = jobs }
    end
    return nil, services.error(service, action, "AccessDeniedException", "not in this test")
  end
end

return {
  the_newest_across_pages_of_dynamodb_backups = function()
    local log = {}
    local ctx = { svc = services.new({ backend = account({ { T0 + 5, T0 + 1 }, { T0 + 9, T0 + 14 }, { T0 + 3 } }, {}, log) }) }
    local b = backups.newest(ctx, "orders-production", { sources = { dynamodb = true } })
    -- T0+14 is still CREATING (14 % 7 == 0): the newest AVAILABLE is T0+9
    T.eq({ b.arn, b.kind, b.start_epoch, b.id, b.job_id, b.pages, b.seen },
      { TABLE_ARN .. "/backup/b" .. (T0 + 9), "dynamodb", T0 + 9, TABLE_ARN .. "/backup/b" .. (T0 + 9), nil, 3, 5 })
    T.eq(b.start_time, clock.rfc3339(T0 + 9))
    local rec = backups.record(b)
    T.eq({ rec.backup_job_id, rec.recovery_point_arn, rec.table_name, rec.restore_via },
      { b.id, b.arn, "orders-production", "dynamodb:RestoreTableFromBackup" })
  end,

  a_recovery_point_brings_its_job_id_and_wins_a_near_tie = function()
    local log = {}
    local ctx = { svc = services.new({ backend = account({ { T0 + 100 } }, { { T0 + 40 }, { T0 + 60, T0 + 2 } }, log) }) }
    local b = backups.newest(ctx, TABLE_ARN)
    -- the DynamoDB backup 40 s later is the same backup seen twice: the recovery point wins
    -- and its start is the job's (what the notification's StartTime says), a second earlier
    T.eq({ b.kind, b.start_epoch, b.job_id, b.id }, { "backup", T0 + 59, "job-" .. (T0 + 60), "job-" .. (T0 + 60) })
    T.eq(backups.record(b).restore_via, "backup:StartRestoreJob")
    T.eq(log, { "dynamodb.ListBackups", "backup.ListRecoveryPointsByResource", "backup.ListRecoveryPointsByResource",
      "backup.ListBackupJobs", "backup.ListBackupJobs" }, "pages read in turn; no DescribeTable (the ARN was given)")
    local far = backups.newest({ svc = services.new({ backend = account({ { T0 + 600 } }, { { T0 + 60 } }, {}) }) },
      TABLE_ARN)
    T.eq({ far.kind, far.start_epoch }, { "dynamodb", T0 + 600 }, "a DynamoDB backup well after it is newer")
  end,

  no_backup_is_nil_and_a_read_error_names_the_call = function()
    local ctx = { svc = services.new({ backend = account({ {} }, {}, {}) }) }
    local none, nerr = backups.newest(ctx, TABLE_ARN)
    T.eq(none, nil, "no completed backup")
    T.eq(nerr, nil, "is not an error")
    local broken = { svc = services.new({ backend = function(service, action)
      return nil, services.error(service, action, "AccessDeniedException", "no dynamodb:ListBackups")
    end }) }
    local b, err = backups.newest(broken, TABLE_ARN)
    T.eq(b, nil)
    assert(tostring(err):find("dynamodb.ListBackups: AccessDeniedException", 1, true), tostring(err))
  end,

  select_tags_is_validated = function()
    local base = { source_pattern = "-production$", replacement = "-staging" }
    local function with(select)
      local r = {}
      for k, v in pairs(base) do r[k] = v end
      r.select = select
      return rules.validate(r)
    end
    T.eq(with({ tags = { env = "production" } }), nil)
    T.eq(table.pack(with({ tags = { env = 1 } })), table.pack("select.tags: env = 1: keys and values are strings", "select"))
    T.eq(table.pack(with({ tag = {} })), table.pack('select.tag: select knows only tags = { key = "value" }', "select"))
    T.eq(table.pack(with({ tags = {} })), table.pack('select.tags must be a non-empty table of key = "value"', "select"))
  end,

  the_bucket_paces_to_its_rate = function()
    local b = pace.new(20, 2)
    local t0 = clock.mono()
    for _ = 1, 6 do b:take() end
    local took = clock.mono() - t0
    -- 2 from the burst, 4 more at 20/s: about 0.2 s
    assert(took >= 0.18 and took < 1.5, "6 takes at 20/s with a burst of 2 took " .. took)
    T.eq(b.taken, 6)
    local off = pace.new(0)
    t0 = clock.mono()
    for _ = 1, 1000 do off:take() end
    assert(clock.mono() - t0 < 0.1, "rate 0 is unpaced")
  end,
}
