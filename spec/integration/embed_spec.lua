-- examples/embed: a C host that embeds Lua 5.4 with lunamodb linked statically
-- and drives lunamodb's I/O from its own loop (scheduler.step(0) once per tick).
-- The binary is the same under either interpreter running busted; `make embed`
-- builds it (`make integration` and `make integration-luajit` depend on it).
local ddb = require "spec.helpers.ddb"

local BIN = "build/embed/lunamodb-embed"

describe("examples/embed #integration", function()
  it("runs 20 lunamodb tasks from a C host's own loop against DynamoDB Local", function()
    local f = io.open(BIN, "rb")
    if not f then
      error(BIN .. " is missing: build it with `make embed` before the integration specs", 0)
    end
    f:close()
    local cmd = string.format("LUNAMODB_TEST_ENDPOINT='%s' %s \"$PWD\" 2>&1; echo \"exit=$?\"",
      ddb.endpoint(), BIN)
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    assert.matches("exit=0\n$", out)
    assert.matches("embed: 20/20 tasks succeeded\n", out, 1, true)
    local ticks = tonumber(out:match("ticks: (%d+)\n"))
    assert.is_number(ticks, out)
    -- more than one tick: the requests completed across the host's iterations,
    -- driven by its loop, instead of inside one blocking call
    assert.is_true(ticks > 1, out)
  end)
end)
