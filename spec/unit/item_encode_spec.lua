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
    check { pk = "p", sk = 4.5, score = 1e120, created = lunamodb.datetime(-62135596800) }
    check { pk = "p", sk = lunamodb.decimal("12345678901234567890.5"), score = 2 ^ 53 }
    for _, f in ipairs({ 0.1 + 0.2, 1 / 3, 123.456, -2.5e-3, 1e20, 1e-7, 2.0 ^ 60,
      1.7976931348623157e308 / 1e200, 0.30000000000000004, 100.0, -7.25 }) do
      check { pk = "p", sk = 1, score = f, history = { f, f * 3 } }
    end
    check { pk = "p", sk = 0, score = -0.0, created = lunamodb.datetime("9999-12-31T23:59:59.999999Z") }
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
