-- Rotator's side of the Go regexp oracle test (tests/t/22-go-regexp.t), run with
-- `rotator eval`: for each case of $ORACLE_CASES, what the real PCRE2 binding does with the
-- pattern as rules compile it (policy.rules.RE_FLAGS) on each subject: the first match's
-- offsets (as Go's FindStringSubmatchIndex), ReplaceAllString's result, and the classes
-- `rotator check` warns of (policy.gocompat). One JSON object per case to $ORACLE_OUT.
local json = require "json"
local re = require "re"
local rules = require "policy.rules"
local gocompat = require "policy.gocompat"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

local function answer(case, subjects)
  local classes = {}
  for _, w in ipairs(gocompat.scan(case.pattern)) do classes[#classes + 1] = w.class end
  local ok, rx = pcall(re.compile, case.pattern, rules.RE_FLAGS)
  if not ok then return { pattern = case.pattern, error = tostring(rx), classes = classes } end
  local results = {}
  for i, s in ipairs(subjects) do
    local mok, offsets = pcall(rx.offsets, rx, s)
    local rok, replaced = pcall(rx.replace, rx, s, case.template)
    results[i] = { match = mok and (offsets or json.null) or tostring(offsets),
      replaced = rok and replaced or json.null, failed = not (mok and rok) or nil }
  end
  return { pattern = case.pattern, results = results, classes = classes }
end

local input = assert(json.decode(read(assert(os.getenv("ORACLE_CASES"), "ORACLE_CASES unset"))))
local out = assert(io.open(assert(os.getenv("ORACLE_OUT"), "ORACLE_OUT unset"), "wb"))
for _, case in ipairs(input.cases) do
  assert(out:write(assert(json.encode(answer(case, input.subjects))), "\n"))
end
assert(out:close())
return #input.cases
