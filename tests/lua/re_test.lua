-- Tests for require "re". Expected replace results are what Go's
-- regexp.MustCompile(pattern).ReplaceAllString(subject, template) returns.
local re = require "re"

local function eq(got, want, what)
  if got ~= want then
    error(string.format("%s: got %q, want %q", what or "value", tostring(got), tostring(want)), 2)
  end
end

local function raises(fn, pattern, what)
  local ok, err = pcall(fn)
  assert(not ok, (what or "call") .. " should raise")
  assert(tostring(err):find(pattern, 1, true),
         string.format("%s: error %q lacks %q", what or "call", tostring(err), pattern))
  return err
end

local function replace(pattern, subject, template)
  return re.replace(subject, pattern, template)
end

local T = {}

T["operator example: (?i)-production$ to -staging"] = function()
  eq(replace("(?i)-production$", "Orders-Production", "-staging"), "Orders-staging")
  eq(replace("(?i)-production$", "Orders-Production", "$0"), "Orders-Production", "$0 keeps name")
  eq(replace("(?i)-production$", "Orders-Production-copy", "-staging"), "Orders-Production-copy",
     "anchored at the end")
end

T["$ without m matches only at the very end, as in Go"] = function()
  eq(replace("-production$", "x-production\n", "-staging"), "x-production\n")
  eq(replace("(?m)-production$", "x-production\ny", "-staging"), "x-staging\ny", "(?m)")
end

T["Go templates: numbered, braced and longest names"] = function()
  local p = "(?P<first>\\w+)\\s(?P<last>\\w+)"
  eq(replace(p, "John Smith", "$0"), "John Smith", "$0")
  eq(replace(p, "John Smith", "${1}x"), "Johnx", "${1}x")
  eq(replace(p, "John Smith", "$1x"), "", "$1x is group named 1x")
  eq(replace(p, "John Smith", "$1_"), "", "$1_ is group named 1_")
  eq(replace(p, "John Smith", "$2, $1"), "Smith, John", "$2, $1")
  eq(replace(p, "John Smith", "$01"), "", "leading zero makes a name")
end

T["Go templates: named groups"] = function()
  local p = "(?P<first>\\w+)\\s(?<last>\\w+)"
  eq(replace(p, "John Smith", "${last}, ${first}"), "Smith, John", "${name}")
  eq(replace(p, "John Smith", "$last $first"), "Smith John", "$name")
  eq(replace(p, "John Smith", "$lastx"), "", "$lastx is unknown")
  eq(replace(p, "John Smith", "${nope}!"), "!", "unknown name expands to empty")
  eq(replace(p, "John Smith", "$9!"), "!", "out of range expands to empty")
end

T["Go templates: dollars kept literally"] = function()
  local p = "(\\w+)"
  eq(replace(p, "abc", "$$"), "$", "$$")
  eq(replace(p, "abc", "$$$1"), "$abc", "$$$1")
  eq(replace(p, "abc", "x$"), "x$", "trailing $")
  eq(replace(p, "abc", "$!"), "$!", "$ before punctuation")
  eq(replace(p, "abc", "${1"), "${1", "unclosed brace")
  eq(replace(p, "abc", "${}"), "${}", "empty braces")
end

T["unset group expands to empty"] = function()
  eq(replace("(a)|b", "ab", "[$1]"), "[a][]")
end

T["replace replaces all matches"] = function()
  eq(replace("a(\\d)", "a1 a2 a3", "b$1"), "b1 b2 b3")
  eq(replace("nomatch", "abc", "X"), "abc", "no match leaves subject")
  eq(replace("b", "abcb", ""), "ac", "delete")
end

T["empty matches behave like Go"] = function()
  eq(replace("a*", "baaac", "X"), "XbXcX", "a* in baaac")
  eq(replace("x*", "abc", "-"), "-a-b-c-", "x* in abc")
  eq(replace("a*", "", "X"), "X", "empty subject")
  eq(replace("x*", "\u{e9}", "-"), "-\u{e9}-", "steps over a UTF-8 sequence")
end

