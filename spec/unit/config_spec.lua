-- Region, endpoint and credential resolution, and the checks Client.new makes
-- before any network call.
local lunamodb = require "lunamodb"
local config = require "lunamodb.config"

-- A getenv stand-in: only the given variables exist.
local function env(vars)
  return function(name) return vars[name] end
end

local write = require("spec.helpers.files").write

-- A transport that fails the spec if anything tries to use the network.
local no_network = {
  send = function() error("a network call was made") end,
  sleep = function() error("a sleep was made") end,
  close = function() end,
}

local function new(opts, vars)
  opts.transport = opts.transport or no_network
  return lunamodb.Client.new(opts, env(vars or {}))
end

local KEYS = { access_key_id = "AKID", secret_access_key = "SECRET" }
local function with_keys(t)
  for k, v in pairs(KEYS) do if t[k] == nil then t[k] = v end end
  return t
end

describe("region resolution", function()
  it("takes the option first, then AWS_REGION, AWS_DEFAULT_REGION, the profile", function()
    local dir = os.tmpname()
    write(dir .. ".config", "[default]\nregion = eu-west-3\n")
    local files = { AWS_CONFIG_FILE = dir .. ".config", AWS_SHARED_CREDENTIALS_FILE = dir .. ".none" }
    local function region(opts, vars)
      local all = {}
      for k, v in pairs(files) do all[k] = v end
      for k, v in pairs(vars) do all[k] = v end
      return config.resolve(with_keys(opts), env(all)).region
    end
    assert.equal("ap-south-1", region({ region = "ap-south-1" }, { AWS_REGION = "us-west-2" }))
    assert.equal("us-west-2", region({}, { AWS_REGION = "us-west-2", AWS_DEFAULT_REGION = "eu-central-1" }))
    assert.equal("eu-central-1", region({}, { AWS_DEFAULT_REGION = "eu-central-1" }))
    assert.equal("eu-west-3", region({}, {}))
    os.remove(dir .. ".config")
    os.remove(dir)
  end)

  it("raises a clear error when there is none", function()
    assert.has_error(function() new(with_keys{}, { HOME = "/nonexistent" }) end,
      "lunamodb.Client.new: no region: pass region = \"us-east-1\" (for example), or set "
      .. "AWS_REGION, or set region in the AWS config file's profile")
  end)

  it("refuses a region that is not a host label", function()
    for _, bad in ipairs({ "us-east-1.evil.example#", "-us", "us-", "123", "us east", "a\r\nb" }) do
      assert.has_error(function() new(with_keys{ region = bad }) end,
        string.format("lunamodb.Client.new: region %q is not a valid region name", bad))
    end
  end)
end)

describe("endpoint resolution", function()
  local function endpoint(opts, vars)
    opts.region = opts.region or "us-east-1"
    return config.resolve(with_keys(opts), env(vars or {})).endpoint
  end

  it("defaults to the regional AWS endpoint", function()
    assert.equal("https://dynamodb.us-east-1.amazonaws.com/", endpoint({}))
    assert.equal("https://dynamodb.cn-north-1.amazonaws.com.cn/", endpoint({ region = "cn-north-1" }))
  end)

  it("prefers the option, then AWS_ENDPOINT_URL_DYNAMODB, then AWS_ENDPOINT_URL", function()
    local vars = { AWS_ENDPOINT_URL_DYNAMODB = "http://127.0.0.1:8001",
                   AWS_ENDPOINT_URL = "http://127.0.0.1:8002" }
    assert.equal("http://127.0.0.1:8000/", endpoint({ host = "http://127.0.0.1:8000" }, vars))
    assert.equal("http://127.0.0.1:8001/", endpoint({}, vars))
    assert.equal("http://127.0.0.1:8002/", endpoint({}, { AWS_ENDPOINT_URL = "http://127.0.0.1:8002" }))
    assert.equal("https://dynamodb.us-east-1.amazonaws.com/",
      endpoint({}, { AWS_ENDPOINT_URL = "http://127.0.0.1:8002", AWS_IGNORE_CONFIGURED_ENDPOINT_URLS = "true" }))
  end)

  it("reads endpoint_url from the profile", function()
    local path = os.tmpname()
    write(path, "[profile dev]\nendpoint_url = http://localhost:8123\n")
    assert.equal("http://localhost:8123/", endpoint({ profile = "dev" },
      { AWS_CONFIG_FILE = path, AWS_SHARED_CREDENTIALS_FILE = path .. ".none" }))
    os.remove(path)
  end)

  it("refuses malformed endpoints before any network call", function()
    local bad = {
      "ftp://example.com", "http://", "http://exa mple.com", "http://a.com/path",
      "http://a.com:99999", "http://user:pw@a.com", "http://a.com?x=1", "example.com",
      "http://a.com\r\nX-Evil: 1",
    }
    for _, url in ipairs(bad) do
      local ok, err = pcall(new, with_keys{ region = "us-east-1", host = url })
      assert.is_false(ok, url)
      assert.matches("^lunamodb%.Client%.new: endpoint from the host option ", err)
    end
  end)
end)

