-- Scripted loopback HTTP/1.1 server for specs (retries, fault injection, credential
-- metadata services). Works when busted runs under Lua 5.4 or LuaJIT; the server itself is a
-- separate `lua5.4` process (spec/helpers/loopback_server.lua, luasocket + cjson).
--
--   local loopback = require "spec.helpers.loopback"
--   local srv = loopback.start{ routes = {
--     ["POST /"] = { resp1, resp2, ... },     -- "METHOD /path": exact, path without the query
--     ["*"]      = { ... },                   -- fallback; with no match at all: 404 loopback#NoRoute
--   } }
--
-- Each route is a queue: each matching request takes the next response and the last one
-- repeats forever. A route may also be a single response table. A response (plain data):
--   status = 200                  (default 200)
--   reason = "OK"                 (default: the standard phrase)
--   headers = { name = "v" }      override default headers (case-insensitive); false removes one.
--                                 Defaults: Date, x-amzn-RequestId (fresh), Content-Type
--                                 application/x-amz-json-1.0, Content-Length (or
--                                 Transfer-Encoding: chunked)
--   body = "..."                  (default "{}")
--   delay_ms = 50                 wait before answering (other connections are served meanwhile)
--   crc32 = true | 123            add x-amz-crc32: the correct CRC32 of body, or that value
--   chunked = true                send the body chunked (chunk_size bytes per chunk, default 16)
--   no_continue = true            do not answer "Expect: 100-continue" with a 100 (by default
--                                 the server sends "100 Continue" before reading such a body)
--   action = "reset"              read the request, then close with RST (SO_LINGER 0)
--          | "close"              read the request, then close cleanly (FIN) without answering
--          | "hang"               read the request, never answer (until stop)
--          | "truncate"           Content-Length of the whole body (>= 1), send half of it, close
--          | "slow"               headers, then the body 1 byte per interval_ms (default 200)
--          | "continue"           "HTTP/1.1 100 Continue" first, then this response
-- The connection is kept alive unless the request says "Connection: close" (or is HTTP/1.0
-- without keep-alive) or the response has a "Connection: close" header.
--
--   srv.url ("http://127.0.0.1:PORT"), srv.port, srv.host ("127.0.0.1"), srv.dir
--   srv:requests()   array of { method, path, query ("" if none), target, version,
--                    headers = { lowercase-name = value } (repeated headers joined by ", "),
--                    header_list = { {Name, value}, ... } (as received, in order), body,
--                    t_ms (arrival, ms since the epoch; compare with socket.gettime()*1000),
--                    connection (TCP connection serial, 1-based) }, in arrival order
--   srv:count()      number of requests so far
--   srv:wait_requests(n [, timeout_s = 5])  wait until at least n requests were logged
--   srv:stop()       kill the server process and remove its temp dir (idempotent)
--
-- Every request is logged (DIR/requests.log, flushed) before it is answered, so a client
-- that got an answer (or a reset) always finds its request in srv:requests().
-- The server exits by itself when the spec process dies or after 10 minutes.

local files = require "spec.helpers.files"
local cjson = require "cjson"
local has_socket, socket = pcall(require, "socket")

local M = {}

M.lua = os.getenv("LUNAMODB_LOOPBACK_LUA") or "lua5.4"

local function sleep(s)
  if has_socket then socket.sleep(s) else os.execute("sleep " .. s) end
end

local function now()
  if has_socket then return socket.gettime() end
  return os.time()
end

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local read_file, write_file = files.read, files.write

local function server_script()
  local src = debug.getinfo(1, "S").source
  if src:sub(1, 1) == "@" then
    local d = src:sub(2):match("^(.*)/[^/]*$")
    if d then
      local p = d .. "/loopback_server.lua"
      if read_file(p) then return p end
    end
  end
  return "spec/helpers/loopback_server.lua"
end

local function pid_alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  return stat ~= nil and stat:match("%)%s+(%a)") ~= "Z"
end

local function to_int(v)
  if type(v) == "number" and math.tointeger then return math.tointeger(v) or v end
  return v
end

local Server = {}
Server.__index = Server

function M.start(opts)
  opts = opts or {}
  local p = assert(io.popen("mktemp -d \"${TMPDIR:-/tmp}/lunamodb-loopback.XXXXXX\""))
  local dir = p:read("*l")
  p:close()
  assert(dir and dir ~= "", "loopback: mktemp -d failed")
  write_file(dir .. "/script.json", cjson.encode { routes = opts.routes or {} })

  -- Inside the shell, $PPID is this (busted) process: the server exits when it is gone.
  local cmd = string.format("%s %s %s $PPID >%s 2>&1 </dev/null & echo $! >%s",
    M.lua, q(server_script()), q(dir), q(dir .. "/server.log"), q(dir .. "/pid"))
  os.execute(cmd)

  local pid = tonumber(read_file(dir .. "/pid") or "")
  local port
  local deadline = now() + 5
  while true do
    port = tonumber(read_file(dir .. "/port") or "")
    if port then break end
    if now() > deadline or (pid and not pid_alive(pid)) then
      local log = read_file(dir .. "/server.log") or ""
      if pid then os.execute("kill -9 " .. pid .. " 2>/dev/null") end
      os.execute("rm -rf " .. q(dir))
      error("loopback: the server did not start (" .. M.lua .. " "
        .. server_script() .. "):\n" .. log, 2)
    end
    sleep(0.01)
  end

  return setmetatable({
    dir = dir, pid = pid, port = port, host = "127.0.0.1",
    url = "http://127.0.0.1:" .. port,
  }, Server)
end

function Server:requests()
  local data = read_file(self.dir .. "/requests.log") or ""
  local out = {}
  for line in data:gmatch("([^\n]*)\n") do   -- complete lines only
    local r = cjson.decode(line)
    r.t_ms = to_int(r.t_ms)
    r.connection = to_int(r.connection)
    out[#out + 1] = r
  end
  return out
end

function Server:count()
  local data = read_file(self.dir .. "/requests.log") or ""
  local _, n = data:gsub("\n", "")
  return n
end

function Server:wait_requests(n, timeout)
  local deadline = now() + (timeout or 5)
  while self:count() < n do
    if now() > deadline then
      error(string.format("loopback: expected %d requests, got %d", n, self:count()), 2)
    end
    sleep(0.01)
  end
  return self:requests()
end

function Server:stop()
  if self.stopped then return end
  self.stopped = true
  if self.pid then
    os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
    local deadline = now() + 2
    while pid_alive(self.pid) and now() < deadline do sleep(0.01) end
    if pid_alive(self.pid) then os.execute("kill -KILL " .. self.pid .. " 2>/dev/null") end
  end
  os.execute("rm -rf " .. q(self.dir))
end

return M
