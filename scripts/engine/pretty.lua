-- Readable rendering of Lua values for the REPL and `rotator eval`: tables with sorted
-- keys and indentation, strings quoted, cycles marked.
local M = {}

local function is_ident(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil
end

local function key_order(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta < tb end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local function render(v, indent, seen, out)
  local t = type(v)
  if t == "string" then out[#out + 1] = ("%q"):format(v):gsub("\\\n", "\\n") return end
  if t ~= "table" or getmetatable(v) and getmetatable(v).__tostring then
    out[#out + 1] = tostring(v) return
  end
  if seen[v] then out[#out + 1] = "<cycle>" return end
  seen[v] = true
  local keys, n = {}, #v
  for k in pairs(v) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, key_order)
  if n == 0 and #keys == 0 then out[#out + 1] = "{}" seen[v] = nil return end
  local pad = indent .. "  "
  out[#out + 1] = "{\n"
  for i = 1, n do
    out[#out + 1] = pad
    render(v[i], pad, seen, out)
    out[#out + 1] = ",\n"
  end
  for _, k in ipairs(keys) do
    out[#out + 1] = pad
    if is_ident(k) then out[#out + 1] = k else
      out[#out + 1] = "["; render(k, pad, seen, out); out[#out + 1] = "]"
    end
    out[#out + 1] = " = "
    render(v[k], pad, seen, out)
    out[#out + 1] = ",\n"
  end
  out[#out + 1] = indent .. "}"
  seen[v] = nil
end

function M.format(v)
  local out = {}
  render(v, "", {}, out)
  return table.concat(out)
end

-- All values of a call's results, tab-separated like lua.c prints them.
function M.values(...)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = M.format((select(i, ...))) end
  return table.concat(parts, "\t")
end

return M
