-- The AWS shared credentials and config files (csrc/credentials.c through
-- core.load_profile). Every test writes its own temporary files.
local core = require "lunamodb.core"

describe("core.load_profile", function()
  local files = {}

  local function write(content)
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(content)
    f:close()
    files[#files + 1] = path
    return path
  end

  local function missing()
    local path = os.tmpname()
    os.remove(path)
    return path
  end

  after_each(function()
    for _, p in ipairs(files) do os.remove(p) end
    files = {}
  end)

  local CREDENTIALS = table.concat({
    "# shared credentials",
    "[default]",
    "aws_access_key_id = AKIDDEFAULT",
    "aws_secret_access_key = default/secret+key==",
    "",
    "; a second profile",
    "[dev]",
    "aws_access_key_id=AKIDDEV",
    "aws_secret_access_key=dev=secret=with=equals",
    "aws_session_token = devtoken",
    "region = eu-central-1",
    "",
    "[profile dev]",
    "aws_access_key_id = NOT-IN-CREDENTIALS-FILE",
  }, "\n") .. "\n"

  local CONFIG = table.concat({
    "[default]",
    "region = us-west-2",
    "aws_access_key_id = AKIDFROMCONFIG",
    "max_attempts = 7",
    "",
    "[profile dev]",
    "region = eu-west-1",
    "endpoint_url = http://localhost:8000",
    "ca_bundle = /etc/ssl/dev.pem",
    "s3 =",
    "    max_concurrent_requests = 20",
    "    region = nested-not-a-region",
    "",
    "[dev]",
    "region = bare-section-is-not-a-profile-in-config",
    "",
    "[profile   role]",
    "role_arn = arn:aws:iam::123456789012:role/x",
    "source_profile = dev",
    "credential_source = Environment",
    "credential_process = /bin/false",
    "web_identity_token_file = /var/run/token",
    "",
    "[sso-session corp]",
    "sso_start_url = https://corp.awsapps.com/start",
    "",
    "[profile sso]",
    "sso_session = corp",
    "sso_start_url = https://corp.awsapps.com/start",
    "region = us-east-2",
  }, "\n") .. "\n"

  it("reads the default profile from both files, credentials winning", function()
    local p = assert(core.load_profile(write(CREDENTIALS), write(CONFIG), "default"))
    assert.are.same({
      found = true,
      aws_access_key_id = "AKIDDEFAULT",
      aws_secret_access_key = "default/secret+key==",
      region = "us-west-2",
      max_attempts = "7",
    }, p)
  end)

  it("reads a named profile: [name] in credentials, [profile name] in config", function()
    local p = assert(core.load_profile(write(CREDENTIALS), write(CONFIG), "dev"))
    assert.are.same({
      found = true,
      aws_access_key_id = "AKIDDEV",
      aws_secret_access_key = "dev=secret=with=equals",
      aws_session_token = "devtoken",
      region = "eu-central-1",           -- the credentials file wins over config's eu-west-1
      endpoint_url = "http://localhost:8000",
      ca_bundle = "/etc/ssl/dev.pem",
    }, p)
  end)

  it("uses the config file alone", function()
    local p = assert(core.load_profile(nil, write(CONFIG), "dev"))
    assert.are.equal("eu-west-1", p.region)   -- not the nested s3 region, not [dev]
    assert.is_nil(p.aws_access_key_id)
    assert.is_true(p.found)
  end)

  it("uses the credentials file alone", function()
    local p = assert(core.load_profile(write(CREDENTIALS), nil, "default"))
    assert.are.equal("AKIDDEFAULT", p.aws_access_key_id)
    assert.is_nil(p.region)
  end)

  it("reads [profile  name] with extra blanks and the role keys", function()
    local p = assert(core.load_profile(nil, write(CONFIG), "role"))
    assert.are.same({
      found = true,
      role_arn = "arn:aws:iam::123456789012:role/x",
      source_profile = "dev",
      credential_source = "Environment",
      credential_process = "/bin/false",
      web_identity_token_file = "/var/run/token",
    }, p)
  end)

  it("reads sso keys from the profile, not from the sso-session section", function()
    local p = assert(core.load_profile(nil, write(CONFIG), "sso"))
    assert.are.equal("corp", p.sso_session)
    assert.are.equal("https://corp.awsapps.com/start", p.sso_start_url)
    assert.are.equal("us-east-2", p.region)
    local q = assert(core.load_profile(nil, write(CONFIG), "corp"))
    assert.is_false(q.found)
  end)

  it("does not take [profile x] from the credentials file or [x] from config", function()
    local creds = write("[profile only]\naws_access_key_id = A\n")
    local conf = write("[only]\nregion = us-east-1\n")
    local p = assert(core.load_profile(creds, conf, "only"))
    assert.are.same({ found = false }, p)
  end)

  it("accepts [profile default] in config for the default profile", function()
    local p = assert(core.load_profile(nil, write("[profile default]\nregion = sa-east-1\n"), "default"))
    assert.are.same({ found = true, region = "sa-east-1" }, p)
  end)

  it("reports an absent profile as found = false", function()
    local p = assert(core.load_profile(write(CREDENTIALS), write(CONFIG), "nobody"))
    assert.are.same({ found = false }, p)
  end)

  it("treats missing files as empty", function()
    local p = assert(core.load_profile(missing(), missing(), "default"))
    assert.are.same({ found = false }, p)
    p = assert(core.load_profile(nil, nil, "default"))
    assert.are.same({ found = false }, p)
    p = assert(core.load_profile(missing() .. "/sub/credentials", nil, "default"))
    assert.are.same({ found = false }, p)
  end)

  it("tolerates CRLF, a BOM, blanks and a last line without newline", function()
    local creds = write("\239\187\191[default]\r\n  aws_access_key_id\t=\tAKIDCRLF  \r\n"
      .. "aws_secret_access_key = crlf-secret\r\n\r\n\t\r\n[other]\r\nregion = x")
    local p = assert(core.load_profile(creds, nil, "default"))
    assert.are.same({ found = true, aws_access_key_id = "AKIDCRLF",
                      aws_secret_access_key = "crlf-secret" }, p)
    p = assert(core.load_profile(creds, nil, "other"))
    assert.are.same({ found = true, region = "x" }, p)
  end)

  it("lowercases keys and keeps full-line comments out", function()
    local conf = write("# c1\n; c2\n[default]\n  # indented comment\nREGION = ap-south-1\n"
      .. "Endpoint_URL = https://ddb.example\n;region = commented-out\n#region = commented-out\n")
    local p = assert(core.load_profile(nil, conf, "default"))
    assert.are.same({ found = true, region = "ap-south-1", endpoint_url = "https://ddb.example" }, p)
  end)

  it("keeps '#' and ';' inside values (no inline comments, like botocore)", function()
    local p = assert(core.load_profile(write("[default]\naws_secret_access_key = a#b;c\n"), nil, "default"))
    assert.are.equal("a#b;c", p.aws_secret_access_key)
  end)

  it("lets a later duplicate key win and merges repeated sections", function()
    local conf = write("[default]\nregion = one\n[other]\nregion = z\n[default]\nregion = two\n"
      .. "max_attempts = 3\n")
    local p = assert(core.load_profile(nil, conf, "default"))
    assert.are.same({ found = true, region = "two", max_attempts = "3" }, p)
  end)

  it("ignores lines indented deeper than the property before them", function()
    local conf = write("[default]\nregion = us-east-1\n  continued = nope\nservices =\n"
      .. "  dynamodb =\n    endpoint_url = http://nested\nendpoint_url = http://top\n")
    local p = assert(core.load_profile(nil, conf, "default"))
    assert.are.same({ found = true, region = "us-east-1", endpoint_url = "http://top" }, p)
  end)

  it("prefers aws_session_token over the legacy aws_security_token", function()
    local p = assert(core.load_profile(write("[default]\naws_security_token = old\n"
      .. "aws_session_token = new\n"), nil, "default"))
    assert.are.equal("new", p.aws_session_token)
    p = assert(core.load_profile(write("[default]\naws_security_token = legacy\n"), nil, "default"))
    assert.are.equal("legacy", p.aws_session_token)
  end)

  it("leaves keys with empty values out", function()
    local p = assert(core.load_profile(nil, write("[default]\nregion =\nendpoint_url= \n"), "default"))
    assert.are.same({ found = true }, p)
  end)

  describe("malformed files", function()
    local SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

    local function load_err(creds, conf)
      local p, err = core.load_profile(creds, conf, "default")
      assert.is_nil(p)
      assert.is_string(err)
      return err
    end

    it("names the file and line, never the line's text", function()
      local creds = write("[default]\naws_access_key_id = AKID\n" .. SECRET .. "\n")
      local err = load_err(creds, nil)
      assert.matches("credentials:3", err, 1, true)
      assert.is_nil(err:find(SECRET, 1, true))
      assert.is_nil(err:find("wJalr", 1, true))
    end)

    it("reports the config file by kind", function()
      local conf = write("[default]\nregion = us-east-1\n\n[profile x\naws_secret_access_key = " .. SECRET .. "\n")
      local err = load_err(nil, conf)
      assert.matches("config:4", err, 1, true)
      assert.is_nil(err:find(SECRET, 1, true))
    end)

    it("fails on an error in another profile's section too", function()
      local err = load_err(write("[default]\naws_access_key_id = A\n[other]\njunk " .. SECRET .. "\n"), nil)
      assert.matches("credentials:4", err, 1, true)
      assert.is_nil(err:find(SECRET, 1, true))
    end)

    local cases = {
      { "aws_secret_access_key = " .. SECRET .. "\n", "config:1" },    -- outside a section
      { "[default]\n= " .. SECRET .. "\n", "config:2" },              -- empty key
      { "[]\nregion = x\n", "config:1" },                              -- empty section name
      { "[default] " .. SECRET .. "\n", "config:1" },                  -- junk after header
      { "[default]\nregion = a\0" .. SECRET .. "\n", "config:2" },     -- NUL byte
      { "[default]\nregion = a\r" .. SECRET .. "\n", "config:2" },     -- stray CR
    }
    for i, c in ipairs(cases) do
      it(("rejects case %d at %s"):format(i, c[2]), function()
        local err = load_err(nil, write(c[1]))
        assert.matches(c[2], err, 1, true)
        assert.is_nil(err:find(SECRET, 1, true))
      end)
    end

    it("refuses a file over 1 MiB", function()
      local big = "[default]\n" .. ("# padding\n"):rep(110000)
      assert.is_true(#big > 1024 * 1024)
      local err = load_err(nil, write(big))
      assert.matches("config", err, 1, true)
      assert.matches("1 MiB", err, 1, true)
    end)

    it("accepts a file of exactly 1 MiB", function()
      local head = "[default]\nregion = us-east-1\n"
      local body = head .. ("#"):rep(1024 * 1024 - #head)
      local p = assert(core.load_profile(nil, write(body), "default"))
      assert.are.equal("us-east-1", p.region)
    end)

    it("refuses a directory", function()
      local dir = os.getenv("TMPDIR") or "/tmp"
      local err = load_err(dir, nil)
      assert.matches("credentials", err, 1, true)
    end)
  end)
end)
