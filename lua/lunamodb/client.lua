-- lunamodb.client: the low-level client for the whole DynamoDB API.
--
--   local client = lunamodb.Client.new{ region = "us-east-1" }
--   local out, err = client:call("ListTables", {})
--   local text, err = client:call_raw("ListTables", '{"Limit":10}')
--   for page in client:pages("ListTables", { Limit = 10 }) do ... end
--
-- call() runs the loop of DESIGN.md §1: encode -> sign -> send -> classify
-- -> (sleep, retry) -> decode. The C core signs, classifies, computes the
-- backoff and the next request of a paginated operation; the transport
-- moves bytes and waits.

local core = require "lunamodb.core"
local errors = require "lunamodb.errors"
local config = require "lunamodb.config"
local curl_transport = require "lunamodb.transport.curl"
local ngx_transport = require "lunamodb.transport.ngx"

local setmetatable, type, tostring, tonumber, pairs = setmetatable, type, tostring, tonumber, pairs
local floor = math.floor
local format = string.format
local json_encode, json_decode, json_valid = core.json_encode, core.json_decode, core.json_valid
local paginated, paginate_next = core.paginated, core.paginate_next
local now_ms, monotonic_ms = core.now_ms, core.monotonic_ms
local error_code, classify, crc32 = core.error_code, core.classify, core.crc32
local is_body = core.is_body

local M = {}

M.VERSION = core.VERSION
M.USER_AGENT = "lunamodb/" .. core.VERSION

-- Every operation of the DynamoDB 2012-08-10 API.
M.OPERATIONS = {}
for op in ([[
BatchExecuteStatement BatchGetItem BatchWriteItem CreateBackup CreateGlobalTable CreateTable
DeleteBackup DeleteItem DeleteResourcePolicy DeleteTable DescribeBackup
DescribeContinuousBackups DescribeContributorInsights DescribeEndpoints DescribeExport
DescribeGlobalTable DescribeGlobalTableSettings DescribeImport
DescribeKinesisStreamingDestination DescribeLimits DescribeTable
DescribeTableReplicaAutoScaling DescribeTimeToLive DisableKinesisStreamingDestination
EnableKinesisStreamingDestination ExecuteStatement ExecuteTransaction
ExportTableToPointInTime GetItem GetResourcePolicy ImportTable ListBackups
ListContributorInsights ListExports ListGlobalTables ListImports ListTables
ListTagsOfResource PutItem PutResourcePolicy Query RestoreTableFromBackup
RestoreTableToPointInTime Scan TagResource TransactGetItems TransactWriteItems UntagResource
UpdateContinuousBackups UpdateContributorInsights UpdateGlobalTable
UpdateGlobalTableSettings UpdateItem UpdateKinesisStreamingDestination UpdateTable
UpdateTableReplicaAutoScaling UpdateTimeToLive
]]):gmatch("%a+") do
  M.OPERATIONS[op] = true
end

-- Operations whose ClientRequestToken makes a replay safe; the token is
-- generated once per call, so every retry of that call reuses it.
local IDEMPOTENCY_TOKEN = { TransactWriteItems = true, ExecuteTransaction = true }

-- The response headers attempt() reads: transports that honour opts.response_headers make
-- strings for these only.
local RESPONSE_HEADERS = { "x-amzn-requestid", "date", "age", "x-amz-crc32", "x-amzn-errortype",
  "x-amz-retry-after" }

-- Option name -> checker returning an error message or nil.
local function is_type(t)
  return function(v) if type(v) ~= t then return "must be a " .. t end end
end
local function positive_number(v)
  if type(v) ~= "number" or v <= 0 or v ~= v then return "must be a positive number" end
end
local OPTIONS = {
  region = is_type("string"),
  host = is_type("string"),
  profile = is_type("string"),
  access_key_id = is_type("string"),
  secret_access_key = is_type("string"),
  session_token = is_type("string"),
  connect_timeout = positive_number,   -- seconds
  read_timeout = positive_number,      -- seconds without a byte
  timeout = positive_number,           -- whole call, retries included
  max_attempts = function(v)
    if type(v) ~= "number" or v < 1 or v % 1 ~= 0 then return "must be a whole number >= 1" end
  end,
  retry = is_type("table"),
  max_response_bytes = positive_number,
  ca_bundle = is_type("string"),
  verify_crc32 = is_type("boolean"),
  transport = is_type("table"),
  user_agent = is_type("string"),
}
local RETRY_OPTIONS = {
  base_ms = true, throttle_base_ms = true, cap_ms = true, quota = true,
}