T["(?i) inline and flags argument"] = function()
  assert(re.test("HELLO world", "(?i)hello"), "(?i)")
  assert(re.test("HELLO world", "hello", "i"), "flag i")
  assert(not re.test("HELLO world", "hello"), "case sensitive by default")
  assert(re.test("a\nb", "a.b", "s"), "flag s")
  assert(re.test("a\nb", "^b", "m"), "flag m")
  assert(re.test("ab", "a b # comment", "x"), "flag x")
  eq(re.match("\u{e9}t\u{e9}", "^.", "u")[0], "\u{e9}", "flag u: . is a character")
  eq(#re.match("\u{e9}t\u{e9}", "^.")[0], 1, "without u: . is a byte")
  raises(function() re.compile("a", "q") end, "unknown regex flag 'q'", "bad flag")
end

T["match returns numbered and named captures"] = function()
  local m = re.match("id: orders-2026-11-25", "(?<table>\\w+)-(\\d{4})-(\\d\\d)-(\\d\\d)(x)?")
  eq(m[0], "orders-2026-11-25", "[0]")
  eq(m[1], "orders", "[1]")
  eq(m[2], "2026", "[2]")
  eq(m[4], "25", "[4]")
  eq(m[5], false, "unset group is false")
  eq(m.table, "orders", "named")
  eq(m.start, 5, "start")
  eq(m.stop, 21, "stop")
  local s, e = string.find("id: orders-2026-11-25", "orders%-%d+%-%d+%-%d+")
  eq(m.start, s, "start like string.find")
  eq(m.stop, e, "stop like string.find")
  eq(re.match("abc", "x"), nil, "no match is nil")
end

T["empty match positions"] = function()
  local m = re.match("abc", "")
  eq(m[0], "", "empty")
  eq(m.start, 1, "start")
  eq(m.stop, 0, "stop = start - 1")
end

T["method match with init"] = function()
  local r = re.compile("\\d")
  eq(r:match("a1b2", 3)[0], "2", "init 3")
  eq(r:match("a1b2", -1)[0], "2", "negative init")
  eq(r:match("a1b2", 10), nil, "init past the end")
  assert(re.compile("(?<=a)b"):match("ab", 2), "lookbehind sees text before init")
end

T["gmatch and find_all list matches like Go FindAll"] = function()
  local got = {}
  for m in re.gmatch("a1 b22 c333", "(\\w)(\\d+)") do
    got[#got + 1] = m[1] .. "=" .. m[2] .. "@" .. m.start
  end
  eq(table.concat(got, ","), "a=1@1,b=22@4,c=333@8", "gmatch")
  local all = re.compile("a*"):find_all("baaac")
  eq(#all, 3, "a* in baaac has three matches")
  eq(all[1][0] .. "|" .. all[2][0] .. "|" .. all[3][0], "|aaa|", "texts")
  eq(all[3].start, 6, "last empty match at the end")
  local n = 0
  for _ in re.compile("x"):gmatch("abc") do n = n + 1 end
  eq(n, 0, "no matches")
  eq(#re.find_all("a,b,,c", "[^,]*"), 4, "Go FindAll [^,]* in a,b,,c")
end

T["subjects may contain NUL bytes"] = function()
  local m = re.match("a\0b\0c", "b\0(c)")
  eq(m[0], "b\0c", "match spans NUL")
  eq(m[1], "c", "group after NUL")
  eq(replace("\0", "a\0b", "-"), "a-b", "replace NUL")
end

T["invalid pattern raises with PCRE2 message and offset"] = function()
  raises(function() re.compile("(abc") end,
         're: invalid pattern "(abc": missing closing parenthesis at offset 4', "compile")
  raises(function() re.match("x", "a[") end, "missing terminating ] for character class",
         "match")
  raises(function() re.replace("x", "*", "y") end, "quantifier does not follow a repeatable item at offset 0",
         "replace")
end

T["wrong argument types raise argument errors"] = function()
  raises(function() re.match(nil, "a") end, "bad argument #1", "nil subject")
  raises(function() re.compile({}) end, "bad argument #1", "table pattern")
  raises(function() re.compile("a").match("x", "y") end, "bad argument #1", "dot call")
end

T["match errors such as the match limit raise"] = function()
  raises(function() re.test(string.rep("a", 40) .. "b", "(a+)+$") end, "re: match limit exceeded",
         "catastrophic backtracking")
end

T["compiled patterns are cached"] = function()
  local pat = "cache-test-(\\d+)"
  local before = re.cache_stats()
  re.match("cache-test-1", pat)
  local mid = re.cache_stats()
  eq(mid.misses, before.misses + 1, "first use compiles")
  for i = 1, 10 do re.match("cache-test-" .. i, pat) end
  re.compile(pat)
  local after = re.cache_stats()
  eq(after.misses, mid.misses, "no recompilation")
  eq(after.hits, mid.hits + 11, "hits counted")
  assert(after.size >= 1 and after.size <= after.capacity, "size bounded")
  eq(after.capacity, 256, "capacity")
  re.match("x", pat, "i")
  eq(re.cache_stats().misses, after.misses + 1, "flags are part of the key")
end

T["cache is bounded (LRU)"] = function()
  for i = 1, 300 do re.test("x", "bounded-" .. i) end
  local st = re.cache_stats()
  eq(st.size, 256, "size capped")
  assert(st.evictions >= 44, "evictions counted")
end

T["close and tostring"] = function()
  local r = re.compile("(?i)x", "m")
  eq(tostring(r), "regex(/(?i)x/m)", "tostring")
  local p, f = r:pattern()
  eq(p, "(?i)x", "pattern")
  eq(f, "m", "flags")
  do
    local c <close> = re.compile("(?i)x", "m")
    assert(c:test("X"))
  end
  assert(r:test("X"), "closing one object leaves others sharing the compilation")
  getmetatable(r).__close(r)
  eq(tostring(r), "regex (closed)", "closed tostring")
  raises(function() r:test("x") end, "closed", "use after close")
  assert(re.test("X", "(?i)x", "m"), "cache still fine after close")
end

T["quote escapes metacharacters like Go QuoteMeta"] = function()
  eq(re.quote("orders.v2 (eu)*"), "orders\\.v2 \\(eu\\)\\*")
  assert(re.test("a.b", "^" .. re.quote("a.b") .. "$"))
  assert(not re.test("axb", "^" .. re.quote("a.b") .. "$"))
end

function T.utf_negated_escapes_match_non_ascii()
  -- PCRE2 10.42's JIT misses these under MATCH_INVALID_UTF; UTF patterns are interpreted
  for _, pat in ipairs({ "\\D", "\\W", "\\S", "[^a]" }) do
    assert(re.test("\u{e9}", pat, "u"), pat .. " should match U+00E9")
  end
  assert(not re.test("\u{e9}", "\\w", "u"), "\\w is ASCII-only, as in Go")
end

function T.offsets_are_go_submatch_indexes()
  local rx = re.compile("^(.*)-prod(uction)?(x)?$", "u")
  local o = rx:offsets("orders-production")
  assert(table.concat(o, ",") == "0,17,0,6,11,17,-1,-1", table.concat(o, ","))
  assert(rx:offsets("orders") == nil)
end

return T
