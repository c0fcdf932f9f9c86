-- examples/basic.lua: create a table, write an item, read it back, clean up.
--
-- `make demo` runs this against a DynamoDB Local it starts itself. Against
-- AWS, set AWS_REGION and credentials the usual way, and unset
-- AWS_ENDPOINT_URL_DYNAMODB. (The model API will replace these low-level
-- calls once it lands.)
local lunamodb = require "lunamodb"

local client = lunamodb.Client.new{ region = os.getenv("AWS_REGION") or "us-east-1" }
print("client:   " .. tostring(client))

local table_name = "lunamodb_demo_" .. os.time()

local function check(out, err)
  if not out then
    io.stderr:write(tostring(err), "\n")
    os.exit(1)
  end
  return out
end

local created = check(client:call("CreateTable", {
  TableName = table_name,
  BillingMode = "PAY_PER_REQUEST",
  AttributeDefinitions = { { AttributeName = "email", AttributeType = "S" } },
  KeySchema = { { AttributeName = "email", KeyType = "HASH" } },
}))
print("created:  " .. created.TableDescription.TableName .. " (" .. created.TableDescription.TableStatus .. ")")

check(client:call("PutItem", {
  TableName = table_name,
  Item = {
    email = { S = "ada@example.com" },
    name = { S = "Ada Lovelace" },
    logins = { N = "1" },
    tags = { SS = { "math", "engines" } },
  },
}))
print("put:      ada@example.com")

local updated = check(client:call("UpdateItem", {
  TableName = table_name,
  Key = { email = { S = "ada@example.com" } },
  UpdateExpression = "SET #l = #l + :one",
  ExpressionAttributeNames = { ["#l"] = "logins" },
  ExpressionAttributeValues = { [":one"] = { N = "1" } },
  ReturnValues = "UPDATED_NEW",
}))
print("updated:  logins = " .. updated.Attributes.logins.N)

local got = check(client:call("GetItem", {
  TableName = table_name,
  Key = { email = { S = "ada@example.com" } },
  ConsistentRead = true,
}))
print(string.format("got:      %s <%s>, %s logins", got.Item.name.S, got.Item.email.S, got.Item.logins.N))

-- A failed condition comes back as nil, err -- never raised.
local out, err = client:call("PutItem", {
  TableName = table_name,
  Item = { email = { S = "ada@example.com" } },
  ConditionExpression = "attribute_not_exists(email)",
})
assert(out == nil and err:is("ConditionalCheckFailed"))
print("refused:  " .. tostring(err))

check(client:call("DeleteTable", { TableName = table_name }))
print("deleted:  " .. table_name)
client:close()
