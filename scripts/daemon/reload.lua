-- The engine's half of a hot reload (the C half and the protocol: host/lua/reload.c).
--   prepare()      in the candidate state: load and validate every policy, as `check`
--   quiesce(done)  in the running state: stop taking work, park workflows at a step
--                  boundary, then done(snapshot) with the daemon's options and documents
--   adopt(snap)    in the candidate state: become the daemon and carry the work on
--   abort()        in the running state, if adopt failed: take work again
--   report(ok, info)  the outcome, kept in M.last for `rotator status`
-- cli.lua hands these to the host (and starts the console once a state adopted).
local host = require "host"
local json = require "json"
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
  -- An unserialisable state reaches the host as nil, err: the reload is aborted and
  -- the running state takes its work back.
  daemon.quiesce(function(state) done(json.encode(state)) end)
end

function M.adopt(snapshot)
  local state, err = json.decode(snapshot)
  if type(state) ~= "table" then error("reload: the snapshot does not decode: " .. tostring(err), 0) end
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
