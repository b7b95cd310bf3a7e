-- Loading operator policies: every policies/*.lua file (sorted by name) runs in its own
-- strict environment (sandbox.lua). A policy declares rules with `rule { ... }` or returns
-- a list of rule tables. Any error comes back as "file:line: message".
local sandbox = require "policy.sandbox"
local host = require "host"

local M = {}

-- Validators run on each declared rule; the workflow module adds its own. Each is
-- fn(rule, where) returning nil or an error message.
M.validators = {}

local function where_of(level)
  local info = debug.getinfo(level, "Sl")
  return info and (info.short_src .. ":" .. (info.currentline or 0)) or "?"
end

local function policy_api(rules, path)
  return {
    rule = function(def)
      if type(def) ~= "table" then error("rule expects a table: rule { source_pattern = ... }", 2) end
      def._where = where_of(3)
      def._file = path
      rules[#rules + 1] = def
      return def
    end,
  }
end

local function validate(rule)
  for _, check in ipairs(M.validators) do
    local msg = check(rule)
    if msg then return rule._where .. ": " .. msg end
  end
end

-- Load one file; returns its rules or nil, message.
function M.load_file(path)
  local rules = {}
  local res, err = sandbox.run_file(path, sandbox.env(path, policy_api(rules, path)))
  if not res then return nil, err end
  if type(res) == "table" then
    for _, r in ipairs(res) do
      if type(r) ~= "table" then return nil, path .. ": returned list holds a " .. type(r) .. ", not a rule table" end
      r._where, r._file = r._where or path, path
      rules[#rules + 1] = r
    end
  end
  for _, r in ipairs(rules) do
    local msg = validate(r)
    if msg then return nil, msg end
  end
  return rules
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

-- Load files in order; returns {rules=..., files=...} or nil and a list of errors.
function M.load(files)
  local set, errors = { rules = {}, files = {} }, {}
  for _, path in ipairs(files) do
    local rules, err = M.load_file(path)
    if rules then
      set.files[#set.files + 1] = path
      table.move(rules, 1, #rules, #set.rules + 1, set.rules)
    else
      errors[#errors + 1] = err
    end
  end
  if #errors > 0 then return nil, errors end
  return set
end

return M
