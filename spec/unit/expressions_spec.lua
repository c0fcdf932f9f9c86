-- Expressions: paths, conditions, update actions, projections and their
-- exact serialization (PynamoDB 6.1's text, reference pynamodb.md §5).
--
-- Every block runs twice when lunamodb.attributes loads: over a stub schema
-- (minimal attribute tables that follow the contract of the attributes
-- module: type, kind, name, wire_name, fields, dynamic, of, serialize,
-- serialize_element) built with path.root, and over a real one built with
-- lunamodb.attributes.schema. Without the attributes module only the stub
-- runs, with a small stand-in for serialize_dynamic.
local path = require "lunamodb.expressions.path"
local condition = require "lunamodb.expressions.condition"
local serializer = require "lunamodb.expressions.serializer"

local format, floor = string.format, math.floor

---------------------------------------------------------------- stub schema

local StubSet = {}
local function set(t) return setmetatable(t, StubSet) end

local function number_text(v)
  if v == floor(v) and v > -2^53 and v < 2^53 then return format("%d", v) end
  return format("%.17g", v)
end

local function dynamic(v, where)
  local t = type(v)
  if t == "string" then return { S = v } end
  if t == "number" then return { N = number_text(v) } end
  if t == "boolean" then return { BOOL = v } end
  if t == "table" and getmetatable(v) == StubSet then
    if #v == 0 then error("lunamodb: " .. where .. ": cannot serialize an empty set", 0) end
    local letter = type(v[1]) == "number" and "NS" or "SS"
    local out = {}
    for i, x in ipairs(v) do out[i] = letter == "NS" and number_text(x) or x end
    return { [letter] = out }
  end
  if t == "table" then
    if #v > 0 then
      local out = {}
      for i, x in ipairs(v) do out[i] = dynamic(x, where .. "[" .. i .. "]") end
      return { L = out }
    end
    local out = {}
    for k, x in pairs(v) do out[k] = dynamic(x, where .. "." .. k) end
    return { M = out }
  end
  error("lunamodb: " .. where .. ": unsupported value type " .. t, 0)
end

local have_attributes, attributes = pcall(require, "lunamodb.attributes")
if not have_attributes then
  package.loaded["lunamodb.attributes"] = { serialize_dynamic = dynamic }
  attributes = package.loaded["lunamodb.attributes"]
end

local Attr = {}
Attr.__index = Attr

local function bad(where, what, v)
  error(format("lunamodb: %s: expected %s (got %s)", where, what, type(v)), 0)
end

local ENCODE = {
  S = function(_, v, w) if type(v) ~= "string" then bad(w, "a string", v) end return { S = v } end,
  B = function(_, v, w) if type(v) ~= "string" then bad(w, "a binary string", v) end return { B = v } end,
  N = function(_, v, w) if type(v) ~= "number" then bad(w, "a number", v) end
    return { N = number_text(v) } end,
  BOOL = function(_, v, w) if type(v) ~= "boolean" then bad(w, "a boolean", v) end
    return { BOOL = v } end,
  L = function(self, v, w)
    if type(v) ~= "table" then bad(w, "a list", v) end
    local out = {}
    for i, x in ipairs(v) do out[i] = self:serialize_element(x, w .. "[" .. i .. "]") end
    return { L = out }
  end,
  M = function(self, v, w)
    if type(v) ~= "table" then bad(w, "a map", v) end
    local out = {}
    for k, x in pairs(v) do
      local f = self.fields and self.fields[k]
      if f then out[f.wire_name] = f:serialize(x, w .. "." .. k)
      else out[k] = dynamic(x, w .. "." .. k) end
    end
    return { M = out }
  end,
}
local MEMBER = { SS = "S", NS = "N", BS = "B" }
for letter, member in pairs(MEMBER) do
  ENCODE[letter] = function(self, v, w)
    if getmetatable(v) ~= StubSet then bad(w, "a set", v) end
    if #v == 0 then return nil end
    local out = {}
    for i, x in ipairs(v) do out[i] = self:serialize_element(x, w)[member] end
    return { [letter] = out }
  end
end

function Attr:serialize(v, where)
  if v == nil then return nil end
  return ENCODE[self.type](self, v, where)
end

function Attr:serialize_element(v, where)
  local member = MEMBER[self.type]
  if member then return ENCODE[member](self, v, where) end
  if self.type == "L" then
    if self.of then return self.of:serialize(v, where) end
    return dynamic(v, where)
  end
  error("lunamodb: " .. where .. ": a " .. self.kind .. " has no elements", 0)
end

local function bind(a, name)
  a.name = name
  a.wire_name = a.attr_name or name
  return a
end

local function fields_of(t)
  for name, f in pairs(t) do bind(f, name) end
  return t
end

local function attr(letter, kind, extra)
  local a = setmetatable({ type = letter, kind = kind }, Attr)
  for k, v in pairs(extra or {}) do a[k] = v end
  return a
end

local function Addr(extra)
  local e = { fields = fields_of{
    street = attr("S", "Unicode"),
    zip_code = attr("N", "Number", { attr_name = "zip" }),
  } }
  for k, v in pairs(extra or {}) do e[k] = v end
  return attr("M", "Map", e)
end

-- The model of reference pynamodb.md §4.9 / §5.2, plus a few extras.
local ATTRS = {
  pk = attr("S", "Unicode"), sk = attr("N", "Number"),
  name = attr("S", "Unicode"), tags = attr("SS", "UnicodeSet", { attr_name = "tags" }),
  flag = attr("BOOL", "Boolean"), version = attr("N", "Version"), views = attr("N", "Number"),
  lst = attr("L", "List"), typed_lst = attr("L", "List", { of = Addr() }),
  addr = Addr(), raw = attr("M", "Map", { dynamic = true }),
  email = attr("S", "Unicode"), blobs = attr("BS", "BinarySet"), nums = attr("NS", "NumberSet"),
  blob = attr("B", "Binary"), strs = attr("L", "List", { of = attr("S", "Unicode") }),
  dyn = attr("M", "DynamicMap", { dynamic = true, fields = fields_of{ known = attr("N", "Number") } }),
  meta = attr("M", "Map", { fields = fields_of{ set = attr("S", "Unicode"),
    size = attr("N", "Number"), plain = attr("S", "Unicode") } }),
  odd = attr("S", "Unicode", { attr_name = "odd name" }),
}

local STUB = {}
for name, a in pairs(ATTRS) do
  bind(a, name)
  STUB[name] = path.root(a, "Thing")
end

-- The same model with lunamodb.attributes, when it loads.
local function real_schema()
  local A = require "lunamodb.attributes"
  local function Addr()
    return A.Map{ fields = { street = A.Unicode{ null = true },
      zip_code = A.Number{ attr_name = "zip", null = true } } }
  end
  return A.schema({
    pk = A.Unicode{ hash_key = true }, sk = A.Number{ range_key = true },
    name = A.Unicode{}, tags = A.UnicodeSet{ attr_name = "tags" }, flag = A.Boolean{},
    version = A.Version{}, views = A.Number{}, lst = A.List{}, typed_lst = A.List{ of = Addr() },
    addr = Addr(), raw = A.Map{}, email = A.Unicode{}, blobs = A.BinarySet{},
    nums = A.NumberSet{}, blob = A.Binary{ legacy_encoding = false },
    strs = A.List{ of = A.Unicode{} },
    dyn = A.DynamicMap{ fields = { known = A.Number{} } },
    meta = A.Map{ fields = { set = A.Unicode{}, size = A.Number{}, plain = A.Unicode{} } },
    odd = A.Unicode{ attr_name = "odd name" },
  }, "Thing")
end

local MODES = { { name = "stub attributes", T = STUB, set = set, b64 = function(s) return s end } }
if have_attributes then
  local values = require "lunamodb.values"
  local core = require "lunamodb.core"
  MODES[2] = { name = "lunamodb.attributes", T = real_schema(), set = values.set,
    b64 = core.base64_encode }
end

---------------------------------------------------------------- helpers

local function cond(c)
  local s = serializer.new()
  local text = s:condition(c)
  return text, s:names(), s:values()
end

local function upd(actions)
  local s = serializer.new()
  local text = s:update(actions)
  return text, s:names(), s:values()
end

local function raises(fn, fragment)
  local ok, err = pcall(fn)
  assert(not ok, "expected an error containing: " .. fragment)
  err = tostring(err)
  if not err:find(fragment, 1, true) then
    error(format("error %q does not contain %q", err, fragment), 2)
  end
  return err
end

local function names(...)
  local t = {}
  for i = 1, select("#", ...) do t["#" .. (i - 1)] = (select(i, ...)) end
  return t
end

---------------------------------------------------------------- specs

for _, mode in ipairs(MODES) do
  local T, set, b64 = mode.T, mode.set, mode.b64

  describe(mode.name .. ": expression paths", function()
    it("print in their Lua form", function()
      assert.equal("Thing.views", tostring(T.views))
      assert.equal("Thing.addr.street", tostring(T.addr.street))
      assert.equal("Thing.typed_lst[2].street", tostring(T.typed_lst[2].street))
      assert.equal('Thing.raw["a b"][1]', tostring(T.raw["a b"][1]))
      assert.equal("Thing.odd", tostring(T.odd))
      assert.equal("views", tostring(path.root(ATTRS.views)))
    end)

    it("send typed-map fields by their wire name and list positions 0-based", function()
      local text, n = cond(T.addr.zip_code:eq(5))
      assert.equal("#0.#1 = :0", text)
      assert.same(names("addr", "zip"), n)
      text, n = cond(T.typed_lst[1].street:exists())
      assert.equal("attribute_exists (#0[0].#1)", text)
      assert.same(names("typed_lst", "street"), n)
      text, n = cond(T.lst[3][1]:exists())
      assert.equal("attribute_exists (#0[2][0])", text)
      assert.same(names("lst"), n)
      text, n = cond(T.odd:exists())
      assert.same(names("odd name"), n)
    end)

    it("refuse unknown fields of typed maps, accept any key of raw and dynamic maps", function()
      raises(function() return T.addr.nope end, "lunamodb: Thing.addr has no field 'nope'")
      raises(function() return T.typed_lst[1].nope end, "Thing.typed_lst[1] has no field 'nope'")
      local text, n = cond(T.raw["a.b"]["#c"]:exists())
      assert.equal("attribute_exists (#0.#1.#2)", text)
      assert.same(names("raw", "a.b", "#c"), n)
      text, n = cond(T.dyn.known:gt(1) * T.dyn.other:eq("x"))
      assert.equal("(#0.#1 > :0 AND #0.#2 = :1)", text)
      assert.same(names("dyn", "known", "other"), n)
      raises(function() return T.dyn.known:eq("x") end, "lunamodb: Thing.dyn.known")
    end)

    it("refuse to index what is not a container", function()
      raises(function() return T.views.x end, "lunamodb: Thing.views is a Number: it has no field 'x'")
      raises(function() return T.views[1] end, "Thing.views is a Number, not a List: it cannot be indexed")
      raises(function() return T.lst.x end, "Thing.lst is a List: it has no field 'x'")
      raises(function() return T.addr[1] end, "Thing.addr is a Map, not a List")
    end)

    it("take list positions as integers from 1", function()
      raises(function() return T.lst[0] end, "Thing.lst[0]: a list position is an integer from 1")
      raises(function() return T.lst[1.5] end, "Thing.lst[1.5]: a list position is an integer from 1")
      raises(function() return T.lst[-1] end, "a list position is an integer from 1")
      raises(function() return T.lst[0 / 0] end, "a list position is an integer from 1")
      raises(function() return T.lst:index("1") end, "a list position is an integer from 1")
      raises(function() return T.lst[true] end, "a path is indexed by a field name or a list position")
      assert.equal("Thing.lst[1]", tostring(T.lst[1.0]))
      assert.equal("attribute_exists (#0[0].#1)", (cond(T.lst[1].any:exists())))
      assert.equal("Thing.strs[1]", tostring(T.strs[1]))
      raises(function() return T.strs[1].x end, "Thing.strs[1] is a Unicode: it has no field 'x'")
    end)

    it("let method names win, with :field and :index for colliding names", function()
      assert.is_function(T.meta.set)
      assert.is_function(T.meta.size)
      local p = T.meta:field("set")
      assert.equal("Thing.meta.set", tostring(p))
      local text, n = cond(p:eq("x") * T.meta:field("size"):gt(1) * T.meta.plain:exists())
      assert.equal("((#0.#1 = :0 AND #0.#2 > :1) AND attribute_exists (#0.#3))", text)
      assert.same(names("meta", "set", "size", "plain"), n)
      assert.equal("Thing.lst[2]", tostring(T.lst:index(2)))
      raises(function() return T.meta:field("") end, "Thing.meta: a field name cannot be empty")
      raises(function() return T.meta:field(1) end, "a field name must be a string")
    end)

    it("define no __eq and refuse <, <=, calls, concatenation and assignment", function()
      local mt = getmetatable(T.views)
      assert.is_nil(rawget(mt, "__eq"))
      assert.is_false(T.addr.street == T.addr.street)  -- two distinct path objects
      assert.is_true(T.views == T.views)               -- the same object
      raises(function() return T.views < T.sk end,
        "lunamodb: use Thing.views:lt(x): Lua comparisons always yield booleans")
      raises(function() return T.views <= T.sk end, "use Thing.views:le(x)")
      if not jit then
        -- Lua 5.4 calls __lt for mixed operands; LuaJIT raises its own error.
        raises(function() return T.views < 5 end, "use Thing.views:lt(x)")
        raises(function() return 5 < T.views end, "use Thing.views:gt(x)")
        raises(function() return 5 <= T.views end, "use Thing.views:ge(x)")
      else
        assert.is_false(pcall(function() return T.views < 5 end))
      end
      raises(function() return T.views() end, "Thing.views is a path, not a function")
      raises(function() return "x" .. T.views end, "Thing.views is a path: it cannot be concatenated")
      raises(function() return T.views .. "x" end, "cannot be concatenated")
      raises(function() T.addr.street = "x" end, "paths are read-only")
      raises(function() return -T.views end, "write 0 - Thing.views")
      raises(function() return T.views * T.sk end, "Thing.views is a path, not a condition")
    end)

    it("give the model layer its accessors", function()
      assert.is_true(path.is_path(T.addr.street))
      assert.is_false(path.is_path({}))
      assert.equal(path.attr(T.addr).fields.street, path.attr(T.addr.street))
      assert.equal("S", path.attr(T.addr.street).type)
      assert.is_nil(path.attr(T.raw.x))
      assert.equal("Thing.addr.street", path.text(T.addr.street))
      assert.same({ "addr", "street" }, path.segments(T.addr.street))
      assert.same({ "lst", 1 }, path.segments(T.lst[2]))
      local u = path.untyped("free form")
      assert.equal("attribute_exists (#0.#1[0])", (cond(u.x[1]:exists())))
      raises(function() path.root(nil) end, "path.root: expected an attribute")
      raises(function() path.root({ type = "S" }) end, "path.root: a field name must be a string")
    end)
  end)

  describe(mode.name .. ": conditions", function()
    it("serialize comparisons exactly", function()
      local cases = {
        { T.views:eq(1), "#0 = :0" }, { T.views:ne(1), "#0 <> :0" },
        { T.views:lt(1), "#0 < :0" }, { T.views:le(1), "#0 <= :0" },
        { T.views:gt(1), "#0 > :0" }, { T.views:ge(1), "#0 >= :0" },
      }
      for _, c in ipairs(cases) do
        local text, n, v = cond(c[1])
        assert.equal(c[2], text)
        assert.same(names("views"), n)
        assert.same({ [":0"] = { N = "1" } }, v)
      end
      local text, n, v = cond(T.name:eq("x"))
      assert.equal("#0 = :0", text)
      assert.same(names("name"), n)
      assert.same({ [":0"] = { S = "x" } }, v)
    end)

    it("compare paths with paths", function()
      local text, n, v = cond(T.views:eq(T.sk))
      assert.equal("#0 = #1", text)
      assert.same(names("views", "sk"), n)
      assert.is_nil(v)
      assert.equal("#0 < #0", (cond(T.views:lt(T.views))))
      assert.equal("#0.#1 >= #2", (cond(T.addr.street:ge(T.name))))
    end)

    it("serialize BETWEEN and IN", function()
      local text, n, v = cond(T.views:between(1, 9))
      assert.equal("#0 BETWEEN :0 AND :1", text)
      assert.same(names("views"), n)
      assert.same({ [":0"] = { N = "1" }, [":1"] = { N = "9" } }, v)
      text, n, v = cond(T.name:is_in("a", "b", "c"))
      assert.equal("#0 IN (:0, :1, :2)", text)
      assert.same({ [":0"] = { S = "a" }, [":1"] = { S = "b" }, [":2"] = { S = "c" } }, v)
      text = cond(T.views:is_in(1, T.sk))
      assert.equal("#0 IN (:0, #1)", text)
      assert.equal("#0 BETWEEN #1 AND :0", (cond(T.views:between(T.sk, 5))))
    end)

    it("limit IN to 1..100 operands", function()
      local vals = {}
      for i = 1, 100 do vals[i] = i end
      local unpack = table.unpack or unpack
      local text, _, v = cond(T.views:is_in(unpack(vals)))
      assert.equal(100, select(2, text:gsub(":%d+", "")))
      assert.same({ N = "100" }, v[":99"])
      vals[101] = 101
      raises(function() T.views:is_in(unpack(vals)) end,
        "lunamodb: Thing.views:is_in(...): IN takes at most 100 values (got 101)")
      raises(function() T.views:is_in() end, "IN needs at least one value")
      raises(function() T.views:is_in(1, nil, 3) end, "a value cannot be nil")
    end)

    it("serialize the functions with PynamoDB's spacing", function()
      assert.equal("attribute_exists (#0)", (cond(T.views:exists())))
      assert.equal("attribute_not_exists (#0)", (cond(T.views:does_not_exist())))
      local text, n, v = cond(T.views:is_type())
      assert.equal("attribute_type (#0, :0)", text)
      assert.same(names("views"), n)
      assert.same({ [":0"] = { S = "N" } }, v)
      text, _, v = cond(T.raw.x:is_type("SS"))
      assert.equal("attribute_type (#0.#1, :0)", text)
      assert.same({ [":0"] = { S = "SS" } }, v)
      text, _, v = cond(T.name:begins_with("pre"))
      assert.equal("begins_with (#0, :0)", text)
      assert.same({ [":0"] = { S = "pre" } }, v)
      text, _, v = cond(T.tags:contains("lua"))
      assert.equal("contains (#0, :0)", text)
      assert.same({ [":0"] = { S = "lua" } }, v)
      text, _, v = cond(T.tags:size():gt(3))
      assert.equal("size (#0) > :0", text)
      assert.same({ [":0"] = { N = "3" } }, v)
    end)

    it("check is_type's argument against the type letters", function()
      for _, t in ipairs({ "S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS" }) do
        local _, _, v = cond(T.raw.x:is_type(t))
        assert.same({ S = t }, v[":0"])
      end
      raises(function() T.views:is_type("X") end,
        'lunamodb: Thing.views:is_type("X"): the type must be one of S, N, B, BOOL, NULL, M, L, SS, NS, BS')
      raises(function() T.views:is_type("s") end, "the type must be one of")
      raises(function() T.raw.x:is_type() end, "Thing.raw.x:is_type(): this path has no declared type")
      local _, _, v = cond(T.tags:is_type())
      assert.same({ S = "SS" }, v[":0"])
    end)

    it("serialize contains by the path's type", function()
      local _, _, v = cond(T.nums:contains(2))
      assert.same({ N = "2" }, v[":0"])
      _, _, v = cond(T.blobs:contains("\1"))
      assert.same({ B = b64("\1") }, v[":0"])
      _, _, v = cond(T.strs:contains("x"))
      assert.same({ S = "x" }, v[":0"])
      _, _, v = cond(T.typed_lst:contains({ street = "s" }))
      assert.same({ M = { street = { S = "s" } } }, v[":0"])
      _, _, v = cond(T.name:contains("sub"))
      assert.same({ S = "sub" }, v[":0"])
      _, _, v = cond(T.raw.x:contains("y"))
      assert.same({ S = "y" }, v[":0"])
      assert.equal("contains (#0, #1)", (cond(T.tags:contains(T.name))))
      raises(function() T.views:contains(1) end,
        "lunamodb: Thing.views:contains(...): contains works on strings, binaries, sets and lists; "
        .. "Thing.views is a Number")
      raises(function() T.tags:contains(nil) end, "a value cannot be nil")
      raises(function() T.nums:contains("x") end, "lunamodb: Thing.nums")
    end)

    it("check begins_with's types", function()
      assert.equal("begins_with (#0, :0)", (cond(T.blob:begins_with("\0"))))
      assert.equal("begins_with (#0.#1, :0)", (cond(T.raw.x:begins_with("p"))))
      raises(function() T.views:begins_with("1") end,
        "Thing.views:begins_with(...): begins_with works on strings and binaries; Thing.views is a Number")
      raises(function() T.raw.x:begins_with(5) end, "the prefix must be a string or binary value")
    end)

    it("build size() operands", function()
      local text, n, v = cond(T.tags:size():eq(T.lst:size()))
      assert.equal("size (#0) = size (#1)", text)
      assert.same(names("tags", "lst"), n)
      assert.is_nil(v)
      assert.equal("#0 > size (#1)", (cond(T.views:gt(T.tags:size()))))
      assert.equal("size (#0) <= #1", (cond(T.tags:size():le(T.views))))
      assert.equal("size (#0) <> :0", (cond(T.name:size():ne(0))))
      assert.equal("size (#0.#1) < :0", (cond(T.raw.x:size():lt(1))))
      assert.equal("size (#0) >= :0", (cond(T.addr:size():ge(1))))
      assert.equal("size (#0) BETWEEN :0 AND :1", (cond(T.tags:size():between(1, 2))))
      assert.equal("size (#0) IN (:0, :1)", (cond(T.tags:size():is_in(1, 2))))
      raises(function() T.views:size() end,
        "Thing.views:size(): size() works on strings, binaries, sets, lists and maps; Thing.views is a Number")
      raises(function() T.tags:size():gt("3") end, "size() is compared with numbers")
      raises(function() T.tags:size():gt(nil) end, "a value cannot be nil")
    end)

    it("never take nil, empty sets or expression nodes as values", function()
      raises(function() T.views:eq(nil) end,
        "lunamodb: Thing.views:eq(...): a value cannot be nil (use :exists() or :does_not_exist() "
        .. "to test presence, lunamodb.null for NULL)")
      raises(function() T.views:between(1) end, "a value cannot be nil")
      raises(function() T.tags:eq(set{}) end, "the value serializes to nothing")
      raises(function() T.views:eq(T.views:exists()) end, "a condition cannot be used as a value here")
      raises(function() T.views:eq(T.views:if_not_exists(1)) end,
        "an if_not_exists() operand cannot be compared")
      raises(function() T.views:eq(T.views + 1) end, "an arithmetic operand cannot be compared")
      raises(function() T.views:eq(T.views:set(1)) end, "an update action cannot be used as a value")
    end)

    it("serialize values through the path's attribute", function()
      raises(function() T.views:eq("x") end, "lunamodb: Thing.views")
      raises(function() T.addr.street:eq(1) end, "lunamodb: Thing.addr.street")
      local _, _, v = cond(T.tags:eq(set{ "a" }))
      assert.same({ SS = { "a" } }, v[":0"])
      _, _, v = cond(T.typed_lst[1]:eq({ street = "s", zip_code = 1 }))
      assert.same({ M = { street = { S = "s" }, zip = { N = "1" } } }, v[":0"])
    end)

    it("allow <, <=, >, >=, BETWEEN only on strings, numbers and binaries", function()
      raises(function() T.flag:lt(true) end,
        "Thing.flag:lt(...): <, <=, >, >= and BETWEEN compare strings, numbers and binaries; "
        .. "Thing.flag is a Boolean")
      raises(function() T.tags:between(set{ "a" }, set{ "b" }) end, "Thing.tags is a UnicodeSet")
      raises(function() T.views:gt(T.lst) end, "Thing.lst is a List")
      assert.equal("#0 = :0", (cond(T.flag:eq(true))))
      assert.equal("#0 < :0", (cond(T.blob:lt("a"))))
    end)
  end)

  describe(mode.name .. ": combinators", function()
    local a, b, c
    before_each(function()
      a, b, c = T.views:gt(1), T.name:eq("x"), T.flag:exists()
    end)

    it("serialize * + - as AND, OR, NOT, fully parenthesized and left-nested", function()
      assert.equal("(#0 > :0 AND #1 = :1)", (cond(a * b)))
      assert.equal("(#0 > :0 OR #1 = :1)", (cond(a + b)))
      assert.equal("(NOT attribute_exists (#0))", (cond(-c)))
      assert.equal("((#0 > :0 AND #1 = :1) OR (NOT attribute_exists (#2)))", (cond(a * b + -c)))
      assert.equal("((#0 > :0 AND #1 = :1) AND attribute_exists (#2))", (cond(a * b * c)))
      assert.equal("(#0 > :0 AND (#1 = :1 OR attribute_exists (#2)))", (cond(a * (b + c))))
      assert.equal("(NOT (NOT #0 > :0))", (cond(-(-a))))
    end)

    it("serialize & | ~ the same way on Lua 5.3+", function()
      local source = "local a, b, c = ...; return a & b | ~c, a | b & c, ~(a & b)"
      if jit then
        -- LuaJIT cannot even parse them: that is why * + - exist
        assert.is_nil((load(source)))
        return
      end
      local chunk = assert(load(source))
      local x, y, z = chunk(a, b, c)
      assert.equal("((#0 > :0 AND #1 = :1) OR (NOT attribute_exists (#2)))", (cond(x)))
      assert.equal("(#0 > :0 OR (#1 = :1 AND attribute_exists (#2)))", (cond(y)))
      assert.equal("(NOT (#0 > :0 AND #1 = :1))", (cond(z)))
      local bad = assert(load("local a = ...; return a & true"))
      raises(function() bad(a) end, "lunamodb: cannot combine a condition with a boolean")
      bad = assert(load("local a, p = ...; return p | a"))
      raises(function() bad(a, T.views) end, "Thing.views is a path, not a condition")
      bad = assert(load("local a = ...; return 1 & a"))
      raises(function() bad(a) end, "cannot combine a condition with a number")
    end)

    it("refuse anything but conditions, with a hint for booleans", function()
      local err = raises(function() return a * (T.views == 3) end,
        "lunamodb: cannot combine a condition with a boolean")
      assert.truthy(err:find("always yield booleans", 1, true))
      assert.truthy(err:find(":eq", 1, true))
      raises(function() return (T.views == 3) + a end, "cannot combine a condition with a boolean")
      raises(function() return a * nil end, "cannot combine a condition with a nil")
      raises(function() return a + 1 end, "cannot combine a condition with a number")
      raises(function() return "x" + a end, "cannot combine a condition with a string")
      raises(function() return a * {} end, "cannot combine a condition with a table")
      raises(function() return a + T.views end, "cannot combine a condition with a path")
      raises(function() return a * T.views:set(1) end, "cannot combine a condition with an update action")
      raises(function() return a < b end, "conditions cannot be compared")
      raises(function() return a .. b end, "a condition cannot be concatenated")
    end)

    it("export is_condition and check_condition", function()
      assert.is_true(path.is_condition(a))
      assert.is_true(condition.is_condition(a * b))
      assert.is_false(condition.is_condition(true))
      assert.equal(a, condition.check_condition(a, "Thing:save: condition"))
      local err = raises(function() condition.check_condition(T.views == 1, "Thing:save: condition") end,
        "lunamodb: Thing:save: condition must be a condition, got a boolean")
      assert.truthy(err:find("always yield booleans", 1, true))
      raises(function() path.check_condition(T.views, "filter") end,
        "lunamodb: filter must be a condition, got a path")
      raises(function() serializer.new():condition(false) end, "condition must be a condition, got a boolean")
    end)

    it("have no __eq and a readable tostring", function()
      assert.is_nil(rawget(getmetatable(a), "__eq"))
      assert.is_false(T.views:eq(1) == T.views:eq(1))
      assert.equal('(Thing.views > 1 AND contains (Thing.tags, "lua"))',
        tostring(a * T.tags:contains("lua")))
      assert.equal('((NOT attribute_exists (Thing.flag)) OR Thing.addr.street BETWEEN "a" AND "b")',
        tostring(-c + T.addr.street:between("a", "b")))
      assert.equal("size (Thing.tags) IN (1, 2)", tostring(T.tags:size():is_in(1, 2)))
      assert.equal('attribute_type (Thing.views, "N")', tostring(T.views:is_type()))
      assert.equal("Thing.views = Thing.sk", tostring(T.views:eq(T.sk)))
    end)
  end)

  describe(mode.name .. ": update actions", function()
    it("SET a value, a path or an operand", function()
      local text, n, v = upd({ T.views:set(5) })
      assert.equal("SET #0 = :0", text)
      assert.same(names("views"), n)
      assert.same({ [":0"] = { N = "5" } }, v)
      text, n, v = upd({ T.views:set(T.sk) })
      assert.equal("SET #0 = #1", text)
      assert.same(names("views", "sk"), n)
      assert.is_nil(v)
      text = upd(T.addr.street:set("s"))         -- one action without a table
      assert.equal("SET #0.#1 = :0", text)
    end)

    if mode.name == "lunamodb.attributes" then
      -- built-in Number and Unicode attributes take plain values on a shorter path
      it("SET and arithmetic write plain numbers and strings as the attribute encodes them", function()
        local values = require "lunamodb.values"
        for _, x in ipairs({ 0, -0.0, 1, -7, 2 ^ 53 - 1, -(2 ^ 53 - 1), 2 ^ 53, 2 ^ 60, 1e15, 1e16,
          1.5, 0.1, -2.5e-7, 1e125, 123456789012.25 }) do
          local want = { [":0"] = { N = (values.encode_number(x)) } }
          local _, _, v = upd({ T.views:set(x) })
          assert.same(want, v)
          _, _, v = upd({ T.views:set(T.views + x) })
          assert.same(want, v)
          _, _, v = upd({ T.views:set(T.views - x) })
          assert.same(want, v)
        end
        for _, x in ipairs({ "x", "", "\u{e9}t\u{e9}", ("long "):rep(100) }) do
          local _, _, v = upd({ T.name:set(x) })
          assert.same({ [":0"] = { S = x } }, v)
        end
        raises(function() T.name:set("\255") end, "not valid UTF-8")
        raises(function() T.views:set(0 / 0) end, "NaN")
        raises(function() T.views:set(1e300) end, "out of DynamoDB's range")
        raises(function() T.views:set(T.views + 1 / 0) end, "inf")
        raises(function() T.name:set(T.name + 1) end, "arithmetic works on numbers")
      end)
    end

    it("turn SET of an empty set into REMOVE, and refuse SET nil", function()
      assert.equal("REMOVE #0", (upd({ T.tags:set(set{}) })))
      raises(function() T.views:set(nil) end,
        "lunamodb: Thing.views:set(nil): use Thing.views:remove() to delete the attribute, "
        .. "or lunamodb.null to store NULL")
      raises(function() T.views:set() end, "use Thing.views:remove()")
      raises(function() T.views:set(T.tags:size()) end, "size() is for conditions, not updates")
      raises(function() T.views:set(T.views:exists()) end, "a condition cannot be used as a value")
      raises(function() T.views:set("x") end, "lunamodb: Thing.views")
    end)

    it("REMOVE paths and list elements", function()
      assert.equal("REMOVE #0", (upd({ T.email:remove() })))
      assert.equal("REMOVE #0[0]", (upd({ T.lst[1]:remove() })))
      assert.equal("REMOVE #0.#1, #2", (upd({ T.addr.street:remove(), T.email:remove() })))
    end)

    it("ADD numbers and sets", function()
      local text, n, v = upd({ T.views:add(1) })
      assert.equal("ADD #0 :0", text)
      assert.same(names("views"), n)
      assert.same({ [":0"] = { N = "1" } }, v)
      _, _, v = upd({ T.tags:add(set{ "a", "b" }) })
      assert.same({ [":0"] = { SS = { "a", "b" } } }, v)
      _, _, v = upd({ T.tags:add("a") })
      assert.same({ [":0"] = { SS = { "a" } } }, v)
      _, _, v = upd({ T.nums:add(3) })
      assert.same({ [":0"] = { NS = { "3" } } }, v)
      _, _, v = upd({ T.raw.n:add(2) })
      assert.same({ [":0"] = { N = "2" } }, v)
      raises(function() T.name:add("x") end,
        "lunamodb: Thing.name:add(...): ADD works on numbers and sets; Thing.name is a Unicode")
      raises(function() T.lst:add({ 1 }) end, "Thing.lst is a List")
      raises(function() T.tags:add(set{}) end, "ADD needs a non-empty value")
      raises(function() T.views:add(nil) end, "a value cannot be nil")
      raises(function() T.views:add(T.sk) end, "ADD takes a value")
      raises(function() T.raw.n:add("x") end, "ADD takes a number or a set")
    end)

    it("DELETE from sets only", function()
      local text, n, v = upd({ T.nums:delete(set{ 2 }) })
      assert.equal("DELETE #0 :0", text)
      assert.same(names("nums"), n)
      assert.same({ [":0"] = { NS = { "2" } } }, v)
      _, _, v = upd({ T.tags:delete("z") })
      assert.same({ [":0"] = { SS = { "z" } } }, v)
      raises(function() T.views:delete(1) end,
        "lunamodb: Thing.views:delete(...): DELETE removes members from a set; Thing.views is a Number")
      raises(function() T.tags:delete(set{}) end, "DELETE needs a non-empty value")
      raises(function() T.raw.n:delete(1) end, "DELETE takes a set")
    end)

    it("build list_append operands", function()
      local text, n, v = upd({ T.lst:set(T.lst:append({ 1, "a" })) })
      assert.equal("SET #0 = list_append (#0, :0)", text)
      assert.same(names("lst"), n)
      assert.same({ [":0"] = { L = { { N = "1" }, { S = "a" } } } }, v)
      text, _, v = upd({ T.strs:set(T.strs:prepend({ "z" })) })
      assert.equal("SET #0 = list_append (:0, #0)", text)
      assert.same({ [":0"] = { L = { { S = "z" } } } }, v)
      assert.equal("SET #0 = list_append (#0, #1)", (upd({ T.lst:set(T.lst:append(T.strs)) })))
      text, _, v = upd({ T.lst:set(T.lst:if_not_exists({ "e" }):append({ "x" })) })
      assert.equal("SET #0 = list_append (if_not_exists (#0, :0), :1)", text)
      assert.same({ [":0"] = { L = { { S = "e" } } }, [":1"] = { L = { { S = "x" } } } }, v)
      raises(function() T.name:append({ "x" }) end,
        "lunamodb: Thing.name:append(...): list_append works on lists; Thing.name is a Unicode")
      raises(function() T.lst:append(nil) end, "a value cannot be nil")
      raises(function() T.strs:append("x") end, "lunamodb: Thing.strs")
      raises(function() T.raw.x:append("x") end, "list_append takes a list")
    end)

    it("build if_not_exists and arithmetic operands", function()
      local text, n, v = upd({ T.name:set(T.name:if_not_exists("d")) })
      assert.equal("SET #0 = if_not_exists (#0, :0)", text)
      assert.same(names("name"), n)
      assert.same({ [":0"] = { S = "d" } }, v)
      text, _, v = upd({ T.views:set(T.views + 1) })
      assert.equal("SET #0 = #0 + :0", text)
      assert.same({ [":0"] = { N = "1" } }, v)
      assert.equal("SET #0 = #0 - :0", (upd({ T.views:set(T.views - 1) })))
      assert.equal("SET #0 = :0 - #0", (upd({ T.views:set(5 - T.views) })))
      assert.equal("SET #0 = :0 + #0", (upd({ T.views:set(5 + T.views) })))
      assert.equal("SET #0 = #0 + #1", (upd({ T.views:set(T.views + T.sk) })))
      assert.equal("SET #0 = #1 - #0", (upd({ T.views:set(T.sk - T.views) })))
      text, _, v = upd({ T.views:set(T.views:if_not_exists(0) + 1) })
      assert.equal("SET #0 = if_not_exists (#0, :0) + :1", text)
      assert.same({ [":0"] = { N = "0" }, [":1"] = { N = "1" } }, v)
      assert.equal("SET #0 = :0 - if_not_exists (#0, :1)",
        (upd({ T.views:set(9 - T.views:if_not_exists(0)) })))
      assert.equal("SET #0.#1 = #0.#1 + :0", (upd({ T.raw.n:set(T.raw.n + 1) })))
      assert.equal("SET #0 = if_not_exists (#0, #1)", (upd({ T.views:set(T.views:if_not_exists(T.sk)) })))
    end)

    it("refuse arithmetic that DynamoDB would refuse", function()
      raises(function() return T.name + 1 end,
        'lunamodb: Thing.name + 1: arithmetic works on numbers; Thing.name is a Unicode')
      raises(function() return T.views + T.name end, "Thing.name is a Unicode")
      raises(function() return T.views + "x" end, "lunamodb: Thing.views")
      raises(function() return T.views + 1 + 2 end, "DynamoDB allows one + or - in a SET value")
      raises(function() return T.views + nil end, "a value cannot be nil")
      raises(function() return T.views + T.tags:size() end,
        "Thing.views + size() operand: a size() operand cannot be used in arithmetic")
      raises(function() return T.tags:size() + 1 end, "size() is for conditions, not arithmetic")
      raises(function() return T.raw.n + "x" end, "arithmetic takes numbers")
      raises(function() return T.views + T.views:exists() end, "a condition cannot be used in arithmetic")
      raises(function() T.views:if_not_exists(nil) end, "a value cannot be nil")
      raises(function() T.views:if_not_exists(T.views + 1) end, "the default must be a value or a path")
    end)

    it("group clauses as SET, REMOVE, ADD, DELETE, keeping the order within each", function()
      local text = upd({
        T.nums:delete(set{ 1 }), T.views:add(1), T.email:remove(), T.name:set("n"),
        T.tags:set(set{}), T.flag:set(true), T.sk:add(2),
      })
      assert.equal("SET #0 = :0, #1 = :1 REMOVE #2, #3 ADD #4 :2, #5 :3 DELETE #6 :4", text)
    end)

    it("refuse what is not a list of actions", function()
      raises(function() upd({}) end, "lunamodb: update: no update actions")
      raises(function() upd({ T.views:eq(1) }) end,
        "update: action 1 is a condition, not an update action")
      raises(function() upd(T.views) end, "update: expected a table of update actions (got path)")
      raises(function() upd({ T.views:set(1), [3] = T.sk:set(1) }) end, "update: the list has holes")
      raises(function() return T.views:set(1) + T.sk:set(1) end, "pass them in a table")
    end)

    it("print readably", function()
      assert.equal("SET Thing.views = Thing.views + 1", tostring(T.views:set(T.views + 1)))
      assert.equal("REMOVE Thing.lst[1]", tostring(T.lst[1]:remove()))
      assert.equal('ADD Thing.tags SS{"x"}', tostring(T.tags:add("x")))
      assert.equal('SET Thing.lst = list_append (Thing.lst, ["a"])',
        tostring(T.lst:set(T.lst:append({ "a" }))))
      assert.is_true(path.is_action(T.views:remove()))
      assert.is_true(path.is_operand(T.views + 1))
    end)
  end)

  describe(mode.name .. ": the serializer", function()
    it("shares de-duplicated names and never de-duplicates values", function()
      local s = serializer.new()
      local p = s:projection({ T.views, "addr.street" }, T)
      local c = s:condition(T.views:gt(1) * T.views:lt(1))
      local u = s:update({ T.views:set(T.views + 1), T.addr.street:set("s") })
      assert.equal("#0, #1.#2", p)
      assert.equal("(#0 > :0 AND #0 < :1)", c)
      assert.equal("SET #0 = #0 + :2, #1.#2 = :3", u)
      assert.same(names("views", "addr", "street"), s:names())
      assert.same({ [":0"] = { N = "1" }, [":1"] = { N = "1" }, [":2"] = { N = "1" },
        [":3"] = { S = "s" } }, s:values())
    end)

    it("leaves out empty maps", function()
      local s = serializer.new()
      assert.is_nil(s:names())
      assert.is_nil(s:values())
      local params = s:apply({ TableName = "t" })
      assert.same({ TableName = "t" }, params)
      s:condition(T.views:exists())
      params = s:apply({})
      assert.same({ ExpressionAttributeNames = names("views") }, params)
      s:condition(T.views:eq(1))
      params = s:apply({})
      assert.same({ ExpressionAttributeNames = names("views"),
        ExpressionAttributeValues = { [":0"] = { N = "1" } } }, params)
      assert.is_nil(s:condition(nil))
      assert.is_true(serializer.is_serializer(s))
    end)

    it("projects full paths, and strings through the schema", function()
      local s = serializer.new()
      assert.equal("#0.#1, #2[0].#1, #0.#3, #4", s:projection({ T.addr.street,
        "typed_lst[1].street", "addr.zip_code", "odd" }, T))
      assert.same(names("addr", "street", "typed_lst", "zip", "odd name"), s:names())
      s = serializer.new()
      assert.equal("#0.#1[2][0], #2", s:projection({ "a.b[3][1]", "c d" }))
      assert.same(names("a", "b", "c d"), s:names())
      s = serializer.new()
      assert.equal("#0", s:projection("views", T))
      assert.equal("#1", s:projection(T.name))       -- a path alone; views is #0 already
      raises(function() s:projection({ "nope" }, T) end, "projection: unknown attribute 'nope' in 'nope'")
      raises(function() s:projection({ "addr.nope" }, T) end, "Thing.addr has no field 'nope'")
      raises(function() s:projection({ "lst[0]" }, T) end, "a list position is an integer from 1")
      raises(function() s:projection({ "a..b" }) end, "projection: 'a..b' is not a valid path")
      raises(function() s:projection({ "a[x]" }) end, "projection: 'a[x]' is not a valid path")
      raises(function() s:projection({ "[1]" }) end, "is not a valid path")
      raises(function() s:projection({ "a." }) end, "is not a valid path")
      raises(function() s:projection({}) end, "projection: the list of attributes is empty")
      raises(function() s:projection({ T.views:exists() }) end, "projection: item 1 is a condition")
      raises(function() s:projection(nil) end, "projection: expected a list of paths or names (got nil)")
      raises(function() s:projection(T.views:exists()) end,
        "projection: expected a list of paths or names (got condition)")
      raises(function() s:projection({ "a", [3] = "b" }) end, "projection: the list has holes")
      raises(function() s:projection({ "a", x = "b" }) end, "projection: expected a list, found the key x")
    end)

    it("enforces 4 KB per expression", function()
      local c = T.views:eq(1)
      for _ = 2, 300 do c = c + T.views:eq(1) end
      local err = raises(function() serializer.new():condition(c) end,
        "lunamodb: the condition expression is ")
      assert.truthy(err:find("bytes; DynamoDB allows at most 4096", 1, true))
      raises(function() serializer.new():condition(c, "filter") end, "the filter expression is")
      -- right at the limit: 4096 bytes pass
      local s = serializer.new()
      local list = {}
      for i = 1, 1000 do list[i] = "a" .. i end
      raises(function() s:projection(list) end, "the projection expression is")
      local acts = {}
      for i = 1, 400 do acts[i] = T.raw:field("k" .. i):set(1) end
      raises(function() serializer.new():update(acts) end, "the update expression is")
    end)

    it("accepts an expression of exactly 4096 bytes, not 4097", function()
      -- "#0" + 1362 x "[0]" + 2 x "[10]" = 2 + 4086 + 8 bytes
      local p = path.untyped("a")
      for _ = 1, 1362 do p = p[1] end
      assert.equal(4096, #serializer.new():projection(p[11][11]))
      raises(function() serializer.new():projection(p[11][11][11]) end,
        "the projection expression is 4100 bytes")
      local q = path.untyped("a")
      for _ = 1, 1361 do q = q[1] end
      raises(function() serializer.new():projection(q[11][11][11]) end,
        "the projection expression is 4097 bytes; DynamoDB allows at most 4096")
    end)

    it("checks attribute name lengths: 1 to 65535 bytes", function()
      local long = string.rep("n", 65535)
      assert.equal("attribute_exists (#0)", serializer.new():condition(path.untyped(long):exists()))
      raises(function() serializer.new():condition(path.untyped(long .. "n"):exists()) end,
        "is 65536 bytes; DynamoDB allows at most 65535")
      raises(function() path.untyped("") end, "a field name cannot be empty")
    end)

    it("reproduces PynamoDB's captured UpdateItem (reference §5.2)", function()
      local s = serializer.new()
      local user = (T.name:exists() * T.tags:size():ge(2)) + -T.flag:is_in(true)
      local condition_text = s:condition(user * T.version:eq(1))
      local update_text = s:update({
        T.views:set(T.views + 1),
        T.name:set(T.name:if_not_exists("dflt")),
        T.lst:set(T.lst:append({ "x" })),
        T.typed_lst:set(T.typed_lst:prepend({ { street = "t" } })),
        T.addr.street:set("s"),
        T.raw.c[1]:set("c0"),
        T.email:remove(),
        T.blobs:set(set{}),                   -- an empty set: REMOVE, as PynamoDB 6
        T.tags:add(set{ "z" }),
        T.version:add(1),
        T.nums:delete(set{ 2 }),
      })
      local params = s:apply({ TableName = "thing" })
      assert.equal("(((attribute_exists (#0) AND size (#1) >= :0) OR (NOT #2 IN (:1))) AND #3 = :2)",
        condition_text)
      assert.equal("SET #4 = #4 + :3, #0 = if_not_exists (#0, :4), #5 = list_append (#5, :5), "
        .. "#6 = list_append (:6, #6), #7.#8 = :7, #9.#10[0] = :8 REMOVE #11, #12 "
        .. "ADD #1 :9, #3 :10 DELETE #13 :11", update_text)
      assert.same({
        ["#0"] = "name", ["#1"] = "tags", ["#2"] = "flag", ["#3"] = "version", ["#4"] = "views",
        ["#5"] = "lst", ["#6"] = "typed_lst", ["#7"] = "addr", ["#8"] = "street", ["#9"] = "raw",
        ["#10"] = "c", ["#11"] = "email", ["#12"] = "blobs", ["#13"] = "nums",
      }, params.ExpressionAttributeNames)
      assert.same({
        [":0"] = { N = "2" }, [":1"] = { BOOL = true }, [":2"] = { N = "1" }, [":3"] = { N = "1" },
        [":4"] = { S = "dflt" }, [":5"] = { L = { { S = "x" } } },
        [":6"] = { L = { { M = { street = { S = "t" } } } } }, [":7"] = { S = "s" },
        [":8"] = { S = "c0" }, [":9"] = { SS = { "z" } }, [":10"] = { N = "1" },
        [":11"] = { NS = { "2" } },
      }, params.ExpressionAttributeValues)
    end)
  end)
end

if have_attributes then
  describe("lunamodb.attributes: lunamodb's value types in expressions", function()
    local values = require "lunamodb.values"
    local T = MODES[2].T

    it("take binaries and decimals as set members of ADD and DELETE", function()
      local _, _, v = upd({ T.blobs:add(values.binary("\1\2")) })
      assert.same({ [":0"] = { BS = { "AQI=" } } }, v)
      _, _, v = upd({ T.nums:delete(values.decimal("1.5")) })
      assert.same({ [":0"] = { NS = { "1.5" } } }, v)
      _, _, v = upd({ T.nums:add(values.set{ 3 }) })
      assert.same({ [":0"] = { NS = { "3" } } }, v)
    end)

    it("keep exact numbers and NULL", function()
      local _, _, v = cond(T.views:eq(values.decimal("12345678901234567890123")))
      assert.same({ [":0"] = { N = "12345678901234567890123" } }, v)
      _, _, v = cond(T.raw.x:eq(values.null))
      assert.same({ [":0"] = { NULL = true } }, v)
      _, _, v = upd({ T.raw.x:set(values.null) })
      assert.same({ [":0"] = { NULL = true } }, v)
    end)

    it("projects through the schema's Lua names", function()
      local s = serializer.new()
      assert.equal("#0.#1, #2", s:projection({ "addr.zip_code", "odd" }, T))
      assert.same(names("addr", "zip", "odd name"), s:names())
      raises(function() s:projection({ "nope" }, T) end, "projection: unknown attribute 'nope'")
    end)
  end)
end

-- Keep `attributes` referenced: the real module when it loads.
assert(attributes.serialize_dynamic)
