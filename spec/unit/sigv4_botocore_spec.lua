-- SigV4 against botocore: random DynamoDB-shaped requests are signed by
-- lunamodb and by Debian's python3-botocore (botocore.auth.SigV4Auth) in
-- one Python process, and the results must agree byte for byte.
--
-- The reference must be there: without /usr/bin/python3 or botocore this
-- spec fails (never skips). scripts/install-deps.sh installs python3-botocore.
-- The `python3` on PATH may be a pyenv shim with another botocore, so the
-- interpreter is always /usr/bin/python3 (override: LUNAMODB_PYTHON).
-- Set LUNAMODB_SIGV4_SEED to replay a failing run.

local files = require "spec.helpers.files"
local core = require "lunamodb.core"
local cjson = require "cjson"

local PYTHON = os.getenv("LUNAMODB_PYTHON") or "/usr/bin/python3"
local NCASES = 50
local SEED = tonumber(os.getenv("LUNAMODB_SIGV4_SEED") or "") or os.time()

-- The reference signer. botocore signs with datetime.utcnow(), so the
-- module's datetime is replaced by one whose utcnow() returns each case's
-- time. The canonical request and string to sign are recorded as botocore
-- computes them, for diagnostics.
local PY_SCRIPT = [==[
import datetime, json, sys, types
try:
    import botocore
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
except Exception as e:
    sys.stderr.write("cannot import botocore: %s\n" % e)
    sys.exit(3)

class FixedDatetime(datetime.datetime):
    fixed = None
    @classmethod
    def utcnow(cls):
        return cls.fixed

botocore.auth.datetime = types.SimpleNamespace(
    datetime=FixedDatetime, timedelta=datetime.timedelta, timezone=datetime.timezone)

class RecordingSigV4Auth(botocore.auth.SigV4Auth):
    def canonical_request(self, request):
        self.recorded_cr = super().canonical_request(request)
        return self.recorded_cr
    def string_to_sign(self, request, canonical_request):
        self.recorded_sts = super().string_to_sign(request, canonical_request)
        return self.recorded_sts

with open(sys.argv[1], encoding="utf-8") as f:
    cases = json.load(f)
out = []
for c in cases:
    FixedDatetime.fixed = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=c["time"])
    headers = botocore.awsrequest.HTTPHeaders()
    for name, value in c["headers"]:
        headers[name] = value
    req = botocore.awsrequest.AWSRequest(method="POST", url=c["url"], headers=headers,
                                         data=c["body"].encode("utf-8"))
    creds = botocore.credentials.Credentials(c["access_key_id"], c["secret_access_key"],
                                             c.get("session_token"))
    auth = RecordingSigV4Auth(creds, "dynamodb", c["region"])
    auth.add_auth(req)
    out.append({
        "authorization": req.headers["Authorization"],
        "x_amz_date": req.headers["X-Amz-Date"],
        "x_amz_security_token": req.headers.get("X-Amz-Security-Token"),
        "canonical_request": auth.recorded_cr,
        "string_to_sign": auth.recorded_sts,
    })
with open(sys.argv[2], "w", encoding="utf-8") as f:
    json.dump(out, f)
print("botocore %s" % botocore.__version__)
]==]


