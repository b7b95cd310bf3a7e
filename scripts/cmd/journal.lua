-- rotator journal [list|show ID|unfinished] [--json]: read the workflow journal without
-- the daemon (read-only; works beside a running daemon too, as a WAL reader).
local args = require "engine.args"
local clock = require "clock"
local json = require "json"
local store = require "daemon.store"

local usage = [[
usage: rotator journal [list|unfinished] [--limit N] [--json]
       rotator journal show ID [--json]

Reads the workflow journal (STATE_DIR/journal.db) read-only; the daemon need not run,
and a running one is not disturbed.

  list         workflows, most recently updated first (default; --limit N)
  unfinished   workflows a restarted daemon would resume
  show ID      one workflow (ID = its backup job id): every recorded step, then its
               latest document

The state directory is --state-dir or ROTATOR_STATE_DIR, else /var/lib/rotator for
root, else $XDG_STATE_HOME/rotator, else ~/.local/state/rotator. The file is plain
SQLite: `sqlite3 -readonly STATE_DIR/journal.db 'SELECT * FROM workflows'` works too.

Examples:
  rotator journal
  rotator --state-dir /var/lib/rotator journal unfinished
  rotator journal show 4f6a7b0e-1c2d-4e5f-8a9b-0c1d2e3f4a5b --json
]]

local SPEC = { ["--json"] = "bool", ["--limit"] = "string" }

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
  if #pos > expect or (sub == "show" and #pos < 2) or not (sub == "list" or sub == "unfinished" or sub == "show") then
    io.stderr:write(usage)
    return 2
  end
  local s, err = store.open(nil, { readonly = true })
  if not s then io.stderr:write("rotator journal: ", err, "\n") return 1 end
  local code
  if sub == "show" then code = show(s, opts, pos[2])
  else code = list(s, opts, sub == "unfinished") end
  s:close()
  return code
end

return { summary = "read the workflow journal without the daemon", usage = usage, run = run }
