-- Tests of the loopback test server (spec/helpers/loopback.lua) itself, with luasocket as the
-- client. Runs under Lua 5.4 and LuaJIT.
local socket = require "socket"
local loopback = require "spec.helpers.loopback"

-- CRC32 (IEEE), independent of the server's implementation -------------------------------
local bxor, band, rshift
local has_bit, bit = pcall(require, "bit")
if has_bit then
  bxor = function(a, b) return bit.bxor(a, b) % 4294967296 end
  band = function(a, b) return bit.band(a, b) % 4294967296 end
  rshift = function(a, n) return bit.rshift(a, n) % 4294967296 end
elseif _VERSION ~= "Lua 5.1" then
  bxor = load "return function(a, b) return a ~ b end" ()
  band = load "return function(a, b) return a & b end" ()
  rshift = load "return function(a, n) return a >> n end" ()
else -- plain Lua 5.1 without bitop: arithmetic
  bxor = function(a, b)
    local r, p = 0, 1
    for _ = 1, 32 do
      if a % 2 ~= b % 2 then r = r + p end
      a, b, p = math.floor(a / 2), math.floor(b / 2), p * 2
    end
    return r
  end
  band = function(a, b)
    local r, p = 0, 1
    for _ = 1, 32 do
      if a % 2 == 1 and b % 2 == 1 then r = r + p end
      a, b, p = math.floor(a / 2), math.floor(b / 2), p * 2
    end
    return r
  end
  rshift = function(a, n) return math.floor(a / 2 ^ n) end
end

local CRC_TABLE = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if band(c, 1) == 1 then c = bxor(0xEDB88320, rshift(c, 1)) else c = rshift(c, 1) end
  end
  CRC_TABLE[i] = c
end

