-- Tests for require "json".
local json = require "json"

local function eq(got, want, what)
  if got ~= want then
    error(string.format("%s: got %q, want %q", what or "value", tostring(got), tostring(want)), 2)
  end
end

-- Asserts fn(...) returned nil plus a message containing text.
local function fails(text, what, v, msg)
  eq(v, nil, what .. " value")
  assert(type(msg) == "string" and msg:find(text, 1, true),
         string.format("%s: message %q lacks %q", what, tostring(msg), text))
end

local T = {}

T["null round trips"] = function()
  eq(json.decode("null"), json.null, "decode null")
  eq(json.encode(json.null), "null", "encode null")
  eq(json.decode('{"a":null}').a, json.null, "null member kept")
  eq(json.encode({a = json.null}), '{"a":null}', "encode null member")
  eq(json.encode(json.decode("[1,null,3]")), "[1,null,3]", "null in array")
  eq(json.encode(nil), "null", "nil is null")
end

T["empty tables: {} by default, [] when marked"] = function()
  eq(json.encode({}), "{}", "default object")
  eq(json.encode(json.array({})), "[]", "json.array({})")
  eq(json.encode(json.array()), "[]", "json.array()")
  eq(json.encode(json.object({})), "{}", "json.object({})")
  eq(json.encode({Items = json.array()}), '{"Items":[]}', "nested empty array")
  eq(json.encode(json.decode("[]")), "[]", "decoded [] stays []")
  eq(json.encode(json.decode('{"a":[],"b":{}}').a), "[]", "decoded member []")
  eq(json.encode(json.decode('{"a":[],"b":{}}').b), "{}", "decoded member {}")
  eq(json.encode(setmetatable({}, {__jsontype = "array"})), "[]", "own metatable with __jsontype")
end

T["array and object marks"] = function()
  local t = {1, 2}
  assert(json.array(t) == t, "array returns its argument")
  eq(json.encode(json.array({"a", "b"})), '["a","b"]', "marked array")
  local o = json.decode(json.encode(json.object({"x", "y"})))
  eq(o["1"], "x", "object with integer keys uses string keys")
  eq(o["2"], "y", "second key")
  local ok = pcall(json.array, setmetatable({}, {}))
  assert(not ok, "a foreign metatable is not replaced")
  local v, msg = json.encode(json.array({1, x = 2}))
  fails("marked as array", "array with string key", v, msg)
  eq(json.array_mt.__jsontype, "array", "array_mt exposed")
  eq(getmetatable(json.decode("[1]")), json.array_mt, "decoded arrays carry array_mt")
end

T["tables with keys 1..n are arrays, others objects"] = function()
  eq(json.encode({1, 2, 3}), "[1,2,3]", "sequence")
  eq(json.encode({"a", {true, false}}), '["a",[true,false]]', "nested")
  local o = json.decode(json.encode({[1] = "a", x = "b"}))
  eq(o["1"], "a", "mixed keys: integer key as string")
  eq(o.x, "b", "mixed keys: string key")
end

T["sparse arrays are an error with a clear message"] = function()
  local v, msg = json.encode({[1] = 1, [3] = 3})
  fails("cannot encode sparse array (2 of 3 slots set", "sparse", v, msg)
  v, msg = json.encode({list = {[2] = "x"}})
  fails("at $.list", "sparse path", v, msg)
end

T["unencodable values return nil, msg naming the path"] = function()
  local v, msg = json.encode({a = {b = {1, 2, print}}})
  fails("json: cannot encode a function value at $.a.b[3]", "function", v, msg)
  v, msg = json.encode({x = 0 / 0})
  fails("NaN or infinity", "nan", v, msg)
  v, msg = json.encode(math.huge)
  fails("NaN or infinity", "inf", v, msg)
  v, msg = json.encode({[true] = 1})
  fails("cannot encode a boolean as an object key", "boolean key", v, msg)
  local cyc = {}
  cyc.self = cyc
  v, msg = json.encode(cyc)
  fails("nesting deeper than 1000 levels", "cycle", v, msg)
end

T["integers print as integers, 64-bit intact"] = function()
  eq(json.encode({n = 1234567890123}), '{"n":1234567890123}', "13 digits")
  eq(json.encode(5), "5", "small integer")
  eq(json.encode(5.0), "5", "integral float")
  eq(json.encode(-0.0), "-0", "negative zero")
  eq(json.encode(math.maxinteger), "9223372036854775807", "maxinteger")
  eq(json.encode(math.mininteger), "-9223372036854775808", "mininteger")
  eq(json.encode(1e300), "1e+300", "large float")
end

T["decoded integers stay integers"] = function()
  local v = json.decode("9223372036854775807")
  eq(math.type(v), "integer", "type of maxinteger")
  eq(v, math.maxinteger, "maxinteger")
  eq(json.decode("12345678901234567"), 12345678901234567, "beyond 2^53 exact")
  eq(math.type(json.decode("5")), "integer", "5")
  eq(math.type(json.decode("-0")), "integer", "-0")
  eq(math.type(json.decode("1.5")), "float", "1.5")
  eq(json.decode("1e2"), 100.0, "exponent")
  eq(math.type(json.decode("1e2")), "float", "exponent is float")
  eq(math.type(json.decode("92233720368547758070")), "float", "overflow becomes float")
  eq(json.encode(json.decode('{"size":1234567890123}')), '{"size":1234567890123}', "round trip")
end

T["floats use the shortest exact form"] = function()
  eq(json.encode(0.1), "0.1", "0.1")
  eq(json.encode(1.5), "1.5", "1.5")
  eq(json.decode(json.encode(1 / 3)), 1 / 3, "1/3 round trips")
  eq(json.decode(json.encode(2 ^ -1074)), 2 ^ -1074, "denormal round trips")
