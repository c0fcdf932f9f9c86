-- Endpoint URLs, region names, header values and the container-credentials
-- allow-list (csrc/endpoint.c through lunamodb.core). reference/reliability.md
-- §3.2, §4 and §7.3.
local core = require "lunamodb.core"

describe("core.parse_url", function()
  -- { url, scheme, host, port, path, ipv6, host_header }
  local good = {
    { "https://dynamodb.us-east-1.amazonaws.com", "https", "dynamodb.us-east-1.amazonaws.com", 0, "/",
      false, "dynamodb.us-east-1.amazonaws.com" },
    { "https://dynamodb.us-east-1.amazonaws.com/", "https", "dynamodb.us-east-1.amazonaws.com", 0, "/",
      false, "dynamodb.us-east-1.amazonaws.com" },
    { "http://127.0.0.1:8000", "http", "127.0.0.1", 8000, "/", false, "127.0.0.1:8000" },
    { "http://localhost:8000/", "http", "localhost", 8000, "/", false, "localhost:8000" },
    { "HTTPS://Example.COM:8443/a/b", "https", "Example.COM", 8443, "/a/b", false, "Example.COM:8443" },
    { "http://h:80", "http", "h", 80, "/", false, "h" },                -- default port left out
    { "https://h:443/", "https", "h", 443, "/", false, "h" },
    { "https://h:80/", "https", "h", 80, "/", false, "h:80" },
    { "http://h:443/", "http", "h", 443, "/", false, "h:443" },
    { "http://h:65535", "http", "h", 65535, "/", false, "h:65535" },
    { "http://h:1", "http", "h", 1, "/", false, "h:1" },
    { "http://[::1]:8000/", "http", "::1", 8000, "/", true, "[::1]:8000" },
    { "http://[::1]", "http", "::1", 0, "/", true, "[::1]" },
    { "https://[2001:DB8:0:0:0:0:0:1]:443/", "https", "2001:DB8:0:0:0:0:0:1", 443, "/", true,
      "[2001:db8::1]" },
    { "http://[fd00:ec2::23]:80/x", "http", "fd00:ec2::23", 80, "/x", true, "[fd00:ec2::23]" },
    { "http://dynamodb_local:8000", "http", "dynamodb_local", 8000, "/", false, "dynamodb_local:8000" },
    { "http://a-b.c-d.example./", "http", "a-b.c-d.example.", 0, "/", false, "a-b.c-d.example." },
    { "http://h/p%20q/r", "http", "h", 0, "/p%20q/r", false, "h" },
    { "http://10.0.0.255:9000", "http", "10.0.0.255", 9000, "/", false, "10.0.0.255:9000" },
  }
  for _, c in ipairs(good) do
    it(("accepts %s"):format(c[1]), function()
      local u, why = core.parse_url(c[1])
      assert.is_nil(why)
      assert.are.same({ scheme = c[2], host = c[3], port = c[4], path = c[5], ipv6 = c[6],
                        host_header = c[7] }, u)
    end)
  end

  local bad = {
    "", "dynamodb.us-east-1.amazonaws.com", "//h/", "h:80", "ftp://h/", "file:///etc/passwd",
    "gopher://h", "https:/h", "http://", "http:///path", "http://:80/",
    -- userinfo, query, fragment
    "http://user@h/", "http://user:pass@h/", "http://h@evil.example/", "http://h/?a=b", "http://h/#frag",
    "http://h?x", "http://h#x",
    -- injection and odd bytes
    "http://h\r\nX-Injected: 1/", "http://h/\n", "http://h\0.evil/", "http://h /", "http:// h/",
    " http://h/", "http://h/ ", "http://h\t/", "http://h\127/", "http://caf\195\169.example/",
    "http://h\\@evil/", "http://h/%zz", "http://h/%2",
    -- ports
    "http://h:", "http://h:0", "http://h:65536", "http://h:99999", "http://h:123456", "http://h:-1",
    "http://h:+80", "http://h:8a", "http://h:80:80",
    -- hosts
    "http://a..b/", "http://.a/", "http://h!x/", "http://h%41/", "http://[::1", "http://[::1]x/",
    "http://[zz::1]/", "http://[]/", "http://[127.0.0.1]/", "http://[fe80::1%25eth0]/",
    "http://::1/", ("http://%s/"):format(("a"):rep(64)),
    -- numeric hosts curl would rewrite
    "http://127.1/", "http://0x7f.0.0.1/", "http://0177.0.0.1/", "http://2130706433/",
    "http://127.0.0.01/", "http://256.0.0.1/", "http://1.2.3.4.5/", "http://127.0.0.1./",
  }
  for _, url in ipairs(bad) do
    it(("rejects %q"):format(url), function()
      local u, why = core.parse_url(url)
      assert.is_nil(u)
      assert.is_string(why)
      -- the reason never echoes the URL (it may carry a secret)
      if #url > 8 then assert.is_nil(why:find(url, 1, true)) end
    end)
  end

  it("rejects an over-long URL", function()
    assert.is_nil(core.parse_url("https://h/" .. ("a"):rep(5000)))
  end)

  it("reads a request URL (a transport's) with its query, and without its fragment", function()
    local function req(url)
      local u, why = core.parse_url(url, true)
      return u and { u.path, u.query, u.host_header } or why
    end
    assert.same({ "/", "x=1", "h" }, req("http://h?x=1"))
    assert.same({ "/a/b", "c=d&e", "[::1]:8000" }, req("http://[::1]:8000/a/b?c=d&e#frag"))
    assert.same({ "/a", nil, "h" }, req("http://h/a#x?y"))
    assert.same({ "/", "", "h:81" }, req("http://h:81/?"))
    assert.same({ "/", nil, "h" }, req("http://h"))
    -- everything else as for an endpoint
    for _, url in ipairs({ "http://user@h/?a", "http://h/?a b", "http://h/?a\r\nX: y", "ftp://h/?a",
      "http://h:0/?a", "http://127.1/?a", "http:///?a", "http://?a" }) do
      assert.is_string(req(url), url)
    end
    assert.is_nil(core.parse_url("http://h?x=1"))           -- an endpoint has no query
  end)
end)

