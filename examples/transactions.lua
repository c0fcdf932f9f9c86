-- examples/transactions.lua: batches and transactions.
--
-- Run against DynamoDB Local by `make test` (and by hand like examples/basic.lua:
-- set AWS_ENDPOINT_URL_DYNAMODB and credentials).
local lunamodb = require "lunamodb"
local A = lunamodb.attributes

local common = { region = os.getenv("AWS_REGION") or "us-east-1", billing_mode = "PAY_PER_REQUEST" }
local function model(decl)
  for k, v in pairs(common) do decl[k] = v end
  return lunamodb.Model(decl)
end

local Account = model{
  table_name = "lunamodb_demo_accounts", name = "Account",
  attributes = { id = A.Unicode{ hash_key = true }, balance = A.Number{ default = 0 }, version = A.Version{} },
}
local Transfer = model{
  table_name = "lunamodb_demo_transfers", name = "Transfer",
  attributes = { id = A.Unicode{ hash_key = true }, from = A.Unicode{}, to = A.Unicode{}, amount = A.Number{} },
}
assert(Account:create_table{ wait = true })
assert(Transfer:create_table{ wait = true })

-- a batch write: any number of items, sent 25 at a time, unprocessed ones retried
assert(lunamodb.batch_write(function(batch)
  batch:save(Account.new{ id = "alice", balance = 150 })
  batch:save(Account.new{ id = "bob", balance = 20 })
  for i = 1, 60 do batch:save(Account.new{ id = "spare" .. i, balance = i }) end
end, { ignore_version = true }))
local n = 0
for _ in Account:batch_get{ "alice", "bob", "spare1", "spare60", "nobody" } do n = n + 1 end
print("batch:       62 accounts written, " .. n .. " of 5 keys found")

-- a transfer: both balances and the record change together, or nothing does
-- (one action per item: the balance check rides on the debit itself)
local function transfer(id, from, to, amount)
  return lunamodb.transact_write(function(tx)
    tx:update(Account.get_ref(from), { Account.balance:set(Account.balance - amount) },
              { condition = Account.balance:ge(amount), add_version_condition = false })
    tx:update(Account.get_ref(to), { Account.balance:set(Account.balance + amount) },
              { add_version_condition = false })
    tx:save(Transfer.new{ id = id, from = from, to = to, amount = amount },
            { condition = Transfer.id:does_not_exist() })
    -- a condition on another item, checked in the same transaction
    tx:condition_check(Account, "spare1", Account.id:exists())
  end, { client_request_token = id })
end

assert(transfer("t1", "alice", "bob", 100))
local alice, bob = lunamodb.transact_get(function(tx)
  return tx:get(Account, "alice"), tx:get(Account, "bob")
end)
print(string.format("transfer:    alice %d, bob %d", alice.balance, bob.balance))

-- the same token again within 10 minutes: DynamoDB does not apply it twice
assert(transfer("t1", "alice", "bob", 100))
alice = assert(Account:get("alice"))
print(string.format("replay:      alice still %d", alice.balance))

-- not enough money: the condition check fails and nothing is applied
local ok, err = transfer("t2", "alice", "bob", 100)
assert(not ok and err:is("TransactionCanceled"))
local codes = {}
for i, r in ipairs(err.reasons) do codes[i] = r.code end
print("cancelled:   reasons per action: " .. table.concat(codes, ", "))

assert(Account:delete_table{ wait = true })
assert(Transfer:delete_table{ wait = true })
