-- SigV4 against the AWS test suite (spec/fixtures/sigv4/v4) and our
-- DynamoDB-shaped vectors (spec/fixtures/sigv4/dynamodb). Each stage is
-- asserted on its own, so a failure names the stage that broke.

local core = require "lunamodb.core"
local fixtures = require "spec.helpers.sigv4_fixtures"

local SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


-- "Name:value" lines, sorted: the added headers compared as a set, since
-- the vector files list X-Amz-Security-Token before X-Amz-Date.
local function header_lines(pairs_)
  local out = {}
  for i, h in ipairs(pairs_) do
    out[i] = h[1] .. ":" .. h[2]
  end
  table.sort(out)
  return out
end


-- The signed-headers line of a canonical request (the one before the hash).
local function signed_headers_of(canonical_request)
  return canonical_request:match("\n([^\n]*)\n[^\n]*$")
end


for _, entry in ipairs(fixtures.all()) do
  local set, name = entry[1], entry[2]

  describe("sigv4 vector " .. set .. "/" .. name, function()
    local case = fixtures.load(set, name)
    local result

    -- signs once per case, on first use, so a raise fails the test
    local function signed()
      if not result then
        result = core.sigv4_sign(fixtures.sign_args(case))
      end
      return result
    end

    it("canonical request", function()
      assert.equal(case.expected.canonical_request, signed().canonical_request)
    end)

    it("string to sign", function()
      assert.equal(case.expected.string_to_sign, signed().string_to_sign)
    end)

    it("signature", function()
      assert.equal(case.expected.signature, signed().signature)
    end)

    it("headers to add", function()
      local r = signed()
      assert.equal(signed_headers_of(case.expected.canonical_request), r.signed_headers)
      assert.equal("20150830T123600Z", r.amz_date)
      assert.same(header_lines(case.expected.added_headers), header_lines(r.headers))
      -- documented order: X-Amz-Date, [X-Amz-Security-Token], [x-amz-content-sha256], Authorization
      assert.equal("X-Amz-Date", r.headers[1][1])
      assert.equal("Authorization", r.headers[#r.headers][1])
      assert.equal(r.authorization, r.headers[#r.headers][2])
    end)
  end)
end


describe("sigv4 signer", function()
  local vanilla = fixtures.load("dynamodb", "dynamodb-listtables")
  local token_case = fixtures.load("dynamodb", "dynamodb-putitem-session-token")

  local function sign_with(signer, case, time, region)
    local req = case.request
    return signer:sign(region or case.region, case.service, time or case.time,
                       req.method, req.path, req.query, fixtures.sign_args(case).headers,
                       req.body)
  end

  -- The reference: a one-shot sign with fresh credentials (no cache).
  local function fresh(case, overrides)
    local args = fixtures.sign_args(case)
    for k, v in pairs(overrides or {}) do
      args[k] = v
    end
    return core.sigv4_sign(args)
  end

  it("signs the vectors like core.sigv4_sign", function()
    local s = core.signer()
    s:set_credentials(vanilla.access_key_id, vanilla.secret_access_key)
    local r = sign_with(s, vanilla)
    assert.equal(vanilla.expected.canonical_request, r.canonical_request)
    assert.equal(vanilla.expected.string_to_sign, r.string_to_sign)
    assert.equal(vanilla.expected.signature, r.signature)

    s:set_credentials(token_case.access_key_id, token_case.secret_access_key,
                      token_case.session_token)
    r = sign_with(s, token_case)
    assert.equal(token_case.expected.signature, r.signature)
    assert.same(header_lines(token_case.expected.added_headers), header_lines(r.headers))
  end)

  it("reuses its cached key within a day and derives a new one when the scope changes", function()
    local s = core.signer()
    s:set_credentials(vanilla.access_key_id, vanilla.secret_access_key)
    local first = sign_with(s, vanilla)
    local again = sign_with(s, vanilla)
    assert.equal(first.signature, again.signature)
    assert.equal(first.authorization, again.authorization)
    assert.equal(vanilla.expected.signature, again.signature)

    -- later the same day: the cached key, a new signature, still right
    local later = sign_with(s, vanilla, vanilla.time + 3600)
    assert.not_equal(first.signature, later.signature)
    assert.equal(fresh(vanilla, { time = vanilla.time + 3600 }).signature, later.signature)

    -- next day, other region: the key must be derived again
    local next_day = sign_with(s, vanilla, vanilla.time + 86400)
    assert.equal(fresh(vanilla, { time = vanilla.time + 86400 }).signature, next_day.signature)
    local other_region = sign_with(s, vanilla, vanilla.time + 86400, "eu-west-1")
    assert.equal(fresh(vanilla, { time = vanilla.time + 86400, region = "eu-west-1" }).signature,
                 other_region.signature)
    assert.matches("/20150831/eu%-west%-1/dynamodb/aws4_request,", other_region.authorization)

    -- and back to the first scope
    assert.equal(vanilla.expected.signature, sign_with(s, vanilla).signature)
  end)

  it("drops the cached key when the credentials change", function()
    local s = core.signer()
    s:set_credentials(vanilla.access_key_id, vanilla.secret_access_key)
    local before = sign_with(s, vanilla)
    s:set_credentials(vanilla.access_key_id, "a-new-secret-key")
    local after = sign_with(s, vanilla)
    assert.not_equal(before.signature, after.signature)
    assert.equal(fresh(vanilla, { secret_access_key = "a-new-secret-key" }).signature,
                 after.signature)
    -- same string to sign: only the key differs
    assert.equal(before.string_to_sign, after.string_to_sign)

    s:set_credentials("AKIDOTHER", vanilla.secret_access_key, "tok123")
    local with_token = sign_with(s, vanilla)
    assert.matches("Credential=AKIDOTHER/", with_token.authorization)
    assert.matches("x%-amz%-security%-token", with_token.signed_headers)
    assert.equal(fresh(vanilla, { access_key_id = "AKIDOTHER", session_token = "tok123" }).signature,
                 with_token.signature)
  end)

  it("never shows the secret or the token in tostring", function()
    local s = core.signer()
    local empty = tostring(s)
    assert.not_matches(SECRET, empty, 1, true)
    s:set_credentials("AKIDEXAMPLE", SECRET, "SESSIONTOKENVALUE")
    local text = tostring(s)
    assert.matches("AKIDEXAMPLE", text, 1, true)
    assert.is_nil(text:find(SECRET, 1, true))
    assert.is_nil(text:find("SESSIONTOKENVALUE", 1, true))
    assert.is_nil(text:find("wJalr", 1, true))
    -- still so after signing (the signer now also holds a derived key)
    sign_with(s, vanilla)
    text = tostring(s)
    assert.is_nil(text:find(SECRET, 1, true))
    assert.is_nil(text:find("SESSIONTOKENVALUE", 1, true))
  end)
end)


describe("sigv4 header selection", function()
  local case = fixtures.load("dynamodb", "dynamodb-listtables")

  it("does not sign User-Agent, Expect or X-Amzn-Trace-Id (as botocore)", function()
    local args = fixtures.sign_args(case)
    table.insert(args.headers, 1, { "User-Agent", "lunamodb/0.1 lua/5.4" })
    table.insert(args.headers, { "Expect", "100-continue" })
    table.insert(args.headers, { "x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793" })
    local r = core.sigv4_sign(args)
    assert.equal("content-type;host;x-amz-date;x-amz-target", r.signed_headers)
    assert.equal(case.expected.signature, r.signature)
  end)

  it("treats header names case-insensitively and keeps repeated values in order", function()
    local args = fixtures.sign_args(case)
    for _, h in ipairs(args.headers) do
      h[1] = h[1]:upper()
    end
    assert.equal(case.expected.signature, core.sigv4_sign(args).signature)
    args = fixtures.sign_args(case)
    table.insert(args.headers, { "X-Multi", " b " })
    table.insert(args.headers, { "x-multi", "a\t\tc" })
    assert.matches("\nx%-multi:b,a c\n", core.sigv4_sign(args).canonical_request)
  end)

  -- Values without whitespace are copied eight bytes a step: whitespace anywhere around
  -- those steps must still be trimmed and folded as Trimall does.
  it("trims and folds whitespace wherever it stands in a value", function()
    for len = 1, 19 do
      for at = 1, len do
        for _, ws in ipairs({ " ", "\t", "  ", "\t \t" }) do
          local value = ("v"):rep(at - 1) .. ws .. ("w"):rep(len - at)
          local want = (value:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
          local args = fixtures.sign_args(case)
          table.insert(args.headers, { "X-Spaced", value })
          local cr = core.sigv4_sign(args).canonical_request
          assert.equal(want, cr:match("\nx%-spaced:([^\n]*)\n"), ("%q"):format(value))
        end
        local plain = ("v"):rep(len)
        local args = fixtures.sign_args(case)
        table.insert(args.headers, { "X-Spaced", plain })
        assert.equal(plain, core.sigv4_sign(args).canonical_request:match("\nx%-spaced:([^\n]*)\n"))
      end
    end
  end)
end)


describe("sigv4 input errors", function()
  local case = fixtures.load("dynamodb", "dynamodb-putitem-session-token")

  -- Runs core.sigv4_sign with one change and returns the error message.
  local function sign_error(change)
    local args = fixtures.sign_args(case)
    change(args)
    local ok, err = pcall(core.sigv4_sign, args)
    assert.is_false(ok, "expected an error")
    err = tostring(err)
    -- whatever went wrong, the message never carries a secret
    assert.is_nil(err:find(case.secret_access_key, 1, true), "secret in error message")
    assert.is_nil(err:find(case.session_token, 1, true), "session token in error message")
    return err
  end

  it("raises without a region", function()
    assert.matches("region", sign_error(function(a) a.region = nil end))
    assert.matches("region", sign_error(function(a) a.region = "" end))
  end)

  it("raises on a header value that is not a string", function()
    local err = sign_error(function(a) a.headers[2][2] = 42 end)
    assert.matches("header", err)
    err = sign_error(function(a) a.headers[2][2] = nil end)
    assert.matches("header", err)
    err = sign_error(function(a) table.insert(a.headers, { "X-Flag", true }) end)
    assert.matches("header", err)
  end)

  it("raises on CR or LF in a header value", function()
    local err = sign_error(function(a)
      table.insert(a.headers, { "X-Evil", "a\r\nX-Injected: 1" })
    end)
    assert.matches("X%-Evil", err)
    assert.matches("CR", err)
    sign_error(function(a) table.insert(a.headers, { "X-Evil", "a\nb" }) end)
    sign_error(function(a) table.insert(a.headers, { "X-Evil", "trailing\n" }) end)
    sign_error(function(a) table.insert(a.headers, { "X-Evil", "a\rb" }) end)
    sign_error(function(a) table.insert(a.headers, { "X-Evil", "nul\0byte" }) end)
  end)

  it("raises on CR or LF in a header name", function()
    sign_error(function(a) table.insert(a.headers, { "X-Evil\r\nX-Injected", "1" }) end)
  end)

  it("raises on a header that signing adds itself", function()
    sign_error(function(a) table.insert(a.headers, { "X-Amz-Date", "20150830T123600Z" }) end)
    sign_error(function(a) table.insert(a.headers, { "Authorization", "AWS4-HMAC-SHA256 x" }) end)
    sign_error(function(a)
      table.insert(a.headers, { "X-Amz-Security-Token", a.session_token })
    end)
  end)

  it("raises without credentials", function()
    sign_error(function(a) a.access_key_id = nil end)
    sign_error(function(a) a.secret_access_key = "" end)
  end)

  it("raises on a malformed region, service or time", function()
    sign_error(function(a) a.region = "us-east-1/x" end)
    sign_error(function(a) a.service = "" end)
    sign_error(function(a) a.time = "2015-08-30" end)
  end)

  it("writes X-Amz-Date in UTC for every time from year 0 to 9999, and refuses the rest", function()
    local function amz_date(t)
      local args = fixtures.sign_args(case)
      args.time = t
      return core.sigv4_sign(args).amz_date
    end
    assert.equal("19700101T000000Z", amz_date(0))
    assert.equal("19691231T235959Z", amz_date(-1))
    assert.equal("20240229T235959Z", amz_date(1709251199))
    assert.equal("20240301T000000Z", amz_date(1709251200))
    assert.equal("00000101T000000Z", amz_date(-62167219200))
    assert.equal("99991231T235959Z", amz_date(253402300799))
    assert.matches("time", sign_error(function(a) a.time = -62167219201 end))
    assert.matches("time", sign_error(function(a) a.time = 253402300800 end))
    -- the C library's gmtime, through os.date, agrees on times spread over 1900..2400
    local t = -2208988800
    while t < 13569465600 do
      assert.equal(os.date("!%Y%m%dT%H%M%SZ", t), amz_date(t))
      t = t + 86400 * 29 + 3607 * 7 + 13
    end
  end)

  it("raises when a signer without credentials signs", function()
    local s = core.signer()
    local ok, err = pcall(s.sign, s, "us-east-1", "dynamodb", case.time, "POST", "/", "",
                          fixtures.sign_args(case).headers, case.request.body)
    assert.is_false(ok)
    assert.matches("credential", tostring(err))
  end)
end)
