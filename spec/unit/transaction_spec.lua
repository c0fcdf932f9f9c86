-- Transactions without DynamoDB: TransactWriteItems and TransactGetItems
-- bodies captured by the scripted loopback server and compared as parsed
-- JSON, in the order of the calls (PynamoDB reorders them by type), version
-- conditions and increments as in single-item writes, the ClientRequestToken
-- made once per call and reused by its retries, every limit refused before
-- any request, results of TransactGetItems, and cancellation reasons one per
-- action (issue 6; reference pynamodb.md §3.10 and reliability.md §2).
-- Conditions use * + - so the spec also runs on LuaJIT.
local lunamodb = require "lunamodb"
local A = require "lunamodb.attributes"
local core = require "lunamodb.core"
local model = require "lunamodb.model"
local loopback = require "spec.helpers.loopback"

local json_decode, json_encode = core.json_decode, core.json_encode

local UUID4 = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

local W = require "spec.helpers.wire"
local raises_with, reply, OK, sent, last = W.raises_with, W.reply, W.OK, W.sent, W.last
local all_raise_here, ddb_error = W.all_raise_at("transaction_spec"), W.ddb_error
-- DynamoDB's TransactionCanceledException, with its reasons in request order
local function cancelled(reasons)
  local codes = {}
  for i, r in ipairs(reasons) do codes[i] = r.Code end
  return { status = 400, body = json_encode({
    __type = "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
    Message = "Transaction cancelled, please refer cancellation reasons for specific reasons ["
      .. table.concat(codes, ", ") .. "]",
    CancellationReasons = reasons,
  }) }
end

local srv
local function start(replies)
  srv = loopback.start{ routes = { ["POST /"] = replies } }
  return srv
end

local on = W.on

-- Account: versioned; Transfer: not; Post: hash and range keys.
local function models(server, extra)
  local function with(decl) return on(server, decl, extra) end
  local Account = with{ name = "Account", table_name = "acct", attributes = {
    id = A.Unicode{ hash_key = true }, balance = A.Number{ default = 0 }, version = A.Version{} } }
  local Transfer = with{ name = "Transfer", table_name = "transfers", attributes = {
    id = A.Unicode{ hash_key = true }, from = A.Unicode{ null = true }, to = A.Unicode{ null = true },
    amount = A.Number{}, note = A.Unicode{ null = true } } }
  local Post = with{ name = "Post", table_name = "posts", attributes = {
    forum = A.Unicode{ hash_key = true }, seq = A.Number{ range_key = true },
    title = A.Unicode{ null = true } } }
  return Account, Transfer, Post
end

local function key(id) return { id = { S = id } } end

------------------------------------------------------------ write requests

