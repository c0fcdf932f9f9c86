-- The core's digests: CRC32 (x-amz-crc32), SHA-256, HMAC, UUIDs, randomness.
local core = require "lunamodb.core"

describe("core digests", function()
  it("computes the IEEE CRC32 DynamoDB sends", function()
    assert.equal(2745614147, core.crc32("{}"))            -- DynamoDB Local's reply to ListTables on an empty db
    assert.equal(0xCBF43926, core.crc32("123456789"))     -- the standard check value
    assert.equal(0, core.crc32(""))
    assert.equal(core.crc32(string.rep("x", 100000)), core.crc32(string.rep("x", 100000)))
    -- both paths (carry-less multiply where the CPU has it, 16 bytes a step from 64 bytes
    -- on; the tables otherwise, 8 bytes a step from 16 bytes on) against a bit-by-bit
    -- reference, at every alignment and at the lengths around their steps and thresholds
    -- (loaded from text: LuaJIT cannot parse 5.4's bit operators)
    local reference = _VERSION == "Lua 5.4" and load([[
      local s = ...
      local crc = 0xFFFFFFFF
      for i = 1, #s do
        crc = crc ~ s:byte(i)
        for _ = 1, 8 do
          crc = (crc & 1) ~= 0 and ((crc >> 1) ~ 0xEDB88320) or (crc >> 1)
        end
      end
      return crc ~ 0xFFFFFFFF
    ]])
    local bytes = {}
    for i = 1, 5000 do bytes[i] = string.char((i * 131 + 7 + math.floor(i / 256) * 17) % 256) end
    local text = table.concat(bytes)
    for _, n in ipairs({ 0, 1, 7, 8, 15, 16, 17, 23, 24, 31, 47, 48, 63, 64, 65, 79, 80, 81,
                         112, 127, 128, 129, 143, 144, 191, 192, 255, 256, 1000, 1500,
                         4095, 4096, 4097, 4100 }) do
      for off = 1, 4 do
        local s = text:sub(off, off + n - 1)
        local want = reference and reference(s) or core.crc32(s, true)
        assert.equal(want, core.crc32(s), "length " .. #s)
        assert.equal(want, core.crc32(s, true), "length " .. #s .. ", portable")
      end
    end
    local long = string.rep(text, 60)
    assert.equal(core.crc32(long, true), core.crc32(long))
    assert.are_not.equal(core.crc32('{"a":1}'), core.crc32('{"a":2}'))
  end)

  it("computes SHA-256 and HMAC-SHA256 (RFC 4231 case 2)", function()
    assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", core.sha256_hex(""))
    assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", core.sha256_hex("abc"))
    local mac = core.hmac_sha256("Jefe", "what do ya want for nothing?")
    assert.equal(32, #mac)
    assert.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      (mac:gsub(".", function(c) return string.format("%02x", c:byte()) end)))
    local function hex(m) return (m:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
    -- case 1 (a 20-byte key), case 6 (a 131-byte key: hashed first), an empty key and message
    assert.equal("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
      hex(core.hmac_sha256(string.rep("\11", 20), "Hi There")))
    assert.equal("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
      hex(core.hmac_sha256(string.rep("\170", 131),
        "Test Using Larger Than Block-Size Key - Hash Key First")))
    assert.equal("b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad",
      hex(core.hmac_sha256("", "")))
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
