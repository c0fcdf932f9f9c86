-- examples/basic.lua: declare a model, create its table, write, read, update, clean up.
--
-- `make demo` runs this against a DynamoDB Local it starts itself (it sets
-- AWS_ENDPOINT_URL_DYNAMODB and demo credentials). Against AWS, set AWS_REGION
-- and credentials the usual way.
local lunamodb = require "lunamodb"
local A = lunamodb.attributes

local User = lunamodb.Model{
  table_name = "lunamodb_demo_users",
  region = os.getenv("AWS_REGION") or "us-east-1",
  billing_mode = "PAY_PER_REQUEST",
  attributes = {
    email = A.Unicode{ hash_key = true },
    name = A.Unicode{},
    logins = A.Number{ default = 0 },
    tags = A.UnicodeSet{},
    joined = A.UTCDateTime{ default_for_new = lunamodb.now },
    version = A.Version{},
  },
}

assert(User:create_table{ wait = true })

local ada = User.new{ email = "ada@example.com", name = "Ada", tags = lunamodb.set{ "math" } }
assert(ada:save())
print("saved:    " .. tostring(ada))

local again = assert(User:get("ada@example.com", { consistent_read = true }))
assert(again:update{ User.logins:add(1), User.tags:add(lunamodb.set{ "engines" }) })
print("updated:  " .. tostring(again))

-- Runtime failures come back as nil, err: here the stale copy loses the race.
local ok, err = ada:save()
assert(not ok and err:is("ConditionalCheckFailed"))
print("refused:  " .. tostring(err))

local missing
missing, err = User:get("nobody@example.com")
assert(missing == nil and err:is(lunamodb.DoesNotExist))
print("missing:  " .. tostring(err))

assert(again:delete())
assert(User:delete_table{ wait = true })
print("deleted:  the table " .. User:table_name())
