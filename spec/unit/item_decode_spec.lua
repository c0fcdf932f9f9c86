-- core.decode_items: the core's schema-directed decoder must give exactly the values the
-- attributes' own decoders give (A.deserialize_item), for every attribute class, stored
-- NULLs, names the schema does not declare, and numbers and datetimes of every shape; and
-- give up (nil) on anything DynamoDB would not send, so the slow path reports it.
local core = require "lunamodb.core"
local lunamodb = require "lunamodb"
local A = require "lunamodb.attributes"

local math_type = math.type or function(n)
  if type(n) ~= "number" then return nil end
  return (n % 1 == 0 and n >= -2 ^ 53 and n <= 2 ^ 53) and "integer" or "float"
end

local function same(a, b, where)
  if type(a) ~= type(b) then
    error(string.format("%s: %s (%s) vs %s (%s)", where, type(a), tostring(a), type(b), tostring(b)), 0)
  end
  if type(a) ~= "table" then
    if a ~= b or math_type(a) ~= math_type(b) then
      error(string.format("%s: %s vs %s", where, tostring(a), tostring(b)), 0)
    end
    return
  end
  if getmetatable(a) ~= getmetatable(b) then error(where .. ": different metatables", 0) end
  for k, v in pairs(a) do same(v, rawget(b, k), where .. "." .. tostring(k)) end
  for k in pairs(b) do
    if rawget(a, k) == nil then error(where .. "." .. tostring(k) .. ": missing", 0) end
  end
end

local T = require("spec.helpers.codec_schema").schema("Spec", { blobs = A.BinarySet{}, version = A.Version{} })

local spec = A.decode_spec(T)
local HOOKS = A.DECODE_HOOKS

local function fast(text, mode, field)
  return core.decode_items(text, spec, mode or "list", field or "Items", HOOKS)
end

