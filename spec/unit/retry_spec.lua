-- Retry classification, backoff, quota, clock skew and HTTP dates
-- (csrc/retry.c through lunamodb.core). The facts come from
-- reference/reliability.md §1; the scenarios from aws-sdk-go-v2
-- aws/retry/retry2026_test.go, rewritten against this API.
local core = require "lunamodb.core"

local SKEW_EXPIRED = "Signature expired: 20150830T123600Z is now earlier than "
  .. "20150830T124100Z (20150830T124600Z - 5 min.)"
local SKEW_FUTURE = "Signature not yet current: 20150830T130000Z is still later than "
  .. "20150830T124600Z (20150830T124100Z + 5 min.)"

describe("core.classify", function()
  -- { status, code, message, net, crc_mismatch, expected class }
  local rows = {
    -- throttling, with and without the Exception suffix
    { 400, "ProvisionedThroughputExceededException", nil, nil, false, "throttle" },
    { 400, "ProvisionedThroughputExceeded", nil, nil, false, "throttle" },
    { 400, "ThrottlingException", "Rate exceeded", nil, false, "throttle" },
    { 400, "Throttling", nil, nil, false, "throttle" },
    { 400, "RequestLimitExceeded", nil, nil, false, "throttle" },
    { 400, "RequestLimitExceededException", nil, nil, false, "throttle" },
    { 400, "LimitExceededException", nil, nil, false, "throttle" },
    { 400, "LimitExceeded", nil, nil, false, "throttle" },
    { 400, "TransactionInProgressException", nil, nil, false, "throttle" },
    { 400, "TransactionInProgress", nil, nil, false, "throttle" },
    { 429, nil, nil, nil, false, "throttle" },
    { 429, "SomethingElse", nil, nil, false, "throttle" },
    -- transient
    { 500, "InternalServerError", "Internal server error", nil, false, "transient" },
    { 500, "InternalServerErrorException", nil, nil, false, "transient" },
    { 500, nil, nil, nil, false, "transient" },
    { 502, nil, nil, nil, false, "transient" },
    { 503, "ServiceUnavailable", nil, nil, false, "transient" },
    { 503, "ServiceUnavailableException", nil, nil, false, "transient" },
    { 504, nil, nil, nil, false, "transient" },
    { 509, nil, nil, nil, false, "transient" },
    { 409, "ReplicatedWriteConflictException", nil, nil, false, "transient" },
    { 409, "ReplicatedWriteConflict", nil, nil, false, "transient" },
    { 400, "RequestTimeout", nil, nil, false, "transient" },
    { 408, "RequestTimeoutException", nil, nil, false, "transient" },
    { 0, nil, nil, "not_sent", false, "transient" },
    { 0, nil, nil, "ambiguous", false, "transient" },
    { 200, nil, nil, nil, true, "transient" },
    { 400, "ConditionalCheckFailedException", nil, nil, true, "transient" },
    { 400, "ThrottlingException", nil, nil, true, "throttle" },
    -- timeout
    { 0, nil, nil, "timeout", false, "timeout" },
    -- clock skew codes
    { 400, "InvalidSignatureException", SKEW_EXPIRED, nil, false, "skew" },
    { 400, "InvalidSignature", SKEW_FUTURE, nil, false, "skew" },
    { 403, "SignatureDoesNotMatch", nil, nil, false, "skew" },
    { 403, "AuthFailure", nil, nil, false, "skew" },
    { 403, "RequestTimeTooSkewed", nil, nil, false, "skew" },
    -- never retried automatically
    { 400, "InvalidSignatureException", "The request signature we calculated does not match", nil, false, "fatal" },
    { 400, "InvalidSignatureException", nil, nil, false, "fatal" },
    { 400, "ConditionalCheckFailedException", "The conditional request failed", nil, false, "fatal" },
    { 400, "ConditionalCheckFailed", nil, nil, false, "fatal" },
    { 400, "ValidationException", "One or more parameter values were invalid", nil, false, "fatal" },
    { 400, "TransactionCanceledException", nil, nil, false, "fatal" },
    { 400, "TransactionConflictException", nil, nil, false, "fatal" },
    { 400, "ItemCollectionSizeLimitExceededException", nil, nil, false, "fatal" },
    { 400, "ResourceNotFoundException", nil, nil, false, "fatal" },
    { 400, "ResourceInUseException", nil, nil, false, "fatal" },
    { 400, "AccessDeniedException", nil, nil, false, "fatal" },
    { 400, "UnrecognizedClientException", nil, nil, false, "fatal" },
    { 403, "MissingAuthenticationToken", nil, nil, false, "fatal" },
    { 403, "MissingAuthenticationTokenException", nil, nil, false, "fatal" },
    { 403, "IncompleteSignatureException", nil, nil, false, "fatal" },
    { 400, nil, nil, nil, false, "fatal" },
    { 404, nil, nil, nil, false, "fatal" },
    { 413, nil, nil, nil, false, "fatal" },
    { 301, nil, nil, nil, false, "fatal" },
    { 0, nil, nil, "too_large", false, "fatal" },
    { 0, nil, nil, "closed", false, "fatal" },
    { 0, nil, nil, "other", false, "fatal" },
    { 400, "Exception", nil, nil, false, "fatal" },
    -- success
    { 200, nil, nil, nil, false, "ok" },
    { 200, nil, nil, "ok", false, "ok" },
    { 204, "", "", nil, false, "ok" },
  }

  it("has at least 35 rows", function()
    assert.is_true(#rows >= 35)
  end)

  for i, r in ipairs(rows) do
    local status, code, message, net, crc, want = r[1], r[2], r[3], r[4], r[5], r[6]
    local label = ("row %d: %s %s%s%s -> %s"):format(i, status, tostring(code),
      net and (" net=" .. net) or "", crc and " crc-mismatch" or "", want)
    it(label, function()
      assert.are.equal(want, core.classify(status, code, message, net, crc))
    end)
  end

  it("a transport failure wins over whatever status was passed", function()
    assert.are.equal("timeout", core.classify(200, nil, nil, "timeout", false))
    assert.are.equal("fatal", core.classify(500, nil, nil, "closed", false))
  end)
end)

describe("core.error_code", function()
  -- The awsJson1_0 shapes (smithy errors.smithy) and DynamoDB's own.
  local cases = {
    { "FooError", "FooError" },
    { "aws.protocoltests.restjson#FooError", "FooError" },
    { "aws.protocoltests.restjson#FooError:http://internal.amazon.com/coral/com.amazon.coral.validate/",
      "FooError" },
    { "FooError:http://internal.amazon.com/coral/com.amazon.coral.validate/", "FooError" },
    { "ns#Code", "Code" },
    { "Code", "Code" },
    { "ns#Code:http://uri", "Code" },
    { "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException", "ResourceNotFoundException" },
    { "com.amazon.coral.validate#ValidationException", "ValidationException" },
    { "a.b#c.d#Last", "Last" },
    { "ns#Foo:http://example.com/#fragment", "Foo" },
    { "", "" },
    { "ns#", "" },
  }
  for _, c in ipairs(cases) do
    it(("%q -> %q"):format(c[1], c[2]), function()
      assert.are.equal(c[2], core.error_code(c[1]))
    end)
  end

  it("feeds classify", function()
    local code = core.error_code("com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException")
    assert.are.equal("throttle", core.classify(400, code))
  end)
end)

describe("retry policy", function()
  -- Runs a scripted sequence of outcomes against one policy. Each step is
  -- { class, attempt, retry_after, rand, expect = { delay | why }, quota }
  -- or { "success", quota }.
  local function run(policy, steps)
    for i, s in ipairs(steps) do
      if s[1] == "success" then
        policy:success()
        assert.are.equal(s[2], policy:quota(), "quota after step " .. i)
      else
        local delay, why = policy:decide(s[1], s[2], s.retry_after, s.rand or 1)
        if s.delay then
          assert.are.equal(s.delay, delay, "delay at step " .. i)
        else
          assert.is_nil(delay, "no retry at step " .. i)
          assert.are.equal(s.why, why, "why at step " .. i)
        end
        assert.are.equal(s.quota, policy:quota(), "quota after step " .. i)
      end
    end
  end

  it("has the DynamoDB defaults", function()
    local p = core.retry_policy()
    assert.are.equal(500, p:quota())
    assert.are.equal(0, p:clock_offset_ms())
    -- 4 attempts, 25 ms base, cost 14
    run(p, {
      { "transient", 1, delay = 25, quota = 486 },
      { "transient", 2, delay = 50, quota = 472 },
      { "transient", 3, delay = 100, quota = 458 },
      { "transient", 4, why = "max_attempts", quota = 458 },
    })
  end)

  describe("retry2026 scenarios", function()
    -- Go's non-DynamoDB cases use a 50 ms base and 3 attempts.
    local function generic(opts)
      opts = opts or {}
      opts.base_ms = opts.base_ms or 50
      opts.max_attempts = opts.max_attempts or 3
      return core.retry_policy(opts)
    end

    it("retry eventually succeeds", function()
      run(generic(), {
        { "transient", 1, delay = 50, quota = 486 },
        { "transient", 2, delay = 100, quota = 472 },
        { "success", 486 },
      })
    end)

    it("fail due to max attempts reached", function()
      run(generic(), {
        { core.classify(502), 1, delay = 50, quota = 486 },
        { core.classify(502), 2, delay = 100, quota = 472 },
        { core.classify(502), 3, why = "max_attempts", quota = 472 },
      })
    end)

    it("retry quota reached after a single retry", function()
      run(generic({ quota = 14 }), {
        { "transient", 1, delay = 50, quota = 0 },
        { "transient", 2, why = "quota", quota = 0 },
      })
    end)

    it("no retries at all when the quota cannot pay (quota 0 means disabled here)", function()
      run(generic({ quota = 13 }), {
        { "transient", 1, why = "quota", quota = 13 },
      })
    end)

    it("verifying exponential backoff timing", function()
      run(generic({ max_attempts = 5 }), {
        { "transient", 1, delay = 50, quota = 486 },
        { "transient", 2, delay = 100, quota = 472 },
        { "transient", 3, delay = 200, quota = 458 },
        { "transient", 4, delay = 400, quota = 444 },
        { "transient", 5, why = "max_attempts", quota = 444 },
      })
    end)

    it("verify max backoff time", function()
      run(generic({ max_attempts = 5, cap_ms = 200 }), {
        { "transient", 1, delay = 50, quota = 486 },
        { "transient", 2, delay = 100, quota = 472 },
        { "transient", 3, delay = 200, quota = 458 },
        { "transient", 4, delay = 200, quota = 444 },
        { "transient", 5, why = "max_attempts", quota = 444 },
      })
    end)

    it("retry stops after retry quota exhaustion", function()
      run(generic({ max_attempts = 5, quota = 20 }), {
        { "transient", 1, delay = 50, quota = 6 },
        { core.classify(502), 2, why = "quota", quota = 6 },
      })
    end)

    it("retry quota recovery after successful responses", function()
      run(generic({ max_attempts = 5, quota = 30 }), {
        { "transient", 1, delay = 50, quota = 16 },
        { core.classify(502), 2, delay = 100, quota = 2 },
        { "success", 16 },
        { "transient", 1, delay = 50, quota = 2 },
        { "success", 16 },
      })
    end)

    it("throttling error token bucket drain and backoff duration", function()
      run(generic(), {
        { core.classify(400, "Throttling"), 1, delay = 1000, quota = 495 },
        { "success", 500 },
      })
    end)

    it("dynamodb base backoff and increased retries", function()
      run(core.retry_policy(), {
        { "transient", 1, delay = 25, quota = 486 },
        { "transient", 2, delay = 50, quota = 472 },
        { "transient", 3, delay = 100, quota = 458 },
        { "transient", 4, why = "max_attempts", quota = 458 },
      })
    end)

    it("non-retryable errors are not retried", function()
      run(generic({ max_attempts = 2 }), {
        { core.classify(404), 1, why = "not_retryable", quota = 500 },
      })
    end)

    it("honor x-amz-retry-after header", function()
      run(generic(), {
        { "transient", 1, retry_after = 1500, rand = 0.37, delay = 1500, quota = 486 },
        { "success", 500 },
      })
    end)

    it("x-amz-retry-after minimum is exponential backoff duration", function()
      run(generic(), {
        { "transient", 1, retry_after = 0, delay = 50, quota = 486 },
        { "success", 500 },
      })
    end)

    it("x-amz-retry-after maximum is 5+exponential backoff duration", function()
      run(generic(), {
        { "transient", 1, retry_after = 10000, delay = 5050, quota = 486 },
        { "success", 500 },
      })
    end)

    it("invalid x-amz-retry-after falls back to exponential backoff", function()
      -- The Lua layer turns an unparsable header into nil; negative and
      -- NaN values reaching the core are ignored as well.
      run(generic(), {
        { "transient", 1, retry_after = nil, delay = 50, quota = 486 },
        { "transient", 1, retry_after = -1, delay = 50, quota = 472 },
        { "transient", 1, retry_after = 0 / 0, delay = 50, quota = 458 },
      })
    end)
  end)

  describe("jitter", function()
    it("scales the ceiling by the draw", function()
      run(core.retry_policy(), {
        { "transient", 1, rand = 0.5, delay = 12.5, quota = 486 },
        { "transient", 2, rand = 0.5, delay = 25, quota = 472 },
        { "transient", 3, rand = 0, delay = 0, quota = 458 },
      })
    end)

    it("uses the throttle base for throttling, capped at 20 s", function()
      local p = core.retry_policy({ max_attempts = 10 })
      run(p, {
        { "throttle", 1, rand = 0.5, delay = 500, quota = 495 },
        { "throttle", 2, rand = 1, delay = 2000, quota = 490 },
        { "throttle", 5, rand = 1, delay = 16000, quota = 485 },
        { "throttle", 6, rand = 1, delay = 20000, quota = 480 },
        { "throttle", 9, rand = 0.5, delay = 10000, quota = 475 },
      })
    end)

    it("clamps retry-after into [t, t + 5 s] after the jitter", function()
      run(core.retry_policy(), {
        { "transient", 1, rand = 0.5, retry_after = 3, delay = 12.5, quota = 486 },
        { "transient", 1, rand = 0.5, retry_after = 400, delay = 400, quota = 472 },
        { "transient", 1, rand = 0.5, retry_after = 60000, delay = 5012.5, quota = 458 },
        { "throttle", 1, rand = 1, retry_after = 7000, delay = 6000, quota = 453 },
      })
    end)

    it("draws from the CSPRNG when no rand is given", function()
      local p = core.retry_policy()
      for _ = 1, 50 do
        local d = p:decide("transient", 2, nil, nil)
        assert.is_true(d >= 0 and d <= 50)
        p:success()
      end
    end)

    it("rejects a draw outside [0, 1]", function()
      local p = core.retry_policy()
      assert.has_error(function() p:decide("transient", 1, nil, 1.5) end)
      assert.has_error(function() p:decide("transient", 1, nil, -0.1) end)
    end)
  end)

  describe("quota", function()
    it("charges 14 per transient, 5 per throttle and 14 per timeout retry", function()
      run(core.retry_policy({ max_attempts = 10 }), {
        { "transient", 1, delay = 25, quota = 486 },
        { "throttle", 2, delay = 2000, quota = 481 },
        { "timeout", 3, delay = 100, quota = 467 },
      })
    end)

    it("uses custom costs", function()
      run(core.retry_policy({ cost_transient = 5, cost_throttle = 1, cost_timeout = 10 }), {
        { "transient", 1, delay = 25, quota = 495 },
        { "throttle", 2, delay = 2000, quota = 494 },
        { "timeout", 3, delay = 100, quota = 484 },
      })
    end)

    it("refunds the last retry's cost, else +1, never past the maximum", function()
      local p = core.retry_policy({ quota = 40 })
      run(p, {
        { "transient", 1, delay = 25, quota = 26 },
        { "throttle", 2, delay = 2000, quota = 21 },
        { "success", 26 },      -- refunds the last retry (5), not the first
        { "success", 27 },      -- a success without retries: +1
        { "success", 28 },
      })
      for _ = 1, 20 do p:success() end
      assert.are.equal(40, p:quota())
    end)

    it("exhausts after 35 transient retries and fails fast until successes refill it", function()
      local p = core.retry_policy({ max_attempts = 2 })
      local granted = 0
      for _ = 1, 100 do
        local d, why = p:decide("transient", 1, nil, 1)
        if d then granted = granted + 1 else assert.are.equal("quota", why) end
      end
      assert.are.equal(35, granted)
      assert.are.equal(10, p:quota())
      local d, why = p:decide("transient", 1, nil, 1)
      assert.is_nil(d)
      assert.are.equal("quota", why)
      for _ = 1, 4 do p:success() end
      assert.are.equal(14, p:quota())
      assert.are.equal(25, (p:decide("transient", 1, nil, 1)))
      assert.are.equal(0, p:quota())
    end)

    it("a refused call refunds nothing later", function()
      local p = core.retry_policy({ max_attempts = 2 })
      run(p, {
        { "transient", 1, delay = 25, quota = 486 },
        { "transient", 2, why = "max_attempts", quota = 486 },
        { "success", 487 },     -- the next call's first attempt: +1, not 14
      })
    end)

    it("quota = 0 disables it", function()
      local p = core.retry_policy({ quota = 0, max_attempts = 100 })
      for i = 1, 200 do
        assert.is_number(p:decide("transient", i % 50 + 1, nil, 1))
      end
      p:success()
      assert.are.equal(0, p:quota())
    end)

    it("max attempts is checked before the quota", function()
      run(core.retry_policy({ quota = 1 }), {
        { "transient", 4, why = "max_attempts", quota = 1 },
        { "transient", 1, why = "quota", quota = 1 },
        { "fatal", 1, why = "not_retryable", quota = 1 },
      })
    end)
  end)

  describe("skew", function()
    it("retries once, at once, without spending quota", function()
      run(core.retry_policy(), {
        { "skew", 1, delay = 0, quota = 500 },
        { "skew", 2, why = "not_retryable", quota = 500 },
      })
    end)

    it("ignores retry-after and respects max_attempts = 1", function()
      run(core.retry_policy(), {
        { "skew", 1, retry_after = 3000, delay = 0, quota = 500 },
      })
      run(core.retry_policy({ max_attempts = 1 }), {
        { "skew", 1, why = "max_attempts", quota = 500 },
      })
    end)

    it("ok and fatal are never retried", function()
      run(core.retry_policy(), {
        { "ok", 1, why = "not_retryable", quota = 500 },
        { "fatal", 1, why = "not_retryable", quota = 500 },
      })
    end)
  end)

  describe("observe_clock", function()
    local now = 1700000000000   -- local milliseconds
    local function server(offset_s) return math.floor(now / 1000) + offset_s end

    it("corrects only past the 4-minute threshold", function()
      local p = core.retry_policy()
      assert.is_false(p:observe_clock(server(200), now - 100, now + 100, false))
      assert.is_false(p:observe_clock(server(-239), now - 100, now + 100, false))
      assert.are.equal(0, p:clock_offset_ms())
      assert.is_false(p:observe_clock(server(240), now, now, false))
      assert.is_true(p:observe_clock(server(241), now, now, false))
      assert.are.equal(241000, p:clock_offset_ms())
    end)

    it("uses the midpoint of send and receive", function()
      local p = core.retry_policy()
      assert.is_true(p:observe_clock(server(600), now - 2000, now + 2000, false))
      assert.are.equal(600000, p:clock_offset_ms())
      -- now consistent with the offset: no further change
      assert.is_false(p:observe_clock(server(600), now - 2000, now + 2000, false))
      assert.is_false(p:observe_clock(server(700), now, now, false))
      assert.are.equal(600000, p:clock_offset_ms())
      -- the clock came back: the offset follows
      assert.is_true(p:observe_clock(server(-900), now, now, false))
      assert.are.equal(-900000, p:clock_offset_ms())
      assert.is_true(p:observe_clock(server(0), now, now, false))
      assert.are.equal(0, p:clock_offset_ms())
    end)

    it("ignores cached responses (Age)", function()
      local p = core.retry_policy()
      assert.is_false(p:observe_clock(server(900), now, now + 10, true))
      assert.are.equal(0, p:clock_offset_ms())
    end)

    it("ignores round trips over 15 minutes, and backwards ones", function()
      local p = core.retry_policy()
      assert.is_false(p:observe_clock(server(3600), now - 15 * 60000 - 1, now, false))
      assert.is_false(p:observe_clock(server(3600), now, now - 1, false))
      assert.are.equal(0, p:clock_offset_ms())
      assert.is_true(p:observe_clock(server(3600), now - 15 * 60000, now, false))
    end)

    it("feeds from a parsed Date header", function()
      local p = core.retry_policy()
      local date = core.parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT")
      local sent = (date - 600) * 1000
      assert.is_true(p:observe_clock(date, sent, sent + 50, false))
      assert.are.equal(600000 - 25, p:clock_offset_ms())
    end)
  end)
end)

describe("core.parse_http_date", function()
  local good = {
    { "Sun, 06 Nov 1994 08:49:37 GMT", 784111777 },       -- IMF-fixdate
    { "Sunday, 06-Nov-94 08:49:37 GMT", 784111777 },      -- RFC 850
    { "Sun Nov  6 08:49:37 1994", 784111777 },            -- asctime
    { "Sun Nov 06 08:49:37 1994", 784111777 },
    { "Thu, 01 Jan 1970 00:00:00 GMT", 0 },
    { "Tue, 29 Feb 2000 12:00:00 GMT", 951825600 },
    { "Sat, 21 Nov 2026 10:15:00 GMT", 1795256100 },
    { "Fri, 31 Dec 9999 23:59:59 GMT", 253402300799 },
    { "Wednesday, 01-Jan-20 00:00:00 GMT", 1577836800 },
  }
  for _, c in ipairs(good) do
    it(("parses %q"):format(c[1]), function()
      assert.are.equal(c[2], core.parse_http_date(c[1]))
    end)
  end

  local bad = {
    "", "garbage", "Sun, 06 Nov 1994 08:49:37", "Sun, 06 Nov 1994 08:49:37 UTC",
    "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 94 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT",
    "Sun, 31 Nov 1994 08:49:37 GMT", "Thu, 29 Feb 2001 12:00:00 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
    "Sun, 06 Nov 1994 08:60:00 GMT", "Sun, 06 Nov 1994 08:49:37 GMT junk", "Xyz, 06 Nov 1994 08:49:37 GMT",
    "Sunday, 06 Nov 1994 08:49:37 GMT", "Sun Nov 6 08:49:37 1994", "Sun, 06 Nov 1994 08:49:37 GMT\0",
    "1994-11-06T08:49:37Z", "784111777",
  }
  for _, s in ipairs(bad) do
    it(("rejects %q"):format(s), function()
      assert.is_nil(core.parse_http_date(s))
    end)
  end
end)
