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

-- Signal hooks belong to the running state: a reloaded state registers its own.
local function register_hooks()
  host.on_signal("HUP", function() host.reload() end)
  host.on_signal("TERM", M.stop)
end

function M.start(opts)
  register_hooks()
  require("console").start() -- the REPL/status socket (kept across reloads)
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
    rules = function() -- Reload, running state: stop taking work and hand over. In-flight workflows are not yet
-- carried over: they stop with this state and resume from their SQS message when it
-- becomes visible again (idempotently: see workflow.lua).
function M.quiesce(done)
  intake.stop()
  done({ opts = M.opts, workflows = {} })
end

-- Reload, new state: take the daemon over with the freshly validated policies.
function M.adopt(set, state)
  local ok, err = M.set_policies(set, state.opts.flags)
  if not ok then return nil, err end
  log.info("policies.loaded", { files = #set.files, rules = #M.rules })
  M.start(state.opts)
  return true
end

-- Reload failed after quiesce: take work again in this state.
function M.resume()
  if M.opts and M.opts.queue_url then M.start(M.opts) end
end

return M.rules end,
    dry_run = opts.dry_run or false,
    queue_url = opts.queue_url,
  })
end

function M.stop()
  log.info("daemon.stopping", { inflight = host.inflight() })
  M.started = false
  intake.stop()
end

-- Reload, running state: stop taking work and hand over. In-flight workflows are not yet
-- carried over: they stop with this state and resume from their SQS message when it
-- becomes visible again (idempotently: see workflow.lua).
function M.quiesce(done)
  intake.stop()
  done({ opts = M.opts, workflows = {} })
end

-- Reload, new state: take the daemon over with the freshly validated policies.
function M.adopt(set, state)
  local ok, err = M.set_policies(set, state.opts.flags)
  if not ok then return nil, err end
  log.info("policies.loaded", { files = #set.files, rules = #M.rules })
  M.start(state.opts)
  return true
end

-- Reload failed after quiesce: take work again in this state.
function M.resume()
  if M.opts and M.opts.queue_url then M.start(M.opts) end
end

return M
