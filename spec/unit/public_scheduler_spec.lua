-- The scheduler is part of the public facade: lunamodb.spawn / step / run.
local lunamodb = require "lunamodb"
local loopback = require "spec.helpers.loopback"

describe("lunamodb.spawn, lunamodb.step and lunamodb.run", function()
  it("are the scheduler's", function()
    assert.equal(lunamodb.scheduler.spawn, lunamodb.spawn)
    assert.equal(lunamodb.scheduler.step, lunamodb.step)
    assert.equal(lunamodb.scheduler.run, lunamodb.run)
  end)

  it("run model-free client calls concurrently and return their results", function()
    local srv = loopback.start{ routes = { ["*"] = {
      { status = 200, body = '{"TableNames":["t"]}', crc32 = true, delay_ms = 200 } } } }
    local client = lunamodb.Client.new{ region = "us-east-1", host = srv.url,
      access_key_id = "AKID", secret_access_key = "SECRET" }
    local tasks = {}
    for i = 1, 5 do
      tasks[i] = lunamodb.spawn(function() return client:call("ListTables", {}) end)
    end
    local steps = 0
    while lunamodb.step(10) > 0 do steps = steps + 1 end
    for i = 1, 5 do
      local ok, out = tasks[i]:result()
      assert.is_true(ok)
      assert.same({ "t" }, out.TableNames)
    end
    assert.is_true(steps > 1, "the loop kept stepping while the requests were in flight")
    assert.equal(5, srv:count())
    client:close()
    srv:stop()
  end)
end)
