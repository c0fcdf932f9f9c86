-- Attribute types: PynamoDB 6.1's exact wire formats, validation with full
-- paths, and the golden item of reference §4.9.
local lunamodb = require "lunamodb"
local A = require "lunamodb.attributes"
local values = require "lunamodb.values"
local core = require "lunamodb.core"
local cjson = require "cjson"

local set, datetime, binary, null = values.set, values.datetime, values.binary, core.null

local function wire(attr, v) return attr:serialize(v, "x") end
local function read(attr, av) return attr:deserialize(av, "x") end

-- errors carry their path; match the message after "lunamodb: "
local function refuses(f, pattern)
  local ok, err = pcall(f)
  assert.is_false(ok, "expected an error matching " .. pattern)
  assert.matches(pattern, tostring(err))
end

describe("scalar attributes", function()
  it("Unicode is S, empty strings included, UTF-8 only", function()
    assert.same({ S = "héllo" }, wire(A.Unicode(), "héllo"))
    assert.same({ S = "" }, wire(A.Unicode(), ""))
    assert.equal("héllo", read(A.Unicode(), { S = "héllo" }))
    refuses(function() wire(A.Unicode(), 5) end, "^lunamodb: x: expected a string %(Unicode%), got number$")
    refuses(function() wire(A.Unicode(), "\255") end, "not valid UTF%-8")
  end)

  it("Number is N with exact text both ways", function()
    assert.same({ N = "1" }, wire(A.Number(), 1))
    assert.same({ N = "1.5" }, wire(A.Number(), 1.5))
    assert.same({ N = "12345678901234567890123456789012345678" },
      wire(A.Number(), values.decimal("12345678901234567890123456789012345678")))
    assert.equal(42, read(A.Number(), { N = "42" }))
    assert.equal(1.5, read(A.Number(), { N = "1.5" }))
    local big = read(A.Number(), { N = "12345678901234567890123456789012345678" })
    assert.is_true(values.is_decimal(big))
    assert.equal("12345678901234567890123456789012345678", tostring(big))
    refuses(function() wire(A.Number(), "5") end, "^lunamodb: x: ")
    refuses(function() wire(A.Number(), 0 / 0) end, "^lunamodb: x: ")
    refuses(function() wire(A.Number(), true) end, "^lunamodb: x: ")
  end)

  it("Binary is base64, with PynamoDB's legacy double encoding as an option", function()
    assert.same({ B = "yv4=" }, wire(A.Binary(), "\202\254"))
    assert.same({ B = "eXY0PQ==" }, wire(A.Binary{ legacy_encoding = true }, "\202\254"))
    assert.equal("\202\254", read(A.Binary(), { B = "yv4=" }))
    assert.equal("\202\254", read(A.Binary{ legacy_encoding = true }, { B = "eXY0PQ==" }))
    assert.same({ B = "" }, wire(A.Binary(), ""))
    refuses(function() read(A.Binary(), { B = "not base64!" }) end, "not valid base64")
  end)

  it("Boolean is BOOL and only takes booleans", function()
    assert.same({ BOOL = false }, wire(A.Boolean(), false))
    assert.is_true(read(A.Boolean(), { BOOL = true }))
    refuses(function() wire(A.Boolean(), 1) end, "expected a boolean, got number")
  end)

  it("UTCDateTime is S in PynamoDB's format, six microsecond digits", function()
    local dt = datetime("2024-01-02T03:04:05.006789Z")
    assert.same({ S = "2024-01-02T03:04:05.006789+0000" }, wire(A.UTCDateTime(), dt))
    assert.equal(dt, read(A.UTCDateTime(), { S = "2024-01-02T03:04:05.006789+0000" }))
    refuses(function() read(A.UTCDateTime(), { S = "2024-01-02 03:04:05" }) end, "does not match format")
    refuses(function() wire(A.UTCDateTime(), "2024-01-02") end, "expected a datetime")
  end)

  it("JSON is S written as Python's json.dumps writes it", function()
    assert.same({ S = '{"a": [1, null], "b": "\\u00fc"}' },
      wire(A.JSON(), { a = { 1, null }, b = "ü" }))
    assert.same({ S = "[]" }, wire(A.JSON(), lunamodb.array()))
    assert.same({ S = "{}" }, wire(A.JSON(), {}))
    assert.same({ S = "1.5" }, wire(A.JSON(), 1.5))
    assert.same({ S = '"\\ud834\\udd1e"' }, wire(A.JSON(), "𝄞"))
    assert.equal("1e+20", A.python_json(1e20))
    assert.equal("1e-07", A.python_json(1e-7))
    if math.type then assert.equal("1.0", A.python_json(1.0)) end   -- LuaJIT has no float/integer split
    assert.equal("0.1", A.python_json(0.1))
    assert.equal("1e+16", A.python_json(1e16 + 0.5))
    local back = read(A.JSON(), { S = '{"k": [1, 2, null], "z": "\\u00e9"}' })
    assert.equal(2, back.k[2])
    assert.equal(null, back.k[3])
    assert.equal("é", back.z)
  end)

  it("Null is NULL", function()
    assert.same({ NULL = true }, wire(A.Null(), null))
    assert.equal(null, read(A.Null(), { NULL = true }))
  end)

  it("TTL is whole epoch seconds and reads back as a datetime", function()
    assert.same({ N = "1893456000" }, wire(A.TTL(), datetime("2030-01-01T00:00:00Z")))
    assert.same({ N = "1893456000" }, wire(A.TTL(), 1893456000))
    assert.equal(datetime(1893456000), read(A.TTL(), { N = "1893456000" }))
    refuses(function() wire(A.TTL(), 1.5) end, "whole epoch seconds")
  end)

  it("Version is a whole number", function()
    assert.same({ N = "3" }, wire(A.Version(), 3))
    assert.equal(3, read(A.Version(), { N = "3" }))
    refuses(function() wire(A.Version(), 1.5) end, "whole number")
  end)

  it("Discriminator stores a registered class's value", function()
    local Base, Child = {}, {}
    local d = A.Discriminator():register(Base, "base"):register(Child, "child", "kid")
    assert.same({ S = "child" }, wire(d, Child))
    assert.equal(Child, read(d, { S = "kid" }))
    refuses(function() read(d, { S = "nope" }) end, "unknown discriminator value: nope")
    refuses(function() wire(d, {}) end, "not a registered class")
    assert.has_error(function() d:register({}, "child") end)
  end)

  it("refuses a stored value of another type", function()
    refuses(function() read(A.Number(), { S = "1" }) end, "^lunamodb: x: stored as S, declared as Number %(N%)$")
  end)
end)