describe("credential resolution", function()
  local function source(opts, vars)
    opts.region = "us-east-1"
    opts.transport = no_network
    local c = lunamodb.Client.new(opts, env(vars))
    return c.credentials:get(no_network)
  end

  it("takes explicit options first", function()
    local creds = source({ access_key_id = "AKID", secret_access_key = "S", session_token = "T" },
      { AWS_ACCESS_KEY_ID = "ENVKEY", AWS_SECRET_ACCESS_KEY = "ENVSECRET" })
    assert.same({ "AKID", "S", "T", "options" },
      { creds.access_key_id, creds.secret_access_key, creds.session_token, creds.source })
  end)

  it("then the environment, with AWS_SESSION_TOKEN", function()
    local creds = source({}, { AWS_ACCESS_KEY_ID = "ENVKEY", AWS_SECRET_ACCESS_KEY = "ENVSECRET",
                               AWS_SESSION_TOKEN = "ENVTOKEN" })
    assert.same({ "ENVKEY", "ENVSECRET", "ENVTOKEN", "environment" },
      { creds.access_key_id, creds.secret_access_key, creds.session_token, creds.source })
  end)

  it("then the shared files' profile, credentials file over config file", function()
    local base = os.tmpname()
    write(base .. ".cred", "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = FILESECRET\n"
      .. "[work]\naws_access_key_id = WORKKEY\naws_secret_access_key = WORKSECRET\n"
      .. "aws_session_token = WORKTOKEN\n")
    write(base .. ".conf", "[profile work]\naws_access_key_id = CONFKEY\naws_secret_access_key = CONFSECRET\n")
    local files = { AWS_SHARED_CREDENTIALS_FILE = base .. ".cred", AWS_CONFIG_FILE = base .. ".conf" }
    local creds = source({}, files)
    assert.equal("FILEKEY", creds.access_key_id)
    assert.equal("profile default", creds.source)
    files.AWS_PROFILE = "work"
    creds = source({}, files)
    assert.same({ "WORKKEY", "WORKSECRET", "WORKTOKEN" },
      { creds.access_key_id, creds.secret_access_key, creds.session_token })
    -- a profile named in code skips the environment, as the AWS SDKs do
    files.AWS_PROFILE = nil
    files.AWS_ACCESS_KEY_ID, files.AWS_SECRET_ACCESS_KEY = "ENVKEY", "ENVSECRET"
    creds = source({ profile = "work" }, files)
    assert.equal("WORKKEY", creds.access_key_id)
    assert.has_error(function() source({ profile = "nope" }, files) end,
      "lunamodb.Client.new: profile 'nope' is not in the shared credentials or config file")
    os.remove(base .. ".cred"); os.remove(base .. ".conf"); os.remove(base)
  end)

  it("refuses half-configured and unsupported credentials", function()
    assert.has_error(function() source({ access_key_id = "A" }, {}) end,
      "lunamodb.Client.new: access_key_id and secret_access_key must be given together")
    assert.has_error(function() source({}, { AWS_ACCESS_KEY_ID = "A" }) end,
      "lunamodb.Client.new: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together")
    local path = os.tmpname()
    write(path, "[profile r]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n")
    local ok, err = pcall(source, { profile = "r" }, { AWS_CONFIG_FILE = path })
    assert.is_false(ok)
    assert.matches("uses assume%-role, SSO, web identity or credential_process", err)
    os.remove(path)
  end)

  it("refuses CR/LF in values that become headers", function()
    assert.has_error(function()
      source({ access_key_id = "AKID", secret_access_key = "S", session_token = "T\r\nX: y" }, {})
    end, "lunamodb.Client.new: session_token contains CR, LF or NUL")
    assert.has_error(function()
      source({}, { AWS_ACCESS_KEY_ID = "A\nB", AWS_SECRET_ACCESS_KEY = "S" })
    end, "lunamodb.Client.new: AWS_ACCESS_KEY_ID contains CR, LF or NUL")
  end)

  it("raises when nothing can provide credentials", function()
    assert.has_error(function() source({}, { AWS_EC2_METADATA_DISABLED = "true", HOME = "/nonexistent" }) end,
      "lunamodb.Client.new: no AWS credentials: pass access_key_id and secret_access_key, set "
      .. "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or configure a profile (EC2 instance "
      .. "metadata is disabled by AWS_EC2_METADATA_DISABLED)")
  end)

  it("refuses a container credentials URI outside the allow-list", function()
    assert.has_error(function()
      source({}, { AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://169.254.169.254/creds" })
    end, "lunamodb: AWS_CONTAINER_CREDENTIALS_FULL_URI must use https or a loopback, ECS "
      .. "(169.254.170.2) or EKS (169.254.170.23, fd00:ec2::23) host")
  end)

  it("takes the CA bundle from the option, AWS_CA_BUNDLE, then the profile", function()
    local function bundle(opts, vars)
      opts.region = "us-east-1"
      return config.resolve(with_keys(opts), env(vars)).ca_bundle
    end
    assert.equal("/opt/a.pem", bundle({ ca_bundle = "/opt/a.pem" }, { AWS_CA_BUNDLE = "/opt/b.pem" }))
    assert.equal("/opt/b.pem", bundle({}, { AWS_CA_BUNDLE = "/opt/b.pem" }))
    local path = os.tmpname()
    write(path, "[default]\nca_bundle = /opt/c.pem\n")
    assert.equal("/opt/c.pem", bundle({}, { AWS_CONFIG_FILE = path }))
    os.remove(path)
  end)

  it("reads AWS_MAX_ATTEMPTS and checks it", function()
    local c = new(with_keys{ region = "us-east-1" }, { AWS_MAX_ATTEMPTS = "7" })
    assert.equal(7, c.policy:max_attempts())
    assert.has_error(function() new(with_keys{ region = "us-east-1" }, { AWS_MAX_ATTEMPTS = "x" }) end,
      "lunamodb.Client.new: AWS_MAX_ATTEMPTS / max_attempts must be a whole number >= 1 (got x)")
  end)
end)

describe("Client.new options", function()
  it("rejects unknown options and wrong types", function()
    assert.has_error(function() new(with_keys{ region = "us-east-1", regoin = "x" }) end,
      "lunamodb.Client.new: unknown option 'regoin'")
    assert.has_error(function() new(with_keys{ region = 1 }) end,
      "lunamodb.Client.new: option 'region' must be a string (got 1)")
    assert.has_error(function() new(with_keys{ region = "us-east-1", connect_timeout = -1 }) end,
      "lunamodb.Client.new: option 'connect_timeout' must be a positive number (got -1)")
    assert.has_error(function() new(with_keys{ region = "us-east-1", retry = { bse_ms = 1 } }) end,
      "lunamodb.Client.new: unknown retry option 'bse_ms'")
    assert.has_error(function() lunamodb.Client.new("us-east-1") end,
      "lunamodb.Client.new: options must be a table (got string)")
  end)

  it("never shows secrets in tostring", function()
    local c = new({ region = "us-east-1", access_key_id = "AKIDVISIBLE",
                    secret_access_key = "SECRETCANARY", session_token = "TOKENCANARY" })
    for _, s in ipairs({ tostring(c), tostring(c.credentials), tostring(c.signer) }) do
      assert.is_nil(s:find("SECRETCANARY", 1, true))
      assert.is_nil(s:find("TOKENCANARY", 1, true))
    end
  end)
end)

describe("client:call argument checks", function()
  local c = new(with_keys{ region = "us-east-1", host = "http://127.0.0.1:9" })

  it("rejects unknown operations before any network call", function()
    assert.has_error(function() c:call("ListTabels", {}) end,
      "lunamodb: client:call: unknown DynamoDB operation 'ListTabels'")
    assert.has_error(function() c:call(42, {}) end,
      "lunamodb: client:call: operation must be a string (got number)")
  end)

  it("rejects params that are not a table or cannot be encoded", function()
    assert.has_error(function() c:call("ListTables") end,
      'lunamodb: client:call("ListTables"): params must be a table (got nil)')
    assert.has_error(function() c:call("PutItem", { TableName = "t", Item = { k = { S = "\255" } } }) end,
      'lunamodb: client:call("PutItem"): params $.Item.k.S: string is not valid UTF-8 '
      .. "(binary data must be base64-encoded)")
  end)

  it("knows every operation the issue names", function()
    for _, op in ipairs({ "TransactWriteItems", "ExecuteStatement", "UpdateTimeToLive",
                          "UpdateTable", "DescribeLimits", "BatchWriteItem", "Query" }) do
      assert.is_true(lunamodb.Client.OPERATIONS[op], op)
    end
  end)
end)
