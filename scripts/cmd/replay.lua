-- rotator replay FILE|- [--dry-run]: run the intake on notification files, record by
-- record (a bad record is reported and skipped; the others go on).
local host = require "host"
local log = require "log"
local args = require "engine.args"
local json = require "json"
local jsonstream = require "jsonstream"
local task = require "engine.task"
local policies = require "policy.loader"
local rules = require "policy.rules"
local services = require "aws.services"
local intake = require "daemon.intake"
local N = require "workflow.notification"

local usage = [==[
usage: rotator replay [--dry-run] [--source-pattern RE --replacement-pattern T
                      [--ssm-parameter-name NAME]] [--default-rule first|last|off]
                      FILE|- ...

Feeds notification files through the same intake and workflow as the daemon. `-` reads
stdin. A file holds one notification or many, each an SQS message, an SNS envelope, a
{"Records":[...]} document, an EventBridge event, or (a file of one) the bare message
text: one JSON document per line (NDJSON), documents one after another, or one
pretty-printed document. Files are read record by record in bounded memory.

A record that is not a notification (corrupt, truncated, not JSON) is reported on stderr
with its place and the reason, and the others go on:
  replay.bad_record file=in.ndjson line=4 offset=640 reason="..."
At the end, one summary line per file on stderr:
  rotator replay: in.ndjson: 5 done, 1 skipped, 1 bad, 0 failed
done: the workflow completed (with --dry-run: planned); skipped: deliberately not acted
on (not a DynamoDB backup, not COMPLETED, no rule matches the table); bad: not a
notification; failed: the workflow ended in Error.

--dry-run makes no mutating call and prints each planned call as one JSON line on stdout:
  {"call":"dynamodb.RestoreTableFromBackup","input":{...}}
It needs no network and no credentials: it plans from the notification and the policies
alone (waiting for ACTIVE and the SSM ordering check are skipped). Logs go to stderr.

Without policy rules, the default rule comes from SOURCE_PATTERN, REPLACEMENT_PATTERN and
SSM_PARAMETER_NAME (or the flags), as in the original tool. When those are set and the
policy files declare rules as well, nothing runs (exit 2) until --default-rule (or
ROTATOR_DEFAULT_RULE) says where the default rule goes: first (evaluated before the
policy rules), last (after them) or off (dropped).

Exit status:
  0  every record done or skipped
  1  a workflow failed (whether or not a record was also bad)
  2  nothing ran: bad usage, the policies did not load or conflict with the default
     rule settings, or a file could not be read
  3  some records were bad; every other one was done or skipped

Examples:
  rotator replay --dry-run notifications.ndjson
  SOURCE_PATTERN='(?i)-production$' REPLACEMENT_PATTERN=-staging rotator replay --dry-run - < msg.json
]==]

local SPEC = {
  ["--dry-run"] = "bool", ["--source-pattern"] = "string", ["--replacement-pattern"] = "string",
  ["--ssm-parameter-name"] = "string", ["--default-rule"] = "string",
}

-- Exit statuses, worst wins: 2 > 1 > 3 > 0.
local RANK = { [0] = 0, [3] = 1, [1] = 2, [2] = 3 }
local function worse(a, b) return RANK[b] > RANK[a] and b or a end

local NEXT_STEP = {
  ENOENT = "check the path",
  EACCES = "run as a user who may read it, or copy it somewhere readable",
  EISDIR = "give the notification files inside it, e.g. rotator replay DIR/*.json",
  EIO = "check the file and the disk",
}

local function load_rules(opts)
  local files = policies.list(host.config.policies_dir) or {}
  local set, errs = policies.load(files)
  if not set then return nil, table.concat(errs, "\n") end
  local list, err = rules.effective(set, opts)
  if not list then return nil, err end
  return list
end

-- A record's text -> notification records, or nil and the reason.
local function parse_record(text)
  local c = text:sub(1, 1)
  if c ~= "{" and c ~= "[" then return N.parse(text) end
  local v, jerr = json.decode(text)
  if v == nil then return nil, "not valid JSON: " .. tostring(jerr):gsub("^json: ", ""), true end
  if c == "[" then return nil, "a JSON array, not a notification (give one notification per line)" end
  return N.parse(v)
end

