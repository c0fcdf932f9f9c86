-- lunamodb.errors: the one error object every runtime failure is reported with.
--
-- Misuse raises a plain string error. Runtime failures (network, DynamoDB)
-- return nil, err where err is an Error: fields code, message, status,
-- request_id, retryable, attempts, operation, reasons (transactions),
-- throttling_reasons, item (ALL_OLD on a failed condition), net (transport
-- outcome) and kind ("service", "transport", "credentials").

local setmetatable, getmetatable = setmetatable, getmetatable
local type, tostring, ipairs = type, tostring, ipairs
local sub, format = string.sub, string.format
local concat = table.concat

local M = {}

local Error = {}
Error.__index = Error
Error.__name = "lunamodb.Error"
M.Error = Error

-- A code matches with or without the "Exception" suffix DynamoDB appends
-- to most of its codes: err:is("ConditionalCheckFailed").
function Error:is(name)
  local code = self.code
  if code == nil or type(name) ~= "string" then return false end
  if code == name then return true end
  if sub(code, -9) == "Exception" and sub(code, 1, -10) == name then return true end
  if sub(name, -9) == "Exception" and sub(name, 1, -10) == code then return true end
  return false
end

function Error:__tostring()
  local parts = { "lunamodb: " }
  if self.operation then parts[#parts + 1] = self.operation .. ": " end
  parts[#parts + 1] = self.code or "Error"
  if self.message and self.message ~= "" then parts[#parts + 1] = ": " .. self.message end
  local info = {}
  if self.status then info[#info + 1] = "HTTP " .. tostring(self.status) end
  if self.request_id then info[#info + 1] = "request id " .. self.request_id end
  if self.attempts and self.attempts > 1 then info[#info + 1] = self.attempts .. " attempts" end
  if self.reasons then
    local codes = {}
    for i, r in ipairs(self.reasons) do codes[i] = r.code end
    info[#info + 1] = "reasons [" .. concat(codes, ", ") .. "]"
  end
  if #info > 0 then parts[#parts + 1] = " (" .. concat(info, ", ") .. ")" end
  return concat(parts)
end

function M.new(fields)
  return setmetatable(fields, Error)
end

function M.is_error(v)
  return getmetatable(v) == Error
end

-- CancellationReasons as { code, message, item } tables, one per action in
-- request order; "None" marks an action that did not fail.
local function cancellation_reasons(list)
  if type(list) ~= "table" then return nil end
  local out = {}
  for i, r in ipairs(list) do
    out[i] = { code = r.Code or "None", message = r.Message or r.message, item = r.Item }
  end
  return out
end

-- Builds the error for a DynamoDB error response. body is the decoded JSON
-- (or nil when it was not JSON), code already extracted by the caller.
function M.from_response(operation, status, code, body, request_id)
  body = type(body) == "table" and body or {}
  return setmetatable({
    kind = "service",
    operation = operation,
    code = code ~= "" and code or format("HTTP%d", status),
    message = body.message or body.Message or "",
    status = status,
    request_id = request_id,
    reasons = cancellation_reasons(body.CancellationReasons),
    throttling_reasons = body.ThrottlingReasons,
    item = body.Item,
  }, Error)
end

local transport_codes = {
  timeout = "RequestTimeout",
  too_large = "ResponseTooLarge",
}

function M.from_transport(operation, net, message)
  return setmetatable({
    kind = "transport",
    operation = operation,
    code = transport_codes[net] or "ConnectionError",
    message = message or net,
    net = net,
  }, Error)
end

return M
