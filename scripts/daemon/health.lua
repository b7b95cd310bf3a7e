-- The daemon's own health, apart from any one workflow: named problems that the parts of
-- the daemon set and clear (receive failing, credentials failing, journal writes
-- failing, ...). The worst severity present is the daemon's health:
--   ok        no problem
--   degraded  it works, but something is wrong (e.g. a receive failed once or twice)
--   failing   it cannot do its job (every receive fails, the journal cannot be written)
--   M.set(name, severity, error [, hint])   a problem is present (again); `since` is kept
--   M.clear(name)                            it went away (logged with how long it lasted)
--   M.state() -> "ok"|"degraded"|"failing";  M.problems() -> list, worst first
--   M.snapshot() / M.adopt(t)                carried across a hot reload
-- `rotator status` shows state and problems (health, last_errors), `status --check`
-- exits 0/1/2 on them, /readyz refuses while one is failing, and rotator_health*
-- metrics carry them.
--
-- Alerts (M.configure): a failing health that lasts longer than `alert_after` seconds
-- publishes ONE alert (event rotator.daemon.failing) to the alert topics; once health
-- is back to ok or degraded, ONE more (rotator.daemon.recovered). A reload keeps the
-- episode going (the alert is not sent twice).
local log = require "log"
local clock = require "clock"
local timer = require "timer"
local task = require "engine.task"
local alerts = require "after.alerts"

local M = {
  problems_by_name = {},
  alert_after = 300,
  topics = {},
  svc = nil,
  episode = nil,   -- { since = wall time health became failing, alerted = bool }
}

local RANK = { ok = 0, degraded = 1, failing = 2 }
M.RANK = RANK
local alert_timer

local function worst()
  local w = "ok"
  for _, p in pairs(M.problems_by_name) do
    if RANK[p.severity] > RANK[w] then w = p.severity end
  end
  return w
end

function M.state() return worst() end

function M.problems()
  local out = {}
  for name, p in pairs(M.problems_by_name) do
    out[#out + 1] = { problem = name, severity = p.severity, error = p.error, hint = p.hint,
      since = clock.rfc3339(p.since), seconds = math.floor(clock.now() - p.since), count = p.count }
  end
  table.sort(out, function(a, b)
    if a.severity ~= b.severity then return RANK[a.severity] > RANK[b.severity] end
    return a.problem < b.problem
  end)
  return out
end

---------------------------------------------------------------- alerts
local function publish(event, summary)
  if #M.topics == 0 or not M.svc then
    log.warn("health.alert_unsent", { event = event, reason = "no alert topic (--alert-topic, or alert_topic_arn in a rule)" })
    return
  end
  local body = { event = event, health = worst(), problems = M.problems(), summary = summary,
    since = M.episode and clock.rfc3339(M.episode.since) or nil }
  local svc = M.svc
  for _, topic in ipairs(M.topics) do
    task.spawn(function() alerts.daemon_alert(svc, topic, body) end) -- a publish waits: in its own task
  end
end

local function summary()
  local parts = {}
  for _, p in ipairs(M.problems()) do parts[#parts + 1] = p.problem .. ": " .. tostring(p.error) end
  return table.concat(parts, "; ")
end

local function fire()
  alert_timer = nil
  local e = M.episode
  if not e or e.alerted or worst() ~= "failing" then return end
  e.alerted = true
  publish("rotator.daemon.failing", summary())
end

local function arm_alert()
  if alert_timer then alert_timer:cancel() alert_timer = nil end
  local e = M.episode
  if not e or e.alerted or not M.svc then return end
  alert_timer = timer.after(math.max(0, e.since + M.alert_after - clock.now()), fire)
end

-- The episode follows the health: it starts when health becomes failing and ends (with
-- the "recovered" alert if the failing one went out) when it is not failing any more.
local function track()
  local failing = worst() == "failing"
  if failing and not M.episode then
    M.episode = { since = clock.now(), alerted = false }
    arm_alert()
  elseif not failing and M.episode then
    local e = M.episode
    M.episode = nil
    if alert_timer then alert_timer:cancel() alert_timer = nil end
    log.info("health.recovered", { health = worst(), failing_seconds = math.floor(clock.now() - e.since) })
    if e.alerted then publish("rotator.daemon.recovered", ("failing for %d s, now %s"):format(
      math.floor(clock.now() - e.since), worst())) end
  end
end

-- opts: { svc = services handle, topics = {arn...}, alert_after = seconds }
function M.configure(opts)
  M.svc = opts.svc
  M.topics = opts.topics or {}
  M.alert_after = opts.alert_after or M.alert_after
  arm_alert()
end

---------------------------------------------------------------- problems
function M.set(name, severity, err, hint)
  assert(RANK[severity] and severity ~= "ok", "health.set: severity is degraded or failing")
  local p = M.problems_by_name[name]
  local before = p and p.severity
  if not p then
    p = { since = clock.now(), count = 0 }
    M.problems_by_name[name] = p
  end
  p.severity, p.error, p.hint, p.count = severity, tostring(err), hint, p.count + 1
  if before ~= severity then
    log[severity == "failing" and "error" or "warn"]("health.problem", { problem = name, severity = severity,
      error = p.error, since = clock.rfc3339(p.since), hint = hint })
  end
  track()
end

function M.clear(name)
  local p = M.problems_by_name[name]
  if not p then return end
  M.problems_by_name[name] = nil
  log.info("health.cleared", { problem = name, seconds = math.floor(clock.now() - p.since), count = p.count })
  track()
end

function M.has(name) return M.problems_by_name[name] ~= nil end

---------------------------------------------------------------- hot reload
function M.snapshot()
  if alert_timer then alert_timer:cancel() alert_timer = nil end
  return { problems = M.problems_by_name, episode = M.episode }
end

function M.adopt(t)
  if type(t) ~= "table" then return end
  M.problems_by_name = type(t.problems) == "table" and t.problems or {}
  M.episode = type(t.episode) == "table" and t.episode or nil
end

return M
