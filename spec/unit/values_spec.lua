-- lunamodb.values: sets, UTC datetimes, exact decimals, binary, and the N codec.
-- Expected datetime texts come from PynamoDB's UTCDateTimeAttribute and Python's
-- datetime (reference/pynamodb.md §4.2); number limits from DynamoDB (reliability.md §5).
local core = require "lunamodb.core"
local values = require "lunamodb.values"

local is_luajit = type(jit) == "table"
local encode, decode = values.encode_number, values.decode_number
local decimal, set, binary, datetime = values.decimal, values.set, values.binary, values.datetime

-- The error a call raises, as a string (fails when it does not raise).
local function err_of(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

-- Asserts that f(...) raises an error containing `text` (plain).
local function raises(text, f, ...)
  local e = err_of(f, ...)
  assert.is_truthy(e:find(text, 1, true), "error '" .. e .. "' lacks '" .. text .. "'")
  return e
end

-- Asserts that encode_number / decode_number refuse v with a message containing `text`.
local function refuses(fn, v, text)
  local r, e = fn(v)
  assert.is_nil(r, "accepted " .. tostring(v))
  assert.is_string(e)
  assert.is_truthy(e:find(text, 1, true), "message '" .. e .. "' lacks '" .. text .. "'")
end

local function is_integer(v)
  if is_luajit then return type(v) == "number" and v % 1 == 0 end
  return math.type(v) == "integer"
end

local function is_float(v)
  if is_luajit then return type(v) == "number" end
  return math.type(v) == "float"
end

local ZEROS_129 = string.rep("0", 129)
local TINY_TEXT = "0." .. ZEROS_129 .. "1"                          -- 1E-130
local NINES_38 = string.rep("9", 38)
local MAX_TEXT = NINES_38 .. string.rep("0", 88)                    -- 9.99..9E+125

describe("values.null", function()
  it("is the core's null", function()
    assert.is_true(rawequal(core.null, values.null))
    assert.is_not_nil(values.null)
  end)
end)

describe("values.encode_number", function()
  it("prints integers with %d", function()
    assert.equal("0", encode(0))
    assert.equal("1", encode(1))
    assert.equal("-7", encode(-7))
    assert.equal("1234567890123", encode(1234567890123))
  end)

  it("prints integral floats up to 2^53 as integers", function()
    assert.equal("3", encode(3.0))
    assert.equal("-3", encode(-3.0))
    assert.equal("1000000000000000", encode(1e15))
    assert.equal("9007199254740992", encode(2 ^ 53))
    assert.equal("-9007199254740992", encode(-(2 ^ 53)))
  end)

  it("prints -0.0 as 0", function()
    assert.equal("0", encode(-0.0))
    assert.equal("0", encode(0.0))
  end)

  if is_luajit then
    it("LuaJIT: 2^53+1 is the double 2^53, larger integral doubles take the float path", function()
      assert.equal("9007199254740992", encode(2 ^ 53 + 1))
      assert.equal("18014398509481984", encode(2 ^ 54))
      assert.equal("100000000000000000000", encode(1e20))
    end)
  else
    it("Lua 5.4: integers stay exact over the whole int64 range", function()
      assert.equal("9007199254740993", encode(9007199254740993))
      assert.equal("9223372036854775807", encode(math.maxinteger))
      assert.equal("-9223372036854775808", encode(math.mininteger))
      assert.equal("18014398509481984", encode(2 ^ 54))       -- a float: shortest text
    end)
  end

  it("prints floats with the shortest text that reads back as the same double", function()
    assert.equal("0.1", encode(0.1))
    assert.equal("0.3333333333333333", encode(1 / 3))
    assert.equal("0.30000000000000004", encode(0.1 + 0.2))
    assert.equal("1.5", encode(1.5))
    assert.equal("123.456", encode(123.456))
    assert.equal("-2.5", encode(-2.5))
    assert.equal("3.141592653589793", encode(math.pi))
  end)

  it("never uses exponent notation (DynamoDB's own normal form)", function()
    assert.equal("100000000000000000000", encode(1e20))
    assert.equal("0.0000001", encode(1e-7))
    assert.equal("-0.000025", encode(-2.5e-5))
    assert.equal("0.00001", encode(1e-5))
    assert.equal("12300000000000000000000000", encode(1.23e25))
    assert.equal(TINY_TEXT, encode(1e-130))
    assert.equal("9999" .. string.rep("0", 122), encode(9.999e125))
  end)

  it("round-trips random floats exactly, in canonical text", function()
    math.randomseed(20240102)
    for _ = 1, 2000 do
      local x = (math.random() - 0.5) * 10 ^ math.random(-120, 120)
      local t = assert(encode(x))
      -- + 0.0: on 5.4 an integral text such as "4460517776638906000" reads as an integer
      assert.equal(x, tonumber(t) + 0.0)
      assert.equal(t, decimal(t):text())
      assert.is_nil(t:find("[eE+]"))
      assert.is_true(#t:gsub("[%-%.]", ""):gsub("^0+", ""):gsub("0+$", "") <= 17)
    end
  end)

  it("refuses NaN and infinities", function()
    refuses(encode, 0 / 0, "NaN")
    refuses(encode, math.huge, "inf")
    refuses(encode, -math.huge, "-inf")
  end)

  it("refuses numbers outside DynamoDB's range, never rounding them to 0", function()
    refuses(encode, 1e200, "out of DynamoDB's range")
    refuses(encode, -1e200, "out of DynamoDB's range")
    refuses(encode, 1e126, "out of DynamoDB's range")
    refuses(encode, 1e-200, "too small")
    refuses(encode, -1e-200, "too small")
    refuses(encode, 1e-131, "too small")
    refuses(encode, 5e-324, "too small")
  end)

  it("refuses what is not a number", function()
    refuses(encode, "1", "expected a number, got string")
    refuses(encode, true, "expected a number, got boolean")
    refuses(encode, {}, "expected a number, got table")
    refuses(encode, nil, "expected a number, got nil")
    refuses(encode, binary("1"), "expected a number, got binary")
  end)

  it("encodes decimals as their canonical text", function()
    assert.equal("1.5", encode(decimal("1.50")))
    assert.equal("12345678901234567890123456789012345678",
      encode(decimal("12345678901234567890123456789012345678")))
  end)
end)

describe("values.decode_number", function()
  it("reads integers that fit as integers", function()
    local v = decode("123456789012345")
    assert.equal(123456789012345, v)
    assert.is_true(is_integer(v))
    assert.equal(0, decode("0"))
    assert.equal(-42, decode("-42"))
    assert.equal(9007199254740992, decode("9007199254740992"))
    assert.is_true(is_integer(decode("9007199254740992")))
  end)

  it("reads every spelling of an integer as that integer", function()
    for _, t in ipairs { "100", "1E+2", "1e2", "1.00E2", "100.000", "+100", "0100", "10000E-2" } do
      local v = decode(t)
      assert.equal(100, v, t)
      assert.is_true(is_integer(v), t)
    end
  end)

  it("reads -0 as 0", function()
    for _, t in ipairs { "-0", "-0.0", "0.000", "-0E5", "0E999" } do
      local v = decode(t)
      assert.equal(0, v)
      assert.equal(math.huge, 1 / v, t)                       -- not -0.0
    end
  end)

  if is_luajit then
    it("LuaJIT: integers beyond 2^53 are decimals", function()
      for _, t in ipairs { "9007199254740993", "9223372036854775807", "-9223372036854775808" } do
        local v = decode(t)
        assert.is_true(values.is_decimal(v), t)
        assert.equal(t, v:text())
      end
      assert.equal(-9007199254740992, decode("-9007199254740992"))
    end)
  else
    it("Lua 5.4: int64 integers are integers, one past them a decimal", function()
      assert.equal(math.maxinteger, decode("9223372036854775807"))
      assert.is_true(is_integer(decode("9223372036854775807")))
      assert.equal(math.mininteger, decode("-9223372036854775808"))
      assert.is_true(is_integer(decode("-9223372036854775808")))
      assert.equal(9007199254740993, decode("9007199254740993"))
      assert.is_true(is_integer(decode("9007199254740993")))
      local v = decode("-9223372036854775809")
      assert.is_true(values.is_decimal(v))
      assert.equal("-9223372036854775809", v:text())
    end)
  end

  it("reads integers beyond int64 as exact decimals", function()
    local v = decode("9223372036854775808")
    assert.is_true(values.is_decimal(v))
    assert.equal("9223372036854775808", v:text())
    v = decode("1E+20")
    assert.is_true(values.is_decimal(v))
    assert.equal("100000000000000000000", v:text())
  end)

  it("reads non-integers of at most 15 significant digits as floats", function()
    local v = decode("1.10")
    assert.equal(1.1, v)
    assert.is_true(is_float(v))
    assert.equal(1.5, decode("1.5"))
    assert.equal(0.1, decode("0.1"))
    assert.equal(-0.5, decode("-.5"))
    assert.equal(0.5, decode(".5"))
    assert.equal(1234567890.12345, decode("1234567890.12345"))
    assert.equal(0.000001, decode("0.000001"))
    assert.equal(1.5e-40, decode("1.5E-40"))
    assert.equal(1e-130, decode(TINY_TEXT))
    assert.equal(1e-130, decode("1E-0130"))
  end)

  it("reads longer non-integers as exact decimals", function()
    local v = decode("0.30000000000000004")
    assert.is_true(values.is_decimal(v))
    assert.equal("0.30000000000000004", v:text())
    v = decode("1234567890.123456")                         -- 16 digits
    assert.is_true(values.is_decimal(v))
    assert.equal("1234567890.123456", v:text())
    v = decode("-1.2345678901234567890123456789012345678")
    assert.equal("-1.2345678901234567890123456789012345678", v:text())
  end)

  it("accepts DynamoDB's other spellings", function()
    assert.equal(5, decode("+5"))
    assert.equal(5, decode("5."))
    assert.equal(100000, decode("1e5"))
    assert.equal(1.5, decode("15E-1"))
  end)

  it("never rounds: the value read is the value written", function()
    math.randomseed(7)
    local texts = {
      "1", "-1", "0.1", "1.10", "1E+2", "0.30000000000000004", "123456789012345",
      "1234567890123456", "12345678901234567", "9007199254740993", "9223372036854775807",
      "9223372036854775808", "-9223372036854775809", "1E+20", "1E-130", "-1E-130", "1E+125",
      "12345678901234567890123456789012345678", "1.2345678901234567890123456789012345678E-100",
      NINES_38 .. "E+88", "0.000001", "1.000000000000001", "99999999999999.9",
      "999999999999999.9", "0.1000000000000001",
    }
    for _ = 1, 500 do
      local digits = {}
      for i = 1, math.random(0, 37) do digits[i] = tostring(math.random(0, 9)) end
      texts[#texts + 1] = (math.random() < 0.5 and "-" or "") .. "1" .. table.concat(digits)
        .. "E" .. math.random(-120, 80)
    end
    for _, t in ipairs(texts) do
      local v = decode(t)
      assert.is_not_nil(v, t)
      assert.equal(decimal(t):text(), decimal(v):text(), t)
      assert.equal(decimal(t):text(), encode(v), t)
    end
  end)

  it("refuses malformed text", function()
    for _, t in ipairs { "", " 1", "1 ", "abc", "1e", "1e+", "0x10", "inf", "nan", "-inf",
      "1.2.3", "--1", "+-1", ".", "-", "+", "e5", "1,5", "1_000", "١" } do
      refuses(decode, t, "is not a number")
    end
  end)

  it("refuses numbers DynamoDB cannot store", function()
    refuses(decode, "1E126", "out of DynamoDB's range")
    refuses(decode, "1E999999999999", "out of DynamoDB's range")
    refuses(decode, "1E-131", "too small")
    refuses(decode, "1E-999999999999", "too small")
    refuses(decode, "123456789012345678901234567890123456789", "39 significant digits")
  end)

  it("refuses what is not a string", function()
    refuses(decode, 5, "got number")
    refuses(decode, nil, "got nil")
  end)
end)

describe("values.decimal", function()
  it("gives one canonical text per value", function()
    local cases = {
      { "1.50", "1.5" }, { "15E-1", "1.5" }, { "+1.5", "1.5" }, { "0.15e1", "1.5" },
      { "-12.50", "-12.5" }, { "1E+20", "100000000000000000000" }, { "1e20", "100000000000000000000" },
      { "0.000001", "0.000001" }, { "1E-6", "0.000001" }, { "00012", "12" }, { "12.", "12" },
      { ".5", "0.5" }, { "-0.00E5", "0" }, { "-0", "0" }, { "0E999", "0" }, { "100", "100" },
      { "1.00E2", "100" }, { "1E-130", TINY_TEXT }, { "9.9999999999999999999999999999999999999E+125", MAX_TEXT },
      { "12345678901234567890123456789012345678", "12345678901234567890123456789012345678" },
      { "1000000000000000000000000000000000000000000", "1000000000000000000000000000000000000000000" },
      { "1.0000000000000000000000000000000000000000", "1" },
      { "-1.5E-40", "-0.00000000000000000000000000000000000000015" },
    }
    for _, c in ipairs(cases) do
      local d = decimal(c[1])
      assert.equal(c[2], d:text(), c[1])
      assert.equal(c[2], tostring(d), c[1])
    end
  end)

  it("accepts 38 significant digits and refuses 39", function()
    assert.equal(NINES_38, decimal(NINES_38):text())
    assert.equal("0." .. NINES_38, decimal("0." .. NINES_38):text())
    raises("lunamodb.decimal: ", decimal, NINES_38 .. "9")
    raises("39 significant digits", decimal, "1" .. string.rep("0", 37) .. "1")
    raises("39 significant digits", decimal, "0.1" .. string.rep("0", 37) .. "1")
  end)

  it("counts significant digits after trimming zeros, as DynamoDB does", function()
    assert.equal("1", decimal("1." .. string.rep("0", 50)):text())
    assert.equal("1" .. string.rep("0", 60), decimal("1" .. string.rep("0", 60)):text())
    assert.equal("0.00000000000000000000000000000000000000000000000001",
      decimal("0.00000000000000000000000000000000000000000000000001"):text())
  end)

  it("enforces DynamoDB's range 1E-130 <= |x| < 1E+126", function()
    assert.equal(TINY_TEXT, decimal("1E-130"):text())
    assert.equal("-" .. TINY_TEXT, decimal("-1E-130"):text())
    assert.equal(MAX_TEXT, decimal("9.9999999999999999999999999999999999999E+125"):text())
    assert.equal("-" .. MAX_TEXT, decimal("-9.9999999999999999999999999999999999999E+125"):text())
    raises("out of DynamoDB's range", decimal, "1E126")
    raises("out of DynamoDB's range", decimal, "-1E+126")
    raises("out of DynamoDB's range", decimal, "10E125")
    raises("too small", decimal, "1E-131")
    raises("too small", decimal, "9.9999999999999999999999999999999999999E-131")
    raises("too small", decimal, "0.1E-130")
  end)

  it("converts Lua numbers exactly via encode_number", function()
    assert.equal("0.1", decimal(0.1):text())
    assert.equal("5", decimal(5):text())
    assert.equal("0", decimal(-0.0):text())
    assert.equal("100000000000000000000", decimal(1e20):text())
    if not is_luajit then
      assert.equal("9223372036854775807", decimal(math.maxinteger):text())
    end
    raises("lunamodb.decimal: cannot encode NaN", decimal, 0 / 0)
    raises("out of DynamoDB's range", decimal, 1e200)
    raises("too small", decimal, 1e-200)
  end)

  it("returns an equal decimal for a decimal", function()
    local d = decimal("1.5")
    assert.equal(d, decimal(d))
    assert.equal("1.5", decimal(d):text())
  end)

  it("refuses bad arguments with a clear error at the caller", function()
    raises("lunamodb.decimal: expected a string, number or decimal, got nil", decimal, nil)
    raises("got boolean", decimal, true)
    raises("got table", decimal, {})
    raises("got binary", decimal, binary("1"))
    raises('lunamodb.decimal: "abc" is not a number', decimal, "abc")
    raises("is not a number", decimal, "")
    raises("is not a number", decimal, "1 ")
    raises("is not a number", decimal, "NaN")
    local e = err_of(function() decimal("x") end)
    assert.is_truthy(e:find("values_spec.lua:%d+:"), e)
  end)

  it("compares by exact value", function()
    assert.is_true(decimal("1.50") == decimal("15E-1"))
    assert.is_false(decimal("1.5") == decimal("1.51"))
    assert.is_false(decimal("1") == decimal("-1"))
    assert.is_true(decimal("0") == decimal("-0.000"))
    assert.is_false(decimal("1") == 1)                    -- Lua never calls __eq across types
    local a = decimal("12345678901234567890123456789012345678")
    local b = decimal("12345678901234567890123456789012345679")
    assert.equal(a:tonumber(), b:tonumber())              -- a double cannot tell them apart
    assert.is_true(a < b)
    assert.is_false(b < a)
    assert.is_true(a <= b)
    assert.is_false(b <= a)
    assert.is_true(a <= a)
    assert.is_false(a < a)
  end)

  it("orders signs, exponents and digits exactly", function()
    local ordered = {
      "-" .. MAX_TEXT, "-1E+20", "-10", "-9.9", "-1", "-0.10000000000000000000000000000000000001",
      "-0.1", "-1E-130", "0", "1E-130", "1.5E-40", "0.1", "0.10000000000000000000000000000000000001",
      "0.30000000000000004", "1", "1.5", "9.9", "10", "99", "100", "1E+20", MAX_TEXT,
    }
    for i = 1, #ordered do
      for j = 1, #ordered do
        local a, b = decimal(ordered[i]), decimal(ordered[j])
        assert.equal(i < j, a < b, ordered[i] .. " < " .. ordered[j])
        assert.equal(i <= j, a <= b, ordered[i] .. " <= " .. ordered[j])
        assert.equal(i == j, a == b, ordered[i] .. " == " .. ordered[j])
      end
    end
  end)

  if not is_luajit then
    it("Lua 5.4: compares with plain numbers too", function()
      assert.is_true(decimal("2") < 3)
      assert.is_false(decimal("3") < 2)
      assert.is_true(1 < decimal("1.5"))
      assert.is_true(decimal("2") <= 2)
      assert.is_false(decimal("2") < 2)
      assert.is_true(decimal("0.30000000000000004") <= 0.1 + 0.2)
      assert.is_true(decimal("1E+125") < math.huge)
      assert.is_false(decimal("1") < 0 / 0)
      assert.is_false(decimal("1") <= 0 / 0)
      raises("cannot compare a decimal with a string", function() return decimal("1") < "2" end)
    end)
  end

  it("converts to the nearest Lua number", function()
    assert.equal(1.5, decimal("1.5"):tonumber())
    assert.equal(100, decimal("1E+2"):tonumber())
    assert.is_true(is_integer(decimal("1E+2"):tonumber()))
    assert.equal(0, decimal("0"):tonumber())
    assert.equal(-0.5, decimal("-0.5"):tonumber())
    assert.equal(0.1 + 0.2, decimal("0.30000000000000004"):tonumber())
    assert.equal(1e20, decimal("1E+20"):tonumber())
    assert.equal(1.2345678901234568e37, decimal("12345678901234567890123456789012345678"):tonumber())
    assert.equal(1e-130, decimal("1E-130"):tonumber())
    if is_luajit then
      assert.equal(2 ^ 63, decimal("9223372036854775807"):tonumber())  -- rounds: documented
    else
      local v = decimal("9223372036854775807"):tonumber()
      assert.equal(math.maxinteger, v)
      assert.equal("integer", math.type(v))
      assert.equal("float", math.type(decimal("9223372036854775808"):tonumber()))
    end
  end)

  it("is immutable", function()
    local d = decimal("1.5")
    raises("immutable", function() d.x = 1 end)
    raises("immutable", function() d.text = 1 end)
    assert.equal("1.5", d:text())
  end)

  it("is recognised by is_decimal only", function()
    assert.is_true(values.is_decimal(decimal("1")))
    assert.is_false(values.is_decimal(1))
    assert.is_false(values.is_decimal("1"))
    assert.is_false(values.is_decimal({}))
    assert.is_false(values.is_decimal(binary("1")))
  end)
end)

describe("values.binary", function()
  it("wraps bytes", function()
    local b = binary("\1\2\0")
    assert.equal("\1\2\0", b.data)
    assert.is_true(values.is_binary(b))
    assert.is_false(values.is_binary("\1\2\0"))
    assert.is_false(values.is_binary(decimal("1")))
  end)

  it("compares by bytes", function()
    assert.is_true(binary("ab") == binary("ab"))
    assert.is_false(binary("ab") == binary("ab\0"))
    assert.is_false(binary("ab") == binary("AB"))
    assert.is_true(binary("") == binary(""))
  end)

  it("prints its length", function()
    assert.equal("binary(3 bytes)", tostring(binary("abc")))
    assert.equal("binary(1 byte)", tostring(binary("a")))
    assert.equal("binary(0 bytes)", tostring(binary("")))
  end)

  it("is immutable", function()
    local b = binary("abc")
    raises("lunamodb.binary: binary values are immutable", function() b.data = "x" end)
    raises("immutable", function() b.other = "x" end)
    assert.equal("abc", b.data)
  end)

  it("refuses what is not a string", function()
    raises("lunamodb.binary: expected a string, got number", binary, 5)
    raises("got nil", binary, nil)
    raises("got table", binary, {})
  end)

  it("returns an equal value for a binary", function()
    assert.equal(binary("x"), binary(binary("x")))
  end)

  if not is_luajit then
    it("Lua 5.4: # gives the byte count", function()
      assert.equal(3, #binary("abc"))
    end)
  end
end)

describe("values.set", function()
  it("starts empty", function()
    for _, s in ipairs { set(), set(nil), set {} } do
      assert.equal(0, s:size())
      assert.is_nil(s:kind())
      assert.same({}, s:items())
      assert.equal("set{}", tostring(s))
      assert.is_false(s:has("a"))
      assert.is_false(s:has(1))
    end
  end)

  it("holds strings", function()
    local s = set { "b", "a", "b", "c" }
    assert.equal(3, s:size())
    assert.equal("string", s:kind())
    assert.is_true(s:has("a"))
    assert.is_false(s:has("d"))
    assert.is_false(s:has(""))
    assert.same({ "a", "b", "c" }, s:items())
    assert.equal('set{"a", "b", "c"}', tostring(s))
    assert.is_true(set { "" }:has(""))
  end)

  it("orders strings bytewise", function()
    local s = set { "b", "a", "B", "ab", "\200", "z", "", "a\0b", "a\0" }
    assert.same({ "", "B", "a", "a\0", "a\0b", "ab", "b", "z", "\200" }, s:items())
  end)

  it("quotes strings in tostring", function()
    assert.equal('set{"\\n", "a\\"b"}', tostring(set { 'a"b', "\n" }))
  end)

  it("holds numbers by exact value: 1, 1.0 and decimal('1') are one member", function()
    local s = set { 1, 1.0, decimal("1"), decimal("1.000") }
    assert.equal(1, s:size())
    assert.equal("number", s:kind())
    assert.is_true(s:has(1))
    assert.is_true(s:has(1.0))
    assert.is_true(s:has(decimal("1")))
    assert.is_true(s:has(decimal("10E-1")))
    assert.is_false(s:has(2))
    assert.is_false(s:has(decimal("1.0000000000000000000000000000000000001")))
    assert.is_false(s:has("1"))
    assert.equal("set{1}", tostring(s))
  end)

  it("keeps decimals a double cannot tell apart", function()
    local a = decimal("12345678901234567890123456789012345678")
    local b = decimal("12345678901234567890123456789012345679")
    local s = set { a, b, a:tonumber() }
    assert.equal(3, s:size())
    assert.is_true(s:has(decimal("12345678901234567890123456789012345679")))
  end)

  it("orders numbers numerically, decimals exactly", function()
    local s = set {
      10, 9.5, -1, 0, 0.1, decimal("12345678901234567890123456789012345678"),
      decimal("12345678901234567890123456789012345677"), decimal("-1E-130"), 2 ^ 60, -1e20,
      decimal("0.10000000000000000000000000000000000001"),
    }
    local texts = {}
    for i, v in ipairs(s:items()) do texts[i] = encode(v) end
    assert.same({
      "-100000000000000000000", "-1", "-" .. TINY_TEXT, "0", "0.1",
      "0.10000000000000000000000000000000000001", "9.5", "10", "1152921504606847000",
      "12345678901234567890123456789012345677", "12345678901234567890123456789012345678",
    }, texts)
    assert.equal("set{-100000000000000000000, -1, -" .. TINY_TEXT .. ", 0, 0.1, "
      .. "0.10000000000000000000000000000000000001, 9.5, 10, 1152921504606847000, "
      .. "12345678901234567890123456789012345677, 12345678901234567890123456789012345678}",
      tostring(s))
  end)

  it("holds binaries, apart from strings", function()
    local s = set { binary("b"), binary("a"), binary("a"), binary("\0") }
    assert.equal(3, s:size())
    assert.equal("binary", s:kind())
    assert.is_true(s:has(binary("a")))
    assert.is_false(s:has("a"))
    assert.is_false(set { "a" }:has(binary("a")))
    local datas = {}
    for i, b in ipairs(s:items()) do datas[i] = b.data end
    assert.same({ "\0", "a", "b" }, datas)
    assert.equal("set{binary(1 byte), binary(1 byte), binary(1 byte)}", tostring(s))
  end)

  it("refuses mixed kinds", function()
    raises("lunamodb.set: item 2: cannot add a string to a set of numbers", set, { 1, "a" })
    raises("cannot add a binary to a set of strings", set, { "a", binary("a") })
    raises("cannot add a number to a set of binarys", set, { binary("a"), decimal("1") })
    local s = set { "a" }
    raises("lunamodb.set: cannot add a number to a set of strings", function() s:add(1) end)
    assert.equal(1, s:size())
  end)

  it("refuses holes, NaN, infinities and values that cannot be members", function()
    raises("lunamodb.set: the list has a hole at index 2", set, { 1, nil, 3 })
    raises("NaN", set, { 0 / 0 })
    raises("inf", set, { math.huge })
    raises("out of DynamoDB's range", set, { 1e200 })
    raises("got boolean", set, { true })
    raises("got table", set, { {} })
    raises("got datetime", set, { datetime(0) })
    raises("got lunamodb.null", set, { values.null })
    raises("got set", set, { set { "a" } })
    raises("expected a list, found the key \"a\"", set, { a = 1 })
    raises("found the key 1.5", set, { [1.5] = 1 })
    raises("lunamodb.set: expected a list or nil, got string", set, "abc")
    raises("got a decimal", set, decimal("1"))
    local s = set()
    raises("lunamodb.set: cannot encode NaN", function() s:add(0 / 0) end)
    raises("got nil", function() s:add(nil) end)
    assert.equal(0, s:size())
  end)

  it("raises at the caller", function()
    local e = err_of(function() set { 1, "a" } end)
    assert.is_truthy(e:find("values_spec.lua:%d+:"), e)
    e = err_of(function() set():add(true) end)
    assert.is_truthy(e:find("values_spec.lua:%d+:"), e)
  end)

  it("adds and removes, returning the set", function()
    local s = set()
    assert.equal(s, s:add("x"))
    assert.is_true(rawequal(s, s:add("y")))
    assert.is_true(rawequal(s, s:add("x")))
    assert.equal(2, s:size())
    assert.is_true(rawequal(s, s:remove("x")))
    assert.is_false(s:has("x"))
    assert.equal(1, s:size())
    s:remove("absent")
    s:remove(5)                                   -- another kind: not a member, no error
    assert.equal(1, s:size())
    s:remove("y")
    assert.equal(0, s:size())
    assert.is_nil(s:kind())                       -- empty again: any kind may follow
    s:add(7)
    assert.equal("number", s:kind())
    assert.is_true(s:remove(7.0):size() == 0)
    raises("lunamodb.set: ", function() s:remove(true) end)
  end)

  it("compares order-insensitively", function()
    assert.is_true(set { "a", "b" } == set { "b", "a" })
    assert.is_true(set { 1, 2 } == set { 2.0, decimal("1") })
    assert.is_true(set() == set {})
    assert.is_false(set { "a" } == set { "a", "b" })
    assert.is_false(set { "a", "c" } == set { "a", "b" })
    assert.is_false(set { "1" } == set { 1 })
    assert.is_false(set { "a" } == set { binary("a") })
    assert.is_false(set() == set { "a" })
  end)

  it("copies another set", function()
    local a = set { 1, 2 }
    local b = set(a)
    assert.is_true(a == b)
    b:add(3)
    assert.equal(2, a:size())
    assert.equal(3, b:size())
    assert.equal("number", set(set { 1 }):kind())
  end)

  it("returns a new array from items()", function()
    local s = set { "a" }
    local items = s:items()
    items[1] = "z"
    items[2] = "y"
    assert.same({ "a" }, s:items())
  end)

  it("iterates each member once with each()", function()
    local s = set { "a", "b", "c" }
    local seen, n = {}, 0
    for v in s:each() do
      assert.is_nil(seen[v])
      seen[v] = true
      n = n + 1
    end
    assert.equal(3, n)
    assert.same({ a = true, b = true, c = true }, seen)
    for _ in set():each() do error("an empty set has no members") end
  end)

  it("keeps the members as given", function()
    local d = decimal("2.5")
    local s = set { d }
    assert.is_true(rawequal(d, s:items()[1]))
  end)

  it("finds members by hashing, not scanning", function()
    local n = 200000
    local list = {}
    for i = 1, n do list[i] = "k" .. i end
    local s = set(list)
    -- The VM instructions one has() runs, counted by a hook (not timed: valgrind and a busy
    -- machine slow everything): the same for 2 members as for 200,000, where a scan's grow
    -- with the set. Checked first, so a scan fails here instead of running the loop below.
    local function cost(set_, v)
      local count = 0
      if is_luajit then jit.off() end               -- hooks see interpreted code only
      debug.sethook(function() count = count + 1 end, "", 1)
      set_:has(v)
      debug.sethook()
      if is_luajit then jit.on() end
      return count
    end
    local small = set { "k1", "k2" }
    assert.is_true(cost(s, "k" .. n) <= cost(small, "k2") + 5)
    assert.is_true(cost(s, "k0") <= cost(small, "k0") + 5)
    local found = 0
    for i = 1, n do
      if s:has("k" .. i) then found = found + 1 end
    end
    assert.equal(n, found)
    assert.is_false(s:has("k0"))
  end)

  if not is_luajit then
    it("Lua 5.4: # gives the size", function()
      assert.equal(2, #set { "a", "b", "a" })
    end)
  end

  it("is recognised by is_set only", function()
    assert.is_true(values.is_set(set()))
    assert.is_false(values.is_set({}))
    assert.is_false(values.is_set(nil))
  end)
end)

describe("values.datetime", function()
  local function dt(y, mo, d, h, mi, s, us)
    return datetime { year = y, month = mo, day = d, hour = h, min = mi, sec = s, usec = us }
  end

  it("formats PynamoDB's verified examples", function()
    assert.equal("2024-01-02T03:04:05.006789+0000", dt(2024, 1, 2, 3, 4, 5, 6789):iso())
    assert.equal("2024-01-02T01:04:05.000000+0000", datetime("2024-01-02T03:04:05+02:00"):iso())
    assert.equal("0005-01-02T03:04:05.000000+0000", dt(5, 1, 2, 3, 4, 5):iso())
  end)

  it("defaults hour, minute, second and microsecond to 0", function()
    assert.equal("2024-03-04T00:00:00.000000+0000", datetime { year = 2024, month = 3, day = 4 }:iso())
  end)

  it("exposes integer epoch seconds and microseconds", function()
    local d = dt(2024, 1, 2, 3, 4, 5, 6789)
    assert.equal(1704164645, d.epoch_s)
    assert.equal(6789, d.usec)
    assert.is_true(is_integer(d.epoch_s))
    assert.is_true(is_integer(d.usec))
    assert.is_true(math.abs(d:epoch() - 1704164645.006789) < 1e-6)
    assert.equal(tostring(d), d:iso())
  end)

  it("knows the epoch of key dates", function()
    assert.equal(0, dt(1970, 1, 1).epoch_s)
    assert.equal(946684800, dt(2000, 1, 1).epoch_s)
    assert.equal(-2208988800, dt(1900, 1, 1).epoch_s)
    assert.equal(-62135596800, dt(1, 1, 1).epoch_s)
    assert.equal(253402300799, dt(9999, 12, 31, 23, 59, 59).epoch_s)
    assert.equal(-1, dt(1969, 12, 31, 23, 59, 59).epoch_s)
  end)

  it("agrees with a day-by-day count from year 1 to 9999", function()
    local days = -719162                                 -- 0001-01-01 is 719162 days before 1970
    for y = 1, 9999 do
      assert.equal(days * 86400, dt(y, 1, 1).epoch_s)
      local leap = (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0
      days = days + (leap and 366 or 365)
    end
    assert.equal(2932897, days)                          -- 10000-01-01
  end)

  it("reads epoch seconds", function()
    assert.equal("1970-01-01T00:00:00.000000+0000", datetime(0):iso())
    assert.equal("2024-01-02T03:04:05.000000+0000", datetime(1704164645):iso())
    assert.equal("2009-02-13T23:31:30.123456+0000", datetime(1234567890.123456):iso())
    assert.equal("2024-01-02T03:04:05.006789+0000", datetime(1704164645.006789):iso())
    assert.equal("2001-09-09T01:46:40.500000+0000", datetime(1e9 + 0.5):iso())
    assert.equal("0001-01-01T00:00:00.000000+0000", datetime(-62135596800):iso())
    assert.equal("9999-12-31T23:59:59.000000+0000", datetime(253402300799):iso())
    assert.equal(1704164645, datetime(1704164645.0).epoch_s)
    assert.is_true(is_integer(datetime(1704164645.5).epoch_s))
  end)

  it("floors negative epochs and rounds to the microsecond like Python", function()
    local d = datetime(-1.5)
    assert.equal(-2, d.epoch_s)
    assert.equal(500000, d.usec)
    assert.equal("1969-12-31T23:59:58.500000+0000", d:iso())
    assert.equal("1970-01-01T00:00:00.007812+0000", datetime(0.0078125):iso())   -- tie: even
    assert.equal("1970-01-01T00:00:00.023438+0000", datetime(0.0234375):iso())   -- tie: even
    assert.equal("1970-01-01T00:00:01.000000+0000", datetime(0.9999996):iso())
    assert.equal("1970-01-01T00:00:00.000000+0000", datetime(-0.0000004):iso())
  end)

  it("reads ISO-8601 text", function()
    local cases = {
      { "2024-01-02T03:04:05.006789+0000", "2024-01-02T03:04:05.006789+0000" },
      { "2024-01-02T03:04:05Z", "2024-01-02T03:04:05.000000+0000" },
      { "2024-01-02t03:04:05z", "2024-01-02T03:04:05.000000+0000" },
      { "2024-01-02 03:04:05", "2024-01-02T03:04:05.000000+0000" },
      { "2024-01-02T03:04:05", "2024-01-02T03:04:05.000000+0000" },
      { "2024-01-02T03:04", "2024-01-02T03:04:00.000000+0000" },
      { "2024-01-02", "2024-01-02T00:00:00.000000+0000" },
      { "2024-01-02T03:04:05+0200", "2024-01-02T01:04:05.000000+0000" },
      { "2024-01-02T03:04:05+02", "2024-01-02T01:04:05.000000+0000" },
      { "2024-01-02T03:04:05-05:30", "2024-01-02T08:34:05.000000+0000" },
      { "2024-01-01T01:00:00+02:00", "2023-12-31T23:00:00.000000+0000" },
      { "2024-01-02T03:04:05.5Z", "2024-01-02T03:04:05.500000+0000" },
      { "2024-01-02T03:04:05,25Z", "2024-01-02T03:04:05.250000+0000" },
      { "2024-01-02T03:04:05.123456789", "2024-01-02T03:04:05.123457+0000" },
      { "2024-01-02T03:04:05.1234565", "2024-01-02T03:04:05.123456+0000" },  -- tie: even
      { "2024-01-02T03:04:05.1234575", "2024-01-02T03:04:05.123458+0000" },  -- tie: even
      { "2024-01-02T03:04:05.12345650001", nil },
      { "2024-12-31T23:59:59.9999996Z", "2025-01-01T00:00:00.000000+0000" },
      { "2024-12-31T23:59:59.9999995Z", "2025-01-01T00:00:00.000000+0000" },  -- tie: even
      { "2024-12-31T23:59:59.9999994Z", "2024-12-31T23:59:59.999999+0000" },
    }
    for _, c in ipairs(cases) do
      if c[2] then
        assert.equal(c[2], datetime(c[1]):iso(), c[1])
      else
        raises("at most 9", datetime, c[1])
      end
    end
  end)

  it("refuses impossible dates and times, naming the problem", function()
    raises("month 13 is out of range (expected 1..12)", datetime, "2024-13-01")
    raises("month 0", datetime, "2024-00-01")
    raises("day 30 is out of range (expected 1..29) for 2024-02", datetime, "2024-02-30")
    raises("day 29 is out of range (expected 1..28) for 2023-02", datetime, "2023-02-29")
    raises("day 31", datetime, "2024-04-31")
    raises("day 0", datetime, "2024-01-00")
    raises("hour 24", datetime, "2024-01-01T24:00:00")
    raises("minute 60", datetime, "2024-01-01T23:60:00")
    raises("second 60", datetime, "2024-01-01T23:59:60")
    raises("year 0 is out of range", datetime, "0000-01-01")
    raises("zone hour 25", datetime, "2024-01-01T00:00:00+25:00")
    raises("zone minute 60", datetime, "2024-01-01T00:00:00+01:60")
    raises("at most 9", datetime, "2024-01-02T03:04:05.1234567890")
    raises("expected YYYY-MM-DD", datetime, "2024-1-2")
    raises("expected YYYY-MM-DD", datetime, "")
    raises("expected YYYY-MM-DD", datetime, "yesterday")
    raises("not an ISO-8601 datetime", datetime, "2024-01-02X03:04:05")
    raises("unreadable time or zone", datetime, "2024-01-02T03:04:05 UTC")
    raises("unreadable time or zone", datetime, "2024-01-02T03:04.5")
    raises('lunamodb.datetime: "2024-13-01"', datetime, "2024-13-01")
  end)

  it("handles leap years: 2000 and 2024 are, 1900, 2023 and 2100 are not", function()
    assert.equal("2024-02-29T00:00:00.000000+0000", datetime("2024-02-29"):iso())
    assert.equal("2000-02-29T00:00:00.000000+0000", datetime("2000-02-29"):iso())
    raises("day 29", datetime, "1900-02-29")
    raises("day 29", datetime, "2100-02-29")
    assert.equal("2024-02-29T00:00:00.000000+0000", datetime("2024-02-28"):add(86400):iso())
    assert.equal("1900-03-01T00:00:00.000000+0000", datetime("1900-02-28"):add(86400):iso())
    assert.equal("2000-02-29T00:00:00.000000+0000", datetime("2000-02-28"):add(86400):iso())
    assert.equal(366, datetime("2024-12-31"):fields().yday)
    assert.equal(366, datetime("2000-12-31"):fields().yday)
    assert.equal(365, datetime("1900-12-31"):fields().yday)
    assert.equal(365, datetime("2023-12-31"):fields().yday)
    assert.equal(60, datetime("1900-03-01"):fields().yday)
  end)

  it("keeps to the years 1..9999", function()
    raises("outside the years 1..9999", datetime, "0001-01-01T00:00:00+01:00")
    raises("outside the years 1..9999", datetime, "9999-12-31T23:59:59-01:00")
    raises("outside the years 1..9999", datetime, -62135596801)
    raises("outside the years 1..9999", datetime, 253402300800)
    raises("outside the years 1..9999", datetime, 1e300)
    raises("year 10000 is out of range", datetime, { year = 10000, month = 1, day = 1 })
    raises("year 0 is out of range", datetime, { year = 0, month = 1, day = 1 })
    assert.equal("0001-01-01T01:00:00.000000+0000", datetime("0001-01-01T02:00:00+01:00"):iso())
    assert.equal("9999-12-31T23:59:59.999999+0000",
      datetime("9999-12-31T23:59:59.999999Z"):iso())
  end)

  it("refuses bad tables and arguments", function()
    raises("lunamodb.datetime: the table has no 'day' field", datetime, { year = 2024, month = 1 })
    raises("has no 'year' field", datetime, {})
    raises("'year' that is not a whole number (2024.5)", datetime,
      { year = 2024.5, month = 1, day = 1 })
    raises("'hour' that is not a whole number (\"3\")", datetime,
      { year = 2024, month = 1, day = 1, hour = "3" })
    raises("usec 1000000 is out of range", datetime,
      { year = 2024, month = 1, day = 1, usec = 1000000 })
    raises("usec -1 is out of range", datetime, { year = 2024, month = 1, day = 1, usec = -1 })
    raises("second 60", datetime, { year = 2024, month = 1, day = 1, sec = 60 })
    raises("not a finite number", datetime, 0 / 0)
    raises("not a finite number", datetime, math.huge)
    raises("expected epoch seconds, an ISO-8601 string", datetime, nil)
    raises("got boolean", datetime, true)
    raises("got a decimal", datetime, decimal("1"))
    local e = err_of(function() datetime("nope") end)
    assert.is_truthy(e:find("values_spec.lua:%d+:"), e)
  end)

  it("accepts os.date('!*t') tables (extra fields ignored)", function()
    local t = os.date("!*t", 1704164645)
    assert.equal("2024-01-02T03:04:05.000000+0000", datetime(t):iso())
  end)

  it("copies a datetime", function()
    local a = dt(2024, 1, 2, 3, 4, 5, 6)
    local b = datetime(a)
    assert.is_true(a == b)
    assert.is_false(rawequal(a, b))
    assert.equal(a:iso(), b:iso())
  end)

  it("gives calendar fields with weekday and day of year", function()
    assert.same({ year = 2024, month = 1, day = 2, hour = 3, min = 4, sec = 5, usec = 6789,
      wday = 3, yday = 2 }, dt(2024, 1, 2, 3, 4, 5, 6789):fields())
    assert.equal(5, dt(1970, 1, 1):fields().wday)      -- Thursday
    assert.equal(7, dt(2000, 1, 1):fields().wday)      -- Saturday
    assert.equal(2, dt(1, 1, 1):fields().wday)         -- Monday
    assert.equal(6, dt(9999, 12, 31):fields().wday)    -- Friday
    assert.equal(365, dt(9999, 12, 31):fields().yday)
    local f = dt(1969, 12, 31, 23, 59, 59, 999999):fields()
    assert.same({ 1969, 12, 31, 23, 59, 59, 999999, 4, 365 },
      { f.year, f.month, f.day, f.hour, f.min, f.sec, f.usec, f.wday, f.yday })
  end)

  it("round-trips fields for every day of a few centuries", function()
    local d = datetime("1899-12-25T12:34:56.000001Z")
    local prev = d:fields()
    for _ = 1, 366 * 3 do
      local nxt = d:add(86400 * 97)
      local f = nxt:fields()
      assert.equal(nxt, dt(f.year, f.month, f.day, f.hour, f.min, f.sec, f.usec))
      assert.equal(prev.hour, f.hour)
      assert.is_true(nxt > d)
      d, prev = nxt, f
    end
  end)

  it("adds seconds, returning a new datetime", function()
    local a = dt(2024, 1, 2, 3, 4, 5)
    local b = a:add(1)
    assert.equal("2024-01-02T03:04:06.000000+0000", b:iso())
    assert.equal("2024-01-02T03:04:05.000000+0000", a:iso())
    assert.equal("2024-01-02T03:04:05.500000+0000", a:add(0.5):iso())
    assert.equal("2024-01-02T03:04:04.500000+0000", a:add(-0.5):iso())
    assert.equal("2024-01-02T03:04:04.999998+0000", a:add(-0.0000015):iso())  -- as Python
    assert.equal("2024-01-02T03:04:05.000002+0000", a:add(2.5e-6):iso())      -- as Python
    assert.equal("2025-01-02T03:04:05.000000+0000", a:add(366 * 86400):iso())
    assert.equal("2023-12-31T23:59:59.999999+0000", dt(2024, 1, 1):add(-0.000001):iso())
    assert.equal("2024-01-02T03:04:07.000001+0000", dt(2024, 1, 2, 3, 4, 5, 999999):add(1.000002):iso())
    raises("outside the years 1..9999", function() return a:add(1e12) end)
    raises("outside the years 1..9999", function() return dt(9999, 12, 31, 23, 59, 59):add(1) end)
    raises("outside the years 1..9999", function() return dt(1, 1, 1):add(-0.000001) end)
    raises("add expects a number of seconds, got string", function() return a:add("1") end)
    raises("outside the years", function() return a:add(0 / 0) end)
  end)

  it("compares by instant", function()
    local a = dt(2024, 1, 2, 3, 4, 5, 1)
    local b = dt(2024, 1, 2, 3, 4, 5, 2)
    local c = datetime("2024-01-02T05:04:05.000001+02:00")
    assert.is_true(a == c)
    assert.is_false(a == b)
    assert.is_true(a < b)
    assert.is_false(b < a)
    assert.is_false(a < c)
    assert.is_true(a <= c)
    assert.is_true(a <= b)
    assert.is_false(b <= a)
    assert.is_true(dt(1969, 12, 31) < dt(1970, 1, 1))
    assert.is_false(a == a:iso())
    assert.is_false(pcall(function() return a < 5 end))
    assert.is_false(pcall(function() return a < decimal("5") end))
  end)

  it("sorts chronologically as wire text", function()
    local list = { dt(2024, 1, 2), dt(5, 1, 2), dt(1970, 1, 1), dt(2024, 1, 2, 0, 0, 0, 1),
      dt(1969, 12, 31, 23, 59, 59, 999999), dt(9999, 12, 31), dt(1, 1, 1) }
    local by_time, by_text = {}, {}
    for i, d in ipairs(list) do by_time[i] = d; by_text[i] = d:iso() end
    table.sort(by_time, function(x, y) return x < y end)
    table.sort(by_text)
    for i = 1, #list do assert.equal(by_text[i], by_time[i]:iso()) end
  end)

  it("is immutable", function()
    local d = dt(2024, 1, 2)
    raises("lunamodb.datetime: datetimes are immutable", function() d.epoch_s = 0 end)
    raises("immutable", function() d.usec = 5 end)
    raises("immutable", function() d.iso = nil end)
    assert.equal(1704153600, d.epoch_s)
    assert.equal("2024-01-02T00:00:00.000000+0000", d:iso())
  end)

  it("tells the current time", function()
    local before = os.time()
    local n = values.now()
    assert.is_true(values.is_datetime(n))
    assert.is_true(n.epoch_s >= before - 1 and n.epoch_s <= os.time() + 1)
    assert.equal(0, n.usec % 1000)
    assert.is_true(is_integer(n.epoch_s))
  end)

  it("is recognised by is_datetime only", function()
    assert.is_true(values.is_datetime(datetime(0)))
    assert.is_false(values.is_datetime(0))
    assert.is_false(values.is_datetime({ year = 2024, month = 1, day = 1 }))
  end)
end)

describe("values.parse_datetime_wire", function()
  local FORMAT = "' does not match format '%Y-%m-%dT%H:%M:%S.%f+0000'"

  local function fails(s, shown)
    local d, e = values.parse_datetime_wire(s)
    assert.is_nil(d, s)
    assert.equal("Datetime string '" .. (shown or s) .. FORMAT, e)
  end

  it("reads PynamoDB's wire text", function()
    local d = assert(values.parse_datetime_wire("2024-01-02T03:04:05.006789+0000"))
    assert.is_true(values.is_datetime(d))
    assert.equal(1704164645, d.epoch_s)
    assert.equal(6789, d.usec)
    assert.equal("2024-01-02T03:04:05.006789+0000", d:iso())
    assert.equal("0005-01-02T03:04:05.000000+0000",
      values.parse_datetime_wire("0005-01-02T03:04:05.000000+0000"):iso())
    assert.equal("9999-12-31T23:59:59.999999+0000",
      values.parse_datetime_wire("9999-12-31T23:59:59.999999+0000"):iso())
    assert.equal("2024-02-29T00:00:00.000000+0000",
      values.parse_datetime_wire("2024-02-29T00:00:00.000000+0000"):iso())
  end)

  it("zero-fills short text to 31 characters first (unpadded old years)", function()
    assert.equal("0005-01-02T03:04:05.000000+0000",
      values.parse_datetime_wire("5-01-02T03:04:05.000000+0000"):iso())
    assert.equal("0123-01-02T03:04:05.000000+0000",
      values.parse_datetime_wire("123-01-02T03:04:05.000000+0000"):iso())
  end)

  it("refuses anything else, showing the zero-filled text", function()
    fails("2024-01-02T03:04:05.006789Z", "00002024-01-02T03:04:05.006789Z")
    fails("", string.rep("0", 31))
    fails("-5-01-02T03:04:05.000000+0000", "-005-01-02T03:04:05.000000+0000")   -- zfill keeps the sign first
    fails("2024-01-02T03:04:05.006789+0100")
    fails("2024-01-02 03:04:05.006789+0000")
    fails("2024-01-02T03:04:05,006789+0000")
    fails("2024/01/02T03:04:05.006789+0000")
    fails("2024-01-02T03-04:05.006789+0000")
    fails("2024-01-02T03:04-05.006789+0000")
    fails("2024-01-02T03:04:05.00678+00000")
    fails("2024-01-02T03:04:05.006789+00000")
    fails("2024-01-02T03:04:05.006789+0000 ")
    fails("+024-01-02T03:04:05.006789+0000")
    fails(" 024-01-02T03:04:05.006789+0000")
    fails("2024-01-02T03:04:05.00678a+0000")
    fails("2024-1a-02T03:04:05.006789+0000")
  end)

  it("refuses impossible calendar values", function()
    fails("0000-01-02T03:04:05.000000+0000")
    fails("2024-13-02T03:04:05.000000+0000")
    fails("2024-00-02T03:04:05.000000+0000")
    fails("2024-02-30T03:04:05.000000+0000")
    fails("2023-02-29T03:04:05.000000+0000")
    fails("1900-02-29T03:04:05.000000+0000")
    fails("2024-01-00T03:04:05.000000+0000")
    fails("2024-01-02T24:00:00.000000+0000")
    fails("2024-01-02T23:60:00.000000+0000")
    fails("2024-01-02T23:59:60.000000+0000")
  end)

  it("refuses what is not a string", function()
    local d, e = values.parse_datetime_wire(5)
    assert.is_nil(d)
    assert.equal("expected a datetime string, got number", e)
  end)

  it("round-trips random datetimes", function()
    math.randomseed(99)
    for _ = 1, 2000 do
      local d = datetime(math.random(-62135596800, 253402300799)):add(math.random(0, 999999) / 1e6)
      local back = assert(values.parse_datetime_wire(d:iso()))
      assert.equal(d, back)
      assert.equal(d:iso(), back:iso())
      assert.equal(d, datetime(d:iso()))
      assert.equal(d, datetime(d:fields()))
    end
  end)
end)
