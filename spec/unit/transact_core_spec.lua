-- core.transact_body: TransactWriteItems and TransactGetItems bodies, with
-- every limit checked by the C core before anything is sent.
local core = require "lunamodb.core"
local cjson = require "cjson"                 -- an independent decoder for structure checks

local body = core.transact_body

local MB4 = 4 * 1024 * 1024

local function put(id, extra)
  return '{"Put":{"TableName":"acct","Item":{"id":{"S":"' .. id .. '"}' .. (extra or "") .. "}}}"
end

local function update(id)
  return '{"Update":{"TableName":"acct","Key":{"id":{"S":"' .. id .. '"}},'
    .. '"UpdateExpression":"SET #0 = #0 - :0","ExpressionAttributeNames":{"#0":"balance"},'
    .. '"ExpressionAttributeValues":{":0":{"N":"100"}}}}'
end

local function check(id)
  return '{"ConditionCheck":{"TableName":"acct","Key":{"id":{"S":"' .. id .. '"}},'
    .. '"ConditionExpression":"#0 >= :0","ExpressionAttributeNames":{"#0":"balance"},'
    .. '"ExpressionAttributeValues":{":0":{"N":"100"}}}}'
end

local function delete(id)
  return '{"Delete":{"TableName":"log","Key":{"id":{"S":"' .. id .. '"}}}}'
end

local function get(t, id)
  return '{"Get":{"TableName":"' .. t .. '","Key":{"id":{"S":"' .. id .. '"}}}}'
end

