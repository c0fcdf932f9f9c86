-- core.encode_item: the core's schema-directed encoder must write exactly the attribute map
-- A.serialize_item builds, for every attribute class; and give up (nil) on every value the
-- slow path would refuse, so that path raises its precise error.
local core = require "lunamodb.core"
local lunamodb = require "lunamodb"
local A = require "lunamodb.attributes"
local cjson = require "cjson"

local T = require("spec.helpers.codec_schema").schema("EncSpec")

-- cjson parses both texts independently: golden wire checks compare parsed JSON
local function check(vals)
  local fast = A.encode_item_json(T, vals)
  assert.is_string(fast, "the fast encoder gave up")
  local slow = core.json_encode((A.serialize_item(T, vals)))
  assert.same(cjson.decode(slow), cjson.decode(fast))
end

local function refused(vals)
  assert.is_nil(A.encode_item_json(T, vals))
  assert.has_error(function() A.serialize_item(T, vals) end)
end

describe("core.encode_item", function()
  it("writes every attribute class as serialize_item does", function()
    check {
      pk = "p", sk = 1, name = "Ada \u{e9}\"\\", score = -12.5, active = false,
      tags = lunamodb.set{ "b", "a", "c" }, nums = lunamodb.set{ 1, 2.5 }, raw = "\0\1bytes",
      created = lunamodb.datetime("2024-02-29T23:59:59.000001+0000"),
      profile = { city = "Paris", zip = 75001, inner = { deep = true } },
      dyn = { known = 3, other = lunamodb.array{ "x", lunamodb.null } },
      anything = { a = 1, b = lunamodb.set{ "z" } },
      history = { 1, 2, lunamodb.null, 0.5 },
      lines = { { sku = "s1", qty = 2 } },
      loose = { "a", 1, true, {}, lunamodb.array() },
      doc = { a = { 1, 2 } }, expires = lunamodb.datetime(1700000000), shout = "hello",
    }
    check { pk = "p", sk = 2 }
    check { pk = "p", sk = 3, tags = lunamodb.set() }              -- an empty set is absent
    -- members in bytewise order whatever their number (small sets are sorted another way)
    local pool = { "a", "ab", "abc", "b", "B", "\u{e9}", "e", "\u{e9}t\u{e9}", "z", "Z", "0", "10",
      "9", " ", "~", "aa", "a\u{e9}", "ba", "bb", "b b" }
    for n = 1, 40 do
      local members = {}
      for i = 1, n do members[i] = pool[(i * 7 + n) % #pool + 1] .. (i > #pool and i or "") end
      check { pk = "p", sk = 5, tags = lunamodb.set(members) }
    end
    check { pk = "p", sk = 4.5, score = 1e120, created = lunamodb.datetime(-62135596800) }
    check { pk = "p", sk = lunamodb.decimal("12345678901234567890.5"), score = 2 ^ 53 }
    for _, f in ipairs({ 0.1 + 0.2, 1 / 3, 123.456, -2.5e-3, 1e20, 1e-7, 2.0 ^ 60,
      1.7976931348623157e308 / 1e200, 0.30000000000000004, 100.0, -7.25 }) do
      check { pk = "p", sk = 1, score = f, history = { f, f * 3 } }
    end
    check { pk = "p", sk = 0, score = -0.0, created = lunamodb.datetime("9999-12-31T23:59:59.999999Z") }
  end)

  it("writes a datetime's text once and keeps it as the datetime's own", function()
    for _, from in ipairs({ 1700000000, -62135596800, 253402300799.5, 86399.25 }) do
      local dt, fresh = lunamodb.datetime(from), lunamodb.datetime(from)
      local vals = { pk = "p", sk = 1, created = dt }
      check(vals)
      check(vals)                                       -- the kept text, the second time
      assert.equal(tostring(fresh), tostring(dt))        -- the text values would write
      assert.equal(fresh, dt)
    end
  end)

  it("keeps a string set's written members and drops them when the members change", function()
    local K_WIRE = require("lunamodb.values")._layout.k_wire
    local tags = lunamodb.set{ "b", "a" }
    local vals = { pk = "p", sk = 1, tags = tags }
    check(vals)
    assert.equal('"a","b"', rawget(tags, K_WIRE))
    check(vals)                                         -- the kept text, the second time
    local function tags_sent()
      return cjson.decode(A.encode_item_json(T, vals)).tags.SS
    end
    tags:add("c")
    assert.is_nil(rawget(tags, K_WIRE))
    assert.same({ "a", "b", "c" }, tags_sent())
    tags:add("c")                                       -- already a member: nothing changes
    assert.equal('"a","b","c"', rawget(tags, K_WIRE))
    tags:remove("a")
    assert.same({ "b", "c" }, tags_sent())
    tags:remove("zz")                                   -- not a member: nothing changes
    assert.same({ "b", "c" }, tags_sent())
    tags:remove("b"); tags:remove("c")
    check(vals)                                         -- empty again: absent, nothing kept
    assert.is_nil(rawget(tags, K_WIRE))
    tags:add("\u{e9}\n")
    assert.same({ "\u{e9}\n" }, tags_sent())
    -- a copy starts without the text; a number set, even one that was a string set, has none
    assert.is_nil(rawget(lunamodb.set(tags), K_WIRE))
    tags:remove("\u{e9}\n"); tags:add(1)
    assert.is_nil(rawget(tags, K_WIRE))
    refused { pk = "p", sk = 1, tags = tags }
  end)

  it("writes floats as values.encode_number does, with or without printf", function()
    -- the core writes short decimals (m / 10^k, at most 15 digits) without printf: both
    -- sides of that line, and random doubles of every size
    local floats = { 0.7315, -0.5, 100.5, 1e-4, -1e-4, 0.00012345, 1.5e-4, 99999.99999,
      999999999999999.9, 123456789012345.6, 12345678901234.5, 0.1, 0.25, 1e14 + 0.5,
      4503599627370495.5, 9.999999999999999e14, 0.000100000000000001, 3.14159265358979,
      2.718281828459045, 1e15 - 1, -(1e15 - 1), 1e-5, 5e-5, 0.30000000000000004,
      829470805954908.25 }
    -- a tie at 16 digits: C's printf rounds it to even, LuaJIT's own %g up; both paths
    -- must send the one decimal (DynamoDB stores decimals: .2 and .3 differ there)
    assert.equal("829470805954908.2", require("lunamodb.values").encode_number(829470805954908.25))
    math.randomseed(8)
    for _ = 1, 300 do
      local scale = 10 ^ math.random(-6, 16)
      local decimals = 10 ^ math.random(0, 12)
      floats[#floats + 1] = math.floor(math.random() * scale * decimals + 0.5) / decimals
      floats[#floats + 1] = (math.random() - 0.5) * scale
    end
    for _, f in ipairs(floats) do
      if f == f and f ~= math.floor(f) then
        local ok = pcall(A.serialize_item, T, { pk = "p", sk = 1, score = f })
        if ok then check { pk = "p", sk = 1, score = f, history = { f, -f } } end
      end
    end
  end)

  it("writes lists built out of order, and names longer than Lua interns", function()
    local out_of_order = {}
    for i = 6, 1, -1 do out_of_order[i] = i * 1.5 end
    check { pk = "p", sk = 1, history = out_of_order }
    local sparse = { [1] = 1 }
    sparse[3] = 3
    refused { pk = "p", sk = 1, history = sparse }
    local long = ("long_attribute_name_"):rep(4)
    local L = A.schema({ pk = A.Unicode{ hash_key = true }, [long] = A.Unicode{},
      m = A.Map{ fields = { [long] = A.Number{} } } }, "EncSpecLong")
    local vals = { pk = "p", m = {} }
    -- built at run time: Lua 5.4 does not intern strings over 40 bytes
    local name = table.concat({ "long_attribute_name_", "long_attribute_name_",
      "long_attribute_name_", "long_attribute_name_" })
    vals[name] = "v"
    vals.m[name] = 7
    local fast = A.encode_item_json(L, vals)
    assert.is_string(fast)
    assert.same(cjson.decode(core.json_encode((A.serialize_item(L, vals)))), cjson.decode(fast))
    local _, key = core.encode_item(vals, A.encode_plan(L), true)    -- a hash key alone
    assert.equal('{"pk":{"S":"p"}}', key)
  end)

  it("cuts the Key map from the item it writes, and wraps the item when asked", function()
    local vals = { pk = "p\"q", sk = 12.5, name = "n", tags = lunamodb.set{ "a" } }
    local plan = A.encode_plan(T)
    local text, key = core.encode_item(vals, plan, true, '{"PutRequest":{"Item":', "}}")
    assert.same({ PutRequest = { Item = cjson.decode(A.encode_item_json(T, vals)) } },
      cjson.decode(text))
    assert.equal(A.encode_key_json(T, vals), key)
    assert.equal('{"pk":{"S":"p\\"q"},"sk":{"N":"12.5"}}', key)
    assert.is_nil(core.encode_item({ sk = 1 }, plan, true))           -- gives up: one nil
    assert.has_error(function() core.encode_item(vals, {}) end,
      "bad argument #2 to 'encode_item' (an encode plan (core.encode_plan) expected)")
  end)

  it("gives up on what serialize_item refuses", function()
    refused { sk = 1 }                                    -- missing hash key
    refused { pk = "", sk = 1 }                           -- empty key
    refused { pk = "p", sk = 1, name = 5 }
    refused { pk = "p", sk = 1, name = "\255" }           -- invalid UTF-8
    refused { pk = "p", sk = 0 / 0 }
    refused { pk = "p", sk = 1e300 }                      -- over DynamoDB's range
    refused { pk = "p", sk = 5e-324 }                     -- under it
    refused { pk = "p", sk = 1, nope = 1 }                -- undeclared
    refused { pk = "p", sk = 1, [("undeclared_and_longer_than_lua_interns_"):rep(2)] = 1 }
    refused { pk = "p", sk = 1, [1] = "x" }               -- keys that are not names
    refused { pk = "p", sk = 1, [true] = "x" }
    refused { pk = "p", sk = 1, [{}] = "x" }
    refused { pk = "p", sk = 1, tags = lunamodb.set{ 1 } }
    refused { pk = "p", sk = 1, profile = { street = "x" } }
    refused { pk = "p", sk = 1, history = { 1, nil, 3 } }
    refused { pk = "p", sk = 1, lines = { { sku = "s" } } }
    refused { pk = "p", sk = 1, created = "2024-01-01" }
  end)

  it("is what a model's save sends", function()
    local loopback = require "spec.helpers.loopback"
    local srv = loopback.start{ routes = { ["POST /"] = { { status = 200, body = "{}", crc32 = true } } } }
    local M = lunamodb.Model{
      table_name = "enc", host = srv.url, region = "us-east-1",
      access_key_id = "AKID", secret_access_key = "SECRET",
      attributes = { pk = A.Unicode{ hash_key = true }, tags = A.UnicodeSet{},
        when = A.UTCDateTime{ null = true } },
    }
    assert(M.new{ pk = "a", tags = lunamodb.set{ "y", "x" },
      when = lunamodb.datetime("2020-01-01T00:00:00Z") }:save())
    local sent = cjson.decode(srv:requests()[1].body)
    assert.same({ pk = { S = "a" }, tags = { SS = { "x", "y" } },
      when = { S = "2020-01-01T00:00:00.000000+0000" } }, sent.Item)
    assert.equal("enc", sent.TableName)
    srv:stop()
  end)
end)
