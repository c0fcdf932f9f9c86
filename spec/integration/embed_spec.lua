-- examples/embed: a C host that embeds Lua 5.4 with lunamodb linked statically
-- and drives lunamodb's I/O from its own loop: it waits in poll(2) on the
-- sockets lunamodb_io_wait reports, then calls scheduler.step(0).
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
    -- the host slept on lunamodb's sockets (several transfers at once) instead of
    -- spinning: a busy loop would tick tens of thousands of times
    local max_fds = tonumber(out:match("most sockets waited on: (%d+)\n"))
    assert.is_true(max_fds ~= nil and max_fds >= 2, out)
    assert.is_true(ticks < 1000, out)
  end)
end)
