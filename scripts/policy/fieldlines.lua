-- The line of each field of the rules a policy file writes out, read from its source, so
-- an error about a field points at that field's line and not at the `rule {` line.
--
-- Why from the source: Lua evaluates a whole table constructor before the call, and a
-- table keeps no line per key; debug.getinfo sees only the call's line (the line of the
-- `rule` token). So the loader asks this module, for a rule declared at line L, where
-- each `name = value` of the constructor that follows the `rule` token on line L stands.
-- The scan knows Lua's lexical rules (comments, short and long strings, long brackets)
-- and takes only the constructor's own top-level `name =` and `["name"] =` fields, so a
-- nested table (`restore = { ... }`) or a string holding "name =" cannot mislead it.
-- Rules a file returns as a list (`return { {...}, {...} }`) are the constructors at the
-- top level of the returned table, in order.
--   M.scan(text) -> { calls = { [line] = { fields... } }, returned = { fields... } }
--     where each `fields` is { line = constructor line, [name] = line, ... }
--   M.for_rule(scan, rule_line, nth) / M.for_returned(scan, index) -> fields or nil
-- A rule built elsewhere (`rule(make("orders"))`, `rule(t)`) has no constructor at the
-- call: its fields fall back to the rule's line.
local M = {}

-- Tokens: { kind = "name"|"string"|"sym"|"number", v = text, line = n }.
local function long_bracket(text, i)
  local eq = text:match("^%[(=*)%[", i)
  if not eq then return nil end
  local close = "]" .. eq .. "]"
  local s, e = text:find(close, i + #eq + 2, true)
  return e or #text, text:sub(i, (s or #text + 1) - 1)
end

local function count_lines(s)
  local _, n = s:gsub("\n", "")
  return n
end

local function tokens(text)
  local out, i, line, n = {}, 1, 1, #text
  local function add(kind, v) out[#out + 1] = { kind = kind, v = v, line = line } end
  while i <= n do
    local c = text:sub(i, i)
    if c == "\n" then line, i = line + 1, i + 1
    elseif c:match("%s") then i = i + 1
    elseif text:sub(i, i + 1) == "--" then
      local e, body = long_bracket(text, i + 2)
      if e then line, i = line + count_lines(body), e + 1
      else i = (text:find("\n", i, true) or n + 1) end
    elseif c == "[" and text:match("^%[=*%[", i) then
      local e, body = long_bracket(text, i)
      add("string", body)
      line, i = line + count_lines(body), e + 1
    elseif c == '"' or c == "'" then
      local j, start = i + 1, line
      while j <= n do
        local d = text:sub(j, j)
        if d == "\\" then
          if text:sub(j + 1, j + 1) == "\n" then line = line + 1 end
          j = j + 2
        elseif d == c or d == "\n" then break
        else j = j + 1 end
      end
      out[#out + 1] = { kind = "string", v = text:sub(i + 1, j - 1), line = start }
      i = j + 1
    elseif c:match("[%a_]") then
      local w = text:match("^[%w_]+", i)
      add("name", w)
      i = i + #w
    elseif c:match("%d") then
      local w = text:match("^[%w_.]+", i)
      add("number", w)
      i = i + #w
    else
      local two = text:sub(i, i + 1)
      if two == "==" or two == "~=" or two == "<=" or two == ">=" or two == "::" or two == ".." then
        add("sym", two)
        i = i + 2
      else
        add("sym", c)
        i = i + 1
      end
    end
  end
  return out
end

local OPEN = { ["{"] = "}", ["("] = ")", ["["] = "]" }
local CLOSE = { ["}"] = true, [")"] = true, ["]"] = true }

-- The constructor opening at token k (a "{"): its top-level fields and the index of its
-- closing token.
local function constructor(toks, k)
  local fields, depth, j = { line = toks[k].line }, 0, k
  local at_field_start = true
  while j <= #toks do
    local t = toks[j]
    if t.kind == "sym" and OPEN[t.v] then
      if depth == 1 and t.v == "[" and at_field_start then
        local key, close, eq = toks[j + 1], toks[j + 2], toks[j + 3]
        if key and key.kind == "string" and close and close.v == "]" and eq and eq.v == "=" then
          fields[key.v] = fields[key.v] or key.line
        end
      end
      depth = depth + 1
    elseif t.kind == "sym" and CLOSE[t.v] then
      depth = depth - 1
      if depth == 0 then return fields, j end
    elseif depth == 1 and at_field_start and t.kind == "name" then
      local nxt = toks[j + 1]
      if nxt and nxt.kind == "sym" and nxt.v == "=" then fields[t.v] = fields[t.v] or t.line end
    end
    at_field_start = depth == 1 and t.kind == "sym" and (j == k or t.v == "," or t.v == ";")
    j = j + 1
  end
  return fields, #toks
end

local function returned_list(toks, k, out)
  -- toks[k] is the "{" after a top-level `return`
  local depth, j = 0, k
  while j <= #toks do
    local t = toks[j]
    if t.kind == "sym" and OPEN[t.v] then
      if depth == 1 and t.v == "{" then
        local fields, close = constructor(toks, j)
        out[#out + 1] = fields
        j = close + 1
      else
        depth = depth + 1
        j = j + 1
      end
    elseif t.kind == "sym" and CLOSE[t.v] then
      depth = depth - 1
      if depth == 0 then return end
      j = j + 1
    else
      j = j + 1
    end
  end
end

function M.scan(text)
  local toks = tokens(text or "")
  local res = { calls = {}, returned = {} }
  local depth = 0
  for k, t in ipairs(toks) do
    if t.kind == "name" and t.v == "rule" and not (toks[k - 1] and toks[k - 1].v == ".") then
      local nxt, open = toks[k + 1], nil
      if nxt and nxt.v == "{" then open = k + 1
      elseif nxt and nxt.v == "(" and toks[k + 2] and toks[k + 2].v == "{" then open = k + 2 end
      if open then
        local calls = res.calls[t.line] or {}
        res.calls[t.line] = calls
        calls[#calls + 1] = (constructor(toks, open))
      end
    elseif t.kind == "name" and t.v == "return" and depth == 0 and toks[k + 1] and toks[k + 1].v == "{" then
      returned_list(toks, k + 1, res.returned)
    end
    if t.kind == "name" and (t.v == "function" or t.v == "do" or t.v == "if" or t.v == "repeat") then
      depth = depth + 1
    elseif t.kind == "name" and (t.v == "end" or t.v == "until") then
      depth = math.max(0, depth - 1)
    end
  end
  return res
end

function M.for_rule(scan, line, nth)
  local calls = scan and scan.calls[line]
  return calls and calls[nth or 1] or nil
end

function M.for_returned(scan, index)
  return scan and scan.returned[index] or nil
end

return M
