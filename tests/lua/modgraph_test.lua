-- The module graph of scripts/: every require is read (top level and inside functions,
-- with a small Lua lexer, so comments and strings do not count) and the test fails on
--   a cycle;
--   a require inside a function body (a module requires what it uses at the top);
--   a require hidden behind pcall, or whose name is not a literal;
--   an upward reach: a module requiring one of a higher layer (LAYERS below);
--   a module that is neither in scripts/ nor a host module.
-- And no file under host/aws/ includes a Lua header (the AWS client knows nothing of Lua).
-- The checks run on planted graphs too, so the test is seen to fail when it should.
local T = require "engine.testing"
local host = require "host"

-- Lowest first. A module belongs to the layer of its longest matching prefix.
local LAYERS = {
  { "engine" },                                              -- task, args, pretty, testing
  { "aws" },                                                 -- aws.call, services
  { "policy" },                                              -- sandbox, loader, rules
  { "workflow.doc", "workflow.config", "workflow.notification" }, -- the document and its inputs
  { "after" },                                               -- post-restore, validation, retention, alerts
  { "workflow" },                                            -- the workflow: driver and states
  { "reconcile" },                                           -- reconcile: newest backups, stale pointers
  { "schedule" },                                            -- scheduled restore tests
  { "daemon" },                                              -- daemon, intake, store, reload
  { "console" },                                             -- control socket, REPL
  { "cmd" },                                                 -- the commands
  { "cli" },                                                 -- the entry point
}

