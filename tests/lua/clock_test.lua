-- Tests for require "clock".
local clock = require "clock"

local T0 = 1795575600 -- 2026-11-25T03:00:00Z

local function eq(got, want, what)
  if got ~= want then
    error(string.format("%s: got %q, want %q", what or "value", tostring(got), tostring(want)), 2)
  end
end

local function near(got, want, what)
  assert(type(got) == "number" and math.abs(got - want) < 1e-6,
         string.format("%s: got %s, want %s", what, tostring(got), tostring(want)))
end

local T = {}

T["now is wall time with sub-second precision"] = function()
  local t = clock.now()
  eq(math.type(t), "float", "float seconds")
  assert(t > T0 - 5 * 365 * 86400, "plausible epoch")
  assert(math.abs(t - os.time()) < 5, "agrees with os.time")
  local frac = false
  for _ = 1, 1000 do
    local x = clock.now()
    if x ~= math.floor(x) then frac = true break end
  end
  assert(frac, "has a fractional part")
end

T["mono never goes backwards"] = function()
  local a = clock.mono()
  local b = clock.mono()
  eq(math.type(a), "float", "float seconds")
  assert(b >= a, "monotonic")
end

T["parse_rfc3339 variants"] = function()
  eq(clock.parse_rfc3339("2026-11-25T03:00:00Z"), T0, "Z")
  eq(math.type(clock.parse_rfc3339("2026-11-25T03:00:00Z")), "integer", "whole seconds are integers")
  near(clock.parse_rfc3339("2026-11-25T03:00:00.123456Z"), T0 + 0.123456, "microseconds")
  eq(math.type(clock.parse_rfc3339("2026-11-25T03:00:00.5Z")), "float", "fraction is float")
  eq(clock.parse_rfc3339("2026-11-25T03:00:00+01:00"), T0 - 3600, "+01:00")
  eq(clock.parse_rfc3339("2026-11-25T03:00:00-05:30"), T0 + 19800, "-05:30")
  eq(clock.parse_rfc3339("2026-11-25t03:00:00z"), T0, "lower case t and z")
  eq(clock.parse_rfc3339("2026-11-25 03:00:00Z"), T0, "space separator")
  eq(clock.parse_rfc3339("2026-11-25T03:00:00.000Z"), T0, "zero fraction is whole")
end

T["parse_rfc3339 accepts the times in AWS Backup notifications"] = function()
  local samples = {
    ["2026-11-25T03:00:00Z"] = T0,
    ["2026-11-25T03:00:00.226Z"] = T0 + 0.226,
    ["2026-11-25T03:00:00.5Z"] = T0 + 0.5,
    ["2026-11-25T03:00:01Z"] = T0 + 1,
    ["2026-11-25T03:00:31.207Z"] = T0 + 31.207,
    ["2026-11-25T03:41:05.921Z"] = T0 + 2465.921,
    ["2026-11-25T03:41:07.512Z"] = T0 + 2467.512,
    ["2026-11-25T03:41:17Z"] = T0 + 2477,
    ["2026-11-25T05:00:00Z"] = T0 + 7200,
    ["2026-11-25T11:00:31.207Z"] = T0 + 28831.207,
  }
  for s, want in pairs(samples) do near(clock.parse_rfc3339(s), want, s) end
end

T["parse_rfc3339 rejects invalid input with nil, msg"] = function()
  local cases = {
    ["2026-02-30T00:00:00Z"] = "day out of range",
    ["2026-02-29T00:00:00Z"] = "day out of range",
    ["2026-11-25T24:00:00Z"] = "hour out of range",
    ["2026-11-25T03:60:00Z"] = "minute out of range",
    ["2026-13-25T03:00:00Z"] = "month out of range",
    ["2026-11-25T03:00:00"] = "missing time zone",
    ["2026-11-25T03:00:00+0100"] = "invalid time zone offset",
    ["2026-11-25"] = "expected 'T'",
    ["yesterday"] = "expected a date",
    [""] = "expected a date",
  }
  for s, why in pairs(cases) do
    local v, msg = clock.parse_rfc3339(s)
    eq(v, nil, s)
    local want = string.format('clock: cannot parse "%s" as RFC 3339: %s', s, why)
    assert(msg:sub(1, #want) == want, string.format("message %q, want prefix %q", msg, want))
  end
  local _, msg = clock.parse_rfc3339("bad\n" .. string.rep("x", 100))
  assert(msg:find('"bad\\x0axxx', 1, true), "control bytes escaped: " .. msg)
  assert(msg:find('..." as RFC 3339: expected a date', 1, true), "long input cut: " .. msg)
  assert(not pcall(clock.parse_rfc3339, nil), "nil raises")
end

T["format with Go layouts"] = function()
  eq(clock.format(T0, "-20060102-15-04-05"), "-20261125-03-00-00", "snapshot suffix")
  eq(clock.format(T0, "2006-01-02T15:04:05Z07:00"), "2026-11-25T03:00:00Z", "RFC3339")
  eq(clock.format(T0, "Mon Jan _2 15:04:05 MST 2006"), "Wed Nov 25 03:00:00 UTC 2026", "UnixDate")
  eq(clock.format(T0, "Monday January 2"), "Wednesday November 25", "long names")
  eq(clock.format(T0 + 0.25, "15:04:05.000"), "03:00:00.250", ".000")
  eq(clock.format(T0 + 0.25, "15:04:05.000000"), "03:00:00.250000", ".000000")
  eq(clock.format(T0 + 0.25, "05.999"), "00.25", ".999 trims")
  eq(clock.format(T0, "3:04PM -07:00"), "3:00AM +00:00", "kitchen and offset")
  eq(clock.format(T0, "backup-2006"), "backup-2026", "literal text kept")
  eq(clock.format(T0, string.rep("2006", 100)), string.rep("2026", 100), "long output")
  eq(clock.format(clock.parse_rfc3339("2026-11-25T04:00:00+01:00"), "15:04"), "03:00", "UTC output")
end

T["rfc3339 formatting"] = function()
  eq(clock.rfc3339(T0), "2026-11-25T03:00:00Z", "whole")
  eq(clock.rfc3339(T0 + 0.5), "2026-11-25T03:00:00.500Z", "fraction in ms")
  eq(clock.rfc3339(T0 + 0.0001), "2026-11-25T03:00:00Z", "below a millisecond")
  eq(clock.rfc3339(clock.parse_rfc3339("2026-11-25T03:41:07.512Z")), "2026-11-25T03:41:07.512Z",
     "round trip")
  eq(clock.rfc3339(0), "1970-01-01T00:00:00Z", "epoch")
  eq(clock.rfc3339(-0.5), "1969-12-31T23:59:59.500Z", "before the epoch")
end

T["bad epochs raise"] = function()
  assert(not pcall(clock.format, "x", "2006"), "string epoch")
  assert(not pcall(clock.format, 0 / 0, "2006"), "NaN")
  assert(not pcall(clock.rfc3339, math.huge), "infinity")
  assert(not pcall(clock.rfc3339, math.maxinteger), "year overflow")
  assert(not pcall(clock.format, T0), "missing layout")
end

return T