-- Both decoders on one page of wire items; returns the fast page.
local function check_page(items)
  local text = core.json_encode({ Items = setmetatable(items, core.array_mt), Count = #items })
  local page = fast(text)
  assert.is_table(page, "the fast decoder gave up on " .. text)
  local slow = core.json_decode(text)
  assert.equal(#items, #page.Items)
  for i, wire in ipairs(slow.Items) do
    same(page.Items[i], A.deserialize_item(T, wire, { unknown = "aside" }), "item " .. i)
  end
  assert.equal(#items, page.Count)
  return page
end

local B64 = "QUJD"   -- "ABC"

describe("core.decode_items", function()
  it("decodes every attribute class as the attributes do", function()
    check_page({ {
      pk = { S = "p" }, sk = { N = "1" }, name = { S = "Ada" }, score = { N = "-12.5" },
      active = { BOOL = false }, tags = { SS = { "b", "a" } }, nums = { NS = { "1", "2.5" } },
      blobs = { BS = { B64 } }, raw = { B = B64 }, c = { S = "2024-02-29T23:59:59.000001+0000" },
      profile = { M = { city = { S = "Paris" }, z = { N = "75001" }, extra = { S = "ignored" },
        inner = { M = { deep = { BOOL = true } } } } },
      dyn = { M = { known = { N = "3" }, other = { L = { { S = "x" }, { NULL = true } } } } },
      anything = { M = { a = { N = "1" }, b = { SS = { "z" } } } },
      history = { L = { { N = "1" }, { N = "2" }, { NULL = true }, { N = "0.5" } } },
      lines = { L = { { M = { sku = { S = "s1" }, qty = { N = "2" } } } } },
      loose = { L = { { S = "a" }, { N = "1" }, { BOOL = true }, { M = {} }, { L = setmetatable({}, core.array_mt) } } },
      doc = { S = '{"a": [1, 2]}' }, expires = { N = "1700000000" }, version = { N = "7" },
      shout = { S = "HELLO" }, unknown_attr = { N = "42" }, other = { M = { q = { S = "r" } } },
    } })
  end)

  it("puts an item's undeclared names aside, a dynamic map's among its own", function()
    local page = check_page({ { pk = { S = "p" }, sk = { N = "4" }, unknown_attr = { N = "42" },
      other = { M = { q = { S = "r" } } }, dyn = { M = { known = { N = "3" }, more = { S = "m" } } } } })
    local item = page.Items[1]
    assert.same({ unknown_attr = 42, other = { q = "r" } }, item[A.EXTRA])
    assert.is_nil(rawget(item, "unknown_attr"))
    assert.same({ known = 3, more = "m" }, item.dyn)
    page = check_page({ { pk = { S = "p" }, sk = { N = "5" } } })
    assert.is_nil(page.Items[1][A.EXTRA])                            -- none: no table
  end)

  it("decodes lists of every length, short ones held on the stack and longer ones beyond", function()
    -- the core decodes a list's first 32 elements before making its table
    local function numbers(n, null_at)
      local l = setmetatable({}, core.array_mt)
      for i = 1, n do l[i] = i == null_at and { NULL = true } or { N = tostring(i * 3) } end
      return l
    end
    local function rows(n)
      local l = setmetatable({}, core.array_mt)
      for i = 1, n do l[i] = { M = { sku = { S = "s" .. i }, qty = { N = tostring(i) } } } end
      return l
    end
    local items = {}
    for _, n in ipairs({ 0, 1, 2, 31, 32, 33, 64, 65, 100 }) do
      items[#items + 1] = { pk = { S = "l" }, sk = { N = tostring(n) }, history = { L = numbers(n, n - 1) },
        lines = { L = rows(n) }, loose = { L = { { L = numbers(n) }, { S = "after" } } } }
    end
    local page = check_page(items)
    assert.equal(100, #page.Items[9].history)
    assert.equal(99, page.Items[9].history[33])
    assert.equal("s65", page.Items[9].lines[65].sku)
    assert.equal("after", page.Items[9].loose[2])
  end)

  it("reads stored NULLs as absent, like the attributes", function()
    check_page({ {
      pk = { S = "p" }, sk = { N = "2" }, name = { NULL = true }, score = { NULL = true },
      active = { NULL = true }, c = { NULL = true }, profile = { NULL = true },
      history = { NULL = true }, shout = { NULL = true },
    } })
  end)

  it("decodes numbers of every size and shape exactly", function()
    local texts = { "0", "-0", "7", "-7", "123456789012345", "1234567890123456",
      "123456789012345678", "1234567890123456789", "9223372036854775807",
      "-9223372036854775808", "99999999999999999999999", "0.5", "-0.001", "3.14159265358979",
      "3.141592653589793", "1234567890.12345", "0.000000000000000000001", "100000000000000000000.5",
      "1.1", "12345678901234567890123456789012345678" }
    local items = {}
    for i, t in ipairs(texts) do items[i] = { pk = { S = "n" }, sk = { N = t }, score = { N = t } } end
    check_page(items)
  end)

  it("decodes decimals exactly as tonumber does, the core's short path and its long one", function()
    -- a decimal of at most 15 significant digits is a double (more make a lunamodb decimal):
    -- up to 22 decimals the core divides two exact doubles, past that it asks strtod; both
    -- must give tonumber's double, bit for bit
    local texts = { "0.1", "0.2", "0.3", "-0.7315", "9.99999999999999", "0.000000000000000000001",
      "0.0000000000000000000001", "0.00000000000000000000001", "123456789012.345",
      "1.79769313486231", "4.94065645841246", "2.2250738585072", "99999999999999.9" }
    local seed = 12345
    local function rand(n)              -- a fixed sequence: the same texts on every run
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n
    end
    for _ = 1, 3000 do                  -- DynamoDB's own spelling: no trailing zero decimals
      local sig, decimals = 1 + rand(15), rand(26)
      local digits = {}
      for i = 1, sig do digits[i] = tostring((i == 1 or i == sig) and 1 + rand(9) or rand(10)) end
      local text = table.concat(digits)
      if decimals >= #text then text = "0." .. string.rep("0", decimals - #text) .. text
      elseif decimals > 0 then text = text:sub(1, #text - decimals) .. "." .. text:sub(-decimals) end
      texts[#texts + 1] = (rand(2) == 0 and "-" or "") .. text
    end
    local items = {}
    for i, t in ipairs(texts) do items[i] = { pk = { S = "n" }, sk = { N = tostring(i) }, score = { N = t } } end
    local page = check_page(items)
    for i, t in ipairs(texts) do
      assert(page.Items[i].score == tonumber(t), t)
    end
  end)

  it("decodes datetimes, and leaves odd texts to the attribute", function()
    local items = {}
    for i, t in ipairs({ "0001-01-01T00:00:00.000000+0000", "9999-12-31T23:59:59.999999+0000",
      "1970-01-01T00:00:00.000000+0000", "2000-02-29T12:00:00.500000+0000",
      "2023-06-15T08:30:00.123456+0000" }) do
      items[i] = { pk = { S = "d" }, sk = { N = tostring(i) }, c = { S = t } }
    end
    check_page(items)
    -- PynamoDB's zero-filled short form: valid, but only the attribute knows it
    local short = core.json_encode({ Items = setmetatable({ { pk = { S = "d" }, sk = { N = "1" },
      c = { S = "1-01-01T00:00:00.000000+0000" } } }, core.array_mt) })
    assert.is_nil(fast(short))
  end)

  it("takes GetItem's Item, UpdateItem's Attributes and BatchGetItem's Responses", function()
    local wire = { pk = { S = "p" }, sk = { N = "3" }, tags = { SS = { "x" } } }
    local want = A.deserialize_item(T, core.json_decode(core.json_encode(wire)), { unknown = "aside" })
    local out = fast(core.json_encode({ Item = wire, ConsumedCapacity = { CapacityUnits = 0.5 } }),
      "item", "Item")
    same(out.Item, want, "Item")
    assert.equal(0.5, out.ConsumedCapacity.CapacityUnits)
    out = fast(core.json_encode({ Attributes = wire }), "item", "Attributes")
    same(out.Attributes, want, "Attributes")
    out = fast(core.json_encode({ Responses = { t1 = setmetatable({ wire, wire }, core.array_mt) },
      UnprocessedKeys = {} }), "tables", "Responses")
    same(out.Responses.t1[2], want, "Responses")
    assert.same({}, out.UnprocessedKeys)
    -- other members are decoded as json_decode does, LastEvaluatedKey included
    out = fast(core.json_encode({ Items = setmetatable({}, core.array_mt), Count = 0,
      LastEvaluatedKey = { pk = { S = "p" }, sk = { N = "9" } } }))
    assert.same({ pk = { S = "p" }, sk = { N = "9" } }, out.LastEvaluatedKey)
    assert.equal(0, #out.Items)
  end)

  it("reads compact values straight from the text, and every other spelling the same", function()
    -- DynamoDB's own compact form ({"S":"x"} with nothing to unescape) is read without the
    -- lexer; whitespace, escapes, other scripts and every other valid spelling are not
    local function same_as_slow(text)
      local page = fast(text)
      assert.is_table(page, "the fast decoder gave up on " .. text)
      for i, wire in ipairs(core.json_decode(text).Items) do
        same(page.Items[i], A.deserialize_item(T, wire, { unknown = "aside" }), text)
      end
    end
    same_as_slow('{"Items":[{"pk":{"S":"p"},"sk":{"N":"7"},"active":{"BOOL":true},"name":{"S":""}}]}')
    same_as_slow('{"Items":[{"pk":{ "S":"p"},"sk":{"N" :"7"},"active":{"BOOL": false },"name":{"S":"a" }}]}')
    same_as_slow([[{"Items":[{"pk":{"S":"q\"x\\y\u00e9"},"sk":{"N":"-0.5"},"name":{"S":"]]
      .. "\u{e9}t\u{e9} \u{1F600}" .. [["}}]}]])
    same_as_slow('{"Items":[{"pk":{"S":"p"},"sk":{"N":"1e3"},"active":{"NULL":true},"name":{"NULL":true}}]}')
    same_as_slow('{"Items":[{"pk":{"S":"p"},"sk":{"N":"12345678901234567890"},"score":{"N":"0.1"}}]}')
    same_as_slow('{"Items":[{"pk":{"S":"p"},"sk":{"N":"1"},"history":{"L":[{"N":"1"},{"NULL":true},{"N":"2.5"}]}}]}')
    -- and what is wrong right after a compact value is still found
    for _, bad in ipairs({
      '{"Items":[{"pk":{"S":"p"}}',                     -- unterminated
      '{"Items":[{"pk":{"S":"p"}}}]}',                  -- an object closed twice
      '{"Items":[{"pk":{"S":"p"},}]}',                  -- a trailing comma
      '{"Items":[{"pk":{"S":"p"}"sk":{"N":"1"}}]}',     -- a missing comma
      '{"Items":[{"active":{"BOOL":true}x}]}',
      '{"Items":[{"pk":{"S":"p\tq"}}]}',                -- a raw control character
      '{"Items":[{"sk":{"N":"1"}]}]}',
    }) do
      assert.is_nil(fast(bad), bad)
    end
  end)

  it("gives up on what DynamoDB never sends, so the slow path can say what is wrong", function()
    assert.is_nil(fast("not json"))
    assert.is_nil(fast('{"Items":[{"pk":{"S":"a","N":"1"}}]}'))       -- two members
    assert.is_nil(fast([[{"Items":[{"sk":{"N":"12x"}}]}]]))            -- not a number
    assert.is_nil(fast('{"Items":[{"sk":{"N":"12"}}]} trailing'))
    assert.is_nil(fast('{"Items":{}}'))
    -- a spec whose map or list entry has no sub spec: given up, not read
    local odd = { false, m = { 6, "m", 42, {} }, l = { 7, "l", "x", {} } }
    assert.is_nil(core.decode_items('{"Item":{"m":{"M":{"a":{"S":"b"}}}}}', odd, "item", "Item", HOOKS))
    assert.is_nil(core.decode_items('{"Item":{"l":{"L":[{"S":"b"}]}}}', odd, "item", "Item", HOOKS))
    -- a value of the wrong type goes to the attribute, which raises as it always did
    assert.has_error(function() fast('{"Items":[{"name":{"N":"1"}}]}') end)
  end)

  it("is what a model's get, query and batch_get return (against the loopback server)", function()
    local loopback = require "spec.helpers.loopback"
    local item = { pk = { S = "u1" }, sk = { N = "5" }, name = { S = "Ada" },
      tags = { SS = { "a", "b" } }, c = { S = "2024-01-02T03:04:05.000006+0000" } }
    local page = core.json_encode({ Items = setmetatable({ item, item }, core.array_mt), Count = 2,
      ScannedCount = 2 })
    local srv = loopback.start{ routes = {
      ["POST /"] = {
        { status = 200, body = core.json_encode({ Item = item }), crc32 = true },
        { status = 200, body = page, crc32 = true },
      },
    } }
    local M = lunamodb.Model{
      table_name = "ttt", host = srv.url, region = "us-east-1",
      access_key_id = "AKID", secret_access_key = "SECRET",
      attributes = { pk = A.Unicode{ hash_key = true }, sk = A.Number{ range_key = true },
        name = A.Unicode{ null = true }, tags = A.UnicodeSet{},
        created = A.UTCDateTime{ attr_name = "c", null = true } },
    }
    local got = assert(M:get("u1", 5))
    assert.equal("Ada", got.name)
    assert.is_true(got.tags:has("b"))
    assert.equal(6, got.created.usec)
    local results = M:query("u1")
    local first = results:next()
    assert.equal(5, first.sk)
    -- the resume key inside a page comes from the decoded values
    assert.same({ pk = { S = "u1" }, sk = { N = "5" } }, results.last_evaluated_key)
    assert.equal("Ada", results:next().name)
    assert.is_nil(results:next())
    srv:stop()
  end)
end)
