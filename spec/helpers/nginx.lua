-- nginx for specs: runs Debian's nginx (libnginx-mod-http-lua, lua-resty-core) from a private
-- temp prefix, and a small HTTP/1.1 client (luasocket) able to keep many requests in flight.
-- Works when busted runs under Lua 5.4 or LuaJIT (nginx itself always runs LuaJIT).
--
--   local nginx = require "spec.helpers.nginx"
--   local p1, p2 = nginx.free_ports(2)
--   local srv = nginx.start{
--     conf = text,                           -- becomes PREFIX/conf/nginx.conf (daemon on,
--                                            -- pid logs/nginx.pid, error_log logs/error.log)
--     files = { ["conf/conf.d/x.conf"] = text },   -- more files, relative to the prefix
--     links = { lua = "/abs/dir" },          -- symlinks PREFIX/name -> target
--     env = { NAME = "value" },              -- environment of the nginx master
--     port = p1, ready = "/health",          -- start returns once GET ready answers 200
--   }
--   srv.prefix, srv.pid, srv.port, srv:error_log(), srv:stop()
--   nginx.request(port, method, path[, body[, timeout_s]]) -> { status, headers, body, ms }
--   nginx.parallel(port, list[, during]) -> results, ms
--       list = { { method, path, body }, ... }, all sent at once and read as they come;
--       during() is called about every 20 ms until all are answered.
--
-- Started as root, nginx runs its workers as `nobody`, which cannot read a checkout under a
-- private (0700) directory: start() then adds `user root;` unless the conf has a user line.
-- start() fails loudly, with the error log, when nginx cannot start or does not answer.
-- nginx is stopped by its PID (QUIT, then KILL of the master and its workers); a watchdog
-- stops it too when the spec process dies without calling stop().

local files = require "spec.helpers.files"
local socket = require "socket"

local read_file, write_file = files.read, files.write

local M = {}

M.NGINX = os.getenv("LUNAMODB_NGINX") or "nginx"

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function now()
  return socket.gettime()
end

-- Commands run without LD_PRELOAD: under `make asan` busted runs with the sanitizer runtimes
-- preloaded, and tools such as ps hang under them (nginx is not ours to instrument either).
local CLEAN = "unset LD_PRELOAD; "

local function sh(cmd)
  local p = assert(io.popen(CLEAN .. cmd))
  local out = p:read("*a")
  p:close()
  return out
end

-- os.execute's success across Lua 5.1 (a status number) and 5.2+ (true/nil, how, code).
local function run(cmd)
  local a, _, c = os.execute(CLEAN .. cmd)
  if type(a) == "number" then return a == 0 end
  return a == true or c == 0
end

-- For the specs' own commands: output of cmd / whether it succeeded, without LD_PRELOAD.
M.sh, M.run = sh, run

local function alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  return stat ~= nil and stat:match("%)%s+(%a)") ~= "Z"
end

function M.is_root()
  return sh("id -u"):match("^%s*(%d+)") == "0"
end

