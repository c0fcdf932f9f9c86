-- The core's JSON codec: exact numbers, arrays told from objects, strict input.
local core = require "lunamodb.core"
local cjson = require "cjson"                 -- an independent decoder for golden checks
local lunamodb = require "lunamodb"

local encode, decode = core.json_encode, core.json_decode
local is_luajit = type(jit) == "table"

-- Compares our output with what cjson parses it to (order-insensitive).
local function same_json(expected_lua, text)
  assert.same(expected_lua, cjson.decode(text))
end

describe("core.json_encode", function()
  it("encodes scalars exactly", function()
    assert.equal("true", encode(true))
    assert.equal("false", encode(false))
    assert.equal("null", encode(core.null))
    assert.equal('"x"', encode("x"))
    assert.equal("42", encode(42))
    assert.equal("-7", encode(-7))
    assert.equal("0.1", encode(0.1):sub(1, 3))
    assert.equal(0.1, tonumber(encode(0.1)))           -- 17 digits round-trip
    assert.equal(1/3, tonumber(encode(1/3)))
    assert.equal("3", encode(3.0))                     -- integral floats print as integers
  end)

  if not is_luajit then
    it("keeps 64-bit integers exact", function()
      assert.equal("9223372036854775807", encode(math.maxinteger))
      assert.equal("-9223372036854775808", encode(math.mininteger))
      assert.equal("1234567890123456789", encode(1234567890123456789))
    end)
  end

  it("escapes strings and refuses invalid UTF-8", function()
    assert.equal([["a\"b\\c\nd\te\u0001"]], encode('a"b\\c\nd\te\1'))
    assert.equal('"été ☃ 𝄞"', encode("été ☃ 𝄞"))
    assert.equal('"a/b"', encode("a/b"))
    assert.has_error(function() encode("\255") end,
      "lunamodb.json: $: string is not valid UTF-8 (binary data must be base64-encoded)")
    assert.has_error(function() encode({ Item = { k = "\192\128" } }) end,
      "lunamodb.json: $.Item.k: string is not valid UTF-8 (binary data must be base64-encoded)")
    assert.has_error(function() encode("\237\160\128") end)  -- an encoded surrogate
  end)

  -- Plain runs are scanned eight bytes at a time: every byte value, at every place around
  -- the 8-byte steps, must still be found (escaped, refused, or kept).
  it("finds any byte that is not plain wherever it stands in a string", function()
    local escapes = { [34] = '\\"', [92] = "\\\\", [8] = "\\b", [9] = "\\t", [10] = "\\n",
      [12] = "\\f", [13] = "\\r" }
    for len = 1, 19 do
      for at = 1, len do
        for b = 0, 255 do
          local s = ("a"):rep(at - 1) .. string.char(b) .. ("a"):rep(len - at)
          local ok, text = pcall(encode, s)
          if b >= 0x80 then
            assert.is_false(ok, "byte " .. b)                     -- a lone byte: not UTF-8
          else
            local esc = escapes[b] or (b < 0x20 and ("\\u%04x"):format(b)) or string.char(b)
            assert.equal('"' .. ("a"):rep(at - 1) .. esc .. ("a"):rep(len - at) .. '"', text)
            assert.equal(s, decode(text))
            if b < 0x20 then                                      -- raw, it is refused
              assert.matches("control character", select(2, decode('"' .. s .. '"')))
            end
          end
        end
      end
    end
  end)

  it("tells arrays from objects", function()
    assert.equal("{}", encode({}))
    assert.equal("[]", encode(lunamodb.array()))
    assert.equal("[]", encode(setmetatable({}, core.array_mt)))
    assert.equal("[1,2,3]", encode({ 1, 2, 3 }))
    assert.equal('{"L":[]}', encode({ L = lunamodb.array{} }))
    assert.equal('{"M":{}}', encode({ M = {} }))
    same_json({ a = { 1, "two", { b = false } } }, encode({ a = { 1, "two", { b = false } } }))
  end)

  it("names the path of what it cannot encode", function()
    assert.has_error(function() encode({ Item = { tags = { 1, 2, x = 3 } } }) end,
      "lunamodb.json: $.Item.tags: table mixes array items and other keys (or has holes)")
    assert.has_error(function() encode({ list = { { ok = 1 }, { bad = print } } }) end,
      "lunamodb.json: $.list[2].bad: a function cannot be encoded")
    assert.has_error(function() encode({ [true] = 1 }) end,
      "lunamodb.json: $: object keys must be strings (got a boolean key)")
    assert.has_error(function() encode({ n = 0/0 }) end,
      "lunamodb.json: $.n: NaN and infinity cannot be encoded")
    assert.has_error(function() encode({ n = math.huge }) end,
      "lunamodb.json: $.n: NaN and infinity cannot be encoded")
    assert.has_error(function() encode(nil) end)
  end)

  it("stops cycles and excessive nesting", function()
    local t = {}
    t.self = t
    assert.has_error(function() encode(t) end)
    local deep = {}
    local cur = deep
    for _ = 1, 128 do cur.x = {}; cur = cur.x end
    assert.has_error(function() encode(deep) end)
    local ok_depth = {}
    cur = ok_depth
    for _ = 1, 120 do cur.x = {}; cur = cur.x end
    assert.is_string(encode(ok_depth))
  end)

  it("produces JSON an independent parser reads back", function()
    local v = {
      TableName = "t",
      Item = { id = { S = "u1" }, n = { N = "42" }, name = { S = "été ☃" },
               l = { L = { { N = "1" }, { BOOL = true }, { NULL = true } } } },
    }
    same_json(v, encode(v))
  end)
end)