describe("sets", function()
  it("are SS / NS / BS in a deterministic order, empty means absent", function()
    assert.same({ SS = { "a", "b" } }, wire(A.UnicodeSet(), set{ "b", "a" }))
    assert.same({ NS = { "1", "2.5", "10" } }, wire(A.NumberSet(), set{ 10, 2.5, 1 }))
    assert.same({ BS = { "AA==", "AQ==" } }, wire(A.BinarySet(), set{ "\1", "\0" }))
    assert.is_nil(wire(A.UnicodeSet(), set{}))
    assert.equal(set{ "a", "b" }, read(A.UnicodeSet(), { SS = { "b", "a" } }))
    assert.equal(set{ 1, 2.5 }, read(A.NumberSet(), { NS = { "2.5", "1" } }))
    assert.equal(set{ "\0" }, read(A.BinarySet(), { BS = { "AA==" } }))
  end)

  it("refuses other values and mismatched members", function()
    refuses(function() wire(A.UnicodeSet(), { "a" }) end, "expected a set %(lunamodb.set{...}%), got table")
    refuses(function() wire(A.NumberSet(), set{ "a" }) end, "holds N members, not strings")
    refuses(function() wire(A.UnicodeSet(), set{ 1 }) end, "holds S members, not numbers")
  end)

  it("serialize one member for contains()", function()
    assert.same({ S = "lua" }, A.UnicodeSet():serialize_element("lua", "tags"))
    assert.same({ N = "3" }, A.NumberSet():serialize_element(3, "nums"))
  end)
end)

