-- client:pages and client:call_raw against a scripted loopback server: the
-- exact request bodies of pages 2..n, retried pages, errors mid-way; and the
-- per-call HTTP options of calls with a deadline.
local lunamodb = require "lunamodb"
local core = require "lunamodb.core"
local errors = require "lunamodb.errors"
local loopback = require "spec.helpers.loopback"

local function client_for(srv, extra)
  local opts = {
    region = "us-east-1", host = srv.url,
    access_key_id = "AKIDTEST", secret_access_key = "SECRET",
    retry = { base_ms = 5, throttle_base_ms = 5, cap_ms = 20 },
  }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return lunamodb.Client.new(opts)
end

local function ok_page(body)
  return { status = 200, body = body, crc32 = true }
end

local function error_body(ns_code, message)
  return core.json_encode({ __type = ns_code, message = message })
end

local function bodies(srv)
  local out = {}
  for i, r in ipairs(srv:requests()) do out[i] = r.body end
  return out
end

describe("client:pages", function()
  local srv
  after_each(function() if srv then srv:stop(); srv = nil end end)

  it("pages ListTables, sending the core's next request each time", function()
    srv = loopback.start{ routes = { ["POST /"] = {
      ok_page('{"TableNames":["a","b"],"LastEvaluatedTableName":"b"}'),
      ok_page('{"LastEvaluatedTableName":"d","TableNames":["c","d"]}'),
      ok_page('{"TableNames":["e"]}'),
    } } }
    local c = client_for(srv)
    local names, counts = {}, {}
    for page, info in c:pages("ListTables", { Limit = 2 }) do
      for _, n in ipairs(page.TableNames) do names[#names + 1] = n end
      counts[#counts + 1] = info.count
    end
    assert.same({ "a", "b", "c", "d", "e" }, names)
    assert.same({ 2, 2, 1 }, counts)
    assert.same({
      '{"Limit":2}',
      '{"Limit":2,"ExclusiveStartTableName":"b"}',
      '{"Limit":2,"ExclusiveStartTableName":"d"}',
    }, bodies(srv))
    for _, r in ipairs(srv:requests()) do
      assert.equal("DynamoDB_20120810.ListTables", r.headers["x-amz-target"])
    end
    c:close()
  end)

  it("pages a Query; a retried page resends the very same body", function()
    local lek1 = '{"pk":{"S":"p\\u00e9"},"sk":{"N":"2"}}'
    local lek2 = '{ "pk" : {"S":"p\\u00e9"}, "sk":{"N":"4"} }'
    srv = loopback.start{ routes = { ["POST /"] = {
      ok_page('{"Items":[{"sk":{"N":"1"}},{"sk":{"N":"2"}}],"Count":2,"ScannedCount":2,'
        .. '"LastEvaluatedKey":' .. lek1 .. ',"ConsumedCapacity":{"TableName":"t","CapacityUnits":0.5}}'),
      { status = 500, body = error_body("com.amazonaws.dynamodb.v20120810#InternalServerError", "oops") },
      { action = "reset" },
      ok_page('{"Items":[{"sk":{"N":"3"}},{"sk":{"N":"4"}}],"Count":2,"ScannedCount":2,'
        .. '"LastEvaluatedKey":' .. lek2 .. '}'),
      { status = 400, body = error_body(
        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException", "slow") },
      ok_page('{"Items":[],"Count":0,"ScannedCount":0}'),
    } } }
    local params = {
      TableName = "t", KeyConditionExpression = "#p = :v",
      ExpressionAttributeNames = { ["#p"] = "pk" },
      ExpressionAttributeValues = { [":v"] = { S = "pé" } },
      Limit = 2, ReturnConsumedCapacity = "TOTAL",
    }
    local first = core.json_encode(params)
    local c = client_for(srv)
    local seen, infos = {}, {}
    for page, info in c:pages("Query", params) do
      for _, item in ipairs(page.Items) do seen[#seen + 1] = item.sk.N end
      infos[#infos + 1] = info
    end
    assert.same({ "1", "2", "3", "4" }, seen)
    assert.same({ { count = 2, scanned = 2, capacity = 0.5 }, { count = 2, scanned = 2 },
                  { count = 0, scanned = 0 } }, infos)
    local second = first:sub(1, -2) .. ',"ExclusiveStartKey":' .. lek1 .. '}'
    local third = first:sub(1, -2) .. ',"ExclusiveStartKey":' .. lek2 .. '}'
    assert.same({ first, second, second, second, third, third }, bodies(srv))
    assert.is_nil(params.ExclusiveStartKey, "the caller's params are not modified")
    c:close()
  end)

  it("retries a page whose body is not JSON, with the same request", function()
    srv = loopback.start{ routes = { ["POST /"] = {
      ok_page('{"Items":[{"n":{"N":"1"}}],"LastEvaluatedKey":{"n":{"N":"1"}}}'),
      ok_page('{"Items":[{"n":'),
      ok_page('{"Items":[{"n":{"N":"2"}}]}'),
    } } }
    local n = 0
    for page in client_for(srv):pages("Scan", { TableName = "t" }) do n = n + #page.Items end
    assert.equal(2, n)
    local b = bodies(srv)
    assert.equal(3, #b)
    assert.equal('{"TableName":"t","ExclusiveStartKey":{"n":{"N":"1"}}}', b[2])
    assert.equal(b[2], b[3])
  end)

  it("raises the lunamodb.Error when a page fails mid-way, then ends", function()
    srv = loopback.start{ routes = { ["POST /"] = {
      ok_page('{"TableNames":["a"],"LastEvaluatedTableName":"a"}'),
      { status = 400, body = error_body("com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
        "Requested resource not found") },
    } } }
    local it = client_for(srv):pages("ListTables", { Limit = 1 })
    local pages = 0
    local ok, err = pcall(function()
      for _ in it do pages = pages + 1 end
    end)
    assert.is_false(ok)
    assert.equal(1, pages)
    assert.is_true(errors.is_error(err))
    assert.equal("ResourceNotFoundException", err.code)
    assert.is_true(err:is("ResourceNotFound"))
    assert.equal("ListTables", err.operation)
    assert.equal(400, err.status)
    assert.is_false(err.retryable)
    assert.equal(1, err.attempts)
    assert.equal(2, srv:count())
    assert.is_nil(it(), "the iterator is finished after raising")
    assert.equal(2, srv:count())
  end)

  it("raises a retryable error after max_attempts on a page", function()
    srv = loopback.start{ routes = { ["POST /"] = {
      ok_page('{"TableNames":["a"],"LastEvaluatedTableName":"a"}'),
      { status = 503, body = error_body("x#ServiceUnavailable", "busy") },
    } } }
    local ok, err = pcall(function()
      for _ in client_for(srv, { max_attempts = 3 }):pages("ListTables", {}) do end
    end)
    assert.is_false(ok)
    assert.equal("ServiceUnavailable", err.code)
    assert.is_true(err.retryable)
    assert.equal(3, err.attempts)
    assert.equal("max_attempts", err.retry_stopped)
    assert.same({ "{}", '{"ExclusiveStartTableName":"a"}', '{"ExclusiveStartTableName":"a"}',
                  '{"ExclusiveStartTableName":"a"}' }, bodies(srv))
  end)

  it("raises a PaginationError when the server repeats its token", function()
    srv = loopback.start{ routes = { ["POST /"] = {
      ok_page('{"TableNames":["a"],"LastEvaluatedTableName":"a"}'),
    } } }
    local pages = 0
    local ok, err = pcall(function()
      for _ in client_for(srv):pages("ListTables", {}) do pages = pages + 1 end
    end)
    assert.is_false(ok)
    assert.equal(1, pages)
    assert.is_true(errors.is_error(err))
    assert.equal("PaginationError", err.code)
    assert.equal("response: the same LastEvaluatedTableName was received twice", err.message)
    assert.equal(2, srv:count())
  end)

  it("raises on misuse before any network call", function()
    srv = loopback.start{ routes = { ["*"] = { ok_page("{}") } } }
    local c = client_for(srv)
    assert.has_error(function() c:pages("PutItem", {}) end,
      "lunamodb: client:pages: operation 'PutItem' does not paginate")
    assert.has_error(function() c:pages("ListTabels", {}) end,
      "lunamodb: client:pages: unknown DynamoDB operation 'ListTabels'")
    assert.has_error(function() c:pages(1, {}) end,
      "lunamodb: client:pages: operation must be a string (got number)")
    assert.has_error(function() c:pages("Query") end,
      'lunamodb: client:pages("Query"): params must be a table (got nil)')
    assert.has_error(function() c:pages("Scan", { TableName = "\255" }) end,
      'lunamodb: client:pages("Scan"): params $.TableName: string is not valid UTF-8 '
      .. "(binary data must be base64-encoded)")
    assert.equal(0, srv:count())
  end)
end)

describe("client:call_raw", function()
  local srv
  after_each(function() if srv then srv:stop(); srv = nil end end)

  it("sends the body as is and returns the response text undecoded", function()
    local resp = '{ "TableNames" : ["a"],\n "X":1.50 }'
    srv = loopback.start{ routes = { ["POST /"] = {
      { status = 500, body = error_body("x#InternalServerError", "oops") },
      ok_page(resp),
    } } }
    local body = '{ "Limit" : 5 }'
    local text, err = client_for(srv):call_raw("ListTables", body)
    assert.is_nil(err)
    assert.equal(resp, text)
    assert.same({ body, body }, bodies(srv))
    assert.equal("DynamoDB_20120810.ListTables", srv:requests()[1].headers["x-amz-target"])
  end)

  it("retries a body that is not JSON, then reports a SerializationError", function()
    srv = loopback.start{ routes = { ["POST /"] = { ok_page('{"TableNames":[') } } }
    local text, err = client_for(srv, { max_attempts = 2 }):call_raw("ListTables", "{}")
    assert.is_nil(text)
    assert.equal("SerializationError", err.code)
    assert.equal("the response is not valid JSON: invalid JSON at byte 16: unexpected end of JSON text",
      err.message)
    assert.is_true(err.retryable)
    assert.equal(2, err.attempts)
  end)

  it("returns structured errors like call", function()
    srv = loopback.start{ routes = { ["*"] = { { status = 400, body = error_body(
      "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException", "no") } } } }
    local text, err = client_for(srv):call_raw("PutItem", '{"TableName":"t","Item":{}}')
    assert.is_nil(text)
    assert.is_true(errors.is_error(err))
    assert.is_true(err:is("ConditionalCheckFailed"))
    assert.equal("PutItem", err.operation)
    assert.equal(1, srv:count())
  end)

  it("raises on misuse before any network call", function()
    srv = loopback.start{ routes = { ["*"] = { ok_page("{}") } } }
    local c = client_for(srv)
    assert.has_error(function() c:call_raw("ListTabels", "{}") end,
      "lunamodb: client:call_raw: unknown DynamoDB operation 'ListTabels'")
    assert.has_error(function() c:call_raw(nil, "{}") end,
      "lunamodb: client:call_raw: operation must be a string (got nil)")
    assert.has_error(function() c:call_raw("ListTables", {}) end,
      'lunamodb: client:call_raw("ListTables"): body must be a JSON string (got table)')
    assert.equal(0, srv:count())
  end)
end)

describe("per-call HTTP options", function()
  -- A transport that records the options of each send and yields inside
  -- it, so two calls on one client can run interleaved in coroutines.
  local function fake_transport(log)
    return {
      send = function(_, _, _, _, body, opts)
        local entry = { opts = opts, total = opts.total_timeout_ms, body = body }
        log[#log + 1] = entry
        coroutine.yield()
        entry.total_after = opts.total_timeout_ms
        return 200, {}, '{"TableNames":[]}'
      end,
      sleep = function() end,
      close = function() end,
    }
  end

  local function new_client(transport, extra)
    local opts = { region = "us-east-1", host = "http://127.0.0.1:9", access_key_id = "AKID",
                   secret_access_key = "SECRET", transport = transport }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return lunamodb.Client.new(opts)
  end

  it("reuses the shared options when there is no deadline", function()
    local log = {}
    local c = new_client(fake_transport(log))
    local co = coroutine.wrap(function() return c:call("ListTables", {}) end)
    co(); co()
    assert.equal(c.http_opts, log[1].opts)
    assert.equal(0, c.http_opts.total_timeout_ms)
  end)

  it("names the response headers it reads, which the curl transport alone then returns", function()
    local log = {}
    local c = new_client(fake_transport(log))
    local co = coroutine.wrap(function() return c:call("ListTables", {}) end)
    co(); co()
    local names = {}
    for i, n in ipairs(log[1].opts.response_headers) do names[i] = n end
    table.sort(names)
    assert.same({ "age", "date", "x-amz-crc32", "x-amz-retry-after", "x-amzn-errortype",
      "x-amzn-requestid" }, names)
  end)

  it("gives each call with a deadline its own options, never touching the shared ones", function()
    local log = {}
    local c = new_client(fake_transport(log), { timeout = 5, connect_timeout = 2 })
    local results = {}
    local a = coroutine.wrap(function() results.a = c:call("ListTables", { Limit = 1 }) end)
    local b = coroutine.wrap(function() results.b = c:call_raw("ListTables", '{"Limit":2}') end)
    a()                                   -- a is inside send
    b()                                   -- b too, interleaved
    a(); b()
    assert.is_table(results.a)
    assert.equal('{"TableNames":[]}', results.b)
    assert.equal(2, #log)
    assert.are_not.equal(log[1].opts, log[2].opts)
    assert.are_not.equal(c.http_opts, log[1].opts)
    assert.are_not.equal(c.http_opts, log[2].opts)
    for _, l in ipairs(log) do
      assert.is_true(l.total > 4000 and l.total <= 5000, tostring(l.total))
      assert.equal(l.total, l.total_after, "unchanged while the other call ran")
      assert.equal(2000, l.opts.connect_timeout_ms)
      assert.equal(30000, l.opts.read_timeout_ms)
    end
    assert.equal(0, c.http_opts.total_timeout_ms)
  end)
end)
