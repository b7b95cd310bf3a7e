-- Command-line flags for engine commands. spec maps a flag to "bool" or "string";
-- `--flag=value` and `--flag value` both work. Returns opts, positional or nil, message.
local M = {}

function M.parse(argv, spec, cmd)
  local opts, pos, i = {}, {}, 1
  while i <= #argv do
    local a = argv[i]
    local flag, inline = a:match("^(%-%-[%w-]+)=(.*)$")
    flag = flag or a
    local kind = spec[flag]
    if a == "--" then
      table.move(argv, i + 1, #argv, #pos + 1, pos)
      break
    elseif kind == "bool" and not inline then
      opts[flag:sub(3):gsub("-", "_")] = true
    elseif kind == "string" then
      local v = inline
      if not v then i = i + 1; v = argv[i] end
      if not v then return nil, ("%s needs a value (see rotator %s --help)"):format(flag, cmd) end
      opts[flag:sub(3):gsub("-", "_")] = v
    elseif a:sub(1, 1) == "-" and #a > 1 then
      return nil, ("unknown option '%s' (see rotator %s --help)"):format(a, cmd)
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return opts, pos
end

-- A duration flag's value: "90", "90s", "5m", "2h" or "1d" -> seconds, or nil, message.
local UNITS = { [""] = 1, s = 1, m = 60, h = 3600, d = 86400 }
function M.duration(v, flag)
  local n, unit = tostring(v):match("^(%d+%.?%d*)([smhd]?)$")
  if not n then return nil, ("%s %q is not a duration (e.g. 30s, 5m, 1h)"):format(flag, tostring(v)) end
  return tonumber(n) * UNITS[unit]
end

return M