describe("lists and maps", function()
  local Line = A.Map{ fields = { sku = A.Unicode{}, qty = A.Number{ default = 1 } } }

  it("type a list's elements with 'of' and name the failing index", function()
    local lines = A.List{ of = Line }
    assert.same({ L = { { M = { sku = { S = "a" }, qty = { N = "1" } } } } }, wire(lines, { { sku = "a" } }))
    refuses(function() wire(lines, { { sku = "a" }, { sku = 5 } }) end,
      "^lunamodb: x%[2%]%.sku: expected a string %(Unicode%), got number$")
    refuses(function() wire(lines, { { sku = "a", price = 1 } }) end,
      "^lunamodb: x%[1%]%.price: is not a field of this map %(declared: qty, sku%)$")
    refuses(function() wire(A.List{ of = A.Number }, { 1, "2" }) end, "^lunamodb: x%[2%]: ")
  end)

  it("keep an empty list apart from an empty map", function()
    local l = wire(A.List(), lunamodb.array())
    assert.equal("[]", core.json_encode(l.L))
    assert.equal("{}", core.json_encode(wire(A.Map(), {}).M))
    assert.is_true(lunamodb.is_array(read(A.List(), { L = lunamodb.array() })))
    assert.same({ L = { { N = "1" }, { S = "a" }, { NULL = true } } }, wire(A.List(), { 1, "a", null }))
  end)

  it("type untyped values dynamically, binary and NULL included", function()
    local av = wire(A.List(), { 1, "a", null, binary("\1"), { k = "v" }, { true } })
    assert.same({ L = { { N = "1" }, { S = "a" }, { NULL = true }, { B = "AQ==" },
      { M = { k = { S = "v" } } }, { L = { { BOOL = true } } } } }, av)
    local back = read(A.List(), av)
    assert.equal(null, back[3])
    assert.equal(binary("\1"), back[4])
    assert.same(av, wire(A.List(), back))                  -- round trip
    refuses(function() wire(A.Map(), { s = set{} }) end, "^lunamodb: x%.s: cannot store an empty set")
    refuses(function() wire(A.Map(), { [1] = "a", b = 2 }) end, "map keys must be strings")
  end)

  it("store typed-map fields under their attr_name aliases", function()
    local addr = A.Map{ fields = { street = A.Unicode{}, zip_code = A.Number{ attr_name = "zip", null = true } } }
    assert.same({ M = { street = { S = "s" }, zip = { N = "123" } } }, wire(addr, { street = "s", zip_code = 123 }))
    assert.same({ street = "s", zip_code = 123 }, read(addr, { M = { street = { S = "s" }, zip = { N = "123" } } }))
    refuses(function() wire(addr, { zip_code = 1 }) end,
      "^lunamodb: x%.street: cannot be nil %(the field is not declared null = true%)$")
  end)

  it("DynamicMap types declared fields and keeps other keys", function()
    local d = A.DynamicMap{ fields = { a = A.UTCDateTime{} } }
    local av = wire(d, { a = datetime("2020-01-01T00:00:00Z"), b = 5, c = set{ "x" } })
    assert.same({ M = { a = { S = "2020-01-01T00:00:00.000000+0000" }, b = { N = "5" }, c = { SS = { "x" } } } }, av)
    local back = read(d, av)
    assert.equal(datetime("2020-01-01T00:00:00Z"), back.a)
    assert.equal(5, back.b)
  end)

  it("refuse nesting deeper than 32 levels, naming the path", function()
    local deep = {}
    local cur = deep
    for _ = 1, 32 do cur.x = {}; cur = cur.x end
    -- the value itself is level 1, so its 32nd nested map is level 33
    refuses(function() wire(A.Map(), deep) end, "^lunamodb: x" .. ("%.x"):rep(32) .. ": nested deeper than 32 levels$")
    local ok_deep = {}
    cur = ok_deep
    for _ = 1, 31 do cur.x = {}; cur = cur.x end
    assert.is_table(wire(A.Map(), ok_deep))
  end)
end)

