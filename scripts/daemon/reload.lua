-- The engine's half of a hot reload (the C half and the protocol: host/lua/reload.c).
--   prepare()      in the candidate state: load and validate every policy, as `check`
--   quiesce(done)  in the running state: stop taking work, park workflows at a step
--                  boundary, then done(handover): a table with the daemon's options,
--                  documents and claims, which the host copies into the candidate as is
--                  (host/lua/transfer.c: no JSON text in between)
--   adopt(handover) in the candidate state: become the daemon and carry the work on
--   abort()        in the running state, if adopt failed: take work again
--   report(ok, info)  the outcome, kept in M.last for `rotator status`
-- cli.lua hands these to the host (and starts the console once a state adopted).
local host = require "host"
local clock = require "clock"
local policies = require "policy.loader"
local daemon = require "daemon"
local metrics = require "engine.metrics"

local M = { last = nil }
local pending

function M.prepare()
  local files, err = policies.list(host.config.policies_dir)
  if not files then return nil, err end
  local set, errs = policies.load(files)
  if not set then return nil, table.concat(errs, "; ") end
  pending = set
  return true
end

function M.quiesce(done)
  daemon.quiesce(done)
end

function M.adopt(state)
  if type(state) ~= "table" then error("reload: no handover from the running state", 0) end
  local ok, aerr = daemon.adopt(pending, state)
  if not ok then error("reload: adopt failed: " .. tostring(aerr), 0) end
  return true
end

-- The host reports the outcome to the running state (after the swap, the new one).
function M.report(ok, info)
  metrics.inc("rotator_reloads_total", { result = ok and "ok" or "failed" })
  M.last = { ok = ok, at = clock.rfc3339(clock.now()),
    [ok and "duration_ms" or "error"] = ok and tonumber(info) or info }
end

function M.abort()
  daemon.resume()
end

return M
