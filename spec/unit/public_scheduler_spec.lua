-- The scheduler is part of the public facade: lunamodb.spawn / step / run.
local lunamodb = require "lunamodb"
local loopback = require "spec.helpers.loopback"

describe("lunamodb.spawn, lunamodb.step and lunamodb.run", function()
  it("are the scheduler's", function()
    assert.equal(lunamodb.scheduler.spawn, lunamodb.spawn)
    assert.equal(lunamodb.scheduler.step, lunamodb.step)
    assert.equal(lunamodb.scheduler.run, lunamodb.run)
    assert.equal(lunamodb.scheduler.io_wait, lunamodb.io_wait)
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

  it("tell a host's event loop which sockets to wait on and for how long (io_wait)", function()
    local socket = require "socket"
    local srv = loopback.start{ routes = { ["*"] = {
      { status = 200, body = '{"TableNames":["t"]}', crc32 = true, delay_ms = 300 } } } }
    local client = lunamodb.Client.new{ region = "us-east-1", host = srv.url,
      access_key_id = "AKID", secret_access_key = "SECRET" }
    local idle_timeout, idle_n = lunamodb.scheduler.io_wait()
    assert.same({ -1, 0 }, { idle_timeout, idle_n }, "no task: nothing to wait for")
    local tasks = {}
    for i = 1, 3 do
      tasks[i] = lunamodb.spawn(function() return client:call("ListTables", {}) end)
    end
    local timeout, n = lunamodb.scheduler.io_wait()
    assert.same({ 0, 0 }, { timeout, n }, "new tasks are ready: step now")

    lunamodb.step(0)   -- the tasks submit their requests and park
    local out = {}
    local saw_sockets, rounds = 0, 0
    while true do
      local t, count, same = lunamodb.scheduler.io_wait(out)
      assert.equal(out, same)
      if t == -1 then break end
      assert.is_true(t >= 0)
      if count > 0 then
        saw_sockets = math.max(saw_sockets, count)
        for i = 1, count do
          assert.is_true(math.type == nil or math.type(out[2 * i - 1]) == "integer")
          assert.is_true(out[2 * i - 1] >= 0)
          assert.is_true(out[2 * i] >= 1 and out[2 * i] <= 3)
        end
      end
      -- the host's wait: the reported timeout is an upper bound, nothing spins
      socket.sleep(math.min(t, 50) / 1000)
      lunamodb.step(0)
      rounds = rounds + 1
      assert.is_true(rounds < 500, "io_wait kept the host spinning")
    end
    assert.equal(3, saw_sockets, "one connection per request in flight")
    for i = 1, 3 do
      local ok, res = tasks[i]:result()
      assert.is_true(ok)
      assert.same({ "t" }, res.TableNames)
    end
    assert.has_error(function() lunamodb.scheduler.io_wait(42) end,
      "lunamodb.scheduler.io_wait: out must be a table (got number)")
    client:close()
    srv:stop()
  end)
end)
