-- Tests for scripts/schedule/cron.lua: AWS EventBridge cron/rate expressions and their
-- firing times, in UTC and in a named zone across daylight saving time.
local cron = require "schedule.cron"
local clock = require "clock"
local T = require "engine.testing"

local function at(s) return assert(clock.parse_rfc3339(s)) end
local function iso(e) return e and clock.rfc3339(e) or "none" end

local function next_of(expr, after, zone)
  local s = assert(cron.parse(expr, zone))
  return iso(cron.next(s, at(after)))
end

local function refused(expr, pattern, zone)
  local s, err = cron.parse(expr, zone)
  assert(s == nil, expr .. " was accepted")
  assert(tostring(err):find(pattern, 1, true), ("%s: message %q lacks %q"):format(expr, tostring(err), pattern))
end

local tests = {}

tests["rate firings are multiples of the period since the epoch"] = function()
  T.eq(next_of("rate(1 minute)", "2026-11-25T03:00:05Z"), "2026-11-25T03:01:00Z")
  T.eq(next_of("rate(1 minute)", "2026-11-25T03:01:00Z"), "2026-11-25T03:02:00Z", "strictly after")
  T.eq(next_of("rate(5 minutes)", "2026-11-25T03:01:00Z"), "2026-11-25T03:05:00Z")
  T.eq(next_of("rate(1 hour)", "2026-11-25T03:01:00Z"), "2026-11-25T04:00:00Z")
  T.eq(next_of("rate(2 days)", "2026-11-25T03:01:00Z"), "2026-11-27T00:00:00Z", "day 20784 since the epoch")
end

tests["cron weekly in UTC"] = function()
  -- 2026-11-25 is a Wednesday
  T.eq(next_of("cron(0 3 ? * SUN *)", "2026-11-25T03:00:00Z"), "2026-11-29T03:00:00Z")
  T.eq(next_of("cron(0 3 ? * 1 *)", "2026-11-29T03:00:00Z"), "2026-12-06T03:00:00Z", "1 = SUN, strictly after")
  T.eq(next_of("cron(0 3 ? * SUN *)", "2026-11-29T02:59:59Z"), "2026-11-29T03:00:00Z")
end

tests["lists, ranges, steps and names"] = function()
  T.eq(next_of("cron(0/15 9-17 ? JAN-MAR MON-FRI 2027)", "2026-12-31T23:00:00Z"), "2027-01-01T09:00:00Z")
  T.eq(next_of("cron(0/15 9-17 ? JAN-MAR MON-FRI 2027)", "2027-01-01T17:45:00Z"), "2027-01-04T09:00:00Z",
    "Friday evening -> Monday morning")
  T.eq(next_of("cron(10-50/20 * * * ? *)", "2027-01-01T00:31:00Z"), "2027-01-01T00:50:00Z")
  T.eq(next_of("cron(*/20 4,6 1,15 * ? *)", "2027-01-01T04:41:00Z"), "2027-01-01T06:00:00Z")
  T.eq(next_of("cron(0 0 1 jan ? 2027-2028)", "2027-01-01T00:00:00Z"), "2028-01-01T00:00:00Z", "lower-case names")
  T.eq(next_of("cron(0 0 1 JAN ? 2027)", "2027-01-01T00:00:00Z"), "none", "no firing left")
end

