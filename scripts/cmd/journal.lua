-- rotator journal [list|show ID|unfinished] [--json]: read the workflow journal without
-- the daemon (read-only; works beside a running daemon too, as a WAL reader).
-- rotator journal check [--quick]: SQLite's integrity_check (quick_check) of the file.
-- rotator journal quarantine: move a damaged journal aside (the daemon stopped) so the
-- next start begins a fresh one.
local args = require "engine.args"
local clock = require "clock"
local json = require "json"
local host = require "host"
local store = require "daemon.store"

local usage = [[
usage: rotator journal [list|unfinished] [--limit N] [--json]
       rotator journal show ID [--json]
       rotator journal check [--quick] [--json]
       rotator journal quarantine

Reads the workflow journal (STATE_DIR/journal.db) read-only; the daemon need not run,
and a running one is not disturbed.

  list         workflows, most recently updated first (default; --limit N)
  unfinished   workflows a restarted daemon would resume
  show ID      one workflow (ID = its backup job id): every recorded step, then its
               latest document
  check        SQLite's PRAGMA integrity_check of the file (--quick: quick_check, which
               skips index contents); prints "ok" and exits 0, or lists the damage and
               exits 1. Safe beside a running daemon.
  quarantine   for a damaged journal: moves journal.db and its -wal/-shm files aside to
               journal-quarantined-YYYYMMDDTHHMMSSZ.db (and -wal/-shm) in the state
               directory. Refuses while a daemon holds the state directory (stop it
               first). The next start creates a fresh journal: SQS messages not yet
               deleted are received again, and a restore whose table already exists is
               recognised and carried on, so the work re-derives itself; only history of
               finished workflows stays behind, in the quarantined file.

The state directory is --state-dir or ROTATOR_STATE_DIR, else /var/lib/rotator for
root, else $XDG_STATE_HOME/rotator, else ~/.local/state/rotator. The file is plain
SQLite: `sqlite3 -readonly STATE_DIR/journal.db 'SELECT * FROM workflows'` works too.

Examples:
  rotator journal
  rotator --state-dir /var/lib/rotator journal unfinished
  rotator journal show 4f6a7b0e-1c2d-4e5f-8a9b-0c1d2e3f4a5b --json
  rotator --state-dir /var/lib/rotator journal check
  systemctl stop rotator && rotator --state-dir /var/lib/rotator journal quarantine
]]

local SPEC = { ["--json"] = "bool", ["--limit"] = "string", ["--quick"] = "bool" }

local function when(t)
  if not t then return "-" end
  return clock.rfc3339(math.floor(t))
end

local function summary(w)
  return {
    id = w.id, state = w.state, source = w.source, backup_job = w.backup_job,
    started = when(w.started), updated = when(w.updated), finished = w.finished,
    transitions = w.transitions,
  }
end

local function print_json(v)
  local text, err = json.encode(v)
  if not text then error("journal: cannot encode the output: " .. err) end
  io.stdout:write(text, "\n")
end

local function print_table(rows)
  if #rows == 0 then io.stdout:write("(no workflows)\n") return end
  local fmt = "%-38s %-22s %-28s %-20s %s\n"
  io.stdout:write(fmt:format("ID", "STATE", "SOURCE", "UPDATED", "STEPS"))
  for _, w in ipairs(rows) do
    io.stdout:write(fmt:format(w.id, w.state, w.source or "-", when(w.updated), w.transitions))
  end
end