end

T["slashes stay unescaped"] = function()
  local arn = "arn:aws:dynamodb:us-east-1:1:table/x"
  eq(json.encode(arn), '"' .. arn .. '"', "ARN")
  eq(json.encode({TableArn = arn}), '{"TableArn":"arn:aws:dynamodb:us-east-1:1:table/x"}', "member")
  eq(json.decode('"a\\/b"'), "a/b", "escaped slash still decodes")
end

T["string escapes"] = function()
  eq(json.encode('q"\\\n\r\t\b\f\1'), '"q\\"\\\\\\n\\r\\t\\b\\f\\u0001"', "encode escapes")
  eq(json.encode("a\0b"), '"a\\u0000b"', "NUL")
  eq(json.decode('"a\\u0000b"'), "a\0b", "decode NUL")
  eq(json.decode('"\\u00e9\\ud83d\\ude00"'), "\u{e9}\u{1F600}", "unicode escapes and pairs")
  eq(json.decode('"\u{e9}"'), "\u{e9}", "raw UTF-8")
  eq(json.decode('"\\"\\\\\\/\\b\\f\\n\\r\\t"'), '"\\/\b\f\n\r\t', "all short escapes")
  eq(json.encode(json.decode('"caf\\u00e9"')), '"caf\u{e9}"', "non-ASCII written as UTF-8")
end

T["decode errors name the byte offset"] = function()
  local v, msg = json.decode('{"a": 1, "b": 2 "c": 3}')
  eq(msg, "json: invalid JSON at byte 17: expected ',' or '}'", "missing comma")
  fails("at byte 8: expected string key", "trailing comma", json.decode('{"a":1,}'))
  fails("at byte 5: expected ',' or ']', got end of input", "unterminated array", json.decode("[1,2"))
  fails("at byte 1: expected value", "empty", json.decode(""))
  fails("at byte 4: unexpected data after the JSON value", "trailing data", json.decode("{} x"))
  fails("at byte 2: unexpected data", "leading zero", json.decode("01"))
  fails("at byte 1: invalid number", "lone minus", json.decode("-"))
  fails("at byte 1: invalid number", "1.", json.decode("1."))
  fails("at byte 1: expected value", ".5", json.decode(".5"))
  fails("at byte 2: invalid escape sequence", "bad escape", json.decode('"\\x"'))
  fails("at byte 2: unpaired high surrogate", "lone high", json.decode('"\\ud83d"'))
  fails("at byte 2: unpaired low surrogate", "lone low", json.decode('"\\ude00"'))
  fails("at byte 3: control character in string", "raw newline", json.decode('"a\nb"'))
  fails("unterminated string", "unterminated", json.decode('"abc'))
  fails("at byte 2: expected value", "bad literal", json.decode("[tru]"))
  fails("at byte 6: expected ':'", "missing colon", json.decode('{"a" 1}'))
  eq(v, nil)
end

T["nesting limit is 1000"] = function()
  local deep = string.rep("[", 1000) .. string.rep("]", 1000)
  assert(json.decode(deep), "1000 levels decode")
  fails("nesting deeper than 1000 levels", "1001 levels",
        json.decode(string.rep("[", 1001) .. string.rep("]", 1001)))
  local t = json.decode(deep)
  assert(json.encode(t) == deep, "1000 levels encode")
end

T["bad arguments raise"] = function()
  assert(not pcall(json.decode, nil), "decode(nil)")
  assert(not pcall(json.decode, {}), "decode(table)")
  assert(not pcall(json.encode), "encode()")
end

T["whitespace and a notification body"] = function()
  local v = json.decode(' \n{ "a" : [ 1 , 2 ] } \t')
  eq(v.a[2], 2, "whitespace everywhere")
  local body = [[{"Type":"Notification","MessageId":"1b2345b2","TopicArn":
    "arn:aws:sns:us-east-1:123456789012:backup","Message":"An AWS Backup job was completed successfully. Resource ARN : arn:aws:dynamodb:us-east-1:123456789012:table/Orders-Production.",
    "Timestamp":"2026-11-25T03:41:07.512Z","MessageAttributes":{"StartTime":{"Type":"String","Value":"2026-11-25T03:00:00Z"}}}]]
  local doc = json.decode(body)
  eq(doc.MessageAttributes.StartTime.Value, "2026-11-25T03:00:00Z", "nested attribute")
  assert(doc.Message:find("table/Orders-Production", 1, true), "message text")
  local again = json.decode(json.encode(doc))
  eq(again.TopicArn, doc.TopicArn, "round trip")
  eq(again.Message, doc.Message, "round trip message")
end

T["objects of any size decode whole, a repeated key keeping its last value"] = function()
  for _, n in ipairs({ 1, 2, 31, 32, 33, 100 }) do
    local parts = { '"dup":"first"' }
    for i = 1, n do parts[#parts + 1] = ('"k%d":%d'):format(i, i) end
    parts[#parts + 1] = '"dup":"last"'
    local v = assert(json.decode("{" .. table.concat(parts, ",") .. "}"))
    local count = 0
    for _ in pairs(v) do count = count + 1 end
    eq(count, n + 1, n .. " members: keys")
    eq(v.dup, "last", n .. " members: repeated key")
    for i = 1, n do eq(v["k" .. i], i, n .. " members: k" .. i) end
  end
  local nested = assert(json.decode('{"a":{"b":{"c":[1,{"d":2}]},"e":3},"f":{}}'))
  eq(nested.a.b.c[2].d, 2, "nested")
  eq(nested.a.e, 3, "sibling after a nested object")
  eq(next(nested.f), nil, "empty object")
end

return T
