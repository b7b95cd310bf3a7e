-- Policy rules: validation, matching on the table name, naming, the default policy.
local T = require "engine.testing"
local rules = require "policy.rules"
local policies = require "policy.loader"
local host = require "host"

local START = 1795575600 -- 2026-11-25T03:00:00Z

local function rec(name, start)
  return { table_name = name, start_epoch = start or START, backup_job_id = "j1",
    recovery_point_arn = "arn:aws:dynamodb:us-east-1:1:table/" .. name .. "/backup/1" }
end

local function write_policy(text)
  local path = os.tmpname() .. ".lua"
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

return {
  assume_role_fields = function()
    local base = function(extra)
      local r = { source_pattern = "x", replacement = "y" }
      for k, v in pairs(extra) do r[k] = v end
      return rules.validate(r)
    end
    T.eq(base({ assume_role_arn = "arn:aws:iam::210987654321:role/rotator-staging" }), nil)
    T.eq(base({ assume_role_arn = "arn:aws:iam::210987654321:role/team/rotator-staging", external_id = "central-7f" }), nil)
    local msg, field = base({ assume_role_arn = "arn:aws:iam::2109:role/x" })
    assert(msg:find("not an IAM role ARN"), msg)
    T.eq(field, "assume_role_arn")
    msg, field = base({ assume_role_arn = "arn:aws:iam::210987654321:user/x" })
    assert(msg:find("not an IAM role ARN"), msg)
    msg, field = base({ external_id = "abc" })
    assert(msg:find("external_id is sent with assume_role_arn"), msg)
    T.eq(field, "external_id")
    msg = base({ assume_role_arn = "arn:aws:iam::210987654321:role/r", external_id = "bad id" })
    assert(msg:find("external_id must be"), msg)
    msg = base({ assume_role_arn = 42 })
    assert(msg:find("rule field 'assume_role_arn' must be a string"), msg)
    T.eq(rules.did_you_mean("asume_role_arn"), "assume_role_arn")
  end,

  go_template_naming = function()
    local r = { source_pattern = "(?i)-production$", replacement = "-staging" }
    T.eq(rules.target_name(r, rec("Orders-Production")), "Orders-staging-20261125-03-00-00")
    T.eq(rules.target_name({ source_pattern = "^(.*)-production$", replacement = "${1}-staging" },
      rec("orders-production", START + 0.9)), "orders-staging-20261125-03-00-00")
    T.eq(rules.target_name({ source_pattern = ".*", replacement = "$0" }, rec("abc")), "abc-20261125-03-00-00")
  end,

  matches_table_name_not_arn = function()
    local list = { { source_pattern = "^arn:", replacement = "x" }, { source_pattern = "^orders-", replacement = "y", name = "second" } }
    T.eq(rules.match(list, "orders-production").name, "second")
    T.eq(rules.match(list, "users-production"), nil)
  end,

  first_match_wins = function()
    local list = { { name = "a", source_pattern = "production", replacement = "x" },
      { name = "b", source_pattern = "-production$", replacement = "y" } }
    T.eq(rules.match(list, "orders-production").name, "a")
  end,

  dynamodb_name_rule = function()
    T.eq(rules.check_table_name("ab"), "is 2 characters; DynamoDB allows 3-255")
    assert(rules.check_table_name(("x"):rep(256)))
    assert(rules.check_table_name("a b c"):find("DynamoDB allows only"))
    T.eq(rules.check_table_name("a.b_c-D9"), nil)
    local name, err = rules.target_name({ name = "bad", source_pattern = "-production$", replacement = "/x", _where = "p.lua:3" },
      rec("orders-production"))
    T.eq(name, nil)
    assert(err:find("rule bad %(p.lua:3%)") and err:find("orders/x"), err)
  end,

  custom_name_function = function()
    local r = { source_pattern = "production", target_name = function(ctx)
      return "copy-of-" .. ctx.table_name .. "-staging" .. ctx.suffix end }
    T.eq(rules.target_name(r, rec("t-production")), "copy-of-t-production-staging-20261125-03-00-00")
    local boom = { name = "boom", source_pattern = "x", target_name = function() error("nope") end }
    local n, err = rules.target_name(boom, rec("x-production"))
    T.eq(n, nil)
    assert(err:find("target_name failed"), err)
  end,

  start_time_round_trip_through_name = function()
    T.eq(rules.start_from_name("orders-staging-20261125-03-00-00"), START)
    T.eq(rules.start_from_name("orders-staging"), nil)
  end,

  validation_messages = function()
    assert(rules.validate({ source_pattern = "(", replacement = "x" }):find("does not compile"))
    assert(rules.validate({ replacement = "x" }):find("needs source_pattern"))
    assert(rules.validate({ source_pattern = "x" }):find("needs replacement"))
    assert(rules.validate({ source_pattern = "x", replacement = "y", ssm_paramter = "/a" }):find("unknown rule field 'ssm_paramter'"))
    assert(rules.validate({ source_pattern = "x", replacement = "y", restore = { Bogus = 1 } }):find("Bogus"))
    T.eq(rules.validate({ source_pattern = "x", replacement = "y", restore = { BillingModeOverride = "PAY_PER_REQUEST" } }), nil)
  end,

  policy_file_validation_has_file_line = function()
    local path = write_policy('rule { source_pattern = "x" }\nrule { source_pattern = "(", replacement = "y" }\n')
    local set, errs = policies.load({ path })
    os.remove(path)
    T.eq(set, nil)
    assert(errs[1]:find(":1: rule needs replacement"), errs[1])
  end,

  restore_overrides = function()
    T.eq(rules.restore_overrides({ restore = { BillingModeOverride = "PAY_PER_REQUEST" } }, {}), { BillingModeOverride = "PAY_PER_REQUEST" })
    T.eq(rules.restore_overrides({ restore = function(ctx) return { BillingModeOverride = ctx.mode } end }, { mode = "PROVISIONED" }),
      { BillingModeOverride = "PROVISIONED" })
    T.eq(rules.restore_overrides({}, {}), {})
  end,

  default_policy_from_env_and_flags = function()
    local env = { SOURCE_PATTERN = "(?i)-production$", REPLACEMENT_PATTERN = "-staging", SSM_PARAMETER_NAME = "/rotator/x" }
    local getenv = function(k) return env[k] end
    local list = assert(rules.effective({ rules = {} }, {}, getenv))
    T.eq(list[1].ssm_parameter, "/rotator/x")
    T.eq(rules.target_name(list[1], rec("Orders-Production")), "Orders-staging-20261125-03-00-00")
    list = assert(rules.effective({ rules = {} }, { replacement_pattern = "-qa" }, getenv))
    T.eq(list[1].replacement, "-qa")
    T.eq(#assert(rules.effective({ rules = {} }, {}, function() end)), 0)
    local policy_rules = { { source_pattern = "a", replacement = "b", _file = "p/a.lua" } }
    T.eq(rules.effective({ rules = policy_rules }, {}, function() end), policy_rules)
    local none, err = rules.effective({ rules = {} }, {}, function(k) return k == "SOURCE_PATTERN" and "(" or nil end)
    T.eq(none, nil)
    assert(err:find("SOURCE_PATTERN"), err)
  end,

  default_rule_beside_policy_rules_needs_a_placement = function()
    local env = { SOURCE_PATTERN = "-production$", REPLACEMENT_PATTERN = "-qa" }
    local getenv = function(k) return env[k] end
    local p = { source_pattern = "-production$", replacement = "-staging", _file = "p/a.lua" }
    local q = { source_pattern = "-dev$", replacement = "-test", _file = "p/b.lua" }
    local set = { rules = { p, q } }
    local none, err = rules.effective(set, {}, getenv)
    T.eq(none, nil)
    for _, want in ipairs({ "SOURCE_PATTERN", "REPLACEMENT_PATTERN", "p/a.lua (1 rule)", "p/b.lua (1 rule)", "--default-rule" }) do
      assert(err:find(want, 1, true), want .. " missing from: " .. err)
    end
    -- a flag alone conflicts too, and is named as the flag
    none, err = rules.effective(set, { ssm_parameter_name = "/x" }, function() end)
    T.eq(none, nil)
    assert(err:find("--ssm-parameter-name", 1, true), err)
    local list, _, place = rules.effective(set, { default_rule = "first" }, getenv)
    T.eq(#list, 3) T.eq(list[1]._default, true) T.eq(list[2], p) T.eq(place, "first")
    T.eq(rules.target_name(rules.match(list, "Orders-production"), rec("Orders-production")), "Orders-qa-20261125-03-00-00")
    list = rules.effective(set, { default_rule = "last" }, getenv)
    T.eq(#list, 3) T.eq(list[3]._default, true)
    T.eq(rules.target_name(rules.match(list, "Orders-production"), rec("Orders-production")), "Orders-staging-20261125-03-00-00")
    list, _, place = rules.effective(set, {}, function(k) return k == "ROTATOR_DEFAULT_RULE" and "off" or env[k] end)
    T.eq(list, set.rules) T.eq(place, "off")
    none, err = rules.effective(set, { default_rule = "middle" }, getenv)
    T.eq(none, nil) assert(err:find("first, last or off", 1, true), err)
    -- a placement without SOURCE_PATTERN: the other two settings cannot form a rule
    none, err = rules.effective(set, { default_rule = "first" }, function(k) return k == "REPLACEMENT_PATTERN" and "-qa" or nil end)
    T.eq(none, nil) assert(err:find("REPLACEMENT_PATTERN set without SOURCE_PATTERN", 1, true), err)
  end,

  example_policies_load = function()
    local dir = (os.getenv("ROTATOR_ROOT") or ".") .. "/policies/examples"
    local files = policies.list(dir)
    if not files then return end
    local set, errs = policies.load(files)
    assert(set, errs and table.concat(errs, "\n"))
    assert(#set.rules >= 1)
    local _ = host
  end,
}
