-- lunamodb.credentials: credential providers and the refresh rules.
--
-- A provider is a table with :get(transport) returning a credentials table
-- { access_key_id, secret_access_key, session_token, expires_ms, source }
-- or nil, err. Static providers never change; the container (ECS/EKS) and
-- EC2 instance metadata (IMDSv2) providers fetch over the client's own
-- transport and refresh ahead of expiry: in the advisory window (15 min)
-- a failed refresh keeps the old credentials, in the mandatory window
-- (10 min) it is an error, so a request is never signed with credentials
-- about to expire.

local core = require "lunamodb.core"
local errors = require "lunamodb.errors"

local setmetatable, type, tostring, tonumber = setmetatable, type, tostring, tonumber
local floor = math.floor
local match, format = string.match, string.format
local ipairs, concat = ipairs, table.concat
local io_open = io.open

local M = {}

M.ADVISORY_REFRESH_MS = 15 * 60 * 1000
M.MANDATORY_REFRESH_MS = 10 * 60 * 1000

local function credentials_error(message, code)
  return errors.new {
    kind = "credentials",
    code = code or "CredentialsError",
    message = message,
  }
end
M.credentials_error = credentials_error

-- "2024-01-02T03:04:05Z" (optionally with fractional seconds or an offset)
-- to epoch milliseconds, without os.time's local-time conversions.
function M.parse_iso8601_ms(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, sec, rest = match(s, "^(%d%d%d%d)-(%d%d)-(%d%d)T(%d%d):(%d%d):(%d%d)(.*)$")
  if not y then return nil end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  local frac, zone = match(rest, "^(%.?%d*)(.*)$")
  local offset_min = 0
  if zone == "Z" or zone == "" then
    offset_min = 0
  else
    local sign, oh, om = match(zone, "^([+-])(%d%d):?(%d%d)$")
    if not sign then return nil end
    offset_min = (tonumber(oh) * 60 + tonumber(om)) * (sign == "-" and -1 or 1)
  end
  -- days from civil (Howard Hinnant's algorithm)
  local yy = mo <= 2 and y - 1 or y
  local era = floor(yy / 400)
  local yoe = yy - era * 400
  local mp = (mo + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  local secs = days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
  local ms = secs * 1000 - offset_min * 60000
  if frac ~= "" and frac ~= "." then ms = ms + floor(tonumber("0" .. frac) * 1000) end
  return ms
end

---------------------------------------------------------------- static

local Static = {}
Static.__index = Static

function M.static(access_key_id, secret_access_key, session_token, source)
  return setmetatable({
    creds = {
      access_key_id = access_key_id,
      secret_access_key = secret_access_key,
      session_token = session_token,
      source = source,
    },
    source = source,
  }, Static)
end

function Static:get()
  return self.creds
end

function Static:__tostring()
  return format("lunamodb.credentials (%s, %s)", self.source, self.creds.access_key_id)
end

------------------------------------------------------------- refreshing

-- Shared by the providers that fetch credentials with an expiry.
--
-- Single flight: when many tasks (or OpenResty requests) find the credentials due at once, one
-- fetches; the others keep using the old ones while that is allowed (advisory window), else
-- wait (through the transport, so they yield) for that fetch's outcome. A fetch whose task was
-- cancelled, or that runs past REFRESH_WAIT_MS, is taken over.
local Refreshing = {}
Refreshing.__index = Refreshing

M.REFRESH_WAIT_MS = 30 * 1000
M.REFRESH_POLL_MS = 5

local scheduler -- required lazily: the scheduler needs nothing from here

local function usable(creds, now)
  return creds and (not creds.expires_ms or creds.expires_ms - now > M.MANDATORY_REFRESH_MS)
end

-- True while another fetch is in progress and still worth waiting for.
local function in_flight(self, now)
  local f = self.flight
  if not f then return false end
  if now - f.started_ms > M.REFRESH_WAIT_MS or (f.task and f.task:done()) then
    self.flight = nil                          -- abandoned: cancelled or stuck
    return false
  end
  return true
end

function Refreshing:get(transport)
  local creds, now = self.creds, core.now_ms()
  if creds and (not creds.expires_ms or creds.expires_ms - now > M.ADVISORY_REFRESH_MS) then
    return creds
  end
  if in_flight(self, now) then
    if usable(creds, now) then return creds end
    local generation = self.generation
    repeat
      transport:sleep(M.REFRESH_POLL_MS)
    until self.generation ~= generation or not in_flight(self, core.now_ms())
    if self.generation ~= generation then
      if usable(self.creds, core.now_ms()) then return self.creds end
      return nil, self.last_error
    end
    creds, now = self.creds, core.now_ms()     -- the fetch was abandoned: do it here
  end
  scheduler = scheduler or require "lunamodb.scheduler"
  local flight = { started_ms = now, task = scheduler.current() }
  self.flight = flight
  local ok, fresh, err = pcall(self.fetch, self, transport)
  if self.flight == flight then self.flight = nil end
  if not ok then error(fresh, 0) end
  if fresh and fresh.expires_ms and fresh.expires_ms - core.now_ms() <= 60 * 1000 then
    fresh, err = nil, credentials_error(self.source .. " returned credentials that expire within 60 seconds")
  end
  self.generation = (self.generation or 0) + 1
  if fresh then
    self.creds, self.last_error = fresh, nil
    return fresh
  end
  self.last_error = err
  if usable(creds, now) then
    return creds                                -- advisory window: keep the old ones
  end
  return nil, err
end

function Refreshing:__tostring()
  return format("lunamodb.credentials (%s)", self.source)
end

local function refreshing(source, fetch)
  return setmetatable({ source = source, fetch = fetch }, Refreshing)
end

-- The credential JSON both metadata services return.
local function parse_credential_document(source, body)
  local doc = type(body) == "string" and core.json_decode(body)
  if type(doc) ~= "table" then
    return nil, credentials_error(source .. " returned a response that is not JSON")
  end
  if doc.Code and doc.Code ~= "Success" then
    return nil, credentials_error(source .. " answered Code=" .. tostring(doc.Code))
  end
  local akid, secret = doc.AccessKeyId, doc.SecretAccessKey
  if type(akid) ~= "string" or akid == "" or type(secret) ~= "string" or secret == "" then
    return nil, credentials_error(source .. " returned no AccessKeyId/SecretAccessKey")
  end
  local expires
  if doc.Expiration ~= nil then
    expires = M.parse_iso8601_ms(doc.Expiration)
    if not expires then
      return nil, credentials_error(source .. " returned an unreadable Expiration")
    end
  end
  local token = doc.Token
  if token ~= nil and (type(token) ~= "string" or not core.header_value_safe(token)) then
    return nil, credentials_error(source .. " returned an unusable Token")
  end
  return {
    access_key_id = akid,
    secret_access_key = secret,
    session_token = token,
    expires_ms = expires,
    source = source,
  }
end

-- One GET or PUT to a metadata endpoint: never through a proxy, small
-- response cap, short timeouts.
local function metadata_request(transport, method, url, headers, timeout_ms, max_bytes)
  local status, hdrs, body = transport:send(method, url, headers, "", {
    connect_timeout_ms = timeout_ms,
    total_timeout_ms = timeout_ms,
    max_response_bytes = max_bytes,
    no_proxy = true,
  })
  return status, hdrs, body
end

------------------------------------------------------ container (ECS/EKS)

-- env: a getenv-like function. Returns nil when the container provider is
-- not configured; raises when it is configured unsafely.
function M.container(getenv)
  local relative = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
  local full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI")
  local url
  if relative and relative ~= "" then
    url = "http://169.254.170.2" .. relative
  elseif full and full ~= "" then
    if not core.container_uri_allowed(full) then
      error("lunamodb: AWS_CONTAINER_CREDENTIALS_FULL_URI must use https or a loopback, "
        .. "ECS (169.254.170.2) or EKS (169.254.170.23, fd00:ec2::23) host", 0)
    end
    url = full
  else
    return nil
  end
  local ok = core.parse_url(url)
  if not ok then error("lunamodb: the container credentials URI is malformed", 0) end
  local token_file = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
  local token_env = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN")
  local source = "container credentials"

  return refreshing(source, function(_, transport)
    local token = token_env
    if token_file and token_file ~= "" then   -- re-read every time: it is rotated
      local f = io_open(token_file, "rb")
      if not f then
        return nil, credentials_error("cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
      end
      token = f:read("*a")
      f:close()
      token = match(token, "^%s*(.-)%s*$")
    end
    local headers = { "Accept: application/json" }
    if token and token ~= "" then
      if not core.header_value_safe(token) then
        return nil, credentials_error("the container authorization token contains CR, LF or NUL")
      end
      headers[2] = "Authorization: " .. token
    end
    local last_err
    for attempt = 1, 3 do
      local status, _, body = metadata_request(transport, "GET", url, headers, 2000, 10000)
      if status == 200 then
        return parse_credential_document(source, body)
      end
      if status then
        last_err = credentials_error(format("%s answered HTTP %d", source, status))
        if status < 500 then break end
      else
        last_err = credentials_error(format("%s unreachable: %s", source, tostring(body)))
      end
      if attempt < 3 then transport:sleep(1000) end
    end
    return nil, last_err
  end)
end

---------------------------------------------------------------- IMDSv2

local TOKEN_TTL_S = 21600

local function truthy(v)
  return v ~= nil and (v == "true" or v == "TRUE" or v == "True" or v == "1")
end

function M.imds(getenv)
  if truthy(getenv("AWS_EC2_METADATA_DISABLED")) then return nil end
  local endpoint = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT")
  if not endpoint or endpoint == "" then
    local mode = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")
    endpoint = (mode and mode:lower() == "ipv6") and "http://[fd00:ec2::254]" or "http://169.254.169.254"
  end
  endpoint = endpoint:gsub("/+$", "")
  if not core.parse_url(endpoint) then
    error("lunamodb: AWS_EC2_METADATA_SERVICE_ENDPOINT is not a valid http(s) URL", 0)
  end
  local v1_disabled = truthy(getenv("AWS_EC2_METADATA_V1_DISABLED"))
  local timeout_ms = floor((tonumber(getenv("AWS_METADATA_SERVICE_TIMEOUT") or "") or 1) * 1000)
  local attempts = tonumber(getenv("AWS_METADATA_SERVICE_NUM_ATTEMPTS") or "") or 1
  local source = "EC2 instance metadata"
  local token, token_expires = nil, 0

  local function fetch_token(transport)
    local status, _, body = metadata_request(transport, "PUT", endpoint .. "/latest/api/token",
      { "x-aws-ec2-metadata-token-ttl-seconds: " .. TOKEN_TTL_S }, timeout_ms, 65535)
    if status == 200 and body ~= "" and core.header_value_safe(body) then
      token, token_expires = body, core.now_ms() + (TOKEN_TTL_S - 5) * 1000
      return true
    end
    if status == 400 then
      return nil, credentials_error(source .. " refused the token request (HTTP 400)")
    end
    -- 403/404/405, a timeout, or no answer: IMDSv1 may still work
    if v1_disabled then
      local why = status and ("HTTP " .. status) or tostring(body)
      return nil, credentials_error(source .. ": no IMDSv2 token (" .. why .. ") and "
        .. "AWS_EC2_METADATA_V1_DISABLED is set; in a container, the instance's "
        .. "HttpPutResponseHopLimit may need to be 2")
    end
    token = nil
    return true
  end

  local function get(transport, path)
    for _ = 1, 2 do
      if not token or core.now_ms() >= token_expires then
        local ok, err = fetch_token(transport)
        if not ok then return nil, err end
      end
      local headers = {}
      if token then headers[1] = "x-aws-ec2-metadata-token: " .. token end
      local status, _, body = metadata_request(transport, "GET", endpoint .. path, headers,
        timeout_ms, 65535)
      if status == 200 then return body end
      if status == 401 then
        token, token_expires = nil, 0           -- stale token: fetch a new one once
      elseif status then
        return nil, credentials_error(format("%s answered HTTP %d for %s", source, status, path))
      else
        return nil, credentials_error(source .. " unreachable: " .. tostring(body))
      end
    end
    return nil, credentials_error(source .. " rejected a fresh token (HTTP 401)")
  end

  return refreshing(source, function(_, transport)
    local last_err
    for _ = 1, attempts do
      local roles, err = get(transport, "/latest/meta-data/iam/security-credentials/")
      if roles then
        local role = match(roles, "^%s*([^\r\n]+)")
        if not role then
          return nil, credentials_error(source .. ": no IAM role is attached to this instance")
        end
        local doc
        doc, err = get(transport, "/latest/meta-data/iam/security-credentials/" .. role)
        if doc then return parse_credential_document(source, doc) end
      end
      last_err = err
    end
    return nil, last_err
  end)
end

-------------------------------------------------------------- the chain

-- Tries each provider in order at the first get; the first that yields
-- credentials is kept for the client's lifetime.
local Chain = {}
Chain.__index = Chain

function M.chain(providers, tried)
  return setmetatable({ providers = providers, tried = tried }, Chain)
end

function Chain:get(transport)
  if self.chosen then return self.chosen:get(transport) end
  local messages = {}
  for _, p in ipairs(self.providers) do
    local creds, err = p:get(transport)
    if creds then
      self.chosen = p
      return creds
    end
    messages[#messages + 1] = err and err.message or p.source
  end
  return nil, credentials_error("no AWS credentials found (tried " .. self.tried .. "): "
    .. concat(messages, "; "), "NoCredentials")
end

function Chain:__tostring()
  return "lunamodb.credentials (" .. (self.chosen and self.chosen.source or self.tried) .. ")"
end

return M
