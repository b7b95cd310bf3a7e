-- Dry runs have their own workflow registry (live workflows, admission, SSM locks,
-- alerts): a dry run of a job the daemon is working on plans its own run and does not
-- attach to the real one; a dry run's document is marked and never re-armed as real.
local T = require "engine.testing"
local json = require "json"
local task = require "engine.task"
local services = require "aws.services"
local workflow = require "workflow"
local intake = require "daemon.intake"
local N = require "workflow.notification"

local ACCOUNT = "arn:aws:dynamodb:us-east-1:123456789012:table/"
local RULE = { name = "t", source_pattern = "-production$", replacement = "-staging", ssm_parameter = "/rotator/t" }

local function record(over)
  local r = { backup_job_id = "job-dry", table_name = "orders-production", resource_arn = ACCOUNT .. "orders-production",
    recovery_point_arn = ACCOUNT .. "orders-production/backup/01795575600000-a1b2c3d4",
    start_time = "2026-11-25T03:00:00Z", start_epoch = 1795575600, restore_via = N.RESTORE_DYNAMODB, message = "m" }
  for k, v in pairs(over or {}) do r[k] = v end
  return r
end

-- A real ctx on a small in-memory AWS whose table stays CREATING for `polls` polls.
local function real_ctx(polls)
  local st = { calls = {}, tables = {} }
  local backend = function(service, action, p)
    local key = service .. "." .. action
    st.calls[#st.calls + 1] = key
    if key == "dynamodb.RestoreTableFromBackup" then
      st.tables[p.TargetTableName] = { n = polls }
      return { TableDescription = { TableName = p.TargetTableName, TableArn = ACCOUNT .. p.TargetTableName } }, "r"
    elseif key == "dynamodb.DescribeTable" then
      local t = st.tables[p.TableName]
      t.n = t.n - 1
      return { Table = { TableName = p.TableName, TableArn = ACCOUNT .. p.TableName,
        TableStatus = t.n < 0 and "ACTIVE" or "CREATING" } }, "r"
    elseif key == "ssm.GetParameter" then
      return nil, services.error(service, action, "ParameterNotFound", "none")
    end
    return {}, "r"
  end
  st.ctx = { svc = services.new({ backend = backend }), rules = function() return { RULE } end }
  st.count = function(key)
    local n = 0
    for _, c in ipairs(st.calls) do if c == key then n = n + 1 end end
    return n
  end
  return st
end

local function dry_ctx(planned, backend)
  return { svc = services.new({ dry_run = true, offline = backend == nil, backend = backend,
    emit = function(l) planned[#planned + 1] = json.decode(l).call end }),
    rules = function() return { RULE } end, dry_run = true }
end

return {
  a_dry_run_of_a_live_job_plans_its_own_run_and_does_not_attach = function()
    workflow.configure({ first_poll = 0.02, max_poll = 0.02, deadline = 5, restores_per_second = 1000 })
    local aws = real_ctx(5)
    local real = workflow.start(record(), RULE, aws.ctx)
    task.sleep(0.01)
    T.eq(workflow.find(aws.ctx, "job-dry"), real, "the real workflow is live")
    local planned = {}
    local dctx = dry_ctx(planned)
    local ok, docs = intake.handle_records({ record() }, dctx, "repl")
    T.eq(ok, true)
    T.eq(docs[1] ~= real.doc, true, "the dry run has its own document")
    T.eq(docs[1].DryRun, true)
    T.eq(planned[1], "dynamodb.RestoreTableFromBackup")
    T.eq(planned[#planned], "ssm.PutParameter")
    T.eq(real.finished, nil, "the real workflow is still running")
    T.eq(workflow.find(dctx, "job-dry"), nil, "the dry run is done")
    T.eq(workflow.await(real).Status, "Complete")
    T.eq(aws.count("dynamodb.RestoreTableFromBackup"), 1)
    T.eq(real.doc.DryRun, nil)
    workflow.configure({ first_poll = 0.01, max_poll = 0.02, limit_backoff = 0.01, limit_backoff_max = 0.02,
      deadline = 5, restores_per_second = 1000 })
  end,

  a_dry_run_doc_in_a_snapshot_is_never_rearmed_as_real = function()
    local aws = real_ctx(0)
    local planned = {}
    -- a dry run whose SSM read takes a while, so it is live when the snapshot is taken
    local dctx = dry_ctx(planned, function(service, action)
      task.sleep(0.05)
      return nil, services.error(service, action, "ParameterNotFound", "none")
    end)
    local dwf = workflow.start(record({ backup_job_id = "job-dry-2" }), RULE, dctx)
    task.sleep(0.01)
    T.eq(#workflow.snapshot(aws.ctx), 0, "the real registry holds no dry run")
    local docs = workflow.snapshot(dctx)
    T.eq(#docs, 1)
    local copy = json.decode(json.encode(docs[1]))
    T.eq(copy.DryRun, true, "the mark survives the snapshot's JSON")
    local wf = workflow.rearm(copy, RULE, aws.ctx)
    T.eq(wf.refused, true)
    T.eq(workflow.await(wf).DryRun, true)
    T.eq(workflow.find(aws.ctx, "job-dry-2"), nil)
    task.sleep(0.1)
    T.eq(#aws.calls, 0, "nothing real was called for the dry run's document")
    -- and a real document is not re-armed by a dry run
    local rdoc = json.decode(json.encode(workflow.run(record({ backup_job_id = "job-real-3" }), RULE, aws.ctx)))
    rdoc.Phase = "Update SSM Parameter"
    T.eq(workflow.rearm(rdoc, RULE, dry_ctx({})).refused, true)
    T.eq(dwf.finished, nil, "the snapshotted dry-run handle was superseded")
  end,
}
