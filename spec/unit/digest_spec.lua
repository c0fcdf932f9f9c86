-- The core's digests: CRC32 (x-amz-crc32), SHA-256, HMAC, UUIDs, randomness.
local core = require "lunamodb.core"

describe("core digests", function()
  it("computes the IEEE CRC32 DynamoDB sends", function()
    assert.equal(2745614147, core.crc32("{}"))            -- DynamoDB Local's reply to ListTables on an empty db
    assert.equal(0xCBF43926, core.crc32("123456789"))     -- the standard check value
    assert.equal(0, core.crc32(""))
    assert.equal(core.crc32(string.rep("x", 100000)), core.crc32(string.rep("x", 100000)))
    assert.are_not.equal(core.crc32('{"a":1}'), core.crc32('{"a":2}'))
  end)

  it("computes SHA-256 and HMAC-SHA256 (RFC 4231 case 2)", function()
    assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", core.sha256_hex(""))
    assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", core.sha256_hex("abc"))
    local mac = core.hmac_sha256("Jefe", "what do ya want for nothing?")
    assert.equal(32, #mac)
    assert.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      (mac:gsub(".", function(c) return string.format("%02x", c:byte()) end)))
  end)

  it("makes distinct version-4 UUIDs", function()
    local seen = {}
    for _ = 1, 200 do
      local u = core.uuid4()
      assert.matches("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$", u)
      assert.is_nil(seen[u])
      seen[u] = true
    end
  end)

  it("draws random floats in [0, 1)", function()
    local lo, hi = 1, 0
    for _ = 1, 2000 do
      local r = core.random()
      assert.is_true(r >= 0 and r < 1)
      lo, hi = math.min(lo, r), math.max(hi, r)
    end
    assert.is_true(lo < 0.05 and hi > 0.95)
  end)

  it("parses HTTP dates and measures time", function()
    assert.equal(784111777, core.parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"))
    assert.is_nil(core.parse_http_date("yesterday"))
    local a = core.monotonic_ms()
    core.sleep_ms(30)
    local waited = core.monotonic_ms() - a
    assert.is_true(waited >= 29 and waited < 1000, waited)
    assert.is_true(math.abs(core.now_ms() / 1000 - os.time()) < 5)
  end)
end)
