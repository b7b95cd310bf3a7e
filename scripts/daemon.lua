-- The daemon's state: the active policy set and the intake. With a queue (--queue-url or
-- ROTATOR_QUEUE_URL) the intake long-polls it; without one the daemon idles. A reload
-- swaps the rule list the intake reads for each new record; running workflows keep the
-- rule they started with.
local log = require "log"
local host = require "host"
local rules = require "rules"
local services = require "services"
local intake = require "intake"

local M = { policies = nil, rules = {}, started = false }

-- Returns true, or nil and a message when the default rule (env/flags) is invalid.
function M.set_policies(set, flags)
  local list, err = rules.effective(set, flags or (M.opts and M.opts.flags))
  if not list then return nil, err end
  M.policies, M.rules = set, list
  return true
end

function M.start(opts)
  M.started = true
  M.opts = opts
  log.info("daemon.ready", {
    pid = tostring(host.pid and host.pid() or ""),
    policies = #M.policies.files,
    rules = #M.rules,
    default_rule = tostring(#M.policies.rules == 0 and #M.rules > 0),
    queue = opts.queue_url or "none",
    dry_run = tostring(opts.dry_run or false),
  })
  if #M.rules == 0 then
    log.warn("daemon.no_rules", { reason = "no policy rules and no SOURCE_PATTERN: every notification is skipped" })
  end
  if not opts.queue_url then
    log.warn("intake.idle", { reason = "no queue configured (--queue-url or ROTATOR_QUEUE_URL)" })
    return
  end
  intake.start({
    svc = services.new({ dry_run = opts.dry_run }),
    rules = function() return M.rules end,
    dry_run = opts.dry_run or false,
    queue_url = opts.queue_url,
  })
end

function M.stop()
  log.info("daemon.stopping", { inflight = host.inflight() })
  M.started = false
  intake.stop()
end

return M
