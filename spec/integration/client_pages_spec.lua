-- client:pages against DynamoDB Local: ListTables, Query and Scan paged
-- with small limits see every table or item exactly once (and in order for
-- a Query), the next request of each page being the one the C core built.
local ddb = require "spec.helpers.ddb"

local function must(out, err)
  assert(out, tostring(err))
  return out
end

local ITEMS, OTHER = 250, 5

describe("client:pages against DynamoDB Local #integration", function()
  local client, names, items_table

  setup(function()
    client = ddb.client()
    names = {}
    for i = 1, 3 do
      names[i] = ddb.unique_table("pages_list" .. i)
      must(client:call("CreateTable", {
        TableName = names[i], BillingMode = "PAY_PER_REQUEST",
        AttributeDefinitions = { { AttributeName = "id", AttributeType = "S" } },
        KeySchema = { { AttributeName = "id", KeyType = "HASH" } },
      }))
    end
    items_table = names[1]:gsub("pages_list1", "pages_items")
    must(client:call("CreateTable", {
      TableName = items_table, BillingMode = "PAY_PER_REQUEST",
      AttributeDefinitions = {
        { AttributeName = "pk", AttributeType = "S" },
        { AttributeName = "sk", AttributeType = "N" },
      },
      KeySchema = {
        { AttributeName = "pk", KeyType = "HASH" },
        { AttributeName = "sk", KeyType = "RANGE" },
      },
    }))
    -- 250 items in partition "p" (written in batches of 25), 5 in another
    local batch = {}
    local function flush()
      local req = { RequestItems = { [items_table] = batch } }
      while req do
        local out = must(client:call("BatchWriteItem", req))
        local left = out.UnprocessedItems and out.UnprocessedItems[items_table]
        req = left and #left > 0 and { RequestItems = { [items_table] = left } } or nil
      end
      batch = {}
    end
    local function put(pk, sk)
      batch[#batch + 1] = { PutRequest = { Item = {
        pk = { S = pk }, sk = { N = tostring(sk) }, data = { S = "été ☃ " .. sk },
      } } }
      if #batch == 25 then flush() end
    end
    for sk = 1, ITEMS do put("p", sk) end
    for sk = 1, OTHER do put("q", sk) end
    if #batch > 0 then flush() end
  end)

  teardown(function()
    if client then
      for _, n in ipairs(names or {}) do client:call("DeleteTable", { TableName = n }) end
      if items_table then client:call("DeleteTable", { TableName = items_table }) end
      client:close()
    end
  end)

  it("pages ListTables one table at a time, seeing each table exactly once", function()
    local seen, pages, all = {}, 0, {}
    for page, info in client:pages("ListTables", { Limit = 1 }) do
      pages = pages + 1
      assert.is_true(#page.TableNames <= 1)
      assert.equal(#page.TableNames, info.count)
      for _, n in ipairs(page.TableNames) do
        assert.is_nil(all[n], "listed twice: " .. n)
        all[n] = true
        seen[n] = (seen[n] or 0) + 1
      end
    end
    for _, n in ipairs(names) do assert.equal(1, seen[n], n) end
    assert.equal(1, seen[items_table])
    assert.is_true(pages >= 4)
  end)

  it("pages a Query with Limit = 7, every item once and in order", function()
    local sks, pages, counted, scanned = {}, 0, 0, 0
    local params = {
      TableName = items_table, KeyConditionExpression = "pk = :p",
      ExpressionAttributeValues = { [":p"] = { S = "p" } },
      Limit = 7, ReturnConsumedCapacity = "TOTAL",
    }
    for page, info in client:pages("Query", params) do
      pages = pages + 1
      assert.is_true(#page.Items <= 7)
      assert.equal(page.Count, info.count)
      assert.equal(page.ScannedCount, info.scanned)
      assert.is_number(info.capacity)
      assert.equal(page.ConsumedCapacity.CapacityUnits, info.capacity)
      counted, scanned = counted + info.count, scanned + info.scanned
      for _, item in ipairs(page.Items) do
        assert.equal("p", item.pk.S)
        sks[#sks + 1] = tonumber(item.sk.N)
        assert.equal("été ☃ " .. item.sk.N, item.data.S)
      end
    end
    assert.equal(ITEMS, #sks)
    for i = 1, ITEMS do assert.equal(i, sks[i]) end
    assert.equal(ITEMS, counted)
    assert.equal(ITEMS, scanned)
    -- 35 full pages and one of 5 (a full last page would add an empty one)
    assert.equal(math.ceil(ITEMS / 7), pages)
    assert.is_nil(params.ExclusiveStartKey)
  end)

  it("pages a descending Query that counts only (Select = COUNT)", function()
    local total, pages = 0, 0
    for page, info in client:pages("Query", {
      TableName = items_table, KeyConditionExpression = "pk = :p",
      ExpressionAttributeValues = { [":p"] = { S = "p" } },
      ScanIndexForward = false, Select = "COUNT", Limit = 100,
    }) do
      pages = pages + 1
      assert.is_nil(page.Items)
      total = total + info.count
    end
    assert.equal(ITEMS, total)
    assert.equal(3, pages)
  end)

  it("pages a Scan with Limit = 7, every item exactly once", function()
    local seen, n, pages = {}, 0, 0
    for page, info in client:pages("Scan", { TableName = items_table, Limit = 7 }) do
      pages = pages + 1
      assert.is_true(#page.Items <= 7)
      assert.equal(#page.Items, info.count)
      for _, item in ipairs(page.Items) do
        local key = item.pk.S .. "#" .. item.sk.N
        assert.is_nil(seen[key], "seen twice: " .. key)
        seen[key] = true
        n = n + 1
      end
    end
    assert.equal(ITEMS + OTHER, n)
    for sk = 1, ITEMS do assert.is_true(seen["p#" .. sk]) end
    for sk = 1, OTHER do assert.is_true(seen["q#" .. sk]) end
    assert.is_true(pages >= math.ceil((ITEMS + OTHER) / 7))
  end)

  it("raises the service error from the iterator", function()
    local ok, err = pcall(function()
      for _ in client:pages("Query", { TableName = "pages_no_such_table",
        KeyConditionExpression = "pk = :p", ExpressionAttributeValues = { [":p"] = { S = "p" } } }) do
      end
    end)
    assert.is_false(ok)
    assert.is_true(err:is("ResourceNotFound"))
    assert.equal("Query", err.operation)
  end)
end)
