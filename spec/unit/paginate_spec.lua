-- core.paginated / core.paginate_next: the next request of a paginated
-- operation, computed by the C core from the last request and response.
local core = require "lunamodb.core"

local next_page = core.paginate_next

local QUERY_REQ = '{"TableName":"t","KeyConditionExpression":"#p = :v",'
  .. '"ExpressionAttributeNames":{"#p":"pk"},"ExpressionAttributeValues":{":v":{"S":"a"}},"Limit":7}'

describe("core.paginated", function()
  it("knows DynamoDB's paginated operations", function()
    for _, op in ipairs({ "Query", "Scan", "ListTables", "ListBackups", "ListTagsOfResource",
                          "ListExports", "ListImports", "ListContributorInsights",
                          "ListGlobalTables", "ExecuteStatement" }) do
      assert.is_true(core.paginated(op), op)
    end
  end)

  it("says no for everything else", function()
    for _, op in ipairs({ "PutItem", "GetItem", "BatchGetItem", "BatchExecuteStatement",
                          "DescribeTable", "query", "Query ", "", "Query\0" }) do
      assert.is_false(core.paginated(op), op)
    end
    assert.has_error(function() core.paginated(nil) end)
  end)
end)

describe("core.paginate_next", function()
  it("adds the input token after the last member", function()
    local nxt, info = next_page("Query", QUERY_REQ,
      '{"Items":[{"pk":{"S":"a"}}],"Count":1,"ScannedCount":1,'
      .. '"LastEvaluatedKey":{"pk":{"S":"a"},"sk":{"N":"7"}}}')
    assert.equal(QUERY_REQ:sub(1, -2) .. ',"ExclusiveStartKey":{"pk":{"S":"a"},"sk":{"N":"7"}}}', nxt)
    assert.same({ count = 1, scanned = 1 }, info)
  end)

  it("adds the token to an empty request", function()
    assert.equal('{"ExclusiveStartTableName":"b"}',
      next_page("ListTables", "{}", '{"TableNames":["a","b"],"LastEvaluatedTableName":"b"}'))
    assert.equal(' {"ExclusiveStartTableName":"b"  } ',
      next_page("ListTables", ' {  } ', '{"LastEvaluatedTableName":"b"}'))
  end)

  it("replaces the input token in place, keeping every other byte", function()
    local req = '{ "TableName" : "t" ,\n\t"ExclusiveStartKey" :  {"pk":{"S":"old"}}  ,'
      .. ' "Limit":7, "FilterExpression":"#a > :b" }'
    local nxt = next_page("Scan", req, '{"Items":[],"Count":0,"ScannedCount":7,'
      .. '"LastEvaluatedKey":{"pk":{"S":"new"}}}')
    assert.equal('{ "TableName" : "t" ,\n\t"ExclusiveStartKey" :  {"pk":{"S":"new"}}  ,'
      .. ' "Limit":7, "FilterExpression":"#a > :b" }', nxt)
  end)

  it("replaces a token that is the first or the last member", function()
    assert.equal('{"ExclusiveStartTableName":"z","Limit":1}',
      next_page("ListTables", '{"ExclusiveStartTableName":"a","Limit":1}',
        '{"LastEvaluatedTableName":"z"}'))
    assert.equal('{"Limit":1,"ExclusiveStartTableName":"z"}',
      next_page("ListTables", '{"Limit":1,"ExclusiveStartTableName":"a"}',
        '{"LastEvaluatedTableName":"z"}'))
  end)

  it("replaces every occurrence of a repeated input member", function()
    assert.equal('{"ExclusiveStartTableName":"z","Limit":1,"ExclusiveStartTableName":"z"}',
      next_page("ListTables", '{"ExclusiveStartTableName":"a","Limit":1,"ExclusiveStartTableName":"b"}',
        '{"LastEvaluatedTableName":"z"}'))
  end)

  it("matches member names after unescaping them", function()
    assert.equal('{"Exclusive\\u0053tartTableName":"z"}',
      next_page("ListTables", '{"Exclusive\\u0053tartTableName":"a"}', '{"LastEvaluatedTableName":"z"}'))
    assert.equal('{"ExclusiveStartTableName":"z"}',
      next_page("ListTables", '{}', '{"LastEvaluated\\u0054ableName":"z"}'))
  end)

  it("copies the token's raw JSON text exactly: nesting, escapes, numbers, blanks", function()
    local token = '{ "pk" : {"S":"caf\\u00e9 \\ud83d\\ude00 \\/ \\" \\\\ \\n"},\n'
      .. '  "sk":{"N":"1.50E+3"}, "m":{"M":{"l":{"L":[{"S":"x"},{"NULL":true},{"BOOL":false}]},'
      .. '"e":{"M":{}},"u":{"S":"\226\152\131 été"}}} }'
    local nxt = next_page("Query", QUERY_REQ, '{"Items":[],"LastEvaluatedKey":' .. token .. '}')
    assert.equal(QUERY_REQ:sub(1, -2) .. ',"ExclusiveStartKey":' .. token .. '}', nxt)
    -- and it is still the same value
    local decoded = core.json_decode(nxt).ExclusiveStartKey
    assert.equal("café 😀 / \" \\ \n", decoded.pk.S)
    assert.equal("1.50E+3", decoded.sk.N)
    assert.equal("☃ été", decoded.m.M.u.S)
  end)

  it("copies a string token byte for byte, escapes included", function()
    local nxt = next_page("ListTagsOfResource", '{"ResourceArn":"arn:aws:dynamodb:r:1:table/t"}',
      '{"Tags":[{"Key":"k","Value":"v"}],"NextToken":"abc\\u002F\\u00e9=="}')
    assert.equal('{"ResourceArn":"arn:aws:dynamodb:r:1:table/t","NextToken":"abc\\u002F\\u00e9=="}', nxt)
  end)

  it("takes the last output member when the response repeats it", function()
    assert.equal('{"ExclusiveStartTableName":"second"}',
      next_page("ListTables", "{}",
        '{"LastEvaluatedTableName":"first","TableNames":[],"LastEvaluatedTableName":"second"}'))
  end)

  it("finds the token wherever it is, skipping big members", function()
    local items = {}
    for i = 1, 500 do
      items[i] = string.format('{"pk":{"S":"p"},"sk":{"N":"%d"},"d":{"L":[{"M":{"x":{"S":"[{\\"}"}}}]}}', i)
    end
    local body = '{"LastEvaluatedKey":{"pk":{"S":"p"},"sk":{"N":"500"}},"Items":['
      .. table.concat(items, ",") .. '],"ScannedCount":500}'
    local nxt, info = next_page("Query", '{"TableName":"t"}', body)
    assert.equal('{"TableName":"t","ExclusiveStartKey":{"pk":{"S":"p"},"sk":{"N":"500"}}}', nxt)
    assert.same({ count = 500, scanned = 500 }, info)
  end)

  it("returns false on the last page, with the page's info", function()
    local nxt, info = next_page("Query", QUERY_REQ,
      '{"Items":[{"a":{"S":"1"}},{"a":{"S":"2"}}],"Count":2,"ScannedCount":9}')
    assert.is_false(nxt)
    assert.same({ count = 2, scanned = 9 }, info)
    -- a null token ends the pages too
    nxt, info = next_page("ListTables", "{}", '{"TableNames":["a"],"LastEvaluatedTableName":null}')
    assert.is_false(nxt)
    assert.same({ count = 1 }, info)
    -- on the last page the request is not even read
    assert.is_false((next_page("ListTables", "not json", '{"TableNames":[]}')))
  end)

  it("reads Count, ScannedCount and the consumed capacity", function()
    local _, info = next_page("Query", QUERY_REQ,
      '{"Count":3,"Items":[{},{},{}],"ScannedCount":10,"ConsumedCapacity":'
      .. '{"TableName":"t","CapacityUnits":1.5,"ReadCapacityUnits":1.5,'
      .. '"Table":{"CapacityUnits":99},"GlobalSecondaryIndexes":{"g":{"CapacityUnits":7}}}}')
    assert.same({ count = 3, scanned = 10, capacity = 1.5 }, info)
    _, info = next_page("Scan", "{}", '{"Count":0,"Items":[],"ScannedCount":0,'
      .. '"ConsumedCapacity":{"TableName":"t","CapacityUnits":2}}')
    assert.equal(2, info.capacity)
    assert.equal(0, info.count)
    assert.equal(0, info.scanned)
  end)

  it("sums a list of ConsumedCapacity objects", function()
    local _, info = next_page("ExecuteStatement", '{"Statement":"SELECT * FROM t"}',
      '{"Items":[],"ConsumedCapacity":[{"TableName":"a","CapacityUnits":0.5},'
      .. '{"TableName":"b","CapacityUnits":2.25},{"TableName":"c"},{"TableName":"d","CapacityUnits":1e1}]}')
    assert.equal(12.75, info.capacity)
    _, info = next_page("Query", "{}", '{"ConsumedCapacity":[]}')
    assert.is_nil(info.capacity)
  end)

  it("leaves scanned and capacity nil when absent", function()
    local _, info = next_page("Query", "{}", '{"Items":[],"Count":0}')
    assert.same({ count = 0 }, info)
  end)

  it("counts the result key's elements when there is no Count", function()
    local nxt, info = next_page("ListTables", '{"Limit":3}',
      '{"TableNames":["a","b","c"],"LastEvaluatedTableName":"c"}')
    assert.equal('{"Limit":3,"ExclusiveStartTableName":"c"}', nxt)
    assert.same({ count = 3 }, info)
    _, info = next_page("ExecuteStatement", '{"Statement":"s"}',
      '{"Items":[{"a":{"L":[{"S":"x"},{"S":"y"}]}},{"b":{"M":{}}}]}')
    assert.equal(2, info.count)
    _, info = next_page("ListBackups", "{}", '{"BackupSummaries":[]}')
    assert.equal(0, info.count)
    _, info = next_page("ListTables", "{}", "{}")
    assert.equal(0, info.count)
    -- Count wins over the array length (Select = COUNT has no Items)
    _, info = next_page("Query", "{}", '{"Count":42,"ScannedCount":50}')
    assert.same({ count = 42, scanned = 50 }, info)
  end)

  it("knows every operation's token, limit and result members", function()
    local cases = {
      { "ListBackups", "ExclusiveStartBackupArn", "LastEvaluatedBackupArn", "BackupSummaries" },
      { "ListTagsOfResource", "NextToken", "NextToken", "Tags" },
      { "ListExports", "NextToken", "NextToken", "ExportSummaries" },
      { "ListImports", "NextToken", "NextToken", "ImportSummaryList" },
      { "ListContributorInsights", "NextToken", "NextToken", "ContributorInsightsSummaries" },
      { "ListGlobalTables", "ExclusiveStartGlobalTableName", "LastEvaluatedGlobalTableName",
        "GlobalTables" },
      { "ExecuteStatement", "NextToken", "NextToken", "Items" },
      { "ListTables", "ExclusiveStartTableName", "LastEvaluatedTableName", "TableNames" },
      { "Query", "ExclusiveStartKey", "LastEvaluatedKey", "Items" },
      { "Scan", "ExclusiveStartKey", "LastEvaluatedKey", "Items" },
    }
    for _, c in ipairs(cases) do
      local op, input, output, results = c[1], c[2], c[3], c[4]
      local resp = string.format('{"%s":[{"x":1},{"y":2}],"%s":"tok2"}', results, output)
      local nxt, info = next_page(op, '{"A":1}', resp)
      assert.equal(string.format('{"A":1,"%s":"tok2"}', input), nxt, op)
      assert.equal(2, info.count, op)
      nxt = next_page(op, string.format('{"%s":"tok1","A":1}', input), resp)
      assert.equal(string.format('{"%s":"tok2","A":1}', input), nxt, op)
      assert.is_false((next_page(op, '{"A":1}', string.format('{"%s":[]}', results))), op)
    end
  end)

  it("refuses the same token twice (a server that would loop forever)", function()
    local nxt, err = next_page("Query", '{"TableName":"t","ExclusiveStartKey":{"pk":{"S":"a"}}}',
      '{"Items":[],"LastEvaluatedKey":{"pk":{"S":"a"}}}')
    assert.is_nil(nxt)
    assert.equal("response: the same LastEvaluatedKey was received twice", err)
  end)

  it("returns nil, message for a malformed response", function()
    local bad = {
      { '{"Items":[', "response: invalid JSON at byte 11: unexpected end of JSON text" },
      { "", "response: invalid JSON at byte 1: unexpected end of JSON text" },
      { '[{"LastEvaluatedKey":{}}]', "response: not a JSON object" },
      { '"x"', "response: not a JSON object" },
      { '{"LastEvaluatedKey":{"a":1}} x', "response: invalid JSON at byte 30: trailing characters after JSON value" },
      { '{"LastEvaluatedKey":{"a":1},}', "response: invalid JSON at byte 29: expected a string key" },
      { '{"LastEvaluatedKey":{"a":tru}}', "response: invalid JSON at byte 26: unexpected character" },
      { '{"Items":[],"x":"\255"}', "response: invalid JSON at byte 18: invalid UTF-8 in string" },
      { '{"Count":"3"}', "response: Count is not a non-negative integer" },
      { '{"Count":-1}', "response: Count is not a non-negative integer" },
      { '{"Count":1.5}', "response: Count is not a non-negative integer" },
      { '{"ScannedCount":[1]}', "response: ScannedCount is not a non-negative integer" },
    }
    for _, b in ipairs(bad) do
      local nxt, err = next_page("Query", QUERY_REQ, b[1])
      assert.is_nil(nxt, b[1])
      assert.equal(b[2], err)
    end
  end)

  it("limits nesting to 128 levels, wherever the value is", function()
    local function nested(n) return string.rep("[", n) .. string.rep("]", n) end
    -- the top-level object is level 1: 127 arrays inside it are fine
    local nxt, info = next_page("Query", "{}", '{"Other":' .. nested(127) .. ',"Count":1}')
    assert.is_false(nxt)
    assert.equal(1, info.count)
    local err
    nxt, err = next_page("Query", "{}", '{"Other":' .. nested(128) .. ',"Count":1}')
    assert.is_nil(nxt)
    assert.matches("^response: invalid JSON at byte %d+: nesting too deep$", err)
    nxt, err = next_page("Query", "{}", '{"LastEvaluatedKey":' .. nested(200) .. '}')
    assert.is_nil(nxt)
    assert.matches("nesting too deep", err)
    nxt, err = next_page("Query", '{"F":' .. nested(128) .. '}', '{"LastEvaluatedKey":{}}')
    assert.is_nil(nxt)
    assert.matches("^request: invalid JSON at byte %d+: nesting too deep$", err)
  end)

  it("returns nil, message for a malformed request when a next page exists", function()
    local nxt, err = next_page("ListTables", '{"Limit":', '{"LastEvaluatedTableName":"a"}')
    assert.is_nil(nxt)
    assert.equal("request: invalid JSON at byte 10: unexpected end of JSON text", err)
    nxt, err = next_page("ListTables", '[]', '{"LastEvaluatedTableName":"a"}')
    assert.is_nil(nxt)
    assert.equal("request: not a JSON object", err)
  end)

  it("raises for an operation that does not paginate, or bad arguments", function()
    assert.has_error(function() next_page("PutItem", "{}", "{}") end,
      "lunamodb: operation 'PutItem' does not paginate")
    assert.has_error(function() next_page("Nope", "{}", "{}") end,
      "lunamodb: operation 'Nope' does not paginate")
    assert.has_error(function() next_page(nil, "{}", "{}") end)
    assert.has_error(function() next_page("Query", nil, "{}") end)
    assert.has_error(function() next_page("Query", "{}", {}) end)
  end)

  it("works on texts with NUL bytes and leaves the inputs usable", function()
    local req = '{"TableName":"t\\u0000x"}'
    local nxt = next_page("Scan", req, '{"LastEvaluatedKey":{"k":{"S":"\\u0000"}}}')
    assert.equal('{"TableName":"t\\u0000x","ExclusiveStartKey":{"k":{"S":"\\u0000"}}}', nxt)
    assert.equal('{"TableName":"t\\u0000x"}', req)
  end)

  it("chains: each next request feeds the following call", function()
    local req = '{"TableName":"t","Limit":2}'
    local keys = {}
    for i = 1, 5 do
      local resp = string.format('{"Items":[],"LastEvaluatedKey":{"n":{"N":"%d"}}}', i)
      req = next_page("Scan", req, resp)
      keys[i] = core.json_decode(req).ExclusiveStartKey.n.N
    end
    assert.same({ "1", "2", "3", "4", "5" }, keys)
    assert.equal('{"TableName":"t","Limit":2,"ExclusiveStartKey":{"n":{"N":"5"}}}', req)
  end)
end)

describe("core.json_valid", function()
  it("checks a text without decoding it", function()
    assert.is_true(core.json_valid('{"a":[1,2,{"b":null}]}'))
    assert.is_true(core.json_valid(" 3 "))
    local ok, err = core.json_valid('{"a":[1,2]')
    assert.is_nil(ok)
    assert.equal("invalid JSON at byte 11: unexpected end of JSON text", err)
    ok, err = core.json_valid(string.rep("[", 129) .. string.rep("]", 129))
    assert.is_nil(ok)
    assert.matches("nesting too deep", err)
    assert.is_true(core.json_valid(string.rep("[", 128) .. string.rep("]", 128)))
  end)
end)
