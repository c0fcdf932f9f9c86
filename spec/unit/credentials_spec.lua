-- Container (ECS/EKS) and EC2 instance metadata (IMDSv2) credentials,
-- against a loopback server speaking their protocols, and refresh timing.
local core = require "lunamodb.core"
local credentials = require "lunamodb.credentials"
local curl = require "lunamodb.transport.curl"
local loopback = require "spec.helpers.loopback"

local function env(vars) return function(name) return vars[name] end end

local function iso(ms)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(ms / 1000))
end

local function doc(akid, expires_ms, extra)
  local t = { AccessKeyId = akid, SecretAccessKey = "secret-" .. akid, Token = "token-" .. akid,
              Expiration = iso(expires_ms) }
  for k, v in pairs(extra or {}) do t[k] = v end
  return core.json_encode(t)
end

local HOUR = 3600 * 1000

describe("credentials.parse_iso8601_ms", function()
  it("parses UTC, fractions and offsets", function()
    assert.equal(0, credentials.parse_iso8601_ms("1970-01-01T00:00:00Z"))
    assert.equal(1440938160000, credentials.parse_iso8601_ms("2015-08-30T12:36:00Z"))
    assert.equal(1440938160500, credentials.parse_iso8601_ms("2015-08-30T12:36:00.5Z"))
    assert.equal(1440938160000, credentials.parse_iso8601_ms("2015-08-30T14:36:00+02:00"))
    assert.equal(951782400000, credentials.parse_iso8601_ms("2000-02-29T00:00:00Z"))
    assert.is_nil(credentials.parse_iso8601_ms("yesterday"))
    assert.is_nil(credentials.parse_iso8601_ms("2015-08-30T12:36:00 PST"))
  end)
end)

describe("container credentials", function()
  local srv, transport
  before_each(function() transport = curl.new() end)
  after_each(function()
    if srv then srv:stop(); srv = nil end
    transport:close()
  end)

  it("fetches from AWS_CONTAINER_CREDENTIALS_FULL_URI with the authorization token", function()
    srv = loopback.start{ routes = { ["GET /creds"] = {
      { status = 200, body = doc("AKIDC1", core.now_ms() + 6 * HOUR) } } } }
    local p = credentials.container(env{
      AWS_CONTAINER_CREDENTIALS_FULL_URI = srv.url .. "/creds",
      AWS_CONTAINER_AUTHORIZATION_TOKEN = "Bearer abc",
    })
    local creds = assert(p:get(transport))
    assert.equal("AKIDC1", creds.access_key_id)
    assert.equal("secret-AKIDC1", creds.secret_access_key)
    assert.equal("token-AKIDC1", creds.session_token)
    assert.equal("Bearer abc", srv:requests()[1].headers["authorization"])
    -- cached: a second get makes no request
    assert.equal(creds, p:get(transport))
    assert.equal(1, srv:count())
  end)

  it("re-reads the token file on every fetch and refuses CR/LF tokens", function()
    srv = loopback.start{ routes = { ["GET /creds"] = {
      { status = 200, body = doc("AKIDC2", core.now_ms() + 14 * 60 * 1000) } } } }
    local token_file = os.tmpname()
    local f = assert(io.open(token_file, "w")); f:write("first\n"); f:close()
    local p = credentials.container(env{
      AWS_CONTAINER_CREDENTIALS_FULL_URI = srv.url .. "/creds",
      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = token_file,
    })
    assert(p:get(transport))
    f = assert(io.open(token_file, "w")); f:write("second"); f:close()
    -- 14 minutes left: inside the advisory window, so the next get refreshes
    assert(p:get(transport))
    local reqs = srv:requests()
    assert.equal("first", reqs[1].headers["authorization"])
    assert.equal("second", reqs[2].headers["authorization"])
    f = assert(io.open(token_file, "w")); f:write("bad\r\nX-Evil: 1"); f:close()
    p = credentials.container(env{
      AWS_CONTAINER_CREDENTIALS_FULL_URI = srv.url .. "/creds",
      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = token_file,
    })
    local creds, err = p:get(transport)
    assert.is_nil(creds)
    assert.equal("the container authorization token contains CR, LF or NUL", err.message)
    os.remove(token_file)
  end)

  it("keeps old credentials in the advisory window and fails in the mandatory one", function()
    local now = core.now_ms()
    srv = loopback.start{ routes = { ["GET /creds"] = {
      { status = 200, body = doc("AKIDOLD", now + 12 * 60 * 1000) },   -- 12 min left
      { status = 500, body = "down" },
    } } }
    local p = credentials.container(env{ AWS_CONTAINER_CREDENTIALS_FULL_URI = srv.url .. "/creds" })
    local first = assert(p:get(transport))
    assert.equal("AKIDOLD", first.access_key_id)
    -- refresh fails (3 tries, 1 s apart) but 12 min > 10 min: keep the old ones
    local again = assert(p:get(transport))
    assert.equal(first, again)
    -- once inside the mandatory window, a failed refresh is an error
    first.expires_ms = core.now_ms() + 5 * 60 * 1000
    local creds, err = p:get(transport)
    assert.is_nil(creds)
    assert.equal("CredentialsError", err.code)
    assert.matches("container credentials answered HTTP 500", err.message)
  end)

  it("reports a malformed document clearly", function()
    srv = loopback.start{ routes = { ["GET /creds"] = {
      { status = 200, body = '{"AccessKeyId":"A"}' } } } }
    local p = credentials.container(env{ AWS_CONTAINER_CREDENTIALS_FULL_URI = srv.url .. "/creds" })
    local creds, err = p:get(transport)
    assert.is_nil(creds)
    assert.equal("container credentials returned no AccessKeyId/SecretAccessKey", err.message)
  end)
end)