describe("core.json_decode", function()
  it("decodes integers as integers and keeps floats", function()
    local t = decode('{"Count":3,"ScannedCount":0,"CU":0.5,"big":1e300,"neg":-12}')
    assert.equal(3, t.Count)
    assert.equal(0.5, t.CU)
    assert.equal(1e300, t.big)
    assert.equal(-12, t.neg)
    if not is_luajit then
      assert.equal("integer", math.type(t.Count))
      assert.equal("float", math.type(t.CU))
      assert.equal(math.maxinteger, decode("9223372036854775807"))
      assert.equal(math.mininteger, decode("-9223372036854775808"))
      assert.equal("float", math.type(decode("9223372036854775808")))
    end
  end)

  it("decodes strings with every escape", function()
    assert.equal('a"b\\c/d\b\f\n\r\t', decode([["a\"b\\c\/d\b\f\n\r\t"]]))
    assert.equal("é☃𝄞", decode([["\u00e9\u2603\ud834\udd1e"]]))
    assert.equal("été", decode('"été"'))
  end)

  it("marks arrays so they re-encode as arrays", function()
    local t = decode('{"L":[],"M":{},"A":[1,[2,[]]]}')
    assert.is_true(lunamodb.is_array(t.L))
    assert.is_false(lunamodb.is_array(t.M))
    assert.equal('[]', encode(t.L))
    assert.equal('{}', encode(t.M))
    assert.equal('[1,[2,[]]]', encode(t.A))
  end)

  it("decodes null as core.null", function()
    local t = decode('{"a":null,"b":[null]}')
    assert.equal(core.null, t.a)
    assert.equal(core.null, t.b[1])
  end)

  it("rejects malformed input with a position", function()
    local cases = {
      { "", "unexpected end" },
      { "{", "unexpected end" },
      { '{"a":1,}', "expected a string key" },
      { "[1,]", "unexpected character" },
      { "[1 2]", "expected ',' or ']'" },
      { '{"a" 1}', "expected ':'" },
      { "{} x", "trailing characters" },
      { "NaN", "unexpected character" },
      { "0x10", "trailing characters" },
      { "01", "trailing characters" },
      { "1.", "bad number" },
      { "-", "bad number" },
      { '"\\x"', "bad escape" },
      { '"\\ud800"', "lone surrogate" },
      { '"\\udc00"', "lone surrogate" },
      { '"\255"', "invalid UTF%-8" },
      { '"a\nb"', "control character" },
      { '"abc', "unterminated string" },
      { "tru", "unexpected character" },
    }
    for _, c in ipairs(cases) do
      local v, err = decode(c[1])
      assert.is_nil(v, c[1])
      assert.matches("^invalid JSON at byte %d+: .*" .. c[2], err)
    end
  end)

  it("limits nesting to 128 levels", function()
    assert.is_table(decode(string.rep("[", 128) .. string.rep("]", 128)))
    local v, err = decode(string.rep("[", 129) .. string.rep("]", 129))
    assert.is_nil(v)
    assert.matches("nesting too deep", err)
  end)

  it("round-trips a DynamoDB response", function()
    local text = '{"Items":[{"pk":{"S":"a"},"n":{"N":"12345678901234567890123456789012345678"},'
      .. '"b":{"B":"AAEC"},"ss":{"SS":["x","y"]},"l":{"L":[]},"m":{"M":{}}}],'
      .. '"Count":1,"ScannedCount":1,"LastEvaluatedKey":{"pk":{"S":"a"}}}'
    local t = decode(text)
    assert.equal("12345678901234567890123456789012345678", t.Items[1].n.N)
    same_json(cjson.decode(text), encode(t))
    assert.equal('[]', encode(t.Items[1].l.L))
  end)
end)