local function crc32(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do
    c = bxor(CRC_TABLE[band(bxor(c, s:byte(i)), 0xFF)], rshift(c, 8))
  end
  return bxor(c, 0xFFFFFFFF)
end

-- a tiny HTTP/1.1 client -----------------------------------------------------------------
local function connect(srv)
  local c = assert(socket.tcp())
  c:settimeout(5)
  assert(c:connect(srv.host, srv.port))
  return c
end

local function send_request(c, method, target, headers, body)
  body = body or ""
  local lines = { method .. " " .. target .. " HTTP/1.1", "Host: 127.0.0.1" }
  local has_te = false
  for k, v in pairs(headers or {}) do
    lines[#lines + 1] = k .. ": " .. v
    if k:lower() == "transfer-encoding" then has_te = true end
  end
  if not has_te then lines[#lines + 1] = "Content-Length: " .. #body end
  assert(c:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. body))
end

-- Returns { status, headers, body, interim = { statuses of 1xx } } or nil, err.
local function read_response(c)
  local interim = {}
  while true do
    local line, err = c:receive("*l")
    if not line then return nil, err end
    local status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)"))
    assert(status, "bad status line: " .. line)
    local headers = {}
    while true do
      local h, herr = c:receive("*l")
      if not h then return nil, herr end
      if h == "" then break end
      local name, value = h:match("^([^:]+):%s*(.*)$")
      headers[name:lower()] = value
    end
    if status >= 100 and status < 200 then
      interim[#interim + 1] = status
    else
      local body
      if (headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
        local parts = {}
        while true do
          local sz, serr = c:receive("*l")
          if not sz then return nil, serr end
          local n = tonumber(sz, 16)
          if n == 0 then
            assert(c:receive("*l") == "")
            break
          end
          local chunk, cerr = c:receive(n)
          if not chunk then return nil, cerr end
          parts[#parts + 1] = chunk
          assert(c:receive("*l") == "")
        end
        body = table.concat(parts)
      elseif tonumber(headers["content-length"] or 0) > 0 then
        local berr, partial
        body, berr, partial = c:receive(tonumber(headers["content-length"]))
        if not body then return nil, berr, partial, headers end
      else
        body = ""
      end
      return { status = status, headers = headers, body = body, interim = interim }
    end
  end
end

local function request(srv, method, target, headers, body)
  local c = connect(srv)
  send_request(c, method, target, headers, body)
  local r, err = read_response(c)
  c:close()
  return r, err
end

local function now_ms() return socket.gettime() * 1000 end

-- The pending socket error once c is readable: luasocket reports ECONNRESET as "closed"
-- here, and nil after a clean FIN (a plain receive says "closed" for both).
local function socket_error(c)
  socket.select({ c }, nil, 2)
  local ok, err = pcall(c.getoption, c, "error")
  assert(ok, "this luasocket has no getoption('error')")
  return err
end

describe("spec.helpers.loopback", function()
  local srv
  after_each(function()
    if srv then srv:stop() end
    srv = nil
  end)

  it("takes responses from a route's queue in order and repeats the last one", function()
    srv = loopback.start{ routes = { ["POST /"] = {
      { status = 500, body = '{"n":1}' },
      { status = 400, body = '{"n":2}' },
      { status = 200, body = '{"n":3}' },
    } } }
    local got = {}
    for i = 1, 5 do
      local r = assert(request(srv, "POST", "/", nil, "{}"))
      got[i] = r.status .. " " .. r.body
    end
    assert.same({ '500 {"n":1}', '400 {"n":2}', '200 {"n":3}', '200 {"n":3}', '200 {"n":3}' }, got)
    assert.equal(5, srv:count())
  end)

  it("matches METHOD and path exactly (ignoring the query), then '*', else 404", function()
    srv = loopback.start{ routes = {
      ["GET /a"] = { { body = "a" } },
      ["*"] = { { status = 418, body = "fallback" } },
    } }
    assert.equal("a", assert(request(srv, "GET", "/a?x=1&y=2")).body)
    local r = assert(request(srv, "POST", "/a"))
    assert.same({ 418, "fallback" }, { r.status, r.body })
    assert.equal(418, assert(request(srv, "GET", "/a/b")).status)
    srv:stop()

    srv = loopback.start{ routes = { ["GET /only"] = { {} } } }
    r = assert(request(srv, "GET", "/other"))
    assert.equal(404, r.status)
    assert.truthy(r.body:find("NoRoute", 1, true))
  end)

  it("accepts a single response table and an empty list as a route", function()
    srv = loopback.start{ routes = { ["GET /one"] = { status = 201, body = "x" }, ["GET /empty"] = {} } }
    local r = assert(request(srv, "GET", "/one"))
    assert.same({ 201, "x" }, { r.status, r.body })
    r = assert(request(srv, "GET", "/empty"))
    assert.same({ 200, "{}" }, { r.status, r.body })
  end)

  it("sends default headers, lets the script override or remove them", function()
    srv = loopback.start{ routes = {
      ["GET /d"] = { {} },
      ["GET /o"] = { { headers = { ["content-type"] = "text/plain", Date = false,
                                   ["X-Extra"] = "1", ["Retry-After"] = 3 } } },
    } }
    local r1 = assert(request(srv, "GET", "/d"))
    local r2 = assert(request(srv, "GET", "/d"))
    assert.equal(200, r1.status)
    assert.equal("application/x-amz-json-1.0", r1.headers["content-type"])
    assert.truthy(r1.headers["date"]:match("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$"))
    assert.truthy(r1.headers["x-amzn-requestid"])
    assert.not_equal(r1.headers["x-amzn-requestid"], r2.headers["x-amzn-requestid"])
    assert.equal("2", r1.headers["content-length"])
    assert.is_nil(r1.headers["x-amz-crc32"])

    local r = assert(request(srv, "GET", "/o"))
    assert.equal("text/plain", r.headers["content-type"])
    assert.is_nil(r.headers["date"])
    assert.equal("1", r.headers["x-extra"])
    assert.equal("3", r.headers["retry-after"])
    assert.truthy(r.headers["x-amzn-requestid"])
  end)

  it("logs every request with its fields", function()
    srv = loopback.start{ routes = { ["*"] = { {} } } }
    local t0 = now_ms()
    assert(request(srv, "POST", "/path/x?Action=List&b=2",
      { ["X-Amz-Target"] = "DynamoDB_20120810.GetItem", ["Content-Type"] = "application/x-amz-json-1.0" },
      '{"TableName":"t"}'))
    local c = connect(srv)
    send_request(c, "PUT", "/chunked", { ["Transfer-Encoding"] = "chunked" },
      "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n")
    assert(read_response(c))
    c:close()
    local t1 = now_ms()

    local reqs = srv:requests()
    assert.equal(2, #reqs)
    local r = reqs[1]
    assert.equal("POST", r.method)
    assert.equal("/path/x", r.path)
    assert.equal("Action=List&b=2", r.query)
    assert.equal('{"TableName":"t"}', r.body)
    assert.equal("DynamoDB_20120810.GetItem", r.headers["x-amz-target"])
    assert.equal("application/x-amz-json-1.0", r.headers["content-type"])
    assert.equal("17", r.headers["content-length"])
    assert.equal("127.0.0.1", r.headers["host"])
    assert.equal(1, r.connection)
    assert.is_true(r.t_ms >= math.floor(t0) and r.t_ms <= t1 + 1)
    assert.equal(r.t_ms, math.floor(r.t_ms))

    r = reqs[2]
    assert.equal("PUT", r.method)
    assert.equal("/chunked", r.path)
    assert.equal("", r.query)
    assert.equal("hello, world", r.body)
    assert.equal(2, r.connection)
    assert.is_true(r.t_ms >= reqs[1].t_ms)
  end)

  it("numbers TCP connections and keeps them alive", function()
    srv = loopback.start{ routes = { ["*"] = { {} } } }
    local c1 = connect(srv)
    for _ = 1, 3 do
      send_request(c1, "GET", "/k")
      assert.equal(200, assert(read_response(c1)).status)
    end
    local c2 = connect(srv)
    send_request(c2, "GET", "/k")
    assert(read_response(c2))
    send_request(c1, "GET", "/k")
    assert(read_response(c1))
    -- Connection: close is honoured
    send_request(c2, "GET", "/k", { Connection = "close" })
    assert(read_response(c2))
    local line, err = c2:receive("*l")
    assert.is_nil(line)
    assert.equal("closed", err)
    c1:close()
    c2:close()
    local conns = {}
    for i, r in ipairs(srv:requests()) do conns[i] = r.connection end
    assert.same({ 1, 1, 1, 2, 1, 2 }, conns)
  end)

  it("delays a response without blocking other connections", function()
    srv = loopback.start{ routes = {
      ["GET /slow"] = { { delay_ms = 600, body = "late" } },
      ["GET /fast"] = { { body = "early" } },
    } }
    local t0 = socket.gettime()
    local c1 = connect(srv)
    send_request(c1, "GET", "/slow")
    socket.sleep(0.05)
    local r = assert(request(srv, "GET", "/fast"))
    local t_fast = socket.gettime() - t0
    assert.equal("early", r.body)
    assert.is_true(t_fast < 0.5, "fast request took " .. t_fast)
    r = assert(read_response(c1))
    local t_slow = socket.gettime() - t0
    c1:close()
    assert.equal("late", r.body)
    assert.is_true(t_slow >= 0.58, "delayed request took " .. t_slow)
  end)

  it("adds a correct x-amz-crc32, or the value given", function()
    assert.equal(2745614147, crc32("{}"))           -- DynamoDB Local's x-amz-crc32 of {}
    assert.equal(0xCBF43926, crc32("123456789"))    -- the standard check value
    local body = '{"Item":{"id":{"S":"x"},"n":{"N":"42"}},"ConsumedCapacity":{"TableName":"t"}}'
    srv = loopback.start{ routes = {
      ["POST /"] = { { body = body, crc32 = true }, { body = body, crc32 = 123 },
                     { body = "", crc32 = true } },
    } }
    local r = assert(request(srv, "POST", "/"))
    assert.equal(body, r.body)
    assert.equal(string.format("%.0f", crc32(body)), r.headers["x-amz-crc32"])
    r = assert(request(srv, "POST", "/"))
    assert.equal("123", r.headers["x-amz-crc32"])
    r = assert(request(srv, "POST", "/"))
    assert.equal("0", r.headers["x-amz-crc32"])
  end)

  it("sends chunked bodies", function()
    local body = string.rep("0123456789", 10)
    srv = loopback.start{ routes = { ["*"] = { { chunked = true, body = body, chunk_size = 7, crc32 = true } } } }
    local c = connect(srv)
    send_request(c, "GET", "/")
    local r = assert(read_response(c))
    assert.equal("chunked", r.headers["transfer-encoding"])
    assert.is_nil(r.headers["content-length"])
    assert.equal(body, r.body)
    assert.equal(string.format("%.0f", crc32(body)), r.headers["x-amz-crc32"])
    -- the connection stays usable
    send_request(c, "GET", "/")
    assert.equal(body, assert(read_response(c)).body)
    c:close()
  end)

  it("resets the connection after reading the request (action = reset)", function()
    srv = loopback.start{ routes = { ["POST /"] = { { action = "reset" }, { body = "ok" } } } }
    local c = connect(srv)
    send_request(c, "POST", "/", nil, "{}")
    assert.equal("closed", socket_error(c))      -- ECONNRESET
    local r, err = read_response(c)
    c:close()
    assert.is_nil(r)
    assert.equal("closed", err)
    assert.equal(1, srv:count())
    assert.equal("{}", srv:requests()[1].body)
    assert.equal("ok", assert(request(srv, "POST", "/")).body)
  end)

  it("closes cleanly without answering (action = close)", function()
    srv = loopback.start{ routes = { ["*"] = { { action = "close" } } } }
    local c = connect(srv)
    send_request(c, "GET", "/")
    assert.is_nil(socket_error(c))               -- a FIN, no reset
    local r, err = read_response(c)
    c:close()
    assert.is_nil(r)
    assert.equal("closed", err)
    assert.equal(1, srv:count())
  end)

  it("never answers (action = hang) but keeps serving others", function()
    srv = loopback.start{ routes = { ["GET /hang"] = { { action = "hang" } }, ["*"] = { { body = "x" } } } }
    local c = connect(srv)
    send_request(c, "GET", "/hang")
    c:settimeout(0.3)
    local r, err = read_response(c)
    assert.is_nil(r)
    assert.equal("timeout", err)
    assert.equal("x", assert(request(srv, "GET", "/other")).body)
    c:close()
    assert.equal(2, srv:count())
  end)

  it("truncates the body (action = truncate)", function()
    local body = '{"Items":[1,2,3,4,5,6,7,8,9]}'
    srv = loopback.start{ routes = { ["*"] = { { action = "truncate", body = body } } } }
    local c = connect(srv)
    send_request(c, "GET", "/")
    local r, err, partial, headers = read_response(c)
    c:close()
    assert.is_nil(r)
    assert.equal("closed", err)
    assert.equal(tostring(#body), headers["content-length"])
    assert.is_true(#partial < #body)
    assert.equal(body:sub(1, #partial), partial)
  end)

  it("trickles the body (action = slow)", function()
    srv = loopback.start{ routes = { ["*"] = { { action = "slow", body = "abcd", interval_ms = 100 } } } }
    local t0 = socket.gettime()
    local r = assert(request(srv, "GET", "/"))
    local took = socket.gettime() - t0
    assert.equal("abcd", r.body)
    assert.is_true(took >= 0.29, "took " .. took)
  end)

  it("sends 100 Continue first (action = continue), and answers Expect: 100-continue", function()
    srv = loopback.start{ routes = {
      ["POST /c"] = { { action = "continue", body = "done" } },
      ["*"] = { { body = "plain" } },
    } }
    local r = assert(request(srv, "POST", "/c", nil, "{}"))
    assert.same({ 100 }, r.interim)
    assert.equal("done", r.body)

    local c = connect(srv)
    assert(c:send("POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"))
    assert.equal("HTTP/1.1 100 Continue", c:receive("*l"))
    assert.equal("", c:receive("*l"))
    assert(c:send("body"))
    r = assert(read_response(c))
    c:close()
    assert.same({}, r.interim)
    assert.equal("plain", r.body)
    assert.equal("body", srv:requests()[2].body)
  end)

  it("serves many concurrent connections", function()
    srv = loopback.start{ routes = { ["*"] = { { delay_ms = 200 } } } }
    local conns = {}
    for i = 1, 20 do
      conns[i] = connect(srv)
      send_request(conns[i], "GET", "/" .. i)
    end
    local t0 = socket.gettime()
    for i = 1, 20 do
      assert.equal(200, assert(read_response(conns[i])).status)
      conns[i]:close()
    end
    assert.is_true(socket.gettime() - t0 < 1.5)
    assert.equal(20, srv:count())
  end)

  it("stops: the port refuses connections and the temp dir is gone", function()
    srv = loopback.start{}
    local port, dir = srv.port, srv.dir
    assert.equal("http://127.0.0.1:" .. port, srv.url)
    srv:stop()
    srv:stop() -- idempotent
    srv = nil
    local c = socket.tcp()
    c:settimeout(1)
    local ok = c:connect("127.0.0.1", port)
    c:close()
    assert.is_nil(ok)
    assert.is_nil(io.open(dir .. "/script.json"))
  end)
end)
