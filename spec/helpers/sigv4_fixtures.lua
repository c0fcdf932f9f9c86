-- spec/helpers/sigv4_fixtures.lua -- loads the SigV4 test vector folders
-- under spec/fixtures/sigv4 (format: spec/fixtures/sigv4/README.md).
--
--   local fixtures = require "spec.helpers.sigv4_fixtures"
--   for _, name in ipairs(fixtures.list("v4")) do
--     local case = fixtures.load("v4", name)
--     local r = core.sigv4_sign(fixtures.sign_args(case))
--     assert.equal(case.expected.signature, r.signature)
--   end

local cjson = require "cjson"

local _M = {}

-- The fixtures live next to this file, so specs work from any directory
-- busted is started in.
local here = debug.getinfo(1, "S").source:match("^@(.*)helpers[/\\]sigv4_fixtures%.lua$")
_M.root = (here or "spec/") .. "fixtures/sigv4"


local function read_file(path, optional)
  local f, err = io.open(path, "rb")
  if not f then
    if optional then return nil end
    error("sigv4 fixtures: cannot open " .. tostring(err), 2)
  end
  local s = f:read("*a")
  f:close()
  return s
end


-- Lines of s split on LF, keeping empty lines.
local function split_lines(s)
  local lines = {}
  for line in (s .. "\n"):gmatch("(.-)\n") do
    lines[#lines + 1] = line
  end
  return lines
end


-- Splits a request file into its head (request line and header lines) and
-- body. A body follows the first empty line; without one the file ends
-- after the last header line's LF.
local function split_message(text)
  local head, body = text:match("^(.-)\n\n(.*)$")
  if head then
    return head, body
  end
  return (text:gsub("\n$", "")), ""
end


-- Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
-- days_from_civil), so timestamps never go through the local time zone.
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end


-- "2015-08-30T12:36:00Z" -> epoch seconds (an integer on Lua 5.3+).
function _M.parse_timestamp(ts)
  local y, mo, d, h, mi, s = ts:match("^(%d%d%d%d)-(%d%d)-(%d%d)T(%d%d):(%d%d):(%d%d)Z$")
  if not y then
    error("sigv4 fixtures: bad timestamp " .. tostring(ts), 2)
  end
  local days = days_from_civil(tonumber(y), tonumber(mo), tonumber(d))
  local t = days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s)
  return math.tointeger and math.tointeger(t) or t
end


-- Parses request.txt: "METHOD TARGET HTTP/1.1", then "Name:value" lines
-- (value kept exactly, spaces included), continuation lines (leading
-- whitespace) appended to the previous value after a LF, then the body.
function _M.parse_request(text)
  local head, body = split_message(text)
  local lines = split_lines(head)
  local method, target = lines[1]:match("^(%S+) (.*) HTTP/1%.1$")
  if not method then
    error("sigv4 fixtures: bad request line " .. lines[1], 2)
  end
  local path, query = target:match("^([^?]*)%?(.*)$")
  if not path then
    path, query = target, ""
  end
  local headers = {}
  for i = 2, #lines do
    local line = lines[i]
    if line:match("^[ \t]") then
      local prev = headers[#headers]
      if not prev then
        error("sigv4 fixtures: continuation line before any header", 2)
      end
      -- keep the fold as sent: canonicalisation must collapse it
      prev[2] = prev[2] .. "\n" .. line
    else
      local name, value = line:match("^([^:]+):(.*)$")
      if not name then
        error("sigv4 fixtures: bad header line " .. line, 2)
      end
      headers[#headers + 1] = { name, value }
    end
  end
  return {
    method = method,
    path = path,
    query = query,
    headers = headers,
    body = body,
    head_lines = #lines,   -- request line + header lines, continuations included
  }
end


-- The header lines header-signed-request.txt adds after the original ones,
-- as {name, value} pairs in file order.
local function added_headers(signed_text, request)
  local head = split_message(signed_text)
  local lines = split_lines(head)
  local added = {}
  for i = request.head_lines + 1, #lines do
    local name, value = lines[i]:match("^([^:]+):(.*)$")
    if not name then
      error("sigv4 fixtures: bad signed header line " .. lines[i], 3)
    end
    added[#added + 1] = { name, value }
  end
  return added
end


-- Case folder names of a set ("v4" or "dynamodb"), sorted.
function _M.list(set)
  local dir = _M.root .. "/" .. set
  local names = {}
  local ok, lfs = pcall(require, "lfs")
  if ok then
    for entry in lfs.dir(dir) do
      if entry:sub(1, 1) ~= "." and lfs.attributes(dir .. "/" .. entry, "mode") == "directory" then
        names[#names + 1] = entry
      end
    end
  else
    local p = assert(io.popen("ls -1 '" .. dir .. "'"))
    for entry in p:lines() do
      names[#names + 1] = entry
    end
    p:close()
  end
  table.sort(names)
  if #names == 0 then
    error("sigv4 fixtures: no case folders under " .. dir, 2)
  end
  return names
end


-- Loads one case folder into a table:
--   name, set, dir, request (see parse_request), context (context.json),
--   region, service, time, access_key_id, secret_access_key, session_token,
--   normalize, sign_body, omit_session_token,
--   expected = { canonical_request, string_to_sign, signature, signed_request,
--                added_headers }
function _M.load(set, name)
  local dir = _M.root .. "/" .. set .. "/" .. name
  local context = cjson.decode(read_file(dir .. "/context.json"))
  local request = _M.parse_request(read_file(dir .. "/request.txt"))
  local signed = read_file(dir .. "/header-signed-request.txt")
  local creds = context.credentials or {}
  local function flag(v, default)
    if v == nil or v == cjson.null then return default end
    return v == true
  end
  local token = creds.token
  if token == cjson.null then token = nil end
  return {
    name = name,
    set = set,
    dir = dir,
    request = request,
    context = context,
    region = context.region,
    service = context.service,
    time = _M.parse_timestamp(context.timestamp),
    access_key_id = creds.access_key_id,
    secret_access_key = creds.secret_access_key,
    session_token = token,
    normalize = flag(context.normalize, true),
    sign_body = flag(context.sign_body, false),
    omit_session_token = flag(context.omit_session_token, false),
    expected = {
      canonical_request = read_file(dir .. "/header-canonical-request.txt"),
      string_to_sign = read_file(dir .. "/header-string-to-sign.txt"),
      signature = read_file(dir .. "/header-signature.txt"),
      signed_request = signed,
      added_headers = added_headers(signed, request),
    },
  }
end


-- Every case of every set, as {set, name} pairs.
function _M.all()
  local out = {}
  for _, set in ipairs({ "v4", "dynamodb" }) do
    for _, name in ipairs(_M.list(set)) do
      out[#out + 1] = { set, name }
    end
  end
  return out
end


-- The argument table of core.sigv4_sign for a loaded case. Headers are
-- fresh {name, value} pairs, so callers may modify them.
function _M.sign_args(case)
  local headers = {}
  for i, h in ipairs(case.request.headers) do
    headers[i] = { h[1], h[2] }
  end
  return {
    method = case.request.method,
    path = case.request.path,
    query = case.request.query,
    headers = headers,
    body = case.request.body,
    region = case.region,
    service = case.service,
    time = case.time,
    access_key_id = case.access_key_id,
    secret_access_key = case.secret_access_key,
    session_token = case.session_token,
    normalize = case.normalize,
    sign_body = case.sign_body,
    omit_session_token = case.omit_session_token,
  }
end


return _M
