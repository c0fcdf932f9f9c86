-- Every attribute type and every expression form, round-tripped through
-- DynamoDB Local with the low-level client.
local lunamodb = require "lunamodb"
local A = require "lunamodb.attributes"
local serializer = require "lunamodb.expressions.serializer"
local ddb = require "spec.helpers.ddb"

local set, datetime, binary, decimal, null = lunamodb.set, lunamodb.datetime, lunamodb.binary,
  lunamodb.decimal, lunamodb.null

local function must(out, err)
  assert(out, tostring(err))
  return out
end

describe("attributes and expressions against DynamoDB Local #integration", function()
  local client, name, Thing

  local Addr = A.Map{ fields = { street = A.Unicode{}, zip_code = A.Number{ attr_name = "zip", null = true } } }
  local Post, Question = {}, {}                       -- any tables can stand for classes

  setup(function()
    client = ddb.client()
    name = ddb.unique_table("attrs")
    Thing = A.schema({
      pk = A.Unicode{ hash_key = true }, sk = A.Number{ range_key = true },
      addr = Addr, blob = A.Binary{ null = true }, legacy_blob = A.Binary{ legacy_encoding = true, null = true },
      blobs = A.BinarySet{}, doc = A.JSON{ null = true }, flag = A.Boolean{ null = true },
      lst = A.List{ null = true }, nums = A.NumberSet{}, raw = A.Map{ null = true },
      dyn = A.DynamicMap{ fields = { at = A.UTCDateTime{ null = true } }, null = true },
      tags = A.UnicodeSet{ attr_name = "tag_set" }, ttl = A.TTL{ null = true },
      lines = A.List{ of = Addr, null = true }, views = A.Number{ null = true },
      big = A.Number{ null = true }, when = A.UTCDateTime{ null = true }, nothing = A.Null{ null = true },
      version = A.Version{}, name = A.Unicode{ null = true },
      cls = A.Discriminator{ null = true },
    }, "Thing")
    A.info(Thing).discriminator:register(Post, "post"):register(Question, "question", "q")
    must(client:call("CreateTable", {
      TableName = name, BillingMode = "PAY_PER_REQUEST",
      AttributeDefinitions = { { AttributeName = "pk", AttributeType = "S" }, { AttributeName = "sk", AttributeType = "N" } },
      KeySchema = { { AttributeName = "pk", KeyType = "HASH" }, { AttributeName = "sk", KeyType = "RANGE" } },
    }))
  end)

  teardown(function()
    if client then
      client:call("DeleteTable", { TableName = name })
      client:close()
    end
  end)

  local function get(pk, sk)
    local out = must(client:call("GetItem", { TableName = name, ConsistentRead = true,
      Key = A.serialize_key(Thing, pk, sk) }))
    return out.Item and A.deserialize_item(Thing, out.Item)
  end

  local full = {
    pk = "p", sk = 1,
    addr = { street = "Main ☃", zip_code = 12345 },
    blob = "\0\1\2\255", legacy_blob = "\202\254", blobs = set{ "\0", "\255\254" },
    doc = { k = { 1, 2, null }, z = "é", nested = { ok = true } },
    flag = false,
    lst = { 1, "a", null, binary("\1"), { k = "v" }, { true }, lunamodb.array() },
    nums = set{ 1, 2.5, decimal("12345678901234567890123456789012345678") },
    raw = { a = 1, b = null, c = { 1, "two", { d = true } }, e = set{ "x", "y" }, empty_map = {}, empty_list = lunamodb.array() },
    dyn = { at = datetime("2020-01-01T00:00:00Z"), extra = 5 },
    tags = set{ "lua", "dynamo" },
    ttl = datetime("2030-01-01T00:00:00Z"),
    lines = { { street = "a" }, { street = "b", zip_code = 2 } },
    views = 10, big = decimal("-1.23456789012345678901234567890123456E-100"),
    when = datetime{ year = 2024, month = 1, day = 2, hour = 3, min = 4, sec = 5, usec = 6789 },
    nothing = null, version = 1, name = "", cls = Question,
  }

  it("round-trips every type exactly", function()
    must(client:call("PutItem", { TableName = name, Item = A.serialize_item(Thing, full) }))
    local back = get("p", 1)
    for k, v in pairs(full) do
      if type(v) == "table" and getmetatable(v) and getmetatable(v).__eq then
        assert.equal(v, back[k], k)                    -- sets, datetimes, decimals: by value
      else
        assert.same(v, back[k], k)
      end
    end
    assert.is_true(lunamodb.is_array(back.raw.empty_list))
    assert.is_false(lunamodb.is_array(back.raw.empty_map))
    assert.is_true(lunamodb.is_array(back.lst[7]))
    assert.same(A.serialize_item(Thing, full), A.serialize_item(Thing, back))
    assert.equal(Question, back.cls)
    -- an older discriminator value still reads as its class
    must(client:call("UpdateItem", { TableName = name, Key = A.serialize_key(Thing, "p", 1),
      UpdateExpression = "SET cls = :q", ExpressionAttributeValues = { [":q"] = { S = "q" } } }))
    assert.equal(Question, get("p", 1).cls)
  end)

  -- conditions and updates use * + - so the spec also runs on LuaJIT
  it("applies a condition that passes and refuses one that fails", function()
    local item = A.serialize_item(Thing, full)
    local s = serializer.new()
    local params = { TableName = name, Item = item }
    params.ConditionExpression = s:condition(Thing.version:eq(1) * Thing.tags:contains("lua")
      * Thing.addr.street:begins_with("Main") * Thing.views:between(5, 15)
      * Thing.lines[2].zip_code:exists() * Thing.flag:is_type() * Thing.name:is_in("", "x")
      * Thing.nums:size():eq(3) * -Thing.blob:does_not_exist()
      * (Thing.views:gt(100) + Thing.views:ge(10)) * Thing.views:lt(11) * Thing.views:le(10)
      * Thing.views:ne(3) * Thing.raw.c[2]:eq("two") * Thing.when:lt(datetime("2025-01-01T00:00:00Z"))
      * Thing.lst[1]:eq(1) * Thing.doc:contains("nested"))
    s:apply(params)
    must(client:call("PutItem", params))

    s = serializer.new()
    params = { TableName = name, Item = item }
    params.ConditionExpression = s:condition(Thing.views:gt(10) + Thing.tags:contains("absent"))
    s:apply(params)
    local out, err = client:call("PutItem", params)
    assert.is_nil(out)
    assert.is_true(err:is("ConditionalCheckFailed"))
  end)

  it("applies every update action", function()
    must(client:call("PutItem", { TableName = name, Item = A.serialize_item(Thing, full) }))
    local s = serializer.new()
    local params = { TableName = name, Key = A.serialize_key(Thing, "p", 1), ReturnValues = "ALL_NEW" }
    params.UpdateExpression = s:update{
      Thing.views:set(Thing.views + 5),
      Thing.name:set(Thing.name:if_not_exists("dflt")),
      Thing.when:set(Thing.when:if_not_exists(datetime(0))),
      Thing.lst:set(Thing.lst:append{ "end" }),
      Thing.lines:set(Thing.lines:prepend{ { street = "first" } }),
      Thing.addr.street:set("Side"),
      Thing.raw.c[1]:set(100),
      Thing.ttl:set(Thing.ttl + 60),
      Thing.doc:remove(),
      Thing.blob:remove(),
      Thing.tags:add(set{ "new" }),
      Thing.version:add(1),
      Thing.nums:delete(set{ 1 }),
    }
    params.ConditionExpression = s:condition(Thing.version:eq(1))
    s:apply(params)
    local new = A.deserialize_item(Thing, must(client:call("UpdateItem", params)).Attributes)
    assert.equal(15, new.views)
    assert.equal("", new.name)
    assert.equal(full.when, new.when)
    assert.equal("end", new.lst[8])
    assert.equal("first", new.lines[1].street)
    assert.equal(3, #new.lines)
    assert.equal("Side", new.addr.street)
    assert.equal(100, new.raw.c[1])
    assert.equal(datetime("2030-01-01T00:01:00Z"), new.ttl)
    assert.is_nil(new.doc)
    assert.is_nil(new.blob)
    assert.equal(set{ "lua", "dynamo", "new" }, new.tags)
    assert.equal(2, new.version)
    assert.equal(set{ 2.5, decimal("12345678901234567890123456789012345678") }, new.nums)

    -- subtraction from a value, an empty set meaning REMOVE, and NULL written on purpose
    s = serializer.new()
    params = { TableName = name, Key = A.serialize_key(Thing, "p", 1), ReturnValues = "ALL_NEW" }
    params.UpdateExpression = s:update{
      Thing.views:set(100 - Thing.views),
      Thing.tags:set(set{}),
      Thing.name:set(null),
      Thing.ttl:set(Thing.ttl - 60),
    }
    s:apply(params)
    local raw = must(client:call("UpdateItem", params)).Attributes
    assert.is_nil(raw.tag_set)
    assert.same({ NULL = true }, raw.name)
    new = A.deserialize_item(Thing, raw)
    assert.equal(85, new.views)
    assert.is_nil(new.name)
    assert.equal(datetime("2030-01-01T00:00:00Z"), new.ttl)          -- +60 then -60
  end)

  it("reads back only what a projection names", function()
    must(client:call("PutItem", { TableName = name, Item = A.serialize_item(Thing, full) }))
    local s = serializer.new()
    local params = { TableName = name, Key = A.serialize_key(Thing, "p", 1), ConsistentRead = true }
    params.ProjectionExpression = s:projection({ Thing.addr.street, Thing.lines[2], "tags", "raw.c[3].d" }, Thing)
    s:apply(params)
    local item = must(client:call("GetItem", params)).Item
    local got = A.deserialize_item(Thing, item)
    assert.same({ street = "Main ☃" }, got.addr)
    assert.same({ { street = "b", zip_code = 2 } }, got.lines)
    assert.equal(full.tags, got.tags)
    assert.same({ c = { { d = true } } }, got.raw)
    assert.is_nil(got.views)
    assert.is_nil(got.version)
  end)
end)
