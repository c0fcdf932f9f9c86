-- lunamodb.scheduler: tasks make lunamodb calls non-blocking over one curl multi handle;
-- outside tasks the same calls block. Real clients against the scripted loopback server.
local lunamodb = require "lunamodb"
local core = require "lunamodb.core"
local errors = require "lunamodb.errors"
local scheduler = require "lunamodb.scheduler"
local curl_transport = require "lunamodb.transport.curl"
local loopback = require "spec.helpers.loopback"
-- under valgrind and the sanitizers a step's own bookkeeping takes a good part of a ms
local SLOW = require("spec.helpers.wire").SLOW

local now = core.monotonic_ms

local function client_for(srv, extra)
  local opts = {
    region = "us-east-1", host = srv.url,
    access_key_id = "AKID", secret_access_key = "SECRET",
  }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return lunamodb.Client.new(opts)
end

local function tables_body(...)
  return core.json_encode({ TableNames = setmetatable({ ... }, core.array_mt) })
end

local function ok_reply(delay_ms, ...)
  return { status = 200, body = tables_body(...), crc32 = true, delay_ms = delay_ms }
end

-- Times scheduler.step(timeout) calls: the longest one that only waited, and the longest
-- that did work, the first (which starts the tasks: signing, sending) and any a task
-- finished in. Waiting is bounded in every build; work takes ten times as long under
-- valgrind (SLOW).
local function step_timer(alive)
  local waited, worked, first = 0, 0, true
  return function(timeout)
    local s = now()
    local left = scheduler.step(timeout)
    local d = now() - s
    if first or left < alive then
      if d > worked then worked = d end
    elseif d > waited then
      waited = d
    end
    first, alive = false, left
    return left
  end, function() return waited, worked end
end

local function error_body(ns_code, message)
  return core.json_encode({ __type = ns_code, Message = message })
end

