-- Schedule expressions in AWS EventBridge's syntax, and their firing times.
--   rate(1 minute) / rate(5 minutes) / rate(2 hours) / rate(1 day)
--     Firings are the multiples of the period since the Unix epoch (UTC), so they do not
--     move with the daemon's start time and two daemons agree on them.
--   cron(minutes hours day-of-month month day-of-week year)
--     minutes 0-59, hours 0-23, day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week 1-7
--     or SUN-SAT (1 = SUN), year 1970-2199. Wildcards: `,` lists, `-` ranges, `*` all,
--     `/` steps (`0/15`, `*/5`, `10-50/10`), `?` in exactly one of day-of-month and
--     day-of-week; day-of-month `L` (last day), `nW` (the weekday nearest day n, within the
--     month), `LW` (last weekday); day-of-week `L` (Saturday), `nL` (last day n of the
--     month), `n#k` (k-th day n of the month).
-- Times are local to the zone (UTC by default; a tz database name such as Europe/Paris,
-- converted by the C library through clock.civil/clock.from_civil). Across daylight
-- saving time, as EventBridge Scheduler does: a local time that does not exist (spring
-- forward) is skipped, one that exists twice (fall back) fires once, at its first instant.
--   M.parse(text, zone) -> sched | nil, msg   (msg names the field at fault)
--   M.next(sched, after) -> first firing epoch strictly after `after`, or nil (none before 2200)
--   M.latest(sched, after, now) -> the last firing in (after, now], or nil
local clock = require "clock"

local M = {}

local MONTHS = { JAN = 1, FEB = 2, MAR = 3, APR = 4, MAY = 5, JUN = 6, JUL = 7, AUG = 8, SEP = 9, OCT = 10,
  NOV = 11, DEC = 12 }
local DAYS = { SUN = 1, MON = 2, TUE = 3, WED = 4, THU = 5, FRI = 6, SAT = 7 }

local FIELDS = {
  { name = "minutes", lo = 0, hi = 59 },
  { name = "hours", lo = 0, hi = 23 },
  { name = "day-of-month", lo = 1, hi = 31 },
  { name = "month", lo = 1, hi = 12, names = MONTHS, hint = "1-12 or JAN-DEC" },
  { name = "day-of-week", lo = 1, hi = 7, names = DAYS, hint = "1-7 or SUN-SAT" },
  { name = "year", lo = 1970, hi = 2199 },
}

local RATE_UNITS = { minute = 60, minutes = 60, hour = 3600, hours = 3600, day = 86400, days = 86400 }

