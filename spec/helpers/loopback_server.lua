-- Scripted loopback HTTP/1.1 server for lunamodb's specs. Started by spec/helpers/loopback.lua:
--
--   lua5.4 spec/helpers/loopback_server.lua DIR [WATCH_PID]
--
-- DIR/script.json holds { routes = { ["METHOD /path"] = { response, ... }, ["*"] = {...} } }
-- (see loopback.lua for the response fields). The server binds 127.0.0.1 on an ephemeral port,
-- writes it to DIR/port (atomically), serves any number of connections concurrently
-- (socket.select + one coroutine per connection, keep-alive), and appends one JSON line per
-- request to DIR/requests.log, flushed before the response is sent.
--
-- It exits when killed, when DIR/script.json disappears, when WATCH_PID (the spec process)
-- is gone, or after LIFETIME seconds, so that a crashed spec leaves no stray process.
-- Requires Lua 5.4, luasocket and lua-cjson.

local socket = require "socket"
local cjson = require "cjson"

local LIFETIME = 600          -- seconds
local HOUSEKEEPING = 0.5      -- seconds between checks of DIR and WATCH_PID

local dir = assert(arg[1], "usage: loopback_server.lua DIR [WATCH_PID]")
local watch_pid = tonumber(arg[2])
local started = socket.gettime()

local function log(...)
  io.stderr:write("loopback_server: ", string.format(...), "\n")
  io.stderr:flush()
end

-- script -----------------------------------------------------------------------------------

-- started from the repository root, so the shared helpers are on ./?.lua
local read_file = require("spec.helpers.files").read

local script = cjson.decode((assert(read_file(dir .. "/script.json"), "no script.json")))
local routes = {}
for key, queue in pairs(type(script.routes) == "table" and script.routes or {}) do
  if type(queue) ~= "table" then
    error("route " .. key .. ": expected a list of responses")
  end
  if #queue == 0 then
    -- a single response given as an object, or an empty list (= one default response)
    queue = next(queue) == nil and { {} } or { queue }
  end
  routes[key] = { list = queue, pos = 0 }
end

