-- Where a Go regexp pattern (what operators bring from the original tool) behaves
-- differently under PCRE2, and where it can backtrack exponentially. Rotator compiles
-- rule patterns with PCRE2 in UTF mode (rules.RE_FLAGS), which agrees with Go on UTF-8
-- text, on ASCII-only \w \d \b and POSIX classes, on leftmost-first alternation, on `$`
-- at the very end (DOLLAR_ENDONLY) and on ReplaceAllString templates. What is left
-- cannot be made to agree by options, so `rotator check` names it (tests/t/22-go-regexp.t
-- holds these classes against Go's own regexp):
--   empty-repeat       a repeated group that can match empty: `(a*)*`, `(a|)+`; the
--                      two engines stop the loop at different points, so the groups'
--                      positions (and what $1 expands to) differ
--   caseless-property  \p{..} or \P{..} under (?i): Go folds case in the class,
--                      PCRE2 does not ((?i)\p{Lu} matches "a" in Go only)
--   octal              \12-style escapes: octal in Go, a back reference in PCRE2
--                      once the pattern has that many groups
--   space              \s, \S: Go's is [\t\n\f\r ], PCRE2's adds \v (VT, 0x0B)
--   vspace             \v: Go's is the VT character, PCRE2's any vertical space
--                      (\n \v \f \r, U+0085, U+2028, U+2029)
-- and, whatever the engine:
--   backtrack          an unbounded repeat around a group that ends with an unbounded
--                      repeat (`([a-z0-9]+-?)*`): the ways to split a name grow
--                      exponentially with its length, so a name that almost matches
--                      hits PCRE2's match limit and its notification is not processed.
--                      Not when each iteration starts with a literal the inner repeat
--                      cannot take (`(-[a-z0-9]+)*`): then the split is unique.
--                      Overlapping alternatives (`(\w|\d)+`, `(a|aa)+`) are found by
--                      trying the pattern on near-miss names (40 repeats of a table-name
--                      character, then one that may not fit): a probe that hits the match
--                      limit is the warning's proof.
--   M.scan(pattern [, flags]) -> list of { class =, at = 0-based offset, construct =, msg = }
--     (flags: those the pattern is compiled with for the probes, default "u")
local re = require "re"

local M = {}

local WHY = {
  ["empty-repeat"] = "a repeated group that can match empty: Go and PCRE2 end the repeat at different"
    .. " points, so its group's positions (and what a template's $N gives) can differ",
  ["caseless-property"] = "a Unicode property under (?i): Go folds case in it, PCRE2 does not",
  octal = "an octal escape in Go, but a back reference in PCRE2 when the pattern has that many groups;"
    .. " write \\x{..} instead",
  space = "Go's \\s is [\\t\\n\\f\\r ], PCRE2's also matches \\v (VT); write [\\t\\n\\f\\r ] to be exact",
  vspace = "in Go \\v is the VT character, in PCRE2 any vertical space (\\n, \\f, \\r, ...); write \\x0B",
  backtrack = "a repeat around a group that ends in a repeat can backtrack exponentially: a table name"
    .. " that almost matches hits the match limit and its notification is not processed;"
    .. " make the separator required (e.g. `[a-z0-9]+(-[a-z0-9]+)*`)",
}
M.WHY = WHY

local function new_parser(pat)
  local p = { s = pat, i = 1, caseless = false, out = {} }
  function p.peek(n) return pat:sub(p.i, p.i + (n or 1) - 1) end
  function p.warn(class, at, stop)
    p.out[#p.out + 1] = { class = class, at = at - 1, construct = pat:sub(at, stop), msg = WHY[class] }
  end
  return p
end

-- An escape at p.i (the backslash). Returns a node: { nullable = bool }.
local function escape(p, in_class)
  local at = p.i
  local c = p.s:sub(at + 1, at + 1)
  p.i = at + 2
  if c == "Q" then
    local e = p.s:find("\\E", p.i, true)
    local lit = p.s:sub(p.i, (e or #p.s + 1) - 1)
    p.i = e and e + 2 or #p.s + 1
    return { nullable = #lit == 0 }
  elseif c:match("%d") then
    local d2 = p.s:sub(p.i, p.i)
    if c == "0" then
      p.i = p.i + #(p.s:match("^[0-7]?[0-7]?", p.i))
    elseif c:match("[1-7]") and d2:match("[0-7]") then
      p.i = p.i + #(p.s:match("^[0-7][0-7]?", p.i))
      p.warn("octal", at, p.i - 1)
    end
  elseif c == "p" or c == "P" then
    if p.s:sub(p.i, p.i) == "{" then
      p.i = (p.s:find("}", p.i, true) or #p.s) + 1
    else
      p.i = p.i + 1
    end
    if p.caseless then p.warn("caseless-property", at, p.i - 1) end
  elseif c == "s" or c == "S" then
    p.warn("space", at, at + 1)
  elseif c == "v" then
    p.warn("vspace", at, at + 1)
  elseif c == "x" then
    if p.s:sub(p.i, p.i) == "{" then p.i = (p.s:find("}", p.i, true) or #p.s) + 1
    else p.i = p.i + 2 end
  elseif not in_class and (c == "b" or c == "B" or c == "A" or c == "z") then
    return { nullable = true }
  elseif c:match("%p") then
    return { nullable = false, literal = c }
  end
  return { nullable = false }
end

local function class(p)
  p.i = p.i + 1
  if p.peek() == "^" then p.i = p.i + 1 end
  if p.peek() == "]" then p.i = p.i + 1 end
  while p.i <= #p.s and p.peek() ~= "]" do
    if p.peek(2) == "[:" then
      p.i = (p.s:find(":]", p.i + 2, true) or #p.s) + 2
    elseif p.peek() == "\\" then
      escape(p, true)
    else
      p.i = p.i + 1
    end
  end
  p.i = p.i + 1
  return { nullable = false }
end

-- Go's flags group syntax: (?flags) or (?flags:re), flags from imsU with one '-'.
local function apply_flags(p, flags)
  local on = true
  for f in flags:gmatch(".") do
    if f == "-" then on = false
    elseif f == "i" then p.caseless = on end
  end
end

local parse_alt

local function group(p)
  local at = p.i
  p.i = p.i + 1
  local saved = p.caseless
  if p.peek() == "?" then
    local flags, colon = p.s:match("^%?([imsU%-]*)([:)])", p.i)
    if flags and colon == ")" then
      apply_flags(p, flags)
      p.i = p.i + #flags + 2
      return { nullable = true, flags_only = true }
    elseif flags then
      apply_flags(p, flags)
      p.i = p.i + #flags + 2
    else
      local name = p.s:match("^%?P?<[%w_]+>", p.i)
      p.i = p.i + (name and #name or 1)
    end
  end
  local body = parse_alt(p)
  p.i = p.i + 1 -- ')'
  p.caseless = saved
  return { nullable = body.nullable, group = body, at = at, stop = p.i - 1 }
end

-- A quantifier at p.i, or nil: { min =, max = (nil: unbounded) }.
local function quantifier(p)
  local c = p.peek()
  local q
  if c == "*" then q = { min = 0 } p.i = p.i + 1
  elseif c == "+" then q = { min = 1 } p.i = p.i + 1
  elseif c == "?" then q = { min = 0, max = 1 } p.i = p.i + 1
  elseif c == "{" then
    local lo, comma, hi = p.s:match("^{(%d+)(,?)(%d*)}", p.i)
    if not lo then return nil end
    p.i = p.i + #lo + #comma + #hi + 2
    q = { min = tonumber(lo), max = comma == "" and tonumber(lo) or tonumber(hi) }
  else
    return nil
  end
  if p.peek() == "?" then p.i = p.i + 1 end
  return q
end

-- The unbounded repeats a group can end with, optional parts aside: their atoms' source.
local tail_repeats

local function item_tail_repeats(item, out)
  if item.q and not item.q.max then out[#out + 1] = item.src end
  if item.group then tail_repeats(item.group, out) end
end

function tail_repeats(node, out)
  out = out or {}
  for _, seq in ipairs(node.alts) do
    for k = #seq, 1, -1 do
      item_tail_repeats(seq[k], out)
      if not seq[k].nullable then break end
    end
  end
  return out
end

-- The literal characters a group's iterations must start with, or nil when one
-- alternative may start otherwise.
local function first_literals(node)
  local out = {}
  for _, seq in ipairs(node.alts) do
    local first = seq[1]
    if not (first and first.literal and not first.nullable) then return nil end
    out[#out + 1] = first.literal
  end
  return out
end

-- Can the repeat's iterations split a name in more than one way?
local function ambiguous(group)
  local tails = tail_repeats(group)
  if #tails == 0 then return false end
  local lits = first_literals(group)
  if not lits then return true end
  for _, src in ipairs(tails) do
    for _, lit in ipairs(lits) do
      local ok, hit = pcall(re.test, lit, "^(?:" .. src .. ")$", "u")
      if not ok or hit then return true end
    end
  end
  return false
end

local function atom(p)
  local c = p.peek()
  if c == "(" then return group(p)
  elseif c == "[" then return class(p)
  elseif c == "\\" then return escape(p, false)
  elseif c == "^" or c == "$" then p.i = p.i + 1 return { nullable = true }
  elseif c == "." then p.i = p.i + 1 return { nullable = false }
  else
    local ch = p.s:match("^[%z\1-\127\194-\244][\128-\191]*", p.i) or c
    p.i = p.i + #ch
    return { nullable = false, literal = ch }
  end
end

local function parse_seq(p)
  local seq = {}
  while p.i <= #p.s and p.peek() ~= "|" and p.peek() ~= ")" do
    local start = p.i
    local item = atom(p)
    item.src = p.s:sub(start, p.i - 1)
    local q = not item.flags_only and quantifier(p)
    if q then
      item.q = q
      if q.min == 0 then item.nullable = true end
      local repeats = not q.max or q.max > 1
      if item.group and repeats then
        if item.group.nullable then p.warn("empty-repeat", start, p.i - 1) end
        if not q.max then
          if ambiguous(item.group) then p.warn("backtrack", start, p.i - 1)
          else p.repeated = p.repeated or { start, p.i - 1 } end
        end
      end
    end
    seq[#seq + 1] = item
  end
  local nullable = true
  for _, it in ipairs(seq) do if not it.nullable then nullable = false end end
  seq.nullable = nullable
  return seq
end

function parse_alt(p)
  local node = { alts = { parse_seq(p) } }
  while p.peek() == "|" do
    p.i = p.i + 1
    node.alts[#node.alts + 1] = parse_seq(p)
  end
  node.nullable = false
  for _, seq in ipairs(node.alts) do if seq.nullable then node.nullable = true end end
  return node
end

-- Near-miss names for the probes: 40 of one character (or of a pair), then nothing or
-- one more table-name character.
local PROBE_BASES, PROBE_ENDS = { "a", "A", "1", "-", "_", ".", "a-", "a1", "a." }, { "", "_", "-", "." }

-- A name on which the pattern hits PCRE2's match or depth limit, or nil.
local function probe(pattern, flags)
  local ok, rx = pcall(re.compile, pattern, flags)
  if not ok then return nil end
  for _, b in ipairs(PROBE_BASES) do
    for _, e in ipairs(PROBE_ENDS) do
      local name = b:rep(40 // #b) .. e
      local fine, err = pcall(rx.test, rx, name)
      if not fine and tostring(err):find("limit", 1, true) then return name end
    end
  end
end

function M.scan(pattern, flags)
  local p = new_parser(pattern)
  parse_alt(p)
  while p.i <= #p.s do -- a stray ')' (PCRE2 rejects the pattern anyway)
    p.i = p.i + 1
    parse_alt(p)
  end
  if p.repeated then
    local name = probe(pattern, flags or "u")
    if name then
      p.warn("backtrack", p.repeated[1], p.repeated[2])
      local w = p.out[#p.out]
      w.msg = ("%s (the %d-character name %q already hits it)"):format(w.msg, #name, name)
    end
  end
  return p.out
end

-- A linter for policy.loader: the rule's source_pattern's warnings.
function M.lint_rule(rule)
  local out = {}
  if type(rule.source_pattern) ~= "string" then return out end
  for _, w in ipairs(M.scan(rule.source_pattern)) do
    out[#out + 1] = { field = "source_pattern",
      msg = ("source_pattern %q: `%s` at offset %d (%s): %s"):format(rule.source_pattern, w.construct, w.at,
        w.class, w.msg) }
  end
  return out
end

return M
