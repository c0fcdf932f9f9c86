-- core.update_body: the core writes an UpdateItem body straight from the update actions. It
-- must send what the Lua serializer builds (update_request), for every kind of action and
-- operand, and give up (nil) on whatever the serializer would refuse, so that path raises.
local core = require "lunamodb.core"
local lunamodb = require "lunamodb"
local A = require "lunamodb.attributes"
local path = require "lunamodb.expressions.path"
local cjson = require "cjson"
local I = require("lunamodb.model")._internal

local Doc = lunamodb.Model{
  table_name = "update-body", host = "http://127.0.0.1:1", region = "us-east-1",
  access_key_id = "AKID", secret_access_key = "SECRET",
  attributes = {
    pk = A.Unicode{ hash_key = true }, sk = A.Number{ range_key = true },
    name = A.Unicode{}, score = A.Number{}, ratio = A.Number{}, tags = A.UnicodeSet{},
    nums = A.NumberSet{}, log = A.List{ of = A.Unicode }, odd = A.Unicode{ attr_name = 'w"ird é' },
    profile = A.Map{ fields = { city = A.Unicode{}, visits = A.Number{},
      inner = A.Map{ fields = { deep = A.Number{} } } } },
    history = A.List{ of = A.Number }, loose = A.Map{},
  },
}
local item = Doc.new{ pk = "p", sk = 1 }
local head = '{"TableName":"update-body","Key":' .. A.encode_key_json(I.classes[Doc].schema, item)
  .. ","

-- what the Lua serializer sends for these actions (parsed), and the core's body (parsed)
local function both(actions)
  local params = I.update_request(item, actions, {}, "Doc:update", 1,
    core.raw_json(A.encode_key_json(I.classes[Doc].schema, item)))
  params.ReturnValues = "ALL_NEW"
  local body = core.update_body(path.UPDATE_SPEC, actions, head, ',"ReturnValues":"ALL_NEW"}')
  assert.is_string(body, "the core gave up")
  return cjson.decode(core.json_encode(params)), cjson.decode(body)
end

local ACTIONS = {
  function() return Doc.score:set(Doc.score + 1) end,
  function() return Doc.score:set(1 + Doc.score) end,
  function() return Doc.score:set(Doc.score - Doc.ratio) end,
  function() return Doc.name:set("Ada \"L\" \u{e9}") end,
  function() return Doc.odd:set("x") end,
  function() return Doc.ratio:set(0.25) end,
  function() return Doc.tags:add(lunamodb.set{ "a", "b" }) end,
  function() return Doc.tags:delete("a") end,
  function() return Doc.nums:add(3) end,
  function() return Doc.score:add(-2) end,
  function() return Doc.log:set(Doc.log:append{ "x", "y" }) end,
  function() return Doc.log:set(Doc.log:prepend{ "z" }) end,
  function() return Doc.log:set(Doc.log:if_not_exists{}:append{ "w" }) end,
  function() return Doc.score:set(Doc.score:if_not_exists(0) + 5) end,
  function() return Doc.name:set(Doc.name:if_not_exists(Doc.odd)) end,
  function() return Doc.profile.city:set("Paris") end,
  function() return Doc.profile.inner.deep:set(Doc.profile.inner.deep + 1) end,
  function() return Doc.profile.visits:remove() end,
  function() return Doc.history[3]:set(Doc.history[1]) end,
  function() return Doc.history[2]:remove() end,
  function() return Doc.loose.anything:set({ a = { 1, 2 }, b = lunamodb.null }) end,
  function() return Doc.name:remove() end,
  function() return Doc.profile:set({ city = "Rome", visits = 2, inner = { deep = 1 } }) end,
}

describe("core.update_body", function()
  it("sends what the serializer sends, one action of each kind", function()
    for _, make in ipairs(ACTIONS) do
      local want, got = both({ make() })
      assert.same(want, got)
    end
  end)

  it("sends what the serializer sends for mixed clauses, repeated names and any order", function()
    math.randomseed(5)
    for _ = 1, 300 do
      local actions, used = {}, {}
      for _ = 1, math.random(1, 6) do
        local k = math.random(#ACTIONS)
        -- one action per attribute path, as DynamoDB requires (paths may still share names)
        if not used[k] then
          used[k] = true
          actions[#actions + 1] = ACTIONS[k]()
        end
      end
      local want, got = both(actions)
      assert.same(want, got)
    end
  end)

  it("gives up on what the serializer refuses or does not take", function()
    local function gives_up(actions)
      assert.is_nil(core.update_body(path.UPDATE_SPEC, actions, head, "}"))
    end
    gives_up({})
    gives_up(Doc.name:set("x"))                              -- one action, not a list
    gives_up({ Doc.name:set("x"), "nope" })
    gives_up({ Doc.name:set("x"), [3] = Doc.score:set(1) })   -- a hole
    gives_up(setmetatable({ Doc.name:set("x") }, {}))
    local t = { Doc.name:set("x") }
    t.extra = true
    gives_up(t)
    local long = {}
    for i = 1, 400 do long[i] = Doc.history[i]:set(i) end      -- over 4096 bytes of text
    gives_up(long)
    assert.has_error(function() I.update_request(item, long, {}, "Doc:update", 1) end)
    assert.has_no.errors(function() gives_up({ { clause = "SET" } }) end)
  end)
end)
