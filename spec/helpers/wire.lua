-- What the unit specs that drive models against the scripted loopback server share: raise
-- checks, DynamoDB's replies, what the server received, and a model declared on it.
local lunamodb = require "lunamodb"
local core = require "lunamodb.core"
local assert = require "luassert"   -- busted gives spec files this one, not their helpers

local json_decode, json_encode = core.json_decode, core.json_encode

local M = {}

-- Upper bounds of timings stretch under valgrind and the sanitizers (make valgrind, make
-- asan); lower bounds (sleeps) never do.
local preload = os.getenv("LD_PRELOAD") or ""
M.SLOW = preload:find("vgpreload", 1, true) and 10 or preload:find("asan", 1, true) and 2 or 1

-- f must raise exactly `expected` (after the "file:line: " prefix, if any).
function M.raises(f, expected)
  local ok, err = pcall(f)
  assert.is_false(ok, "expected the error: " .. expected)
  local msg = tostring(err):gsub("^[^\n]-:%d+: ", "", 1)
  assert.equal(expected, msg)
end

-- f must raise, with a message containing `fragment` (plain text). Returns the message.
function M.raises_with(f, fragment)
  local ok, err = pcall(f)
  assert.is_false(ok, "expected an error containing: " .. fragment)
  assert.matches(fragment, tostring(err), 1, true)
  return tostring(err)
end

-- raises_at("batch_spec") -> raises_here(f[, fragment]): f must raise an error positioned at
-- that spec file (the caller's line), containing fragment when given.
function M.raises_at(file)
  local at = "^[^\n]*" .. file:gsub("%p", "%%%0") .. "%.lua:%d+: "
  return function(f, fragment)
    local ok, err = pcall(f)
    assert.is_false(ok, "expected an error" .. (fragment and (" containing: " .. fragment) or ""))
    local msg = tostring(err)
    if fragment then assert.matches(fragment, msg, 1, true) end
    assert.matches(at, msg)
    return msg
  end
end

-- all_raise_at("batch_spec") -> all_raise_here(cases): each case { label, f, fragment } must
-- raise as raises_here says; every case is tried and all the wrong ones are reported together.
function M.all_raise_at(file)
  local at = "^[^\n]*" .. file:gsub("%p", "%%%0") .. "%.lua:%d+: "
  return function(cases)
    local wrong = {}
    for _, c in ipairs(cases) do
      local ok, err = pcall(c[2])
      local msg = tostring(err)
      if ok then
        wrong[#wrong + 1] = c[1] .. ": did not raise"
      elseif not msg:find(c[3], 1, true) then
        wrong[#wrong + 1] = c[1] .. ": raised " .. msg
      elseif not msg:match(at) then
        wrong[#wrong + 1] = c[1] .. ": not raised at the caller's line: " .. msg
      end
    end
    assert.equal("", table.concat(wrong, "\n"))
  end
end

function M.reply(t) return { status = 200, body = json_encode(t) } end
M.OK = M.reply{}

-- A DynamoDB error reply (status 400 unless given).
function M.ddb_error(code, message, status)
  return { status = status or 400, body = json_encode({
    __type = "com.amazonaws.dynamodb.v20120810#" .. code, message = message or code }) }
end

-- The requests the server received: { op, body = decoded JSON, text, t_ms }.
function M.sent(srv)
  local out = {}
  for i, r in ipairs(srv:requests()) do
    out[i] = { op = r.headers["x-amz-target"]:match("^DynamoDB_20120810%.(%a+)$"),
               body = assert(json_decode(r.body)), text = r.body, t_ms = r.t_ms }
  end
  return out
end

function M.bodies(srv)
  local out = {}
  for i, r in ipairs(M.sent(srv)) do out[i] = r.body end
  return out
end

-- The last request's body and operation.
function M.last(srv)
  local all = M.sent(srv)
  return all[#all].body, all[#all].op
end

-- A model on the loopback server (one attempt unless decl says); extra: options to change.
function M.on(server, decl, extra)
  decl.host, decl.region = server.url, "us-east-1"
  decl.access_key_id, decl.secret_access_key = "AKID", "SECRET"
  decl.max_attempts = decl.max_attempts or 1
  for k, v in pairs(extra or {}) do decl[k] = v end
  return lunamodb.Model(decl)
end

return M