local function next_response(method, path)
  local route = routes[method .. " " .. path] or routes["*"]
  if not route then
    return {
      status = 404,
      body = cjson.encode { __type = "loopback#NoRoute",
                            message = "no route for " .. method .. " " .. path },
    }
  end
  route.pos = math.min(route.pos + 1, #route.list)
  return route.list[route.pos]
end

-- helpers ----------------------------------------------------------------------------------

local crc_table = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if c & 1 == 1 then c = 0xEDB88320 ~ (c >> 1) else c = c >> 1 end
  end
  crc_table[i] = c
end

local function crc32(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do
    c = crc_table[(c ~ s:byte(i)) & 0xFF] ~ (c >> 8)
  end
  return c ~ 0xFFFFFFFF
end

local function num_str(v)
  if type(v) == "number" then
    local i = math.tointeger(v)
    return i and string.format("%d", i) or tostring(v)
  end
  return tostring(v)
end

local REASONS = {
  [100] = "Continue", [200] = "OK", [201] = "Created", [204] = "No Content",
  [301] = "Moved Permanently", [302] = "Found", [304] = "Not Modified",
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [408] = "Request Timeout", [413] = "Payload Too Large",
  [429] = "Too Many Requests", [500] = "Internal Server Error", [501] = "Not Implemented",
  [502] = "Bad Gateway", [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

math.randomseed(os.time(), math.floor(socket.gettime() * 1e6) % 0x7fffffff)
local id_serial = 0
local function request_id()
  id_serial = id_serial + 1
  local t = {}
  for i = 1, 4 do t[i] = string.format("%08X", math.random(0, 0x7fffffff)) end
  return string.format("%s%s%s%s%04X", t[1], t[2], t[3], t[4], id_serial % 0x10000):sub(1, 36)
end

local function http_date()
  return os.date("!%a, %d %b %Y %H:%M:%S GMT")
end

-- scheduler --------------------------------------------------------------------------------

local wait_r, wait_w = {}, {}      -- socket -> coroutine
local sleepers = {}                -- { t = absolute time, co = coroutine }
local hung = {}                    -- sockets kept open forever ("hang")

local function resume(co)
  local ok, err = coroutine.resume(co)
  if not ok then log("connection handler failed: %s", tostring(err)) end
end

local function wait_readable(s)
  wait_r[s] = coroutine.running()
  coroutine.yield()
end

local function wait_writable(s)
  wait_w[s] = coroutine.running()
  coroutine.yield()
end

local function sleep_ms(ms)
  if not ms or ms <= 0 then return end
  sleepers[#sleepers + 1] = { t = socket.gettime() + ms / 1000, co = coroutine.running() }
  coroutine.yield()
end

local function recv(s)
  while true do
    local data, err, partial = s:receive(65536)
    if data then return data end
    if partial and #partial > 0 then return partial end
    if err ~= "timeout" then return nil, err end
    wait_readable(s)
  end
end

local function send_all(s, data)
  local i = 1
  while i <= #data do
    local last, err, lastsent = s:send(data, i)
    if last then
      i = last + 1
    elseif err == "timeout" then
      i = lastsent + 1
      wait_writable(s)
    else
      return nil, err
    end
  end
  return true
end

-- connection handler -----------------------------------------------------------------------

local reqlog = assert(io.open(dir .. "/requests.log", "ab"))

local function handle(s, serial)
  local buf = ""

  local function fill()
    local data = recv(s)
    if not data then return false end
    buf = buf .. data
    return true
  end

  local function read_line()
    while true do
      local e = buf:find("\r\n", 1, true)
      if e then
        local line = buf:sub(1, e - 1)
        buf = buf:sub(e + 2)
        return line
      end
      if #buf > 65536 or not fill() then return nil end
    end
  end

  local function read_n(n)
    while #buf < n do
      if not fill() then return nil end
    end
    local data = buf:sub(1, n)
    buf = buf:sub(n + 1)
    return data
  end

  local function finish()
    s:close()
  end

  while true do
    -- request head
    local hend
    while true do
      hend = buf:find("\r\n\r\n", 1, true)
      if hend then break end
      if #buf > 1048576 or not fill() then return finish() end
    end
    local head = buf:sub(1, hend + 1)
    buf = buf:sub(hend + 4)
    local reqline, rest = head:match("^(.-)\r\n(.*)$")
    local method, target, version = reqline:match("^(%S+)%s+(%S+)%s+HTTP/(%d%.%d)$")
    if not method then
      send_all(s, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
      return finish()
    end
    local headers, header_list = {}, {}
    for line in rest:gmatch("(.-)\r\n") do
      local name, value = line:match("^([^:]+):[ \t]*(.-)[ \t]*$")
      if name then
        header_list[#header_list + 1] = { name, value }
        local lname = name:lower()
        headers[lname] = headers[lname] and (headers[lname] .. ", " .. value) or value
      end
    end
    local path, query = target:match("^([^?]*)%??(.*)$")
    local t_ms = math.floor(socket.gettime() * 1000)
    local resp = next_response(method, path)
    local sent_continue = false

    -- request body
    local expect = (headers["expect"] or ""):lower():find("100-continue", 1, true)
    if expect and not resp.no_continue then
      if not send_all(s, "HTTP/1.1 100 Continue\r\n\r\n") then return finish() end
      sent_continue = true
    end
    local body
    local te = (headers["transfer-encoding"] or ""):lower()
    if te:find("chunked", 1, true) then
      local parts = {}
      while true do
        local line = read_line()
        if not line then return finish() end
        local size = tonumber(line:match("^%s*(%x+)"), 16)
        if not size then return finish() end
        if size == 0 then
          repeat            -- trailers
            line = read_line()
            if not line then return finish() end
          until line == ""
          break
        end
        local chunk = read_n(size)
        if not chunk or read_line() ~= "" then return finish() end
        parts[#parts + 1] = chunk
      end
      body = table.concat(parts)
    elseif headers["content-length"] then
      local n = tonumber(headers["content-length"])
      if not n then return finish() end
      body = read_n(n)
      if not body then return finish() end
    else
      body = ""
    end

    reqlog:write(cjson.encode {
      method = method, path = path, query = query, target = target, version = version,
      headers = headers, header_list = header_list, body = body, t_ms = t_ms,
      connection = serial,
    }, "\n")
    reqlog:flush()

    -- response
    sleep_ms(tonumber(resp.delay_ms))
    local action = resp.action
    if action == "reset" then
      s:setoption("linger", { on = true, timeout = 0 })
      return finish()
    elseif action == "close" then
      s:shutdown("send")
      sleep_ms(50)     -- let the FIN go out before close (close with unread data would RST)
      return finish()
    elseif action == "hang" then
      hung[s] = true
      coroutine.yield()  -- never resumed
      return
    end

    if action == "continue" and not sent_continue then
      if not send_all(s, "HTTP/1.1 100 Continue\r\n\r\n") then return finish() end
    end

    local rbody = resp.body
    if rbody == nil or rbody == cjson.null then rbody = "{}" end
    rbody = tostring(rbody)
    local status = tonumber(resp.status) or 200

    local order, values = {}, {}
    local function set(name, value)
      local lname = name:lower()
      if values[lname] == nil then order[#order + 1] = lname end
      values[lname] = { name, value }
    end
    set("Date", http_date())
    set("x-amzn-RequestId", request_id())
    set("Content-Type", "application/x-amz-json-1.0")
    if resp.crc32 == true then
      set("x-amz-crc32", num_str(crc32(rbody)))
    elseif type(resp.crc32) == "number" or type(resp.crc32) == "string" then
      set("x-amz-crc32", num_str(resp.crc32))
    end
    local body_to_send = rbody
    if resp.chunked then
      set("Transfer-Encoding", "chunked")
      local size = tonumber(resp.chunk_size) or 16
      local parts = {}
      for i = 1, #rbody, size do
        local piece = rbody:sub(i, i + size - 1)
        parts[#parts + 1] = string.format("%x\r\n%s\r\n", #piece, piece)
      end
      parts[#parts + 1] = "0\r\n\r\n"
      body_to_send = table.concat(parts)
    elseif action == "truncate" then
      -- announce the whole body (at least 1 byte) but send only its first half
      body_to_send = rbody:sub(1, #rbody // 2)
      set("Content-Length", num_str(math.max(#rbody, #body_to_send + 1)))
    else
      set("Content-Length", num_str(#rbody))
    end
    for name, value in pairs(type(resp.headers) == "table" and resp.headers or {}) do
      if value == false or value == cjson.null then
        local lname = name:lower()
        if values[lname] then values[lname] = false end
      else
        set(name, num_str(value))
      end
    end

    local lines = { string.format("HTTP/1.1 %d %s", status, resp.reason or REASONS[status] or "Unknown") }
    local close_after = false
    for _, lname in ipairs(order) do
      local nv = values[lname]
      if nv then
        lines[#lines + 1] = nv[1] .. ": " .. nv[2]
        if lname == "connection" and nv[2]:lower():find("close", 1, true) then close_after = true end
      end
    end
    local reqconn = (headers["connection"] or ""):lower()
    if reqconn:find("close", 1, true)
       or (version == "1.0" and not reqconn:find("keep-alive", 1, true)) then
      close_after = true
    end
    local head_out = table.concat(lines, "\r\n") .. "\r\n\r\n"

    if action == "slow" then
      if not send_all(s, head_out) then return finish() end
      local interval = tonumber(resp.interval_ms) or 200
      for i = 1, #body_to_send do
        if i > 1 then sleep_ms(interval) end
        if not send_all(s, body_to_send:sub(i, i)) then return finish() end
      end
    else
      if not send_all(s, head_out .. body_to_send) then return finish() end
    end
    if action == "truncate" or close_after then
      s:shutdown("send")
      sleep_ms(50)
      return finish()
    end
  end
end

-- main -------------------------------------------------------------------------------------

local server = assert(socket.bind("127.0.0.1", 0, 128))
server:settimeout(0)
local _, port = server:getsockname()

do
  local tmp = dir .. "/port.tmp"
  local f = assert(io.open(tmp, "w"))
  f:write(port, "\n")
  f:close()
  assert(os.rename(tmp, dir .. "/port"))
end

local function proc_alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat", "r")
  if not f then return false end
  local stat = f:read("a") or ""
  f:close()
  return stat:match("%)%s+(%a)") ~= "Z"
end

local function remove_dir()
  os.execute("rm -rf '" .. dir:gsub("'", "'\\''") .. "'")
end

local serial = 0
local next_check = 0
while true do
  local now = socket.gettime()
  if now >= next_check then
    next_check = now + HOUSEKEEPING
    local f = io.open(dir .. "/script.json", "r")
    if not f then os.exit(0) end
    f:close()
    if watch_pid and not proc_alive(watch_pid) then
      remove_dir()
      os.exit(0)
    end
    if now - started > LIFETIME then
      log("lifetime of %d s exceeded; exiting", LIFETIME)
      remove_dir()
      os.exit(0)
    end
  end

  local timeout = math.max(0, next_check - now)
  for _, sl in ipairs(sleepers) do
    timeout = math.min(timeout, math.max(0, sl.t - now))
  end
  local rl, wl = { server }, {}
  for s in pairs(wait_r) do rl[#rl + 1] = s end
  for s in pairs(wait_w) do wl[#wl + 1] = s end
  local readable, writable = socket.select(rl, wl, timeout)

  for _, s in ipairs(readable) do
    if s == server then
      while true do
        local c = server:accept()
        if not c then break end
        c:settimeout(0)
        c:setoption("tcp-nodelay", true)
        serial = serial + 1
        local my_serial = serial
        resume(coroutine.create(function() handle(c, my_serial) end))
      end
    else
      local co = wait_r[s]
      if co then
        wait_r[s] = nil
        resume(co)
      end
    end
  end
  for _, s in ipairs(writable) do
    local co = wait_w[s]
    if co then
      wait_w[s] = nil
      resume(co)
    end
  end

  if #sleepers > 0 then
    now = socket.gettime()
    local due, keep = {}, {}
    for _, sl in ipairs(sleepers) do
      if sl.t <= now then due[#due + 1] = sl else keep[#keep + 1] = sl end
    end
    sleepers = keep
    table.sort(due, function(a, b) return a.t < b.t end)
    for _, sl in ipairs(due) do resume(sl.co) end
  end
end
