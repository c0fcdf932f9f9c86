-- client:call against a scripted loopback server: retries, backoff, CRC32,
-- clock skew, idempotency tokens, timeouts, and what errors carry.
local lunamodb = require "lunamodb"
local core = require "lunamodb.core"
local loopback = require "spec.helpers.loopback"
local credentials = require "lunamodb.credentials"

local SECRET, TOKEN = "SECRETCANARYxyz", "TOKENCANARYxyz"

local function client_for(srv, extra)
  local opts = {
    region = "us-east-1", host = srv.url,
    access_key_id = "AKIDTEST", secret_access_key = SECRET, session_token = TOKEN,
    retry = { base_ms = 20, throttle_base_ms = 50, cap_ms = 400 },
  }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return lunamodb.Client.new(opts)
end

local function error_body(ns_code, message, casing)
  return core.json_encode({ __type = ns_code, [casing or "Message"] = message })
end

local function assert_no_secrets(err)
  local s = tostring(err) .. " " .. tostring(err.message)
  assert.is_nil(s:find(SECRET, 1, true))
  assert.is_nil(s:find(TOKEN, 1, true))
  assert.is_nil(s:find("Signature=", 1, true))
end

describe("client:call retries", function()
  local srv
  after_each(function() if srv then srv:stop(); srv = nil end end)

  it("retries throttle, 500, bad CRC and reset, then succeeds", function()
    srv = loopback.start{ routes = { ["POST /"] = {
      { status = 400, headers = { ["x-amz-retry-after"] = "300" },
        body = error_body("com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException", "slow down") },
      { status = 500, body = error_body("com.amazonaws.dynamodb.v20120810#InternalServerError", "oops", "message") },
      { status = 200, body = '{"TableNames":[]}', crc32 = 12345 },
      { action = "reset" },
      { status = 200, body = '{"TableNames":["a","b"]}', crc32 = true },
    } } }
    local c = client_for(srv, { max_attempts = 5 })
    local out, err = c:call("ListTables", {})
    assert.is_nil(err)
    assert.same({ "a", "b" }, out.TableNames)
    local reqs = srv:requests()
    assert.equal(5, #reqs)
    -- every attempt is freshly signed and carries the operation
    for _, r in ipairs(reqs) do
      assert.equal("DynamoDB_20120810.ListTables", r.headers["x-amz-target"])
      assert.equal("application/x-amz-json-1.0", r.headers["content-type"])
      assert.matches("^AWS4%-HMAC%-SHA256 Credential=AKIDTEST/%d+/us%-east%-1/dynamodb/aws4_request, "
        .. "SignedHeaders=content%-type;host;x%-amz%-date;x%-amz%-security%-token;x%-amz%-target, "
        .. "Signature=%x+$", r.headers["authorization"])
      assert.equal(TOKEN, r.headers["x-amz-security-token"])
      assert.equal("{}", r.body)
    end
    -- the throttle's x-amz-retry-after (300 ms) sets the floor of the first delay
    assert.is_true(reqs[2].t_ms - reqs[1].t_ms >= 290, "retry-after honoured")
    -- later delays are full-jitter, below their ceilings (20, 40, 80 ms) plus slack
    assert.is_true(reqs[3].t_ms - reqs[2].t_ms < 20 + 250)
    assert.is_true(reqs[4].t_ms - reqs[3].t_ms < 40 + 250)
    assert.is_true(reqs[5].t_ms - reqs[4].t_ms < 80 + 250)
    -- the connection was reused until the reset forced a new one
    assert.equal(reqs[1].connection, reqs[2].connection)
    assert.are_not.equal(reqs[4].connection, reqs[5].connection)
    c:close()
  end)

  it("gives up after max_attempts with a retryable error", function()
    srv = loopback.start{ routes = { ["*"] = {
      { status = 500, body = error_body("com.amazonaws.dynamodb.v20120810#InternalServerError", "down") },
    } } }
    local c = client_for(srv)
    local out, err = c:call("GetItem", { TableName = "t", Key = { id = { S = "1" } } })
    assert.is_nil(out)
    assert.equal("InternalServerError", err.code)
    assert.equal("down", err.message)
    assert.equal(500, err.status)
    assert.equal(4, err.attempts)
    assert.is_true(err.retryable)
    assert.equal("max_attempts", err.retry_stopped)
    assert.equal("GetItem", err.operation)
    assert.is_string(err.request_id)
    assert.equal(4, srv:count())
    assert_no_secrets(err)
  end)

  it("never retries conditional, validation or cancelled-transaction errors", function()
    local fatal = {
      { "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException", "The conditional request failed" },
      { "com.amazon.coral.validate#ValidationException", "bad" },
      { "com.amazonaws.dynamodb.v20120810#TransactionCanceledException", "cancelled" },
      { "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException", "no table" },
    }
    for _, f in ipairs(fatal) do
      srv = loopback.start{ routes = { ["*"] = { { status = 400, body = error_body(f[1], f[2]) } } } }
      local c = client_for(srv)
      local out, err = c:call("PutItem", { TableName = "t", Item = { id = { S = "1" } } })
      assert.is_nil(out)
      assert.equal(core.error_code(f[1]), err.code)
      assert.is_false(err.retryable)
      assert.equal(1, err.attempts)
      assert.equal(1, srv:count())
      srv:stop(); srv = nil
    end
  end)

  it("corrects clock skew from the Date header and retries once", function()
    local future = os.time() + 15 * 60
    local date = os.date("!%a, %d %b %Y %H:%M:%S GMT", future)
    srv = loopback.start{ routes = { ["POST /"] = {
      { status = 400, headers = { Date = date },
        body = error_body("com.amazon.coral.service#InvalidSignatureException",
          "Signature expired: 20240101T000000Z is now earlier than 20240101T000500Z") },
      { status = 200, headers = { Date = date }, body = "{}", crc32 = true },
    } } }
    local c = client_for(srv)
    local out, err = c:call("DescribeLimits", {})
    assert.is_nil(err)
    assert.same({}, out)
    local reqs = srv:requests()
    assert.equal(2, #reqs)
    local y, mo, d, h, mi, sec = reqs[2].headers["x-amz-date"]:match("^(%d%d%d%d)(%d%d)(%d%d)T(%d%d)(%d%d)(%d%d)Z$")
    local signed_epoch = credentials.parse_iso8601_ms(
      string.format("%s-%s-%sT%s:%s:%sZ", y, mo, d, h, mi, sec)) / 1000
    assert.is_true(math.abs(signed_epoch - future) < 30, "second attempt signed with server time")
    assert.is_true(math.abs(c.policy:clock_offset_ms() - 15 * 60 * 1000) < 30000)
  end)

  it("does not retry a signature error when no skew was seen", function()
    srv = loopback.start{ routes = { ["*"] = {
      { status = 400, body = error_body("com.amazon.coral.service#InvalidSignatureException",
        "Signature expired: 20240101T000000Z is now earlier than 20240101T000500Z") },
    } } }
    local out, err = client_for(srv):call("DescribeLimits", {})
    assert.is_nil(out)
    assert.equal("InvalidSignatureException", err.code)
    assert.equal(1, srv:count())
  end)

  it("reuses one ClientRequestToken across the retries of a transaction", function()
    srv = loopback.start{ routes = { ["POST /"] = {
      { status = 500, body = error_body("x#InternalServerError", "down") },
      { action = "close" },
      { status = 200, body = "{}", crc32 = true },
    } } }
    local params = { TransactItems = { { ConditionCheck = { TableName = "t",
      Key = { id = { S = "1" } }, ConditionExpression = "attribute_exists(id)" } } } }
    local out, err = client_for(srv):call("TransactWriteItems", params)
    assert.is_nil(err)
    assert.is_table(out)
    assert.is_nil(params.ClientRequestToken, "the caller's table is not modified")
    local reqs = srv:requests()
    assert.equal(3, #reqs)
    local token = core.json_decode(reqs[1].body).ClientRequestToken
    assert.matches("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$", token)
    for _, r in ipairs(reqs) do
      assert.equal(token, core.json_decode(r.body).ClientRequestToken)
    end
    -- a caller's own token is sent as is
    srv:stop()
    srv = loopback.start{ routes = { ["*"] = { { status = 200, body = "{}", crc32 = true } } } }
    params.ClientRequestToken = "my-token-1"
    client_for(srv):call("TransactWriteItems", params)
    assert.equal("my-token-1", core.json_decode(srv:requests()[1].body).ClientRequestToken)
  end)

  it("times out a hung server and reports RequestTimeout", function()
    srv = loopback.start{ routes = { ["*"] = { { action = "hang" } } } }
    local c = client_for(srv, { read_timeout = 1, max_attempts = 2 })
    local t0 = core.monotonic_ms()
    local out, err = c:call("ListTables", {})
    local took = core.monotonic_ms() - t0
    assert.is_nil(out)
    assert.equal("RequestTimeout", err.code)
    assert.equal("timeout", err.net)
    assert.equal(2, err.attempts)
    assert.is_true(took >= 1950 and took < 3500, "took " .. took)   -- two 1 s read timeouts
  end)

  it("enforces the whole-call deadline across retries", function()
    srv = loopback.start{ routes = { ["*"] = { { action = "hang" } } } }
    local c = client_for(srv, { timeout = 0.5, max_attempts = 10 })
    local t0 = core.monotonic_ms()
    local out, err = c:call("ListTables", {})
    local took = core.monotonic_ms() - t0
    assert.is_nil(out)
    assert.equal("RequestTimeout", err.code)
    assert.is_true(took < 1500, "took " .. took)
  end)

  it("reports a connection refused after retrying", function()
    srv = loopback.start{ routes = { ["*"] = { { status = 200, body = "{}" } } } }
    local url = srv.url
    srv:stop(); srv = nil
    local c = lunamodb.Client.new{ region = "us-east-1", host = url, access_key_id = "AKID",
      secret_access_key = SECRET, max_attempts = 2, retry = { base_ms = 1 } }
    local out, err = c:call("ListTables", {})
    assert.is_nil(out)
    assert.equal("ConnectionError", err.code)
    assert.equal("not_sent", err.net)
    assert.equal(2, err.attempts)
    assert_no_secrets(err)
  end)

  it("refuses a response over max_response_bytes without retrying it", function()
    srv = loopback.start{ routes = { ["*"] = {
      { status = 200, body = '{"x":"' .. string.rep("a", 5000) .. '"}', crc32 = true } } } }
    local out, err = client_for(srv, { max_response_bytes = 1024 }):call("ListTables", {})
    assert.is_nil(out)
    assert.equal("ResponseTooLarge", err.code)
    assert.equal(1, srv:count())
  end)

  it("skips the CRC32 check when the header is absent", function()
    srv = loopback.start{ routes = { ["*"] = { { status = 200, body = '{"Count":2}' } } } }
    local out = assert(client_for(srv):call("Scan", { TableName = "t" }))
    assert.equal(2, out.Count)
  end)

  it("gives up at once when the retry quota is spent", function()
    srv = loopback.start{ routes = { ["*"] = {
      { status = 503, body = error_body("x#ServiceUnavailable", "busy") } } } }
    local c = client_for(srv, { retry = { base_ms = 1, quota = 20 } })
    local _, err = c:call("ListTables", {})        -- one retry costs 14, the next is refused
    assert.equal(2, err.attempts)
    assert.equal("quota", err.retry_stopped)
    _, err = c:call("ListTables", {})
    assert.equal(1, err.attempts)
    assert.equal(3, srv:count())
  end)
end)