tests["L, W and # day wildcards"] = function()
  T.eq(next_of("cron(0 12 L * ? *)", "2027-02-01T00:00:00Z"), "2027-02-28T12:00:00Z")
  T.eq(next_of("cron(0 12 L 2 ? *)", "2027-03-01T00:00:00Z"), "2028-02-29T12:00:00Z", "leap year")
  -- 2027-05-01 is a Saturday: the nearest weekday within May is Monday the 3rd
  T.eq(next_of("cron(0 0 1W * ? *)", "2027-04-20T00:00:00Z"), "2027-05-03T00:00:00Z")
  -- 2027-08-15 is a Sunday -> Monday 16th
  T.eq(next_of("cron(0 0 15W * ? *)", "2027-08-01T00:00:00Z"), "2027-08-16T00:00:00Z")
  -- 2027-01-31 is a Sunday: nearest weekday inside January is Friday the 29th
  T.eq(next_of("cron(0 0 31W 1 ? *)", "2026-12-01T00:00:00Z"), "2027-01-29T00:00:00Z")
  T.eq(next_of("cron(0 0 LW 1 ? *)", "2026-12-01T00:00:00Z"), "2027-01-29T00:00:00Z", "last weekday")
  -- January 2027 starts on a Friday: Tuesdays 5, 12, ...; Fridays ..., 22, 29
  T.eq(next_of("cron(0 9 ? 1 3#2 *)", "2026-12-01T00:00:00Z"), "2027-01-12T09:00:00Z", "second Tuesday")

  T.eq(next_of("cron(0 9 ? 1 6L *)", "2026-12-01T00:00:00Z"), "2027-01-29T09:00:00Z", "last Friday")
  T.eq(next_of("cron(0 9 ? 1 L *)", "2026-12-31T00:00:00Z"), "2027-01-02T09:00:00Z", "L alone is Saturday")
end

tests["a fifth weekday only in months that have one"] = function()
  -- Tuesdays in January: 2027 and 2028 have four; 2029 has a fifth (the 30th)
  T.eq(next_of("cron(0 9 ? 1 TUE#5 *)", "2026-12-01T00:00:00Z"), "2029-01-30T09:00:00Z")
end