describe("transact_write requests", function()
  after_each(function() if srv then srv:stop(); srv = nil end end)

  it("sends every kind of action in call order, each as its single-item write would be", function()
    local Account, Transfer, Post = models(start{ OK })
    local alice = Account.new{ id = "alice", balance = 150, version = 4 }
    local t1 = Transfer.new{ id = "t1", from = "alice", to = "bob", amount = 100 }
    local old = Transfer.new{ id = "t0", amount = 1 }
    local post = Post.new{ forum = "lua", seq = 3 }
    assert.is_true(lunamodb.transact_write(function(tx)
      tx:update(alice, { Account.balance:set(Account.balance - 100) }, { condition = Account.balance:ge(100) })
      tx:save(t1, { condition = Transfer.id:does_not_exist() })
      tx:condition_check(Account, "bob", Account.id:exists())
      tx:delete(old)
      tx:condition_check(post, Post.title:does_not_exist() + Post.seq:lt(10))
      tx:condition_check(Post, "lua", 4, -Post.title:exists())
    end))
    local body, op = last(srv)
    assert.equal("TransactWriteItems", op)
    assert.equal(1, srv:count())
    assert.matches(UUID4, body.ClientRequestToken)
    body.ClientRequestToken = nil
    assert.same({ TransactItems = {
      { Update = {
        TableName = "acct", Key = key("alice"),
        ConditionExpression = "(#0 >= :0 AND #1 = :1)",
        UpdateExpression = "SET #0 = #0 - :2 ADD #1 :3",
        ExpressionAttributeNames = { ["#0"] = "balance", ["#1"] = "version" },
        ExpressionAttributeValues = { [":0"] = { N = "100" }, [":1"] = { N = "4" }, [":2"] = { N = "100" },
                                      [":3"] = { N = "1" } },
      } },
      { Put = {
        TableName = "transfers",
        Item = { id = { S = "t1" }, from = { S = "alice" }, to = { S = "bob" }, amount = { N = "100" } },
        ConditionExpression = "attribute_not_exists (#0)",
        ExpressionAttributeNames = { ["#0"] = "id" },
      } },
      { ConditionCheck = {
        TableName = "acct", Key = key("bob"),
        ConditionExpression = "attribute_exists (#0)",
        ExpressionAttributeNames = { ["#0"] = "id" },
      } },
      { Delete = { TableName = "transfers", Key = key("t0") } },
      { ConditionCheck = {
        TableName = "posts", Key = { forum = { S = "lua" }, seq = { N = "3" } },
        ConditionExpression = "(attribute_not_exists (#0) OR #1 < :0)",
        ExpressionAttributeNames = { ["#0"] = "title", ["#1"] = "seq" },
        ExpressionAttributeValues = { [":0"] = { N = "10" } },
      } },
      { ConditionCheck = {
        TableName = "posts", Key = { forum = { S = "lua" }, seq = { N = "4" } },
        ConditionExpression = "(NOT attribute_exists (#0))",
        ExpressionAttributeNames = { ["#0"] = "title" },
      } },
    } }, body)
  end)

  it("keeps call order where PynamoDB would reorder (ConditionCheck, Delete, Put, Update)", function()
    local Account, Transfer = models(start{ OK })
    assert.is_true(lunamodb.transact_write(function(tx)
      tx:update(Transfer.get_ref("u"), { Transfer.amount:add(1) })
      tx:save(Transfer.new{ id = "p", amount = 2 })
      tx:delete(Transfer.new{ id = "d", amount = 3 })
      tx:condition_check(Account, "c", Account.id:exists())
    end))
    local kinds = {}
    for i, a in ipairs(last(srv).TransactItems) do kinds[i] = next(a) end
    assert.same({ "Update", "Put", "Delete", "ConditionCheck" }, kinds)
  end)

  it("a versioned save puts version n+1 on condition version = n; the local version moves on success", function()
    local Account = models(start{ OK })
    local a = Account.new{ id = "a", balance = 5, version = 2 }
    assert.is_true(lunamodb.transact_write(function(tx) tx:save(a) end))
    local body = last(srv)
    body.ClientRequestToken = nil
    assert.same({ TransactItems = { { Put = {
      TableName = "acct",
      Item = { id = { S = "a" }, balance = { N = "5" }, version = { N = "3" } },
      ConditionExpression = "#0 = :0",
      ExpressionAttributeNames = { ["#0"] = "version" },
      ExpressionAttributeValues = { [":0"] = { N = "2" } },
    } } } }, body)
    assert.equal(3, a.version)
    assert.equal(5, a.balance)
    -- and again from there
    assert.is_true(lunamodb.transact_write(function(tx) tx:save(a) end))
    local put = last(srv).TransactItems[1].Put
    assert.same({ N = "4" }, put.Item.version)
    assert.same({ [":0"] = { N = "3" } }, put.ExpressionAttributeValues)
    assert.equal(4, a.version)
  end)

  it("a new versioned item: attribute_not_exists and version 1; ANDed after the user's condition", function()
    local Account = models(start{ OK })
    local a = Account.new{ id = "a" }
    assert.is_true(lunamodb.transact_write(function(tx)
      tx:save(a, { condition = Account.balance:does_not_exist() })
    end))
    local put = last(srv).TransactItems[1].Put
    assert.same({ id = { S = "a" }, balance = { N = "0" }, version = { N = "1" } }, put.Item)
    assert.equal("(attribute_not_exists (#0) AND attribute_not_exists (#1))", put.ConditionExpression)
    assert.same({ ["#0"] = "balance", ["#1"] = "version" }, put.ExpressionAttributeNames)
    assert.equal(1, a.version)
  end)

  it("a versioned update adds 1 to the version on condition version = n, and moves it locally", function()
    local Account = models(start{ OK })
    local b = Account.new{ id = "b", balance = 5, version = 7 }
    assert.is_true(lunamodb.transact_write(function(tx)
      tx:update(b, { Account.balance:add(-5) })
    end))
    local u = last(srv).TransactItems[1].Update
    assert.same({
      TableName = "acct", Key = key("b"),
      ConditionExpression = "#0 = :0",
      UpdateExpression = "ADD #1 :1, #0 :2",
      ExpressionAttributeNames = { ["#0"] = "version", ["#1"] = "balance" },
      ExpressionAttributeValues = { [":0"] = { N = "7" }, [":1"] = { N = "-5" }, [":2"] = { N = "1" } },
    }, u)
    assert.equal(8, b.version)
    assert.equal(5, b.balance)          -- a transaction returns no values: only the version moves
  end)

  it("a versioned delete carries version = n; add_version_condition = false drops the conditions", function()
    local Account = models(start{ OK })
    local c = Account.new{ id = "c", version = 3 }
    local d = Account.new{ id = "d", version = 9 }
    local e = Account.new{ id = "e", balance = 1, version = 5 }
    assert.is_true(lunamodb.transact_write(function(tx)
      tx:delete(c)
      tx:delete(d, { add_version_condition = false })
      tx:save(e, { add_version_condition = false })
    end))
    local items = last(srv).TransactItems
    assert.same({ Delete = { TableName = "acct", Key = key("c"), ConditionExpression = "#0 = :0",
                             ExpressionAttributeNames = { ["#0"] = "version" },
                             ExpressionAttributeValues = { [":0"] = { N = "3" } } } }, items[1])
    assert.same({ Delete = { TableName = "acct", Key = key("d") } }, items[2])
    -- still incremented, as item:save{ add_version_condition = false } does
    assert.same({ Put = { TableName = "acct",
                          Item = { id = { S = "e" }, balance = { N = "1" }, version = { N = "6" } } } }, items[3])
    assert.equal(6, e.version)
    assert.equal(3, c.version)
  end)

  it("return_values_on_failure becomes ReturnValuesOnConditionCheckFailure, only when given", function()
    local Account, Transfer = models(start{ OK })
    assert.is_true(lunamodb.transact_write(function(tx)
      tx:save(Transfer.new{ id = "s", amount = 1 }, { return_values_on_failure = "ALL_OLD" })
      tx:update(Transfer.get_ref("u"), { Transfer.note:set("x") }, { return_values_on_failure = "NONE" })
      tx:delete(Transfer.new{ id = "d", amount = 1 }, { return_values_on_failure = "ALL_OLD" })
      tx:delete(Transfer.new{ id = "e", amount = 1 })
      tx:condition_check(Account, "c", Account.id:exists())
    end))
    local items = last(srv).TransactItems
    assert.equal("ALL_OLD", items[1].Put.ReturnValuesOnConditionCheckFailure)
    assert.equal("NONE", items[2].Update.ReturnValuesOnConditionCheckFailure)
    assert.equal("ALL_OLD", items[3].Delete.ReturnValuesOnConditionCheckFailure)
    assert.is_nil(items[4].Delete.ReturnValuesOnConditionCheckFailure)
    assert.is_nil(items[5].ConditionCheck.ReturnValuesOnConditionCheckFailure)
  end)

  it("the ClientRequestToken: a UUID made once per call, identical across the call's retries", function()
    local Account, Transfer = models(start{
      ddb_error("InternalServerError", nil, 500), OK,
      ddb_error("InternalServerError", nil, 500), OK,
    }, { max_attempts = 2 })
    local function tx_fn(tx)
      tx:save(Transfer.new{ id = "t", amount = 1 })
      tx:update(Account.new{ id = "a", version = 1 }, { Account.balance:add(1) })
    end
    assert.is_true(lunamodb.transact_write(tx_fn))
    assert.is_true(lunamodb.transact_write(tx_fn))
    local got = sent(srv)
    assert.equal(4, #got)
    for i = 1, 4 do assert.equal("TransactWriteItems", got[i].op) end
    local t1, t2 = got[1].body.ClientRequestToken, got[3].body.ClientRequestToken
    assert.matches(UUID4, t1)
    assert.matches(UUID4, t2)
    -- a retry sends the same bytes, token included
    assert.equal(got[1].text, got[2].text)
    assert.equal(got[3].text, got[4].text)
    -- another call, another token
    assert.are_not.equal(t1, t2)
  end)

  it("the caller's client_request_token is sent as is, on every attempt", function()
    local _, Transfer = models(start{ ddb_error("InternalServerError", nil, 500), OK }, { max_attempts = 2 })
    assert.is_true(lunamodb.transact_write(function(tx)
      tx:save(Transfer.new{ id = "t1", amount = 1 })
    end, { client_request_token = "transfer-t1" }))
    local got = sent(srv)
    assert.equal(2, #got)
    assert.equal("transfer-t1", got[1].body.ClientRequestToken)
    assert.equal(got[1].text, got[2].text)
  end)

  it("a failed call (500 until retries run out): nil, err, and no local version moves", function()
    local Account = models(start{ ddb_error("InternalServerError", nil, 500) }, { max_attempts = 2 })
    local a = Account.new{ id = "a", version = 2 }
    local b = Account.new{ id = "b", version = 5 }
    local ok, err = lunamodb.transact_write(function(tx)
      tx:save(a)
      tx:update(b, { Account.balance:add(1) })
    end)
    assert.is_nil(ok)
    assert.equal("InternalServerError", err.code)
    assert.equal(2, err.attempts)
    assert.equal(2, a.version)
    assert.equal(5, b.version)
  end)
end)

--------------------------------------------------------------- cancellation

describe("transact_write cancellation", function()
  after_each(function() if srv then srv:stop(); srv = nil end end)

  it("err.reasons: one { code, message, item } per action, in call order; nothing moves locally", function()
    local old_b = { id = { S = "b" }, balance = { N = "3" }, version = { N = "8" } }
    local Account, Transfer = models(start{ cancelled{
      { Code = "None" },
      { Code = "ConditionalCheckFailed", Message = "The conditional request failed", Item = old_b },
      { Code = "None" },
      { Code = "TransactionConflict", Message = "Transaction is ongoing for the item" },
    } }, { max_attempts = 3 })
    local a = Account.new{ id = "a", balance = 1, version = 2 }
    local b = Account.new{ id = "b", balance = 5, version = 7 }
    local ok, err = lunamodb.transact_write(function(tx)
      tx:save(a)
      tx:update(b, { Account.balance:add(-5) }, { condition = Account.balance:ge(5),
                                                 return_values_on_failure = "ALL_OLD" })
      tx:condition_check(Account, "c", Account.id:exists())
      tx:save(Transfer.new{ id = "t", amount = 5 })
    end)
    assert.is_nil(ok)
    assert.equal("TransactionCanceledException", err.code)
    assert.is_true(err:is("TransactionCanceled"))
    assert.equal("TransactWriteItems", err.operation)
    assert.equal(400, err.status)
    assert.equal(4, #err.reasons)
    assert.same({ "None", "ConditionalCheckFailed", "None", "TransactionConflict" },
      { err.reasons[1].code, err.reasons[2].code, err.reasons[3].code, err.reasons[4].code })
    assert.is_nil(err.reasons[1].message)
    assert.equal("The conditional request failed", err.reasons[2].message)
    assert.equal("Transaction is ongoing for the item", err.reasons[4].message)
    assert.same(old_b, err.reasons[2].item)
    assert.is_nil(err.reasons[1].item)
    assert.is_nil(err.reasons[3].item)
    assert.matches("reasons [None, ConditionalCheckFailed, None, TransactionConflict]", tostring(err), 1, true)
    -- a cancellation is final: never retried
    assert.equal(1, srv:count())
    assert.equal(2, a.version)
    assert.equal(7, b.version)
  end)
end)

---------------------------------------------------------------- limits

describe("transact_write limits, refused before any request", function()
  after_each(function() if srv then srv:stop(); srv = nil end end)

  it("100 actions are sent; 101 are refused", function()
    local Account = models(start{ OK })
    assert.is_true(lunamodb.transact_write(function(tx)
      for i = 1, 100 do tx:condition_check(Account, "k" .. i, Account.id:exists()) end
    end))
    assert.equal(100, #last(srv).TransactItems)
    all_raise_here{ { "101 actions", function()
      lunamodb.transact_write(function(tx)
        for i = 1, 101 do tx:condition_check(Account, "k" .. i, Account.id:exists()) end
      end)
    end, "a transaction takes at most 100 actions (got 101)" } }
    assert.equal(1, srv:count())
  end)

  it("refuses actions over 4 MB in total; just under is sent", function()
    local _, Transfer = models(start{ OK })
    local big = string.rep("x", 400000)
    assert.is_true(lunamodb.transact_write(function(tx)
      for i = 1, 10 do tx:save(Transfer.new{ id = "t" .. i, amount = i, note = big }) end
    end))
    assert.equal(1, srv:count())
    all_raise_here{ { "11 actions of 400 KB", function()
      lunamodb.transact_write(function(tx)
        for i = 1, 11 do tx:save(Transfer.new{ id = "t" .. i, amount = i, note = big }) end
      end)
    end, "the transaction is too large" } }
    assert.equal(1, srv:count())
  end)

  it("refuses two actions on one item, whatever their kinds", function()
    local Account, Transfer, Post = models(start{ OK })
    local a = Account.new{ id = "a", version = 1 }
    all_raise_here{
      { "save then condition check", function()
          lunamodb.transact_write(function(tx)
            tx:save(a)
            tx:condition_check(Account, "b", Account.id:exists())
            tx:condition_check(Account, "a", Account.id:exists())
          end)
        end, "actions 1 and 3 both touch the same item of table 'acct' (a transaction takes one action per item)" },
      { "update and delete of a key-only item", function()
          lunamodb.transact_write(function(tx)
            tx:update(Account.get_ref("z"), { Account.balance:add(1) }, { add_version_condition = false })
            tx:delete(Account.get_ref("z"), { add_version_condition = false })
          end)
        end, "actions 1 and 2 both touch the same item of table 'acct'" },
      { "range keys", function()
          lunamodb.transact_write(function(tx)
            tx:condition_check(Post, "lua", 1, Post.title:exists())
            tx:condition_check(Post, "lua", 2, Post.title:exists())
            tx:delete(Post.new{ forum = "lua", seq = 1 })
          end)
        end, "actions 1 and 3 both touch the same item of table 'posts'" },
    }
    assert.equal(0, srv:count())
    -- the same key in two tables is two items
    assert.is_true(lunamodb.transact_write(function(tx)
      tx:condition_check(Account, "x", Account.id:exists())
      tx:delete(Transfer.new{ id = "x", amount = 1 })
    end))
    assert.equal(1, srv:count())
  end)

  it("refuses no actions, a raising function, and bad tokens", function()
    local Account = models(start{ OK })
    all_raise_here{
      { "no actions", function() lunamodb.transact_write(function() end) end,
        "lunamodb.transact_write: the transaction has no actions" },
      { "a token of 37 characters", function()
          lunamodb.transact_write(function(tx) tx:condition_check(Account, "a", Account.id:exists()) end,
            { client_request_token = string.rep("t", 37) })
        end, "the client request token must be 1 to 36 characters (got 37)" },
      { "a token with a newline", function()
          lunamodb.transact_write(function(tx) tx:condition_check(Account, "a", Account.id:exists()) end,
            { client_request_token = "a\nb" })
        end, "must be printable ASCII" },
    }
    local ok, err = pcall(lunamodb.transact_write, function(tx)
      tx:condition_check(Account, "a", Account.id:exists())
      error("boom in the transaction")
    end)
    assert.is_false(ok)
    assert.matches("transaction_spec%.lua:%d+: boom in the transaction", tostring(err))
    assert.equal(0, srv:count())
  end)

  it("refuses models with other connection settings; models sharing them may join", function()
    local Account, Transfer = models(start{ OK })
    local _, Elsewhere = models(srv, { region = "eu-west-1" })
    local _, OtherKey = models(srv, { access_key_id = "AKID2" })
    raises_with(function()
      lunamodb.transact_write(function(tx)
        tx:condition_check(Account, "a", Account.id:exists())
        tx:save(Elsewhere.new{ id = "t", amount = 1 })
      end)
    end, "lunamodb: transaction: Transfer does not share the other models' connection settings")
    raises_with(function()
      lunamodb.transact_write(function(tx)
        tx:delete(OtherKey.new{ id = "t", amount = 1 })
        tx:condition_check(Account, "a", Account.id:exists())
      end)
    end, "lunamodb: transaction: Account does not share the other models' connection settings")
    assert.equal(0, srv:count())
    assert.is_true(lunamodb.transact_write(function(tx)
      tx:condition_check(Account, "a", Account.id:exists())
      tx:save(Transfer.new{ id = "t", amount = 1 })
    end))
    assert.equal(1, srv:count())
  end)

  it("goes through its models' own client (PynamoDB uses one given connection)", function()
    local other = loopback.start{ routes = { ["POST /"] = { OK } } }
    local ok, err = pcall(function()
      models(start{ OK })
      local Account2, Transfer2 = models(other)
      assert.is_true(lunamodb.transact_write(function(tx)
        tx:condition_check(Account2, "a", Account2.id:exists())
        tx:save(Transfer2.new{ id = "t", amount = 1 })
      end))
      assert.is_nil(lunamodb.transact_get(function(tx) return tx:get(Account2, "a") end))
      assert.equal(0, srv:count())
      local got = sent(other)
      assert.equal(2, #got)
      assert.equal("TransactWriteItems", got[1].op)
      assert.equal("TransactGetItems", got[2].op)
    end)
    other:stop()
    assert(ok, err)
  end)

  it("misuse raises at the caller's line, before any request", function()
    local Account, Transfer = models(start{ OK })
    local _, Elsewhere = models(srv, { region = "eu-west-1" })
    local a = Account.new{ id = "a", version = 1 }
    all_raise_here{
      { "not a function", function() lunamodb.transact_write("x") end,
        "lunamodb.transact_write: expected a function(tx) (got string)" },
      { "unknown option of the call", function()
          lunamodb.transact_write(function(tx) tx:save(a) end, { bogus = 1 })
        end, "unknown option 'bogus'" },
      { "unknown option of an action", function()
          lunamodb.transact_write(function(tx) tx:save(a, { bogus = 1 }) end)
        end, "unknown option 'bogus'" },
      { "return_values_on_failure ALL_NEW", function()
          lunamodb.transact_write(function(tx) tx:save(a, { return_values_on_failure = "ALL_NEW" }) end)
        end, "return_values_on_failure must be \"ALL_OLD\" or \"NONE\"" },
      { "a condition check without a condition", function()
          lunamodb.transact_write(function(tx) tx:condition_check(Account, "a") end)
        end, "a condition is required" },
      { "a boolean condition", function()
          lunamodb.transact_write(function(tx) tx:condition_check(Account, "a", true) end)
        end, "must be a condition" },
      { "an update without actions", function()
          lunamodb.transact_write(function(tx) tx:update(a, {}) end)
        end, "expected a non-empty list of update actions" },
      { "saving a key-only item", function()
          lunamodb.transact_write(function(tx) tx:save(Transfer.get_ref("t")) end)
        end, "read through a projection" },
      { "a wrong key type", function()
          lunamodb.transact_write(function(tx) tx:condition_check(Account, 5, Account.id:exists()) end)
        end, "id" },
      { "a model with other connection settings", function()
          lunamodb.transact_write(function(tx)
            tx:condition_check(Account, "a", Account.id:exists())
            tx:save(Elsewhere.new{ id = "t", amount = 1 })
          end)
        end, "does not share the other models' connection settings" },
    }
    assert.equal(0, srv:count())
  end)
end)

------------------------------------------------------------------ transact_get

describe("transact_get", function()
  after_each(function() if srv then srv:stop(); srv = nil end end)

  it("sends the gets in call order and replaces each placeholder by its item, nil when missing", function()
    local Account, Transfer, Post = models(start{ reply{ Responses = {
      { Item = { id = { S = "alice" }, balance = { N = "50" }, version = { N = "3" } } },
      {},
      { Item = { forum = { S = "lua" }, seq = { N = "2" }, title = { S = "hi" } } },
      { Item = { id = { S = "t1" }, amount = { N = "100" } } },
    } } })
    local futures = {}
    local a, nobody, p, extra, t = lunamodb.transact_get(function(tx)
      futures[1] = tx:get(Account, "alice")
      futures[2] = tx:get(Account, "nobody")
      futures[3] = tx:get(Post, "lua", 2)
      futures[4] = tx:get(Transfer, "t1")
      return futures[1], futures[2], futures[3], "not a placeholder", futures[4]
    end)
    local body, op = last(srv)
    assert.equal("TransactGetItems", op)
    assert.same({ TransactItems = {
      { Get = { TableName = "acct", Key = key("alice") } },
      { Get = { TableName = "acct", Key = key("nobody") } },
      { Get = { TableName = "posts", Key = { forum = { S = "lua" }, seq = { N = "2" } } } },
      { Get = { TableName = "transfers", Key = key("t1") } },
    } }, body)
    assert.is_nil(body.ClientRequestToken)
    assert.is_true(rawequal(Account, model.class_of(a)))
    assert.same({ id = "alice", balance = 50, version = 3 }, a:to_table())
    assert.is_nil(nobody)
    assert.same({ forum = "lua", seq = 2, title = "hi" }, p:to_table())
    assert.equal("not a placeholder", extra)
    assert.equal(100, t.amount)
    assert.is_false(a:is_partial())
    -- the placeholders themselves
    assert.is_true(rawequal(a, (futures[1]:get())))
    local none, err = futures[2]:get()
    assert.is_nil(none)
    assert.is_true(err:is(lunamodb.DoesNotExist))
    assert.equal("TransactGetItems", err.operation)
    -- an item read in a transaction saves like any other (its version is known)
    assert(a:save())
  end)

  it("a placeholder is not ready before the transaction ran", function()
    local Account = models(start{ reply{ Responses = { {} } } })
    local fut
    raises_with(function()
      lunamodb.transact_get(function(tx)
        fut = tx:get(Account, "a")
        fut:get()
      end)
    end, "this transaction result is not ready")
    assert.equal(0, srv:count())
    lunamodb.transact_get(function(tx) fut = tx:get(Account, "a") end)
    assert.is_nil((fut:get()))
  end)

  it("a failure returns nil, err; a cancellation carries its reasons", function()
    local Account = models(start{
      ddb_error("InternalServerError", nil, 500),
      cancelled{ { Code = "None" }, { Code = "TransactionConflict", Message = "conflict" } },
    })
    local out, err = lunamodb.transact_get(function(tx) return tx:get(Account, "a") end)
    assert.is_nil(out)
    assert.equal("InternalServerError", err.code)
    out, err = lunamodb.transact_get(function(tx) return tx:get(Account, "a"), tx:get(Account, "b") end)
    assert.is_nil(out)
    assert.is_true(err:is("TransactionCanceled"))
    assert.same({ "None", "TransactionConflict" }, { err.reasons[1].code, err.reasons[2].code })
    assert.equal("conflict", err.reasons[2].message)
  end)

  it("limits and misuse are refused at the caller's line before any request", function()
    local Account, _, Post = models(start{ OK })
    local _, Elsewhere = models(srv, { region = "eu-west-1" })
    all_raise_here{
      { "not a function", function() lunamodb.transact_get(7) end,
        "lunamodb.transact_get: expected a function(tx) (got number)" },
      { "no gets", function() lunamodb.transact_get(function() end) end,
        "lunamodb.transact_get: the transaction has no gets" },
      { "101 gets", function()
          lunamodb.transact_get(function(tx) for i = 1, 101 do tx:get(Account, "k" .. i) end end)
        end, "a transaction takes at most 100 actions (got 101)" },
      { "two gets of one item", function()
          lunamodb.transact_get(function(tx) tx:get(Post, "lua", 1); tx:get(Post, "lua", 1) end)
        end, "actions 1 and 2 both touch the same item of table 'posts'" },
      { "another region", function()
          lunamodb.transact_get(function(tx) tx:get(Account, "a"); tx:get(Elsewhere, "b") end)
        end, "does not share the other models' connection settings" },
      { "a range key missing", function()
          lunamodb.transact_get(function(tx) tx:get(Post, "lua") end)
        end, "seq" },
    }
    assert.equal(0, srv:count())
  end)
end)