describe("core.region_valid", function()
  local good = { "us-east-1", "eu-west-3", "ap-southeast-2", "us-gov-west-1", "cn-north-1", "local",
    "a", "1a", "a1", "UPPER-case", ("a"):rep(63), ("1"):rep(62) .. "a" }
  local bad = { "", "-", "-us-east-1", "us-east-1-", "123", "0", "us_east_1", "us east 1",
    "us-east-1.evil.example#", "us-east-1.amazonaws.com", "us-east-1/", "us-east-1\r\n",
    "us-east-1\0", "us-east-1 ", ("a"):rep(64), "ré-gion" }
  for _, r in ipairs(good) do
    it(("accepts %q"):format(r), function() assert.is_true(core.region_valid(r)) end)
  end
  for _, r in ipairs(bad) do
    it(("rejects %q"):format(r), function() assert.is_false(core.region_valid(r)) end)
  end
end)

describe("core.header_value_safe", function()
  local good = { "", "abc", "AQoDYXdzEJr//////////wEa+/=", "a b\tc", "caf\195\169" }
  local bad = { "a\rb", "a\nb", "a\r\nX-Injected: 1", "\n", "a\0b", "token\0" }
  for _, v in ipairs(good) do
    it(("accepts %q"):format(v), function() assert.is_true(core.header_value_safe(v)) end)
  end
  for _, v in ipairs(bad) do
    it(("rejects %q"):format(v), function() assert.is_false(core.header_value_safe(v)) end)
  end
end)

describe("core.container_uri_allowed", function()
  local good = {
    "https://creds.example.com/v1/credentials",
    "https://203.0.113.7:8443/creds",
    "http://127.0.0.1/creds",
    "http://127.0.0.1:51679/creds",
    "http://127.255.255.254/creds",
    "http://localhost/creds",
    "http://LocalHost:8080/creds",
    "http://169.254.170.2/v2/credentials/3d1e8c7b",
    "http://169.254.170.23/v1/credentials",
    "http://[::1]:8080/creds",
    "http://[0:0:0:0:0:0:0:1]/creds",
    "http://[fd00:ec2::23]/v1/credentials",
    "http://[FD00:0EC2:0000:0000:0000:0000:0000:0023]/v1/credentials",
  }
  local bad = {
    "http://example.com/creds",
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.170.3/",
    "http://169.254.170.22/",
    "http://10.0.0.1/",
    "http://128.0.0.1/",
    "http://126.255.255.255/",
    "http://[::2]/",
    "http://[fd00:ec2::254]/",
    "http://[fd00:ec2::24]/",
    "http://[::ffff:127.0.0.1]/",
    "http://localhost.evil.example/",
    "http://127.0.0.1.nip.io/",
    "http://localhost./",
    "http://0x7f000001/",
    "http://2130706433/",
    "http://127.1/",
    "http://0177.0.0.1/",
    "ftp://127.0.0.1/",
    "http://user@127.0.0.1/",
    "http://127.0.0.1@evil.example/",
    "http://127.0.0.1/\r\nX-Injected: 1",
    "http://127.0.0.1/?x=1",
    "127.0.0.1",
    "",
  }
  for _, u in ipairs(good) do
    it(("allows %s"):format(u), function() assert.is_true(core.container_uri_allowed(u)) end)
  end
  for _, u in ipairs(bad) do
    it(("refuses %q"):format(u), function() assert.is_false(core.container_uri_allowed(u)) end)
  end
end)
