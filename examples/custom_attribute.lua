-- examples/custom_attribute.lua: a custom attribute type through the
-- extension point, lunamodb.attributes.define.
--
-- An Enum attribute stores one of a fixed list of names as S, and refuses
-- anything else before it ever reaches DynamoDB.
local lunamodb = require "lunamodb"
local A = lunamodb.attributes

local Enum = A.define{
  kind = "Enum",
  type = "S",
  options = { choices = "table" },            -- an extra option of this type
  serialize = function(attr, value)
    for _, c in ipairs(attr.choices) do
      if c == value then return value end
    end
    error("expected one of " .. table.concat(attr.choices, ", ") .. ", got " .. tostring(value), 0)
  end,
  deserialize = function(attr, wire)
    return wire
  end,
}

local Ticket = A.schema({
  id = A.Unicode{ hash_key = true },
  state = Enum{ choices = { "open", "closed" } },
}, "Ticket")

local item = A.serialize_item(Ticket, { id = "t1", state = "open" })
print("item:    " .. lunamodb.json.encode(item))
print("read:    state = " .. A.deserialize_item(Ticket, item).state)

local ok, err = pcall(A.serialize_item, Ticket, { id = "t2", state = "lost" })
print("refused: " .. tostring(err))
assert(not ok)

-- Custom types work in expressions like the built-in ones.
local cond = Ticket.state:eq("closed")
print("cond:    " .. tostring(cond))
return Enum