-- n distinct free loopback ports (held open together, so they differ).
function M.free_ports(n)
  local socks, ports = {}, {}
  for i = 1, n do
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    socks[i], ports[i] = s, tonumber(port)
  end
  for i = 1, n do socks[i]:close() end
  return (table.unpack or unpack)(ports)     -- luacheck: ignore (LuaJIT's unpack)
end

------------------------------------------------------------------ HTTP client

local function request_text(port, method, path, body)
  body = body or ""
  return method .. " " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1:" .. port
    .. "\r\nConnection: close\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body
end

local function dechunk(s)
  local out, pos = {}, 1
  while true do
    local size_hex, after = s:match("^(%x+)[^\r\n]*\r\n()", pos)
    if not size_hex then return nil end
    local size = tonumber(size_hex, 16)
    if size == 0 then return table.concat(out) end
    out[#out + 1] = s:sub(after, after + size - 1)
    pos = after + size + 2
  end
end

local function parse_response(raw)
  local head, body = raw:match("^(.-)\r\n\r\n(.*)$")
  if not head then return { status = 0, headers = {}, body = "", raw = raw } end
  local status = tonumber(head:match("^HTTP/%d%.%d (%d%d%d)")) or 0
  local headers = {}
  for name, value in head:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
    headers[name:lower()] = value
  end
  if (headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
    body = dechunk(body) or body
  end
  return { status = status, headers = headers, body = body }
end

-- One blocking request (Connection: close).
function M.request(port, method, path, body, timeout)
  local t0 = now()
  local c = socket.tcp()
  c:settimeout(timeout or 10)
  local ok, err = c:connect("127.0.0.1", port)
  if not ok then error("nginx helper: connect to 127.0.0.1:" .. port .. ": " .. err, 2) end
  assert(c:send(request_text(port, method, path, body)))
  local data, rerr, partial = c:receive("*a")
  c:close()
  if not data then
    error(string.format("nginx helper: %s %s: %s", method, path, tostring(rerr)), 2)
  end
  local res = parse_response(data or partial)
  res.ms = (now() - t0) * 1000
  return res
end

function M.parallel(port, list, during, timeout)
  local t0 = now()
  local deadline = t0 + (timeout or 30)
  local conns = {}
  for i, r in ipairs(list) do
    local c = socket.tcp()
    c:settimeout(5)
    assert(c:connect("127.0.0.1", port))
    assert(c:send(request_text(port, r[1], r[2], r[3])))
    c:settimeout(0)
    conns[i] = { sock = c, parts = {} }
  end
  local pending = #conns
  while pending > 0 do
    if now() > deadline then error("nginx helper: parallel requests timed out", 2) end
    local waiting = {}
    for _, conn in ipairs(conns) do
      if not conn.res then waiting[#waiting + 1] = conn.sock end
    end
    socket.select(waiting, nil, 0.02)
    for i, conn in ipairs(conns) do
      if not conn.res then
        local data, err, partial = conn.sock:receive("*a")
        local chunk = data or partial
        if chunk and chunk ~= "" then conn.parts[#conn.parts + 1] = chunk end
        if data or err == "closed" then
          conn.sock:close()
          conn.res = parse_response(table.concat(conn.parts))
          conn.res.ms = (now() - t0) * 1000
          conn.res.index = i
          pending = pending - 1
        end
      end
    end
    if during and pending > 0 then during() end
  end
  local results = {}
  for i, conn in ipairs(conns) do results[i] = conn.res end
  return results, (now() - t0) * 1000
end

------------------------------------------------------------------ the server

local Server = {}
Server.__index = Server

local function prefix_log(prefix)
  return (read_file(prefix .. "/logs/error.log") or "(no logs/error.log)")
    .. (read_file(prefix .. "/logs/start.log") or "")
end

function M.start(opts)
  local conf = assert(opts.conf, "nginx helper: conf is required")
  local port = assert(opts.port, "nginx helper: port is required")
  if M.is_root() and not (("\n" .. conf):find("\n[ \t]*user[ \t]")) then
    conf = "user root;   # added by spec/helpers/nginx.lua: workers must read the checkout\n"
      .. conf
  end
  local prefix = sh("mktemp -d \"${TMPDIR:-/tmp}/lunamodb-nginx.XXXXXX\""):match("^%s*(.-)%s*$")
  assert(prefix ~= "", "nginx helper: mktemp -d failed")
  local ok, err = pcall(function()
    for _, d in ipairs { "conf", "conf/conf.d", "logs", "tmp" } do
      assert(run("mkdir -p " .. q(prefix .. "/" .. d)))
    end
    write_file(prefix .. "/conf/nginx.conf", conf)
    for name, text in pairs(opts.files or {}) do
      local dir = name:match("^(.*)/[^/]*$")
      if dir then assert(run("mkdir -p " .. q(prefix .. "/" .. dir))) end
      write_file(prefix .. "/" .. name, text)
    end
    for name, target in pairs(opts.links or {}) do
      assert(run("ln -s " .. q(target) .. " " .. q(prefix .. "/" .. name)))
    end
  end)
  if not ok then
    run("rm -rf " .. q(prefix))
    error("nginx helper: cannot set up the prefix: " .. tostring(err), 2)
  end

  local env = {}
  for k, v in pairs(opts.env or {}) do env[#env + 1] = k .. "=" .. q(v) end
  local started = run(string.format("env %s %s -p %s -c conf/nginx.conf >%s 2>&1 </dev/null",
    table.concat(env, " "), M.NGINX, q(prefix .. "/"), q(prefix .. "/logs/start.log")))
  local pid = tonumber(read_file(prefix .. "/logs/nginx.pid") or "")
  local self = setmetatable({ prefix = prefix, port = port, pid = pid }, Server)

  if pid then
    -- $PPID in that shell is this (busted) process: when it is gone without stop(), QUIT
    -- nginx (checking that the PID still is that nginx, by its prefix).
    run(string.format("(while kill -0 $PPID 2>/dev/null && [ -d %s ]; do sleep 1; done; "
      .. "if [ -d %s ] && grep -q %s /proc/%d/cmdline 2>/dev/null; then kill -QUIT %d; fi) "
      .. ">/dev/null 2>&1 </dev/null &", q(prefix), q(prefix), q(prefix), pid, pid))
  end

  local ready = opts.ready or "/"
  local deadline = now() + (opts.start_timeout or 10)
  local last
  while started and pid do
    local ok, res = pcall(M.request, port, "GET", ready, nil, 2)
    if ok and res.status == 200 then return self end
    last = ok and ("HTTP " .. res.status) or res
    if now() > deadline or not alive(pid) then break end
    socket.sleep(0.05)
  end
  local log = prefix_log(prefix)
  self:stop()
  error(string.format("nginx helper: nginx did not start or answer GET %s on port %d (%s, "
    .. "exit %s)\n--- error log ---\n%s", ready, port, tostring(last),
    started and "ok" or "failed", log), 2)
end

function Server:error_log()
  if self.log then return self.log end
  return read_file(self.prefix .. "/logs/error.log") or ""
end

function Server:stop()
  if self.stopped then return end
  self.stopped = true
  local pid = self.pid
  if pid and alive(pid) then
    local workers = {}
    for w in sh("ps -o pid= --ppid " .. pid):gmatch("%d+") do workers[#workers + 1] = w end
    run("kill -QUIT " .. pid .. " 2>/dev/null")
    local deadline = now() + 5
    while alive(pid) and now() < deadline do socket.sleep(0.02) end
    if alive(pid) then
      run("kill -KILL " .. pid .. " 2>/dev/null")
      for _, w in ipairs(workers) do
        if alive(w) then run("kill -KILL " .. w .. " 2>/dev/null") end
      end
    end
  end
  self.log = read_file(self.prefix .. "/logs/error.log") or ""
  run("rm -rf " .. q(self.prefix))
end

return M