local function outcome_of(rec, ctx, where)
  local ok, docs = intake.handle_records({ rec }, ctx, where)
  if not ok then return "failed" end
  return docs[1] and "done" or "skipped"
end

-- One notification's records, each in its own task (as the daemon runs a message's
-- records); counts each outcome. Returns when all finished. A single record runs in
-- the calling task.
local function run_records(recs, ctx, where, counts)
  if #recs == 1 and not recs[1].error then
    local outcome = outcome_of(recs[1], ctx, where)
    counts[outcome] = counts[outcome] + 1
    return
  end
  local futures = {}
  for i, rec in ipairs(recs) do
    local f = task.future()
    futures[i] = f
    if rec.error then
      log.error("replay.bad_record", { where = where, reason = rec.skip })
      f:set("bad")
    else
      task.spawn(function() f:set(outcome_of(rec, ctx, where)) end)
    end
  end
  for _, f in ipairs(futures) do
    local outcome = f:wait()
    counts[outcome] = counts[outcome] + 1
  end
end

-- Read one file record by record. Returns counts, or nil, message, code.
local function replay_file(path, ctx)
  local reader, err, code = jsonstream.open(path)
  if not reader then return nil, err, code end
  local counts = { done = 0, skipped = 0, bad = 0, failed = 0 }
  local name = path == "-" and "stdin" or path
  while true do
    local text, line, offset, problem = reader:next()
    if not text then
      reader:close()
      if line then return nil, name .. ": " .. line, "EIO" end -- a read error
      return counts
    end
    local recs, why, resync
    if problem then why, resync = problem, true
    else recs, why, resync = parse_record(text) end
    if recs then
      run_records(recs, ctx, ("%s:%d"):format(name, line), counts)
    else
      local fields = { file = name, line = line, offset = offset, reason = why }
      if resync then
        local last = reader:resync()
        if last > line then fields.last_line = last end
      end
      log.error("replay.bad_record", fields)
      counts.bad = counts.bad + 1
    end
  end
end

local function run(argv)
  local opts, files = args.parse(argv, SPEC, "replay")
  if not opts then io.stderr:write("rotator replay: ", files, "\n") return 2 end
  if #files == 0 then io.stderr:write(usage) return 2 end
  local list, err = load_rules(opts)
  if not list then io.stderr:write(err, "\n", "rotator replay: the rules are not usable (policies or the default rule); nothing ran (rotator check)\n") return 2 end
  if #list == 0 then log.warn("replay.no_rules", { reason = "no policy rules and no SOURCE_PATTERN: every record is skipped" }) end
  local ctx = {
    -- Plan lines are buffered (line by line on a terminal) and flushed after each file,
    -- not written one syscall each.
    -- The printed line is the whole plan: the service keeps no list of it.
    svc = services.new({ dry_run = opts.dry_run, offline = opts.dry_run, keep_plan = false,
      emit = function(line) io.stdout:write(line, "\n") end }),
    rules = function() return list end,
    dry_run = opts.dry_run or false,
  }
  task.spawn(function()
    local status = 0
    for _, path in ipairs(files) do
      local counts, rerr, code = replay_file(path, ctx)
      io.stdout:flush()
      if not counts then
        io.stderr:write(("rotator replay: cannot read %s; %s\n"):format(rerr, NEXT_STEP[code] or NEXT_STEP.EIO))
        status = worse(status, 2)
      else
        local name = path == "-" and "stdin" or path
        if log.format() == "json" then -- a summary, typed, at the level its counts call for
          log[(counts.failed > 0 or counts.bad > 0) and "warn" or "info"]("replay.summary", { file = name,
            done = counts.done, skipped = counts.skipped, bad = counts.bad, failed = counts.failed })
        else
          io.stderr:write(("rotator replay: %s: %d done, %d skipped, %d bad, %d failed\n"):format(
            name, counts.done, counts.skipped, counts.bad, counts.failed))
        end
        if counts.failed > 0 then status = worse(status, 1) end
        if counts.bad > 0 then status = worse(status, 3) end
      end
    end
    io.stdout:flush()
    host.exit(status)
  end)
end

return { summary = "feed notification files through the workflow, record by record (--dry-run plans only)", usage = usage, run = run,
  parse_record = parse_record }
