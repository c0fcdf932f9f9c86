-- lunamodb.transport.curl: the default transport, libcurl's multi interface
-- in the C core. One multi handle per transport keeps connections alive
-- across calls. send() is "submit, then wait"; waiting blocks the calling
-- thread here (the scheduler for coroutines builds on the same submit/poll).

local core = require "lunamodb.core"

local setmetatable = setmetatable

local M = {}

local Transport = {}
Transport.__index = Transport
Transport.__name = "lunamodb.transport.curl"

function M.new()
  return setmetatable({ http = core.http() }, Transport)
end

-- Returns status, headers, body on a response, or nil, net, message.
function Transport:send(method, url, headers, body, opts)
  local http = self.http
  local req, err = http:submit(method, url, headers, body, opts)
  if not req then return nil, "other", err end
  while not req:done() do
    http:poll(1000)
  end
  local status, hdrs, resp = req:result()
  req:release()
  return status, hdrs, resp
end

function Transport:sleep(ms)
  core.sleep_ms(ms)
end

function Transport:close()
  self.http:close()
end

function Transport:__tostring()
  return "lunamodb.transport.curl (" .. tostring(self.http) .. ")"
end

return M