describe("EC2 instance metadata (IMDSv2)", function()
  local srv, transport
  before_each(function() transport = curl.new() end)
  after_each(function()
    if srv then srv:stop(); srv = nil end
    transport:close()
  end)

  local ROLE = "/latest/meta-data/iam/security-credentials/"

  it("gets a token, the role, then the credentials", function()
    srv = loopback.start{ routes = {
      ["PUT /latest/api/token"] = { { status = 200, body = "TOKEN1" } },
      ["GET " .. ROLE] = { { status = 200, body = "my-role\n" } },
      ["GET " .. ROLE .. "my-role"] = { { status = 200,
        body = doc("AKIDI1", core.now_ms() + 6 * HOUR, { Code = "Success" }) } },
    } }
    local p = credentials.imds(env{ AWS_EC2_METADATA_SERVICE_ENDPOINT = srv.url })
    local creds = assert(p:get(transport))
    assert.equal("AKIDI1", creds.access_key_id)
    local reqs = srv:requests()
    assert.equal(3, #reqs)
    assert.equal("21600", reqs[1].headers["x-aws-ec2-metadata-token-ttl-seconds"])
    assert.equal("TOKEN1", reqs[2].headers["x-aws-ec2-metadata-token"])
    assert.equal("TOKEN1", reqs[3].headers["x-aws-ec2-metadata-token"])
  end)

  it("refetches the token after a 401", function()
    srv = loopback.start{ routes = {
      ["PUT /latest/api/token"] = { { status = 200, body = "OLD" }, { status = 200, body = "NEW" } },
      ["GET " .. ROLE] = { { status = 401, body = "" }, { status = 200, body = "r" } },
      ["GET " .. ROLE .. "r"] = { { status = 200, body = doc("AKIDI2", core.now_ms() + 6 * HOUR) } },
    } }
    local creds = assert(credentials.imds(env{ AWS_EC2_METADATA_SERVICE_ENDPOINT = srv.url }):get(transport))
    assert.equal("AKIDI2", creds.access_key_id)
    local reqs = srv:requests()
    assert.equal("PUT", reqs[3].method)
    assert.equal("NEW", reqs[4].headers["x-aws-ec2-metadata-token"])
  end)

  it("falls back to IMDSv1 when the token request is refused", function()
    srv = loopback.start{ routes = {
      ["PUT /latest/api/token"] = { { status = 403, body = "" } },
      ["GET " .. ROLE] = { { status = 200, body = "r" } },
      ["GET " .. ROLE .. "r"] = { { status = 200, body = doc("AKIDV1", core.now_ms() + 6 * HOUR) } },
    } }
    local creds = assert(credentials.imds(env{ AWS_EC2_METADATA_SERVICE_ENDPOINT = srv.url }):get(transport))
    assert.equal("AKIDV1", creds.access_key_id)
    assert.is_nil(srv:requests()[2].headers["x-aws-ec2-metadata-token"])
  end)

  it("does not fall back when IMDSv1 is disabled, and says why", function()
    srv = loopback.start{ routes = { ["PUT /latest/api/token"] = { { status = 403, body = "" } } } }
    local p = credentials.imds(env{ AWS_EC2_METADATA_SERVICE_ENDPOINT = srv.url,
                                    AWS_EC2_METADATA_V1_DISABLED = "true" })
    local creds, err = p:get(transport)
    assert.is_nil(creds)
    assert.matches("AWS_EC2_METADATA_V1_DISABLED is set", err.message)
    assert.matches("HttpPutResponseHopLimit", err.message)
    assert.equal(1, srv:count())
  end)

  it("fails on a token request answered 400", function()
    srv = loopback.start{ routes = { ["PUT /latest/api/token"] = { { status = 400, body = "" } } } }
    local creds, err = credentials.imds(env{ AWS_EC2_METADATA_SERVICE_ENDPOINT = srv.url }):get(transport)
    assert.is_nil(creds)
    assert.matches("refused the token request %(HTTP 400%)", err.message)
  end)

  it("times out quickly on an unresponsive service", function()
    srv = loopback.start{ routes = { ["*"] = { { action = "hang" } } } }
    local p = credentials.imds(env{ AWS_EC2_METADATA_SERVICE_ENDPOINT = srv.url,
                                    AWS_METADATA_SERVICE_TIMEOUT = "0.3" })
    local t0 = core.monotonic_ms()
    local creds, err = p:get(transport)
    assert.is_nil(creds)
    assert.is_table(err)
    assert.is_true(core.monotonic_ms() - t0 < 3000)
  end)

  it("is off when AWS_EC2_METADATA_DISABLED is set", function()
    assert.is_nil(credentials.imds(env{ AWS_EC2_METADATA_DISABLED = "true" }))
  end)
end)

describe("a client using metadata credentials", function()
  it("signs with what the container provider fetched, and names it in errors", function()
    local srv = loopback.start{ routes = {
      ["GET /creds"] = { { status = 200, body = doc("AKIDFROMC", core.now_ms() + 6 * 3600 * 1000) } },
      ["POST /"] = { { status = 200, body = "{}", crc32 = true } },
    } }
    local lunamodb = require "lunamodb"
    local client = lunamodb.Client.new({ region = "us-east-1", host = srv.url }, env{
      AWS_CONTAINER_CREDENTIALS_FULL_URI = srv.url .. "/creds", AWS_EC2_METADATA_DISABLED = "true" })
    assert(client:call("ListTables", {}))
    local post = srv:requests()[2]
    assert.matches("Credential=AKIDFROMC/", post.headers["authorization"])
    assert.equal("token-AKIDFROMC", post.headers["x-amz-security-token"])
    client:close()
    srv:stop()
  end)
end)

describe("refreshing credentials from many tasks at once", function()
  local scheduler = require "lunamodb.scheduler"
  local srv, transport
  before_each(function() transport = curl.new() end)
  after_each(function()
    if srv then srv:stop(); srv = nil end
    transport:close()
  end)

  local function spawn_gets(p, n)
    local tasks = {}
    for i = 1, n do tasks[i] = scheduler.spawn(function() return p:get(transport) end) end
    return tasks
  end

  it("fetches once (single flight) and hands every waiting task the result", function()
    srv = loopback.start{ routes = { ["GET /creds"] = {
      { status = 200, body = doc("AKIDSF", core.now_ms() + 6 * HOUR), delay_ms = 200 } } } }
    local p = credentials.container(env{ AWS_CONTAINER_CREDENTIALS_FULL_URI = srv.url .. "/creds" })
    local tasks = spawn_gets(p, 10)
    assert.is_true(scheduler.join(tasks))
    for i = 1, 10 do
      local ok, creds = tasks[i]:result()
      assert.is_true(ok)
      assert.equal("AKIDSF", creds.access_key_id)
    end
    assert.equal(1, srv:count())
  end)

  it("keeps serving the old credentials in the advisory window while one task refreshes", function()
    srv = loopback.start{ routes = { ["GET /creds"] = {
      { status = 200, body = doc("AKIDOLD", core.now_ms() + 12 * 60 * 1000) },
      { status = 200, body = doc("AKIDNEW", core.now_ms() + 6 * HOUR), delay_ms = 300 },
    } } }
    local p = credentials.container(env{ AWS_CONTAINER_CREDENTIALS_FULL_URI = srv.url .. "/creds" })
    assert.equal("AKIDOLD", assert(p:get(transport)).access_key_id)
    local tasks = spawn_gets(p, 5)
    assert.is_true(scheduler.join(tasks))
    local _, first = tasks[1]:result()
    assert.equal("AKIDNEW", first.access_key_id, "the first task fetched")
    for i = 2, 5 do
      local _, creds = tasks[i]:result()
      assert.equal("AKIDOLD", creds.access_key_id, "the others did not wait for it")
    end
    assert.equal(2, srv:count())
    assert.equal("AKIDNEW", assert(p:get(transport)).access_key_id)
  end)

  it("shares a failed fetch's error with the tasks that waited for it", function()
    srv = loopback.start{ routes = { ["GET /creds"] = {
      { status = 200, body = "not json", delay_ms = 200 } } } }
    local p = credentials.container(env{ AWS_CONTAINER_CREDENTIALS_FULL_URI = srv.url .. "/creds" })
    local tasks = spawn_gets(p, 4)
    assert.is_true(scheduler.join(tasks))
    for i = 1, 4 do
      local ok, creds, err = tasks[i]:result()
      assert.is_true(ok)
      assert.is_nil(creds)
      assert.equal("container credentials returned a response that is not JSON", err.message)
    end
    assert.equal(1, srv:count())
  end)

  it("takes over a fetch whose task was cancelled", function()
    srv = loopback.start{ routes = { ["GET /creds"] = {
      { status = 200, body = doc("AKIDLOST", core.now_ms() + 6 * HOUR), delay_ms = 5000 },
      { status = 200, body = doc("AKIDTAKEN", core.now_ms() + 6 * HOUR) },
    } } }
    local p = credentials.container(env{ AWS_CONTAINER_CREDENTIALS_FULL_URI = srv.url .. "/creds" })
    local fetcher = scheduler.spawn(function() return p:get(transport) end)
    scheduler.step(0)                        -- the fetcher's request is in flight
    local waiter = scheduler.spawn(function() return p:get(transport) end)
    scheduler.step(0)                        -- the waiter waits for it
    local started = core.monotonic_ms()
    assert.is_true(fetcher:cancel())
    local ok, creds = waiter:result()
    assert.is_true(ok)
    assert.equal("AKIDTAKEN", creds.access_key_id)
    -- it fetched itself at once instead of waiting out the lost fetch (5 s) or REFRESH_WAIT_MS
    assert.is_true(core.monotonic_ms() - started < 2500)
  end)
end)
