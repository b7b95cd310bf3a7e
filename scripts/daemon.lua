-- The daemon's state: the active policy set and the intake. The intake itself (SQS long
-- polling) arrives with the workflow; until a queue is configured the daemon idles.
local log = require "log"
local host = require "host"

local M = { policies = nil, started = false }

function M.set_policies(set)
  M.policies = set
end

function M.start(opts)
  M.started = true
  M.opts = opts
  log.info("daemon.ready", {
    pid = tostring(host.pid and host.pid() or ""),
    policies = #M.policies.files,
    rules = #M.policies.rules,
    queue = opts.queue_url or "none",
    dry_run = tostring(opts.dry_run or false),
  })
  if not opts.queue_url then
    log.warn("intake.idle", { reason = "no queue configured (--queue-url or ROTATOR_QUEUE_URL)" })
  end
end

function M.stop()
  log.info("daemon.stopping", { inflight = host.inflight() })
  M.started = false
end

return M
