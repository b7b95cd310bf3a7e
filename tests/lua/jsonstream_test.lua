-- require "jsonstream": splitting a file into JSON records (NDJSON, concatenated and
-- pretty-printed documents, bare text), places of records, resync after a bad one,
-- limits, and errors for what cannot be read.
local jsonstream = require "jsonstream"
local json = require "json"
local T = require "engine.testing"

local tests = {}

local function file(content)
  local p = os.tmpname()
  local f = assert(io.open(p, "wb"))
  f:write(content)
  f:close()
  return p
end

-- Every record as { text, line, offset, problem }; resyncs after a record that does not
-- decode (as replay does) and notes the bad record's last line.
local function split(content, max)
  local p = file(content)
  local r <close> = assert(jsonstream.open(p, max))
  local out = {}
  while true do
    local text, line, offset, problem = r:next()
    if not text then T.eq(line, nil, "no read error") break end
    local rec = { text = text, line = line, offset = offset, problem = problem }
    if problem or (text:match("^[{%[]") and json.decode(text) == nil) then
      rec.last = r:resync()
    end
    out[#out + 1] = rec
  end
  os.remove(p)
  return out
end

function tests.ndjson_lines_with_places()
  local recs = split('{"a":1}\n{"b":[2,3]}\r\n\n  {"c":"}{\\"x"}\n')
  T.eq(#recs, 3)
  T.eq({ recs[1].text, recs[1].line, recs[1].offset }, { '{"a":1}', 1, 0 })
  T.eq({ recs[2].text, recs[2].line, recs[2].offset }, { '{"b":[2,3]}', 2, 8 })
  T.eq({ recs[3].text, recs[3].line, recs[3].offset }, { '{"c":"}{\\"x"}', 4, 24 }, "brackets in strings")
end

function tests.concatenated_and_pretty_documents()
  local pretty = '{\n  "a": {\n    "b": [1, 2]\n  }\n}\n{\n  "c": "d"\n}{"e":1}'
  local recs = split(pretty)
  T.eq(#recs, 3)
  T.eq(recs[1].line, 1)
  T.eq(json.decode(recs[1].text).a.b[2], 2)
  T.eq({ recs[2].line, recs[2].text }, { 6, '{\n  "c": "d"\n}' })
  T.eq({ recs[3].line, recs[3].text }, { 8, '{"e":1}' })
end

function tests.truncated_line_costs_only_itself()
  -- cut in a string, cut between tokens (the brackets would run into the next lines)
  local recs = split('{"a":1}\n{"b":"cut\n{"c":2}\n{"d":[1,\n{"e":3}\n{"f":4}\n')
  local got = {}
  for _, r in ipairs(recs) do got[#got + 1] = { r.line, r.last or r.line, json.decode(r.text) ~= nil } end
  T.eq(got, { { 1, 1, true }, { 2, 2, false }, { 3, 3, true }, { 4, 4, false }, { 5, 5, true }, { 6, 6, true } })
  T.eq(recs[2].problem, "line break inside a JSON string (a truncated or corrupt line?)")
end

function tests.bad_pretty_document_is_one_record()
  local recs = split('{\n  "a": 1,\n  "b": oops\n}\n{\n  "c": 2\n}\n')
  T.eq(#recs, 2)
  T.eq({ recs[1].line, recs[1].last }, { 1, 4 }, "the bad document, lines 1-4, once")
  T.eq({ recs[2].line, json.decode(recs[2].text).c }, { 5, 2 })
end

function tests.stray_line_and_truncated_end()
  local recs = split('{"a":1}\nnot json at all\n{"b":2}\n{"c":')
  T.eq(#recs, 4)
  T.eq({ recs[2].text, recs[2].line, recs[2].problem }, { "not json at all", 2, nil })
  T.eq({ recs[4].line, recs[4].problem }, { 4, "the input ends inside this JSON value (truncated?)" })
end

function tests.bare_text_file_is_one_record()
  local recs = split("\xEF\xBB\xBFAn AWS Backup job was completed.\nsecond line\n")
  T.eq(#recs, 1)
  T.eq(recs[1].text, "An AWS Backup job was completed.\nsecond line")
end

function tests.garbage_first_line_does_not_swallow_the_file()
  local recs = split('garbage\nmore garbage\n{"a":1}\n{"b":2}\n')
  T.eq(#recs, 3)
  T.eq({ recs[1].text, recs[2].line, recs[3].line }, { "garbage\nmore garbage", 3, 4 })
end

function tests.record_larger_than_the_limit()
  local big = '{"x":"' .. ("y"):rep(200) .. '"}'
  local recs = split('{"a":1}\n' .. big .. '\n{"b":2}\n', 100)
  T.eq(#recs, 3)
  T.eq(recs[2].problem, "record larger than 100 bytes (the limit; split the file)")
  T.eq({ recs[3].line, recs[3].text }, { 3, '{"b":2}' }, "goes on after it")
end

function tests.records_across_read_chunks()
  local lines = {}
  for i = 1, 3000 do lines[i] = json.encode({ i = i, pad = ("p"):rep(50) }) end
  local recs = split(table.concat(lines, "\n"))
  T.eq(#recs, 3000)
  T.eq({ recs[2000].line, json.decode(recs[2000].text).i }, { 2000, 2000 })
  T.eq(recs[3000].offset, #table.concat(lines, "\n", 1, 2999) + 1)
end

function tests.open_errors_name_the_path()
  local r, msg, code = jsonstream.open("/nonexistent/x.json")
  T.eq({ r, msg, code }, { nil, "/nonexistent/x.json: No such file or directory", "ENOENT" })
  r, msg, code = jsonstream.open("/tmp")
  T.eq({ r, msg, code }, { nil, "/tmp: Is a directory", "EISDIR" })
  local p = file("{}")
  local rd = assert(jsonstream.open(p))
  rd:close()
  T.raises(function() rd:next() end, "reader is closed")
  os.remove(p)
end

-- Inside a string only a quote, a backslash or a line break ends a run: a NUL byte, an
-- escaped quote or backslash, brackets and a long run across a read chunk do not.
function tests.string_contents_skip_to_what_matters()
  local long = string.rep("a", 70000)
  local recs = split('{"a":"x\0y\\"}z","b":"{["}\n{"c":"\\\\"}\n{"d":"' .. long .. '"}\n{"e":"cut\n"}\n{"f":2}\n')
  T.eq(#recs, 5)
  T.eq({ recs[1].text, recs[1].line }, { '{"a":"x\0y\\"}z","b":"{["}', 1 })
  T.eq({ recs[2].text, recs[2].line }, { '{"c":"\\\\"}', 2 })
  T.eq({ #recs[3].text, recs[3].line }, { #long + 8, 3 })
  T.eq(recs[4].problem ~= nil, true, "a line break inside a string is reported")
  T.eq({ recs[5].text, recs[5].line }, { '{"f":2}', 6 })
end

return tests
