-- lunamodb.Model without DynamoDB: declarations and their errors, items,
-- serialization helpers, strict options, shared clients, and golden wire
-- requests of every method, captured by the scripted loopback server and
-- compared as parsed JSON (reference pynamodb.md §3.4-§3.6, §4.9, §5.2,
-- §6.1-§6.4, §6.14). Conditions use * + - so the spec also runs on LuaJIT.
local lunamodb = require "lunamodb"
local A = require "lunamodb.attributes"
local core = require "lunamodb.core"
local model = require "lunamodb.model"
local loopback = require "spec.helpers.loopback"

local set, datetime, binary, null, decimal = lunamodb.set, lunamodb.datetime, lunamodb.binary,
  lunamodb.null, lunamodb.decimal
local json_decode, json_encode = core.json_decode, core.json_encode

local BOOLEAN_HINT = " (Lua comparison operators such as == and < always yield booleans: "
  .. "build conditions with methods such as :eq, :ne, :lt, :gt, :exists)"

local W = require "spec.helpers.wire"
local raises, raises_here = W.raises, W.raises_at("model_spec")

local function declare(decl)
  local cls = lunamodb.Model(decl)
  return cls
end

local function same_class(a, b) return rawequal(a, b) end

---------------------------------------------------------------- declaration

describe("lunamodb.Model declarations", function()
  local function with_key(extra)
    local attrs = { id = A.Unicode{ hash_key = true } }
    for k, v in pairs(extra or {}) do attrs[k] = v end
    return attrs
  end

  it("needs a table literal", function()
    raises(function() declare("users") end, "lunamodb.Model: expected a table literal (got string)")
    raises(function() declare() end, "lunamodb.Model: expected a table literal (got nil)")
  end)

  it("needs a table_name, and a valid one", function()
    raises(function() declare{ attributes = with_key() } end,
      "lunamodb.Model(Model): table_name is required")
    raises(function() declare{ name = "User", attributes = with_key() } end,
      "lunamodb.Model(User): table_name is required")
    raises(function() declare{ table_name = "ab", attributes = with_key() } end,
      "lunamodb.Model(ab): table_name \"ab\" must be 3-255 characters of letters, digits, "
      .. "'_', '-' and '.'")
    raises(function() declare{ table_name = "bad name", attributes = with_key() } end,
      "lunamodb.Model(bad name): table_name \"bad name\" must be 3-255 characters of letters, "
      .. "digits, '_', '-' and '.'")
    raises(function() declare{ table_name = string.rep("t", 256), attributes = with_key() } end,
      "lunamodb.Model(" .. string.rep("t", 256) .. "): table_name \"" .. string.rep("t", 256)
      .. "\" must be 3-255 characters of letters, digits, '_', '-' and '.'")
    local ok = declare{ table_name = "a.b-c_1", attributes = with_key() }
    assert.equal("a.b-c_1", ok:table_name())
  end)

  it("needs exactly one hash key and at most one range key", function()
    raises(function() declare{ table_name = "users", attributes = { a = A.Unicode{} } } end,
      "lunamodb.Model(users): no attribute is declared hash_key = true")
    raises(function() declare{ table_name = "users" } end,
      "lunamodb.Model(users): no attribute is declared hash_key = true")
    raises(function()
      declare{ table_name = "users", attributes = { a = A.Unicode{ hash_key = true }, b = A.Unicode{ hash_key = true } } }
    end, "lunamodb.Model(users): two hash keys: 'a' and 'b'")
    raises(function()
      declare{ table_name = "users", attributes = with_key{ r1 = A.Number{ range_key = true },
                                                            r2 = A.Number{ range_key = true } } }
    end, "lunamodb.Model(users): two range keys: 'r1' and 'r2'")
    raises(function()
      declare{ table_name = "users", attributes = with_key{ v1 = A.Version{}, v2 = A.Version{} } }
    end, "lunamodb.Model(users): at most one Version attribute ('v1' and 'v2')")
    raises(function() declare{ table_name = "users", attributes = with_key{ x = 5 } } end,
      "lunamodb.Model(users): 'x' must be an attribute (got number)")
  end)

  it("refuses attribute names that would hide a method", function()
    for _, name in ipairs({ "save", "get", "query", "update", "delete", "refresh", "new",
                            "create_table", "delete_table", "exists", "describe_table", "update_ttl",
                            "scan", "count", "extend", "to_table", "from_table", "to_dynamodb",
                            "from_dynamodb", "key_values", "is_partial", "client", "schema",
                            "table_name", "batch_get", "batch_write", "DoesNotExist" }) do
      raises(function() declare{ name = "User", table_name = "users", attributes = with_key{ [name] = A.Unicode{} } } end,
        "lunamodb.Model(User): attribute '" .. name .. "' would hide the model method of that name "
        .. "(use attr_name = \"" .. name .. "\" to keep the stored name)")
    end
    -- the advice works: another Lua name, the same stored name
    local M = declare{ table_name = "users", attributes = with_key{ save_ = A.Unicode{ attr_name = "save" } } }
    assert.same({ id = { S = "x" }, save = { S = "kept" } },
      json_decode(M.new{ id = "x", save_ = "kept" }:to_dynamodb()))
  end)

  it("refuses names starting with '_' and names that are not strings", function()
    raises(function() declare{ table_name = "users", attributes = with_key{ _x = A.Number{} } } end,
      "lunamodb.Model(users): attribute '_x': names starting with '_' are reserved")
    raises(function() declare{ table_name = "users", attributes = with_key{ __index = A.Number{} } } end,
      "lunamodb.Model(users): attribute '__index': names starting with '_' are reserved")
    raises(function() declare{ table_name = "users", attributes = with_key{ [1] = A.Number{} } } end,
      "lunamodb.Model(users): attribute names must be strings")
  end)

  it("refuses unknown and wrongly typed options", function()
    raises(function() declare{ table_name = "users", regoin = "us-east-1", attributes = with_key() } end,
      "lunamodb.Model(users): unknown option 'regoin'")
    raises(function() declare{ table_name = "users", index = {}, attributes = with_key() } end,
      "lunamodb.Model(users): unknown option 'index'")
    raises(function() declare{ table_name = "users", indexes = 1, attributes = with_key() } end,
      "lunamodb.Model(users): option 'indexes' must be a table (got number)")
    raises(function() declare{ table_name = "users", max_attempts = "3", attributes = with_key() } end,
      "lunamodb.Model(users): option 'max_attempts' must be a number (got string)")
    raises(function() declare{ table_name = "users", keep_unknown = 1, attributes = with_key() } end,
      "lunamodb.Model(users): option 'keep_unknown' must be a boolean (got number)")
    raises(function() declare{ table_name = "users", attributes = "id" } end,
      "lunamodb.Model(users): option 'attributes' must be a table (got string)")
  end)

  it("checks billing mode, stream view type and capacities", function()
    raises(function() declare{ table_name = "users", billing_mode = "ON_DEMAND", attributes = with_key() } end,
      "lunamodb.Model(users): billing_mode must be \"PROVISIONED\" or \"PAY_PER_REQUEST\"")
    raises(function() declare{ table_name = "users", stream_view_type = "ALL", attributes = with_key() } end,
      "lunamodb.Model(users): stream_view_type must be NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES or KEYS_ONLY")
    for _, cap in ipairs({ "read_capacity_units", "write_capacity_units" }) do
      for _, bad in ipairs({ 0, -1, 1.5, 0 / 0 }) do
        raises(function() declare{ table_name = "users", [cap] = bad, attributes = with_key() } end,
          "lunamodb.Model(users): " .. cap .. " must be a whole number >= 1")
      end
    end
    for _, mode in ipairs({ "PROVISIONED", "PAY_PER_REQUEST" }) do
      declare{ table_name = "users", billing_mode = mode, attributes = with_key() }
    end
    for _, view in ipairs({ "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES", "KEYS_ONLY" }) do
      declare{ table_name = "users", stream_view_type = view, attributes = with_key() }
    end
  end)

  it("lets several models share one attribute object, under any names", function()
    local key = A.Unicode{ hash_key = true }
    local when = A.UTCDateTime{ null = true }
    local One = declare{ table_name = "one_t", attributes = { id = key, created = when } }
    local Two = declare{ table_name = "two_t", attributes = { pk = key, made = when } }
    local at = datetime(0)
    assert.same({ id = { S = "x" }, created = { S = "1970-01-01T00:00:00.000000+0000" } },
      json_decode(One.new{ id = "x", created = at }:to_dynamodb()))
    assert.same({ pk = { S = "y" }, made = { S = "1970-01-01T00:00:00.000000+0000" } },
      json_decode(Two.new{ pk = "y", made = at }:to_dynamodb()))
    assert.same({ "x" }, { One.new{ id = "x" }:key_values() })
    assert.equal("one_t.id", tostring(One.id))
  end)

  it("reports declaration errors at the line of the declaration", function()
    raises_here(function() declare{ attributes = with_key() } end)
    raises_here(function() declare{ table_name = "users", regoin = "x", attributes = with_key() } end)
    raises_here(function() declare{ table_name = "users", attributes = with_key{ get = A.Unicode{} } } end)
    raises_here(function()
      declare{ table_name = "users", attributes = { a = A.Unicode{ hash_key = true }, b = A.Unicode{ hash_key = true } } }
    end)
  end)

  describe("subclasses", function()
    local Animal
    before_each(function()
      Animal = declare{ name = "Animal", table_name = "animals", attributes = {
        id = A.Unicode{ hash_key = true }, kind = A.Discriminator{}, name = A.Unicode{ null = true } } }
    end)

    it("cannot set the table or the connection: they are the parent's", function()
      for _, opt in ipairs({ { "table_name", "others" }, { "region", "eu-west-1" },
                             { "host", "http://127.0.0.1:1" }, { "profile", "p" }, { "client", {} },
                             { "billing_mode", "PAY_PER_REQUEST" } }) do
        raises(function() Animal:extend{ name = "Dog", discriminator = "dog" .. opt[1], [opt[1]] = opt[2] } end,
          "lunamodb.Model(Dog): a subclass shares its parent's table: '" .. opt[1] .. "' cannot be set")
      end
    end)

    -- Every other table or connection option of a subclass is silently ignored
    -- (the subclass uses its root's table and client), so it must be refused too.
    it("refuses every table and connection option, not only some", function()
      for _, opt in ipairs({ { "access_key_id", "AKID" }, { "secret_access_key", "S" },
                             { "session_token", "T" }, { "connect_timeout", 1 }, { "read_timeout", 1 },
                             { "timeout", 1 }, { "max_attempts", 2 }, { "retry", { base_ms = 1 } },
                             { "ca_bundle", "/x" }, { "read_capacity_units", 5 },
                             { "write_capacity_units", 5 }, { "stream_view_type", "KEYS_ONLY" },
                             { "tags", { env = "x" } } }) do
        raises(function() Animal:extend{ name = "Dog", discriminator = "dog_" .. opt[1], [opt[1]] = opt[2] } end,
          "lunamodb.Model(Dog): a subclass shares its parent's table: '" .. opt[1] .. "' cannot be set")
      end
    end)

    it("of a discriminated model need their own discriminator value", function()
      raises(function() Animal:extend{ name = "Dog", attributes = { breed = A.Unicode{ null = true } } } end,
        "lunamodb.Model(Dog): a subclass of a model with a Discriminator needs its own 'discriminator' value")
      raises(function() Animal:extend{} end,
        "lunamodb.Model(Animal): a subclass of a model with a Discriminator needs its own 'discriminator' value")
    end)

    it("cannot reuse another subclass's discriminator value", function()
      Animal:extend{ name = "Dog", discriminator = "dog" }
      raises(function() Animal:extend{ name = "Wolf", discriminator = "dog" } end,
        "lunamodb.attributes.Discriminator: value 'dog' is already registered for another class")
    end)

    it("need a Discriminator attribute to take a discriminator value", function()
      raises(function()
        declare{ name = "Plain", table_name = "plain", discriminator = "x", attributes = { id = A.Unicode{ hash_key = true } } }
      end, "lunamodb.Model(Plain): 'discriminator' needs a Discriminator attribute in the model")
      local Plain = declare{ name = "Plain", table_name = "plain", attributes = { id = A.Unicode{ hash_key = true } } }
      raises(function() Plain:extend{ name = "Sub", discriminator = "sub" } end,
        "lunamodb.Model(Sub): 'discriminator' needs a Discriminator attribute in the model")
    end)

    it("cannot redeclare a parent attribute", function()
      raises(function() Animal:extend{ name = "Dog", discriminator = "dog", attributes = { name = A.Unicode{} } } end,
        "lunamodb.Model(Dog): attribute 'name' is already declared by the parent model")
      raises(function()
        Animal:extend{ name = "Dog", discriminator = "dog", attributes = { pk = A.Unicode{ hash_key = true } } }
      end, "lunamodb.Model(Dog): two hash keys: 'id' and 'pk'")
    end)

    it("report their declaration errors at the line of the declaration", function()
      raises_here(function() Animal:extend{ name = "Dog" } end)
      raises_here(function() Animal:extend{ name = "Dog", discriminator = "d", table_name = "others" } end)
      raises_here(function() Animal:extend{ name = "Dog", discriminator = "d", regoin = "x" } end)
    end)

    it("are extended with a colon call only", function()
      raises(function() Animal.extend{ discriminator = "x" } end, "lunamodb: use Model:extend{...} on a model class")
      raises(function() Animal:extend("x") end, "lunamodb: extend: expected a table literal (got string)")
    end)

    it("inherit the attributes and the table", function()
      local Dog = Animal:extend{ name = "Dog", discriminator = "dog", attributes = { breed = A.Unicode{ null = true } } }
      assert.is_true(model.is_model(Dog))
      assert.equal("animals", Dog:table_name())
      assert.equal("Dog.name", tostring(Dog.name))
      assert.equal("Dog.breed", tostring(Dog.breed))
      assert.equal("lunamodb.Model(Dog)", tostring(Dog))
      raises(function() return Animal.breed end, "lunamodb: Animal has no attribute or method 'breed'")
    end)
  end)
end)

---------------------------------------------------------------- classes

describe("a model class", function()
  local User
  before_each(function()
    User = declare{ name = "User", table_name = "users", attributes = {
      email = A.Unicode{ hash_key = true }, name = A.Unicode{ null = true },
      logins = A.Number{ default = 0 }, version = A.Version{} } }
  end)

  it("holds the attributes' paths", function()
    assert.is_true(lunamodb.expressions.is_path(User.logins))
    assert.equal("User.logins", tostring(User.logins))
    assert.equal("lunamodb.Model(User)", tostring(User))
    assert.is_true(model.is_model(User))
    assert.is_false(model.is_model({}))
    assert.equal("users", User:table_name())
    assert.is_table(A.info(User:schema()).by_name.logins)
  end)

  it("raises on a typo instead of reading nil", function()
    raises(function() return User.login end, "lunamodb: User has no attribute or method 'login'")
    raises(function() return User.save end, "lunamodb: User has no attribute or method 'save'")
    raises_here(function() return User.login end)
  end)

  it("cannot be assigned to", function()
    raises(function() User.anything = 1 end, "lunamodb: User: cannot set 'anything' on a model class")
    -- attribute paths and new are fields of the class: assigning them must raise too
    raises(function() User.logins = 1 end, "lunamodb: User: cannot set 'logins' on a model class")
    raises(function() User.version = 5 end, "lunamodb: User: cannot set 'version' on a model class")
    raises(function() User.new = nil end, "lunamodb: User: cannot set 'new' on a model class")
    assert.is_true(lunamodb.expressions.is_path(User.logins))
    assert.is_true(lunamodb.expressions.is_path(User.version))
    assert.is_function(User.new)
  end)

  it("class methods need the colon", function()
    raises(function() User.get("a") end,
      "lunamodb: get must be called on a model class (User:get(...), not User.get(...))")
    raises(function() User.create_table() end,
      "lunamodb: create_table must be called on a model class (User:create_table(...), not User.create_table(...))")
    raises(function() User.from_table{} end,
      "lunamodb: from_table must be called on a model class (User:from_table(...), not User.from_table(...))")
  end)

  it("uses the table name as its name by default", function()
    local M = declare{ table_name = "things", attributes = { id = A.Unicode{ hash_key = true } } }
    assert.equal("lunamodb.Model(things)", tostring(M))
    raises(function() return M.nope end, "lunamodb: things has no attribute or method 'nope'")
  end)
end)

---------------------------------------------------------------- items

describe("items", function()
  local User, counter
  before_each(function()
    counter = 0
    User = declare{ name = "User", table_name = "users", attributes = {
      email = A.Unicode{ hash_key = true }, name = A.Unicode{ null = true },
      logins = A.Number{ default = 0 }, version = A.Version{},
      flag = A.Boolean{ default = true },
      serial = A.Number{ null = true, default_for_new = function() counter = counter + 1; return counter end },
      notes = A.List{ null = true, default = function() return { "first" } end },
    } }
  end)

  it("are built with User.new{...} and User:new{...}", function()
    local a = User.new{ email = "ada@example.com", name = "Ada" }
    local b = User:new{ email = "ada@example.com", name = "Ada" }
    assert.equal("ada@example.com", a.email)
    assert.equal("Ada", b.name)
    assert.is_true(same_class(User, model.class_of(a)))
    assert.is_true(same_class(User, model.class_of(b)))
    local ta, tb = a:to_table(), b:to_table()
    assert.same({ 1, 2 }, { ta.serial, tb.serial })     -- default_for_new, once per item
    ta.serial, tb.serial = nil, nil
    assert.same(ta, tb)
  end)

  it("apply defaults, calling default functions once per item", function()
    local a = User.new{ email = "a" }
    local b = User.new()
    assert.equal(0, a.logins)
    assert.is_true(a.flag)
    assert.equal(1, a.serial)
    assert.equal(2, b.serial)
    assert.same({ "first" }, a.notes)
    assert.is_false(rawequal(a.notes, b.notes))       -- a fresh table each time
    assert.is_nil(a.name)
    assert.is_nil(a.version)
  end)

  it("keep given values over defaults, false included", function()
    local a = User.new{ email = "a", logins = 5, flag = false, serial = 42, notes = {} }
    assert.equal(5, a.logins)
    assert.is_false(a.flag)
    assert.equal(42, a.serial)
    assert.equal(0, counter)                          -- default_for_new not called when given
  end)

  it("refuse unknown attributes, in new and in assignment", function()
    raises(function() User.new{ email = "a", bogus = 1 } end, "lunamodb: User.new: User has no attribute 'bogus'")
    raises(function() User:new{ mail = "a" } end, "lunamodb: User.new: User has no attribute 'mail'")
    raises(function() User.new("a") end, "lunamodb: User.new: expected a table of values (got string)")
    local u = User.new{ email = "a" }
    raises(function() u.bogus = 1 end, "lunamodb: User has no attribute 'bogus'")
    raises(function() u.save = 1 end, "lunamodb: User has no attribute 'save'")
    raises_here(function() u.bogus = 1 end)
    assert.is_nil(rawget(u, "bogus"))
  end)

  it("read and assign fields", function()
    local u = User.new{ email = "a" }
    u.name = "Ada"
    assert.equal("Ada", u.name)
    u.name = nil
    assert.is_nil(u.name)
    u.name = "Again"                                   -- through __newindex once more
    assert.equal("Again", u.name)
    u.logins = u.logins + 1
    assert.equal(1, u.logins)
  end)

  it("read a missing field as nil, never as a class member", function()
    local u = User.new()
    assert.is_nil(u.email)                             -- not the class's path User.email
    for _, k in ipairs({ "get", "new", "create_table", "delete_table", "exists", "describe_table",
                         "extend", "client", "schema", "table_name", "from_table", "from_dynamodb",
                         "query", "scan", "DoesNotExist", "whatever" }) do
      assert.is_nil(u[k], k)
    end
    for _, k in ipairs({ "save", "update", "delete", "refresh", "to_table", "to_dynamodb",
                         "key_values", "is_partial" }) do
      assert.is_function(u[k], k)
    end
  end)

  it("item methods need the colon", function()
    local u = User.new{ email = "a" }
    raises(function() u.save() end, "lunamodb: save must be called on an item (item:save(...))")
    raises(function() u.to_table() end, "lunamodb: to_table must be called on an item (item:to_table(...))")
    raises(function() u.update({}) end, "lunamodb: update must be called on an item (item:update(...))")
  end)

  it("print as Name(key first, then the other attributes by name)", function()
    local u = User.new{ email = "ada@example.com", name = "Ada", notes = { "x" } }
    assert.equal('User(email="ada@example.com", flag=true, logins=0, name="Ada", notes={...}, serial=1)',
      tostring(u))
    local T = declare{ table_name = "threads", attributes = {
      forum = A.Unicode{ hash_key = true }, subject = A.Number{ range_key = true },
      tags = A.UnicodeSet{}, at = A.UTCDateTime{ null = true } } }
    local t = T.new{ forum = "lua", subject = 3, tags = set{ "b", "a" },
                     at = datetime("2024-01-02T03:04:05Z") }
    assert.equal('threads(forum="lua", subject=3, at=2024-01-02T03:04:05.000000+0000, tags=set{"a", "b"})',
      tostring(t))
  end)

  it("compare by identity", function()
    local a = User.new{ email = "a" }
    local b = User.new{ email = "a", serial = 1 }
    assert.is_false(a == b)
    assert.is_true(a == a)
    assert.is_nil(getmetatable(a).__eq)
  end)

  it("give their key values", function()
    local u = User.new{ email = "a" }
    local h, r = u:key_values()
    assert.equal("a", h)
    assert.is_nil(r)
    local T = declare{ table_name = "threads", attributes = {
      forum = A.Unicode{ hash_key = true, attr_name = "f" }, subject = A.Number{ range_key = true } } }
    local t = T.new{ forum = "lua", subject = 7 }
    assert.same({ "lua", 7 }, { t:key_values() })
  end)
end)

---------------------------------------------------------------- to and from

describe("serialization helpers", function()
  local User
  before_each(function()
    User = declare{ name = "User", table_name = "users", attributes = {
      email = A.Unicode{ hash_key = true }, name = A.Unicode{ null = true },
      logins = A.Number{ default = 0 }, version = A.Version{},
      avatar = A.Binary{ null = true }, keys = A.BinarySet{},
      tags = A.UnicodeSet{}, big = A.Number{ null = true },
      seen = A.UTCDateTime{ null = true, default_for_new = function() return datetime(0) end },
      prefs = A.Map{ null = true }, lst = A.List{ null = true },
    } }
  end)

  local function sample()
    return User.new{ email = "ada@example.com", name = "Ada", logins = 3, version = 2,
      avatar = "\0\1\254\255", keys = set{ "\0", "\255" },
      tags = set{ "x", "y" }, big = decimal("12345678901234567890.5"),
      prefs = { theme = "dark", n = 1, nested = { ok = true } }, lst = { 1, "two", null } }
  end

  it("to_table gives a plain copy of the values", function()
    local u = sample()
    local t = u:to_table()
    assert.is_nil(getmetatable(t))
    assert.equal("ada@example.com", t.email)
    assert.equal(3, t.logins)
    assert.equal(datetime(0), t.seen)
    t.logins = 99
    t.bogus = 1
    assert.equal(3, u.logins)
    assert.is_nil(rawget(u, "bogus"))
  end)

  it("from_table builds an item, applying default but not default_for_new", function()
    local u = User:from_table{ email = "a", name = "Ada" }
    assert.is_true(same_class(User, model.class_of(u)))
    assert.equal("Ada", u.name)
    assert.equal(0, u.logins)
    assert.is_nil(u.seen)
    local back = User:from_table(sample():to_table())
    assert.same(sample():to_table(), back:to_table())
    raises(function() User:from_table{ email = "a", bogus = 1 } end,
      "lunamodb: User:from_table: User has no attribute 'bogus'")
    raises(function() User:from_table("a") end, "lunamodb: User:from_table: expected a table (got string)")
  end)

  it("to_dynamodb gives DynamoDB's typed JSON, binary base64-encoded", function()
    local doc = json_decode(sample():to_dynamodb())
    assert.same({
      email = { S = "ada@example.com" }, name = { S = "Ada" }, logins = { N = "3" }, version = { N = "2" },
      avatar = { B = "AAH+/w==" }, keys = { BS = { "AA==", "/w==" } }, tags = { SS = { "x", "y" } },
      big = { N = "12345678901234567890.5" }, seen = { S = "1970-01-01T00:00:00.000000+0000" },
      prefs = { M = { theme = { S = "dark" }, n = { N = "1" }, nested = { M = { ok = { BOOL = true } } } } },
      lst = { L = { { N = "1" }, { S = "two" }, { NULL = true } } },
    }, doc)
    raises(function() User.new{ name = "no key" }:to_dynamodb() end,
      "lunamodb: email: cannot be nil (the attribute is not declared null = true)")
  end)

  it("from_dynamodb reads the text form and the decoded form back", function()
    local u = sample()
    local text = u:to_dynamodb()
    for _, doc in ipairs({ text, json_decode(text) }) do
      local back = User:from_dynamodb(doc)
      assert.is_true(same_class(User, model.class_of(back)))
      assert.equal("\0\1\254\255", back.avatar)
      assert.equal(set{ "\0", "\255" }, back.keys)
      assert.equal(decimal("12345678901234567890.5"), back.big)
      assert.equal(datetime(0), back.seen)
      assert.same({ theme = "dark", n = 1, nested = { ok = true } }, back.prefs)
      assert.equal(null, back.lst[3])
      assert.same(json_decode(text), json_decode(back:to_dynamodb()))
    end
  end)

  it("from_dynamodb applies default, not default_for_new, and ignores undeclared names", function()
    local back = User:from_dynamodb('{"email":{"S":"a"},"other":{"S":"x"}}')
    assert.equal(0, back.logins)
    assert.is_nil(back.seen)
    assert.is_nil(back.other)
    assert.same({ email = "a", logins = 0 }, back:to_table())
    assert.is_false(back:is_partial())
  end)

  it("from_dynamodb refuses what is not an item", function()
    local ok, err = pcall(function() User:from_dynamodb("{bad") end)
    assert.is_false(ok)
    assert.matches("^[^\n]-model_spec%.lua:%d+: lunamodb: User:from_dynamodb: invalid JSON", err)
    raises(function() User:from_dynamodb(5) end,
      "lunamodb: User:from_dynamodb: expected JSON text or a table (got number)")
  end)
end)

---------------------------------------------------------------- misuse of calls

describe("call options and arguments", function()
  local User, u
  before_each(function()
    User = declare{ name = "User", table_name = "users", host = "http://127.0.0.1:1", region = "us-east-1",
      access_key_id = "AKID", secret_access_key = "SECRET", attributes = {
        email = A.Unicode{ hash_key = true }, name = A.Unicode{ null = true },
        logins = A.Number{ default = 0 }, version = A.Version{} } }
    u = User.new{ email = "a" }
  end)

  it("are strict: an unknown option raises", function()
    raises(function() u:save{ conditon = User.logins:eq(1) } end, "lunamodb: User:save: unknown option 'conditon'")
    raises(function() u:update({ User.logins:add(1) }, { conditon = 1 }) end,
      "lunamodb: User:update: unknown option 'conditon'")
    raises(function() u:update({ User.logins:add(1) }, { keep_unknown = true }) end,
      "lunamodb: User:update: unknown option 'keep_unknown'")
    raises(function() u:delete{ add_version_conditon = false } end,
      "lunamodb: User:delete: unknown option 'add_version_conditon'")
    raises(function() u:refresh{ consistent = true } end, "lunamodb: User:refresh: unknown option 'consistent'")
    raises(function() User:get("a", { consistnt_read = true }) end, "lunamodb: User:get: unknown option 'consistnt_read'")
    raises(function() User:create_table{ biling_mode = "PAY_PER_REQUEST" } end,
      "lunamodb: User:create_table: unknown option 'biling_mode'")
    raises(function() User:delete_table{ wiat = true } end, "lunamodb: User:delete_table: unknown option 'wiat'")
    raises(function() u:save("x") end, "lunamodb: User:save: options must be a table (got string)")
    raises_here(function() u:save{ conditon = 1 } end)
  end)

  it("update needs a non-empty list of actions", function()
    raises(function() u:update{} end, "lunamodb: User:update: expected a non-empty list of update actions")
    raises(function() u:update() end, "lunamodb: User:update: expected a non-empty list of update actions")
    raises(function() u:update(User.logins:add(1)) end,
      "lunamodb: User:update: expected a non-empty list of update actions")
    raises(function() u:update{ User.logins:add(1), "name" } end,
      "lunamodb: User:update: action 2 is not an update action (got string)")
    raises(function() u:update{ User.logins:eq(1) } end,
      "lunamodb: User:update: action 1 is not an update action (got table)")
  end)

  it("a condition that is a boolean raises with the hint", function()
    local cond = (User.logins == 3)                  -- Lua makes this false
    raises(function() u:save{ condition = cond } end,
      "lunamodb: User:save condition must be a condition, got a boolean" .. BOOLEAN_HINT)
    raises(function() u:update({ User.logins:add(1) }, { condition = cond }) end,
      "lunamodb: User:update condition must be a condition, got a boolean" .. BOOLEAN_HINT)
    raises(function() u:delete{ condition = cond } end,
      "lunamodb: User:delete condition must be a condition, got a boolean" .. BOOLEAN_HINT)
    raises(function() u:save{ condition = User.logins:eq(1) * cond } end,
      "lunamodb: cannot combine a condition with a boolean" .. BOOLEAN_HINT)
    raises(function() u:save{ condition = "logins = 1" } end,
      "lunamodb: User:save condition must be a condition, got a string")
  end)

  it("keys are checked before anything is sent", function()
    raises(function() User:get(nil) end, "lunamodb: email: the key value is missing")
    raises(function() User:get("") end, "lunamodb: email: a key attribute cannot be empty")
    raises(function() User:get("a", "b") end, "lunamodb: User has no range key, but a range key value was given")
    raises(function() User.new{}:delete() end, "lunamodb: email: the key value is missing")
    raises(function() User.new{ name = "x" }:save() end,
      "lunamodb: email: cannot be nil (the attribute is not declared null = true)")
  end)

  it("create_table checks its billing before any request", function()
    raises(function() User:create_table() end,
      "lunamodb: User:create_table: PROVISIONED billing needs read_capacity_units and "
      .. "write_capacity_units (or billing_mode = \"PAY_PER_REQUEST\")")
    raises(function() User:create_table{ billing_mode = "FREE" } end,
      "lunamodb: create_table: billing_mode must be \"PROVISIONED\" or \"PAY_PER_REQUEST\"")
    raises(function() User:create_table{ billing_mode = "PAY_PER_REQUEST", stream_view_type = "ALL" } end,
      "lunamodb: create_table: stream_view_type must be NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES or KEYS_ONLY")
    raises(function() User:update_ttl() end, "lunamodb: User:update_ttl: the model has no TTL attribute")
  end)
end)

---------------------------------------------------------------- clients

describe("model clients", function()
  local function M(extra)
    local decl = { table_name = "users", attributes = { id = A.Unicode{ hash_key = true } },
      region = "us-east-1", host = "http://127.0.0.1:1", access_key_id = "AKID", secret_access_key = "SECRET" }
    for k, v in pairs(extra or {}) do decl[k] = v end
    return lunamodb.Model(decl)
  end

  it("are shared by models with identical connection options", function()
    local a = M{ table_name = "one", retry = { base_ms = 5 } }
    local b = M{ table_name = "two", retry = { base_ms = 5 } }
    assert.is_true(rawequal(a:client(), b:client()))
    assert.is_true(rawequal(a:client(), a:client()))
    assert.equal("us-east-1", a:client().region)
  end)

  it("differ when any connection option differs", function()
    local base = M()
    for _, extra in ipairs({ { host = "http://127.0.0.1:2" }, { region = "eu-west-1" },
                             { access_key_id = "OTHER" }, { secret_access_key = "OTHER" },
                             { session_token = "T" }, { connect_timeout = 3 }, { read_timeout = 7 },
                             { timeout = 9 }, { max_attempts = 2 }, { retry = { base_ms = 7 } } }) do
      local other = M(extra)
      assert.is_false(rawequal(base:client(), other:client()), next(extra))
    end
  end)

  it("are shared by a subclass and its parent", function()
    local P = M{ attributes = { id = A.Unicode{ hash_key = true }, kind = A.Discriminator{} } }
    local C = P:extend{ discriminator = "c" }
    assert.is_true(rawequal(P:client(), C:client()))
  end)

  it("refuse bad connection values at declaration", function()
    local ok, err = pcall(M, { max_attempts = 0 })
    assert.is_false(ok)
    assert.matches("lunamodb.Model(users): max_attempts must be a whole number >= 1", err, 1, true)
    ok, err = pcall(M, { connect_timeout = 0 })
    assert.is_false(ok)
    assert.matches("connect_timeout must be a positive number of seconds", err, 1, true)
  end)

  it("are made on first use, so declaring never reads configuration", function()
    -- an endpoint that cannot be parsed is only found when the client is made
    local bad = M{ host = "ftp://nowhere" }
    local ok, err = pcall(function() return bad:client() end)
    assert.is_false(ok)
    assert.matches("lunamodb.Client.new: endpoint from the host option is malformed", err, 1, true)
  end)

  it("take a given client as is, for every call", function()
    local calls = {}
    local fake = { call = function(_, op, params)
      calls[#calls + 1] = { op = op, params = params }
      if op == "GetItem" then return { Item = { id = { S = "x" } } } end
      return {}
    end }
    local P = M{ client = fake, host = "http://127.0.0.1:9", attributes = {
      id = A.Unicode{ hash_key = true }, kind = A.Discriminator{ null = true } } }
    local C = P:extend{ discriminator = "c" }
    assert.is_true(rawequal(fake, P:client()))
    assert.is_true(rawequal(fake, C:client()))
    assert.truthy(P.new{ id = "x" }:save())
    assert.truthy(P:get("x"))
    assert.truthy(C.new{ id = "y" }:delete())
    assert.same({ "PutItem", "GetItem", "DeleteItem" }, { calls[1].op, calls[2].op, calls[3].op })
    assert.equal("users", calls[3].params.TableName)
    -- a client with only `call` gets params tables from the paths the core writes bodies for
    local Q = M{ client = fake, host = "http://127.0.0.1:9", table_name = "plain",
      attributes = { id = A.Unicode{ hash_key = true }, n = A.Number{} } }
    calls = {}
    assert.truthy(Q.new{ id = "q", n = 1 }:save())
    assert.truthy(Q.new{ id = "q" }:update{ Q.n:set(Q.n + 1) })
    assert.same({ TableName = "plain", Item = { id = { S = "q" }, n = { N = "1" } } },
      json_decode(json_encode(calls[1].params)))
    assert.equal("UpdateItem", calls[2].op)
    assert.equal("SET #0 = #0 + :0", calls[2].params.UpdateExpression)
  end)
end)

---------------------------------------------------------------- on the wire

local ddb_error, OK, reply, sent, last = W.ddb_error, W.OK, W.reply, W.sent, W.last
local function ops(srv)
  local out = {}
  for i, r in ipairs(sent(srv)) do out[i] = r.op end
  return out
end

-- An expression with its placeholders replaced by names and JSON values, so
-- specs can read what a request means whatever the numbering.
local function expand(body, key)
  local text = body[key]
  if not text then return nil end
  text = text:gsub("#%d+", function(p) return assert(body.ExpressionAttributeNames[p], p) end)
  text = text:gsub(":%d+", function(p) return json_encode(assert(body.ExpressionAttributeValues[p], p)) end)
  return text
end

describe("models on the wire", function()
  local srv
  after_each(function() if srv then srv:stop(); srv = nil end end)

  local function start(replies)
    srv = loopback.start{ routes = { ["POST /"] = replies } }
    return srv
  end

  local on = W.on

  local function user_model(server, extra)
    local decl = { name = "User", table_name = "users", attributes = {
      email = A.Unicode{ hash_key = true }, name = A.Unicode{ null = true },
      logins = A.Number{ default = 0 }, version = A.Version{} } }
    for k, v in pairs(extra or {}) do decl[k] = v end
    return on(server, decl)
  end

  describe("save", function()
    it("first save of a versioned item: attribute_not_exists, version 1 (§4.9, §6.2)", function()
      local User = user_model(start{ OK })
      local u = User.new{ email = "ada@example.com", name = "Ada" }
      assert.is_true(rawequal(u, u:save()))
      local body, op = last(srv)
      assert.equal("PutItem", op)
      assert.same({
        TableName = "users",
        Item = { email = { S = "ada@example.com" }, name = { S = "Ada" }, logins = { N = "0" },
                 version = { N = "1" } },
        ConditionExpression = "attribute_not_exists (#0)",
        ExpressionAttributeNames = { ["#0"] = "version" },
      }, body)
      assert.equal(1, u.version)
    end)

    it("second save: version = 1 condition, version 2 (§4.9, §6.2)", function()
      local User = user_model(start{ OK })
      local u = User.new{ email = "ada@example.com", name = "Ada" }
      assert(u:save())
      assert(u:save())
      assert.same({
        TableName = "users",
        Item = { email = { S = "ada@example.com" }, name = { S = "Ada" }, logins = { N = "0" },
                 version = { N = "2" } },
        ConditionExpression = "#0 = :0",
        ExpressionAttributeNames = { ["#0"] = "version" },
        ExpressionAttributeValues = { [":0"] = { N = "1" } },
      }, (last(srv)))
      assert.equal(2, u.version)
    end)

    it("uses the stored name of the Version attribute", function()
      local V = on(start{ OK }, { table_name = "users", attributes = {
        email = A.Unicode{ hash_key = true }, rev = A.Version{ attr_name = "v" } } })
      local u = V.new{ email = "a" }
      assert(u:save())
      assert.same({ TableName = "users", Item = { email = { S = "a" }, v = { N = "1" } },
                    ConditionExpression = "attribute_not_exists (#0)",
                    ExpressionAttributeNames = { ["#0"] = "v" } }, (last(srv)))
      assert.equal(1, u.rev)
      assert.is_true(u:delete())
      assert.equal('v = {"N":"1"}', expand(last(srv), "ConditionExpression"))
    end)

    it("explicit version 0: condition version = 0, item version 1 (§6.2)", function()
      local User = user_model(start{ OK })
      local u = User.new{ email = "a", version = 0 }
      assert(u:save())
      local body = last(srv)
      assert.equal("#0 = :0", body.ConditionExpression)
      assert.same({ [":0"] = { N = "0" } }, body.ExpressionAttributeValues)
      assert.same({ N = "1" }, body.Item.version)
      assert.equal(1, u.version)
    end)

    it("ANDs the user's condition before the version condition", function()
      local User = user_model(start{ OK })
      local u = User.new{ email = "a", version = 4 }
      assert(u:save{ condition = User.logins:lt(10) + -User.name:exists() })
      assert.same({
        TableName = "users",
        Item = { email = { S = "a" }, logins = { N = "0" }, version = { N = "5" } },
        ConditionExpression = "((#0 < :0 OR (NOT attribute_exists (#1))) AND #2 = :1)",
        ExpressionAttributeNames = { ["#0"] = "logins", ["#1"] = "name", ["#2"] = "version" },
        ExpressionAttributeValues = { [":0"] = { N = "10" }, [":1"] = { N = "4" } },
      }, (last(srv)))
    end)

    it("add_version_condition = false drops the condition but still increments", function()
      local User = user_model(start{ OK })
      local u = User.new{ email = "a", version = 7 }
      assert(u:save{ add_version_condition = false })
      assert.same({ TableName = "users",
                    Item = { email = { S = "a" }, logins = { N = "0" }, version = { N = "8" } } }, (last(srv)))
      assert.equal(8, u.version)
      assert(u:save{ add_version_condition = false, condition = User.name:does_not_exist() })
      local body = last(srv)
      assert.equal("attribute_not_exists (#0)", body.ConditionExpression)
      assert.same({ ["#0"] = "name" }, body.ExpressionAttributeNames)
      assert.same({ N = "9" }, body.Item.version)
    end)

    it("without a Version attribute, sends no condition unless asked", function()
      local Plain = on(start{ OK }, { table_name = "plain", attributes = { id = A.Number{ hash_key = true },
        s = A.Unicode{ null = true } } })
      assert(Plain.new{ id = 1 }:save())
      assert.same({ TableName = "plain", Item = { id = { N = "1" } } }, (last(srv)))
      assert(Plain.new{ id = 2, s = "x" }:save{ condition = Plain.id:does_not_exist() })
      assert.same({ TableName = "plain", Item = { id = { N = "2" }, s = { S = "x" } },
                    ConditionExpression = "attribute_not_exists (#0)",
                    ExpressionAttributeNames = { ["#0"] = "id" } }, (last(srv)))
    end)

    it("a failed condition returns nil, err and leaves the local version alone", function()
      local User = user_model(start{ ddb_error("ConditionalCheckFailedException", "The conditional request failed") })
      local u = User.new{ email = "a", version = 3 }
      local out, err = u:save()
      assert.is_nil(out)
      assert.is_true(lunamodb.is_error(err))
      assert.equal("ConditionalCheckFailedException", err.code)
      assert.equal("PutItem", err.operation)
      assert.equal(3, u.version)
      local v = User.new{ email = "b" }
      out, err = v:save()
      assert.is_nil(out)
      assert.equal("ConditionalCheckFailedException", err.code)
      assert.is_nil(v.version)
    end)

    it("validates the whole item before sending", function()
      local User = user_model(start{ OK })
      local u = User.new{ email = "a", logins = "many" }
      local ok, err = pcall(u.save, u)
      assert.is_false(ok)
      assert.matches("lunamodb: logins: ", tostring(err), 1, true)
      assert.is_nil(u.version)
      assert.equal(0, srv:count())
    end)

    it("reproduces PynamoDB's captured PutItem of a first save (§4.9)", function()
      local Addr = A.Map{ fields = { street = A.Unicode{}, zip_code = A.Number{ attr_name = "zip", null = true } } }
      local Thing = on(start{ OK }, { table_name = "thing", attributes = {
        pk = A.Unicode{ hash_key = true }, sk = A.Number{ range_key = true },
        addr = Addr, blob = A.Binary{}, blobs = A.BinarySet{}, doc = A.JSON{}, email = A.Unicode{},
        flag = A.Boolean{}, legacy_blob = A.Binary{ legacy_encoding = true }, lst = A.List{},
        name = A.Unicode{}, nums = A.NumberSet{}, raw = A.Map{}, tags_ = A.UnicodeSet{ attr_name = "tags" },
        ttl = A.TTL{}, typed_lst = A.List{ of = Addr }, views = A.Number{ default = 0 },
        when = A.UTCDateTime{}, version = A.Version{} } })
      local t = Thing.new{
        pk = "a", sk = 1, addr = { street = "s", zip_code = 123 }, blob = "\202\254",
        blobs = set{ "\0" }, doc = { k = { 1, 2, null }, z = "é" }, email = "e@x", flag = true,
        legacy_blob = "\202\254", lst = { 1, "a", null, binary("\1"), { k = "v" }, { true } },
        name = "n", nums = set{ 1, 2.5 }, raw = { a = 1, b = null, c = { 1, "two", { d = true } }, e = set{ "x", "y" } },
        tags_ = set{ "x", "y" }, ttl = datetime("2030-01-01T00:00:00Z"), typed_lst = { { street = "t" } },
        when = datetime{ year = 2024, month = 1, day = 2, hour = 3, min = 4, sec = 5, usec = 6789 },
      }
      assert(t:save())
      local captured = json_decode([[{"TableName": "thing",
 "Item": {"pk": {"S": "a"}, "sk": {"N": "1"},
   "addr": {"M": {"street": {"S": "s"}, "zip": {"N": "123"}}}, "blob": {"B": "yv4="}, "blobs": {"BS": ["AA=="]},
   "doc": {"S": "{\"k\": [1, 2, null], \"z\": \"\\u00e9\"}"}, "email": {"S": "e@x"}, "flag": {"BOOL": true},
   "legacy_blob": {"B": "eXY0PQ=="},
   "lst": {"L": [{"N": "1"}, {"S": "a"}, {"NULL": true}, {"B": "AQ=="}, {"M": {"k": {"S": "v"}}}, {"L": [{"BOOL": true}]}]},
   "name": {"S": "n"}, "nums": {"NS": ["1", "2.5"]},
   "raw": {"M": {"a": {"N": "1"}, "b": {"NULL": true}, "c": {"L": [{"N": "1"}, {"S": "two"}, {"M": {"d": {"BOOL": true}}}]}, "e": {"SS": ["x", "y"]}}},
   "tags": {"SS": ["x", "y"]}, "ttl": {"N": "1893456000"}, "typed_lst": {"L": [{"M": {"street": {"S": "t"}}}]},
   "views": {"N": "0"}, "when": {"S": "2024-01-02T03:04:05.006789+0000"}, "version": {"N": "1"}},
 "ConditionExpression": "attribute_not_exists (#0)", "ExpressionAttributeNames": {"#0": "version"}}]])
      assert.same(captured, (last(srv)))
    end)
  end)

  describe("update", function()
    it("sends ALL_NEW, the actions, ADD version and the version condition, then refreshes", function()
      local User = user_model(start{ reply{ Attributes = {
        email = { S = "a" }, name = { S = "Bob" }, logins = { N = "6" }, version = { N = "2" } } } })
      local u = User.new{ email = "a", name = "Ada", logins = 5, version = 1 }
      local actions = { User.logins:add(1), User.name:set("Bob") }
      assert.is_true(rawequal(u, u:update(actions)))
      local body, op = last(srv)
      assert.equal("UpdateItem", op)
      assert.equal("users", body.TableName)
      assert.same({ email = { S = "a" } }, body.Key)
      assert.equal("ALL_NEW", body.ReturnValues)
      assert.equal('SET name = {"S":"Bob"} ADD logins {"N":"1"}, version {"N":"1"}', expand(body, "UpdateExpression"))
      assert.equal('version = {"N":"1"}', expand(body, "ConditionExpression"))
      assert.equal(2, #actions)                             -- the caller's list is not changed
      assert.equal("Bob", u.name)
      assert.equal(6, u.logins)
      assert.equal(2, u.version)
    end)

    it("afterwards the item holds exactly the stored values: names it lacked set, others cleared", function()
      local User = user_model(start{ reply{ Attributes = {
        email = { S = "a" }, logins = { N = "7" }, version = { N = "2" } } } })
      local u = User.new{ email = "a", name = "Ada", version = 1 }
      assert(u:update{ User.logins:set(7), User.name:remove() })
      assert.same({ email = "a", logins = 7, version = 2 }, u:to_table())
      assert.is_nil(rawget(u, "name"))
      assert.equal(7, rawget(u, "logins"))
    end)

    it("a first update of a versioned item: SET version = 1 and attribute_not_exists", function()
      local User = user_model(start{ reply{ Attributes = { email = { S = "a" }, version = { N = "1" } } } })
      local u = User.new{ email = "a", name = "local only", logins = 4 }
      assert(u:update{ User.name:remove() })
      local body = last(srv)
      assert.equal('SET version = {"N":"1"} REMOVE name', expand(body, "UpdateExpression"))
      assert.equal("attribute_not_exists (version)", expand(body, "ConditionExpression"))
      -- the item now holds what DynamoDB returned, with defaults re-applied
      assert.is_nil(u.name)
      assert.equal(0, u.logins)
      assert.equal(1, u.version)
    end)

    it("ANDs the user's condition; add_version_condition = false keeps only it", function()
      local User = user_model(start{ reply{ Attributes = { email = { S = "a" }, version = { N = "3" } } } })
      local u = User.new{ email = "a", version = 2 }
      assert(u:update({ User.logins:set(User.logins + 1) }, { condition = User.email:exists() }))
      local body = last(srv)
      assert.equal("(attribute_exists (email) AND version = {\"N\":\"2\"})", expand(body, "ConditionExpression"))
      assert.equal('SET logins = logins + {"N":"1"} ADD version {"N":"1"}', expand(body, "UpdateExpression"))
      assert(u:update({ User.logins:add(1) }, { add_version_condition = false }))
      body = last(srv)
      assert.is_nil(body.ConditionExpression)
      assert.equal('ADD logins {"N":"1"}, version {"N":"1"}', expand(body, "UpdateExpression"))
      assert(u:update({ User.logins:add(1) }, { add_version_condition = false, condition = User.logins:gt(0) }))
      assert.equal('logins > {"N":"0"}', expand(last(srv), "ConditionExpression"))
    end)

    -- Reference §5.2/§5.4: PynamoDB serializes the condition before the update
    -- expression, so placeholders are numbered condition first.
    it("reproduces PynamoDB's captured UpdateItem with a user and a version condition (§5.2)", function()
      local Addr = A.Map{ fields = { street = A.Unicode{}, zip_code = A.Number{ attr_name = "zip", null = true } } }
      local T = on(start{ reply{ Attributes = { pk = { S = "a" }, sk = { N = "1" }, version = { N = "2" } } } },
        { table_name = "thing", attributes = {
          pk = A.Unicode{ hash_key = true }, sk = A.Number{ range_key = true },
          addr = Addr, blobs = A.BinarySet{}, email = A.Unicode{ null = true }, flag = A.Boolean{ null = true },
          lst = A.List{ null = true }, name = A.Unicode{ null = true }, nums = A.NumberSet{},
          raw = A.Map{ null = true }, tags = A.UnicodeSet{}, typed_lst = A.List{ of = Addr, null = true },
          views = A.Number{ default = 0 }, version = A.Version{} } })
      local item = T.new{ pk = "a", sk = 1, addr = { street = "x" }, version = 1 }
      local user = (T.name:exists() * T.tags:size():ge(2)) + -T.flag:is_in(true)
      assert(item:update({
        T.views:set(T.views + 1),
        T.name:set(T.name:if_not_exists("dflt")),
        T.lst:set(T.lst:append({ "x" })),
        T.typed_lst:set(T.typed_lst:prepend({ { street = "t" } })),
        T.addr.street:set("s"),
        T.raw.c[1]:set("c0"),
        T.email:remove(),
        T.blobs:set(set{}),
        T.tags:add(set{ "z" }),
        T.nums:delete(set{ 2 }),
      }, { condition = user }))
      assert.same({
        TableName = "thing", Key = { pk = { S = "a" }, sk = { N = "1" } }, ReturnValues = "ALL_NEW",
        ConditionExpression = "(((attribute_exists (#0) AND size (#1) >= :0) OR (NOT #2 IN (:1))) AND #3 = :2)",
        UpdateExpression = "SET #4 = #4 + :3, #0 = if_not_exists (#0, :4), #5 = list_append (#5, :5), "
          .. "#6 = list_append (:6, #6), #7.#8 = :7, #9.#10[0] = :8 REMOVE #11, #12 "
          .. "ADD #1 :9, #3 :10 DELETE #13 :11",
        ExpressionAttributeNames = {
          ["#0"] = "name", ["#1"] = "tags", ["#2"] = "flag", ["#3"] = "version", ["#4"] = "views",
          ["#5"] = "lst", ["#6"] = "typed_lst", ["#7"] = "addr", ["#8"] = "street", ["#9"] = "raw",
          ["#10"] = "c", ["#11"] = "email", ["#12"] = "blobs", ["#13"] = "nums" },
        ExpressionAttributeValues = {
          [":0"] = { N = "2" }, [":1"] = { BOOL = true }, [":2"] = { N = "1" }, [":3"] = { N = "1" },
          [":4"] = { S = "dflt" }, [":5"] = { L = { { S = "x" } } },
          [":6"] = { L = { { M = { street = { S = "t" } } } } }, [":7"] = { S = "s" },
          [":8"] = { S = "c0" }, [":9"] = { SS = { "z" } }, [":10"] = { N = "1" },
          [":11"] = { NS = { "2" } } },
      }, (last(srv)))
    end)

    it("a failed condition returns nil, err and leaves the item alone", function()
      local User = user_model(start{ ddb_error("ConditionalCheckFailedException") })
      local u = User.new{ email = "a", name = "Ada", version = 5 }
      local out, err = u:update{ User.name:set("Bob") }
      assert.is_nil(out)
      assert.equal("ConditionalCheckFailedException", err.code)
      assert.equal("UpdateItem", err.operation)
      assert.equal("Ada", u.name)
      assert.equal(5, u.version)
    end)
  end)

  describe("delete", function()
    it("sends the key and the version condition; true on success", function()
      local User = user_model(start{ OK })
      local u = User.new{ email = "a", version = 2 }
      assert.is_true(u:delete())
      local body, op = last(srv)
      assert.equal("DeleteItem", op)
      assert.same({ TableName = "users", Key = { email = { S = "a" } }, ConditionExpression = "#0 = :0",
                    ExpressionAttributeNames = { ["#0"] = "version" },
                    ExpressionAttributeValues = { [":0"] = { N = "2" } } }, body)
    end)

    it("with no local version: attribute_not_exists (as PynamoDB, §3.6)", function()
      local User = user_model(start{ OK })
      assert.is_true(User.new{ email = "a" }:delete())
      assert.same({ TableName = "users", Key = { email = { S = "a" } },
                    ConditionExpression = "attribute_not_exists (#0)",
                    ExpressionAttributeNames = { ["#0"] = "version" } }, (last(srv)))
    end)

    it("ANDs the user's condition; add_version_condition = false drops the version's", function()
      local User = user_model(start{ OK })
      local u = User.new{ email = "a", version = 2 }
      assert.is_true(u:delete{ condition = User.logins:gt(1) })
      assert.equal('(logins > {"N":"1"} AND version = {"N":"2"})', expand(last(srv), "ConditionExpression"))
      assert.is_true(u:delete{ add_version_condition = false })
      assert.same({ TableName = "users", Key = { email = { S = "a" } } }, (last(srv)))
      assert.is_true(u:delete{ add_version_condition = false, condition = User.logins:gt(1) })
      assert.equal('logins > {"N":"1"}', expand(last(srv), "ConditionExpression"))
      assert.equal(2, u.version)
    end)

    it("a failed condition returns nil, err", function()
      local User = user_model(start{ ddb_error("ConditionalCheckFailedException") })
      local out, err = User.new{ email = "a", version = 1 }:delete()
      assert.is_nil(out)
      assert.equal("ConditionalCheckFailedException", err.code)
      assert.equal("DeleteItem", err.operation)
    end)
  end)

  describe("get and refresh", function()
    local stored = { email = { S = "a" }, name = { S = "Ada" }, logins = { N = "3" }, version = { N = "4" } }

    it("get sends ConsistentRead (false by default) and builds the item", function()
      local User = user_model(start{ reply{ Item = stored } })
      local u = assert(User:get("a"))
      assert.same({ TableName = "users", Key = { email = { S = "a" } }, ConsistentRead = false }, (last(srv)))
      assert.is_true(same_class(User, model.class_of(u)))
      assert.same({ email = "a", name = "Ada", logins = 3, version = 4 }, u:to_table())
      assert.is_false(u:is_partial())
      assert(User:get("a", { consistent_read = true }))
      assert.is_true(last(srv).ConsistentRead)
      assert(User:get("a", nil, { consistent_read = true }))
      assert.is_true(last(srv).ConsistentRead)
    end)

    it("get applies default to attributes missing from the stored item", function()
      local User = user_model(start{ reply{ Item = { email = { S = "a" } } } })
      local u = assert(User:get("a"))
      assert.equal(0, u.logins)
      assert.is_nil(u.version)
    end)

    it("get with a range key", function()
      local stored = { f = { S = "lua" }, subject = { N = "5" } }
      local T = on(start{ reply{ Item = stored, Attributes = stored } }, { table_name = "threads",
        attributes = { forum = A.Unicode{ hash_key = true, attr_name = "f" }, subject = A.Number{ range_key = true },
                       views = A.Number{ null = true } } })
      local t = assert(T:get("lua", 5, { consistent_read = true }))
      local key = { f = { S = "lua" }, subject = { N = "5" } }
      assert.same({ TableName = "threads", Key = key, ConsistentRead = true }, (last(srv)))
      assert.same({ "lua", 5 }, { t:key_values() })
      assert.is_true(t:delete())
      assert.same({ TableName = "threads", Key = key }, (last(srv)))
      assert(t:refresh())
      assert.same(key, last(srv).Key)
      assert(t:update{ T.views:add(1) })
      assert.same(key, last(srv).Key)
      assert(T.new{ forum = "lua", subject = 5 }:save())
      assert.same({ TableName = "threads", Item = key }, (last(srv)))
    end)

    it("get of a projection gives a partial item that cannot be saved", function()
      local User = user_model(start{ reply{ Item = { name = { S = "Ada" } } } })
      local u = assert(User:get("a", { attributes = { User.name, "version" } }))
      assert.same({ TableName = "users", Key = { email = { S = "a" } }, ConsistentRead = false,
                    ProjectionExpression = "#0, #1",
                    ExpressionAttributeNames = { ["#0"] = "name", ["#1"] = "version" } }, (last(srv)))
      assert.is_true(u:is_partial())
      assert.equal("Ada", u.name)
      assert.is_nil(u.logins)                        -- no defaults on a projection (reference §9.7)
      raises(function() u:save() end, "lunamodb: User:save: this item was read through a projection and "
        .. "holds only some attributes; saving it would erase the others (use update instead)")
      assert.equal(1, srv:count())
    end)

    it("get of a missing item: nil, err with code DoesNotExist", function()
      local User = user_model(start{ OK })
      local u, err = User:get("nobody")
      assert.is_nil(u)
      assert.is_true(lunamodb.is_error(err))
      assert.equal("DoesNotExist", err.code)
      assert.is_true(err:is(lunamodb.DoesNotExist))
      assert.equal("GetItem", err.operation)
      assert.equal("User item does not exist", err.message)
    end)

    it("get returns DynamoDB's errors as nil, err", function()
      local User = user_model(start{ ddb_error("ResourceNotFoundException", "Requested resource not found") })
      local u, err = User:get("a")
      assert.is_nil(u)
      assert.equal("ResourceNotFoundException", err.code)
      assert.equal("Requested resource not found", err.message)
    end)

    it("refresh replaces the item's values with the stored ones", function()
      local User = user_model(start{ reply{ Item = { email = { S = "a" }, name = { S = "Remote" }, version = { N = "9" } } } })
      local u = User.new{ email = "a", name = "Local", logins = 7, version = 1 }
      assert.is_true(rawequal(u, u:refresh()))
      assert.same({ TableName = "users", Key = { email = { S = "a" } }, ConsistentRead = false }, (last(srv)))
      assert.same({ email = "a", name = "Remote", logins = 0, version = 9 }, u:to_table())
      assert(u:refresh{ consistent_read = true })
      assert.is_true(last(srv).ConsistentRead)
    end)

    it("refresh of a deleted item: nil, err with code DoesNotExist", function()
      local User = user_model(start{ OK })
      local u = User.new{ email = "a", name = "Local" }
      local out, err = u:refresh()
      assert.is_nil(out)
      assert.equal("DoesNotExist", err.code)
      assert.is_true(err:is(lunamodb.DoesNotExist))
      assert.equal("Local", u.name)
    end)
  end)

  describe("keep_unknown", function()
    local stored = { email = { S = "a" }, logins = { N = "1" }, extra = { S = "x" },
                     more = { M = { k = { L = { { N = "1" } } } } } }

    it("writes the declared attributes only: a field rawset under another name is not the model's", function()
      -- as PynamoDB writes only the attributes a model declares; item.other = 1 raises, but
      -- rawset goes around the model
      local Plain = on(start{ OK, OK, reply{ Item = stored }, OK }, { table_name = "users",
        attributes = { email = A.Unicode{ hash_key = true }, logins = A.Number{ default = 0 } } })
      local u = Plain.new{ email = "a", logins = 1 }
      rawset(u, "other", 5)
      rawset(u, 1, "x")
      assert(u:save())                                   -- the core's encoder
      assert.same({ email = { S = "a" }, logins = { N = "1" } }, last(srv).Item)
      assert(Plain:batch_write(function(b) b:save(u) end))
      assert.same({ users = { { PutRequest = { Item = { email = { S = "a" }, logins = { N = "1" } } } } } },
        last(srv).RequestItems)
      assert.same({ email = { S = "a" }, logins = { N = "1" } }, json_decode(u:to_dynamodb()))
      -- the Lua path (stored names kept aside go back with the item) writes the same
      local kept = assert(Plain:get("a"))
      rawset(kept, "other", 5)
      assert(kept:save{ keep_unknown = true })
      assert.same(stored, last(srv).Item)
    end)

    it("a plain save drops the attributes the model does not declare", function()
      local Plain = on(start{ reply{ Item = stored } }, { table_name = "users", attributes = {
        email = A.Unicode{ hash_key = true }, logins = A.Number{ default = 0 } } })
      local u = assert(Plain:get("a"))
      assert.is_nil(u.extra)
      assert.same({ email = "a", logins = 1 }, u:to_table())
      assert(u:save())
      assert.same({ email = { S = "a" }, logins = { N = "1" } }, last(srv).Item)
      assert(u:save{ keep_unknown = true })
      assert.same(stored, last(srv).Item)
    end)

    it("the model option keeps them; save{ keep_unknown = false } drops them", function()
      local Keep = on(start{ reply{ Item = stored } }, { table_name = "users", keep_unknown = true,
        attributes = { email = A.Unicode{ hash_key = true }, logins = A.Number{ default = 0 } } })
      local u = assert(Keep:get("a"))
      u.logins = 2
      assert(u:save())
      assert.same({ email = { S = "a" }, logins = { N = "2" }, extra = { S = "x" },
                    more = { M = { k = { L = { { N = "1" } } } } } }, last(srv).Item)
      assert(u:save{ keep_unknown = false })
      assert.same({ email = { S = "a" }, logins = { N = "2" } }, last(srv).Item)
    end)

    it("a subclass inherits the option, and may set its own", function()
      local typed = { id = { S = "a" }, kind = { S = "sub" }, extra = { S = "x" } }
      local Base = on(start{ reply{ Item = typed } }, { table_name = "things", keep_unknown = true,
        attributes = { id = A.Unicode{ hash_key = true }, kind = A.Discriminator{} } })
      local Sub = Base:extend{ discriminator = "sub" }
      local Strict = Base:extend{ discriminator = "strict", keep_unknown = false }
      local u = assert(Base:get("a"))
      assert.is_true(same_class(Sub, model.class_of(u)))
      assert(u:save())
      assert.same(typed, last(srv).Item)
      local s = assert(Strict:from_dynamodb{ id = { S = "b" }, kind = { S = "strict" }, extra = { S = "x" } })
      assert(s:save())
      assert.same({ id = { S = "b" }, kind = { S = "strict" } }, last(srv).Item)
    end)

    it("survives refresh and update, which reload the stored item", function()
      local Keep = on(start{ reply{ Item = stored, Attributes = stored } }, { table_name = "users",
        keep_unknown = true, attributes = { email = A.Unicode{ hash_key = true }, logins = A.Number{ default = 0 } } })
      local u = Keep.new{ email = "a" }
      assert(u:refresh())
      assert(u:save())
      assert.same(stored, last(srv).Item)
      local v = Keep.new{ email = "a" }
      assert(v:update{ Keep.logins:add(0) })
      assert(v:save())
      assert.same(stored, last(srv).Item)
    end)
  end)

  describe("polymorphism", function()
    local Animal, Dog, Cat
    local function animals(replies)
      Animal = on(start(replies), { name = "Animal", table_name = "animals", attributes = {
        id = A.Unicode{ hash_key = true }, kind = A.Discriminator{}, name = A.Unicode{ null = true } } })
      Dog = Animal:extend{ name = "Dog", discriminator = "dog", attributes = {
        nick = A.Unicode{ attr_name = "n", null = true }, tricks = A.Number{ default = 0 },
        born = A.UTCDateTime{ null = true } } }
      Cat = Animal:extend{ name = "Cat", discriminator = "cat", attributes = { lives = A.Number{ default = 9 } } }
    end
    local dog = { id = { S = "d1" }, kind = { S = "dog" }, n = { S = "Rex" }, tricks = { N = "2" },
                  born = { S = "2020-01-02T03:04:05.000000+0000" } }

    it("items of a subclass carry its discriminator value and its defaults", function()
      animals{ OK }
      local d = Dog.new{ id = "d1", nick = "Rex" }
      assert.is_true(same_class(Dog, d.kind))
      assert.equal(0, d.tricks)
      assert.is_nil(d.lives)
      local c = Cat:new{ id = "c1" }
      assert.is_true(same_class(Cat, c.kind))
      assert.equal(9, c.lives)
      raises(function() Dog.new{ id = "x", lives = 1 } end, "lunamodb: Dog.new: Dog has no attribute 'lives'")
      raises(function() Animal.new{ id = "x", nick = "Rex" } end,
        "lunamodb: Animal.new: Animal has no attribute 'nick'")
      assert(d:save())
      assert.same({ TableName = "animals", Item = { id = { S = "d1" }, kind = { S = "dog" }, n = { S = "Rex" },
                                                    tricks = { N = "0" } } }, (last(srv)))
    end)

    it("Animal:get returns a Dog; Cat:get of a dog is WrongClass", function()
      animals{ reply{ Item = dog } }
      local d = assert(Animal:get("d1"))
      assert.is_true(same_class(Dog, model.class_of(d)))
      assert.is_true(same_class(Dog, d.kind))
      assert.equal(2, d.tricks)
      local again = assert(Dog:get("d1"))
      assert.is_true(same_class(Dog, model.class_of(again)))
      assert.equal("Rex", again.nick)
      local c, err = Cat:get("d1")
      assert.is_nil(c)
      assert.equal("WrongClass", err.code)
      assert.equal("the stored item is a Dog, not a Cat", err.message)
      assert.is_true(lunamodb.is_error(err))
    end)

    -- Animal:get must read a Dog's own attributes with Dog's declarations:
    -- the stored name of nick is "n", and born is a UTCDateTime.
    it("a subclass item read through its parent has its own attributes typed and named", function()
      animals{ reply{ Item = dog } }
      local d = assert(Animal:get("d1"))
      assert.equal("Rex", d.nick)
      assert.equal(datetime("2020-01-02T03:04:05Z"), d.born)
      assert.is_nil(rawget(d, "n"))
      local e = Animal:from_dynamodb(dog)
      assert.is_true(same_class(Dog, model.class_of(e)))
      assert.equal("Rex", e.nick)
      assert.equal(datetime("2020-01-02T03:04:05Z"), e.born)
    end)

    it("update and refresh refuse a stored item of another class", function()
      animals{ reply{ Item = { id = { S = "d1" }, kind = { S = "cat" } },
                      Attributes = { id = { S = "d1" }, kind = { S = "cat" } } } }
      local d = Dog.new{ id = "d1", nick = "Rex" }
      local out, err = d:refresh()
      assert.is_nil(out)
      assert.equal("WrongClass", err.code)
      out, err = d:update{ Dog.tricks:add(1) }
      assert.is_nil(out)
      assert.equal("WrongClass", err.code)
      assert.equal("Rex", d.nick)
    end)

    it("from_dynamodb refuses an item of another class", function()
      animals{ OK }
      raises(function() Cat:from_dynamodb(dog) end, "lunamodb: Cat:from_dynamodb: the stored item is a Dog, not a Cat")
    end)

    it("subclasses share the root's table for every call", function()
      animals{ reply{ Table = { TableName = "animals", TableStatus = "ACTIVE" } } }
      assert.is_true(Dog:exists())
      assert(Cat:describe_table())
      for _, r in ipairs(sent(srv)) do assert.same({ TableName = "animals" }, r.body) end
    end)
  end)

  describe("table lifecycle", function()
    local function thread_model(server, extra)
      local decl = { name = "Thread", table_name = "threads", attributes = {
        forum = A.Unicode{ hash_key = true, attr_name = "f" }, subject = A.Number{ range_key = true },
        views = A.Number{ default = 0 } } }
      for k, v in pairs(extra or {}) do decl[k] = v end
      return on(server, decl)
    end
    local NOT_FOUND = ddb_error("ResourceNotFoundException", "Requested resource not found")
    local KEYS = {
      AttributeDefinitions = { { AttributeName = "f", AttributeType = "S" }, { AttributeName = "subject", AttributeType = "N" } },
      KeySchema = { { AttributeName = "f", KeyType = "HASH" }, { AttributeName = "subject", KeyType = "RANGE" } },
    }

    it("create_table, PROVISIONED: PynamoDB's shape with capacities, stream and tags (§6.14)", function()
      local T = thread_model(start{ NOT_FOUND, reply{ TableDescription = {} } }, {
        read_capacity_units = 2, write_capacity_units = 3, stream_view_type = "NEW_AND_OLD_IMAGES",
        tags = { env = "test", team = "db", app = "forum", zone = "a", owner = "ada", cost = "7" } })
      assert.is_true(T:create_table())
      local all = sent(srv)
      assert.same({ "DescribeTable", "CreateTable" }, ops(srv))
      assert.same({ TableName = "threads" }, all[1].body)
      assert.same({
        TableName = "threads",
        AttributeDefinitions = KEYS.AttributeDefinitions, KeySchema = KEYS.KeySchema,
        ProvisionedThroughput = { ReadCapacityUnits = 2, WriteCapacityUnits = 3 },
        StreamSpecification = { StreamEnabled = true, StreamViewType = "NEW_AND_OLD_IMAGES" },
        Tags = { { Key = "app", Value = "forum" }, { Key = "cost", Value = "7" }, { Key = "env", Value = "test" },
                 { Key = "owner", Value = "ada" }, { Key = "team", Value = "db" }, { Key = "zone", Value = "a" } },
      }, all[2].body)
      assert.is_nil(all[2].body.BillingMode)
    end)

    it("create_table, PAY_PER_REQUEST: BillingMode and no ProvisionedThroughput", function()
      local T = thread_model(start{ NOT_FOUND, reply{} }, { billing_mode = "PAY_PER_REQUEST" })
      assert.is_true(T:create_table())
      assert.same({ TableName = "threads", BillingMode = "PAY_PER_REQUEST",
                    AttributeDefinitions = KEYS.AttributeDefinitions, KeySchema = KEYS.KeySchema }, (last(srv)))
    end)

    it("create_table options override the model's", function()
      local T = thread_model(start{ NOT_FOUND, reply{} }, { read_capacity_units = 2, write_capacity_units = 3,
        stream_view_type = "NEW_IMAGE" })
      assert.is_true(T:create_table{ billing_mode = "PAY_PER_REQUEST", stream_view_type = "KEYS_ONLY" })
      assert.same({ TableName = "threads", BillingMode = "PAY_PER_REQUEST",
                    AttributeDefinitions = KEYS.AttributeDefinitions, KeySchema = KEYS.KeySchema,
                    StreamSpecification = { StreamEnabled = true, StreamViewType = "KEYS_ONLY" } }, (last(srv)))
      srv:stop()
      local P = thread_model(start{ NOT_FOUND, reply{} }, { billing_mode = "PAY_PER_REQUEST" })
      assert.is_true(P:create_table{ billing_mode = "PROVISIONED", read_capacity_units = 7, write_capacity_units = 8 })
      assert.same({ TableName = "threads", AttributeDefinitions = KEYS.AttributeDefinitions, KeySchema = KEYS.KeySchema,
                    ProvisionedThroughput = { ReadCapacityUnits = 7, WriteCapacityUnits = 8 } }, (last(srv)))
    end)

    it("create_table of an existing table sends no CreateTable", function()
      local T = thread_model(start{ reply{ Table = { TableName = "threads", TableStatus = "ACTIVE" } } },
        { billing_mode = "PAY_PER_REQUEST" })
      assert.is_true(T:create_table())
      assert.same({ "DescribeTable" }, ops(srv))
    end)

    it("create_table tolerates a table created meanwhile (ResourceInUse)", function()
      local T = thread_model(start{ NOT_FOUND, ddb_error("ResourceInUseException", "Table already exists") },
        { billing_mode = "PAY_PER_REQUEST" })
      assert.is_true(T:create_table())
    end)

    it("create_table returns the other errors as nil, err", function()
      local T = thread_model(start{ NOT_FOUND, ddb_error("ValidationException", "bad") }, { billing_mode = "PAY_PER_REQUEST" })
      local ok, err = T:create_table()
      assert.is_nil(ok)
      assert.equal("ValidationException", err.code)
      assert.equal("CreateTable", err.operation)
      srv:stop()
      T = thread_model(start{ ddb_error("AccessDeniedException", "no") }, { billing_mode = "PAY_PER_REQUEST" })
      ok, err = T:create_table()
      assert.is_nil(ok)
      assert.equal("AccessDeniedException", err.code)
      assert.same({ "DescribeTable" }, ops(srv))
    end)

    it("create_table{ wait = true } polls DescribeTable until ACTIVE", function()
      local T = thread_model(start{ NOT_FOUND, reply{},
        reply{ Table = { TableStatus = "CREATING" } }, reply{ Table = { TableStatus = "ACTIVE" } } },
        { billing_mode = "PAY_PER_REQUEST" })
      assert.is_true(T:create_table{ wait = true })
      assert.same({ "DescribeTable", "CreateTable", "DescribeTable", "DescribeTable" }, ops(srv))
    end)

    it("create_table{ wait = true } also waits for the global secondary indexes", function()
      local creating = reply{ Table = { TableStatus = "ACTIVE",
        GlobalSecondaryIndexes = { { IndexName = "g", IndexStatus = "CREATING" } } } }
      local T = thread_model(start{ creating, creating,
        reply{ Table = { TableStatus = "ACTIVE", GlobalSecondaryIndexes = { { IndexName = "g", IndexStatus = "ACTIVE" } } } } },
        { billing_mode = "PAY_PER_REQUEST" })
      assert.is_true(T:create_table{ wait = true })
      assert.same({ "DescribeTable", "DescribeTable", "DescribeTable" }, ops(srv))
    end)

    it("create_table{ wait = true } gives up after wait_timeout with WaiterTimeout", function()
      local T = thread_model(start{ reply{ Table = { TableStatus = "CREATING" } } }, { billing_mode = "PAY_PER_REQUEST" })
      local ok, err = T:create_table{ wait = true, wait_timeout = 0.25 }
      assert.is_nil(ok)
      assert.equal("WaiterTimeout", err.code)
      assert.is_true(lunamodb.is_error(err))
    end)

    describe("with a TTL attribute", function()
      local function ttl_model(server)
        return on(server, { name = "Session", table_name = "sessions", billing_mode = "PAY_PER_REQUEST",
          attributes = { id = A.Unicode{ hash_key = true }, expires = A.TTL{ attr_name = "exp", null = true } } })
      end

      it("create_table enables TTL on it", function()
        local S = ttl_model(start{ NOT_FOUND, reply{},
          reply{ TimeToLiveDescription = { TimeToLiveStatus = "DISABLED" } }, reply{} })
        assert.is_true(S:create_table())
        local all = sent(srv)
        assert.same({ "DescribeTable", "CreateTable", "DescribeTimeToLive", "UpdateTimeToLive" }, ops(srv))
        assert.same({ TableName = "sessions" }, all[3].body)
        assert.same({ TableName = "sessions",
                      TimeToLiveSpecification = { AttributeName = "exp", Enabled = true } }, all[4].body)
      end)

      it("create_table leaves TTL alone when it is already enabled on it", function()
        local S = ttl_model(start{ reply{ Table = { TableStatus = "ACTIVE" } },
          reply{ TimeToLiveDescription = { AttributeName = "exp", TimeToLiveStatus = "ENABLED" } } })
        assert.is_true(S:create_table())
        assert.same({ "DescribeTable", "DescribeTimeToLive" }, ops(srv))
      end)

      it("create_table{ ttl = false } skips TTL", function()
        local S = ttl_model(start{ NOT_FOUND, reply{} })
        assert.is_true(S:create_table{ ttl = false })
        assert.same({ "DescribeTable", "CreateTable" }, ops(srv))
      end)

      it("update_ttl returns DynamoDB's errors as nil, err", function()
        local S = ttl_model(start{ reply{ TimeToLiveDescription = { TimeToLiveStatus = "DISABLED" } },
          ddb_error("ValidationException", "TimeToLive is already disabled") })
        local ok, err = S:update_ttl()
        assert.is_nil(ok)
        assert.equal("ValidationException", err.code)
        assert.equal("UpdateTimeToLive", err.operation)
        srv:stop()
        S = ttl_model(start{ NOT_FOUND })
        ok, err = S:create_table{ ttl = true }
        assert.is_nil(ok)
        assert.equal("ResourceNotFoundException", err.code)
      end)
    end)

    it("delete_table sends DeleteTable; wait = true polls until it is gone", function()
      local T = thread_model(start{ reply{ TableDescription = { TableStatus = "DELETING" } } })
      assert.is_true(T:delete_table())
      assert.same({ TableName = "threads" }, (last(srv)))
      assert.same({ "DeleteTable" }, ops(srv))
      srv:stop()
      T = thread_model(start{ reply{}, reply{ Table = { TableStatus = "DELETING" } }, NOT_FOUND })
      assert.is_true(T:delete_table{ wait = true })
      assert.same({ "DeleteTable", "DescribeTable", "DescribeTable" }, ops(srv))
    end)

    it("delete_table of a missing table: nil, err", function()
      local T = thread_model(start{ NOT_FOUND })
      local ok, err = T:delete_table{ wait = true }
      assert.is_nil(ok)
      assert.equal("ResourceNotFoundException", err.code)
      assert.equal("DeleteTable", err.operation)
    end)

    it("exists is true, false, or nil, err for any other failure (never raised)", function()
      local T = thread_model(start{ reply{ Table = { TableStatus = "ACTIVE" } }, NOT_FOUND,
        ddb_error("ValidationException", "1 validation error") })
      assert.is_true(T:exists())
      assert.is_false(T:exists())
      local ok, err = T:exists()
      assert.is_nil(ok)
      assert.equal("ValidationException", err.code)
      assert.same({ TableName = "threads" }, (last(srv)))
    end)

    it("describe_table returns the Table description, or nil, err", function()
      local T = thread_model(start{ reply{ Table = { TableName = "threads", TableStatus = "ACTIVE", ItemCount = 3 } },
        NOT_FOUND })
      local t = assert(T:describe_table())
      assert.equal("threads", t.TableName)
      assert.equal(3, t.ItemCount)
      local none, err = T:describe_table()
      assert.is_nil(none)
      assert.equal("ResourceNotFoundException", err.code)
      assert.equal("DescribeTable", err.operation)
    end)
  end)
end)

describe("get on a model with a range key", function()
  it("refuses options given in place of the range key", function()
    local A = require "lunamodb.attributes"
    local T = require("lunamodb").Model{ table_name = "ranged", name = "Ranged", region = "us-east-1",
      host = "http://127.0.0.1:9", access_key_id = "AKID", secret_access_key = "SECRET",
      attributes = { h = A.Unicode{ hash_key = true }, r = A.Number{ range_key = true } } }
    assert.has_error(function() T:get("h", { consistent_read = true }) end,
      "lunamodb: Ranged:get: the range key value is missing (options come third: Ranged:get(hash, range, options))")
  end)
end)
