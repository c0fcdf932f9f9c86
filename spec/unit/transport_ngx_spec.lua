-- lunamodb.transport.ngx outside nginx: it loads without ngx, parses URLs and builds
-- requests the way the curl transport would send them, and falls back to the curl transport
-- (blocking) when there are no cosockets. The cosocket paths themselves run inside a real
-- nginx in spec/integration/openresty_spec.lua.
local ngx_transport = require "lunamodb.transport.ngx"
local core = require "lunamodb.core"
local loopback = require "spec.helpers.loopback"

local parse_url, build_request = ngx_transport._parse_url, ngx_transport._build_request

local function wire(method, url, headers, body, forbid_reuse)
  local u = assert(parse_url(url))
  local parts, err = build_request(method, u, headers or {}, body or "", forbid_reuse)
  if not parts then return nil, err end
  return table.concat(parts)
end

describe("lunamodb.transport.ngx outside nginx", function()
  it("knows it is not inside nginx", function()
    assert.is_false(ngx_transport.in_nginx())
    assert.is_false(ngx_transport.available())
  end)

  it("parses endpoint URLs into what it connects to and the Host it sends", function()
    local u = assert(parse_url("http://127.0.0.1:8000"))
    assert.same({ "127.0.0.1", 8000, "/", "127.0.0.1:8000", false },
      { u.host, u.port, u.target, u.host_header, u.tls })
    assert.is_nil(u.sni)                                -- no SNI for IP literals

    u = assert(parse_url("https://dynamodb.us-east-1.amazonaws.com/"))
    assert.same({ 443, "dynamodb.us-east-1.amazonaws.com", true },
      { u.port, u.host_header, u.tls })
    assert.equal("dynamodb.us-east-1.amazonaws.com", u.sni)
    -- the default port is left out of Host, as libcurl (and the signer) do
    assert.equal("h.example", assert(parse_url("HTTP://h.example:80/x")).host_header)
    assert.equal("h.example:8443", assert(parse_url("https://h.example:8443/x")).host_header)

    u = assert(parse_url("http://[::1]:8000/a/b?c=d#frag"))
    assert.same({ "[::1]", 8000, "/a/b?c=d", "[::1]:8000" },
      { u.host, u.port, u.target, u.host_header })
    assert.equal("/?x=1", assert(parse_url("http://h?x=1")).target)
    assert.equal("/a", assert(parse_url("http://h/a#x?y")).target)   -- a fragment is dropped
    assert.are_not.equal(parse_url("http://h:1/").pool, parse_url("https://h:1/").pool)
    -- the Host the client signs for (core.parse_url of its endpoint), IPv6 compressed as
    -- libcurl sends it
    for _, url in ipairs({ "http://[0:0:0:0:0:0:0:1]:8000/", "https://[2001:DB8::0:1]/",
      "http://h.example:8000/", "https://h.example:443/" }) do
      assert.equal(core.parse_url(url).host_header, assert(parse_url(url)).host_header, url)
    end
    assert.equal("[::1]:8000", parse_url("http://[0:0:0:0:0:0:0:1]:8000/").host_header)
  end)

  it("refuses URLs it cannot send to", function()
    for url, why in pairs {
      [""] = "invalid URL: empty URL",
      ["http://h /"] = "invalid URL: URL contains a space",
      ["h:80/x"] = "URL scheme must be http or https",
      ["ftp://h/"] = "URL scheme must be http or https",
      ["http://user:pw@h/"] = "user information",
      ["http://h:0/"] = "port out of range",
      ["http://h:99999/"] = "port out of range",
      ["http://h:x/"] = "invalid port",
      ["http:///x"] = "empty host",
      ["http://h/a?b\nc"] = "CR, LF or NUL",        -- in the query too
    } do
      local u, err = parse_url(url)
      assert.is_nil(u, url)
      assert.matches(why, err, 1, true)
    end
  end)

  it("writes HTTP/1.1 requests with the curl transport's header conventions", function()
    local text = wire("POST", "http://127.0.0.1:8000", {
      "Content-Type: application/x-amz-json-1.0", "Expect:", "X-Empty;", "X-Pad:  v  ",
      "Content-Length: 99", "Connection: upgrade",
    }, "{}")
    assert.equal("POST / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
      .. "Content-Type: application/x-amz-json-1.0\r\nX-Empty:\r\nX-Pad: v\r\n"
      .. "Content-Length: 2\r\n\r\n{}", text)
    -- a caller's Host wins (the signer's); GET without a body sends no Content-Length
    assert.equal("GET /p HTTP/1.1\r\nHost: other\r\n\r\n",
      wire("GET", "http://h/p", { "Host: other" }))
    assert.equal("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
      wire("PUT", "http://h/", {}, "", true))
  end)

  it("refuses methods and header lines that could inject anything", function()
    for _, case in ipairs {
      { "GE T", {}, "invalid HTTP method" },
      { "GET\r\n", {}, "invalid HTTP method" },
      { "GET", { "Bad Name: x" }, "header 1 is not a valid \"Name: value\" line" },
      { "GET", { "A: ok", "X: a\r\nInjected: 1" }, "header 2 is not a valid" },
      { "GET", { "X: a\0b" }, "header 1 is not a valid" },
      { "GET", { "no colon" }, "header 1 is not a valid" },
      { "GET", { "X;v" }, "header 1 is not a valid" },
      { "GET", { 42 }, "header 1 must be a \"Name: value\" string" },
    } do
      local text, err = wire(case[1], "http://h/", case[2])
      assert.is_nil(text)
      assert.matches(case[3], err, 1, true)
    end
    local text, err = wire("HEAD", "http://h/", {}, "body")
    assert.is_nil(text)
    assert.equal("HEAD request with a body", err)
  end)

  it("raises on misuse, naming the argument", function()
    assert.has_error(function() ngx_transport.new("x") end,
      "lunamodb.transport.ngx.new: opts must be a table (got string)")
    assert.has_error(function() ngx_transport.new { pool = 1 } end,
      "lunamodb.transport.ngx.new: unknown option 'pool'")
    assert.has_error(function() ngx_transport.new { pool_size = 0 } end,
      "lunamodb.transport.ngx.new: option 'pool_size' must be a whole number >= 1 (got 0)")
    local t = ngx_transport.new()
    assert.has_error(function() t:send("GET", nil, {}) end,
      "lunamodb.transport.ngx: send: url must be a string (got nil)")
    assert.has_error(function() t:send("GET", "http://h/", "x") end,
      "lunamodb.transport.ngx: send: headers must be an array of \"Name: value\" strings "
      .. "(got string)")
    assert.has_error(function() t:send("GET", "http://h/", {}, 1) end,
      "lunamodb.transport.ngx: send: body must be a string (got number)")
    t:close()
  end)

  it("falls back to the curl transport when there are no cosockets", function()
    local srv = loopback.start { routes = { ["POST /"] = { headers = { ["X-Thing"] = "v" },
      body = "hello" } } }
    finally(function() srv:stop() end)
    local t = ngx_transport.new { keepalive_timeout_ms = 1000, pool_size = 2 }
    local status, headers, body = t:send("POST", srv.url .. "/", { "A: b" }, "{}",
      { read_timeout_ms = 2000 })
    assert.equal(200, status)
    assert.equal("v", headers["x-thing"])
    assert.equal("hello", body)
    assert.equal("b", srv:requests()[1].headers.a)
    assert.matches("^lunamodb%.transport%.ngx %(0 task request%(s%) in flight%)$", tostring(t))
    t:close()
    assert.same({ nil, "other", "transport closed" }, { t:send("GET", srv.url .. "/", {}) })
    assert.matches("closed%)$", tostring(t))
  end)
end)