local function layer_of(mod)
  local best, best_len
  for rank, prefixes in ipairs(LAYERS) do
    for _, p in ipairs(prefixes) do
      if (mod == p or mod:sub(1, #p + 1) == p .. ".") and #p > (best_len or -1) then best, best_len = rank, #p end
    end
  end
  return best
end

---------------------------------------------------------------- a small Lua lexer
-- Tokens {t = "name"|"string"|"op", v = text, line = n}; comments dropped.
local function long_bracket(src, i)
  local eq = src:match("^%[(=*)%[", i)
  if not eq then return nil end
  local close = "]" .. eq .. "]"
  local s, e = src:find(close, i + #eq + 2, true)
  if not s then error("unfinished long bracket at byte " .. i) end
  return src:sub(i + #eq + 2, s - 1), e + 1
end

local function short_string(src, i)
  local q, j = src:sub(i, i), i + 1
  while true do
    local c = src:sub(j, j)
    if c == "" or c == "\n" then error("unfinished string at byte " .. i) end
    if c == "\\" then j = j + 2
    elseif c == q then return src:sub(i + 1, j - 1), j + 1
    else j = j + 1 end
  end
end

local function tokens(src)
  local out, i, line, n = {}, 1, 1, #src
  local function count_lines(a, b) local _, k = src:sub(a, b - 1):gsub("\n", "") line = line + k end
  while i <= n do
    local c = src:sub(i, i)
    if c:match("%s") then
      if c == "\n" then line = line + 1 end
      i = i + 1
    elseif src:sub(i, i + 1) == "--" then
      local _, after = long_bracket(src, i + 2)
      local j = after or (src:find("\n", i, true) or n + 1)
      count_lines(i, j)
      i = j
    elseif c == "[" and src:match("^%[=*%[", i) then
      local v, j = long_bracket(src, i)
      out[#out + 1] = { t = "string", v = v, line = line }
      count_lines(i, j)
      i = j
    elseif c == '"' or c == "'" then
      local v, j = short_string(src, i)
      out[#out + 1] = { t = "string", v = v, line = line }
      i = j
    elseif c:match("[%a_]") then
      local v = src:match("^[%w_]+", i)
      out[#out + 1] = { t = "name", v = v, line = line }
      i = i + #v
    elseif c:match("%d") then
      i = i + #src:match("^[%w_.]+", i)
    else
      local v = src:match("^%.%.%.", i) or src:match("^[=~<>]=", i) or src:match("^::", i) or src:match("^%.%.", i) or c
      out[#out + 1] = { t = "op", v = v, line = line }
      i = i + #v
    end
  end
  return out
end

---------------------------------------------------------------- the requires of one file
local OPENS = { ["function"] = true, ["if"] = true, ["do"] = true, ["repeat"] = true }
local CLOSES = { ["end"] = true, ["until"] = true }

-- The one computed require allowed: the entry module finds the commands by file name
-- (scripts/cmd/NAME.lua is the command NAME). "module prefix" pairs.
local DISCOVERY = { ["cli cmd."] = true }
-- The REPL hands the operator the real require (any module, by the name typed).
local PASSTHROUGH = { ["console.repl"] = true }

-- The require a token at k starts: name (or nil), how ("call" | "pcall" | "dynamic").
local function require_at(toks, k)
  local prev, nxt, nxt2, nxt3 = toks[k - 1], toks[k + 1], toks[k + 2], toks[k + 3]
  if prev and prev.t == "op" and (prev.v == "." or prev.v == ":") then return nil end
  if prev and prev.t == "name" and prev.v == "local" then return nil end
  if not nxt or (nxt.t == "op" and nxt.v == "=") then return nil end
  if nxt.t == "string" then return nxt.v, "call" end
  if nxt.t == "op" and nxt.v == "(" then
    if nxt2 and nxt2.t == "string" and nxt3 and nxt3.t == "op" and nxt3.v == ")" then return nxt2.v, "call" end
    if nxt2 and nxt2.t == "string" and nxt2.v:match("%.$") and nxt3 and nxt3.t == "op" and nxt3.v == ".." then
      return nxt2.v, "discovery" -- require("cmd." .. name): every module under that prefix
    end
    return "?", "dynamic"
  end
  if nxt.t == "op" and nxt.v == "," and prev and prev.t == "op" and (prev.v == "(" or prev.v == ",") then
    return nxt2 and nxt2.t == "string" and nxt2.v or "?", "pcall"
  end
  return "?", "dynamic"
end

-- Every require of a file: { {name, line, in_function, how} }.
local function requires_of(src)
  local toks, stack, out = tokens(src), {}, {}
  local functions = 0
  for k, tok in ipairs(toks) do
    if tok.t == "name" then
      if OPENS[tok.v] then
        stack[#stack + 1] = tok.v
        if tok.v == "function" then functions = functions + 1 end
      elseif CLOSES[tok.v] then
        if table.remove(stack) == "function" then functions = functions - 1 end
      elseif tok.v == "require" then
        local name, how = require_at(toks, k)
        if name then out[#out + 1] = { name = name, line = tok.line, in_function = functions > 0, how = how } end
      end
    end
  end
  return out
end

---------------------------------------------------------------- the graph
local function find_cycle(edges)
  local color, path, found = {}, {}, nil
  local function visit(m)
    color[m] = "grey"
    path[#path + 1] = m
    for _, to in ipairs(edges[m] or {}) do
      if found then return end
      if color[to] == "grey" then
        local cyc, on = {}, false
        for _, p in ipairs(path) do if p == to then on = true end if on then cyc[#cyc + 1] = p end end
        cyc[#cyc + 1] = to
        found = table.concat(cyc, " -> ")
        return
      elseif not color[to] then
        visit(to)
      end
    end
    path[#path] = nil
    color[m] = "black"
  end
  local names = {}
  for m in pairs(edges) do names[#names + 1] = m end
  table.sort(names)
  for _, m in ipairs(names) do
    if not color[m] and not found then visit(m) end
  end
  return found
end

-- files: { [module] = {path =, text =} }; host_modules: set of names scripts may require
-- besides their own. Returns a sorted list of problems (empty when the graph is clean).
local function graph_problems(files, host_modules)
  local problems, edges = {}, {}
  local function problem(fmt, ...) problems[#problems + 1] = fmt:format(...) end
  for mod, f in pairs(files) do
    edges[mod] = {}
    local from = layer_of(mod)
    if not from then problem("%s: module %s has no layer (add it to LAYERS)", f.path, mod) end
    for _, r in ipairs(requires_of(f.text)) do
      local where = f.path .. ":" .. r.line
      if r.how == "dynamic" and PASSTHROUGH[mod] then goto next_require end
      if r.how == "dynamic" then problem("%s: require with a computed name (cannot be checked)", where)
      elseif r.how == "pcall" then problem("%s: require %q hidden behind pcall", where, r.name)
      elseif r.how == "discovery" and not DISCOVERY[mod .. " " .. r.name] then
        problem("%s: require with a computed name (cannot be checked)", where)
      end
      if r.how == "discovery" then
        -- Command discovery: an edge to every module under the prefix, checked like any other.
        for other in pairs(files) do
          if other:sub(1, #r.name) == r.name then
            edges[mod][#edges[mod] + 1] = other
            local to = layer_of(other)
            if from and to and to > from then
              problem("%s: %s (layer %s) reaches up to %s (layer %s)", where, mod, LAYERS[from][1], other, LAYERS[to][1])
            end
          end
        end
      elseif r.in_function then problem("%s: require %q inside a function (require at the top of the file)", where, r.name) end
      if files[r.name] then
        edges[mod][#edges[mod] + 1] = r.name
        local to = layer_of(r.name)
        if from and to and to > from then
          problem("%s: %s (layer %s) reaches up to %s (layer %s)", where, mod, LAYERS[from][1], r.name, LAYERS[to][1])
        end
      elseif r.name ~= "?" and r.how ~= "discovery" and not host_modules[r.name] then
        problem("%s: require %q: no such module in scripts/ or the host", where, r.name)
      end
      ::next_require::
    end
  end
  local cycle = find_cycle(edges)
  if cycle then problem("cycle: %s", cycle) end
  table.sort(problems)
  return problems
end

---------------------------------------------------------------- reading the tree
local function is_dir(path) return host.list_dir(path) ~= nil end

local function walk(dir, fn, rel)
  for _, name in ipairs(assert(host.list_dir(dir))) do
    local path, r = dir .. "/" .. name, rel and (rel .. "/" .. name) or name
    if is_dir(path) then walk(path, fn, r) else fn(path, r) end
  end
end

local function script_files(root)
  local files = {}
  walk(root, function(path, rel)
    if rel:match("%.lua$") then
      local mod = rel:gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
      files[mod] = { path = path, text = assert(host.read_file(path)) }
    end
  end)
  return files
end

local function host_modules()
  local set = {}
  for name in pairs(package.preload) do set[name] = true end
  for _, std in ipairs({ "string", "table", "math", "utf8", "coroutine", "io", "os", "debug" }) do set[std] = true end
  return set
end

local function lua_includes(root)
  local out = {}
  walk(root, function(path)
    if path:match("%.[ch]$") then
      local n = 0
      for line in (assert(host.read_file(path)) .. "\n"):gmatch("([^\n]*)\n") do
        n = n + 1
        local inc = line:match('^%s*#%s*include%s*[<"]([^>"]+)[>"]')
        if inc and (inc:match("^lua") or inc:match("^lauxlib") or inc:match("^lualib") or inc:match("/lua[%w_]*%.h$")) then
          out[#out + 1] = ("%s:%d: includes %s"):format(path, n, inc)
        end
      end
    end
  end)
  return out
end

local function scripts_root() return host.config.scripts_dir end
local function repo_root() return (scripts_root():gsub("/scripts/?$", "")) end

local function plant(extra)
  local files = {
    ["engine.task"] = { path = "engine/task.lua", text = 'local timer = require "timer"\nreturn {}' },
    ["policy.rules"] = { path = "policy/rules.lua", text = 'local task = require "engine.task"\nreturn {}' },
    ["after.retention"] = { path = "after/retention.lua", text = 'local rules = require("policy.rules")\nreturn {}' },
    ["daemon"] = { path = "daemon/init.lua", text = 'local r = require "after.retention"\nreturn {}' },
  }
  for k, v in pairs(extra or {}) do files[k] = v end
  return graph_problems(files, host_modules())
end

local function has(problems, pattern)
  for _, p in ipairs(problems) do if p:find(pattern) then return true end end
  return false
end

return {
  scripts_graph_is_acyclic_layered_and_required_at_the_top = function()
    local files = script_files(scripts_root())
    assert(files["workflow"] and files["daemon"] and files["cli"], "the scripts tree was found")
    local problems = graph_problems(files, host_modules())
    T.eq(problems, {}, "module graph problems")
  end,

  no_lua_header_under_host_aws = function()
    local root = repo_root() .. "/host/aws"
    assert(is_dir(root), root .. " exists")
    T.eq(lua_includes(root), {}, "host/aws must not include Lua headers")
  end,

  lexer_skips_comments_and_strings = function()
    local reqs = requires_of([==[
-- require "commented"
local a = require "engine.task" --[[ require "block" ]]
local s = "require 'in a string'"
local l = [[ require "long" ]]
local t = { require = 1 }
local function f() return t.require, require("json") end
return pcall(require, "aws")
]==])
    T.eq(#reqs, 3)
    T.eq({ reqs[1].name, reqs[1].in_function, reqs[1].line }, { "engine.task", false, 2 })
    T.eq({ reqs[2].name, reqs[2].in_function, reqs[2].line }, { "json", true, 6 })
    T.eq({ reqs[3].name, reqs[3].how }, { "aws", "pcall" })
  end,

  a_planted_clean_graph_passes = function()
    T.eq(plant(), {})
  end,

  a_planted_cycle_fails = function()
    local problems = plant({ ["engine.task"] = { path = "engine/task.lua",
      text = 'local timer = require "timer"\nlocal x = require "engine.extra"\nreturn {}' },
      ["engine.extra"] = { path = "engine/extra.lua", text = 'local t = require "engine.task"\nreturn {}' } })
    assert(has(problems, "^cycle: engine%.task %-> engine%.extra %-> engine%.task$")
      or has(problems, "^cycle: engine%.extra %-> engine%.task %-> engine%.extra$"), table.concat(problems, "\n"))
  end,

  a_planted_upward_reach_fails = function()
    local problems = plant({ ["after.retention"] = { path = "after/retention.lua",
      text = 'local rules = require "policy.rules"\nlocal d = require "daemon"\nreturn {}' } })
    assert(has(problems, "after/retention.lua:2: after%.retention %(layer after%) reaches up to daemon %(layer daemon%)"),
      table.concat(problems, "\n"))
    assert(has(problems, "^cycle: "), "and daemon -> after.retention -> daemon is a cycle")
  end,

  a_planted_function_local_or_hidden_require_fails = function()
    local problems = plant({ ["policy.rules"] = { path = "policy/rules.lua", text = [[
local M = {}
function M.validate(rule) return require("after.retention").validate_rule(rule) end
local ok, aws = pcall(require, "aws")
local name = "cmd.x"
local cmd = require(name)
local json = (function() return require "json" end)()
return M]] } })
    assert(has(problems, 'policy/rules.lua:2: require "after.retention" inside a function'), table.concat(problems, "\n"))
    assert(has(problems, "policy/rules.lua:2: policy%.rules %(layer policy%) reaches up to after%.retention"), "upward too")
    assert(has(problems, 'policy/rules.lua:3: require "aws" hidden behind pcall'), table.concat(problems, "\n"))
    assert(has(problems, "policy/rules.lua:5: require with a computed name"), table.concat(problems, "\n"))
    assert(has(problems, 'policy/rules.lua:6: require "json" inside a function'), "C modules too")
  end,

  command_discovery_is_checked_as_edges_to_every_command = function()
    local problems = plant({ ["cmd.check"] = { path = "cmd/check.lua",
      text = 'local cli = require "cli"\nreturn {}' },
      ["cli"] = { path = "cli.lua", text = 'local function load(n) return require("cmd." .. n) end\nreturn {}' } })
    assert(has(problems, "cmd/check.lua:1: cmd%.check %(layer cmd%) reaches up to cli %(layer cli%)"),
      table.concat(problems, "\n"))
    assert(has(problems, "^cycle: "), "cli discovers cmd.check, which requires cli: a cycle")
    local elsewhere = plant({ ["policy.rules"] = { path = "policy/rules.lua",
      text = 'local c = require("cmd." .. "x")\nreturn {}' } })
    assert(has(elsewhere, "policy/rules.lua:1: require with a computed name"), table.concat(elsewhere, "\n"))
  end,

  a_planted_unknown_module_or_unlayered_file_fails = function()
    local problems = plant({ ["misc.thing"] = { path = "misc/thing.lua", text = 'local x = require "nowhere"\nreturn {}' } })
    assert(has(problems, "module misc%.thing has no layer"), table.concat(problems, "\n"))
    assert(has(problems, 'require "nowhere": no such module'), table.concat(problems, "\n"))
  end,

  a_planted_lua_include_under_host_aws_fails = function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(host.mkdir(dir) and host.mkdir(dir .. "/creds"))
    local function write(p, text) local f = assert(io.open(dir .. "/" .. p, "w")) f:write(text) f:close() end
    write("call.c", '#include "aws/client.h"\n#include <string.h>\n')
    write("creds/chain.c", '#include "core/log.h"\n  #  include <lauxlib.h>\n#include "lua/state.h"\n')
    local found = lua_includes(dir)
    os.execute("rm -rf '" .. dir .. "'")
    T.eq(#found, 2, table.concat(found, "\n"))
    assert(found[1]:find("creds/chain.c:2: includes lauxlib.h", 1, true), found[1])
    assert(found[2]:find("creds/chain.c:3: includes lua/state.h", 1, true), found[2])
  end,
}