describe("lunamodb.scheduler", function()
  local servers, clients, tasks = {}, {}, {}

  local function start(routes)
    local srv = loopback.start{ routes = routes }
    servers[#servers + 1] = srv
    return srv
  end

  local function client(srv, extra)
    local c = client_for(srv, extra)
    clients[#clients + 1] = c
    return c
  end

  -- spawn, remembering the task so a failed spec cannot leave tasks behind
  local function spawn(fn, ...)
    local t = scheduler.spawn(fn, ...)
    tasks[#tasks + 1] = t
    return t
  end

  after_each(function()
    for _, t in ipairs(tasks) do t:cancel() end
    tasks = {}
    local left = scheduler.step(0)
    for _, c in ipairs(clients) do c:close() end
    clients = {}
    for _, srv in ipairs(servers) do srv:stop() end
    servers = {}
    assert.equal(0, left, "tasks left behind")
  end)

  it("runs 20 calls concurrently on one client: 20 x 300 ms in well under 1.5 s", function()
    local replies = {}
    for k = 1, 20 do replies[k] = ok_reply(300, "r" .. k) end
    local srv = start{ ["POST /"] = replies }
    local c = client(srv)
    local list = {}
    for i = 1, 20 do
      list[i] = spawn(function(name)
        assert.equal(list[i], scheduler.current())
        return c:call("ListTables", { ExclusiveStartTableName = name })
      end, "task" .. i)
    end
    assert.equal(20, #list)
    local t0 = now()
    scheduler.run()
    local elapsed = now() - t0
    assert.is_true(elapsed >= 290, "the replies were delayed: " .. elapsed)
    assert.is_true(elapsed < 1500, "concurrent: " .. elapsed .. " ms")

    -- the server answers its queue in arrival order: the k-th request got "rk"
    local reqs = srv:requests()
    assert.equal(20, #reqs)
    local got_reply = {}
    local first, last = math.huge, -math.huge
    for k, r in ipairs(reqs) do
      got_reply[core.json_decode(r.body).ExclusiveStartTableName] = "r" .. k
      first, last = math.min(first, r.t_ms), math.max(last, r.t_ms)
    end
    assert.is_true(last - first < 250, "all 20 requests were in flight together")
    for i, t in ipairs(list) do
      assert.is_true(t:done())
      assert.equal("finished", t:status())
      local ok, out, err = t:result()
      assert.is_true(ok)
      assert.is_nil(err)
      assert.same({ got_reply["task" .. i] }, out.TableNames)
    end
    assert.is_nil(scheduler.current())
  end)

  it("yields during retry backoff: the fast task finishes first", function()
    local slow_srv = start{ ["POST /"] = {
      { status = 400, headers = { ["x-amz-retry-after"] = "600" },
        body = error_body("com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException", "slow down") },
      ok_reply(0, "slow"),
    } }
    local fast_srv = start{ ["POST /"] = ok_reply(50, "fast") }
    local slow_c = client(slow_srv, { retry = { throttle_base_ms = 50 } })
    local fast_c = client(fast_srv)
    local order = {}
    local slow = spawn(function()
      local out, err = slow_c:call("ListTables", {})
      order[#order + 1] = "slow"
      return out, err
    end)
    local fast = spawn(function()
      for _ = 1, 3 do assert(fast_c:call("ListTables", {})) end
      order[#order + 1] = "fast"
      return "done"
    end)
    local t0 = now()
    scheduler.run()
    local elapsed = now() - t0
    assert.same({ "fast", "slow" }, order)
    local ok, out = slow:result()
    assert.is_true(ok)
    assert.same({ "slow" }, out.TableNames)
    assert.same({ true, "done" }, { fast:result() })
    local sreqs, freqs = slow_srv:requests(), fast_srv:requests()
    assert.equal(2, #sreqs)
    assert.equal(3, #freqs)
    -- the backoff honoured the retry-after floor, and the fast calls ran inside it
    assert.is_true(sreqs[2].t_ms - sreqs[1].t_ms >= 590)
    assert.is_true(freqs[3].t_ms < sreqs[2].t_ms)
    assert.is_true(elapsed < 600 + 150 * 3 + 400, "not serialised: " .. elapsed)
  end)

  it("step(0) never waits while 10 slow requests run (a 16 ms game loop keeps ticking)", function()
    local srv = start{ ["POST /"] = ok_reply(400, "x") }
    local c = client(srv)
    local list = {}
    for i = 1, 10 do list[i] = spawn(function() return c:call("ListTables", {}) end) end
    local ticks, alive = 0, 10
    local step, worst = step_timer(alive)
    local t0 = now()
    while alive > 0 do
      alive = step(0)
      ticks = ticks + 1
      assert.is_true(now() - t0 < 5000, "the loop finishes")
      core.sleep_ms(16)                     -- the rest of the frame
    end
    local waited, worked = worst()
    assert.is_true(waited <= 50, "a step waited " .. waited .. " ms")
    assert.is_true(worked <= 50 * SLOW, "a step worked " .. worked .. " ms")
    assert.is_true(ticks >= 15, "kept ticking: " .. ticks)
    for _, t in ipairs(list) do
      local ok, out = t:result()
      assert.is_true(ok)
      assert.same({ "x" }, out.TableNames)
    end
  end)

  it("step(16) waits in curl's poll at most its timeout", function()
    local srv = start{ ["POST /"] = ok_reply(300, "x") }
    local c = client(srv)
    for _ = 1, 10 do spawn(function() return assert(c:call("ListTables", {})) end) end
    local ticks, alive = 0, 10
    local step, worst = step_timer(alive)
    local t0 = now()
    while alive > 0 do
      alive = step(16)
      ticks = ticks + 1
    end
    local elapsed = now() - t0
    local waited, worked = worst()
    assert.is_true(waited <= 50, "a step waited " .. waited .. " ms")
    assert.is_true(worked <= 50 * SLOW, "a step worked " .. worked .. " ms")
    assert.is_true(elapsed < 1000)
    -- it waited: about one step per 16 ms, not thousands of busy ones
    assert.is_true(ticks >= 10 and ticks <= elapsed / 16 * 2 + 20, ticks .. " ticks in " .. elapsed)
  end)

  it("waits for sleeps without spinning, at most timeout_ms and never past the deadline", function()
    -- the slack past each wait is the step's own work, ten times longer under valgrind
    -- (SLOW); every bound stays far below the wait a wrong step would make
    local t = spawn(function() scheduler.sleep(200); return "woke" end)
    local s = now()
    assert.equal(1, scheduler.step(0))          -- starts it: it sleeps
    assert.is_true(now() - s < 30 * SLOW)
    s = now()
    assert.equal(1, scheduler.step(50))
    local d = now() - s
    assert.is_true(d >= 45 and d < 50 + 70 * SLOW, "waited the timeout: " .. d)
    s = now()
    scheduler.step(5000)                          -- waits only until the deadline
    d = now() - s
    assert.is_true(d < 150 + 100 * SLOW, "stopped at the deadline: " .. d)
    scheduler.run()
    assert.same({ true, "woke" }, { t:result() })
    -- with nothing to wait for, step returns at once whatever the timeout
    s = now()
    assert.equal(0, scheduler.step(1000))
    local at_once = now() - s
    assert.is_true(at_once < 30 * SLOW, "returned after " .. at_once .. " ms")
  end)

  describe("errors", function()
    it("an error nobody asked about is raised by the step, with the task's stack, once", function()
      local other = spawn(function() scheduler.sleep(30); return "fine" end)
      local bad = spawn(function()
        local function inner() error("boom") end
        inner()
      end)
      local ok, err = pcall(scheduler.step, 0)
      assert.is_false(ok)
      assert.matches("boom", err)
      assert.matches("stack traceback", err)
      assert.matches("inner", err)
      assert.equal("failed", bad:status())
      -- kept on the task, as raised
      local rok, rerr = bad:result()
      assert.is_false(rok)
      assert.matches("scheduler_spec.lua:%d+: boom$", rerr)
      assert.equal(err, bad.traceback)
      -- the other task was not disturbed, and the error is not raised again
      scheduler.run()
      assert.same({ true, "fine" }, { other:result() })
    end)

    it("raises error objects unchanged, one per step", function()
      local e1 = errors.new{ code = "First", message = "one" }
      local e2 = errors.new{ code = "Second", message = "two" }
      spawn(function() error(e1) end)
      spawn(function() error(e2) end)
      local ok, err = pcall(scheduler.step, 0)
      assert.is_false(ok)
      assert.equal(e1, err)
      ok, err = pcall(scheduler.step, 0)
      assert.is_false(ok)
      assert.equal(e2, err)
      assert.equal(0, scheduler.step(0))
    end)

    it("run() raises it too, and can go on afterwards", function()
      local later = spawn(function() scheduler.sleep(50); return 1 end)
      spawn(function() error("early") end)
      local ok, err = pcall(scheduler.run)
      assert.is_false(ok)
      assert.matches("early", err)
      assert.is_false(later:done())
      scheduler.run()
      assert.same({ true, 1 }, { later:result() })
    end)

    it("is returned, not raised, to whoever waits for the task", function()
      -- outside any task: task:result() drives the scheduler
      local t = spawn(function() scheduler.sleep(10); error("collected") end)
      local ok, err = t:result()
      assert.is_false(ok)
      assert.matches("collected$", err)

      -- a task waiting for another
      local parent = spawn(function()
        local child = scheduler.spawn(function() scheduler.sleep(10); error({ code = "Child" }) end)
        local cok, cerr = child:result()
        return cok, cerr.code
      end)
      scheduler.run()
      assert.same({ true, false, "Child" }, { parent:result() })

      -- asked about in the same step it failed in
      local failing = spawn(function() error("seen") end)
      local watcher = spawn(function() return failing:result() end)
      scheduler.run()
      local wok, wres, werr = watcher:result()
      assert.is_true(wok)
      assert.is_false(wres)
      assert.matches("seen$", werr)
    end)

    it("scheduler.join collects a group: the first failure in array order", function()
      local a = spawn(function() scheduler.sleep(40); return "a" end)
      local b = spawn(function() scheduler.sleep(20); error("b failed") end)
      local c = spawn(function() error("c failed") end)
      local ok, err = scheduler.join{ a, b, c }
      assert.is_false(ok)
      assert.matches("b failed$", err)
      assert.is_true(a:done() and b:done() and c:done())
      assert.same({ true, "a" }, { a:result() })
      assert.is_true(scheduler.join{ a })
      assert.is_true(scheduler.join{})
    end)

    it("misuse: step/run inside a task, waiting for oneself, a deadlock", function()
      local t = spawn(function() scheduler.step(0) end)
      local t2 = spawn(function() scheduler.current():result() end)
      scheduler.join{ t, t2 }
      local _, err = t:result()
      assert.matches("cannot be called from inside a task", err)
      _, err = t2:result()
      assert.matches("cannot wait for itself", err)

      local x, y
      x = spawn(function() scheduler.sleep(1); return y:result() end)
      y = spawn(function() scheduler.sleep(1); return x:result() end)
      local ok, derr = pcall(scheduler.run)
      assert.is_false(ok)
      assert.matches("deadlock", derr)
      assert.is_true(x:cancel())
      assert.equal("ready", y:status())        -- woken with x's cancellation
      assert.same({ true, false, "cancelled" }, { y:result() })
      assert.equal("finished", y:status())

      assert.has_error(function() scheduler.spawn("nope") end)
      assert.has_error(function() scheduler.step("soon") end)
      assert.has_error(function() scheduler.sleep() end)
    end)
  end)

  describe("cancel", function()
    it("releases the request a task waits on", function()
      local srv = start{ ["POST /"] = { action = "hang" } }
      local c = client(srv)
      local reached = false
      local t = spawn(function()
        c:call("ListTables", {})
        reached = true
      end)
      local t0 = now()
      while srv:count() < 1 do
        scheduler.step(10)
        assert.is_true(now() - t0 < 5000, "the request reached the server")
      end
      assert.equal("waiting", t:status())
      assert.equal(1, c.transport.http:poll(0))       -- in flight
      local joiner = spawn(function() return t:result() end)
      scheduler.step(0)
      assert.equal("joining", joiner:status())
      assert.is_true(t:cancel())
      assert.is_false(t:cancel())
      assert.equal("cancelled", t:status())
      assert.same({ false, "cancelled" }, { t:result() })
      assert.equal(0, c.transport.http:poll(0))       -- released: nothing in flight
      scheduler.run()
      assert.is_false(reached)
      assert.same({ true, false, "cancelled" }, { joiner:result() })
      -- the transport still works afterwards
      assert.equal(0, scheduler.step(0))
    end)

    it("stops sleeping and new tasks, and a task may cancel itself", function()
      local ran = false
      local new = spawn(function() ran = true end)
      local sleeper = spawn(function() scheduler.sleep(10000); ran = true end)
      local self_cancel = spawn(function()
        scheduler.current():cancel()
        ran = true
      end)
      assert.is_true(new:cancel())
      scheduler.step(0)
      assert.equal("sleeping", sleeper:status())
      assert.equal("cancelled", self_cancel:status())
      assert.is_true(sleeper:cancel())
      local s = now()
      assert.equal(0, scheduler.step(1000))
      assert.is_true(now() - s < 50, "no sleep left to wait for")
      assert.is_false(ran)
      assert.same({ false, "cancelled" }, { sleeper:result() })
    end)

    if coroutine.close then
      it("runs the task's to-be-closed variables (Lua 5.4)", function()
        local closed = false
        local chunk = assert(load([[
          local scheduler, mark = ...
          local guard <close> = setmetatable({}, { __close = mark })
          scheduler.sleep(10000)
        ]]))
        local t = spawn(chunk, scheduler, function() closed = true end)
        scheduler.step(0)
        t:cancel()
        assert.is_true(closed)
      end)
    end
  end)

  it("calls outside any task still block and work, and do not run tasks", function()
    local srv = start{ ["POST /"] = ok_reply(100, "blocking") }
    local c = client(srv)
    assert.is_nil(scheduler.current())
    local t = spawn(function() return "later" end)
    local s = now()
    local out, err = c:call("ListTables", {})
    assert.is_nil(err)
    assert.same({ "blocking" }, out.TableNames)
    assert.is_true(now() - s >= 90)
    assert.equal("new", t:status())
    s = now()
    c.transport:sleep(30)
    assert.is_true(now() - s >= 25)
    scheduler.sleep(1)
    scheduler.run()
    assert.same({ true, "later" }, { t:result() })
  end)

  it("nested: a task spawns tasks and waits for them", function()
    local srv = start{ ["POST /"] = ok_reply(300, "n") }
    local c = client(srv)
    local parent = spawn(function()
      local kids = {}
      for i = 1, 5 do
        kids[i] = scheduler.spawn(function()
          local out = assert(c:call("ListTables", {}))
          local grandchild = scheduler.spawn(function(x) return x * 2 end, i)
          local _, doubled = grandchild:result()
          return out.TableNames[1] .. doubled
        end)
      end
      assert.is_true(scheduler.join(kids))
      local results = {}
      for i, k in ipairs(kids) do
        local _, v = k:result()
        results[i] = v
      end
      return results
    end)
    local t0 = now()
    scheduler.run()
    assert.is_true(now() - t0 < 900, "children ran concurrently")
    assert.same({ true, { "n2", "n4", "n6", "n8", "n10" } }, { parent:result() })
    assert.equal(5, srv:count())
  end)

  it("wrap: generator coroutines inside a task yield the task; coroutine.wrap blocks", function()
    local srv = start{ ["POST /"] = ok_reply(250, "g") }
    local c = client(srv)
    local function pages(n)
      return scheduler.wrap(function()
        for i = 1, n do
          local out = assert(c:call("ListTables", {}))
          coroutine.yield(i, out.TableNames[1])
        end
      end)
    end
    local function consume()
      local got = {}
      local next_page = pages(2)
      for _ = 1, 2 do
        local i, name = next_page()
        got[#got + 1] = name .. i
      end
      return got
    end
    local a, b = spawn(consume), spawn(consume)
    local t0 = now()
    scheduler.run()
    local elapsed = now() - t0
    assert.is_true(elapsed < 900, "two tasks x two pages concurrently: " .. elapsed)
    assert.same({ true, { "g1", "g2" } }, { a:result() })
    assert.same({ true, { "g1", "g2" } }, { b:result() })
    -- outside a task the same generator blocks and works
    assert.same({ "g1", "g2" }, consume())
    -- a plain coroutine inside a task is not a task: its calls block, still correct
    local plain = spawn(function()
      local gen = coroutine.wrap(function()
        assert.is_nil(scheduler.current())
        coroutine.yield(assert(c:call("ListTables", {})).TableNames[1])
      end)
      return gen()
    end)
    scheduler.run()
    assert.same({ true, "g" }, { plain:result() })
    -- ... and cannot wait for an unfinished task (that would need a step inside the step)
    local pending = spawn(function() scheduler.sleep(20) end)
    local waits = spawn(function()
      return pcall(coroutine.wrap(function() pending:result() end))
    end)
    scheduler.run()
    local _, ok, err = waits:result()
    assert.is_false(ok)
    assert.matches("not a lunamodb task", err)
  end)

  it("a plain coroutine.yield() in a task lets the others run", function()
    local log = {}
    spawn(function() for i = 1, 3 do log[#log + 1] = "a" .. i; coroutine.yield() end end)
    spawn(function() for i = 1, 3 do log[#log + 1] = "b" .. i; scheduler.sleep(0) end end)
    scheduler.run()
    assert.same({ "a1", "b1", "a2", "b2", "a3", "b3" }, log)
  end)

  it("polls several transports at once", function()
    local srv1 = start{ ["POST /"] = ok_reply(200, "one") }
    local srv2 = start{ ["POST /"] = ok_reply(200, "two") }
    local c1, c2 = client(srv1), client(srv2)
    local shared = curl_transport.new()
    local c3 = client(srv1, { transport = shared })
    local c4 = client(srv2, { transport = shared })
    local list = {
      spawn(function() return c1:call("ListTables", {}) end),
      spawn(function() return c2:call("ListTables", {}) end),
      spawn(function() return c3:call("ListTables", {}) end),
      spawn(function() return c4:call("ListTables", {}) end),
    }
    local t0 = now()
    assert.is_true(scheduler.join(list))
    assert.is_true(now() - t0 < 600)
    local expect = { "one", "two", "one", "two" }
    for i, t in ipairs(list) do
      local _, out = t:result()
      assert.same({ expect[i] }, out.TableNames)
    end
  end)

  it("resumes a task whose response arrived between steps in the next step, not one later", function()
    local srv = start{ ["POST /"] = ok_reply(0, "t") }
    local c = client(srv)
    local t = spawn(function() return c:call("ListTables", {}) end)
    scheduler.step(0)                              -- sends the request, parks the task
    assert.is_false(t:done())
    local waited = 0
    while srv:count() < 1 and waited < 2000 do     -- the host's frame: the answer comes meanwhile
      core.sleep_ms(10)
      waited = waited + 10
    end
    core.sleep_ms(50)
    scheduler.step(0)
    assert.is_true(t:done(), "the step polled before resuming")
    local ok, out = t:result()
    assert.is_true(ok)
    assert.same({ "t" }, out.TableNames)
  end)

  describe("step's budget_ms", function()
    local function busy(ms)
      local stop = core.monotonic_us() + ms * 1000
      while core.monotonic_us() < stop do end
    end

    it("stops resuming once spent, and runs the rest first at the next step, in order", function()
      local log = {}
      for i = 1, 6 do
        spawn(function()
          busy(2 * SLOW)
          log[#log + 1] = i
          coroutine.yield()                        -- ready again: queued behind the rest
          log[#log + 1] = 10 + i
        end)
      end
      scheduler.step(0, 3 * SLOW)                  -- 2 ms each: the budget ends after two
      assert.same({ 1, 2 }, log)
      scheduler.step(0, 3 * SLOW)
      assert.same({ 1, 2, 3, 4 }, log)
      scheduler.step(0, 0)                         -- a budget of 0 still resumes one task
      assert.same({ 1, 2, 3, 4, 5 }, log)
      scheduler.step(0)                            -- no budget: every task ready, in order
      assert.same({ 1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15 }, log)
      assert.equal(0, scheduler.step(0))           -- task 6 yielded in the last one
      assert.same({ 1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16 }, log)
    end)

    it("loses and reorders no task over many partial steps", function()
      local log, list = {}, {}
      for i = 1, 50 do
        list[i] = spawn(function()
          for round = 1, 3 do
            log[#log + 1] = round * 100 + i
            if i % 7 == 0 then busy(1) end
            coroutine.yield()
          end
          return i
        end)
      end
      local steps = 0
      while scheduler.step(0, 0.5) > 0 do
        steps = steps + 1
        assert.is_true(steps < 10000)
      end
      assert.equal(150, #log)
      local expect = {}
      for round = 1, 3 do for i = 1, 50 do expect[#expect + 1] = round * 100 + i end end
      assert.same(expect, log)
      for i = 1, 50 do assert.same({ true, i }, { list[i]:result() }) end
      assert.is_true(steps > 3, "the budget split the work over more steps than rounds")
    end)

    it("is checked", function()
      assert.has_error(function() scheduler.step(0, -1) end,
        "lunamodb.scheduler.step: budget_ms must be a number >= 0 (got -1)")
      assert.has_error(function() scheduler.step(0, "2") end,
        "lunamodb.scheduler.step: budget_ms must be a number >= 0 (got string)")
      assert.has_error(function() scheduler.step(0, 0 / 0) end)
    end)
  end)
end)
