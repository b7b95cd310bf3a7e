-- What `rotator check` finds before a workflow would: field lines read from the source
-- (policy.fieldlines), Go templates against the pattern's groups, near-miss field names,
-- Go differences and exponential backtracking (policy.gocompat), and a match that hits
-- PCRE2's limit (rules.match's failure instead of an error).
local T = require "engine.testing"
local fieldlines = require "policy.fieldlines"
local gocompat = require "policy.gocompat"
local rules = require "policy.rules"

local function classes(pat)
  local out = {}
  for _, w in ipairs(gocompat.scan(pat)) do out[#out + 1] = w.class end
  return table.concat(out, " ")
end

return {
  field_lines_of_rule_constructors = function()
    local scan = fieldlines.scan(table.concat({
      "--[==[ rule { name = 1 }",          -- 1
      "]==]",                               -- 2
      "local s = [[",                       -- 3
      "rule { name = 2 } ]]",               -- 4
      "rule {",                             -- 5
      "  name = \"a\\",                     -- 6: escaped newline inside a string
      "b\",",                               -- 7
      "  restore = { name = 'nested',",     -- 8
      "    x = 1 },",                       -- 9
      "  [\"replacement\"] = \"-qa\"; -- name = 3", -- 10
      "  source_pattern = \"x\",",          -- 11
      "}",                                  -- 12
      "rule({ name = 'p' }) rule { name = 'q',", -- 13
      "  replacement = 'r' }",              -- 14
    }, "\n"))
    local f = fieldlines.for_rule(scan, 5)
    T.eq(f.line, 5)
    T.eq(f.name, 6)
    T.eq(f.restore, 8)
    T.eq(f.replacement, 10)
    T.eq(f.source_pattern, 11)
    T.eq(f.x, nil, "a nested table's field is not the rule's")
    T.eq(fieldlines.for_rule(scan, 1), nil, "a commented-out rule is no rule")
    T.eq(fieldlines.for_rule(scan, 4), nil, "a rule in a long string is no rule")
    T.eq(fieldlines.for_rule(scan, 13, 1).name, 13)
    T.eq(fieldlines.for_rule(scan, 13, 2).replacement, 14)
  end,

  field_lines_of_a_returned_list = function()
    local scan = fieldlines.scan("local function f() return { {} } end\nreturn {\n  { name = 'a' },\n  {\n    name = 'b',\n  },\n}\n")
    T.eq(#scan.returned, 2, "only the file's own top-level return")
    T.eq(fieldlines.for_returned(scan, 1).name, 3)
    T.eq(fieldlines.for_returned(scan, 2).line, 4)
    T.eq(fieldlines.for_returned(scan, 2).name, 5)
  end,

  templates_read_as_go_does = function()
    local parts = rules.parse_template("a$1x${2}$$b$-${n}$")
    T.eq(#parts, 9)
    T.eq(parts[2].ref, "1x")
    T.eq(parts[3].num, 2)
    T.eq(parts[4].lit, "$")
    T.eq(parts[6].lit, "$", "a '$' before a non-name stays literal")
    T.eq(parts[8].ref, "n")
    T.eq(parts[9].lit, "$")
  end,

  replacement_checks = function()
    T.eq(rules.check_replacement("${1}-qa", 1, {}), nil)
    assert(rules.check_replacement("${1}-qa", 0, {}):find("no groups", 1, true))
    assert(rules.check_replacement("$3", 2, {}):find("has 2 groups", 1, true))
    assert(rules.check_replacement("${env}", 1, { base = 1 }):find("names no group", 1, true))
    assert(rules.check_replacement("${bse}", 1, { base = 1 }):find("did you mean ${base}", 1, true))
    assert(rules.check_replacement("a b", 0, {}):find('" " can never be', 1, true))
    T.eq(rules.check_replacement("a b", 0, {}, true), nil, "target_name makes the name")
    T.eq(rules.check_replacement(string.rep("x", 237), 0, {}), nil, "237 + 18 = 255 fits")
    assert(rules.check_replacement(string.rep("x", 238), 0, {}):find("255", 1, true))
  end,

  did_you_mean = function()
    T.eq(rules.did_you_mean("source_patern"), "source_pattern")
    T.eq(rules.did_you_mean("SSM_PARAMETER"), "ssm_parameter")
    T.eq(rules.did_you_mean("replacment"), "replacement")
    T.eq(rules.did_you_mean("colour"), nil)
    T.eq(rules.did_you_mean("nam"), "name")
  end,

  go_difference_classes = function()
    T.eq(classes("^(.*)-prod(uction)?$"), "")
    T.eq(classes("(?i)-production$"), "")
    T.eq(classes("(a*)+b"), "empty-repeat backtrack")
    T.eq(classes("(a|)+"), "empty-repeat")
    T.eq(classes("(a*)?"), "", "at most once is not a repeat")
    T.eq(classes("(?i)\\p{Lu}"), "caseless-property")
    T.eq(classes("(?i:a)\\p{Lu}"), "", "the flag ends with its group")
    T.eq(classes("\\12"), "octal")
    T.eq(classes("\\012"), "", "\\0 is octal in both")
    T.eq(classes("[\\s]\\S"), "space space")
    T.eq(classes("\\v"), "vspace")
    T.eq(classes("\\Q\\s(a*)*\\E"), "", "quoted text is literal")
    T.eq(classes("[\\v]"), "vspace")
  end,

  exponential_backtracking = function()
    T.eq(classes("^([a-z0-9]+-?)*$"), "backtrack")
    T.eq(classes("(x+x+)+y"), "backtrack")
    T.eq(classes("((a|b)+c?)+"), "backtrack")
    T.eq(classes("^[a-z0-9]+(-[a-z0-9]+)*$"), "", "a required separator splits one way")
    T.eq(classes("(\\.[a-z]+)*"), "")
    T.eq(classes("(a|-b+)*"), "")
    T.eq(classes("(-?[a-z]+)*"), "backtrack", "an optional separator does not")
    T.eq(classes("([a-z]+){1,3}"), "", "a bounded repeat is polynomial")
    T.eq(classes("^(a|aa)+$"), "backtrack", "overlapping alternatives, found by a probe")
    local w = gocompat.scan("^(a|aa)+$")[1]
    assert(w.construct == "(a|aa)+" and w.msg:find(string.rep("a", 40), 1, true), w.msg)
    T.eq(classes("^(?:[a-z0-9]|-[a-z0-9])+$"), "", "alternatives that cannot overlap")
  end,

  a_match_limit_is_a_failure_not_an_error = function()
    local list = { { name = "bt", _where = "p.lua:3", source_pattern = "^([a-z0-9]+-?)*$", replacement = "x" },
      { name = "after", source_pattern = ".", replacement = "y" } }
    local table_name = string.rep("a", 40) .. "_"
    local rule, failure = rules.match(list, table_name)
    T.eq(rule, nil, "no later rule wins in its place")
    T.eq(failure.rule.name, "bt")
    T.eq(failure.table, table_name)
    T.eq(failure.error, "match limit exceeded")
    assert(failure.message:find("rule bt (p.lua:3)", 1, true) and failure.message:find(list[1].source_pattern, 1, true),
      failure.message)
    T.eq(rules.match(list, "orders-prod").name, "bt", "other names still match")
    local name, err = rules.target_name(list[1], { table_name = table_name, start_epoch = 0 })
    T.eq(name, nil)
    assert(err:find("match limit exceeded", 1, true), err)
  end,
}
