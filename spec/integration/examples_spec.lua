-- examples/basic.lua (the README quick start) runs end to end against DynamoDB Local.
local ddb = require "spec.helpers.ddb"

describe("examples/basic.lua #integration", function()
  it("runs against DynamoDB Local and prints what happened", function()
    local interpreter = jit and "luajit" or "lua5.4"
    local cpath = jit and "build/luajit/?.so" or "build/lua5.4/?.so"
    local cmd = string.format("AWS_ENDPOINT_URL_DYNAMODB=%s AWS_ACCESS_KEY_ID=examplerun "
      .. "AWS_SECRET_ACCESS_KEY=examplerun LUA_PATH='lua/?.lua;lua/?/init.lua;;' "
      .. "LUA_CPATH='%s;;' %s examples/basic.lua 2>&1; echo \"exit=$?\"", ddb.endpoint(), cpath, interpreter)
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    assert.matches("exit=0\n$", out)
    assert.matches("saved:    lunamodb_demo_users%(email=\"ada@example.com\"", out)
    assert.matches("logins=1", out)
    assert.matches("refused:  lunamodb: PutItem: ConditionalCheckFailedException", out)
    assert.matches("missing:  lunamodb: GetItem: DoesNotExist", out)
    assert.matches("deleted:  the table lunamodb_demo_users", out)
  end)
end)

-- examples/indexes.lua: query, scan, count and the secondary indexes, end to end.
describe("examples/indexes.lua #integration", function()
  it("runs against DynamoDB Local and prints what each read returned", function()
    local interpreter = jit and "luajit" or "lua5.4"
    local cpath = jit and "build/luajit/?.so" or "build/lua5.4/?.so"
    local cmd = string.format("AWS_ENDPOINT_URL_DYNAMODB=%s AWS_ACCESS_KEY_ID=examplerun "
      .. "AWS_SECRET_ACCESS_KEY=examplerun LUA_PATH='lua/?.lua;lua/?/init.lua;;' "
      .. "LUA_CPATH='%s;;' %s examples/indexes.lua 2>&1; echo \"exit=$?\"", ddb.endpoint(), cpath, interpreter)
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    -- 30 threads: views = i * 7 % 31 (each of 1..30 once), every third one by ada
    assert.equal(table.concat({
      "query:       thread 11 (15 views), thread 12 (22 views), thread 13 (29 views), thread 15 (12 views), "
        .. "thread 16 (19 views)",
      "by_views:    thread 22 has the most views (30)",
      "by_author:   ada wrote 10 threads; partial items: true",
      "count:       16 threads with 15+ views",
      "scan pages:  4 pages of at most 8 items",
      "resumed:     20 more threads after the first 10",
      "by_last_post: 30 entries",
      "parallel:    30 threads from 4 segments",
      "exit=0",
    }, "\n") .. "\n", out)
  end)
end)

-- examples/transactions.lua: a batch write and read, a transfer transaction,
-- its replay with the same token, and a cancelled one, end to end.
describe("examples/transactions.lua #integration", function()
  it("runs against DynamoDB Local and prints what each step did", function()
    local interpreter = jit and "luajit" or "lua5.4"
    local cpath = jit and "build/luajit/?.so" or "build/lua5.4/?.so"
    local cmd = string.format("AWS_ENDPOINT_URL_DYNAMODB=%s AWS_ACCESS_KEY_ID=examplerun "
      .. "AWS_SECRET_ACCESS_KEY=examplerun LUA_PATH='lua/?.lua;lua/?/init.lua;;' "
      .. "LUA_CPATH='%s;;' %s examples/transactions.lua 2>&1; echo \"exit=$?\"", ddb.endpoint(), cpath,
      interpreter)
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    -- alice 150 and bob 20, then one transfer of 100 (its replay applies nothing, and a
    -- second one of 100 fails alice's balance check, the first of its four actions)
    assert.equal(table.concat({
      "batch:       62 accounts written, 4 of 5 keys found",
      "transfer:    alice 50, bob 120",
      "replay:      alice still 50",
      "cancelled:   reasons per action: ConditionalCheckFailed, None, None, None",
      "exit=0",
    }, "\n") .. "\n", out)
  end)
end)
