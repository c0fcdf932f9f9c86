-- Batches without DynamoDB: BatchWriteItem and BatchGetItem requests captured
-- by the scripted loopback server and compared as parsed JSON. Bodies of at
-- most 25 writes / 100 keys, exact request shapes, a server that leaves half
-- of every body unprocessed (the rest is resent, with full-jitter backoff,
-- and nothing is lost), a server that never processes some writes (bounded
-- sends, err.unprocessed lists exactly what was not written), failing calls,
-- duplicates, versioned models, batches across models, and misuse refused
-- before any request (issue 6; reference pynamodb.md §3.7, §6.7, §6.8 and
-- reliability.md §2). Conditions use * + - so the spec also runs on LuaJIT.
local lunamodb = require "lunamodb"
local A = require "lunamodb.attributes"
local core = require "lunamodb.core"
local batch = require "lunamodb.batch"
local loopback = require "spec.helpers.loopback"

local json_decode, json_encode = core.json_decode, core.json_encode
local floor = math.floor

local W = require "spec.helpers.wire"
local SLOW, raises_with, reply, OK, sent, bodies = W.SLOW, W.raises_with, W.reply, W.OK, W.sent, W.bodies
local raises_here, all_raise_here = W.raises_at("batch_spec"), W.all_raise_at("batch_spec")
local ddb_error, on = W.ddb_error, W.on
-- what a gap between two requests may take beyond the backoff sleep itself
local SLACK_MS = 60 * SLOW

-- ms between consecutive requests
local function gaps(list)
  local out = {}
  for i = 2, #list do out[i - 1] = list[i].t_ms - list[i - 1].t_ms end
  return out
end

local lists = require "spec.helpers.lists"
local slice, sorted = lists.slice, lists.sorted

local srv
local function start(replies)
  srv = loopback.start{ routes = { ["POST /"] = replies } }
  return srv
end

local function user_model(server, extra)
  local decl = { name = "User", table_name = "users", attributes = {
    id = A.Unicode{ hash_key = true }, n = A.Number{}, name = A.Unicode{ null = true } } }
  for k, v in pairs(extra or {}) do decl[k] = v end
  return on(server, decl)
end

local function thread_model(server, extra)
  local decl = { name = "Thread", table_name = "threads", attributes = {
    forum = A.Unicode{ hash_key = true }, subject = A.Unicode{ range_key = true },
    views = A.Number{ default = 0 } } }
  for k, v in pairs(extra or {}) do decl[k] = v end
  return on(server, decl)
end

local function uid(i) return string.format("u%03d", i) end

-- Wire forms of the User items made by `users`.
local function user_wire(i) return { id = { S = uid(i) }, n = { N = tostring(i) } } end
local function put(i) return { PutRequest = { Item = user_wire(i) } } end
local function del(i) return { DeleteRequest = { Key = { id = { S = uid(i) } } } } end