tests["a named zone: local time, and both DST transitions (Europe/Paris)"] = function()
  T.eq(next_of("cron(0 3 ? * SUN *)", "2026-11-25T00:00:00Z", "Europe/Paris"), "2026-11-29T02:00:00Z", "CET = UTC+1")
  T.eq(next_of("cron(0 3 ? * SUN *)", "2027-06-01T00:00:00Z", "Europe/Paris"), "2027-06-06T01:00:00Z", "CEST = UTC+2")
  -- 2027-03-28: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day: skipped
  T.eq(next_of("cron(30 2 * * ? *)", "2027-03-27T12:00:00Z", "Europe/Paris"), "2027-03-29T00:30:00Z")
  T.eq(next_of("cron(30 3 * * ? *)", "2027-03-27T12:00:00Z", "Europe/Paris"), "2027-03-28T01:30:00Z",
    "03:30 exists (CEST)")
  -- 2027-10-31: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice: fires once, the first
  T.eq(next_of("cron(30 2 * * ? *)", "2027-10-30T12:00:00Z", "Europe/Paris"), "2027-10-31T00:30:00Z")
  T.eq(next_of("cron(30 2 * * ? *)", "2027-10-31T00:30:00Z", "Europe/Paris"), "2027-11-01T01:30:00Z",
    "not again at 01:30Z")
  -- an hourly schedule through the fall-back: 02:00 and 02:30 local once each
  local s = assert(cron.parse("cron(0/30 * * * ? *)", "Europe/Paris"))
  local got, t = {}, at("2027-10-30T23:45:00Z")
  for _ = 1, 5 do t = cron.next(s, t) got[#got + 1] = iso(t) end
  T.eq(got, { "2027-10-31T00:00:00Z", "2027-10-31T00:30:00Z", "2027-10-31T02:00:00Z", "2027-10-31T02:30:00Z",
    "2027-10-31T03:00:00Z" }, "the repeated local hour is not fired twice")
  -- rate ignores the zone (a period, not a wall time)
  T.eq(next_of("rate(1 hour)", "2027-03-28T00:10:00Z", "Europe/Paris"), "2027-03-28T01:00:00Z")
end

tests["clock.civil / from_civil through the C library"] = function()
  local c = clock.civil(at("2027-07-01T10:00:00Z"), "Europe/Paris")
  T.eq({ c.year, c.month, c.day, c.hour, c.min, c.offset, c.wday }, { 2027, 7, 1, 12, 0, 7200, 5 })
  T.eq(#clock.from_civil(2027, 3, 28, 2, 30, "Europe/Paris"), 0, "spring-forward gap")
  T.eq(clock.from_civil(2027, 10, 31, 2, 30, "Europe/Paris"), { at("2027-10-31T00:30:00Z"), at("2027-10-31T01:30:00Z") },
    "fall-back: both instants, earliest first")
  T.eq(clock.from_civil(2027, 1, 1, 0, 0, "UTC"), { at("2027-01-01T00:00:00Z") })
  -- the process's own TZ and local time are put back after a conversion elsewhere
  local tz, local_h = os.getenv("TZ"), os.date("%H", 0)
  clock.civil(0, "Asia/Tokyo")
  T.eq(os.getenv("TZ"), tz, "TZ as it was")
  T.eq(os.date("%H", 0), local_h, "local time as it was")
  local ok, err = clock.zone_ok("Mars/Olympus")
  T.eq(ok, nil)
  assert(err:find("no such zone", 1, true), err)
  T.eq(clock.zone_ok("../../etc/passwd"), nil, "no path escapes")
end

tests["latest: a daemon that was down owes one firing, the last"] = function()
  local s = assert(cron.parse("rate(1 minute)"))
  T.eq(iso(cron.latest(s, at("2027-01-01T00:00:00Z"), at("2027-01-01T00:03:30Z"))), "2027-01-01T00:03:00Z")
  T.eq(cron.latest(s, at("2027-01-01T00:03:00Z"), at("2027-01-01T00:03:30Z")), nil, "nothing missed")
  local w = assert(cron.parse("cron(0 3 ? * SUN *)"))
  T.eq(iso(cron.latest(w, at("2026-11-01T03:00:00Z"), at("2026-11-25T00:00:00Z"))), "2026-11-22T03:00:00Z")
  T.eq(cron.latest(w, at("2026-11-22T03:00:00Z"), at("2026-11-25T00:00:00Z")), nil)
end

tests["rejections name the field at fault"] = function()
  refused("cron(61 * * * ? *)", "minutes field '61': 61 is out of range (0-59)")
  refused("cron(0 24 * * ? *)", "hours field '24'")
  refused("cron(0 3 32 * ? *)", "day-of-month field '32'")
  refused("cron(0 3 ? FOO * *)", "month field 'FOO': 'FOO' is not a value (1-12 or JAN-DEC)")
  refused("cron(0 3 ? * FUNDAY *)", "day-of-week field 'FUNDAY'")
  refused("cron(0 3 ? * 2#6 *)", "day-of-week field '2#6': the occurrence after # must be 1-5")
  refused("cron(0 3 ? * 1,2L *)", "day-of-week field '1,2L'")
  refused("cron(0 3 1,LW * ? *)", "day-of-month field '1,LW'")
  refused("cron(0 3 ? * SUN 1969)", "year field '1969'")
  refused("cron(0/0 3 ? * SUN *)", "minutes field '0/0': step must be a positive integer")
  refused("cron(0 5-3 ? * SUN *)", "hours field '5-3': range runs backwards")
  refused("cron(0 3 * * * *)", "exactly one of them must be '?'")
  refused("cron(0 3 ? * ? *)", "exactly one of them must be '?'")
  refused("cron(0 3 ? * SUN)", "cron takes 6 fields")
  refused("rate(1 minutes)", "write rate(1 minute) for one")
  refused("rate(5 minute)", "rate(5 minutes)")
  refused("rate(0 minutes)", "positive integer")
  refused("rate(2 weeks)", "rate unit 'weeks'")
  refused("every day", "write cron(")
  refused("cron(0 3 ? * SUN *)", "schedule_tz: time zone \"Mars/Olympus\": no such zone", "Mars/Olympus")
end

return tests