local function check_options(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error("lunamodb.Client.new: options must be a table (got " .. type(opts) .. ")", 3)
  end
  for k, v in pairs(opts) do
    local check = OPTIONS[k]
    if not check then
      error(format("lunamodb.Client.new: unknown option '%s'", tostring(k)), 3)
    end
    local problem = check(v)
    if problem then
      error(format("lunamodb.Client.new: option '%s' %s (got %s)", k, problem, tostring(v)), 3)
    end
  end
  if opts.retry then
    for k in pairs(opts.retry) do
      if not RETRY_OPTIONS[k] then
        error(format("lunamodb.Client.new: unknown retry option '%s'", tostring(k)), 3)
      end
    end
  end
  if opts.user_agent and not core.header_value_safe(opts.user_agent) then
    error("lunamodb.Client.new: option 'user_agent' contains CR, LF or NUL", 3)
  end
  return opts
end

local Client = {}
Client.__index = Client
Client.__name = "lunamodb.Client"
M.Client = Client

-- Raises on misuse and misconfiguration; never touches the network.
-- getenv (default os.getenv) lets specs resolve against a made-up environment.
function M.new(opts, getenv)
  opts = check_options(opts)
  local settings = config.resolve(opts, getenv)
  local retry = opts.retry or {}
  local policy = core.retry_policy {
    max_attempts = settings.max_attempts or 4,
    base_ms = retry.base_ms,
    throttle_base_ms = retry.throttle_base_ms,
    cap_ms = retry.cap_ms,
    quota = retry.quota,
  }
  local self = setmetatable({
    region = settings.region,
    endpoint = settings.endpoint,
    host_header = settings.host_header,
    credentials = settings.credentials,
    profile = settings.profile,
    policy = policy,
    signer = core.signer(),
    -- inside nginx at all (even init_by_lua): cosockets; the transport checks the phase per call
    transport = opts.transport
      or (ngx_transport.in_nginx() and ngx_transport or curl_transport).new(),
    verify_crc32 = opts.verify_crc32 ~= false,
    deadline_ms = opts.timeout and floor(opts.timeout * 1000) or nil,
    http_opts = {
      connect_timeout_ms = floor((opts.connect_timeout or 10) * 1000),
      read_timeout_ms = floor((opts.read_timeout or 30) * 1000),
      total_timeout_ms = 0,
      max_response_bytes = opts.max_response_bytes,
      ca_bundle = settings.ca_bundle,
      response_headers = RESPONSE_HEADERS,
    },
    user_agent_header = "User-Agent: " .. M.USER_AGENT
      .. (opts.user_agent and (" " .. opts.user_agent) or ""),
    signed_with = nil,               -- the credentials table the signer holds
  }, Client)
  return self
end

function Client:__tostring()
  return format("lunamodb.Client (%s, %s)", self.region, self.endpoint)
end

-- Every wait of lunamodb (backoff, rate limits, table polling) goes through the
-- transport, so it yields inside a task or an OpenResty request.
function Client:sleep(ms)
  self.transport:sleep(ms)
end

function Client:close()
  if self.transport then self.transport:close() end
end

-- Keeps the signer's credentials in step with the provider's.
local function prepare_credentials(self)
  local creds, err = self.credentials:get(self.transport)
  if not creds then return nil, err end
  if creds ~= self.signed_with then
    self.signer:set_credentials(creds.access_key_id, creds.secret_access_key, creds.session_token)
    self.signed_with = creds
  end
  return true
end

local function with_token(params)
  if params.ClientRequestToken ~= nil then return params end
  local copy = {}
  for k, v in pairs(params) do copy[k] = v end
  copy.ClientRequestToken = core.uuid4()
  return copy
end

-- Per operation, built once: its X-Amz-Target and that header's line.
local TARGETS = setmetatable({}, { __index = function(t, operation)
  local v = "DynamoDB_20120810." .. operation
  t[operation] = v
  return v
end })
local TARGET_HEADERS = setmetatable({}, { __index = function(t, target)
  local v = "X-Amz-Target: " .. target
  t[target] = v
  return v
end })

-- A response's Date as epoch seconds; calls within one second share the text, so the
-- last one parsed is reused.
local function parse_date(self, text)
  if not text then return nil end
  if text == self.last_date_text then return self.last_date end
  local date = core.parse_http_date(text)
  self.last_date_text, self.last_date = text, date
  return date
end

-- One attempt: returns decode(response body), or nil plus the failure's
-- class, its error and the retry-after hint. decode returns a value, or
-- nil, message for a body that is not JSON (a transient failure).
local function attempt(self, operation, target, body, http_opts, decode)
  local ok, cerr = prepare_credentials(self)
  if not ok then return nil, "fatal", cerr end
  local policy = self.policy
  -- one clock read: signing takes microseconds, the skew estimate works in milliseconds
  local sent = now_ms()
  local signing_ms = sent + policy:clock_offset_ms()
  local date_line, auth_line, token_line = self.signer:sign_post(self.region, "dynamodb",
    floor(signing_ms / 1000), self.host_header, target, body)
  local headers = {
    "Content-Type: application/x-amz-json-1.0",
    TARGET_HEADERS[target],
    date_line,
    auth_line,
    self.user_agent_header,
    token_line,
  }

  local status, hdrs, resp = self.transport:send("POST", self.endpoint, headers, body, http_opts)
  local received = now_ms()
  if not status then
    local net, message = hdrs, resp
    return nil, classify(0, nil, nil, net), errors.from_transport(operation, net, message)
  end

  local request_id = hdrs["x-amzn-requestid"]
  local skew_corrected = false
  local date = parse_date(self, hdrs["date"])
  if date then
    skew_corrected = policy:observe_clock(date, sent, received, hdrs["age"] ~= nil)
  end

  if status == 200 then
    local sum = self.verify_crc32 and hdrs["x-amz-crc32"]
    if sum and tonumber(sum) ~= crc32(resp) then
      return nil, classify(200, nil, nil, "ok", true), errors.new {
        kind = "transport", operation = operation, code = "CRC32CheckFailed",
        message = "the response body does not match its x-amz-crc32 checksum",
        status = 200, request_id = request_id,
      }
    end
    local out, jerr = decode(resp)
    if out == nil then
      return nil, "transient", errors.new {
        kind = "transport", operation = operation, code = "SerializationError",
        message = "the response is not valid JSON: " .. tostring(jerr),
        status = 200, request_id = request_id,
      }
    end
    return out
  end

  local decoded = json_decode(resp)
  local doc = type(decoded) == "table" and decoded or nil
  local code = error_code(hdrs["x-amzn-errortype"] or (doc and doc.__type) or "")
  local err = errors.from_response(operation, status, code, doc, request_id)
  local class = classify(status, err.code, err.message, "ok")
  if class == "skew" and not skew_corrected then class = "fatal" end
  local retry_after = tonumber(hdrs["x-amz-retry-after"] or "")
  if retry_after and retry_after < 0 then retry_after = nil end
  return nil, class, err, retry_after
end

-- The decode step of call_raw: the text itself, once it is known to be JSON.
local function checked_text(text)
  local ok, err = json_valid(text)
  if ok then return text end
  return nil, err
end

-- The retry loop of one call: sign, send, classify, sleep, retry. body is
-- the JSON text to send; decode(response text) -> value or nil, message.
-- Returns the decoded value, or nil, err.
local function run(self, operation, body, decode)
  local target = TARGETS[operation]
  -- a core body (a batch's, in C memory) goes as it is to a transport that takes one, as
  -- its text to any other
  if type(body) ~= "string" and not self.transport.sends_core_bodies then body = tostring(body) end
  local policy = self.policy
  local started = self.deadline_ms and monotonic_ms()
  -- The shared options serve every call without a deadline; a deadline
  -- needs a table of this call's own, so calls running side by side
  -- (coroutines on one client) never see each other's time left.
  local http_opts = self.http_opts
  if self.deadline_ms then
    local own = {}
    for k, v in pairs(http_opts) do own[k] = v end
    http_opts = own
  end
  local n = 0
  while true do
    n = n + 1
    if self.deadline_ms then
      local left = self.deadline_ms - (monotonic_ms() - started)
      http_opts.total_timeout_ms = left > 1 and floor(left) or 1
    end
    local out, class, err, retry_after = attempt(self, operation, target, body, http_opts, decode)
    if out then
      policy:success()
      return out
    end
    err.attempts = n
    err.retryable = class ~= "fatal"
    local delay, why = policy:decide(class, n, retry_after)
    if delay and self.deadline_ms and monotonic_ms() - started + delay >= self.deadline_ms then
      delay, why = nil, "deadline"
    end
    if not delay then
      err.retry_stopped = class ~= "fatal" and why or nil
      return nil, err
    end
    if delay > 0 then self:sleep(delay) end
  end
end

-- Misuse of an operation name raises, from the caller's caller.
local function check_operation(method, operation)
  if type(operation) ~= "string" then
    error(format("lunamodb: client:%s: operation must be a string (got %s)", method,
      type(operation)), 3)
  end
  if not M.OPERATIONS[operation] then
    error(format("lunamodb: client:%s: unknown DynamoDB operation '%s'", method, operation), 3)
  end
end

-- params -> the JSON body (ClientRequestToken filled where it applies).
local function encode_params(method, operation, params)
  if type(params) ~= "table" then
    error(format("lunamodb: client:%s(%q): params must be a table (got %s)", method, operation,
      type(params)), 3)
  end
  if IDEMPOTENCY_TOKEN[operation] then params = with_token(params) end
  local ok, body = pcall(json_encode, params)
  if not ok then
    error(format("lunamodb: client:%s(%q): params %s", method, operation,
      tostring(body):gsub("^lunamodb%.json: ", "")), 3)
  end
  return body
end

-- Sends any DynamoDB operation whose body is already JSON text, sent as
-- is. Does all that call does (signing, retries, CRC32, structured errors,
-- the deadline; a response that is not JSON is retried) and returns the
-- response body TEXT, undecoded, or nil, err.
function Client:call_raw(operation, body_json)
  check_operation("call_raw", operation)
  if type(body_json) ~= "string" and not is_body(body_json) then
    error(format("lunamodb: client:call_raw(%q): body must be a JSON string (got %s)", operation,
      type(body_json)), 2)
  end
  return run(self, operation, body_json, checked_text)
end

-- Sends any DynamoDB operation. Returns the decoded response, or nil, err.
-- It is call_raw with params encoded first and the response decoded, the
-- decoding done inside the retry loop (one pass: a response that is not
-- JSON is retried, as call_raw's check does).
function Client:call(operation, params)
  check_operation("call", operation)
  return run(self, operation, encode_params("call", operation, params), json_decode)
end

-- call with the response decoded by decode(text) -> value | nil, message instead of
-- json_decode (the models' item decoders); params may also be the body's JSON text, sent as
-- is (the core wrote it). For lunamodb's own modules.
function Client:call_decoded(operation, params, decode)
  check_operation("call", operation)
  local body = type(params) == "string" and params or encode_params("call", operation, params)
  return run(self, operation, body, decode)
end

-- An iterator over the decoded response pages of any paginated operation
-- (core.paginated: Query, Scan, ListTables, ListBackups, ListTagsOfResource,
-- ListExports, ListImports, ListContributorInsights, ListGlobalTables,
-- ExecuteStatement):
--
--   for page, info in client:pages("Query", params) do ... end
--
-- info is core.paginate_next's { count, scanned, capacity } for the page.
-- The first request is params encoded; every later one is the JSON text
-- the C core computed from the previous request and response
-- (core.paginate_next): Lua never rebuilds it, and a retried page resends
-- the same bytes. Each page is one call with its own retries and deadline;
-- params' own limit key (Limit, MaxResults, PageSize) sizes the pages.
--
-- Misuse (an unknown operation, one that does not paginate, params that
-- are not a table or cannot be encoded) raises here, before any network
-- call. On a runtime failure the ITERATOR RAISES the structured error
-- object, a lunamodb.Error (error(err, 0), no position prefixed), because
-- a generic `for` cannot return nil, err; catch it with pcall:
--
--   local ok, err = pcall(function() for page in client:pages(...) do ... end end)
--   if not ok and lunamodb.errors.is_error(err) and err:is("ResourceNotFound") then ... end
--
-- After a failure, or after the last page, the iterator returns nil.
function Client:pages(operation, params)
  check_operation("pages", operation)
  if not paginated(operation) then
    error(format("lunamodb: client:pages: operation '%s' does not paginate", operation), 2)
  end
  local body = encode_params("pages", operation, params)
  local text
  local function decode(t)
    local out, jerr = json_decode(t)
    if out ~= nil then text = t end
    return out, jerr
  end
  return function()
    if body == nil then return nil end
    local sent = body
    body = nil
    local page, err = run(self, operation, sent, decode)
    if page == nil then error(err, 0) end
    local nxt, info = paginate_next(operation, sent, text)
    text = nil
    if nxt == nil then
      error(errors.new {
        kind = "transport", operation = operation, code = "PaginationError",
        message = info, status = 200, retryable = false,
      }, 0)
    end
    body = nxt or nil
    return page, info
  end
end

return M
