-- lunamodb.transport.curl: the default transport, libcurl's multi interface
-- in the C core. One multi handle per transport keeps connections alive
-- across calls. send() is "submit, then wait": inside a lunamodb task
-- (lunamodb.scheduler) waiting yields and the scheduler polls this
-- transport's multi handle, so many tasks share one handle and run
-- concurrently; anywhere else waiting blocks in a poll loop.
--
-- Transport interface (what the client and the scheduler use):
--   transport:send(method, url, headers, body, opts)
--       -> status, headers, body | nil, net, message
--                              body sent: a string, or a core body (lunamodb.body) when
--                              the transport sets sends_core_bodies (this one does)
--                              headers: lowercase name -> value; when opts.response_headers
--                              lists the (lowercase) names the caller reads, a transport
--                              may return only those (this one does)
--   transport:sleep(ms)        yields inside a task, blocks elsewhere
--   transport:poll(timeout_ms) moves transfers forward, waiting at most timeout_ms
--                              (the scheduler calls it while a task waits on a request)
--   transport:sockets(out, n) appends its sockets to out as fd, events pairs after the first
--                              n and returns the new count (scheduler.io_wait)
--   transport:timeout()        ms until poll must run again, -1 when nothing is pending
--   transport:close()

local core = require "lunamodb.core"
local scheduler = require "lunamodb.scheduler"

local setmetatable, tostring = setmetatable, tostring
local wait_request, sleep, current = scheduler.wait_request, scheduler.sleep, scheduler.current

local M = {}

local Transport = {}
Transport.__index = Transport
Transport.__name = "lunamodb.transport.curl"
-- send takes a core body (lunamodb.body) as well as a string: the core reads either
Transport.sends_core_bodies = true

function M.new()
  return setmetatable({ http = core.http() }, Transport)
end

-- Returns status, headers, body on a response, or nil, net, message.
-- If the calling task is cancelled while it waits, the scheduler releases
-- the request (libcurl aborts the transfer) and this never returns.
function Transport:send(method, url, headers, body, opts)
  -- outside a task the wait blocks anyway: the core submits, waits and reads in one call
  if not current() then return self.http:perform(method, url, headers, body, opts) end
  local req, err = self.http:submit(method, url, headers, body, opts)
  if not req then return nil, "other", err end
  wait_request(self, req)
  local status, hdrs, resp = req:result(opts and opts.response_headers)
  req:release()
  return status, hdrs, resp
end

function Transport:poll(timeout_ms)
  return self.http:poll(timeout_ms)
end

function Transport:sockets(out, n)
  return self.http:sockets(out, n)
end

function Transport:timeout()
  return self.http:timeout()
end

function Transport:sleep(ms)
  sleep(ms)
end

function Transport:close()
  self.http:close()
end

function Transport:__tostring()
  return "lunamodb.transport.curl (" .. tostring(self.http) .. ")"
end

return M