describe("declarations", function()
  it("reject unknown options and bad defaults", function()
    assert.has_error(function() A.Unicode{ hashkey = true } end, "lunamodb.attributes.Unicode: unknown option 'hashkey'")
    assert.has_error(function() A.Unicode{ null = "yes" } end,
      "lunamodb.attributes.Unicode: option 'null' must be a boolean (got string)")
    assert.has_error(function() A.Number{ default = 1, default_for_new = 2 } end,
      "lunamodb.attributes.Number: an attribute cannot have both 'default' and 'default_for_new'")
    assert.has_error(function() A.List{ default = {} } end)
    assert.has_no_error(function() A.List{ default = function() return {} end } end)
  end)

  it("reject bad schemas", function()
    assert.has_error(function() A.schema{ a = A.Unicode{ hash_key = true }, b = A.Unicode{ hash_key = true } } end,
      "lunamodb.attributes.schema: two hash keys: 'a' and 'b'")
    assert.has_error(function() A.schema{ a = A.Boolean{ hash_key = true } } end,
      "lunamodb.attributes.schema: key 'a' must be a string, number or binary attribute (got Boolean)")
    assert.has_error(function() A.schema{ a = A.Unicode{}, b = A.Unicode{ attr_name = "a" } } end,
      "lunamodb.attributes.schema: 'a' and 'b' are both stored as 'a'")
    assert.has_error(function() A.schema{ a = "Unicode" } end,
      "lunamodb.attributes.schema: 'a' must be an attribute (got string)")
    assert.has_error(function() A.schema{ a = A.TTL{}, b = A.TTL{} } end)
  end)
end)

describe("items", function()
  local T = A.schema({
    pk = A.Unicode{ hash_key = true },
    sk = A.Number{ range_key = true },
    note = A.Unicode{ null = true },
    tags = A.UnicodeSet{},
    blob = A.Binary{ null = true },
  }, "T")

  it("check nulls, empty keys and unknown names before any network call", function()
    refuses(function() A.serialize_item(T, { sk = 1 }) end,
      "^lunamodb: pk: cannot be nil %(the attribute is not declared null = true%)$")
    refuses(function() A.serialize_item(T, { pk = "", sk = 1 }) end, "^lunamodb: pk: a key attribute cannot be empty$")
    refuses(function() A.serialize_item(T, { pk = "a", sk = 1, nope = 1 }) end, "^lunamodb: nope: T declares no attribute 'nope'$")
    local item = A.serialize_item(T, { pk = "a", sk = 1, nope = 1 }, { unknown = "keep" })
    assert.same({ N = "1" }, item.nope)
    assert.same({ pk = { S = "a" }, sk = { N = "1" } }, A.serialize_item(T, { pk = "a", sk = 1, tags = set{} }))
  end)

  it("refuse an item over 400 KB", function()
    refuses(function() A.serialize_item(T, { pk = "a", sk = 1, note = ("x"):rep(400 * 1024) }) end,
      "^lunamodb: T: the item is %d+ bytes, over DynamoDB's 400 KB limit$")
    assert.is_table(A.serialize_item(T, { pk = "a", sk = 1, note = ("x"):rep(399 * 1024) }))
  end)

  it("serialize keys", function()
    assert.same({ pk = { S = "a" }, sk = { N = "2" } }, A.serialize_key(T, "a", 2))
    refuses(function() A.serialize_key(T, "a") end, "^lunamodb: sk: the key value is missing$")
  end)
end)

describe("custom attribute types", function()
  it("plug in through serialize/deserialize", function()
    local Upper = A.define{
      kind = "UpperCase", type = "S",
      serialize = function(_, v)
        if type(v) ~= "string" then error("expected a string", 0) end
        return v:upper()
      end,
      deserialize = function(_, w) return w:lower() end,
    }
    local u = Upper{ null = true }
    assert.same({ S = "ABC" }, wire(u, "abc"))
    assert.equal("abc", read(u, { S = "ABC" }))
    refuses(function() wire(u, 5) end, "^lunamodb: x: expected a string$")
    assert.has_error(function() A.define{ kind = "Bad" } end)
  end)
end)