---------------------------------------------------------------- civil dates (UTC arithmetic)
local function days_in_month(y, m)
  if m == 2 then return ((y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0) and 29 or 28 end
  return ({ 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 })[m]
end

-- 1 = Sunday (Zeller-free: days since 1970-01-01, a Thursday).
local function weekday(y, m, d)
  local yy = m <= 2 and y - 1 or y
  local era = (yy >= 0 and yy or yy - 399) // 400
  local yoe = yy - era * 400
  local mp = (m + 9) % 12
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  return (days + 4) % 7 + 1
end
M.weekday = weekday

---------------------------------------------------------------- parsing
local function ferr(f, item, why)
  return ("%s field '%s': %s"):format(f.name, item, why)
end

local function value(f, s, item)
  local n = tonumber(s)
  if s:match("^%d+$") and n then
    if n < f.lo or n > f.hi then return nil, ferr(f, item, ("%d is out of range (%d-%d)"):format(n, f.lo, f.hi)) end
    return n
  end
  if f.names and f.names[s:upper()] then return f.names[s:upper()] end
  return nil, ferr(f, item, ("'%s' is not a value (%s)"):format(s, f.hint or (f.lo .. "-" .. f.hi)))
end

-- A plain list field (`,`, `-`, `*`, `/`) -> set { [v] = true }.
local function plain_set(f, text)
  local set = {}
  for item in (text .. ","):gmatch("([^,]*),") do
    if item == "" then return nil, ferr(f, text, "empty list item") end
    local range, step = item:match("^([^/]+)/(.+)$")
    range = range or item
    local lo, hi
    if range == "*" then lo, hi = f.lo, f.hi
    else
      local a, b = range:match("^([^-]+)-([^-]+)$")
      local err
      if a then
        lo, err = value(f, a, item)
        if not lo then return nil, err end
        hi, err = value(f, b, item)
        if not hi then return nil, err end
        if hi < lo then return nil, ferr(f, item, "range runs backwards") end
      else
        lo, err = value(f, range, item)
        if not lo then return nil, err end
        hi = step and f.hi or lo
      end
    end
    local by = 1
    if step then
      by = step:match("^%d+$") and tonumber(step)
      if not by or by < 1 then return nil, ferr(f, item, "step must be a positive integer") end
    end
    for v = lo, hi, by do set[v] = true end
  end
  return set
end

local function parse_dom(f, text)
  if text == "?" then return { any = true } end
  if text == "L" then return { last = true } end
  if text == "LW" then return { last_weekday = true } end
  local w = text:match("^(%d+)W$")
  if w then
    local n, err = value(f, w, text)
    if not n then return nil, err end
    return { nearest = n }
  end
  if text:find("[LW#]") then return nil, ferr(f, text, "L, LW and nW stand alone (not in a list)") end
  local set, err = plain_set(f, text)
  if not set then return nil, err end
  return { set = set }
end

local function parse_dow(f, text)
  if text == "?" then return { any = true } end
  if text == "L" then return { set = { [7] = true } } end
  local d = text:match("^(%w+)L$")
  if d then
    local n, err = value(f, d, text)
    if not n then return nil, err end
    return { last_of = n }
  end
  local a, k = text:match("^(%w+)#(%d+)$")
  if a then
    local n, err = value(f, a, text)
    if not n then return nil, err end
    k = tonumber(k)
    if k < 1 or k > 5 then return nil, ferr(f, text, "the occurrence after # must be 1-5") end
    return { nth = n, k = k }
  end
  if text:find("[L#]") then return nil, ferr(f, text, "nL and n#k stand alone (not in a list)") end
  local set, err = plain_set(f, text)
  if not set then return nil, err end
  return { set = set }
end

local function sorted(set)
  local out = {}
  for v in pairs(set) do out[#out + 1] = v end
  table.sort(out)
  return out
end

local function parse_rate(text, body)
  local n, unit = body:match("^%s*(%d+)%s+(%a+)%s*$")
  if not n then return nil, ("schedule %q: rate needs a value and a unit, e.g. rate(5 minutes)"):format(text) end
  n = tonumber(n)
  if n < 1 then return nil, ("schedule %q: rate value must be a positive integer"):format(text) end
  if not RATE_UNITS[unit] then
    return nil, ("schedule %q: rate unit '%s' is not minute(s), hour(s) or day(s)"):format(text, unit)
  end
  local plural = unit:sub(-1) == "s"
  if (n == 1) == plural then
    return nil, ("schedule %q: write rate(1 %s) for one and rate(%d %ss) for more (AWS's syntax)")
      :format(text, unit:gsub("s$", ""), n == 1 and 2 or n, unit:gsub("s$", ""))
  end
  return { kind = "rate", every = n * RATE_UNITS[unit], text = text, zone = "UTC" }
end

function M.parse(text, zone)
  if type(text) ~= "string" then return nil, "schedule must be a string such as \"cron(0 3 ? * SUN *)\" or \"rate(1 hour)\"" end
  zone = zone or "UTC"
  local ok, zerr = clock.zone_ok(zone)
  if not ok then return nil, "schedule_tz: " .. zerr end
  local body = text:match("^rate%((.*)%)$")
  if body then return parse_rate(text, body) end
  body = text:match("^cron%((.*)%)$")
  if not body then
    return nil, ("schedule %q: write cron(minutes hours day-of-month month day-of-week year) or rate(value unit)"):format(text)
  end
  local parts = {}
  for p in body:gmatch("%S+") do parts[#parts + 1] = p end
  if #parts ~= 6 then
    return nil, ("schedule %q: cron takes 6 fields (minutes hours day-of-month month day-of-week year), not %d")
      :format(text, #parts)
  end
  local s = { kind = "cron", text = text, zone = zone }
  local err
  for i, key in ipairs({ "minutes", "hours" }) do
    local set
    set, err = plain_set(FIELDS[i], parts[i])
    if not set then return nil, ("schedule %q: %s"):format(text, err) end
    s[key] = sorted(set)
  end
  s.dom, err = parse_dom(FIELDS[3], parts[3])
  if not s.dom then return nil, ("schedule %q: %s"):format(text, err) end
  s.month, err = plain_set(FIELDS[4], parts[4])
  if not s.month then return nil, ("schedule %q: %s"):format(text, err) end
  s.dow, err = parse_dow(FIELDS[5], parts[5])
  if not s.dow then return nil, ("schedule %q: %s"):format(text, err) end
  s.year, err = plain_set(FIELDS[6], parts[6])
  if not s.year then return nil, ("schedule %q: %s"):format(text, err) end
  if s.dom.any == s.dow.any then
    return nil, ("schedule %q: day-of-month field '%s' and day-of-week field '%s': exactly one of them must be '?'")
      :format(text, parts[3], parts[5])
  end
  s.years = sorted(s.year)
  return s
end

---------------------------------------------------------------- matching a day
local function is_weekday(y, m, d)
  local w = weekday(y, m, d)
  return w >= 2 and w <= 6
end

local function nearest_weekday(y, m, n)
  local last = days_in_month(y, m)
  if n > last then n = last end
  local w = weekday(y, m, n)
  if w == 7 then return n == 1 and 3 or n - 1 end       -- Saturday: Friday, or Monday the 3rd
  if w == 1 then return n == last and n - 2 or n + 1 end -- Sunday: Monday, or Friday before
  return n
end

local function day_matches(s, y, m, d)
  local dom, dow = s.dom, s.dow
  if not dom.any then
    if dom.set then return dom.set[d] == true end
    local last = days_in_month(y, m)
    if dom.last then return d == last end
    if dom.last_weekday then
      local l = last
      while not is_weekday(y, m, l) do l = l - 1 end
      return d == l
    end
    return d == nearest_weekday(y, m, dom.nearest)
  end
  local w = weekday(y, m, d)
  if dow.set then return dow.set[w] == true end
  if dow.last_of then return w == dow.last_of and d + 7 > days_in_month(y, m) end
  return w == dow.nth and (d - 1) // 7 + 1 == dow.k
end

---------------------------------------------------------------- firing times
local function rate_next(s, after)
  return (math.floor(after) // s.every + 1) * s.every
end

local function cron_next(s, after)
  after = math.floor(after)
  local start = clock.civil(after, s.zone)
  -- Candidates earlier than this local minute (less DST's slack) cannot be after `after`.
  local floor_key = ((start.year * 100 + start.month) * 100 + start.day) * 1440 + start.hour * 60 + start.min - 180
  for _, y in ipairs(s.years) do
    if y >= start.year then
      for m = (y == start.year) and start.month or 1, 12 do
        if s.month[m] then
          for d = (y == start.year and m == start.month) and math.max(1, start.day - 1) or 1, days_in_month(y, m) do
            if day_matches(s, y, m, d) then
              local daykey = ((y * 100 + m) * 100 + d) * 1440
              for _, h in ipairs(s.hours) do
                for _, mi in ipairs(s.minutes) do
                  if daykey + h * 60 + mi >= floor_key then
                    local at = clock.from_civil(y, m, d, h, mi, s.zone)[1]
                    if at and at > after then return at end
                  end
                end
              end
            end
          end
        end
      end
    end
  end
  return nil
end

function M.next(s, after)
  if s.kind == "rate" then return rate_next(s, after) end
  return cron_next(s, after)
end

-- The last firing in (after, now], or nil: what a daemon that was down owes (once).
function M.latest(s, after, now)
  if s.kind == "rate" then
    local last = math.floor(now) // s.every * s.every
    if last > after then return last end
    return nil
  end
  -- A cron schedule: step through its firings; far behind, start a year back from now
  -- (a missed firing runs once, the latest one, so the older ones do not matter).
  local from = math.max(math.floor(after), math.floor(now) - 366 * 86400)
  local found, t = nil, M.next(s, from)
  while t and t <= now do
    found = t
    t = M.next(s, t)
  end
  return found
end

return M
