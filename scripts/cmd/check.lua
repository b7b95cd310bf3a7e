-- rotator check [FILE...]: load and validate the engine scripts and the policies.
local host = require "host"
local args = require "engine.args"
local policies = require "policy.loader"
local rules = require "policy.rules"

local usage = [==[
usage: rotator check [--source-pattern RE --replacement-pattern T [--ssm-parameter-name N]]
                     [--default-rule first|last|off] [FILE...]

Loads every engine script (syntax) and every policy (in its sandbox, with its rules
validated), as a reload would. With FILEs, checks just those policy files. When they
declare no rules, checks the default rule from SOURCE_PATTERN, REPLACEMENT_PATTERN and
SSM_PARAMETER_NAME instead.
Prints one `file:line: message` per problem (the line of the field at fault) and exits 2
if there is any. Warnings (`file:line: warning: ...`: a pattern PCRE2 runs differently
from Go's regexp, or one that can backtrack exponentially) do not fail the check; it
exits 0 and prints a summary when there is no problem.

The default rule of the original tool's settings (SOURCE_PATTERN, REPLACEMENT_PATTERN,
SSM_PARAMETER_NAME, or the flags) is checked as `rotator run` would build it: set
together with policy rules and without --default-rule (ROTATOR_DEFAULT_RULE), it is
reported as a problem, since `run` and `replay` refuse to start then.

Examples:
  rotator check
  rotator check policies/staging.lua
  SOURCE_PATTERN='-Production$' REPLACEMENT_PATTERN=-qa rotator check
  rotator --policies /etc/rotator/policies check
  SOURCE_PATTERN='-production$' REPLACEMENT_PATTERN=-qa rotator check --default-rule last
]==]

local function lua_files(dir, out)
  local names = host.list_dir(dir) or {}
  for _, n in ipairs(names) do
    local path = dir .. "/" .. n
    if n:match("%.lua$") then out[#out + 1] = path
    elseif host.list_dir(path) then lua_files(path, out) end
  end
  return out
end

local function check_scripts(errors)
  local files = lua_files(host.config.scripts_dir, {})
  for _, path in ipairs(files) do
    local _, err = loadfile(path, "t")
    if err then errors[#errors + 1] = err end
  end
  return #files
end

local function run(argv)
  local opts, files = args.parse(argv, rules.FLAGS, "check")
  if not opts then io.stderr:write("rotator check: ", files, "\n") return 2 end
  local errors, nscripts = {}, 0
  if #files == 0 then
    nscripts = check_scripts(errors)
    local listed, err = policies.list(host.config.policies_dir)
    if not listed then
      errors[#errors + 1] = err .. " (set --policies or ROTATOR_POLICIES)"
      listed = {}
    end
    files = listed
  end
  local set, perrs = policies.load(files)
  for _, e in ipairs(perrs or {}) do errors[#errors + 1] = e end
  local list, rerr, place = nil, nil, nil
  if set then
    list, rerr, place = rules.effective(set, opts)
    if not list then errors[#errors + 1] = "default rule: " .. rerr end
    -- The default rule from SOURCE_PATTERN/REPLACEMENT_PATTERN, where it runs, is linted
    -- as policy rules are.
    for _, r in ipairs(list or {}) do
      if r._default then policies.lint(r, set.warnings) end
    end
  end
  if #errors > 0 then
    for _, e in ipairs(errors) do io.stderr:write(e, "\n") end
    io.stderr:write(("check failed: %d problem(s); nothing was loaded\n"):format(#errors))
    return 2
  end
  for _, w in ipairs(set.warnings) do io.stderr:write(w, "\n") end
  local extra = ""
  if #list ~= #set.rules or place == "off" then
    extra = place and (" + the default rule (--default-rule %s), %s"):format(place, rules.PLACEMENTS[place])
      or " + the default rule from SOURCE_PATTERN/flags"
  end
  io.stdout:write(("ok: %d scripts, %d policy files, %d rules%s%s\n"):format(nscripts, #set.files, #set.rules, extra,
    #set.warnings > 0 and (", " .. #set.warnings .. " warning(s)") or ""))
  return 0
end

return { summary = "load and validate scripts and policies", usage = usage, run = run }