-- A Put whose encoded text is exactly n bytes.
local function put_of_size(id, n)
  local head = '{"Put":{"TableName":"acct","Item":{"id":{"S":"' .. id .. '"},"b":{"S":"'
  local tail = '"}}}}'
  return head .. ("x"):rep(n - #head - #tail) .. tail
end

local function fails(pattern, ...)
  local ok, err = pcall(body, ...)
  assert.is_false(ok, "expected an error matching " .. pattern)
  assert.matches(pattern, err, 1, true)
  return err
end

describe("core.transact_body", function()
  describe("write", function()
    local actions = {
      { "acct", "alice", check("alice") },
      { "acct", "bob", update("bob") },
      { "log", "t1", delete("t1") },
      { "transfer", "t1", put("t1") },
    }

    it("builds the exact body without a token", function()
      assert.equal('{"TransactItems":[' .. check("alice") .. "," .. update("bob") .. ","
        .. delete("t1") .. "," .. put("t1") .. "]}", body("write", actions))
    end)

    it("adds the client request token", function()
      local text = body("write", actions, "t1-0b1c2d3e")
      assert.equal('{"TransactItems":[' .. check("alice") .. "," .. update("bob") .. ","
        .. delete("t1") .. "," .. put("t1") .. '],"ClientRequestToken":"t1-0b1c2d3e"}', text)
      local d = cjson.decode(text)
      assert.equal(4, #d.TransactItems)
      assert.equal("t1-0b1c2d3e", d.ClientRequestToken)
      assert.equal("balance", d.TransactItems[2].Update.ExpressionAttributeNames["#0"])
    end)

    it("takes a UUID token and escapes quotes and backslashes", function()
      local uuid = core.uuid4()
      assert.equal('{"TransactItems":[' .. put("a") .. '],"ClientRequestToken":"' .. uuid .. '"}',
        body("write", { { "acct", "a", put("a") } }, uuid))
      local text = body("write", { { "acct", "a", put("a") } }, 'a"b\\c d~')
      assert.equal('{"TransactItems":[' .. put("a") .. '],"ClientRequestToken":"a\\"b\\\\c d~"}', text)
      assert.equal('a"b\\c d~', cjson.decode(text).ClientRequestToken)
    end)

    it("copies actions byte for byte", function()
      local odd = ' {"Put" : {"TableName":"acct","Item":{"s":{"S":"\\u00e9 é"},"n":{"N":"1.0E2"}}}}\n'
      assert.equal('{"TransactItems":[' .. odd .. "]}", body("write", { { "acct", "x", odd } }))
    end)

    it("takes 100 actions and refuses 101", function()
      local list = {}
      for i = 1, 100 do list[i] = { "acct", "id" .. i, put("id" .. i) } end
      local text = body("write", list, "tok")
      assert.equal(100, #cjson.decode(text).TransactItems)
      list[101] = { "acct", "id101", put("id101") }
      local err = fails("a transaction takes at most 100 actions (got 101)", "write", list)
      assert.equal("lunamodb: transact_body: a transaction takes at most 100 actions (got 101)", err)
      -- the count is the error, whatever the actions hold
      local junk = {}
      for i = 1, 250 do junk[i] = "not even a table" end
      fails("a transaction takes at most 100 actions (got 250)", "write", junk)
    end)

    it("takes 4 MB of actions and refuses one byte more", function()
      local a = put_of_size("a", MB4 / 2)
      local b = put_of_size("b", MB4 / 2)
      local text = body("write", { { "acct", "a", a }, { "acct", "b", b } }, "tok")
      assert.equal('{"TransactItems":[' .. a .. "," .. b .. '],"ClientRequestToken":"tok"}', text)
      local b2 = put_of_size("b", MB4 / 2 + 1)
      local err = fails("over DynamoDB's 4 MB limit", "write", { { "acct", "a", a }, { "acct", "b", b2 } })
      assert.matches("4194305 bytes", err, 1, true)
      assert.matches("4194304 bytes of encoded actions", err, 1, true)
      assert.matches("passed at action 2", err, 1, true)
      local small = {}
      for i = 1, 10 do small[i] = { "acct", "s" .. i, put("s" .. i) } end
      small[3] = { "acct", "big", put_of_size("big", MB4 - #put("s1") - #put("s2")) }
      fails("passed at action 4", "write", small)
    end)

    it("refuses two actions on the same item, naming them", function()
      local list = {
        { "acct", "alice", check("alice") },
        { "acct", "bob", update("bob") },
        { "log", "bob", delete("bob") },            -- same key, other table: fine
        { "acct", "carol", put("carol") },
        { "acct", "bob", put("bob") },
      }
      local err = fails("actions 2 and 5 both touch the same item of table 'acct'", "write", list)
      assert.equal("lunamodb: transact_body: actions 2 and 5 both touch the same item of table "
        .. "'acct' (a transaction takes one action per item)", err)
      list[5] = { "acct", "bobby", put("bobby") }
      assert.is_string(body("write", list))
      -- the first repeated pair is named, and key ids compare as bytes
      fails("actions 1 and 3 both touch the same item of table 'x'", "write", {
        { "x", "k\0a", put("1") }, { "x", "k\0b", put("2") }, { "x", "k\0a", put("3") },
        { "x", "k\0b", put("4") },
      })
      -- lengths keep ("ab", "c") and ("a", "bc") apart
      assert.is_string(body("write", { { "ab", "c", put("1") }, { "a", "bc", put("2") } }))
    end)

    it("refuses an empty transaction", function()
      fails("a transaction needs at least one action (got none)", "write", {})
      fails("a transaction needs at least one action (got none)", "write", {}, "tok")
    end)

    it("refuses bad tokens", function()
      local one = { { "acct", "a", put("a") } }
      assert.is_string(body("write", one, "x"))
      assert.is_string(body("write", one, ("x"):rep(36)))
      assert.is_string(body("write", one, " !~"))
      fails("the client request token must be 1 to 36 characters (got 0)", "write", one, "")
      fails("the client request token must be 1 to 36 characters (got 37)", "write", one, ("x"):rep(37))
      fails("the client request token must be printable ASCII (character 2 is byte 0x0a)",
        "write", one, "a\nb")
      fails("the client request token must be printable ASCII (character 1 is byte 0x00)",
        "write", one, "\0")
      fails("the client request token must be printable ASCII (character 1 is byte 0x7f)",
        "write", one, "\127")
      fails("the client request token must be printable ASCII (character 3 is byte 0xc3)",
        "write", one, "ab\195\169")
      assert.has_error(function() body("write", one, 42) end)
      assert.has_error(function() body("write", one, {}) end)
    end)

    it("refuses actions of the wrong kind", function()
      fails("action 2 is not a Put, Update, Delete or ConditionCheck action", "write",
        { { "acct", "a", put("a") }, { "acct", "b", get("acct", "b") } })
      fails("action 1 is not a Put", "write", { { "acct", "a", '{"PutRequest":{}}' } })
      fails("action 1 is not a Put", "write", { { "acct", "a", "" } })
      fails("action 1 is not a Put", "write", { { "acct", "a", '["Put"]' } })
      fails("action 1 is not a Put", "write", { { "acct", "a", '{"P\\u0075t":{}}' } })
    end)

    it("raises on malformed entries, naming them", function()
      fails("action 2 must be a { table_name, key_id, action_json } table (got string)", "write",
        { { "acct", "a", put("a") }, "x" })
      fails("action 1: table_name (action[1]) must be a string (got nil)", "write", { { nil, "a", put("a") } })
      fails("action 1: key_id (action[2]) must be a string (got number)", "write", { { "acct", 1, put("a") } })
      fails("action 1: action_json (action[3]) must be a string (got nil)", "write", { { "acct", "a" } })
      assert.has_error(function() body("write", nil) end)
      assert.has_error(function() body("write", "x") end)
      assert.has_error(function() body("delete", { { "acct", "a", put("a") } }) end)
      assert.has_error(function() body(nil, { { "acct", "a", put("a") } }) end)
    end)
  end)

  describe("get", function()
    it("builds the exact body", function()
      local text = body("get", { { "acct", "alice", get("acct", "alice") }, { "acct", "bob", get("acct", "bob") } })
      assert.equal('{"TransactItems":[' .. get("acct", "alice") .. "," .. get("acct", "bob") .. "]}", text)
      local d = cjson.decode(text)
      assert.equal("bob", d.TransactItems[2].Get.Key.id.S)
    end)

    it("checks the same limits", function()
      local list = {}
      for i = 1, 100 do list[i] = { "acct", "id" .. i, get("acct", "id" .. i) } end
      assert.is_string(body("get", list))
      list[101] = { "acct", "x", get("acct", "x") }
      fails("a transaction takes at most 100 actions (got 101)", "get", list)
      fails("a transaction needs at least one action", "get", {})
      fails("actions 1 and 2 both touch the same item of table 'acct'", "get",
        { { "acct", "a", get("acct", "a") }, { "acct", "a", get("acct", "a") } })
      fails("over DynamoDB's 4 MB limit", "get",
        { { "acct", "a", '{"Get":{"TableName":"' .. ("x"):rep(MB4) .. '"}}' } })
    end)

    it("takes Get actions only, and no token", function()
      fails("action 1 is not a Get action", "get", { { "acct", "a", put("a") } })
      fails("a client request token is for write transactions only", "get",
        { { "acct", "a", get("acct", "a") } }, "tok")
    end)
  end)
end)
