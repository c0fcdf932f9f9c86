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