local function users(User, a, b)
  local out = {}
  for i = a, b do out[#out + 1] = User.new{ id = uid(i), n = i } end
  return out
end

-- The id a wire request (or item, or key) stands for.
local function request_id(r)
  local wire = r.PutRequest and r.PutRequest.Item or r.DeleteRequest and r.DeleteRequest.Key or r
  return wire.id.S
end

-- A server leaving the second half (floor(n/2)) of every body it gets
-- unprocessed, echoing those requests back: the replies to script, the
-- bodies the client must send (each body, then each remainder, in turn),
-- what each reply leaves unprocessed, and which send of its body each is.
local function halving(table_name, requests, per_body)
  local script, expected, left_of, round = {}, {}, {}, {}
  for s = 1, #requests, per_body do
    local cur = slice(requests, s, math.min(s + per_body - 1, #requests))
    local r = 0
    while true do
      r = r + 1
      expected[#expected + 1] = { RequestItems = { [table_name] = cur } }
      round[#expected] = r
      local n = floor(#cur / 2)
      local left = slice(cur, #cur - n + 1, #cur)
      left_of[#expected] = left
      if n == 0 then
        script[#script + 1] = reply{ UnprocessedItems = {} }
        break
      end
      script[#script + 1] = reply{ UnprocessedItems = { [table_name] = left } }
      cur = left
    end
  end
  return script, expected, left_of, round
end

-- Puts and restores lunamodb.batch's tunables around each spec.
local saved_tunables
local function save_tunables()
  saved_tunables = { batch.MAX_ATTEMPTS, batch.BASE_MS, batch.CAP_MS }
end
local function restore_tunables()
  batch.MAX_ATTEMPTS, batch.BASE_MS, batch.CAP_MS = saved_tunables[1], saved_tunables[2], saved_tunables[3]
end

------------------------------------------------------------------ batch_write

describe("batch_write requests", function()
  before_each(save_tunables)
  after_each(function()
    restore_tunables()
    if srv then srv:stop(); srv = nil end
  end)

  it("keeps the documented defaults: 8 sends, 50 ms base, 5 s cap", function()
    assert.equal(8, batch.MAX_ATTEMPTS)
    assert.equal(50, batch.BASE_MS)
    assert.equal(5000, batch.CAP_MS)
  end)

  it("hands its bodies to a transport of the caller's own as strings (the curl transport takes "
    .. "them as core bodies), and retries with the unprocessed text", function()
    local seen = {}
    local transport = {
      send = function(_, _, _, _, body)
        seen[#seen + 1] = body
        -- the first answer leaves the second put unprocessed
        local left = #seen == 1 and json_encode{ UnprocessedItems = { users = { put(2) } } }
          or '{"UnprocessedItems":{}}'
        return 200, {}, left
      end,
      sleep = function() end,
      close = function() end,
    }
    local client = lunamodb.Client.new{ region = "us-east-1", host = "http://127.0.0.1:9",
      access_key_id = "AKID", secret_access_key = "SECRET", transport = transport }
    local User = lunamodb.Model{ name = "User", table_name = "users", client = client,
      attributes = { id = A.Unicode{ hash_key = true }, n = A.Number{} } }
    local items = users(User, 1, 2)
    assert.is_true(User:batch_write(function(b) for _, u in ipairs(items) do b:save(u) end end))
    assert.equal(2, #seen)
    assert.equal("string", type(seen[1]))
    assert.same({ RequestItems = { users = { put(1), put(2) } } }, json_decode(seen[1]))
    assert.same({ RequestItems = { users = { put(2) } } }, json_decode(seen[2]))
    assert.is_nil(transport.sends_core_bodies)
    assert.is_true(require("lunamodb.transport.curl").new().sends_core_bodies)
    -- a transport that takes core bodies gets them, and each is released once sent
    local held = {}
    transport.sends_core_bodies = true
    transport.send = function(_, _, _, _, body)
      held[#held + 1] = { body = body, core = core.is_body(body), text = tostring(body) }
      return 200, {}, '{"UnprocessedItems":{}}'
    end
    items = users(User, 3, 4)
    assert.is_true(User:batch_write(function(b) for _, u in ipairs(items) do b:save(u) end end))
    assert.equal(1, #held)
    assert.is_true(held[1].core)
    assert.same({ RequestItems = { users = { put(3), put(4) } } }, json_decode(held[1].text))
    assert.is_false((pcall(tostring, held[1].body)))
  end)

  it("60 saves and 1 delete: 3 calls of 25, 25 and 11 requests, in call order (§6.8)", function()
    local User = user_model(start{ OK })
    local items = users(User, 1, 60)
    local gone = User.new{ id = uid(61), n = 61 }
    local ok, err = User:batch_write(function(b)
      for _, u in ipairs(items) do b:save(u) end
      b:delete(gone)
    end)
    assert.is_true(ok, tostring(err))
    local all = {}
    for i = 1, 60 do all[i] = put(i) end
    all[61] = del(61)
    local got = sent(srv)
    assert.equal(3, #got)
    for i = 1, 3 do assert.equal("BatchWriteItem", got[i].op) end
    assert.same({ RequestItems = { users = slice(all, 1, 25) } }, got[1].body)
    assert.same({ RequestItems = { users = slice(all, 26, 50) } }, got[2].body)
    assert.same({ RequestItems = { users = slice(all, 51, 61) } }, got[3].body)
  end)

  it("a put carries the whole item, defaults included; a delete only the key", function()
    local Thread = thread_model(start{ OK })
    assert.is_true(Thread:batch_write(function(b)
      b:save(Thread.new{ forum = "lua", subject = "a" })
      b:delete(Thread.new{ forum = "lua", subject = "b", views = 9 })
      b:save(Thread.new{ forum = "c", subject = "a", views = 3 })
    end))
    assert.same({ { RequestItems = { threads = {
      { PutRequest = { Item = { forum = { S = "lua" }, subject = { S = "a" }, views = { N = "0" } } } },
      { DeleteRequest = { Key = { forum = { S = "lua" }, subject = { S = "b" } } } },
      { PutRequest = { Item = { forum = { S = "c" }, subject = { S = "a" }, views = { N = "3" } } } },
    } } } }, bodies(srv))
  end)

  it("a put of an item holding stored names the model keeps writes them back", function()
    local User = user_model(start{ OK }, { keep_unknown = true })
    local kept = User:from_dynamodb('{"id":{"S":"k"},"n":{"N":"1"},"legacy":{"S":"old"}}')
    assert.is_true(User:batch_write(function(b)
      b:save(kept)
      b:save(User.new{ id = "plain", n = 2 })
    end))
    assert.same({ { RequestItems = { users = {
      { PutRequest = { Item = { id = { S = "k" }, n = { N = "1" }, legacy = { S = "old" } } } },
      { PutRequest = { Item = { id = { S = "plain" }, n = { N = "2" } } } },
    } } } }, bodies(srv))
  end)

  it("the core's shorter path for a class it has seen still hands partial items and items "
    .. "with stored names aside to the Lua path", function()
    -- every attribute but the key may be null: a key-only item would encode as a whole one
    local Note = on(start{ OK }, { name = "Note", table_name = "notes", keep_unknown = true,
      attributes = { id = A.Unicode{ hash_key = true }, text = A.Unicode{ null = true } } })
    raises_here(function()
      Note:batch_write(function(b)
        b:save(Note.new{ id = "whole" })
        b:save(Note.get_ref("key-only"))
      end)
    end, "batch:save: this item was read through a projection")
    assert.equal(0, srv:count())
    local kept = Note:from_dynamodb('{"id":{"S":"k"},"legacy":{"S":"old"}}')
    assert.is_true(Note:batch_write(function(b)
      b:save(Note.new{ id = "plain", text = "t" })
      b:save(kept)
    end))
    assert.same({ { RequestItems = { notes = {
      { PutRequest = { Item = { id = { S = "plain" }, text = { S = "t" } } } },
      { PutRequest = { Item = { id = { S = "k" }, legacy = { S = "old" } } } },
    } } } }, bodies(srv))
  end)

  it("nothing queued: true, and no request", function()
    local User = user_model(start{ OK })
    assert.is_true(User:batch_write(function() end))
    assert.is_true(lunamodb.batch_write(function() end))
    assert.equal(0, srv:count())
  end)

  it("the explicit form: Model:batch_write() returns a batch that sends on commit()", function()
    local User = user_model(start{ OK })
    local b = User:batch_write()
    for _, u in ipairs(users(User, 1, 3)) do b:save(u) end
    b:delete(User.new{ id = uid(4), n = 4 })
    assert.equal(0, srv:count())
    assert.is_true(b:commit())
    assert.same({ { RequestItems = { users = { put(1), put(2), put(3), del(4) } } } }, bodies(srv))
    -- committed: the batch is empty again, and takes new writes (the same items too)
    assert.is_true(b:commit())
    assert.equal(1, srv:count())
    for _, u in ipairs(users(User, 1, 2)) do b:save(u) end
    assert.is_true(b:commit())
    assert.equal(2, srv:count())
    assert.same({ RequestItems = { users = { put(1), put(2) } } }, bodies(srv)[2])
    -- and lunamodb.batch_write() the same
    local any = lunamodb.batch_write()
    any:save(User.new{ id = uid(9), n = 9 })
    assert.equal(2, srv:count())
    assert.is_true(any:commit())
    assert.same({ RequestItems = { users = { put(9) } } }, bodies(srv)[3])
  end)

  it("items of two models sharing a client go in shared bodies, each table in call order", function()
    start{ OK }
    local User = user_model(srv)
    local Thread = thread_model(srv)
    assert.is_true(rawequal(User:client(), Thread:client()))
    assert.is_true(lunamodb.batch_write(function(b)
      b:save(User.new{ id = uid(1), n = 1 })
      b:save(Thread.new{ forum = "lua", subject = "x" })
      b:delete(User.new{ id = uid(2), n = 2 })
      b:delete(Thread.new{ forum = "lua", subject = "y" })
      b:save(User.new{ id = uid(3), n = 3 })
    end))
    assert.same({ { RequestItems = {
      users = { put(1), del(2), put(3) },
      threads = {
        { PutRequest = { Item = { forum = { S = "lua" }, subject = { S = "x" }, views = { N = "0" } } } },
        { DeleteRequest = { Key = { forum = { S = "lua" }, subject = { S = "y" } } } },
      },
    } } }, bodies(srv))
    -- the tables appear in the order of their first request
    assert.is_truthy(sent(srv)[1].text:find('^{"RequestItems":{"users":'))
  end)

  it("a batch across two models packs 25 requests per body whatever their table", function()
    start{ OK }
    local User = user_model(srv)
    local Thread = thread_model(srv)
    assert.is_true(lunamodb.batch_write(function(b)
      for i = 1, 20 do
        b:save(User.new{ id = uid(i), n = i })
        b:save(Thread.new{ forum = "f", subject = uid(i) })
      end
    end))
    local got = bodies(srv)
    assert.equal(2, #got)
    assert.equal(13, #got[1].RequestItems.users)
    assert.equal(12, #got[1].RequestItems.threads)
    assert.equal(7, #got[2].RequestItems.users)
    assert.equal(8, #got[2].RequestItems.threads)
  end)

  it("models with other connection settings: each client gets its own bodies", function()
    local other = loopback.start{ routes = { ["POST /"] = { OK } } }
    local ok, err = pcall(function()
      local User = user_model(start{ OK })
      local Thread = thread_model(other)
      assert.is_true(lunamodb.batch_write(function(b)
        b:save(User.new{ id = uid(1), n = 1 })
        b:save(Thread.new{ forum = "lua", subject = "x" })
      end))
      assert.same({ { RequestItems = { users = { put(1) } } } }, bodies(srv))
      assert.same({ { RequestItems = { threads = {
        { PutRequest = { Item = { forum = { S = "lua" }, subject = { S = "x" }, views = { N = "0" } } } },
      } } } }, bodies(other))
    end)
    other:stop()
    assert(ok, err)
  end)

  it("a model's batch refuses items of another model", function()
    start{ OK }
    local User = user_model(srv)
    local Thread = thread_model(srv)
    raises_here(function()
      User:batch_write(function(b) b:save(Thread.new{ forum = "lua", subject = "x" }) end)
    end, "lunamodb: batch:save: this batch writes User items, not Thread items")
    assert.equal(0, srv:count())
  end)

  it("refuses two writes of one item, before anything is sent", function()
    start{ OK }
    local User = user_model(srv)
    local Thread = thread_model(srv)
    raises_here(function()
      User:batch_write(function(b)
        b:save(User.new{ id = uid(1), n = 1 })
        b:save(User.new{ id = uid(1), n = 2 })
      end)
    end, "batch:save: the item with this key is already in the batch")
    raises_here(function()
      User:batch_write(function(b)
        b:save(User.new{ id = uid(1), n = 1 })
        b:delete(User.new{ id = uid(1), n = 1 })
      end)
    end, "batch:delete: the item with this key is already in the batch")
    raises_here(function()
      local b = Thread:batch_write()
      b:delete(Thread.new{ forum = "lua", subject = "x" })
      b:delete(Thread.new{ forum = "lua", subject = "x" })
    end, "batch:delete: the item with this key is already in the batch")
    assert.equal(0, srv:count())
    -- same hash, other range: two items
    assert.is_true(Thread:batch_write(function(b)
      b:save(Thread.new{ forum = "lua", subject = "x" })
      b:save(Thread.new{ forum = "lua", subject = "y" })
    end))
    assert.equal(2, #bodies(srv)[1].RequestItems.threads)
  end)

  it("a versioned model's save raises unless ignore_version; the local version matches what was stored", function()
    local V = user_model(start{ OK }, { attributes = {
      id = A.Unicode{ hash_key = true }, n = A.Number{}, version = A.Version{} } })
    local v = V.new{ id = uid(1), n = 1, version = 3 }
    raises_here(function()
      V:batch_write(function(b) b:save(v) end)
    end, "batch:save: User has a Version attribute, which a batch cannot check")
    assert.equal(0, srv:count())
    assert.is_true(V:batch_write(function(b) b:save(v) end, { ignore_version = true }))
    local body = bodies(srv)[1]
    local item = body.RequestItems.users[1].PutRequest.Item
    -- no condition can ride on a batch; the item written is the item held
    assert.same({ "id", "n", "version" }, sorted((function()
      local k = {}
      for name in pairs(item) do k[#k + 1] = name end
      return k
    end)()))
    assert.same({ S = uid(1) }, item.id)
    assert.equal(item.version.N, tostring(v.version),
      "the batch stored version " .. item.version.N .. " while the item holds version "
      .. tostring(v.version) .. ": its next item:save() would fail its version condition")
  end)

  it("a function that raises writes nothing and raises the same error", function()
    local User = user_model(start{ OK })
    local ok, err = pcall(function()
      User:batch_write(function(b)
        for _, u in ipairs(users(User, 1, 30)) do b:save(u) end
        error("boom in the batch")
      end)
    end)
    assert.is_false(ok)
    assert.matches("boom in the batch", tostring(err), 1, true)
    local ok2, err2 = pcall(lunamodb.batch_write, function(b)
      b:save(User.new{ id = uid(1), n = 1 })
      error({ mine = true })
    end)
    assert.is_false(ok2)
    assert.same({ mine = true }, err2)
    assert.equal(0, srv:count())
  end)

  it("misuse raises at the caller's line, before any request", function()
    local User = user_model(start{ OK })
    all_raise_here{
      { "not a function", function() User:batch_write(42) end,
        "lunamodb: batch_write: expected a function(batch) (got number)" },
      { "unknown option", function() User:batch_write(function() end, { bogus = true }) end,
        "batch_write: unknown option 'bogus'" },
      { "max_attempts 0", function() User:batch_write(function() end, { max_attempts = 0 }) end,
        "batch_write: max_attempts must be a whole number >= 1" },
      { "max_attempts 1.5", function() lunamodb.batch_write(function() end, { max_attempts = 1.5 }) end,
        "batch_write: max_attempts must be a whole number >= 1" },
      { "save of a string", function() User:batch_write(function(b) b:save("not an item") end) end,
        "batch:save" },
      { "delete of a plain table", function() User:batch_write(function(b) b:delete({}) end) end,
        "batch:delete" },
      { "save of a key-only item", function()
          User:batch_write(function(b) b:save(User.get_ref(uid(1))) end)
        end, "batch:save: this item was read through a projection" },
      -- after a whole item of the class, which the following saves' shorter path knows
      { "save of a key-only item after a whole one", function()
          User:batch_write(function(b)
            b:save(User.new{ id = uid(2), n = 1 })
            b:save(User.get_ref(uid(1)))
          end)
        end, "batch:save: this item was read through a projection" },
      { "save of a value its attribute refuses after a whole item", function()
          User:batch_write(function(b)
            b:save(User.new{ id = uid(2), n = 1 })
            local bad = User.new{ id = uid(1) }
            rawset(bad, "n", "many")
            b:save(bad)
          end)
        end, "lunamodb: n: expected a number, got string" },
      { "called with a dot", function() User.batch_write(function() end) end,
        "batch_write must be called on a model class" },
      { "save called with a dot", function()
          User:batch_write(function(b) b.save(User.new{ id = uid(3), n = 1 }) end)
        end, "batch:save: expected an item of a model (got nil)" },
      { "save called on nothing", function()
          User:batch_write(function(b) b.save("x") end)
        end, "batch:save: call it on the batch, with a colon (batch:save(item))" },
    }
    assert.equal(0, srv:count())
  end)
end)

describe("batch_write retries what DynamoDB left unprocessed", function()
  before_each(save_tunables)
  after_each(function()
    restore_tunables()
    if srv then srv:stop(); srv = nil end
  end)

  it("half of every body unprocessed: the rest is resent, with full-jitter backoff, and nothing is lost", function()
    local requests = {}
    for i = 1, 60 do requests[i] = put(i) end
    requests[61] = del(61)
    local script, expected, left_of, round = halving("users", requests, 25)
    local User = user_model(start(script))
    local items = users(User, 1, 60)
    local t0 = core.monotonic_ms()
    local ok, err = User:batch_write(function(b)
      for _, u in ipairs(items) do b:save(u) end
      b:delete(User.new{ id = uid(61), n = 61 })
    end)
    local elapsed = core.monotonic_ms() - t0
    assert.is_true(ok, tostring(err))
    local got = sent(srv)
    -- (a) each body, then exactly its unprocessed part, resent
    assert.equal(#expected, #got)          -- 25 -> 12 -> 6 -> 3 -> 1, twice; 11 -> 5 -> 2 -> 1
    assert.equal(14, #got)
    for i, e in ipairs(expected) do
      assert.equal("BatchWriteItem", got[i].op)
      assert.same(e, got[i].body, "request " .. i)
    end
    -- (c) every request accepted exactly once, none twice, none lost
    local accepted = {}
    for i, r in ipairs(got) do
      local left = {}
      for _, l in ipairs(left_of[i]) do left[request_id(l)] = true end
      for _, q in ipairs(r.body.RequestItems.users) do
        local id = request_id(q)
        if not left[id] then
          assert.is_nil(accepted[id], id .. " accepted twice")
          accepted[id] = q
        end
      end
    end
    for i = 1, 61 do assert.same(requests[i], accepted[uid(i)], uid(i)) end
    -- (b) each resend waits below its ceiling 50 * 2^(n-1) ms after the n-th send
    local all_gaps, total, below = {}, 0, 0
    for i = 2, #got do
      if round[i] > 1 then
        local n = round[i] - 1
        local gap = got[i].t_ms - got[i - 1].t_ms
        local ceiling = 50 * 2 ^ (n - 1)
        assert.is_true(gap >= 0 and gap < ceiling + SLACK_MS,
          string.format("resend %d of its body came %d ms after the previous send (ceiling %d ms)", n, gap, ceiling))
        all_gaps[#all_gaps + 1] = gap
        total = total + gap
        if gap < 0.75 * ceiling then below = below + 1 end
      end
    end
    assert.equal(11, #all_gaps)
    -- full jitter: uniform in [0, ceiling]; that all 11 gaps are ~0 has a
    -- probability below 1e-9, so a client that never sleeps fails here
    local max = 0
    for _, g in ipairs(all_gaps) do if g > max then max = g end end
    assert.is_true(max >= 10, "no resend waited: gaps " .. table.concat(all_gaps, ", "))
    assert.is_true(total >= 40, "resends waited " .. total .. " ms in all: " .. table.concat(all_gaps, ", "))
    -- and jittered: a client sleeping its whole ceiling each time has no gap
    -- below 3/4 of it; with full jitter all 11 are there with a probability
    -- near 1e-6 (not asserted where valgrind or ASan stretch every request)
    if SLOW == 1 then
      assert.is_true(below >= 1, "no resend came early: gaps " .. table.concat(all_gaps, ", "))
    end
    assert.is_true(elapsed < 1850 + 14 * SLACK_MS, "took " .. elapsed .. " ms")
  end)

  it("the backoff ceiling doubles and stops at CAP_MS", function()
    batch.BASE_MS, batch.CAP_MS, batch.MAX_ATTEMPTS = 50, 60, 8
    local User = user_model(start{ reply{ UnprocessedItems = { users = { put(1) } } } })
    local ok, err = User:batch_write(function(b) b:save(User.new{ id = uid(1), n = 1 }) end)
    assert.is_nil(ok)
    local g = gaps(sent(srv))
    assert.equal(7, #g)
    -- uncapped, the last ceilings would be 800, 1600 and 3200 ms
    for i, gap in ipairs(g) do
      assert.is_true(gap >= 0 and gap < 60 + SLACK_MS, "gap " .. i .. ": " .. gap .. " ms")
    end
    assert.equal(1, #err.unprocessed)
  end)

  it("never processed: stops after MAX_ATTEMPTS sends; err.unprocessed is exactly what was not written", function()
    batch.BASE_MS, batch.MAX_ATTEMPTS = 1, 4
    local User = user_model(start{ reply{ UnprocessedItems = { users = { put(3), del(4) } } } })
    local it = users(User, 1, 4)
    local ok, err = User:batch_write(function(b)
      b:save(it[1])
      b:delete(it[2])
      b:save(it[3])
      b:delete(it[4])
    end)
    assert.is_nil(ok)
    local got = bodies(srv)
    assert.equal(4, #got)
    assert.same({ RequestItems = { users = { put(1), del(2), put(3), del(4) } } }, got[1])
    for i = 2, 4 do assert.same({ RequestItems = { users = { put(3), del(4) } } }, got[i]) end
    assert.equal("BatchWriteItem", err.operation)
    assert.is_true(err:is("UnprocessedItems"))
    assert.equal(2, #err.unprocessed)
    assert.equal("save", err.unprocessed[1].op)
    assert.is_true(rawequal(it[3], err.unprocessed[1].item))
    assert.equal("delete", err.unprocessed[2].op)
    assert.is_true(rawequal(it[4], err.unprocessed[2].item))
    assert.is_nil(err.cause)
    assert.matches("2 writes were not applied", tostring(err), 1, true)
  end)

  it("max_attempts of the call bounds the sends of each body", function()
    batch.BASE_MS = 1
    local User = user_model(start{ reply{ UnprocessedItems = { users = { put(2) } } } })
    local it = users(User, 1, 2)
    local ok, err = User:batch_write(function(b) b:save(it[1]); b:save(it[2]) end, { max_attempts = 2 })
    assert.is_nil(ok)
    assert.equal(2, srv:count())
    assert.same({ { op = "save", item = it[2] } }, err.unprocessed)
    assert.is_true(rawequal(it[2], err.unprocessed[1].item))
    srv:stop()
    -- max_attempts = 1: no resend at all
    User = user_model(start{ reply{ UnprocessedItems = { users = { put(2) } } } })
    it = users(User, 1, 2)
    ok, err = lunamodb.batch_write(function(b) b:save(it[1]); b:save(it[2]) end, { max_attempts = 1 })
    assert.is_nil(ok)
    assert.equal(1, srv:count())
    assert.equal(1, #err.unprocessed)
  end)

  it("across several bodies: only the never-written operations are reported", function()
    batch.BASE_MS, batch.MAX_ATTEMPTS = 1, 2
    -- body 1 (25): 2 left, then still 1 left; body 2 (5): all written
    local User = user_model(start{
      reply{ UnprocessedItems = { users = { put(24), put(25) } } },
      reply{ UnprocessedItems = { users = { put(25) } } },
      OK,
    })
    local it = users(User, 1, 30)
    local ok, err = User:batch_write(function(b) for _, u in ipairs(it) do b:save(u) end end)
    assert.is_nil(ok)
    assert.equal(3, srv:count())
    assert.same({ RequestItems = { users = { put(24), put(25) } } }, bodies(srv)[2])
    assert.equal(1, #err.unprocessed)
    assert.is_true(rawequal(it[25], err.unprocessed[1].item))
  end)

  it("a failing call (500 until retries run out): err.cause and every unwritten operation", function()
    local User = user_model(start{ ddb_error("InternalServerError", "boom", 500) }, { max_attempts = 2 })
    local it = users(User, 1, 30)
    local ok, err = User:batch_write(function(b)
      for i = 1, 29 do b:save(it[i]) end
      b:delete(it[30])
    end)
    assert.is_nil(ok)
    assert.equal("BatchWriteItem", err.operation)
    assert.is_table(err.cause)
    assert.equal("InternalServerError", err.cause.code)
    assert.equal(500, err.cause.status)
    assert.equal(2, err.cause.attempts)
    assert.matches("boom", tostring(err), 1, true)
    assert.equal(30, #err.unprocessed)
    local ids = {}
    for _, u in ipairs(err.unprocessed) do
      local i = tonumber(u.item.id:sub(2))
      assert.is_true(rawequal(it[i], u.item))
      assert.equal(i == 30 and "delete" or "save", u.op)
      ids[#ids + 1] = u.item.id
    end
    local want = {}
    for i = 1, 30 do want[i] = uid(i) end
    assert.same(want, sorted(ids))
  end)

  it("a call failing after part of a body was written reports only the rest", function()
    batch.BASE_MS = 1
    local left = {}
    for i = 14, 25 do left[#left + 1] = put(i) end
    local User = user_model(start{
      reply{ UnprocessedItems = { users = left } },
      ddb_error("InternalServerError", nil, 500),
    })
    local it = users(User, 1, 30)
    local ok, err = User:batch_write(function(b) for _, u in ipairs(it) do b:save(u) end end)
    assert.is_nil(ok)
    assert.same({ RequestItems = { users = left } }, bodies(srv)[2])
    assert.equal("InternalServerError", err.cause.code)
    local ids = {}
    for _, u in ipairs(err.unprocessed) do
      assert.equal("save", u.op)
      ids[#ids + 1] = u.item.id
    end
    local want = {}
    for i = 14, 30 do want[#want + 1] = uid(i) end
    assert.same(want, sorted(ids))
  end)

  it("an unreadable answer is an error, and what it carried is reported", function()
    local User = user_model(start{ { status = 200, body = '{"UnprocessedItems":[1,2]}' } })
    local it = users(User, 1, 2)
    local ok, err = User:batch_write(function(b) b:save(it[1]); b:save(it[2]) end)
    assert.is_nil(ok)
    assert.equal(2, #err.unprocessed)
    assert.is_table(err.cause)
  end)
end)

------------------------------------------------------------------- batch_get

describe("batch_get", function()
  before_each(save_tunables)
  after_each(function()
    restore_tunables()
    if srv then srv:stop(); srv = nil end
  end)

  local function drain(it)
    local out = {}
    for v in it do out[#out + 1] = v end
    return out
  end
  local function keys_of(body, t)
    local out = {}
    for i, k in ipairs(body.RequestItems[t or "users"].Keys) do out[i] = k.id.S end
    return out
  end
  local function ids_of(items)
    local out = {}
    for i, u in ipairs(items) do out[i] = u.id end
    return sorted(out)
  end
  local function range(a, b)
    local out = {}
    for i = a, b do out[#out + 1] = uid(i) end
    return out
  end
  local function wires(a, b)
    local out = {}
    for i = a, b do out[#out + 1] = user_wire(i) end
    return out
  end
  local function wkeys(a, b)
    local out = {}
    for i = a, b do out[#out + 1] = { id = { S = uid(i) } } end
    return out
  end

  it("250 keys with one duplicate: calls of 100, 100 and 49 keys; every item yielded once (§6.7)", function()
    local keys = range(1, 249)
    table.insert(keys, 120, uid(7))           -- a duplicate, placed in the middle
    assert.equal(250, #keys)
    local User = user_model(start{
      reply{ Responses = { users = wires(1, 100) } },
      reply{ Responses = { users = wires(101, 200) } },
      reply{ Responses = { users = wires(201, 249) } },
    })
    local items = drain(User:batch_get(keys))
    local got = sent(srv)
    assert.equal(3, #got)
    for i = 1, 3 do assert.equal("BatchGetItem", got[i].op) end
    assert.same({ RequestItems = { users = { Keys = wkeys(1, 100) } } }, got[1].body)
    assert.same({ RequestItems = { users = { Keys = wkeys(101, 200) } } }, got[2].body)
    assert.same({ RequestItems = { users = { Keys = wkeys(201, 249) } } }, got[3].body)
    assert.equal(249, #items)
    assert.same(range(1, 249), ids_of(items))
    for _, u in ipairs(items) do
      assert.equal(tonumber(u.id:sub(2)), u.n)
      assert.is_false(u:is_partial())
    end
  end)

  it("yields items as each page arrives", function()
    local User = user_model(start{
      reply{ Responses = { users = wires(1, 100) } },
      reply{ Responses = { users = wires(101, 150) } },
    })
    local it = User:batch_get(range(1, 150))
    assert.equal(0, srv:count())
    local first = it()
    assert.is_not_nil(first)
    assert.equal(1, srv:count())
    local n = 1
    for _ in it do n = n + 1 end
    assert.equal(2, srv:count())
    assert.equal(150, n)
  end)

  it("missing keys are simply absent; no keys, no request", function()
    local User = user_model(start{ reply{ Responses = { users = { user_wire(2) } } } })
    assert.same({}, drain(User:batch_get{}))
    assert.equal(0, srv:count())
    local items = drain(User:batch_get{ uid(1), uid(2), uid(3) })
    assert.equal(1, #items)
    assert.equal(uid(2), items[1].id)
  end)

  it("UnprocessedKeys are resent with backoff until every item is read", function()
    local User = user_model(start{
      reply{ Responses = { users = wires(1, 5) }, UnprocessedKeys = { users = { Keys = wkeys(6, 10) } } },
      reply{ Responses = { users = wires(6, 7) }, UnprocessedKeys = { users = { Keys = wkeys(8, 10) } } },
      reply{ Responses = { users = wires(8, 9) }, UnprocessedKeys = { users = { Keys = wkeys(10, 10) } } },
      reply{ Responses = { users = wires(10, 10) }, UnprocessedKeys = {} },
    })
    local items = drain(User:batch_get(range(1, 10)))
    assert.same(range(1, 10), ids_of(items))
    local got = sent(srv)
    assert.equal(4, #got)
    assert.same(range(1, 10), keys_of(got[1].body))
    assert.same(range(6, 10), keys_of(got[2].body))
    assert.same(range(8, 10), keys_of(got[3].body))
    assert.same(range(10, 10), keys_of(got[4].body))
    for n, gap in ipairs(gaps(got)) do
      local ceiling = 50 * 2 ^ (n - 1)
      assert.is_true(gap >= 0 and gap < ceiling + SLACK_MS,
        string.format("resend %d came %d ms after the previous send (ceiling %d ms)", n, gap, ceiling))
    end
  end)

  it("keys never processed: the iterator raises err.unprocessed_keys after max_attempts sends", function()
    batch.BASE_MS = 1
    local User = user_model(start{
      reply{ Responses = { users = {} }, UnprocessedKeys = { users = { Keys = wkeys(2, 3) } } },
    })
    local it = User:batch_get({ uid(1), uid(2), uid(3) }, { max_attempts = 3 })
    local ok, err = pcall(function() for _ in it do end end)
    assert.is_false(ok)
    assert.is_table(err)
    assert.equal(3, srv:count())
    assert.equal("BatchGetItem", err.operation)
    assert.is_true(err:is("UnprocessedKeys"))
    assert.same({ uid(2), uid(3) }, sorted(err.unprocessed_keys))
    assert.matches("2 keys were not read", tostring(err), 1, true)
    -- MAX_ATTEMPTS is the default bound
    srv:stop()
    batch.MAX_ATTEMPTS = 2
    User = user_model(start{ reply{ UnprocessedKeys = { users = { Keys = wkeys(1, 1) } } } })
    ok, err = pcall(function() for _ in User:batch_get{ uid(1) } do end end)
    assert.is_false(ok)
    assert.equal(2, srv:count())
    assert.same({ uid(1) }, err.unprocessed_keys)
  end)

  it("keys never processed: the items read before the error are still yielded (nothing dropped)", function()
    batch.BASE_MS = 1
    local User = user_model(start{
      reply{ Responses = { users = wires(1, 1) }, UnprocessedKeys = { users = { Keys = wkeys(2, 2) } } },
      reply{ UnprocessedKeys = { users = { Keys = wkeys(2, 2) } } },
    })
    local seen = {}
    local ok, err = pcall(function()
      for u in User:batch_get({ uid(1), uid(2) }, { max_attempts = 2 }) do seen[#seen + 1] = u.id end
    end)
    assert.is_false(ok)
    assert.same({ uid(2) }, err.unprocessed_keys)
    -- every key is either yielded or reported
    assert.same({ uid(1) }, seen)
  end)

  it("a failing call: the iterator raises with err.cause and the keys it carried", function()
    local User = user_model(start{ ddb_error("InternalServerError", nil, 500) }, { max_attempts = 2 })
    local ok, err = pcall(function() for _ in User:batch_get{ uid(1), uid(2) } do end end)
    assert.is_false(ok)
    assert.equal("InternalServerError", err.cause.code)
    assert.equal(2, err.cause.attempts)
    assert.same({ uid(1), uid(2) }, sorted(err.unprocessed_keys))
  end)

  it("consistent_read and attributes: the projection includes the keys; items are partial", function()
    local User = user_model(start{ reply{ Responses = { users = { { id = { S = uid(1) }, name = { S = "Ada" } } } } } })
    local items = drain(User:batch_get({ uid(1), uid(2) }, { consistent_read = true, attributes = { "name" } }))
    local body = bodies(srv)[1]
    local t = body.RequestItems.users
    assert.is_true(t.ConsistentRead)
    assert.same(wkeys(1, 2), t.Keys)
    local names = {}
    for part in (t.ProjectionExpression .. ", "):gmatch("(.-), ") do
      names[#names + 1] = part:gsub("#%d+", function(p) return assert(t.ExpressionAttributeNames[p], p) end)
    end
    assert.same({ "id", "name" }, sorted(names))
    assert.equal(1, #items)
    assert.equal("Ada", items[1].name)
    assert.is_true(items[1]:is_partial())
    raises_with(function() items[1]:save() end, "read through a projection")
    -- without the options: none of them on the wire
    drain(User:batch_get{ uid(1) })
    assert.same({ RequestItems = { users = { Keys = wkeys(1, 1) } } }, bodies(srv)[2])
    drain(User:batch_get({ uid(1) }, { consistent_read = false }))
    assert.is_not_true(bodies(srv)[3].RequestItems.users.ConsistentRead)
  end)

  it("range-key models take { hash, range } pairs, sent once each", function()
    local Thread = thread_model(start{ reply{ Responses = { threads = {
      { forum = { S = "lua" }, subject = { S = "a" }, views = { N = "4" } },
    } } } })
    local items = drain(Thread:batch_get{ { "lua", "a" }, { "lua", "b" }, { "lua", "a" }, { "c", "a" } })
    assert.same({ { RequestItems = { threads = { Keys = {
      { forum = { S = "lua" }, subject = { S = "a" } },
      { forum = { S = "lua" }, subject = { S = "b" } },
      { forum = { S = "c" }, subject = { S = "a" } },
    } } } } }, bodies(srv))
    assert.equal(1, #items)
    assert.equal(4, items[1].views)
  end)

  it("range-key models: unprocessed_keys gives back the pairs as they were passed", function()
    batch.BASE_MS = 1
    local Thread = thread_model(start{ reply{ UnprocessedKeys = { threads = { Keys = {
      { forum = { S = "lua" }, subject = { S = "b" } } } } } } })
    local pair = { "lua", "b" }
    local ok, err = pcall(function()
      for _ in Thread:batch_get({ { "lua", "a" }, pair }, { max_attempts = 2 }) do end
    end)
    assert.is_false(ok)
    assert.equal(1, #err.unprocessed_keys)
    assert.is_true(rawequal(pair, err.unprocessed_keys[1]))
  end)

  it("refuses keys of the wrong shape, and misuse, before any request", function()
    start{ OK }
    local Thread = thread_model(srv)
    local User = user_model(srv)
    raises_with(function() Thread:batch_get{ { "lua", "a" }, "lua" } end,
      "lunamodb: Thread:batch_get: key 2 must be a { hash, range } pair")
    raises_with(function() User:batch_get({ uid(1) }, { bogus = 1 }) end,
      "lunamodb: User:batch_get: unknown option 'bogus'")
    raises_with(function() User:batch_get({ uid(1) }, { attributes = { "nope" } }) end,
      "unknown attribute 'nope'")
    assert.equal(0, srv:count())
  end)

  it("misuse raises at the caller's line, before any request", function()
    start{ OK }
    local Thread = thread_model(srv)
    local User = user_model(srv)
    all_raise_here{
      { "a bare hash key", function() Thread:batch_get{ { "lua", "a" }, "lua" } end,
        "Thread:batch_get: key 2 must be a { hash, range } pair" },
      { "a pair without range", function() Thread:batch_get{ { "lua" } } end,
        "Thread:batch_get: key 1 must be a { hash, range } pair" },
      { "a pair without hash", function() Thread:batch_get{ { nil, "a" } } end,
        "Thread:batch_get: key 1 must be a { hash, range } pair" },
      { "keys not a list", function() User:batch_get(uid(1)) end,
        "User:batch_get: expected a list of keys (got string)" },
      { "a key of the wrong type", function() User:batch_get{ uid(1), 7 } end, "(key 2)" },
      { "unknown option", function() User:batch_get({ uid(1) }, { bogus = 1 }) end,
        "User:batch_get: unknown option 'bogus'" },
      { "projection of an unknown attribute", function()
          User:batch_get({ uid(1) }, { attributes = { "nope" } })
        end, "unknown attribute 'nope'" },
      { "consistent_read not a boolean", function() User:batch_get({ uid(1) }, { consistent_read = "yes" }) end,
        "consistent_read must be a boolean" },
      { "max_attempts 0", function() User:batch_get({ uid(1) }, { max_attempts = 0 }) end,
        "max_attempts must be a whole number >= 1" },
      { "called with a dot", function() User.batch_get({ uid(1) }) end,
        "batch_get must be called on a model class" },
    }
    assert.equal(0, srv:count())
  end)
end)
