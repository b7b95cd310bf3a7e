-- Policy rules: what a rule may say, which rule a table matches, and the restored table's
-- name. A rule (declared in policies/*.lua with `rule { ... }`):
--   name            label for logs (default: file:line)
--   source_pattern  a Go regexp pattern, matched against the backed-up TABLE NAME (not the
--                   ARN) by PCRE2 in UTF mode (M.RE_FLAGS; gocompat.lua names the differences)
--   replacement     Go ReplaceAllString template applied to the table name ($0, ${1}, ...);
--                   its literal parts and group references are checked against the pattern
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
--   assume_role_arn optional role (usually in another account) whose credentials every AWS
--                   call of the rule's workflows uses, assumed with the daemon's own through
--                   STS AssumeRole and refreshed before expiry; external_id its ExternalId
--   tags, copy_ttl, pitr, deletion_protection, validation   after ACTIVE (post_restore.lua)
--   carry_over      { "stream", "autoscaling", "contributor_insights", "resource_policy" }:
--                   what no restore carries over, copied from the source (carry_over.lua)
--   retention       { keep = N, max_age = "7d" } old copies (retention.lua)
--   alert_topic_arn SNS topic a failed workflow publishes to (alerts.lua)
--   select          { tags = { env = "production" } }: reconcile considers only the
--                   matching tables that carry every one of these tags (reconcile/)
--   schedule, schedule_tz, pick, keep_for, update_ssm   scheduled restore tests
--                   (schedule/init.lua)
-- The first rule whose source_pattern matches wins; a match that hits PCRE2's limits is
-- a failure (M.match), never a raise. The name gets the backup start time in UTC,
-- "-YYYYMMDD-HH-mm-ss", and must satisfy DynamoDB's naming rule.
local re = require "re"
local clock = require "clock"
local policies = require "policy.loader"
local sandbox = require "policy.sandbox"
local gocompat = require "policy.gocompat"

local M = {}

M.SUFFIX_LAYOUT = "-20060102-15-04-05"

-- Rule patterns are Go regexp patterns, and Go matches UTF-8 text: UTF mode (not UCP:
-- Go's \w, \d, \s and \b are ASCII-only, as PCRE2's are without UCP).
M.RE_FLAGS = "u"

local KNOWN = {
  name = "string", source_pattern = "string", replacement = "string", ssm_parameter = "string",
  target_name = "function", restore = "table|function", after_active = "function",
  wait_for_active = "boolean", iam_role_arn = "string", copy_source_tags = "boolean",
  assume_role_arn = "string", external_id = "string",
  -- post-restore settings, validation, retention, alerts (post_restore.lua and friends)
  tags = "table", copy_ttl = "boolean", pitr = "boolean", deletion_protection = "boolean",
  validation = "table", retention = "table", alert_topic_arn = "string", select = "table",
  carry_over = "table",
  -- scheduled restore tests (schedule/init.lua)
  schedule = "string", schedule_tz = "string", pick = "string", keep_for = "string|number", update_ssm = "boolean",
}
-- What the loader records on a rule (where it was declared) and the default rule's mark.
local INTERNAL = { _where = "string", _file = "string", _default = "boolean", _line = "number", _lines = "table" }

-- Validators of the fields other modules own (post-restore settings, validation,
-- retention, alerts): fn(rule) -> nil or a message (about the field its first word
-- names). The workflow registers them (M.add_field_validator), so this module never
-- reaches up to the steps it configures.
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

-- Levenshtein distance (small strings: field names).
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

-- The known field nearest to name, when near enough to be a typo.
function M.did_you_mean(name, known)
  local best, best_d
  local lname = tostring(name):lower()
  for k in pairs(known or KNOWN) do
    local d = distance(lname, k)
    if (not best_d or d < best_d or (d == best_d and k < best)) then best, best_d = k, d end
  end
  if best and best_d <= math.max(1, math.min(3, #best // 4)) then return best end
end

-- A Go ReplaceAllString template, split as Go's Regexp.Expand reads it: a list of
-- { lit = text } and { ref = name, num = n or nil, text = "${...}" as written }.
-- `$$` is a literal '$'; a '$' not followed by a (braced) name stays a literal '$'.
function M.parse_template(t)
  local out, i = {}, 1
  local function lit(s) if #s > 0 then out[#out + 1] = { lit = s } end end
  while i <= #t do
    local d = t:find("$", i, true)
    if not d then lit(t:sub(i)) break end
    lit(t:sub(i, d - 1))
    local rest = t:sub(d + 1)
    local name, len
    if rest:sub(1, 1) == "$" then lit("$") i = d + 2
    else
      if rest:sub(1, 1) == "{" then
        name = rest:match("^{([%w_]+)}")
        len = name and #name + 2
      else
        name = rest:match("^[%w_]+")
        len = name and #name
      end
      if name then
        local num = name:match("^%d+$") and tonumber(name) or nil
        out[#out + 1] = { ref = name, num = num, text = "$" .. rest:sub(1, len) }
        i = d + 1 + len
      else
        lit("$")
        i = d + 1
      end
    end
  end
  return out
end

local SUFFIX_LEN = #"-20261125-03-00-00"

-- The replacement against the pattern's groups (ngroups, {name = n}): nil or a message.
function M.check_replacement(tpl, ngroups, names, has_target_name)
  local literal = {}
  for _, part in ipairs(M.parse_template(tpl)) do
    if part.lit then
      literal[#literal + 1] = part.lit
    elseif part.num then
      if part.num > ngroups then
        return ("replacement %q: %s refers to group %d, but source_pattern has %s"):format(tpl, part.text,
          part.num, ngroups == 0 and "no groups" or ngroups == 1 and "1 group" or (ngroups .. " groups"))
      end
    elseif not names[part.ref] then
      local num, rest = part.ref:match("^(%d+)(.+)$")
      if num and tonumber(num) <= ngroups then
        return ("replacement %q: %s is group \"%s\" (Go reads the longest name), not group %s followed by %q; write ${%s}%s")
          :format(tpl, part.text, part.ref, num, rest, num, rest)
      end
      local known = {}
      for n in pairs(names) do known[n] = true end
      local near = next(known) and M.did_you_mean(part.ref, known)
      return ("replacement %q: %s names no group of source_pattern%s"):format(tpl, part.text,
        near and (" (did you mean ${" .. near .. "}?)") or "")
    end
  end
  if has_target_name then return nil end
  local lit = table.concat(literal)
  local bad = lit:match("[^%w_.-]")
  if bad then
    return ("replacement %q: %q can never be in a DynamoDB table name (only A-Z a-z 0-9 _ . -)"):format(tpl, bad)
  end
  if #lit + SUFFIX_LEN > 255 then
    return ("replacement %q: %d literal characters plus the %d-character time suffix exceed DynamoDB's 255")
      :format(tpl, #lit, SUFFIX_LEN)
  end
end

local function check_fields(rule)
  for k, v in pairs(rule) do
    local want = KNOWN[k] or INTERNAL[k]
    if not want then
      local near = M.did_you_mean(k)
      return ("unknown rule field '%s'%s"):format(tostring(k), near and (" (did you mean '" .. near .. "'?)") or ""), k
    end
    if not type_ok(v, want) then return ("rule field '%s' must be a %s, not a %s"):format(k, want, type(v)), k end
  end
end

-- Validator registered into policies.validators: nil when fine, else a message and the
-- field it is about.
function M.validate(rule)
  local msg, field = check_fields(rule)
  if msg then return msg, field end
  if not rule.source_pattern then return "rule needs source_pattern (matched against the table name)" end
  local ok, rx = pcall(re.compile, rule.source_pattern, M.RE_FLAGS)
  if not ok then
    return ("source_pattern %q does not compile: %s"):format(rule.source_pattern,
      tostring(rx):gsub("^re: invalid pattern \".-\": ", "")), "source_pattern"
  end
  if not rule.replacement and not rule.target_name then
    return "rule needs replacement (a Go template such as \"-staging\") or a target_name function"
  end
  if rule.replacement then
    local ngroups, names = rx:groups()
    msg = M.check_replacement(rule.replacement, ngroups, names, rule.target_name ~= nil)
    if msg then return msg, "replacement" end
  end
  if type(rule.restore) == "table" then
    for k in pairs(rule.restore) do
      if not RESTORE_KEYS[k] then return ("restore override '%s' is not one Rotator passes on"):format(tostring(k)), "restore" end
    end
  end
  if rule.ssm_parameter and not rule.ssm_parameter:match("^/") and rule.ssm_parameter:find("/", 1, true) then
    return ("ssm_parameter %q: a hierarchical name must start with '/'"):format(rule.ssm_parameter), "ssm_parameter"
  end
  if rule.assume_role_arn and not rule.assume_role_arn:match("^arn:[%w-]+:iam::%d%d%d%d%d%d%d%d%d%d%d%d:role/[%w+=,.@_/-]+$") then
    return ("assume_role_arn %q is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"):format(rule.assume_role_arn),
      "assume_role_arn"
  end
  if rule.external_id then
    if not rule.assume_role_arn then return "external_id is sent with assume_role_arn: set both, or neither", "external_id" end
    if #rule.external_id < 2 or #rule.external_id > 1224 or not rule.external_id:match("^[%w+=,.@:/-]+$") then
      return "external_id must be 2 to 1224 characters of A-Z a-z 0-9 + = , . @ : / -", "external_id"
    end
  end
  if rule.select then
    for k, v in pairs(rule.select) do
      if k ~= "tags" then return ("select.%s: select knows only tags = { key = \"value\" }"):format(tostring(k)), "select" end
      if type(v) ~= "table" or next(v) == nil then return "select.tags must be a non-empty table of key = \"value\"", "select" end
      for tk, tv in pairs(v) do
        if type(tk) ~= "string" or type(tv) ~= "string" then
          return ("select.tags: %s = %s: keys and values are strings"):format(tostring(tk), tostring(tv)), "select"
        end
      end
    end
  end
  for _, check in ipairs(field_validators) do
    msg = check(rule)
    if msg then
      local first = msg:match("^[%a_][%w_]*")
      return msg, first and rule[first] ~= nil and first or nil
    end
  end
end

local registered = false
function M.register()
  if registered then return end
  registered = true
  policies.validators[#policies.validators + 1] = M.validate
  policies.linters[#policies.linters + 1] = gocompat.lint_rule
end
M.register()

function M.label(rule)
  return rule.name or rule._where or "rule"
end

-- The first rule whose source_pattern matches the table name, or nil. A match that
-- cannot finish (PCRE2's match or depth limit: a pattern that backtracks too much)
-- stops the search, since a later rule must not win in its place: nil, failure =
-- { rule =, pattern =, table =, error =, message = } with a message naming all three.
function M.match(rules, table_name)
  for _, r in ipairs(rules or {}) do
    local ok, res = pcall(re.test, table_name, r.source_pattern, M.RE_FLAGS)
    if not ok then
      local why = tostring(res):gsub("^re: ", "")
      return nil, { rule = r, pattern = r.source_pattern, table = table_name, error = why,
        message = ("rule %s (%s): source_pattern %q cannot be matched against table %q: %s;"
          .. " simplify the pattern (rotator check warns on patterns that backtrack exponentially)")
          :format(M.label(r), r._where or "?", r.source_pattern, table_name, why) }
    end
    if res then return r end
  end
  return nil
end

-- DynamoDB's table naming rule. nil when fine, else the reason.
function M.check_table_name(name)
  if type(name) ~= "string" then return "table name is a " .. type(name) .. ", not a string" end
  if #name < 3 or #name > 255 then return ("is %d characters; DynamoDB allows 3-255"):format(#name) end
  if name:find("^[%w_.-]*$") then return nil end -- (one anchored pass; the search below tries every position)
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
  local name, default_name
  if rule.replacement then
    local ok, res = pcall(re.replace, rec.table_name, rule.source_pattern, rule.replacement, M.RE_FLAGS)
    if not ok then
      return nil, ("rule %s (%s): replacing with source_pattern %q in table %q failed: %s"):format(
        M.label(rule), rule._where or "?", rule.source_pattern, rec.table_name, tostring(res):gsub("^re: ", ""))
    end
    default_name = res .. suffix
  end
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

-- The flags every command that builds the rule list accepts (run, replay, check, ...).
M.FLAGS = {
  ["--source-pattern"] = "string", ["--replacement-pattern"] = "string",
  ["--ssm-parameter-name"] = "string", ["--default-rule"] = "string",
}

-- Where the default rule goes when policy files declare rules too (--default-rule or
-- ROTATOR_DEFAULT_RULE): evaluated before the policy rules, after them, or dropped.
M.PLACEMENTS = {
  first = "evaluated before the policy rules: it wins on a table both match",
  last = "evaluated after the policy rules: it catches what they do not match",
  off = "dropped: only the policy rules act",
}

local SETTINGS = {
  { flag = "source_pattern", var = "SOURCE_PATTERN" },
  { flag = "replacement_pattern", var = "REPLACEMENT_PATTERN" },
  { flag = "ssm_parameter_name", var = "SSM_PARAMETER_NAME" },
}

-- The original tool's settings that are set, as "VAR" or "--flag" words.
local function settings_given(flags, getenv)
  local out = {}
  for _, s in ipairs(SETTINGS) do
    if flags[s.flag] and flags[s.flag] ~= "" then out[#out + 1] = "--" .. s.flag:gsub("_", "-")
    elseif (getenv(s.var) or "") ~= "" then out[#out + 1] = s.var end
  end
  return out
end

local function rule_files(set)
  local count, order = {}, {}
  for _, r in ipairs(set.rules) do
    local f = r._file or r._where or "?"
    if not count[f] then order[#order + 1] = f count[f] = 0 end
    count[f] = count[f] + 1
  end
  for i, f in ipairs(order) do order[i] = ("%s (%d rule%s)"):format(f, count[f], count[f] == 1 and "" or "s") end
  return order
end

-- The placement asked for: "first", "last", "off", nil (none asked), or nil, message.
function M.placement(flags, getenv)
  local v = flags.default_rule or getenv("ROTATOR_DEFAULT_RULE")
  if v == nil or v == "" then return nil end
  if not M.PLACEMENTS[v] then
    return nil, ("--default-rule %q: give first, last or off"):format(v)
  end
  return v
end

-- The rules in force: the policy files' rules, or the default rule when they have none.
-- When both exist the operator says which wins (M.placement); without that the answer is
-- nil, message: an explicit setting is never dropped silently. The third result names
-- the placement used ("first", "last", "off"; nil when there was nothing to place).
function M.effective(set, flags, getenv)
  flags, getenv = flags or {}, getenv or os.getenv
  local place, perr = M.placement(flags, getenv)
  if perr then return nil, perr end
  local given = settings_given(flags, getenv)
  local has_rules = set and #set.rules > 0
  if has_rules and #given == 0 then return set.rules end
  if has_rules and not place then
    return nil, ("%s (the original tool's default rule) %s set, but policy files declare rules too: %s. "
      .. "Say which wins with --default-rule first (the default rule before the policy rules), "
      .. "last (after them) or off (drop it), or ROTATOR_DEFAULT_RULE; or stop setting %s.")
      :format(table.concat(given, ", "), #given == 1 and "is" or "are", table.concat(rule_files(set), ", "),
        table.concat(given, ", "))
  end
  if place == "off" then return has_rules and set.rules or {}, nil, "off" end
  local d, err = M.default_rule(flags, getenv)
  if err then return nil, err end
  if not has_rules then return { d }, nil, d and place end
  if not d then
    return nil, ("%s set without SOURCE_PATTERN (or --source-pattern): the default rule needs a pattern; "
      .. "set it, or use --default-rule off to act on the policy rules alone"):format(table.concat(given, ", "))
  end
  local list = {}
  if place == "first" then list[1] = d end
  table.move(set.rules, 1, #set.rules, #list + 1, list)
  if place == "last" then list[#list + 1] = d end
  return list, nil, place
end

-- The rules in force for a command: the policies folder loaded, then the default rule
-- placed (M.effective). list | nil, message (load errors joined, one a line).
function M.load_effective(dir, flags)
  local files, lerr = policies.list(dir)
  if not files then return nil, lerr end
  local set, errs = policies.load(files)
  if not set then return nil, table.concat(errs, "\n") end
  return M.effective(set, flags)
end

return M
