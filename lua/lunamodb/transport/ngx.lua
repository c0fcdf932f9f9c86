-- lunamodb.transport.ngx: the transport for nginx-lua / OpenResty. HTTP/1.1 over cosockets,
-- so a DynamoDB call never blocks the nginx worker: the request's coroutine yields to nginx
-- while it waits, and other requests of the worker go on meanwhile.
--
--   local client = lunamodb.Client.new{ ... }   -- inside nginx this transport is the default
--   -- or explicitly: lunamodb.Client.new{ transport = require("lunamodb.transport.ngx").new{
--   --                 keepalive_timeout_ms = 60000, pool_size = 32 } }
--
-- Same interface as lunamodb.transport.curl (send, sleep, poll, close): the client, the
-- credential providers and the scheduler cannot tell them apart, and transport failures are
-- reported with the same `net` categories (so retries classify identically):
--   not_sent   the request never left: DNS, connect refused or timed out, TLS handshake
--   timeout    timed out after (part of) the request was sent (read, send or total timeout)
--   ambiguous  the connection broke after sending: the server may have applied the request
--   too_large  the response is over max_response_bytes (or its headers over 64 KiB)
--   closed     the transport was closed (or the request released) under the request
--   other      bad URL, method or header line, a response that is not HTTP, ...
-- A reused keep-alive connection that turns out dead before any response byte arrived is
-- retried on another connection (libcurl does the same); a failure after that counts as sent.
--
-- Where the I/O runs:
--   * outside a lunamodb task: in the calling coroutine (the nginx request yields by itself);
--   * inside a lunamodb task (scheduler.spawn, Model:parallel_scan): in an ngx.thread, while
--     the task parks in the scheduler; poll() waits on an ngx.semaphore the threads post, so
--     the tasks of one request overlap their requests instead of taking turns;
--   * in phases without cosockets (init_by_lua, init_worker_by_lua, header/body filters, log,
--     set, balancer): a blocking lunamodb.transport.curl without keep-alive, so setup code
--     works there (it blocks that worker for the call: keep it to setup).
-- The phase is checked on every send, so one client may be created in init_by_lua and used
-- by the request handlers.
--
-- Limits: a cancelled task's request cannot be interrupted (ngx_lua lets no other coroutine
-- kill the light thread or close its socket): it ends in the background, at the latest after
-- its read timeout, and nginx keeps the request open until then. Each nginx request (or timer)
-- has its own lunamodb scheduler, so concurrent requests of a worker may all run tasks.
--
-- nginx configuration this needs:
--   * `resolver 127.0.0.53 valid=30s;` (or your DNS server) to reach a host name; IP
--     literals (http://127.0.0.1:8000, http://[::1]:8000) need none;
--   * for https: `lua_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;` and
--     `lua_ssl_verify_depth 5;`. Certificates are always verified: the chain, and for host
--     names the name too (sent as SNI); for an IP literal only the chain (ngx_lua checks no
--     IP SANs). The client's ca_bundle option cannot apply per connection: the directive
--     decides which CAs are trusted;
--   * keep-alive goes through the cosocket pool of the worker, one pool per
--     scheme://host:port (`pool_size` idle connections kept, for `keepalive_timeout_ms`).
--
-- M.available() -> true when the running code may use cosockets now (inside nginx, in a
--     phase that has them); M.in_nginx() -> true when running inside nginx at all.

local core = require "lunamodb.core"
local scheduler = require "lunamodb.scheduler"

local setmetatable, getmetatable, type, tostring, tonumber, pcall, error, pairs, next =
  setmetatable, getmetatable, type, tostring, tonumber, pcall, error, pairs, next
local find, lower, match, gmatch, format =
  string.find, string.lower, string.match, string.gmatch, string.format
local concat = table.concat
-- ngx_lua's coroutine functions (it replaces the globals before any Lua code runs)
local co_create, co_resume = coroutine.create, coroutine.resume
local floor = math.floor
local monotonic_ms = core.monotonic_ms
local wait_request, sched_sleep, current, context = scheduler.wait_request, scheduler.sleep,
  scheduler.current, scheduler.context
local ngx = ngx                                   -- luacheck: ignore (OpenResty's; nil elsewhere)

local M = {}

M.MAX_HEADER_BYTES = 65536                        -- all header blocks of one response (as curl)
M.DEFAULT_MAX_BODY = 64 * 1024 * 1024             -- when max_response_bytes is not given
local DEFAULT_CONNECT_MS = 60000                  -- when the caller gives no timeout (ngx's own)
local DEFAULT_IO_MS = 60000
local READ_CHUNK = 65536
local STALE_RETRIES = 2                           -- extra tries after a dead pooled connection

-- Phases where ngx.socket.tcp, ngx.thread and ngx.semaphore:wait may yield.
local COSOCKET_PHASES = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true, preread = true,
}

function M.in_nginx()
  return ngx ~= nil and type(ngx.get_phase) == "function" and type(ngx.socket) == "table"
end

function M.available()
  return M.in_nginx() and COSOCKET_PHASES[ngx.get_phase()] == true
end

------------------------------------------------------------------ requests on the wire

-- url -> { tls, host (to connect to), port, target, host_header, sni, pool } or nil, why.
-- The core's parser reads it, as it reads the endpoint the client signs for: one reading of
-- a URL, and one Host header (IPv6 hosts in their compressed form, as libcurl sends them).
-- A small cache: a client sends to one endpoint all the time.
local url_cache, url_cache_n = {}, 0

local function parse_url(url)
  local u = url_cache[url]
  if u then return u end
  local p, why = core.parse_url(url, true)
  if not p then return nil, "invalid URL: " .. why end
  local tls = p.scheme == "https"
  local port = p.port ~= 0 and p.port or (tls and 443 or 80)
  local host = p.ipv6 and ("[" .. p.host .. "]") or p.host   -- ngx connects to "[v6]"
  local is_ip = p.ipv6 or find(host, "^%d+%.%d+%.%d+%.%d+$") ~= nil
  u = {
    tls = tls,
    host = host,
    port = port,
    target = p.query and (p.path .. "?" .. p.query) or p.path,
    host_header = p.host_header,
    sni = (not is_ip) and host or nil,            -- RFC 6066: no SNI for IP literals
    pool = "lunamodb:" .. p.scheme .. "://" .. lower(host) .. ":" .. port,
  }
  if url_cache_n >= 64 then url_cache, url_cache_n = {}, 0 end
  url_cache[url] = u
  url_cache_n = url_cache_n + 1
  return u
end

local TOKEN = "^[%w!#%$%%&'%*%+%-%.%^_`|~]+$"
-- Framing is ours: a caller's values for these would contradict the body we send.
local FRAMING = { ["content-length"] = true, ["transfer-encoding"] = true, connection = true }

-- The request as an array of strings for sock:send, or nil, why. Header lines follow
-- libcurl's conventions (what the client and the credential providers pass): "Name: value",
-- "Name:" (no value: libcurl drops the header, so do we) and "Name;" (an empty value).
local function build_request(method, u, headers, body, forbid_reuse)
  if #method > 16 or not find(method, TOKEN) then return nil, "invalid HTTP method" end
  if method == "HEAD" and #body > 0 then return nil, "HEAD request with a body" end
  local out = { method, " ", u.target, " HTTP/1.1\r\n", "" }   -- [5]: the Host line
  local n = 5
  local have_host = false
  for i = 1, #headers do
    local line = headers[i]
    if type(line) ~= "string" then
      return nil, format("header %d must be a \"Name: value\" string", i)
    end
    local name, sep, value = match(line, "^([^:;]+)([:;])(.*)$")
    -- never echo the line: it may be Authorization or a token
    if not name or not find(name, TOKEN) or find(value, "[^\t%C]")
      or (sep == ";" and value ~= "") then
      return nil, format("header %d is not a valid \"Name: value\" line", i)
    end
    value = match(value, "^[ \t]*(.-)[ \t]*$")
    local lname = lower(name)
    if not FRAMING[lname] and not (sep == ":" and value == "") then
      if lname == "host" then have_host = true end
      out[n + 1], out[n + 2], out[n + 3], out[n + 4] = name, value == "" and ":" or ": ", value,
        "\r\n"
      n = n + 4
    end
  end
  if not have_host then out[5] = "Host: " .. u.host_header .. "\r\n" end
  -- POST/PUT/PATCH always say Content-Length (0 when empty), others only with a body: as curl
  if #body > 0 or method == "POST" or method == "PUT" or method == "PATCH" then
    out[n + 1] = "Content-Length: " .. #body .. "\r\n"
    n = n + 1
  end
  if forbid_reuse then
    out[n + 1] = "Connection: close\r\n"
    n = n + 1
  end
  out[n + 1] = "\r\n"
  if #body > 0 then out[n + 2] = body end
  return out
end

-- State of one exchange: st.sent (a request byte may have left: sticky across the retry on
-- a fresh connection), st.got (a response byte arrived on this connection), st.deadline
-- (monotonic ms, or nil), st.ctx (the request object of a task send: abandoned flag).

local Failure = {}                                -- a raised failure: { net, message, stale }
Failure.__index = Failure

local function fail(net, message, stale)
  error(setmetatable({ net = net, message = message, stale = stale }, Failure), 0)
end

-- Sets the socket's timeouts for the next operation; with a total deadline every operation
-- gets at most the time left. Fails with a timeout when none is left.
local function arm(sock, st)
  local conn, io = st.connect_ms, st.io_ms
  local deadline = st.deadline
  if deadline then
    local left = deadline - monotonic_ms()
    if left < 1 then
      fail(st.sent and "timeout" or "not_sent",
        format("operation timed out after %d ms", st.total_ms))
    end
    left = floor(left)
    if left < conn then conn = left end
    if left < io then io = left end
  end
  sock:settimeouts(conn, io, io)
end

local function check_alive(self, st)
  if self.closed then fail("closed", "transport closed") end
  local ctx = st.ctx
  if ctx and ctx.abandoned then fail("closed", "request released") end
end

-- A receive failed with err (partial: bytes that did arrive).
local function read_failed(st, err, partial)
  if partial and partial ~= "" then st.got = true end
  if err == "timeout" then
    if st.deadline and st.deadline - monotonic_ms() < 1 then
      fail("timeout", format("operation timed out after %d ms", st.total_ms))
    end
    fail("timeout", format("read timeout: no data received for over %d ms", st.io_ms))
  end
  -- a pooled connection the server closed meanwhile: nothing of ours was processed
  fail("ambiguous", "receiving the response failed: " .. tostring(err), st.reused and not st.got)
end

-- One header block (status line and headers, without the blank line), at most budget bytes.
local function read_block(sock, st, budget)
  if budget < 1 then
    fail("too_large", format("response headers over %d bytes", M.MAX_HEADER_BYTES))
  end
  arm(sock, st)
  local reader = sock:receiveuntil("\r\n\r\n")
  local data, err, partial = reader(budget)
  if not data then read_failed(st, err, partial) end
  st.got = true
  local more
  more, err, partial = reader(1)                  -- nil, nil: the blank line came next
  if more then fail("too_large", format("response headers over %d bytes", M.MAX_HEADER_BYTES)) end
  if err then read_failed(st, err, partial) end
  return data
end

-- One line of a chunked body (size line or trailer), without its CRLF.
local function read_line(sock, st, max)
  arm(sock, st)
  local reader = sock:receiveuntil("\r\n")
  local data, err, partial = reader(max)
  if not data then read_failed(st, err, partial) end
  local more
  more, err, partial = reader(1)
  if more then fail("ambiguous", "invalid chunked encoding (line too long)") end
  if err then read_failed(st, err, partial) end
  return data
end

-- Exactly n bytes, appended to parts.
local function read_exact(sock, st, n, parts)
  while n > 0 do
    arm(sock, st)
    local data, err = sock:receiveany(n < READ_CHUNK and n or READ_CHUNK)
    if not data then
      if err == "closed" then
        fail("ambiguous", "the connection closed before the end of the body")
      end
      read_failed(st, err)
    end
    parts[#parts + 1] = data
    n = n - #data
  end
end

local function too_large(max)
  fail("too_large", format("response body over %d bytes", max))
end

local function read_chunked(sock, st, max, parts)
  local total, trailer_budget = 0, M.MAX_HEADER_BYTES
  while true do
    local line = read_line(sock, st, 1024)
    local size = tonumber(match(line, "^[ \t]*(%x+)[ \t]*;?") or "", 16)
    if not size then fail("ambiguous", "invalid chunked encoding (bad chunk size)") end
    if size == 0 then
      repeat                                       -- trailers, up to the blank line
        line = read_line(sock, st, trailer_budget > 0 and trailer_budget or 1)
        trailer_budget = trailer_budget - #line - 2
        if trailer_budget < 0 then
          fail("too_large", format("response headers over %d bytes", M.MAX_HEADER_BYTES))
        end
      until line == ""
      return
    end
    total = total + size
    if total > max then too_large(max) end
    read_exact(sock, st, size, parts)
    local crlf = {}
    read_exact(sock, st, 2, crlf)
    if concat(crlf) ~= "\r\n" then fail("ambiguous", "invalid chunked encoding (no CRLF)") end
  end
end

local function read_to_close(sock, st, max, parts)
  local total = 0
  while true do
    arm(sock, st)
    local data, err = sock:receiveany(READ_CHUNK)
    if not data then
      if err == "closed" then return end
      read_failed(st, err)
    end
    total = total + #data
    if total > max then too_large(max) end
    parts[#parts + 1] = data
  end
end

-- Reads the response: status, headers (lowercase names, first occurrence kept, as the curl
-- transport returns them), body, and whether the connection may go back to the pool.
local function read_response(sock, st, method, max)
  local used, status, version, block = 0, nil, nil, nil
  repeat                                          -- skip interim 1xx blocks (101 excepted)
    block = read_block(sock, st, M.MAX_HEADER_BYTES - used)
    used = used + #block + 4
    local major, minor, code = match(block, "^HTTP/(%d)%.(%d) (%d%d%d)")
    if not major then fail("other", "the response is not HTTP/1.x (bad status line)") end
    version, status = tonumber(major) * 10 + tonumber(minor), tonumber(code)
    if status == 101 then fail("other", "unexpected 101 Switching Protocols") end
  until status >= 200

  local headers = {}
  local length, chunked, close = nil, false, version < 11
  local first = true
  for line in gmatch(block, "[^\r\n]+") do
    if first then
      first = false
    else
      local name, value = match(line, "^([^:%s]+)[ \t]*:[ \t]*(.-)[ \t]*$")
      if name then
        name = lower(name)
        if headers[name] == nil then headers[name] = value end
        if name == "content-length" then
          local n = tonumber(match(value, "^%d+$"))
          if not n or (length and n ~= length) then
            fail("other", "invalid Content-Length in the response")
          end
          length = n
        elseif name == "transfer-encoding" then
          chunked = find(lower(value), "chunked%s*$") ~= nil
        elseif name == "connection" then
          local v = lower(value)
          if find(v, "close", 1, true) then close = true
          elseif find(v, "keep-alive", 1, true) then close = false end
        end
      end
    end
  end

  local parts = {}
  if method == "HEAD" or status == 204 or status == 304 then
    length = 0
  elseif chunked then
    read_chunked(sock, st, max, parts)
  elseif length then
    if length > max then too_large(max) end      -- before reading any of it, as curl does
    read_exact(sock, st, length, parts)
  else
    read_to_close(sock, st, max, parts)          -- no framing: the end of the body is EOF
    close = true
  end
  return status, headers, concat(parts), not close
end

-- One exchange on one connection. Returns status, headers, body or raises a Failure.
local function exchange(self, u, method, request, opts, st)
  local sock = ngx.socket.tcp()
  st.sock = sock
  st.got, st.reused = false, false
  arm(sock, st)
  local ok, err = sock:connect(u.host, u.port, { pool = u.pool, pool_size = self.pool_size })
  if not ok then
    if err == "timeout" and st.deadline and st.deadline - monotonic_ms() < 1 then
      fail(st.sent and "timeout" or "not_sent",
        format("operation timed out after %d ms", st.total_ms))
    end
    fail(st.sent and "ambiguous" or "not_sent",
      format("connect to %s:%d failed: %s", u.host, u.port, tostring(err)))
  end
  st.reused = (sock:getreusedtimes() or 0) > 0
  check_alive(self, st)
  if u.tls and not st.reused then                 -- a pooled TLS connection is set up already
    arm(sock, st)
    ok, err = sock:sslhandshake(false, u.sni, true)
    if not ok then
      fail(st.sent and "ambiguous" or "not_sent",
        format("TLS handshake with %s:%d failed: %s", u.host, u.port, tostring(err)))
    end
    check_alive(self, st)
  end

  arm(sock, st)
  st.sent = true
  ok, err = sock:send(request)
  if not ok then
    if err == "timeout" then
      fail("timeout", format("send timeout: no progress for over %d ms", st.io_ms))
    end
    fail("ambiguous", "sending the request failed: " .. tostring(err), st.reused)
  end

  local status, headers, body, keep = read_response(sock, st, method, st.max)
  check_alive(self, st)
  st.sock = nil
  if keep and not opts.forbid_reuse then
    if not sock:setkeepalive(self.keepalive_ms) then sock:close() end
  else
    sock:close()
  end
  return status, headers, body
end

local function close_quietly(st)
  local sock = st.sock
  st.sock = nil
  if sock then pcall(sock.close, sock) end
end

local function positive(v, default)
  if type(v) == "number" and v > 0 then return floor(v) end
  return default
end

-- The whole send over cosockets. Returns status, headers, body | nil, net, message.
local function cosocket_send(self, method, url, headers, body, opts, ctx)
  if self.closed then return nil, "other", "transport closed" end
  local u, why = parse_url(url)
  if not u then return nil, "other", why end
  local request
  request, why = build_request(method, u, headers, body, opts.forbid_reuse)
  if not request then return nil, "other", why end
  local total = positive(opts.total_timeout_ms, nil)
  local io = positive(opts.read_timeout_ms, DEFAULT_IO_MS)
  local st = {
    sent = false, ctx = ctx,
    connect_ms = positive(opts.connect_timeout_ms, DEFAULT_CONNECT_MS),
    io_ms = io,
    total_ms = total,
    deadline = total and monotonic_ms() + total or nil,
    max = positive(opts.max_response_bytes, M.DEFAULT_MAX_BODY),
  }
  for try = 0, STALE_RETRIES do
    local ok, a, b, c = pcall(exchange, self, u, method, request, opts, st)
    if ok then return a, b, c end
    close_quietly(st)
    if getmetatable(a) ~= Failure then error(a, 0) end  -- a bug: let it surface
    if not (a.stale and try < STALE_RETRIES) then return nil, a.net, a.message end
  end
end

------------------------------------------------------------------ the transport

local Transport = {}
Transport.__index = Transport
Transport.__name = "lunamodb.transport.ngx"

-- Requests of tasks: done()/release() for the scheduler (scheduler.wait_request).
local Request = {}
Request.__index = Request
Request.__name = "lunamodb.transport.ngx.request"

function Request:done()
  return self.finished
end

-- Called when the waiting task is cancelled. The light thread cannot be killed (see
-- spawn_detached) nor its socket closed from here (ngx_lua: "socket busy"): it sees the flag
-- when its current operation ends (at the latest after the read timeout), closes its socket
-- and drops the result.
function Request:release()
  if self.released then return end
  self.released = true
  self.transport.live[self] = nil
  if not self.finished then self.abandoned = true end
end

local OPTIONS = {
  keepalive_timeout_ms = "idle time a pooled connection is kept (ms)",
  pool_size = "idle connections kept per scheme://host:port",
}

-- opts: keepalive_timeout_ms (default 60000), pool_size (default 32). Never touches nginx,
-- so a transport (a client) may be created in init_by_lua.
function M.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("lunamodb.transport.ngx.new: opts must be a table (got " .. type(opts) .. ")", 2)
  end
  for k, v in pairs(opts) do
    if not OPTIONS[k] then
      error(format("lunamodb.transport.ngx.new: unknown option '%s'", tostring(k)), 2)
    end
    if type(v) ~= "number" or v < 1 or v % 1 ~= 0 then
      error(format("lunamodb.transport.ngx.new: option '%s' must be a whole number >= 1 "
        .. "(got %s)", k, tostring(v)), 2)
    end
  end
  return setmetatable({
    keepalive_ms = opts.keepalive_timeout_ms or 60000,
    pool_size = opts.pool_size or 32,
    live = {},                                   -- unfinished task requests
    -- scheduler context (one per nginx request) -> the ngx.semaphore its light threads post:
    -- each request's scheduler wakes only for its own requests
    semas = setmetatable({}, { __mode = "k" }),
    fallback = nil, fallback_pid = nil,          -- the blocking curl transport, on demand
    closed = false,
  }, Transport)
end

-- A blocking curl transport for phases without cosockets. In nginx it keeps no connection
-- alive: the init phase runs in the master, and a pooled connection would be inherited by
-- every worker it forks.
local function fallback_send(self, method, url, headers, body, opts)
  local pid = ngx and ngx.worker and ngx.worker.pid and ngx.worker.pid() or 0
  local fb = self.fallback
  if not fb or self.fallback_pid ~= pid then
    fb = require("lunamodb.transport.curl").new()
    self.fallback, self.fallback_pid = fb, pid
  end
  if M.in_nginx() then
    local own = { forbid_reuse = true }
    for k, v in pairs(opts) do if k ~= "forbid_reuse" then own[k] = v end end
    opts = own
  end
  return fb:send(method, url, headers, body, opts)
end

local function thread_main(self, req, method, url, headers, body, opts)
  local ok, a, b, c = pcall(cosocket_send, self, method, url, headers, body, opts, req)
  if not ok then a, b, c = nil, "other", "lunamodb.transport.ngx: " .. tostring(a) end
  if req.abandoned or req.finished then return end   -- released, or ended by close()
  req[1], req[2], req[3] = a, b, c
  req.finished = true
  self.live[req] = nil
  req.sema:post(1)
end

local function spawn_thread(...)
  return ngx.thread.spawn(thread_main, ...)
end

-- Spawns the light thread from a throwaway coroutine that ends at once. ngx_lua keeps a
-- finished light thread (and the nginx request with it) until its parent coroutine waits for
-- it or ends; with the task as the parent, a cancelled task (never resumed again) would hold
-- the request open forever. With a parent that is already gone, nginx reaps the thread as
-- soon as it ends. The price: nobody may ngx.thread.kill it (only its parent could).
local function spawn_detached(...)
  local ok, th, err = co_resume(co_create(spawn_thread), ...)
  if not ok then return nil, th end
  return th, err
end

-- Returns status, headers, body on a response, or nil, net, message.
function Transport:send(method, url, headers, body, opts)
  if type(method) ~= "string" then
    error("lunamodb.transport.ngx: send: method must be a string (got " .. type(method) .. ")", 2)
  end
  if type(url) ~= "string" then
    error("lunamodb.transport.ngx: send: url must be a string (got " .. type(url) .. ")", 2)
  end
  if type(headers) ~= "table" then
    error("lunamodb.transport.ngx: send: headers must be an array of \"Name: value\" "
      .. "strings (got " .. type(headers) .. ")", 2)
  end
  if body == nil then body = "" end
  if type(body) ~= "string" then
    error("lunamodb.transport.ngx: send: body must be a string (got " .. type(body) .. ")", 2)
  end
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("lunamodb.transport.ngx: send: opts must be a table (got " .. type(opts) .. ")", 2)
  end
  if self.closed then return nil, "other", "transport closed" end
  if not M.available() then return fallback_send(self, method, url, headers, body, opts) end
  if not current() then
    return cosocket_send(self, method, url, headers, body, opts, nil)
  end
  -- Inside a task: cosocket I/O here would suspend this coroutine and with it the scheduler
  -- step that resumed it. A light thread does the I/O; the task parks until it posts.
  local ctx = context()
  local sema = self.semas[ctx]
  if not sema then
    sema = require("ngx.semaphore").new(0)
    self.semas[ctx] = sema
  end
  local req = setmetatable({ transport = self, finished = false, sema = sema }, Request)
  self.live[req] = true
  local th, err = spawn_detached(self, req, method, url, headers, body, opts)
  if not th then
    self.live[req] = nil
    return nil, "other", "ngx.thread.spawn failed: " .. tostring(err)
  end
  wait_request(self, req)
  return req[1], req[2], req[3]
end

-- Waits (at most timeout_ms) until a light thread of this transport, started by the calling
-- request's tasks, finishes a request.
function Transport:poll(timeout_ms)
  local sema = M.available() and self.semas[context()]
  if sema then
    if sema:count() <= 0 and type(timeout_ms) == "number" and timeout_ms > 0 then
      sema:wait(timeout_ms / 1000)
    end
    while sema:count() > 0 do sema:wait(0) end    -- one wake-up covers every finished request
  end
  local n = 0
  for _ in pairs(self.live) do n = n + 1 end
  return n
end

function Transport:sleep(ms)
  sched_sleep(ms)
end

-- Unfinished task requests end with net "closed"; later sends fail.
function Transport:close()
  if self.closed then return end
  self.closed = true
  local live = self.live
  local req = next(live)
  while req do
    live[req] = nil
    if not req.finished then
      req.abandoned = true
      req[1], req[2], req[3] = nil, "closed", "transport closed"
      req.finished = true
      req.sema:post(1)
    end
    req = next(live)
  end
  if self.fallback then
    self.fallback:close()
    self.fallback = nil
  end
end

function Transport:__tostring()
  local n = 0
  for _ in pairs(self.live) do n = n + 1 end
  return format("lunamodb.transport.ngx (%d task request(s) in flight%s)", n,
    self.closed and ", closed" or "")
end

M.Transport = Transport
M._parse_url, M._build_request = parse_url, build_request   -- for the unit spec

return M