describe("the golden item of reference §4.9", function()
  it("matches PynamoDB's captured PutItem Item", function()
    local Addr = A.Map{ fields = { street = A.Unicode{}, zip_code = A.Number{ attr_name = "zip", null = true } } }
    local Thing = A.schema({
      pk = A.Unicode{ hash_key = true }, sk = A.Number{ range_key = true },
      addr = Addr, blob = A.Binary{}, blobs = A.BinarySet{}, doc = A.JSON{}, email = A.Unicode{},
      flag = A.Boolean{}, legacy_blob = A.Binary{ legacy_encoding = true }, lst = A.List{},
      name = A.Unicode{}, nums = A.NumberSet{}, raw = A.Map{}, tags_ = A.UnicodeSet{ attr_name = "tags" },
      ttl = A.TTL{}, typed_lst = A.List{ of = Addr }, views = A.Number{ default = 0 },
      when = A.UTCDateTime{}, version = A.Version{},
    }, "Thing")
    local item = A.serialize_item(Thing, {
      pk = "a", sk = 1, addr = { street = "s", zip_code = 123 }, blob = "\202\254",
      blobs = set{ "\0" }, doc = { k = { 1, 2, null }, z = "é" }, email = "e@x", flag = true,
      legacy_blob = "\202\254", lst = { 1, "a", null, binary("\1"), { k = "v" }, { true } },
      name = "n", nums = set{ 1, 2.5 }, raw = { a = 1, b = null, c = { 1, "two", { d = true } }, e = set{ "x", "y" } },
      tags_ = set{ "x", "y" }, ttl = datetime("2030-01-01T00:00:00Z"), typed_lst = { { street = "t" } },
      views = 0, when = datetime{ year = 2024, month = 1, day = 2, hour = 3, min = 4, sec = 5, usec = 6789 },
      version = 1,
    })
    local captured = cjson.decode([[{"pk": {"S": "a"}, "sk": {"N": "1"},
   "addr": {"M": {"street": {"S": "s"}, "zip": {"N": "123"}}}, "blob": {"B": "yv4="}, "blobs": {"BS": ["AA=="]},
   "doc": {"S": "{\"k\": [1, 2, null], \"z\": \"\\u00e9\"}"}, "email": {"S": "e@x"}, "flag": {"BOOL": true},
   "legacy_blob": {"B": "eXY0PQ=="},
   "lst": {"L": [{"N": "1"}, {"S": "a"}, {"NULL": true}, {"B": "AQ=="}, {"M": {"k": {"S": "v"}}}, {"L": [{"BOOL": true}]}]},
   "name": {"S": "n"}, "nums": {"NS": ["1", "2.5"]},
   "raw": {"M": {"a": {"N": "1"}, "b": {"NULL": true}, "c": {"L": [{"N": "1"}, {"S": "two"}, {"M": {"d": {"BOOL": true}}}]}, "e": {"SS": ["x", "y"]}}},
   "tags": {"SS": ["x", "y"]}, "ttl": {"N": "1893456000"}, "typed_lst": {"L": [{"M": {"street": {"S": "t"}}}]},
   "views": {"N": "0"}, "when": {"S": "2024-01-02T03:04:05.006789+0000"}, "version": {"N": "1"}}]])
    -- compare parsed JSON: what goes on the wire, read back by an independent parser
    assert.same(captured, cjson.decode(core.json_encode(item)))
    -- and it reads back to the same values
    local back = A.deserialize_item(Thing, item)
    assert.same(item, A.serialize_item(Thing, back))
    assert.equal("\202\254", back.legacy_blob)
    assert.equal(set{ "x", "y" }, back.tags_)
  end)

  it("reads names the schema does not declare as told: ignored, kept, or put aside", function()
    local Thing = A.schema({ pk = A.Unicode{ hash_key = true }, sk = A.Number{ range_key = true } },
      "Unknowns")
    local wire = { pk = { S = "a" }, sk = { N = "1" }, extra = { N = "2" }, more = { SS = { "m" } } }
    assert.same({ pk = "a", sk = 1 }, A.deserialize_item(Thing, wire))
    assert.same({ pk = "a", sk = 1, extra = 2, more = set{ "m" } },
      A.deserialize_item(Thing, wire, { unknown = "keep" }))
    assert.same({ pk = "a", sk = 1, [A.EXTRA] = { extra = 2, more = set{ "m" } } },
      A.deserialize_item(Thing, wire, { unknown = "aside" }))
    local none = A.deserialize_item(Thing, { pk = { S = "a" }, sk = { N = "1" } }, { unknown = "aside" })
    assert.is_nil(none[A.EXTRA])                           -- nothing aside: no table
  end)
end)
