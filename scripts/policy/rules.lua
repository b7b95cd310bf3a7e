-- Policy rules: what a rule may say, which rule a table matches, and the restored table's
-- name. A rule (declared in policies/*.lua with `rule { ... }`):
--   name            label for logs (default: file:line)
--   source_pattern  PCRE2, matched against the backed-up TABLE NAME (not the ARN)
--   replacement     Go ReplaceAllString template applied to the table name ($0, ${1}, ...)
--   ssm_parameter   optional SSM parameter that receives the restored table's ARN
--   target_name     optional function(ctx) -> name, replacing source_pattern/replacement
--                   naming; ctx = {table_name, start_epoch, suffix, backup_job_id,
--                   recovery_point_arn, default_name}. Keep ctx.suffix in the name: the
--                   SSM ordering check reads the backup start time from it.
--   restore         optional table of RestoreTableFromBackup overrides
--                   (BillingModeOverride, SSESpecificationOverride,
--                   GlobalSecondaryIndexOverride, LocalSecondaryIndexOverride,
--                   ProvisionedThroughputOverride), or function(ctx) -> such a table
--   after_active    optional function(ctx) run once the table is ACTIVE (ctx.table_arn, ...)
--   wait_for_active default true; false stops after starting the restore when there is
--                   no ssm_parameter (the original tool's behaviour)
--   iam_role_arn    role AWS Backup assumes for StartRestoreJob (backup-managed points)
--   copy_source_tags  StartRestoreJob's CopySourceTagsToRestoredResource (backup-managed points)
--   tags, copy_ttl, pitr, deletion_protection, validation   after ACTIVE (post_restore.lua)
--   retention       { keep = N, max_age = "7d" } old copies (retention.lua)
--   alert_topic_arn SNS topic a failed workflow publishes to (alerts.lua)
-- The first rule whose source_pattern matches wins. The name gets the backup start time
-- in UTC, "-YYYYMMDD-HH-mm-ss", and must satisfy DynamoDB's naming rule.
local re = require "re"
local clock = require "clock"
local policies = require "policy.loader"
local sandbox = require "policy.sandbox"

local M = {}

M.SUFFIX_LAYOUT = "-20060102-15-04-05"

local KNOWN = {
  name = "string", source_pattern = "string", replacement = "string", ssm_parameter = "string",
  target_name = "function", restore = "table|function", after_active = "function",
  wait_for_active = "boolean", iam_role_arn = "string", copy_source_tags = "boolean", _where = "string", _file = "string",
  _default = "boolean",
  -- post-restore settings, validation, retention, alerts (post_restore.lua and friends)
  tags = "table", copy_ttl = "boolean", pitr = "boolean", deletion_protection = "boolean",
  validation = "table", retention = "table", alert_topic_arn = "string",
}

-- Validators of the fields other modules own (post-restore settings, validation,
-- retention, alerts): fn(rule) -> nil or a message. The workflow registers them
-- (M.add_field_validator), so this module never reaches up to the steps it configures.
local field_validators = {}

function M.add_field_validator(fn)
  for _, f in ipairs(field_validators) do if f == fn then return end end
  field_validators[#field_validators + 1] = fn
end

local RESTORE_KEYS = {
  BillingModeOverride = true, SSESpecificationOverride = true, GlobalSecondaryIndexOverride = true,
  LocalSecondaryIndexOverride = true, ProvisionedThroughputOverride = true,
  OnDemandThroughputOverride = true,
}

local function type_ok(v, want)
  for t in want:gmatch("[^|]+") do if type(v) == t then return true end end
  return false
end

-- Validator registered into policies.validators: nil when fine, else a message.
function M.validate(rule)
  for k, v in pairs(rule) do
    local want = KNOWN[k]
    if not want then return ("unknown rule field '%s'"):format(tostring(k)) end
    if not type_ok(v, want) then return ("rule field '%s' must be a %s, not a %s"):format(k, want, type(v)) end
  end
  if not rule.source_pattern then return "rule needs source_pattern (matched against the table name)" end
  local ok, err = pcall(re.compile, rule.source_pattern)
  if not ok then return ("source_pattern %q does not compile: %s"):format(rule.source_pattern, tostring(err)) end
  if not rule.replacement and not rule.target_name then
    return "rule needs replacement (a Go template such as \"-staging\") or a target_name function"
  end
  if type(rule.restore) == "table" then
    for k in pairs(rule.restore) do
      if not RESTORE_KEYS[k] then return ("restore override '%s' is not one Rotator passes on"):format(tostring(k)) end
    end
  end
  if rule.ssm_parameter and not rule.ssm_parameter:match("^/") and rule.ssm_parameter:find("/", 1, true) then
    return ("ssm_parameter %q: a hierarchical name must start with '/'"):format(rule.ssm_parameter)
  end
  for _, check in ipairs(field_validators) do
    local msg = check(rule)
    if msg then return msg end
  end
end

local registered = false
function M.register()
  if registered then return end
  registered = true
  policies.validators[#policies.validators + 1] = M.validate
end
M.register()

function M.label(rule)
  return rule.name or rule._where or "rule"
end

-- The first rule whose source_pattern matches the table name, or nil.
function M.match(rules, table_name)
  for _, r in ipairs(rules or {}) do
    if re.test(table_name, r.source_pattern) then return r end
  end
  return nil
end

-- DynamoDB's table naming rule. nil when fine, else the reason.
function M.check_table_name(name)
  if type(name) ~= "string" then return "table name is a " .. type(name) .. ", not a string" end
  if #name < 3 or #name > 255 then return ("is %d characters; DynamoDB allows 3-255"):format(#name) end
  local bad = name:match("[^%w_.-]")
  if bad then return ("contains %q; DynamoDB allows only [A-Za-z0-9_.-]"):format(bad) end
end

function M.suffix(start_epoch)
  return clock.format(math.floor(start_epoch), M.SUFFIX_LAYOUT)
end

-- The backup start time a Rotator-made name carries, or nil.
function M.start_from_name(name)
  local y, mo, d, h, mi, s = (name or ""):match("%-(%d%d%d%d)(%d%d)(%d%d)%-(%d%d)%-(%d%d)%-(%d%d)$")
  if not y then return nil end
  return clock.parse_rfc3339(("%s-%s-%sT%s:%s:%sZ"):format(y, mo, d, h, mi, s))
end

-- The target table name for a record under a rule: name or nil, message (naming the rule).
function M.target_name(rule, rec)
  local suffix = M.suffix(rec.start_epoch)
  local name
  local default_name = rule.replacement
    and re.replace(rec.table_name, rule.source_pattern, rule.replacement) .. suffix
  if rule.target_name then
    local ok, res = sandbox.call(rule.target_name, {
      table_name = rec.table_name, start_epoch = rec.start_epoch, suffix = suffix,
      backup_job_id = rec.backup_job_id, recovery_point_arn = rec.recovery_point_arn,
      default_name = default_name,
    })
    if not ok then return nil, ("rule %s: target_name failed: %s"):format(M.label(rule), tostring(res)) end
    name = res
  else
    name = default_name
  end
  local why = M.check_table_name(name)
  if why then
    return nil, ("target name %q from rule %s (%s) %s"):format(tostring(name), M.label(rule),
      rule._where or "?", why)
  end
  return name
end

-- The restore overrides for a record: a table (possibly empty) or nil, message.
function M.restore_overrides(rule, ctx)
  local r = rule.restore
  if type(r) == "function" then
    local ok, res = sandbox.call(r, ctx)
    if not ok then return nil, ("rule %s: restore hook failed: %s"):format(M.label(rule), tostring(res)) end
    r = res
  end
  if r == nil then return {} end
  if type(r) ~= "table" then return nil, ("rule %s: restore hook returned a %s"):format(M.label(rule), type(r)) end
  for k in pairs(r) do
    if not RESTORE_KEYS[k] then return nil, ("rule %s: restore override '%s' is not supported"):format(M.label(rule), k) end
  end
  return r
end

-- The default rule from the original tool's parameters: flags win over the environment.
-- Returns a rule, or nil when SOURCE_PATTERN is not set; or nil, message when invalid.
function M.default_rule(flags, getenv)
  flags, getenv = flags or {}, getenv or os.getenv
  local src = flags.source_pattern or getenv("SOURCE_PATTERN")
  if not src or src == "" then return nil end
  local rule = {
    name = "default", _default = true, _where = "environment/flags",
    source_pattern = src,
    replacement = flags.replacement_pattern or getenv("REPLACEMENT_PATTERN") or "$0",
    ssm_parameter = flags.ssm_parameter_name or getenv("SSM_PARAMETER_NAME"),
  }
  if rule.ssm_parameter == "" then rule.ssm_parameter = nil end
  local msg = M.validate(rule)
  if msg then return nil, "default policy (SOURCE_PATTERN/REPLACEMENT_PATTERN): " .. msg end
  return rule
end

-- The rules in force: the policy files' rules, or the default rule when they have none.
function M.effective(set, flags, getenv)
  if set and #set.rules > 0 then return set.rules end
  local d, err = M.default_rule(flags, getenv)
  if err then return nil, err end
  return { d }
end

return M
