-- core.encode_item: the core's schema-directed encoder must write exactly the attribute map
-- A.serialize_item builds, for every attribute class; and give up (nil) on every value the
-- slow path would refuse, so that path raises its precise error.
local core = require "lunamodb.core"
local lunamodb = require "lunamodb"
local A = require "lunamodb.attributes"
local cjson = require "cjson"

local Upper = A.define{
  kind = "SpecUpper2", type = "S",
  serialize = function(_, v) return v:upper() end,
  deserialize = function(_, s) return s:lower() end,
}

local T = A.schema({
  pk = A.Unicode{ hash_key = true },
  sk = A.Number{ range_key = true },
  name = A.Unicode{ null = true },
  score = A.Number{ null = true },
  active = A.Boolean{ null = true },
  tags = A.UnicodeSet{},
  nums = A.NumberSet{},
  raw = A.Binary{ null = true },
  created = A.UTCDateTime{ null = true, attr_name = "c" },
  profile = A.Map{ null = true, fields = {
    city = A.Unicode{ null = true }, zip = A.Number{ attr_name = "z", null = true },
    inner = A.Map{ null = true, fields = { deep = A.Boolean{ null = true } } },
  } },
  dyn = A.DynamicMap{ null = true, fields = { known = A.Number{ null = true } } },
  anything = A.Map{ null = true },
  history = A.List{ null = true, of = A.Number{} },
  lines = A.List{ null = true, of = A.Map{ fields = { sku = A.Unicode{}, qty = A.Number{} } } },
  loose = A.List{ null = true },
  doc = A.JSON{ null = true },
  expires = A.TTL{ null = true },
  shout = Upper{ null = true },
}, "EncSpec")

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
    check { pk = "p", sk = 0, score = -0.0, created = lunamodb.datetime("9999-12-31T23:59:59.999999Z") }
  end)

  it("gives up on what serialize_item refuses", function()
    refused { sk = 1 }                                    -- missing hash key
    refused { pk = "", sk = 1 }                           -- empty key
    refused { pk = "p", sk = 1, name = 5 }
    refused { pk = "p", sk = 1, name = "\255" }           -- invalid UTF-8
    refused { pk = "p", sk = 0 / 0 }
    refused { pk = "p", sk = 1e300 }                      -- over DynamoDB's range
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
