-- The curl transport (core.http) against a scripted loopback server: responses, keep-alive,
-- concurrency, and how each transport failure is reported (docs/core-api.md).
local core = require "lunamodb.core"
local loopback = require "spec.helpers.loopback"
local socket = require "socket"

local SIG = "AWS4-HMAC-SHA256 Credential=AKIDTEST/20261121/us-east-1/dynamodb/aws4_request, "
  .. "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=CANARYSIGNATURE"

local HEADERS = {
  "Content-Type: application/x-amz-json-1.0",
  "X-Amz-Target: DynamoDB_20120810.ListTables",
  "Authorization: " .. SIG,
}

-- Polls until req is done; fails the test past limit_ms. Returns the elapsed milliseconds.
local function wait(http, req, limit_ms)
  local t0 = core.monotonic_ms()
  while not req:done() do
    assert(core.monotonic_ms() - t0 < (limit_ms or 5000), "the request did not finish in time")
    http:poll(50)
  end
  return core.monotonic_ms() - t0
end

local function fetch(http, method, url, headers, body, opts, limit_ms)
  local req = assert(http:submit(method, url, headers or HEADERS, body, opts))
  local elapsed = wait(http, req, limit_ms)
  return req, elapsed
end

-- A one-shot raw server driven from the spec's own poll loop, for byte-exact responses the
-- loopback server cannot produce (1xx with headers, huge header blocks).
local function raw_server(response)
  local srv = assert(socket.bind("127.0.0.1", 0))
  srv:settimeout(0)
  local _, port = srv:getsockname()
  local conn, buf, sent = nil, "", false
  local self = { url = "http://127.0.0.1:" .. port .. "/" }
  function self.step()
    if not conn then
      conn = srv:accept()
      if conn then conn:settimeout(0) end
    end
    if conn and not sent then
      local data, _, partial = conn:receive(4096)
      buf = buf .. (data or partial or "")
      if buf:find("\r\n\r\n", 1, true) then     -- GET: the head is the whole request
        conn:settimeout(5)
        assert(conn:send(response))
        sent = true
      end
    end
  end
  function self.close()
    if conn then conn:close() end
    srv:close()
  end
  return self
end

local function fetch_raw(http, raw, opts)
  local req = assert(http:submit("GET", raw.url, {}, nil, opts))
  local t0 = core.monotonic_ms()
  while not req:done() do
    assert(core.monotonic_ms() - t0 < 5000, "the request did not finish in time")
    http:poll(10)
    raw.step()
  end
  return req
end