local function list(s, opts, unfinished)
  local rows, err = s:list { unfinished = unfinished, limit = opts.limit }
  if not rows then io.stderr:write("rotator journal: ", err, "\n") return 1 end
  if opts.json then
    local out = json.array {}
    for _, w in ipairs(rows) do out[#out + 1] = summary(w) end
    print_json(out)
  else
    print_table(rows)
  end
  return 0
end

local function show(s, opts, id)
  local w, err = s:get(id)
  if not w then
    io.stderr:write("rotator journal: ", err or ("no workflow '" .. id .. "' in " .. s:path()), "\n")
    return 1
  end
  local hist, herr = s:history(id)
  if not hist then io.stderr:write("rotator journal: ", herr, "\n") return 1 end
  if opts.json then
    local out = summary(w)
    out.doc = w.doc
    out.history = json.array {}
    for _, h in ipairs(hist) do
      out.history[#out.history + 1] = { seq = h.seq, step = h.step, at = when(h.at), doc = h.doc }
    end
    print_json(out)
    return 0
  end
  io.stdout:write(("workflow   %s\nstate      %s%s\nsource     %s\nbackup job %s\nstarted    %s\nupdated    %s\n")
    :format(w.id, w.state, w.finished and " (finished)" or "", w.source or "-", w.backup_job or "-",
      when(w.started), when(w.updated)))
  io.stdout:write("history:\n")
  if #hist == 0 then io.stdout:write("  (compacted: only the latest document is kept)\n") end
  for _, h in ipairs(hist) do
    io.stdout:write(("  %8d  %s  %s\n"):format(h.seq, when(h.at), h.step))
  end
  io.stdout:write("latest document:\n", json.encode(w.doc), "\n")
  return 0
end

---------------------------------------------------------------- check / quarantine
local function report_check(path, opts, problems, err)
  local ok = problems ~= nil and #problems == 0
  if opts.json then
    print_json({ journal = path, ok = ok, check = opts.quick and "quick_check" or "integrity_check",
      problems = json.array(problems or {}), error = err })
  elseif ok then
    io.stdout:write(("journal %s: ok (%s)\n"):format(path, opts.quick and "quick_check" or "integrity_check"))
  else
    io.stdout:write(("journal %s: DAMAGED\n"):format(path))
    if err then io.stdout:write("  ", err, "\n") end
    for _, p in ipairs(problems or {}) do io.stdout:write("  ", p, "\n") end
    io.stdout:write("next: stop the daemon, then `rotator journal quarantine` moves it aside; the next start " ..
      "begins a fresh journal and re-derives the work from the queue and the tables that exist\n")
  end
  return ok and 0 or 1
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function check(opts)
  local path, perr = store.path()
  if not path then io.stderr:write("rotator journal: ", perr, "\n") return 2 end
  if not exists(path) then
    io.stderr:write("rotator journal: no journal at ", path, " (is --state-dir / ROTATOR_STATE_DIR right?)\n")
    return 2
  end
  local s, err = store.open(nil, { readonly = true })
  if not s then return report_check(path, opts, nil, err) end
  local problems, cerr = s.j:check { quick = opts.quick }
  s:close()
  return report_check(path, opts, problems, cerr)
end

local function quarantine()
  local dir, derr = store.default_state_dir()
  if not dir then io.stderr:write("rotator journal: ", derr, "\n") return 2 end
  local path = dir .. "/" .. store.FILE
  if not exists(path) then
    io.stderr:write("rotator journal: no journal at ", path, "; nothing to quarantine\n")
    return 1
  end
  -- Held until this command exits, so no daemon starts on the directory meanwhile.
  local locked, lerr = host.lock_state_dir(dir)
  if not locked then io.stderr:write("rotator journal: refusing to quarantine: ", lerr, "\n") return 1 end
  local stamp = os.date("!%Y%m%dT%H%M%SZ", math.floor(clock.now()))
  local to = ("%s/journal-quarantined-%s.db"):format(dir, stamp)
  if exists(to) then io.stderr:write("rotator journal: ", to, " exists already; try again in a second\n") return 1 end
  -- The -wal first: a fresh journal.db must never meet the old WAL.
  for _, suffix in ipairs({ "-wal", "-shm", "" }) do
    if exists(path .. suffix) then
      local ok, err = os.rename(path .. suffix, to .. suffix)
      if not ok then
        io.stderr:write("rotator journal: cannot move ", path .. suffix, ": ", tostring(err),
          "; fix the permissions of ", dir, " and run it again\n")
        return 1
      end
      io.stdout:write("moved ", path .. suffix, " -> ", to .. suffix, "\n")
    end
  end
  io.stdout:write("next: start the daemon; it creates a fresh journal, and the queued SQS messages and the " ..
    "table-exists check carry the work on (history of finished workflows stays in ", to, ")\n")
  return 0
end

local function run(argv)
  local opts, pos = args.parse(argv, SPEC, "journal")
  if not opts then io.stderr:write("rotator journal: ", pos, "\n") return 2 end
  local sub = pos[1] or "list"
  if opts.limit then
    opts.limit = tonumber(opts.limit)
    if not opts.limit or opts.limit < 1 or opts.limit % 1 ~= 0 then
      io.stderr:write("rotator journal: --limit needs a positive whole number\n")
      return 2
    end
  end
  local expect = sub == "show" and 2 or 1
  local known = { list = true, unfinished = true, show = true, check = true, quarantine = true }
  if #pos > expect or (sub == "show" and #pos < 2) or not known[sub] then
    io.stderr:write(usage)
    return 2
  end
  if sub == "check" then return check(opts) end
  if sub == "quarantine" then return quarantine() end
  local s, err = store.open(nil, { readonly = true })
  if not s then io.stderr:write("rotator journal: ", err, "\n") return 1 end
  local code
  if sub == "show" then code = show(s, opts, pos[2])
  else code = list(s, opts, sub == "unfinished") end
  s:close()
  return code
end

return { summary = "read the workflow journal without the daemon; check or quarantine it", usage = usage, run = run }
