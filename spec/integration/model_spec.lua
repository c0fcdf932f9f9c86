-- lunamodb.Model against DynamoDB Local: the table lifecycle, CRUD with
-- every option, optimistic locking with the conflicting concurrent write
-- that must fail, unknown attributes, polymorphism, and the failure paths
-- with their error codes. Conditions use * + - (LuaJIT runs this too).
local lunamodb = require "lunamodb"
local A = require "lunamodb.attributes"
local model = require "lunamodb.model"
local ddb = require "spec.helpers.ddb"

local set, datetime = lunamodb.set, lunamodb.datetime

local function must(out, err)
  assert(out, tostring(err))
  return out
end

-- every table a spec creates, deleted in teardown
local created = {}

-- A model on DynamoDB Local, on a fresh table name unless one is given.
local function Model(decl)
  decl.table_name = decl.table_name or ddb.unique_table(decl.name or "model")
  decl.host = ddb.endpoint()
  decl.region = "us-east-1"
  decl.access_key_id, decl.secret_access_key = "lunamodbtest", "lunamodbtest"
  created[#created + 1] = decl.table_name
  return lunamodb.Model(decl)
end

local function fails_with(code, out, err)
  assert.is_nil(out)
  assert.is_true(lunamodb.is_error(err), tostring(err))
  assert.equal(code, err.code)
  return err
end

describe("models against DynamoDB Local #integration", function()
  teardown(function()
    local client = ddb.client()
    for _, name in ipairs(created) do client:call("DeleteTable", { TableName = name }) end
    client:close()
  end)

  describe("table lifecycle", function()
    it("create_table PAY_PER_REQUEST with a stream, exists, describe_table, delete_table", function()
      local T = Model{ name = "ppr", stream_view_type = "NEW_AND_OLD_IMAGES", attributes = {
        pk = A.Unicode{ hash_key = true, attr_name = "p" }, sk = A.Number{ range_key = true } } }
      assert.is_false(T:exists())
      fails_with("ResourceNotFoundException", T:describe_table())
      assert.is_true(T:create_table{ billing_mode = "PAY_PER_REQUEST", wait = true })
      assert.is_true(T:exists())
      local d = must(T:describe_table())
      assert.equal(T:table_name(), d.TableName)
      assert.equal("ACTIVE", d.TableStatus)
      assert.equal("PAY_PER_REQUEST", d.BillingModeSummary.BillingMode)
      assert.same({ { AttributeName = "p", KeyType = "HASH" }, { AttributeName = "sk", KeyType = "RANGE" } },
        d.KeySchema)
      assert.is_true(d.StreamSpecification.StreamEnabled)
      assert.equal("NEW_AND_OLD_IMAGES", d.StreamSpecification.StreamViewType)
      -- again, on the existing table: still fine
      assert.is_true(T:create_table{ billing_mode = "PAY_PER_REQUEST", wait = true })
      assert.is_true(T:delete_table{ wait = true })
      assert.is_false(T:exists())
      fails_with("ResourceNotFoundException", T:describe_table())
      fails_with("ResourceNotFoundException", T:delete_table())
    end)

    it("create_table PROVISIONED with the model's capacities", function()
      local T = Model{ name = "prov", read_capacity_units = 2, write_capacity_units = 3,
        stream_view_type = "KEYS_ONLY", attributes = { id = A.Number{ hash_key = true } } }
      assert.is_true(T:create_table{ wait = true })
      local d = must(T:describe_table())
      assert.equal(2, d.ProvisionedThroughput.ReadCapacityUnits)
      assert.equal(3, d.ProvisionedThroughput.WriteCapacityUnits)
      assert.equal("KEYS_ONLY", d.StreamSpecification.StreamViewType)
      assert.same({ { AttributeName = "id", AttributeType = "N" } }, d.AttributeDefinitions)
      assert.is_true(T:create_table())                       -- exists: nothing to do
      assert.is_true(T:delete_table{ wait = true })
    end)

    it("create_table options override the model's capacities", function()
      local T = Model{ name = "override", billing_mode = "PAY_PER_REQUEST", attributes = { id = A.Number{ hash_key = true } } }
      assert.is_true(T:create_table{ billing_mode = "PROVISIONED", read_capacity_units = 4,
                                     write_capacity_units = 5, wait = true })
      local d = must(T:describe_table())
      assert.equal(4, d.ProvisionedThroughput.ReadCapacityUnits)
      assert.equal(5, d.ProvisionedThroughput.WriteCapacityUnits)
      assert.is_true(T:delete_table{ wait = true })
    end)

    it("create_table enables TTL on the model's TTL attribute", function()
      local S = Model{ name = "ttl", billing_mode = "PAY_PER_REQUEST", attributes = {
        id = A.Unicode{ hash_key = true }, expires = A.TTL{ attr_name = "exp", null = true } } }
      assert.is_true(S:create_table{ wait = true })
      local out = must(S:client():call("DescribeTimeToLive", { TableName = S:table_name() }))
      assert.equal("exp", out.TimeToLiveDescription.AttributeName)
      assert.is_truthy(({ ENABLED = true, ENABLING = true })[out.TimeToLiveDescription.TimeToLiveStatus])
      -- again: the table exists and TTL is already on
      assert.is_true(S:create_table{ wait = true })
      assert.is_true(S:update_ttl())
      local s = S.new{ id = "s1", expires = datetime("2030-01-01T00:00:00Z") }
      must(s:save())
      assert.equal(datetime("2030-01-01T00:00:00Z"), must(S:get("s1")).expires)
      assert.is_true(S:delete_table{ wait = true })
    end)

    it("a hash and range key model: every item method addresses the full key", function()
      local T = Model{ name = "threads", billing_mode = "PAY_PER_REQUEST", attributes = {
        forum = A.Unicode{ hash_key = true, attr_name = "f" }, subject = A.Number{ range_key = true },
        views = A.Number{ default = 0 }, version = A.Version{} } }
      assert.is_true(T:create_table{ wait = true })
      must(T.new{ forum = "lua", subject = 1 }:save())
      local t = T.new{ forum = "lua", subject = 2, views = 5 }
      must(t:save())
      assert.same({ "lua", 2 }, { t:key_values() })
      must(t:update{ T.views:add(1) })
      assert.equal(6, t.views)
      local got = must(T:get("lua", 2, { consistent_read = true }))
      assert.equal(6, got.views)
      assert.equal(0, must(T:get("lua", 1, { consistent_read = true })).views)
      fails_with("DoesNotExist", T:get("lua", 3, { consistent_read = true }))
      must(got:refresh{ consistent_read = true })
      assert.is_true(got:delete())
      fails_with("DoesNotExist", T:get("lua", 2, { consistent_read = true }))
      assert.is_table(must(T:get("lua", 1, { consistent_read = true })))
      assert.is_true(T:delete_table{ wait = true })
    end)

    it("every call on a table that does not exist: ResourceNotFoundException", function()
      local M = Model{ name = "missing", attributes = { id = A.Unicode{ hash_key = true }, n = A.Number{ default = 0 } } }
      local item = M.new{ id = "x" }
      fails_with("ResourceNotFoundException", item:save())
      fails_with("ResourceNotFoundException", M:get("x"))
      fails_with("ResourceNotFoundException", item:update{ M.n:add(1) })
      fails_with("ResourceNotFoundException", item:delete())
      fails_with("ResourceNotFoundException", item:refresh())
      fails_with("ResourceNotFoundException", M:delete_table())
      assert.equal(0, item.n)
    end)
  end)

  describe("items", function()
    local User

    setup(function()
      User = Model{ name = "users", billing_mode = "PAY_PER_REQUEST", attributes = {
        email = A.Unicode{ hash_key = true }, name = A.Unicode{ null = true },
        logins = A.Number{ default = 0 }, tags = A.UnicodeSet{}, version = A.Version{},
        prefs = A.Map{ fields = { theme = A.Unicode{ null = true }, size = A.Number{ null = true } }, null = true },
        history = A.List{ of = A.Unicode, null = true },
        joined = A.UTCDateTime{ null = true, default_for_new = function() return datetime("2024-05-06T07:08:09Z") end },
      } }
      assert.is_true(User:create_table{ wait = true })
    end)

    local function raw_item(email)
      local out = must(User:client():call("GetItem", { TableName = User:table_name(), ConsistentRead = true,
        Key = { email = { S = email } } }))
      return out.Item
    end

    it("save then get round-trips every value, with consistent_read", function()
      local u = User.new{ email = "ada", name = "Ada", tags = set{ "a", "b" }, prefs = { theme = "dark" },
        history = { "signed up" } }
      assert.is_true(rawequal(u, must(u:save())))
      assert.equal(1, u.version)
      local got = must(User:get("ada", { consistent_read = true }))
      assert.is_true(rawequal(User, model.class_of(got)))
      assert.is_false(got:is_partial())
      assert.same(lunamodb.json.decode(u:to_dynamodb()), lunamodb.json.decode(got:to_dynamodb()))
      assert.equal("Ada", got.name)
      assert.equal(0, got.logins)
      assert.equal(set{ "a", "b" }, got.tags)
      assert.equal(datetime("2024-05-06T07:08:09Z"), got.joined)
      assert.equal(1, got.version)
      assert.same({ N = "1" }, raw_item("ada").version)
    end)

    it("get of a missing item: nil, err with code DoesNotExist", function()
      local err = fails_with("DoesNotExist", User:get("nobody", { consistent_read = true }))
      assert.is_true(err:is(lunamodb.DoesNotExist))
    end)

    it("get with a projection gives a partial item: save raises, update works", function()
      must(User.new{ email = "proj", name = "P", logins = 4 }:save())
      local p = must(User:get("proj", { consistent_read = true, attributes = { User.name, "version" } }))
      assert.is_true(p:is_partial())
      assert.equal("P", p.name)
      assert.is_nil(p.logins)                     -- not projected, and no default filled in
      assert.is_nil(p.email)
      local ok, err = pcall(p.save, p)
      assert.is_false(ok)
      assert.matches("read through a projection", tostring(err), 1, true)
      -- update needs the key, which a projection may leave out
      p.email = "proj"
      must(p:update{ User.logins:add(1) })
      assert.is_false(p:is_partial())
      assert.equal(5, p.logins)
      assert.equal(2, p.version)
    end)

    it("update applies every kind of action, returns the item and refreshes it", function()
      local u = User.new{ email = "upd", name = "U", logins = 1, tags = set{ "a", "b" },
        prefs = { theme = "light", size = 10 }, history = { "one", "two", "three" } }
      must(u:save())
      -- DynamoDB refuses overlapping paths in one request: three updates
      local out = must(u:update{
        User.logins:set(User.logins + 10),
        User.name:set(User.name:if_not_exists("ignored")),
        User.history:set(User.history:append{ "four" }),
        User.prefs.theme:set("dark"),
        User.prefs:field("size"):remove(),       -- "size" is also a path method
        User.tags:add(set{ "c" }),
      })
      assert.is_true(rawequal(u, out))
      assert.equal(11, u.logins)
      assert.equal("U", u.name)
      assert.same({ "one", "two", "three", "four" }, u.history)
      assert.same({ theme = "dark" }, u.prefs)
      assert.equal(set{ "a", "b", "c" }, u.tags)
      assert.equal(2, u.version)
      must(u:update{ User.history[1]:set("ONE"), User.history[3]:remove(), User.tags:delete(set{ "a" }),
                     User.logins:add(-11), User.name:remove() })
      assert.same({ "ONE", "two", "four" }, u.history)
      assert.equal(set{ "b", "c" }, u.tags)
      assert.equal(0, u.logins)
      assert.is_nil(u.name)
      assert.equal(3, u.version)
      must(u:update{ User.history:set(User.history:prepend{ "zero" }) })
      assert.same({ "zero", "ONE", "two", "four" }, u.history)
      assert.equal(4, u.version)
      local got = must(User:get("upd", { consistent_read = true }))
      assert.same(got:to_table(), u:to_table())
    end)

    it("update upserts a missing item; a condition can require it", function()
      local ghost = User.new{ email = "ghost" }
      must(ghost:update{ User.name:set("Ghost") })
      assert.equal("Ghost", ghost.name)
      assert.equal(1, ghost.version)
      assert.equal(0, ghost.logins)                       -- the default, re-applied locally
      local stored = raw_item("ghost")
      assert.same({ email = { S = "ghost" }, name = { S = "Ghost" }, version = { N = "1" } }, stored)
      local nobody = User.new{ email = "never" }
      fails_with("ConditionalCheckFailedException", nobody:update({ User.name:set("x") },
        { condition = User.email:exists() }))
      assert.is_nil(raw_item("never"))
    end)

    it("update with a condition that fails: ConditionalCheckFailedException, item unchanged", function()
      local u = User.new{ email = "cond", logins = 3 }
      must(u:save())
      fails_with("ConditionalCheckFailedException", u:update({ User.logins:add(1) },
        { condition = User.logins:gt(5) }))
      assert.equal(3, u.logins)
      assert.equal(1, u.version)
      must(u:update({ User.logins:add(1) }, { condition = User.logins:lt(5) * -User.name:exists() }))
      assert.equal(4, u.logins)
    end)

    it("save with a condition that fails: ConditionalCheckFailedException", function()
      local u = User.new{ email = "scond", logins = 3 }
      must(u:save())
      u.logins = 4
      fails_with("ConditionalCheckFailedException", u:save{ condition = User.logins:eq(99) })
      assert.equal(1, u.version)
      must(u:save{ condition = User.logins:eq(3) })
      assert.equal(2, u.version)
      assert.same({ N = "4" }, raw_item("scond").logins)
    end)

    it("delete: a failing condition, then the version check, then success", function()
      local u = User.new{ email = "del" }
      must(u:save())
      fails_with("ConditionalCheckFailedException", u:delete{ condition = User.logins:gt(0) })
      local stale = must(User:get("del", { consistent_read = true }))
      must(u:save())                                      -- version 2 in the table
      fails_with("ConditionalCheckFailedException", stale:delete())
      assert.is_table(raw_item("del"))
      assert.is_true(u:delete{ condition = User.logins:eq(0) })
      assert.is_nil(raw_item("del"))
      fails_with("DoesNotExist", User:get("del", { consistent_read = true }))
    end)

    it("refresh picks up another writer's change, and DoesNotExist after a delete", function()
      local u = User.new{ email = "ref", name = "Mine" }
      must(u:save())
      must(User:client():call("UpdateItem", { TableName = User:table_name(), Key = { email = { S = "ref" } },
        UpdateExpression = "SET #n = :n, version = :v REMOVE logins",
        ExpressionAttributeNames = { ["#n"] = "name" },
        ExpressionAttributeValues = { [":n"] = { S = "Theirs" }, [":v"] = { N = "7" } } }))
      assert.is_true(rawequal(u, must(u:refresh{ consistent_read = true })))
      assert.equal("Theirs", u.name)
      assert.equal(7, u.version)
      assert.equal(0, u.logins)
      must(User:client():call("DeleteItem", { TableName = User:table_name(), Key = { email = { S = "ref" } } }))
      local err = fails_with("DoesNotExist", u:refresh{ consistent_read = true })
      assert.is_true(err:is(lunamodb.DoesNotExist))
      assert.equal("Theirs", u.name)
    end)

    describe("optimistic locking", function()
      it("of two copies, the first save wins; the second fails and keeps its version", function()
        must(User.new{ email = "race" }:save())
        local a = must(User:get("race", { consistent_read = true }))
        local b = must(User:get("race", { consistent_read = true }))
        a.name = "A"
        must(a:save())
        assert.equal(2, a.version)
        b.name = "B"
        fails_with("ConditionalCheckFailedException", b:save())
        assert.equal(1, b.version)
        assert.same({ S = "A" }, raw_item("race").name)
        -- after a refresh the loser can write
        must(b:refresh{ consistent_read = true })
        b.name = "B"
        must(b:save())
        assert.equal(3, b.version)
      end)

      it("of two copies, the first update wins; the second fails and keeps its version", function()
        must(User.new{ email = "race2" }:save())
        local a = must(User:get("race2", { consistent_read = true }))
        local b = must(User:get("race2", { consistent_read = true }))
        must(a:update{ User.logins:add(1) })
        assert.equal(2, a.version)
        fails_with("ConditionalCheckFailedException", b:update{ User.logins:add(1) })
        assert.equal(1, b.version)
        assert.equal(0, b.logins)
        assert.same({ N = "1" }, raw_item("race2").logins)
        fails_with("ConditionalCheckFailedException", b:delete())
      end)

      it("a new item cannot overwrite a stored one (attribute_not_exists)", function()
        must(User.new{ email = "taken", name = "first" }:save())
        local again = User.new{ email = "taken", name = "second" }
        fails_with("ConditionalCheckFailedException", again:save())
        assert.is_nil(again.version)
        fails_with("ConditionalCheckFailedException", again:update{ User.name:set("second") })
        assert.same({ S = "first" }, raw_item("taken").name)
      end)

      it("add_version_condition = false overwrites, and still increments", function()
        must(User.new{ email = "lww" }:save())
        local a = must(User:get("lww", { consistent_read = true }))
        local b = must(User:get("lww", { consistent_read = true }))
        must(a:save())
        assert.equal(2, a.version)
        b.name = "last"
        must(b:save{ add_version_condition = false })
        assert.equal(2, b.version)
        assert.same({ name = { S = "last" }, version = { N = "2" } },
          { name = raw_item("lww").name, version = raw_item("lww").version })
        must(b:update({ User.logins:add(5) }, { add_version_condition = false }))
        assert.equal(3, b.version)
        local c = User.new{ email = "lww", version = 40 }
        assert.is_true(c:delete{ add_version_condition = false })
        assert.is_nil(raw_item("lww"))
      end)

      it("an explicit version 0 means the stored version must be 0", function()
        local zero = User.new{ email = "zero", version = 0 }
        fails_with("ConditionalCheckFailedException", zero:save())
        assert.equal(0, zero.version)
        must(User:client():call("PutItem", { TableName = User:table_name(),
          Item = { email = { S = "zero" }, version = { N = "0" } } }))
        must(zero:save())
        assert.equal(1, zero.version)
        assert.same({ N = "1" }, raw_item("zero").version)
      end)
    end)

    describe("attributes the model does not declare", function()
      local stored = { email = { S = "unk" }, logins = { N = "2" }, legacy = { S = "kept?" },
                       extra = { M = { n = { N = "1" }, l = { L = { { S = "x" } } } } } }

      local function seed()
        must(User:client():call("PutItem", { TableName = User:table_name(), Item = stored }))
      end

      it("a plain save drops them", function()
        seed()
        local u = must(User:get("unk", { consistent_read = true }))
        assert.is_nil(u.legacy)
        must(u:save())
        local item = raw_item("unk")
        assert.is_nil(item.legacy)
        assert.is_nil(item.extra)
      end)

      it("save{ keep_unknown = true } keeps them", function()
        seed()
        local u = must(User:get("unk", { consistent_read = true }))
        u.logins = 3
        must(u:save{ keep_unknown = true })
        local item = raw_item("unk")
        assert.same(stored.legacy, item.legacy)
        assert.same(stored.extra, item.extra)
        assert.same({ N = "3" }, item.logins)
      end)

      it("the model option keep_unknown keeps them", function()
        seed()
        local Keep = Model{ name = "keep", table_name = User:table_name(), keep_unknown = true, attributes = {
          email = A.Unicode{ hash_key = true }, logins = A.Number{ default = 0 }, version = A.Version{} } }
        local u = must(Keep:get("unk", { consistent_read = true }))
        must(u:save())
        local item = raw_item("unk")
        assert.same(stored.legacy, item.legacy)
        assert.same(stored.extra, item.extra)
        assert.same({ N = "1" }, item.version)
        must(u:save{ keep_unknown = false })
        assert.is_nil(raw_item("unk").legacy)
      end)
    end)
  end)

  describe("polymorphism", function()
    local Animal, Dog, Cat

    setup(function()
      Animal = Model{ name = "Animal", billing_mode = "PAY_PER_REQUEST", attributes = {
        id = A.Unicode{ hash_key = true }, kind = A.Discriminator{}, name = A.Unicode{ null = true },
        version = A.Version{} } }
      Dog = Animal:extend{ name = "Dog", discriminator = "dog", attributes = {
        tricks = A.Number{ default = 0 }, nick = A.Unicode{ attr_name = "n", null = true },
        born = A.UTCDateTime{ null = true } } }
      Cat = Animal:extend{ name = "Cat", discriminator = "cat", attributes = { lives = A.Number{ default = 9 } } }
      assert.is_true(Dog:create_table{ wait = true })
      assert.equal(Animal:table_name(), Dog:table_name())
    end)

    it("the parent's get returns a subclass item; the wrong subclass gets WrongClass", function()
      local d = Dog.new{ id = "rex", name = "Rex" }
      must(d:save())
      assert.equal(1, d.version)
      local a = must(Animal:get("rex", { consistent_read = true }))
      assert.is_true(rawequal(Dog, model.class_of(a)))
      assert.is_true(rawequal(Dog, a.kind))
      assert.equal("Rex", a.name)
      assert.equal(0, a.tricks)
      local again = must(Dog:get("rex", { consistent_read = true }))
      assert.is_true(rawequal(Dog, model.class_of(again)))
      local err = fails_with("WrongClass", Cat:get("rex", { consistent_read = true }))
      assert.equal("the stored item is a Dog, not a Cat", err.message)
      must(Cat.new{ id = "tom" }:save())
      fails_with("WrongClass", Dog:get("tom", { consistent_read = true }))
      assert.is_true(rawequal(Cat, model.class_of(must(Animal:get("tom", { consistent_read = true })))))
    end)

    it("subclass defaults apply on new and on load", function()
      local c = Cat.new{ id = "felix" }
      assert.equal(9, c.lives)
      must(c:save())
      must(Animal:client():call("UpdateItem", { TableName = Animal:table_name(), Key = { id = { S = "felix" } },
        UpdateExpression = "REMOVE lives" }))
      local got = must(Cat:get("felix", { consistent_read = true }))
      assert.equal(9, got.lives)
      local via_parent = must(Animal:get("felix", { consistent_read = true }))
      assert.equal(9, via_parent.lives)
    end)

    it("update and optimistic locking work on subclass items", function()
      local d = Dog.new{ id = "fido" }
      must(d:save())
      local stale = must(Dog:get("fido", { consistent_read = true }))
      must(d:update{ Dog.tricks:add(2) })
      assert.equal(2, d.tricks)
      assert.equal(2, d.version)
      assert.is_true(rawequal(Dog, model.class_of(d)))
      fails_with("ConditionalCheckFailedException", stale:update{ Dog.tricks:add(1) })
      assert.equal(1, stale.version)
    end)

    -- A subclass item read through its parent must read the subclass's own
    -- attributes with their declarations: nick is stored as "n", born is a
    -- UTCDateTime.
    it("the parent's get reads the subclass's own attributes by their declarations", function()
      local d = Dog.new{ id = "lassie", nick = "Lass", born = datetime("2020-01-02T03:04:05Z") }
      must(d:save())
      local a = must(Animal:get("lassie", { consistent_read = true }))
      assert.is_true(rawequal(Dog, model.class_of(a)))
      assert.equal("Lass", a.nick)
      assert.equal(datetime("2020-01-02T03:04:05Z"), a.born)
      must(a:save())
      local raw = must(Animal:client():call("GetItem", { TableName = Animal:table_name(), ConsistentRead = true,
        Key = { id = { S = "lassie" } } })).Item
      assert.same({ S = "Lass" }, raw.n)
      assert.same({ S = "2020-01-02T03:04:05.000000+0000" }, raw.born)
    end)
  end)
end)