describe("core.http", function()
  local http, srv

  before_each(function() http = core.http() end)
  after_each(function()
    if http then http:close(); http = nil end
    if srv then srv:stop(); srv = nil end
  end)

  describe("responses", function()
    it("returns status, headers (case-insensitive) and body, and sends what it was given", function()
      local body = '{"TableNames":["a"]}'
      srv = loopback.start{ routes = { ["POST /"] = {
        { status = 200, body = body, crc32 = true, headers = { ["X-Padded"] = "   some value  " } },
      } } }
      local req = fetch(http, "POST", srv.url .. "/", HEADERS, "{}")
      local status, headers, rbody = req:result()
      assert.equal(200, status)
      assert.equal(body, rbody)
      assert.equal(tostring(core.crc32(body)), headers["x-amz-crc32"])
      assert.equal("some value", headers["x-padded"])
      assert.equal("application/x-amz-json-1.0", headers["content-type"])
      assert.is_nil(headers["X-Padded"])                 -- keys are lowercase
      assert.equal("some value", req:header("X-PADDED"))
      assert.equal("some value", req:header("x-padded"))
      assert.equal(tostring(#body), req:header("Content-Length"))
      assert.is_nil(req:header("x-not-there"))

      local got = srv:requests()
      assert.equal(1, #got)
      assert.equal("POST", got[1].method)
      assert.equal("/", got[1].path)
      assert.equal("{}", got[1].body)
      assert.equal("application/x-amz-json-1.0", got[1].headers["content-type"])
      assert.equal("DynamoDB_20120810.ListTables", got[1].headers["x-amz-target"])
      assert.equal(SIG, got[1].headers["authorization"])
      assert.equal("2", got[1].headers["content-length"])
      assert.is_nil(got[1].headers["expect"])            -- never waits for 100-continue
      assert.is_nil(got[1].headers["accept-encoding"])   -- x-amz-crc32 covers wire bytes
      req:release()
    end)

    it("sends PUT with its body, DELETE and GET without, and no made-up Content-Type", function()
      srv = loopback.start{ routes = { ["*"] = { { status = 204, body = "" } } } }
      local put = fetch(http, "PUT", srv.url .. "/p", {}, "xyz")
      local del = fetch(http, "DELETE", srv.url .. "/d", {}, nil)
      local get = fetch(http, "GET", srv.url .. "/g", { "Accept: application/json" }, nil)
      for _, r in ipairs { put, del, get } do assert.equal(204, (r:result())) end
      local got = srv:requests()
      assert.equal(3, #got)
      assert.same({ "PUT", "/p", "xyz", "3" },
        { got[1].method, got[1].path, got[1].body, got[1].headers["content-length"] })
      assert.is_nil(got[1].headers["content-type"])      -- no form-urlencoded default
      assert.is_nil(got[1].headers["expect"])
      assert.same({ "DELETE", "/d", "" }, { got[2].method, got[2].path, got[2].body })
      assert.is_nil(got[2].headers["content-length"])
      assert.same({ "GET", "/g", "application/json" },
        { got[3].method, got[3].path, got[3].headers["accept"] })
    end)

    it("sends a large body without Expect: 100-continue", function()
      -- libcurl 7.88 adds "Expect: 100-continue" to bodies over 1 MiB unless told not to
      local big = string.rep("0123456789abcdef", 100000)    -- 1.6 MB
      srv = loopback.start{ routes = { ["POST /"] = { { body = "{}" } } } }
      local status = fetch(http, "POST", srv.url .. "/", HEADERS, big):result()
      assert.equal(200, status)
      local got = srv:requests()
      assert.equal(1, #got)
      assert.is_nil(got[1].headers["expect"])
      assert.equal(#big, #got[1].body)
      assert.equal(big, got[1].body)
    end)

    it("keeps only the final response's headers after a 1xx", function()
      local raw = raw_server("HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\nX-Which: early\r\n\r\n"
        .. "HTTP/1.1 200 OK\r\nX-Which:  final \r\nContent-Length: 2\r\n\r\nok")
      local req = fetch_raw(http, raw)
      raw.close()
      local status, headers, body = req:result()
      assert.equal(200, status)
      assert.equal("ok", body)
      assert.equal("final", headers["x-which"])
      assert.equal("final", req:header("X-Which"))
      assert.is_nil(headers["link"])
    end)

    it("gives the headers it is asked for, the first of a repeated name, and every one without a list", function()
      local response = "HTTP/1.1 200 OK\r\nX-Amzn-RequestId: R1\r\nx-amzn-requestid: R2\r\n"
        .. "Date:\tSun, 22 Nov 2026 03:00:00 GMT \r\nX-Folded: one\r\n  two\r\nX-Ctl: a\1b\r\n"
        .. "X-Other: o\r\nContent-Length: 2\r\n\r\nok"
      local raw = raw_server(response)
      local req = fetch_raw(http, raw)
      raw.close()
      local status, headers, body = req:result({ "x-amzn-requestid", "date", "x-folded", "x-ctl",
        "age" })
      assert.equal(200, status)
      assert.equal("ok", body)
      assert.same({ ["x-amzn-requestid"] = "R1", date = "Sun, 22 Nov 2026 03:00:00 GMT",
        ["x-folded"] = "one two", ["x-ctl"] = "a b" }, headers)
      assert.equal("o", req:header("X-Other"))           -- the rest is still there
      local _, all = req:result()
      assert.same({ ["x-amzn-requestid"] = "R1", date = "Sun, 22 Nov 2026 03:00:00 GMT",
        ["x-folded"] = "one two", ["x-ctl"] = "a b", ["x-other"] = "o", ["content-length"] = "2" },
        all)
      assert.has_error(function() req:result("date") end)
      assert.has_error(function() req:result({ "date", 1 }) end, "bad argument #1 to 'result' (header names must be strings)")
    end)

    it("handles the loopback server's 100 Continue before the final response", function()
      srv = loopback.start{ routes = { ["POST /"] = {
        { action = "continue", body = "done", headers = { ["X-Final"] = "yes" } },
      } } }
      local status, headers, body = fetch(http, "POST", srv.url .. "/", HEADERS, "{}"):result()
      assert.equal(200, status)
      assert.equal("done", body)
      assert.equal("yes", headers["x-final"])
    end)

    it("sends a core body (lunamodb.body) as the bytes of its text, through perform and submit", function()
      srv = loopback.start{ routes = { ["POST /"] = { { body = "{}" }, { body = "{}" } } } }
      local b = core.batch_builder()
      assert.is_true(b:add("t", '{"DeleteRequest":{"Key":{"k":{"S":"x y"}}}}', '{"k":{"S":"x y"}}',
        {}, "delete"))
      local text, body = b:bodies()[1], b:bodies(true)[1]
      assert.equal(200, (http:perform("POST", srv.url .. "/", HEADERS, body)))
      assert.equal(200, (fetch(http, "POST", srv.url .. "/", HEADERS, body):result()))
      local got = srv:requests()
      assert.equal(2, #got)
      for _, r in ipairs(got) do
        assert.equal(text, r.body)
        assert.equal(tostring(#text), r.headers["content-length"])
      end
      -- the request holds its own copy: the body can go as soon as it is submitted
      body:release()
      local ok, err = pcall(http.perform, http, "POST", srv.url .. "/", HEADERS, body)
      assert.is_false(ok)
      assert.matches("a released lunamodb.body", err, 1, true)
    end)

    it("perform submits, waits and reads in one call, as submit, poll and result do", function()
      srv = loopback.start{ routes = { ["POST /"] = {
        { status = 200, body = '{"a":1}', crc32 = true, headers = { ["X-Other"] = "o" } },
      } } }
      local status, headers, body = http:perform("POST", srv.url .. "/", HEADERS, '{"q":1}',
        { response_headers = { "x-amz-crc32", "x-other" } })
      assert.equal(200, status)
      assert.equal('{"a":1}', body)
      assert.same({ ["x-amz-crc32"] = tostring(core.crc32('{"a":1}')), ["x-other"] = "o" }, headers)
      local _, all = http:perform("POST", srv.url .. "/", HEADERS, "{}")   -- no list: all
      assert.equal("application/x-amz-json-1.0", all["content-type"])
      assert.equal("o", all["x-other"])
      local got = srv:requests()
      assert.equal(2, #got)
      assert.equal('{"q":1}', got[1].body)
      assert.equal(got[1].connection, got[2].connection)   -- kept alive, as any request
      assert.equal(0, http:poll(0))                        -- nothing left in flight
    end)

    it("perform reports what it cannot send as result and submit do", function()
      srv = loopback.start{ routes = {} }
      local port = srv.port
      local ok, net, msg = http:perform("POST", srv.url .. "/", { "Authorization AWS4 SECRETCANARY" }, "{}")
      assert.is_nil(ok)
      assert.equal("other", net)
      assert.matches("header 1", msg)
      assert.is_nil(msg:find("SECRETCANARY", 1, true))
      srv:stop(); srv = nil
      ok, net, msg = http:perform("POST", "http://127.0.0.1:" .. port .. "/", HEADERS, "{}")
      assert.is_nil(ok)
      assert.equal("not_sent", net)
      assert.equal("connect to 127.0.0.1:" .. port .. " failed: Connection refused", msg)
    end)

    it("rejects a header line that is not 'Name: value' without echoing it", function()
      srv = loopback.start{ routes = {} }
      local req, err = http:submit("POST", srv.url .. "/", { "Authorization AWS4 SECRETCANARY" }, "{}")
      assert.is_nil(req)
      assert.matches("header 1", err)
      assert.is_nil(err:find("SECRETCANARY", 1, true))
      assert.equal(0, srv:count())
    end)
  end)

  describe("connections", function()
    it("reuses one keep-alive connection across sequential requests", function()
      srv = loopback.start{ routes = { ["POST /"] = { { body = "{}" } } } }
      for _ = 1, 3 do
        local req = fetch(http, "POST", srv.url .. "/", HEADERS, "{}")
        assert.equal(200, (req:result()))
        req:release()
      end
      local got = srv:requests()
      assert.equal(3, #got)
      assert.equal(got[1].connection, got[2].connection)
      assert.equal(got[1].connection, got[3].connection)
    end)

    it("a pooled handle set up for one request is set up again for another kind", function()
      srv = loopback.start{ routes = { ["*"] = { { body = "{}" } } } }
      -- each differs from the one before in one thing: method, URL, options or body
      local sent = {
        { "POST", "/a", "{}" }, { "PUT", "/a", "x" }, { "PUT", "/c", "x" }, { "GET", "/c" },
        { "DELETE", "/c" }, { "HEAD", "/c" }, { "POST", "/c", "{}" },
        { "POST", "/c", "{}", { forbid_reuse = true } }, { "POST", "/c", "{}" },
        { "POST", "/c", "{}", { total_timeout_ms = 4000 } }, { "POST", "/c", "" },
      }
      for _, r in ipairs(sent) do
        local req = fetch(http, r[1], srv.url .. r[2], HEADERS, r[3], r[4])
        assert.equal(200, (req:result()))
        req:release()
      end
      local got = srv:requests()
      assert.equal(#sent, #got)
      for i, r in ipairs(sent) do
        assert.equal(r[1], got[i].method, "request " .. i)
        assert.equal(r[2], got[i].path, "request " .. i)
        assert.equal(r[3] or "", got[i].body or "", "request " .. i)
      end
    end)

    it("opens a new connection per request with forbid_reuse", function()
      srv = loopback.start{ routes = { ["POST /"] = { { body = "{}" } } } }
      for _ = 1, 2 do
        assert.equal(200, (fetch(http, "POST", srv.url .. "/", HEADERS, "{}",
          { forbid_reuse = true }):result()))
      end
      local got = srv:requests()
      assert.equal(2, #got)
      assert.not_equal(got[1].connection, got[2].connection)
    end)

    it("drives several concurrent requests from one poll loop", function()
      srv = loopback.start{ routes = { ["POST /"] = {
        { body = "r1", delay_ms = 400 }, { body = "r2", delay_ms = 400 }, { body = "r3", delay_ms = 400 },
        { body = "r4", delay_ms = 400 }, { body = "r5", delay_ms = 400 },
      } } }
      local reqs = {}
      for i = 1, 5 do reqs[i] = assert(http:submit("POST", srv.url .. "/", HEADERS, "{}")) end
      local t0 = core.monotonic_ms()
      local running = 5
      while running > 0 do
        assert(core.monotonic_ms() - t0 < 5000, "the requests did not finish in time")
        running = http:poll(50)
      end
      local elapsed = core.monotonic_ms() - t0
      assert.is_true(elapsed < 1500, "took " .. elapsed .. " ms: the requests ran one by one")
      assert.equal(-1, http:timeout())                   -- nothing left to drive
      local bodies = {}
      for i = 1, 5 do
        assert.is_true(reqs[i]:done())
        local status, _, body = reqs[i]:result()
        assert.equal(200, status)
        bodies[#bodies + 1] = body
      end
      table.sort(bodies)
      assert.same({ "r1", "r2", "r3", "r4", "r5" }, bodies)   -- each got its own response
      local conns = {}
      for _, r in ipairs(srv:requests()) do conns[r.connection] = true end
      local n = 0
      for _ in pairs(conns) do n = n + 1 end
      assert.equal(5, n)
    end)

    -- reliability.md section 2: libcurl silently re-sends a request when a *reused*
    -- connection dies before any response byte. This pins that behaviour down, and shows
    -- that forbid_reuse (a fresh connection) avoids the second copy.
    it("re-sends once on a dead reused connection (libcurl's hidden retry), not with forbid_reuse", function()
      srv = loopback.start{ routes = { ["POST /"] = { { body = "{}" }, { action = "close" } } } }
      assert.equal(200, (fetch(http, "POST", srv.url .. "/", HEADERS, "{}"):result()))
      local ok, net = fetch(http, "POST", srv.url .. "/", HEADERS, '{"n":2}'):result()
      assert.is_nil(ok)
      assert.equal("ambiguous", net)
      local got = srv:requests()
      assert.equal(3, #got)                              -- the second request arrived twice
      assert.equal('{"n":2}', got[3].body)
      assert.not_equal(got[2].connection, got[3].connection)
      srv:stop()

      srv = loopback.start{ routes = { ["POST /"] = { { body = "{}" }, { action = "close" } } } }
      assert.equal(200, (fetch(http, "POST", srv.url .. "/", HEADERS, "{}",
        { forbid_reuse = true }):result()))
      ok, net = fetch(http, "POST", srv.url .. "/", HEADERS, '{"n":2}',
        { forbid_reuse = true }):result()
      assert.is_nil(ok)
      assert.equal("ambiguous", net)
      assert.equal(2, srv:count())
    end)
  end)

  describe("proxies from the environment", function()
    -- The core reads the proxy variables itself, once per handle set-up, the way libcurl
    -- would on every request. Each case runs a child interpreter with its own environment
    -- against two servers: `proxy` and `direct`; a proxied request names its whole URL.
    local proxy, direct
    after_each(function()
      if proxy then proxy:stop(); proxy = nil end
      if direct then direct:stop(); direct = nil end
    end)

    local function q(v) return "'" .. tostring(v):gsub("'", "'\\''") .. "'" end
    local function request_with_env(env, url)
      local child = [[
        local core = require "lunamodb.core"
        local http = core.http()
        for _ = 1, 2 do   -- the second request reuses the handle set up by the first
          local status, _, body = http:perform("POST", os.getenv("REQUEST_URL"), { "Content-Type: text/plain" }, "{}",
            { connect_timeout_ms = 2000, total_timeout_ms = 5000 })
          io.write(tostring(status), " ", tostring(body), "\n")
        end
      ]]
      local vars = {}
      for _, name in ipairs({ "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                              "ALL_PROXY", "no_proxy", "NO_PROXY" }) do
        vars[#vars + 1] = name .. "=" .. q(env[name] or "")
      end
      local cmd = "env " .. table.concat(vars, " ") .. " REQUEST_URL=" .. q(url) .. " LUA_PATH=" .. q(package.path)
        .. " LUA_CPATH=" .. q(package.cpath) .. " " .. (jit and "luajit" or "lua5.4")
        .. " -e " .. q(child) .. " 2>&1"
      local p = assert(io.popen(cmd))
      local out = p:read("*a")
      p:close()
      return out
    end

    local function servers()
      proxy = loopback.start{ routes = { ["*"] = { { body = "via proxy" } } } }
      direct = loopback.start{ routes = { ["*"] = { { body = "direct" } } } }
    end

    it("goes through http_proxy, and all_proxy when http_proxy is unset or empty", function()
      servers()
      assert.equal("200 via proxy\n200 via proxy\n",
        request_with_env({ http_proxy = proxy.url }, direct.url .. "/a"))
      assert.equal("200 via proxy\n200 via proxy\n",
        request_with_env({ http_proxy = "", all_proxy = proxy.url }, direct.url .. "/b"))
      assert.equal("200 via proxy\n200 via proxy\n",
        request_with_env({ ALL_PROXY = proxy.url }, direct.url .. "/c"))
      local got = proxy:requests()
      assert.equal(6, #got)
      assert.equal(direct.url .. "/a", got[1].target)
      assert.equal(direct.url .. "/c", got[6].target)
      assert.equal(0, direct:count())
    end)

    it("tunnels https through https_proxy or HTTPS_PROXY, and all_proxy without them", function()
      servers()
      -- the proxy answers CONNECT with 200 and then no TLS: each request fails after asking it
      local url = "https://127.0.0.1:" .. direct.port .. "/a"
      for _, env in ipairs({ { https_proxy = proxy.url }, { HTTPS_PROXY = proxy.url },
                             { all_proxy = proxy.url } }) do
        assert.matches("^nil ", request_with_env(env, url))
      end
      local got = proxy:requests()
      assert.is_true(#got >= 3)
      for _, r in ipairs(got) do
        assert.equal("CONNECT", r.method)
        assert.equal("127.0.0.1:" .. direct.port, r.target)
      end
      assert.equal(0, direct:count())
    end)

    it("never takes HTTP_PROXY for plain http (httpoxy), and honours no_proxy and NO_PROXY", function()
      servers()
      assert.equal("200 direct\n200 direct\n",
        request_with_env({ HTTP_PROXY = proxy.url }, direct.url .. "/a"))
      assert.equal("200 direct\n200 direct\n",
        request_with_env({ http_proxy = proxy.url, no_proxy = "127.0.0.1" }, direct.url .. "/b"))
      assert.equal("200 direct\n200 direct\n",
        request_with_env({ all_proxy = proxy.url, NO_PROXY = "localhost,127.0.0.1" }, direct.url .. "/c"))
      assert.equal("200 direct\n200 direct\n", request_with_env({}, direct.url .. "/d"))
      assert.equal(0, proxy:count())
      local got = direct:requests()
      assert.equal(8, #got)
      assert.equal("/a", got[1].target)
    end)
  end)

  describe("failures", function()
    it("reports a refused connection as not_sent", function()
      srv = loopback.start{ routes = {} }
      local port = srv.port
      srv:stop(); srv = nil
      local ok, net, msg = fetch(http, "POST", "http://127.0.0.1:" .. port .. "/", HEADERS, "{}"):result()
      assert.is_nil(ok)
      assert.equal("not_sent", net)
      assert.equal("connect to 127.0.0.1:" .. port .. " failed: Connection refused", msg)
    end)

    it("times out a hang past total_timeout_ms", function()
      srv = loopback.start{ routes = { ["POST /"] = { { action = "hang" } } } }
      local req, elapsed = fetch(http, "POST", srv.url .. "/", HEADERS, "{}", { total_timeout_ms = 300 })
      local ok, net, msg = req:result()
      assert.is_nil(ok)
      assert.equal("timeout", net)
      assert.matches("timed out", msg)
      assert.is_true(elapsed >= 250 and elapsed < 2000, "took " .. elapsed .. " ms")
      assert.equal(1, srv:count())
    end)

    it("times out a hang past read_timeout_ms", function()
      srv = loopback.start{ routes = { ["POST /"] = { { action = "hang" } } } }
      local req, elapsed = fetch(http, "POST", srv.url .. "/", HEADERS, "{}",
        { read_timeout_ms = 1000 }, 10000)
      local ok, net, msg = req:result()
      assert.is_nil(ok)
      assert.equal("timeout", net)
      assert.matches("read timeout", msg)
      -- libcurl's speed check averages over a window of seconds, so it fires late
      assert.is_true(elapsed >= 1000 and elapsed < 1500, "took " .. elapsed .. " ms")
    end)

    it("does not time out a slow but steady response on read_timeout_ms", function()
      srv = loopback.start{ routes = { ["POST /"] = {
        { action = "slow", interval_ms = 300, body = "abcdefgh" },
      } } }
      local req, elapsed = fetch(http, "POST", srv.url .. "/", HEADERS, "{}",
        { read_timeout_ms = 1000 }, 10000)
      local status, _, body = req:result()
      assert.equal(200, status)
      assert.equal("abcdefgh", body)
      assert.is_true(elapsed > 1500, "took " .. elapsed .. " ms")   -- longer than the read timeout
    end)

    it("reports a reset after the request as ambiguous", function()
      srv = loopback.start{ routes = { ["POST /"] = { { action = "reset" } } } }
      local ok, net, msg = fetch(http, "POST", srv.url .. "/", HEADERS, "{}"):result()
      assert.is_nil(ok)
      assert.equal("ambiguous", net)
      assert.is_true(#msg > 0)
      assert.equal(1, srv:count())                       -- fresh connection: no hidden retry
    end)

    it("reports a truncated body as ambiguous", function()
      srv = loopback.start{ routes = { ["POST /"] = { { action = "truncate", body = "0123456789" } } } }
      local ok, net = fetch(http, "POST", srv.url .. "/", HEADERS, "{}"):result()
      assert.is_nil(ok)
      assert.equal("ambiguous", net)
    end)

    it("stops a body over max_response_bytes, with Content-Length and chunked", function()
      local big = string.rep("x", 100)
      srv = loopback.start{ routes = {
        ["POST /cl"] = { { body = big } },
        ["POST /chunked"] = { { body = big, chunked = true } },
      } }
      for _, path in ipairs { "/cl", "/chunked" } do
        local ok, net, msg = fetch(http, "POST", srv.url .. path, HEADERS, "{}",
          { max_response_bytes = 50 }):result()
        assert.is_nil(ok)
        assert.equal("too_large", net)
        assert.matches("over 50 bytes", msg)
      end
      -- at the cap exactly, both pass
      for _, path in ipairs { "/cl", "/chunked" } do
        local status, _, body = fetch(http, "POST", srv.url .. path, HEADERS, "{}",
          { max_response_bytes = 100 }):result()
        assert.equal(200, status)
        assert.equal(big, body)
      end
    end)

    it("stops a header block over 64 KiB", function()
      local lines = {}
      for i = 1, 80 do lines[i] = "X-Filler-" .. i .. ": " .. string.rep("h", 1000) end
      local raw = raw_server("HTTP/1.1 200 OK\r\n" .. table.concat(lines, "\r\n")
        .. "\r\nContent-Length: 2\r\n\r\nok")
      local ok, net, msg = fetch_raw(http, raw):result()
      raw.close()
      assert.is_nil(ok)
      assert.equal("too_large", net)
      assert.matches("headers", msg)
    end)

    it("fails https to a plain-HTTP port cleanly", function()
      srv = loopback.start{ routes = {} }
      local ok, net, msg = fetch(http, "POST", "https://127.0.0.1:" .. srv.port .. "/", HEADERS, "{}",
        { connect_timeout_ms = 1000 }):result()
      assert.is_nil(ok)
      assert.equal("not_sent", net)
      assert.is_true(#msg > 0)
      assert.equal(0, srv:count())
    end)

    it("fails cleanly when ca_bundle names a missing file", function()
      srv = loopback.start{ routes = {} }
      local ok, net, msg = fetch(http, "POST", "https://127.0.0.1:" .. srv.port .. "/", HEADERS, "{}",
        { ca_bundle = "/nonexistent/lunamodb-ca.pem", connect_timeout_ms = 1000 }):result()
      assert.is_nil(ok)
      assert.equal("not_sent", net)
      assert.matches("certificate", msg)
      assert.equal(0, srv:count())
    end)

    it("never puts header values in messages", function()
      srv = loopback.start{ routes = { ["POST /"] = { { action = "reset" } } } }
      local _, _, msg = fetch(http, "POST", srv.url .. "/", HEADERS, "{}"):result()
      assert.is_nil(msg:find("CANARYSIGNATURE", 1, true))
      assert.is_nil(msg:find("AKIDTEST", 1, true))
    end)
  end)

  describe("lifetime", function()
    it("ends a request in flight with 'closed' on close()", function()
      srv = loopback.start{ routes = { ["POST /done"] = { { body = "kept" } }, ["POST /hang"] = { { action = "hang" } } } }
      local finished = fetch(http, "POST", srv.url .. "/done", HEADERS, "{}")
      local req = assert(http:submit("POST", srv.url .. "/hang", HEADERS, "{}"))
      local t0 = core.monotonic_ms()
      while srv:count() < 2 do
        assert(core.monotonic_ms() - t0 < 5000, "the request never reached the server")
        http:poll(20)
      end
      assert.is_false(req:done())
      http:close()
      assert.is_true(req:done())
      local ok, net, msg = req:result()
      assert.is_nil(ok)
      assert.equal("closed", net)
      assert.is_true(#msg > 0)
      local status, _, body = finished:result()   -- finished requests keep their result
      assert.equal(200, status)
      assert.equal("kept", body)
      assert.has_error(function() http:poll(0) end)
      req:release()
      finished:release()
      http = nil
    end)

    it("releases an unfinished request and keeps the transport usable", function()
      srv = loopback.start{ routes = { ["POST /hang"] = { { action = "hang" } }, ["POST /ok"] = { { body = "fine" } } } }
      local req = assert(http:submit("POST", srv.url .. "/hang", HEADERS, "{}"))
      local t0 = core.monotonic_ms()
      while srv:count() < 1 do
        assert(core.monotonic_ms() - t0 < 5000, "the request never reached the server")
        http:poll(20)
      end
      assert.is_false(req:done())
      assert.equal(1, http:poll(0))
      req:release()
      assert.equal(0, http:poll(0))
      assert.equal(-1, http:timeout())
      assert.has_error(function() req:done() end)
      local status, _, body = fetch(http, "POST", srv.url .. "/ok", HEADERS, "{}"):result()
      assert.equal(200, status)
      assert.equal("fine", body)
    end)

    it("raises on result() before the request is done", function()
      srv = loopback.start{ routes = { ["POST /"] = { { body = "{}", delay_ms = 200 } } } }
      local req = assert(http:submit("POST", srv.url .. "/", HEADERS, "{}"))
      assert.is_false(req:done())
      assert.has_error(function() req:result() end)
      wait(http, req)
      assert.equal(200, (req:result()))
    end)
  end)
end)
