-- Batches and transactions against DynamoDB Local: a 5,000-item batch write
-- read back with batch_get across chunks, every attribute compared; batch
-- deletes; a transfer transaction that commits, one cancelled by a failed
-- condition (reasons per action, the ALL_OLD item, nothing applied), a
-- replay with the same ClientRequestToken applied once, a version conflict
-- inside a transaction, transact_get of present and missing items, and
-- limit violations refused before the network (issue 6).
-- Conditions use * + - (LuaJIT runs this too).
local lunamodb = require "lunamodb"
local A = require "lunamodb.attributes"
local core = require "lunamodb.core"
local ddb = require "spec.helpers.ddb"

local json_decode = core.json_decode
local monotonic_ms = core.monotonic_ms

local N = 5000

-- every table a spec creates, deleted in teardown
local created = {}

-- One client for every model: it counts the batch and transaction calls
-- (they go through call_raw) so the specs can see how many were made, and
-- that a refused transaction never reached the network.
local calls = {}
local client
local function count(op) return calls[op] or 0 end

setup(function()
  client = ddb.client()
  local call_raw = client.call_raw
  client.call_raw = function(self, operation, body)
    calls[operation] = (calls[operation] or 0) + 1
    return call_raw(self, operation, body)
  end
end)

local function Model(decl)
  decl.table_name = decl.table_name or ddb.unique_table(decl.name or "bt")
  decl.client = client
  decl.billing_mode = "PAY_PER_REQUEST"
  created[#created + 1] = decl.table_name
  local cls = lunamodb.Model(decl)
  assert(cls:create_table{ wait = true })
  return cls
end

local function drain(it)
  local out = {}
  for v in it do out[#out + 1] = v end
  return out
end

local function must(v, err)
  if v == nil then error(tostring(err), 2) end
  return v
end

teardown(function()
  local c = ddb.client()
  for _, name in ipairs(created) do c:call("DeleteTable", { TableName = name }) end
  c:close()
  if client then client:close() end
end)

-------------------------------------------------------------------- batches

describe("a 5,000-item batch #integration", function()
  local Item, items, wire_of

  -- item i, with values of every common kind (some items lack the optional ones)
  local function make(i)
    local t = {
      pk = "p" .. (i % 50), sk = i, name = "item " .. i .. " é", n = (i % 2 == 0) and i * 7 or -i / 8,
      flag = i % 3 == 0, tags = lunamodb.set{ "t" .. (i % 4), "all" }, nums = lunamodb.set{ i, i + 0.5 },
      list = { i, "x" .. i, { deep = i % 5 == 0 } }, data = { k = "v" .. i, m = { a = i, b = { 1, 2 } } },
    }
    if i % 7 == 0 then t.blob = lunamodb.binary(string.char(i % 256, 0, 255)) end
    if i % 11 == 0 then t.note = string.rep("n", i % 97) end
    return t
  end

  setup(function()
    Item = Model{ name = "Item", attributes = {
      pk = A.Unicode{ hash_key = true }, sk = A.Number{ range_key = true }, name = A.Unicode{}, n = A.Number{},
      flag = A.Boolean{}, tags = A.UnicodeSet{}, nums = A.NumberSet{}, list = A.List{}, data = A.Map{},
      blob = A.Binary{ null = true }, note = A.Unicode{ null = true },
    } }
    items, wire_of = {}, {}
    for i = 1, N do
      items[i] = Item.new(make(i))
      wire_of[items[i].pk .. "/" .. i] = json_decode(items[i]:to_dynamodb())
    end
  end)

  it("writes 5,000 items in bodies of at most 25, then reads every one back exactly", function()
    local t0 = monotonic_ms()
    local writes = count("BatchWriteItem")
    local ok, err = Item:batch_write(function(b)
      for _, it in ipairs(items) do b:save(it) end
    end)
    assert.is_true(ok, tostring(err))
    assert.is_true(count("BatchWriteItem") - writes >= N / 25)

    local keys = {}
    for i = 1, N do keys[i] = { items[i].pk, i } end
    keys[N + 1] = { items[17].pk, 17 }                      -- a duplicate, read once
    local reads = count("BatchGetItem")
    local got = drain(Item:batch_get(keys, { consistent_read = true }))
    assert.is_true(count("BatchGetItem") - reads >= N / 100)
    assert.equal(N, #got)
    local seen, wrong = {}, {}
    for _, item in ipairs(got) do
      local id = item.pk .. "/" .. tostring(item.sk)
      if seen[id] then wrong[#wrong + 1] = id .. " read twice" end
      seen[id] = true
      local want = wire_of[id]
      if not want then
        wrong[#wrong + 1] = id .. " was never written"
      elseif not require("luassert.util").deepcompare(want, json_decode(item:to_dynamodb()), true) then
        wrong[#wrong + 1] = id .. " differs: " .. item:to_dynamodb()
      end
      if #wrong > 5 then break end
    end
    assert.equal("", table.concat(wrong, "\n"))
    local ms = monotonic_ms() - t0
    assert.is_true(ms < 40000, "5,000 items written and read in " .. ms .. " ms")
  end)

  it("a projection reads partial items; missing keys are absent", function()
    local keys = { { "p1", 1 }, { "p2", 2 }, { "p0", 50 }, { "p0", N + 1 }, { "nope", 1 } }
    local got = drain(Item:batch_get(keys, { attributes = { "name" }, consistent_read = true }))
    table.sort(got, function(a, b) return a.sk < b.sk end)
    assert.equal(3, #got)
    for i, sk in ipairs{ 1, 2, 50 } do
      assert.equal(sk, got[i].sk)
      assert.equal("item " .. sk .. " é", got[i].name)
      assert.is_nil(got[i].n)
      assert.is_true(got[i]:is_partial())
    end
  end)

  it("deletes in a batch, saves and deletes mixed; what was deleted is gone", function()
    local ok, err = Item:batch_write(function(b)
      for i = 1, 60 do b:delete(items[i]) end
      b:save(Item.new{ pk = "extra", sk = 1, name = "extra", n = 1, flag = true,
                       tags = lunamodb.set{ "a" }, nums = lunamodb.set{ 1 }, list = {}, data = {} })
    end)
    assert.is_true(ok, tostring(err))
    local keys = {}
    for i = 1, 99 do keys[i] = { items[i].pk, i } end
    keys[100] = { "extra", 1 }
    local got = drain(Item:batch_get(keys, { consistent_read = true }))
    local sks = {}
    for _, item in ipairs(got) do sks[#sks + 1] = item.pk == "extra" and 0 or item.sk end
    table.sort(sks)
    local want = { 0 }
    for i = 61, 99 do want[#want + 1] = i end
    assert.same(want, sks)
  end)
end)

--------------------------------------------------------------- transactions

describe("transactions #integration", function()
  local Wallet, Transfer, Doc
  local run = 0

  setup(function()
    Wallet = Model{ name = "Wallet", attributes = {
      id = A.Unicode{ hash_key = true }, balance = A.Number{ default = 0 } } }
    Transfer = Model{ name = "Transfer", attributes = {
      id = A.Unicode{ hash_key = true }, from = A.Unicode{}, to = A.Unicode{}, amount = A.Number{} } }
    Doc = Model{ name = "Doc", attributes = {
      id = A.Unicode{ hash_key = true }, body = A.Unicode{ null = true }, version = A.Version{} } }
  end)

  -- fresh wallets per spec: from, to, and a third one the transfers check exists
  local witness
  local function wallets(a, b)
    run = run + 1
    local from, to = "alice" .. run, "bob" .. run
    witness = "carol" .. run
    must(Wallet.new{ id = from, balance = a }:save())
    must(Wallet.new{ id = to, balance = b }:save())
    must(Wallet.new{ id = witness, balance = 0 }:save())
    return from, to
  end
  local function balance(id) return must(Wallet:get(id, { consistent_read = true })).balance end

  -- debit (its condition the balance check), credit, record, a check on another item
  local function transfer(id, from, to, amount, token, check)
    return lunamodb.transact_write(function(tx)
      tx:update(Wallet.get_ref(from), { Wallet.balance:set(Wallet.balance - amount) },
                { condition = Wallet.balance:ge(amount), return_values_on_failure = "ALL_OLD" })
      tx:update(Wallet.get_ref(to), { Wallet.balance:set(Wallet.balance + amount) })
      tx:save(Transfer.new{ id = id, from = from, to = to, amount = amount },
              { condition = Transfer.id:does_not_exist(), return_values_on_failure = "ALL_OLD" })
      tx:condition_check(Wallet, check or witness, Wallet.id:exists())
    end, token and { client_request_token = token } or nil)
  end

  it("a transfer commits: both balances and the record are written together", function()
    local from, to = wallets(100, 5)
    local before = count("TransactWriteItems")
    assert.is_true(transfer("t-commit", from, to, 30))
    assert.equal(1, count("TransactWriteItems") - before)
    assert.equal(70, balance(from))
    assert.equal(35, balance(to))
    local rec = must(Transfer:get("t-commit", { consistent_read = true }))
    assert.same({ id = "t-commit", from = from, to = to, amount = 30 }, rec:to_table())
  end)

  it("a failed condition cancels it: reasons per action, the ALL_OLD item, and nothing applied", function()
    local from, to = wallets(100, 5)
    local ok, err = transfer("t-broke", from, to, 1000)
    assert.is_nil(ok)
    assert.is_true(err:is("TransactionCanceled"))
    assert.equal("TransactWriteItems", err.operation)
    assert.equal(4, #err.reasons)
    assert.same({ "ConditionalCheckFailed", "None", "None", "None" },
      { err.reasons[1].code, err.reasons[2].code, err.reasons[3].code, err.reasons[4].code })
    assert.same({ id = { S = from }, balance = { N = "100" } }, err.reasons[1].item)
    assert.is_nil(err.reasons[2].item)
    assert.equal(100, balance(from))
    assert.equal(5, balance(to))
    local rec, gerr = Transfer:get("t-broke", { consistent_read = true })
    assert.is_nil(rec)
    assert.is_true(gerr:is(lunamodb.DoesNotExist))

    -- the third action fails this time: its reason is the third, with its old item
    assert.is_true(transfer("t-dup", from, to, 10))
    ok, err = transfer("t-dup", from, to, 10)
    assert.is_nil(ok)
    assert.same({ "None", "None", "ConditionalCheckFailed", "None" },
      { err.reasons[1].code, err.reasons[2].code, err.reasons[3].code, err.reasons[4].code })
    assert.same({ id = { S = "t-dup" }, from = { S = from }, to = { S = to }, amount = { N = "10" } },
      err.reasons[3].item)
    assert.equal(90, balance(from))
    assert.equal(15, balance(to))

    -- a condition check on a missing item
    ok, err = transfer("t-nowitness", from, to, 10, nil, "nobody-" .. run)
    assert.is_nil(ok)
    assert.equal("ConditionalCheckFailed", err.reasons[4].code)
    assert.equal("None", err.reasons[1].code)
    assert.equal(90, balance(from))
  end)

  it("a replay with the same client_request_token is applied once", function()
    local from, to = wallets(100, 0)
    local token = "replay-" .. os.time() .. "-" .. run
    assert.is_true(transfer("t-replay-" .. run, from, to, 25, token))
    assert.is_true(transfer("t-replay-" .. run, from, to, 25, token))
    assert.equal(75, balance(from))
    assert.equal(25, balance(to))
    -- the same token with other parameters is refused, and changes nothing
    local ok, err = transfer("t-replay-" .. run, from, to, 26, token)
    assert.is_nil(ok)
    assert.is_true(err:is("IdempotentParameterMismatch"))
    assert.equal(75, balance(from))
    -- without a token each call is its own transaction
    assert.is_true(transfer("t-a-" .. run, from, to, 1))
    assert.is_true(transfer("t-b-" .. run, from, to, 1))
    assert.equal(73, balance(from))
  end)

  it("a version conflict inside a transaction: the second writer is cancelled, its version unchanged", function()
    local d = Doc.new{ id = "doc" .. run, body = "v1" }
    assert.is_true(lunamodb.transact_write(function(tx) tx:save(d) end))
    assert.equal(1, d.version)
    local one = must(Doc:get(d.id, { consistent_read = true }))
    local two = must(Doc:get(d.id, { consistent_read = true }))
    assert.equal(1, one.version)

    assert.is_true(lunamodb.transact_write(function(tx)
      tx:update(one, { Doc.body:set("first") })
      tx:condition_check(Doc, "missing-ok-" .. run, Doc.id:does_not_exist())
    end))
    assert.equal(2, one.version)

    two.body = "second"
    local ok, err = lunamodb.transact_write(function(tx)
      tx:condition_check(Doc, "missing-ok-" .. run, Doc.id:does_not_exist())
      tx:save(two, { return_values_on_failure = "ALL_OLD" })
    end)
    assert.is_nil(ok)
    assert.is_true(err:is("TransactionCanceled"))
    assert.same({ "None", "ConditionalCheckFailed" }, { err.reasons[1].code, err.reasons[2].code })
    assert.same({ id = { S = d.id }, body = { S = "first" }, version = { N = "2" } }, err.reasons[2].item)
    assert.equal(1, two.version)
    local stored = must(Doc:get(d.id, { consistent_read = true }))
    assert.equal("first", stored.body)
    assert.equal(2, stored.version)

    -- the winner goes on: delete at its version
    ok, err = lunamodb.transact_write(function(tx) tx:delete(one) end)
    assert.is_true(ok, tostring(err))
    assert.is_nil((Doc:get(d.id, { consistent_read = true })))
  end)

  it("transact_get: present items, and nil for a missing one", function()
    local from, to = wallets(11, 22)
    assert.is_true(transfer("t-get-" .. run, from, to, 1))
    local futures = {}
    local a, b, none, rec = lunamodb.transact_get(function(tx)
      futures[1] = tx:get(Wallet, from)
      futures[2] = tx:get(Wallet, to)
      futures[3] = tx:get(Wallet, "nobody-" .. run)
      futures[4] = tx:get(Transfer, "t-get-" .. run)
      return futures[1], futures[2], futures[3], futures[4]
    end)
    assert.equal(10, a.balance)
    assert.equal(23, b.balance)
    assert.is_nil(none)
    assert.same({ id = "t-get-" .. run, from = from, to = to, amount = 1 }, rec:to_table())
    local missing, err = futures[3]:get()
    assert.is_nil(missing)
    assert.is_true(err:is(lunamodb.DoesNotExist))
    assert.is_true(rawequal(a, (futures[1]:get())))
  end)

  it("100 actions commit; limit violations are refused before the network", function()
    local ids = {}
    local ok, err = lunamodb.batch_write(function(b)
      for i = 1, 100 do
        ids[i] = "many" .. run .. "-" .. i
        b:save(Wallet.new{ id = ids[i], balance = i })
      end
    end)
    assert.is_true(ok, tostring(err))
    assert.is_true(lunamodb.transact_write(function(tx)
      for i = 1, 100 do tx:update(Wallet.get_ref(ids[i]), { Wallet.balance:add(1) }) end
    end))
    assert.equal(100, balance(ids[100]) - 1)

    local before, gets = count("TransactWriteItems"), count("TransactGetItems")
    local function refused(fn, fragment)
      local pok, perr = pcall(fn)
      assert.is_false(pok)
      assert.matches(fragment, tostring(perr), 1, true)
    end
    refused(function()
      lunamodb.transact_write(function(tx)
        for i = 1, 100 do tx:update(Wallet.get_ref(ids[i]), { Wallet.balance:add(1) }) end
        tx:condition_check(Wallet, "one-more", Wallet.id:exists())
      end)
    end, "a transaction takes at most 100 actions (got 101)")
    refused(function()
      lunamodb.transact_write(function(tx)
        tx:update(Wallet.get_ref(ids[1]), { Wallet.balance:add(1) })
        tx:condition_check(Wallet, ids[1], Wallet.balance:ge(0))
      end)
    end, "both touch the same item")
    local big = string.rep("x", 390000)
    refused(function()
      lunamodb.transact_write(function(tx)
        for i = 1, 11 do tx:save(Transfer.new{ id = "big" .. i, from = big, to = "b", amount = i }) end
      end)
    end, "the transaction is too large")
    refused(function() lunamodb.transact_write(function() end) end, "the transaction has no actions")
    refused(function()
      lunamodb.transact_get(function(tx) for i = 1, 101 do tx:get(Wallet, "k" .. i) end end)
    end, "a transaction takes at most 100 actions (got 101)")
    assert.equal(before, count("TransactWriteItems"))
    assert.equal(gets, count("TransactGetItems"))
    -- and nothing changed
    assert.equal(101, balance(ids[100]))
    assert.equal(2, balance(ids[1]))
  end)
end)
