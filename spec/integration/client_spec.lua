-- client:call against DynamoDB Local: the whole low-level API surface a
-- model layer needs, asserted on real responses.
local lunamodb = require "lunamodb"
local ddb = require "spec.helpers.ddb"

local function must(out, err)
  assert(out, tostring(err))
  return out
end

describe("low-level client against DynamoDB Local #integration", function()
  local client, name

  setup(function()
    client = ddb.client()
    name = ddb.unique_table("lowlevel")
    local out = must(client:call("CreateTable", {
      TableName = name,
      BillingMode = "PAY_PER_REQUEST",
      AttributeDefinitions = {
        { AttributeName = "pk", AttributeType = "S" },
        { AttributeName = "sk", AttributeType = "N" },
      },
      KeySchema = {
        { AttributeName = "pk", KeyType = "HASH" },
        { AttributeName = "sk", KeyType = "RANGE" },
      },
    }))
    assert.equal(name, out.TableDescription.TableName)
  end)

  teardown(function()
    if client then
      client:call("DeleteTable", { TableName = name })
      client:close()
    end
  end)

  it("lists the table it created", function()
    local out = must(client:call("ListTables", {}))
    local found = false
    for _, t in ipairs(out.TableNames) do found = found or t == name end
    assert.is_true(found)
    local d = must(client:call("DescribeTable", { TableName = name }))
    assert.equal("ACTIVE", d.Table.TableStatus)
    assert.equal(0, d.Table.ItemCount)
  end)

  it("puts, gets, updates and deletes an item, exactly", function()
    local item = {
      pk = { S = "user#1" }, sk = { N = "1" },
      name = { S = "Ada ☃ été" },
      big = { N = "12345678901234567890123456789012345678" },
      tiny = { N = "-1.5E-100" },
      yes = { BOOL = true }, nothing = { NULL = true },
      tags = { SS = { "a", "b" } }, nums = { NS = { "1", "2.5" } },
      blob = { B = "AAEC/w==" },
      empty_list = { L = lunamodb.array() }, empty_map = { M = {} },
      nested = { M = { l = { L = { { S = "x" }, { N = "2" } } } } },
    }
    must(client:call("PutItem", { TableName = name, Item = item }))
    local got = must(client:call("GetItem", { TableName = name, ConsistentRead = true,
      Key = { pk = { S = "user#1" }, sk = { N = "1" } } })).Item
    assert.equal("Ada ☃ été", got.name.S)
    assert.equal("12345678901234567890123456789012345678", got.big.N)
    assert.equal(-1.5e-100, tonumber(got.tiny.N))   -- DynamoDB normalises the notation
    assert.is_true(got.yes.BOOL)
    assert.is_true(got.nothing.NULL)
    table.sort(got.tags.SS)
    assert.same({ "a", "b" }, got.tags.SS)
    assert.equal("AAEC/w==", got.blob.B)
    assert.is_true(lunamodb.is_array(got.empty_list.L))
    assert.equal(0, #got.empty_list.L)
    assert.is_false(lunamodb.is_array(got.empty_map.M))
    assert.equal("2", got.nested.M.l.L[2].N)

    local up = must(client:call("UpdateItem", {
      TableName = name, Key = { pk = { S = "user#1" }, sk = { N = "1" } },
      UpdateExpression = "SET #n = :n ADD #c :one REMOVE #t",
      ExpressionAttributeNames = { ["#n"] = "name", ["#c"] = "count", ["#t"] = "tags" },
      ExpressionAttributeValues = { [":n"] = { S = "Ada" }, [":one"] = { N = "1" } },
      ReturnValues = "ALL_NEW",
    }))
    assert.equal("Ada", up.Attributes.name.S)
    assert.equal("1", up.Attributes.count.N)
    assert.is_nil(up.Attributes.tags)

    local old = must(client:call("DeleteItem", { TableName = name,
      Key = { pk = { S = "user#1" }, sk = { N = "1" } }, ReturnValues = "ALL_OLD" }))
    assert.equal("Ada", old.Attributes.name.S)
    local gone = must(client:call("GetItem", { TableName = name, ConsistentRead = true,
      Key = { pk = { S = "user#1" }, sk = { N = "1" } } }))
    assert.is_nil(gone.Item)
  end)

  it("returns a failed condition as nil, err with the old item", function()
    must(client:call("PutItem", { TableName = name, Item = { pk = { S = "c" }, sk = { N = "1" }, v = { N = "7" } } }))
    local out, err = client:call("PutItem", {
      TableName = name, Item = { pk = { S = "c" }, sk = { N = "1" } },
      ConditionExpression = "attribute_not_exists(pk)",
      ReturnValuesOnConditionCheckFailure = "ALL_OLD",
    })
    assert.is_nil(out)
    assert.equal("ConditionalCheckFailedException", err.code)
    assert.is_true(err:is("ConditionalCheckFailed"))
    assert.equal(400, err.status)
    assert.is_false(err.retryable)
    assert.equal(1, err.attempts)
    assert.is_string(err.request_id)
    assert.equal("7", err.item.v.N)
  end)

  it("reports a validation error and a missing table", function()
    local _, err = client:call("GetItem", { TableName = name, Key = { pk = { S = "x" } } })
    assert.equal("ValidationException", err.code)
    _, err = client:call("GetItem", { TableName = name .. "_missing", Key = { pk = { S = "x" } } })
    assert.equal("ResourceNotFoundException", err.code)
    assert.is_false(err.retryable)
  end)

  it("batch-writes and batch-gets items", function()
    local requests = {}
    for i = 1, 25 do
      requests[i] = { PutRequest = { Item = { pk = { S = "batch" }, sk = { N = tostring(i) },
        payload = { S = string.rep("x", i) } } } }
    end
    local w = must(client:call("BatchWriteItem", { RequestItems = { [name] = requests } }))
    assert.same({}, w.UnprocessedItems)
    local keys = {}
    for i = 1, 25 do keys[i] = { pk = { S = "batch" }, sk = { N = tostring(i) } } end
    local g = must(client:call("BatchGetItem", { RequestItems = { [name] = { Keys = keys, ConsistentRead = true } } }))
    assert.equal(25, #g.Responses[name])
    for _, it in ipairs(g.Responses[name]) do
      assert.equal(tonumber(it.sk.N), #it.payload.S)
    end
  end)

  it("pages through a query and a scan", function()
    local seen, start, pages = {}, nil, 0
    repeat
      local out = must(client:call("Query", {
        TableName = name, Limit = 7, ExclusiveStartKey = start,
        KeyConditionExpression = "pk = :p AND sk BETWEEN :lo AND :hi",
        ExpressionAttributeValues = { [":p"] = { S = "batch" }, [":lo"] = { N = "1" }, [":hi"] = { N = "25" } },
      }))
      pages = pages + 1
      for _, it in ipairs(out.Items) do seen[#seen + 1] = tonumber(it.sk.N) end
      start = out.LastEvaluatedKey
    until not start
    assert.equal(25, #seen)
    for i = 1, 25 do assert.equal(i, seen[i]) end
    assert.is_true(pages >= 4)

    local count, scan_start = 0, nil
    repeat
      local out = must(client:call("Scan", { TableName = name, Limit = 10, ExclusiveStartKey = scan_start,
        FilterExpression = "pk = :p", ExpressionAttributeValues = { [":p"] = { S = "batch" } } }))
      count = count + out.Count
      scan_start = out.LastEvaluatedKey
    until not scan_start
    assert.equal(25, count)
  end)

  it("commits a transaction and reports a cancelled one with reasons in order", function()
    must(client:call("TransactWriteItems", { TransactItems = {
      { Put = { TableName = name, Item = { pk = { S = "acct" }, sk = { N = "1" }, bal = { N = "100" } } } },
      { Put = { TableName = name, Item = { pk = { S = "acct" }, sk = { N = "2" }, bal = { N = "0" } } } },
    } }))
    must(client:call("TransactWriteItems", { TransactItems = {
      { Update = { TableName = name, Key = { pk = { S = "acct" }, sk = { N = "1" } },
        UpdateExpression = "SET bal = bal - :a", ConditionExpression = "bal >= :a",
        ExpressionAttributeValues = { [":a"] = { N = "60" } } } },
      { Update = { TableName = name, Key = { pk = { S = "acct" }, sk = { N = "2" } },
        UpdateExpression = "SET bal = bal + :a", ExpressionAttributeValues = { [":a"] = { N = "60" } } } },
    } }))
    local got = must(client:call("TransactGetItems", { TransactItems = {
      { Get = { TableName = name, Key = { pk = { S = "acct" }, sk = { N = "1" } } } },
      { Get = { TableName = name, Key = { pk = { S = "acct" }, sk = { N = "2" } } } },
    } }))
    assert.equal("40", got.Responses[1].Item.bal.N)
    assert.equal("60", got.Responses[2].Item.bal.N)

    local out, err = client:call("TransactWriteItems", { TransactItems = {
      { Put = { TableName = name, Item = { pk = { S = "acct" }, sk = { N = "3" } } } },
      { Update = { TableName = name, Key = { pk = { S = "acct" }, sk = { N = "1" } },
        UpdateExpression = "SET bal = bal - :a", ConditionExpression = "bal >= :a",
        ExpressionAttributeValues = { [":a"] = { N = "60" } },
        ReturnValuesOnConditionCheckFailure = "ALL_OLD" } },
      { ConditionCheck = { TableName = name, Key = { pk = { S = "acct" }, sk = { N = "2" } },
        ConditionExpression = "attribute_not_exists(pk)" } },
    } })
    assert.is_nil(out)
    assert.equal("TransactionCanceledException", err.code)
    assert.is_false(err.retryable)
    assert.equal(3, #err.reasons)
    assert.equal("None", err.reasons[1].code)
    assert.equal("ConditionalCheckFailed", err.reasons[2].code)
    assert.equal("40", err.reasons[2].item.bal.N)
    assert.equal("ConditionalCheckFailed", err.reasons[3].code)
    -- nothing of the cancelled transaction was applied
    local miss = must(client:call("GetItem", { TableName = name, ConsistentRead = true,
      Key = { pk = { S = "acct" }, sk = { N = "3" } } }))
    assert.is_nil(miss.Item)
  end)

  it("replays a transaction with the same token without applying it twice", function()
    local params = { ClientRequestToken = "lunamodb-replay-" .. os.time(), TransactItems = {
      { Update = { TableName = name, Key = { pk = { S = "acct" }, sk = { N = "2" } },
        UpdateExpression = "SET bal = bal + :a", ExpressionAttributeValues = { [":a"] = { N = "1" } } } },
    } }
    must(client:call("TransactWriteItems", params))
    must(client:call("TransactWriteItems", params))
    local got = must(client:call("GetItem", { TableName = name, ConsistentRead = true,
      Key = { pk = { S = "acct" }, sk = { N = "2" } } }))
    assert.equal("61", got.Item.bal.N)
  end)

  it("runs PartiQL statements with parameters", function()
    must(client:call("ExecuteStatement", {
      Statement = 'INSERT INTO "' .. name .. '" VALUE {\'pk\': ?, \'sk\': ?, \'v\': ?}',
      Parameters = { { S = "partiql" }, { N = "1" }, { S = "hello" } },
    }))
    local out = must(client:call("ExecuteStatement", {
      Statement = 'SELECT * FROM "' .. name .. '" WHERE pk = ?',
      Parameters = { { S = "partiql" } },
    }))
    assert.equal(1, #out.Items)
    assert.equal("hello", out.Items[1].v.S)
  end)

  it("manages TTL, limits and table settings", function()
    local ttl = must(client:call("UpdateTimeToLive", { TableName = name,
      TimeToLiveSpecification = { Enabled = true, AttributeName = "expires" } }))
    assert.is_true(ttl.TimeToLiveSpecification.Enabled)
    local d = must(client:call("DescribeTimeToLive", { TableName = name }))
    assert.equal("expires", d.TimeToLiveDescription.AttributeName)
    local limits = must(client:call("DescribeLimits", {}))
    assert.is_number(limits.TableMaxReadCapacityUnits)
    local up = must(client:call("UpdateTable", { TableName = name,
      StreamSpecification = { StreamEnabled = true, StreamViewType = "NEW_AND_OLD_IMAGES" } }))
    assert.is_true(up.TableDescription.StreamSpecification.StreamEnabled)
  end)

  it("deletes the table", function()
    local other = ddb.unique_table("dropme")
    must(client:call("CreateTable", { TableName = other, BillingMode = "PAY_PER_REQUEST",
      AttributeDefinitions = { { AttributeName = "id", AttributeType = "S" } },
      KeySchema = { { AttributeName = "id", KeyType = "HASH" } } }))
    local out = must(client:call("DeleteTable", { TableName = other }))
    assert.equal(other, out.TableDescription.TableName)
    local _, err = client:call("DescribeTable", { TableName = other })
    assert.equal("ResourceNotFoundException", err.code)
  end)
end)