-- {====================================================== random requests

local REGIONS = { "us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1",
                  "ap-southeast-2", "ap-northeast-1", "sa-east-1", "ca-central-1",
                  "af-south-1", "il-central-1", "us-gov-west-1" }
local OPS = { "GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan",
              "BatchGetItem", "BatchWriteItem", "TransactWriteItems", "ListTables",
              "DescribeTable", "CreateTable" }
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


local function pick(t)
  return t[math.random(#t)]
end


local function random_chars(alphabet, n)
  local out = {}
  for i = 1, n do
    local k = math.random(#alphabet)
    out[i] = alphabet:sub(k, k)
  end
  return table.concat(out)
end


-- UTF-8 encoding of one code point (LuaJIT has no utf8.char).
local function utf8_char(cp)
  if cp < 0x80 then
    return string.char(cp)
  elseif cp < 0x800 then
    return string.char(0xC0 + math.floor(cp / 0x40), 0x80 + cp % 0x40)
  elseif cp < 0x10000 then
    return string.char(0xE0 + math.floor(cp / 0x1000), 0x80 + math.floor(cp / 0x40) % 0x40,
                       0x80 + cp % 0x40)
  end
  return string.char(0xF0 + math.floor(cp / 0x40000), 0x80 + math.floor(cp / 0x1000) % 0x40,
                     0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end


-- A random valid UTF-8 string: ASCII (controls and quotes included),
-- Latin, CJK, emoji; never a surrogate.
local function random_text(max)
  local out = {}
  for i = 1, math.random(0, max) do
    local kind = math.random(10)
    local cp
    if kind <= 4 then
      cp = math.random(0x20, 0x7E)
    elseif kind == 5 then
      cp = pick({ 0x09, 0x0A, 0x0D, 0x22, 0x5C, 0x2F, 0x00, 0x7F })
    elseif kind <= 7 then
      cp = math.random(0xA0, 0x7FF)
    elseif kind <= 9 then
      cp = math.random(0x800, 0xD7FF)
    else
      cp = math.random(0x10000, 0x10FFFF)
    end
    out[i] = utf8_char(cp)
  end
  return table.concat(out)
end


-- A JSON 1.0 body shaped like a DynamoDB request.
local function random_body(op)
  if op == "ListTables" and math.random(2) == 1 then
    return "{}"
  end
  local item = {
    id = { S = random_text(24) },
    n = { N = tostring(math.random(-1000000, 1000000)) },
  }
  for i = 1, math.random(0, 6) do
    item["attr_" .. i .. random_text(3)] = { S = random_text(math.random(1, 4) == 1 and 2000 or 40) }
  end
  local body = { TableName = "t_" .. random_chars(ALNUM, 8), Item = item }
  if math.random(3) == 1 then
    body.ConditionExpression = "attribute_not_exists(#k)"
    body.ExpressionAttributeNames = { ["#k"] = "id" }
  end
  return cjson.encode(body)
end


-- The URL botocore is given and the Host header lunamodb signs: the port
-- only when it is not the scheme's default (what curl sends).
local function random_endpoint(region)
  local kind = math.random(6)
  if kind == 1 then
    return "http://127.0.0.1:8000/", "127.0.0.1:8000"
  elseif kind == 2 then
    local port = math.random(1025, 65535)
    return "http://localhost:" .. port .. "/", "localhost:" .. port
  elseif kind == 3 then
    return "https://dynamodb." .. region .. ".amazonaws.com:443/", "dynamodb." .. region .. ".amazonaws.com"
  elseif kind == 4 then
    return "http://dynamodb.local:80/", "dynamodb.local"
  elseif kind == 5 then
    return "https://dynamodb." .. region .. ".amazonaws.com:8443/",
           "dynamodb." .. region .. ".amazonaws.com:8443"
  end
  return "https://dynamodb." .. region .. ".amazonaws.com/", "dynamodb." .. region .. ".amazonaws.com"
end


-- Changes the case of a header name at random (names are case-insensitive).
local function random_case(name)
  local k = math.random(3)
  if k == 1 then return name:lower() end
  if k == 2 then return name:upper() end
  return name
end


local function random_case_table(i)
  local region = pick(REGIONS)
  local op = pick(OPS)
  local url, host = random_endpoint(region)
  local body = random_body(op)
  local target = "DynamoDB_20120810." .. op
  if math.random(4) == 1 then
    target = "  " .. target .. " "            -- trimmed when canonicalised
  end
  local headers = {
    { random_case("Content-Type"), math.random(5) == 1 and "application/x-amz-json-1.0   "
                                   or "application/x-amz-json-1.0" },
    { random_case("X-Amz-Target"), target },
  }
  if math.random(2) == 1 then                 -- botocore never signs it
    table.insert(headers, math.random(#headers + 1), { "User-Agent", "lunamodb/0.1 " .. random_chars(ALNUM, 6) })
  end
  if math.random(3) == 1 then
    headers[#headers + 1] = { "Content-Length", tostring(#body) }
  end
  if math.random(4) == 1 then
    headers[#headers + 1] = { "X-Custom", "a   b\t c  " .. random_chars(ALNUM, 4) }
  end
  if math.random(5) == 1 then
    headers[#headers + 1] = { "X-Amzn-Trace-Id", "Root=1-" .. random_chars("0123456789abcdef", 8) }
  end
  -- time: 2000-01-01 .. 2099-12-31
  local time = math.random(946684800, 4102444799)
  local c = {
    index = i,
    url = url,
    host = host,
    region = region,
    time = time,
    headers = headers,
    body = body,
    access_key_id = "AKIA" .. random_chars(ALNUM, 16),
    secret_access_key = random_chars(B64, 40),
  }
  if math.random(2) == 1 then
    c.session_token = random_chars(B64, math.random(16, 800)) .. "=="
  end
  return c
end

-- }{====================================================== the reference


local read_all, write_all = files.read, files.write


-- os.execute's result on Lua 5.1/LuaJIT (a status number) and 5.2+.
local function succeeded(a, _, code)
  if type(a) == "number" then return a == 0 end
  return a == true and (code == nil or code == 0)
end


-- Signs all cases with botocore in one Python process.
local function botocore_sign(cases)
  local f = io.open(PYTHON, "rb")
  if not f then
    error("SigV4 reference signer unavailable: " .. PYTHON .. " does not exist. "
          .. "Install Debian's python3 and python3-botocore (scripts/install-deps.sh).", 0)
  end
  f:close()
  local script, input, output, errors = os.tmpname(), os.tmpname(), os.tmpname(), os.tmpname()
  local ok, result = pcall(function()
    write_all(script, PY_SCRIPT)
    local wire = {}
    for i, c in ipairs(cases) do
      wire[i] = {
        url = c.url, region = c.region, time = c.time, headers = c.headers, body = c.body,
        access_key_id = c.access_key_id, secret_access_key = c.secret_access_key,
        session_token = c.session_token,
      }
    end
    write_all(input, cjson.encode(wire))
    local cmd = string.format("%s %s %s %s >/dev/null 2>%s", PYTHON, script, input, output, errors)
    if not succeeded(os.execute(cmd)) then
      local stderr = read_all(errors) or ""
      if stderr:find("cannot import botocore", 1, true) then
        error("SigV4 reference signer unavailable: " .. PYTHON .. " cannot import botocore ("
              .. stderr:gsub("%s+$", "") .. "). Install python3-botocore (scripts/install-deps.sh).", 0)
      end
      error("botocore signing failed: " .. stderr, 0)
    end
    local text = read_all(output)
    local decoded = text and text ~= "" and cjson.decode(text)
    if type(decoded) ~= "table" or #decoded ~= #cases then
      error("botocore signing returned no usable result: " .. tostring(text), 0)
    end
    return decoded
  end)
  for _, p in ipairs({ script, input, output, errors }) do
    os.remove(p)
  end
  if not ok then
    error(result, 0)
  end
  return result
end

-- }{=========================================================== the spec


describe("sigv4 against botocore (seed " .. SEED .. ")", function()
  math.randomseed(SEED)
  local cases = {}
  for i = 1, NCASES do
    cases[i] = random_case_table(i)
  end
  local reference

  setup(function()
    reference = botocore_sign(cases)
  end)

  it("has the botocore reference signer (" .. PYTHON .. ")", function()
    assert.is_table(reference)
    assert.equal(NCASES, #reference)
  end)

  for i, c in ipairs(cases) do
    local what = string.format("case %d: %s, %s, %s token, %d-byte body",
                               i, c.region, c.host, c.session_token and "with" or "without",
                               #c.body)
    it(what, function()
      assert.is_table(reference, "botocore reference did not run")
      local want = reference[i]
      local headers = { { "Host", c.host } }
      for _, h in ipairs(c.headers) do
        headers[#headers + 1] = { h[1], h[2] }
      end
      local got = core.sigv4_sign{
        method = "POST", path = "/", query = "", headers = headers, body = c.body,
        region = c.region, service = "dynamodb", time = c.time,
        access_key_id = c.access_key_id, secret_access_key = c.secret_access_key,
        session_token = c.session_token,
      }
      -- stage by stage, so a mismatch shows where the two differ
      assert.equal(want.canonical_request, got.canonical_request)
      assert.equal(want.string_to_sign, got.string_to_sign)
      assert.equal(want.authorization:match("Signature=(%x+)$"), got.signature)
      assert.equal(want.authorization, got.authorization)
      assert.equal(want.x_amz_date, got.amz_date)
      if c.session_token then
        assert.equal(c.session_token, want.x_amz_security_token)
      end

      -- the caching signer agrees with the one-shot call
      local s = core.signer()
      s:set_credentials(c.access_key_id, c.secret_access_key, c.session_token)
      local again = s:sign(c.region, "dynamodb", c.time, "POST", "/", "", headers, c.body)
      assert.equal(got.signature, again.signature)
    end)
  end
end)
