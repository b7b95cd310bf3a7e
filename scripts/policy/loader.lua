-- Loading operator policies: every policies/*.lua file (sorted by name) runs in its own
-- strict environment (sandbox.lua). A policy declares rules with `rule { ... }` or returns
-- a list of rule tables. Any error comes back as "file:line: message", the line being the
-- field's own when the problem is one field's (fieldlines.lua reads them from the source;
-- each rule keeps them as rule._lines, its own line as rule._line).
local sandbox = require "policy.sandbox"
local fieldlines = require "policy.fieldlines"
local host = require "host"

local M = {}

-- Validators run on each declared rule; the workflow module adds its own. Each is
-- fn(rule) returning nil, or an error message and the name of the field it is about.
M.validators = {}

-- Linters run on each rule that validated: fn(rule) -> list of { msg =, field = }, for
-- what works but may not do what the operator meant (rotator check prints them).
M.linters = {}

local function where_of(level)
  local info = debug.getinfo(level, "Sl")
  return info and (info.short_src .. ":" .. (info.currentline or 0)) or "?"
end

local function read_source(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

local function policy_api(rules, path, scan)
  local seen = {} -- rule calls per line, for several constructors on one line
  return {
    rule = function(def)
      if type(def) ~= "table" then error("rule expects a table: rule { source_pattern = ... }", 2) end
      def._where = where_of(3)
      def._file = path
      local line = debug.getinfo(2, "l").currentline
      local calls = scan and scan.calls[line]
      if calls then
        seen[line] = (seen[line] or 0) % #calls + 1
        def._lines = fieldlines.for_rule(scan, line, seen[line])
      end
      def._line = line
      rules[#rules + 1] = def
      return def
    end,
  }
end

-- "file:line" of a rule's field (the rule's own line when the field's is not known).
function M.where(rule, field)
  local line = field and type(rule._lines) == "table" and rule._lines[field]
  if line and rule._file then return rule._file .. ":" .. line end
  return rule._where or rule._file or "?"
end

local function validate(rule)
  for _, check in ipairs(M.validators) do
    local msg, field = check(rule)
    if msg then return M.where(rule, field) .. ": " .. msg end
  end
end

-- The linters' warnings for one rule, appended to out as "file:line: warning: msg".
function M.lint(rule, out)
  out = out or {}
  for _, fn in ipairs(M.linters) do
    for _, w in ipairs(fn(rule) or {}) do
      out[#out + 1] = M.where(rule, w.field) .. ": warning: " .. w.msg
    end
  end
  return out
end

-- Load one file; returns its rules and their warnings, or nil, the first problem and
-- the list of all (one per rule).
function M.load_file(path)
  local rules, scan = {}, nil
  local text = read_source(path)
  if text then scan = fieldlines.scan(text) end
  local res, err = sandbox.run_file(path, sandbox.env(path, policy_api(rules, path, scan)))
  if not res then return nil, err, { err } end
  if type(res) == "table" then
    for i, r in ipairs(res) do
      if type(r) ~= "table" then
        local msg = path .. ": returned list holds a " .. type(r) .. ", not a rule table"
        return nil, msg, { msg }
      end
      if not r._where then
        local fields = fieldlines.for_returned(scan, i)
        r._lines = fields
        r._where = fields and (path .. ":" .. fields.line) or path
        r._line = fields and fields.line or nil
      end
      r._file = path
      rules[#rules + 1] = r
    end
  end
  local problems, warnings = {}, {}
  for _, r in ipairs(rules) do
    local msg = validate(r)
    if msg then problems[#problems + 1] = msg else M.lint(r, warnings) end
  end
  if #problems > 0 then return nil, problems[1], problems end
  return rules, warnings
end

function M.list(dir)
  local names, err = host.list_dir(dir)
  if not names then return nil, err end
  local files = {}
  for _, n in ipairs(names) do
    if n:match("%.lua$") then files[#files + 1] = dir .. "/" .. n end
  end
  return files
end

-- Load files in order; returns {rules=..., files=..., warnings=...} or nil and a list of
-- errors.
function M.load(files)
  local set, errors = { rules = {}, files = {}, warnings = {} }, {}
  for _, path in ipairs(files) do
    local rules, warnings, all = M.load_file(path)
    if rules then
      set.files[#set.files + 1] = path
      table.move(rules, 1, #rules, #set.rules + 1, set.rules)
      table.move(warnings, 1, #warnings, #set.warnings + 1, set.warnings)
    else
      table.move(all, 1, #all, #errors + 1, errors)
    end
  end
  if #errors > 0 then return nil, errors end
  return set
end

return M
