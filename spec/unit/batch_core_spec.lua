-- core.batch_write_bodies / core.batch_get_bodies / core.batch_unprocessed:
-- BatchWriteItem and BatchGetItem bodies planned by the C core from
-- already-encoded requests and keys, and the next body from what a response
-- left unprocessed.
local core = require "lunamodb.core"
local cjson = require "cjson"                 -- an independent decoder for structure checks

local write_bodies, get_bodies, unprocessed =
  core.batch_write_bodies, core.batch_get_bodies, core.batch_unprocessed

local MB16 = 16 * 1024 * 1024

local function put(id)
  return '{"PutRequest":{"Item":{"id":{"S":"' .. id .. '"},"n":{"N":"' .. #id .. '"}}}}'
end

local function del(id)
  return '{"DeleteRequest":{"Key":{"id":{"S":"' .. id .. '"}}}}'
end

local function key(id)
  return '{"id":{"S":"' .. id .. '"}}'
end

-- A put whose encoded text is exactly n bytes.
local function put_of_size(n, fill)
  local head, tail = '{"PutRequest":{"Item":{"b":{"S":"', '"}}}}'
  return head .. (fill or "x"):rep(n - #head - #tail) .. tail
end

-- What one body must be, written out independently: the entries' tables in
-- order of first appearance, each table's requests in order.
local function expected_write_body(entries)
  local order, lists = {}, {}
  for _, e in ipairs(entries) do
    if not lists[e[1]] then
      lists[e[1]] = {}
      order[#order + 1] = e[1]
    end
    table.insert(lists[e[1]], e[2])
  end
  local parts = {}
  for i, t in ipairs(order) do
    parts[i] = cjson.encode(t) .. ":[" .. table.concat(lists[t], ",") .. "]"
  end
  return '{"RequestItems":{' .. table.concat(parts, ",") .. "}}"
end

local slice = require("spec.helpers.lists").slice

describe("core.batch_write_bodies", function()
  it("packs one entry", function()
    local bodies = write_bodies { { "users", put("a") } }
    assert.same({ '{"RequestItems":{"users":[' .. put("a") .. "]}}" }, bodies)
  end)

  it("packs 25 entries over two tables into one body, keeping order within each table", function()
    local entries = {}
    for i = 1, 25 do
      entries[i] = { i % 3 == 0 and "b" or "a", i % 2 == 0 and del("k" .. i) or put("k" .. i) }
    end
    local bodies = write_bodies(entries)
    assert.equal(1, #bodies)
    assert.equal(expected_write_body(entries), bodies[1])
    local a, b = {}, {}
    for i = 1, 25 do
      table.insert(i % 3 == 0 and b or a, i % 2 == 0 and del("k" .. i) or put("k" .. i))
    end
    assert.equal('{"RequestItems":{"a":[' .. table.concat(a, ",") .. '],"b":['
      .. table.concat(b, ",") .. "]}}", bodies[1])
    local decoded = cjson.decode(bodies[1])
    assert.equal(17, #decoded.RequestItems.a)
    assert.equal(8, #decoded.RequestItems.b)
  end)

  it("starts a second body at the 26th entry", function()
    local entries = {}
    for i = 1, 26 do entries[i] = { "t", put("k" .. i) } end
    local bodies = write_bodies(entries)
    assert.equal(2, #bodies)
    assert.equal(expected_write_body(slice(entries, 1, 25)), bodies[1])
    assert.equal('{"RequestItems":{"t":[' .. put("k26") .. "]}}", bodies[2])
  end)

  it("packs 60 entries over two tables into 25 + 25 + 10", function()
    local entries = {}
    for i = 1, 60 do
      entries[i] = { i <= 20 and "first" or (i % 2 == 0 and "second" or "first"), put("id" .. i) }
    end
    local bodies = write_bodies(entries)
    assert.equal(3, #bodies)
    assert.equal(expected_write_body(slice(entries, 1, 25)), bodies[1])
    assert.equal(expected_write_body(slice(entries, 26, 50)), bodies[2])
    assert.equal(expected_write_body(slice(entries, 51, 60)), bodies[3])
    -- the first body: ids 1-20 and the odd ones of 21-25 under "first", 22 and 24 under "second"
    local d = cjson.decode(bodies[1]).RequestItems
    assert.equal(23, #d.first)
    assert.equal(2, #d.second)
    assert.equal("id21", d.first[21].PutRequest.Item.id.S)
    assert.equal("id22", d.second[1].PutRequest.Item.id.S)
    -- every request once, in order per table, across the bodies
    local seen = {}
    for _, body in ipairs(bodies) do
      for _, list in pairs(cjson.decode(body).RequestItems) do
        for _, r in ipairs(list) do seen[#seen + 1] = tonumber(r.PutRequest.Item.id.S:sub(3)) end
      end
    end
    table.sort(seen)
    for i = 1, 60 do assert.equal(i, seen[i]) end
  end)

  it("makes 200 bodies of 25 for 5,000 entries, each request copied once", function()
    local entries = {}
    for i = 1, 5000 do
      entries[i] = { i % 2 == 0 and "even" or "odd", put(("%05d"):format(i)) }
    end
    local bodies = write_bodies(entries)
    assert.equal(200, #bodies)
    for b = 1, 200 do
      assert.equal(expected_write_body(slice(entries, 25 * b - 24, 25 * b)), bodies[b])
    end
  end)

  it("copies requests byte for byte and escapes table names", function()
    local odd = '  {"PutRequest" : {"Item":{"s":{"S":"\\u00e9 é \\"q\\""},"n":{"N":"1.50E+3"}}}} '
    local bodies = write_bodies { { 'we"ird\\name\n', odd }, { "plain", del("x") } }
    assert.equal('{"RequestItems":{"we\\"ird\\\\name\\n":[' .. odd .. '],"plain":[' .. del("x")
      .. "]}}", bodies[1])
    local d = cjson.decode(bodies[1]).RequestItems
    assert.equal(1, #d['we"ird\\name\n'])
    assert.equal(1, #d.plain)
  end)

  it("returns no body for no entries", function()
    assert.same({}, write_bodies {})
  end)

  it("splits at 16 MB", function()
    -- '{"RequestItems":{"t":[' .. r .. ']}}' is 25 bytes around r
    local exact = put_of_size(MB16 - 25)
    local bodies = write_bodies { { "t", exact } }
    assert.equal(1, #bodies)
    assert.equal(MB16, #bodies[1])
    -- two that fill 16 MB exactly share a body; one byte more splits them
    local half = math.floor((MB16 - 25 - 1) / 2)
    local r1, r2 = put_of_size(half), put_of_size(MB16 - 25 - 1 - half, "y")
    bodies = write_bodies { { "t", r1 }, { "t", r2 } }
    assert.equal(1, #bodies)
    assert.equal(MB16, #bodies[1])
    assert.equal('{"RequestItems":{"t":[' .. r1 .. "," .. r2 .. "]}}", bodies[1])
    local r3 = put_of_size(MB16 - 25 - half)
    bodies = write_bodies { { "t", r1 }, { "t", r3 }, { "u", put("small") } }
    assert.equal(2, #bodies)
    assert.equal('{"RequestItems":{"t":[' .. r1 .. "]}}", bodies[1])
    assert.equal('{"RequestItems":{"t":[' .. r3 .. '],"u":[' .. put("small") .. "]}}", bodies[2])
  end)

  it("splits at 16 MB with big entries in between small ones", function()
    local big = put_of_size(6 * 1024 * 1024)
    local entries = { { "t", put("a") }, { "t", big }, { "t", big }, { "u", big }, { "t", put("b") } }
    local bodies = write_bodies(entries)
    assert.equal(2, #bodies)
    assert.equal(expected_write_body(slice(entries, 1, 3)), bodies[1])
    assert.equal(expected_write_body(slice(entries, 4, 5)), bodies[2])
    for _, b in ipairs(bodies) do assert.is_true(#b <= MB16) end
  end)

  it("refuses an entry that cannot fit 16 MB on its own", function()
    local too_big = put_of_size(MB16 - 25 + 1)
    assert.has_error(function() write_bodies { { "t", too_big } } end,
      "lunamodb: batch_write_bodies: entry 1 cannot fit in a BatchWriteItem body of at most 16 MB "
      .. "(16777216 bytes): its request alone is 16777192 bytes")
    -- also when it comes after others (it would start a body of its own)
    local ok, err = pcall(write_bodies, { { "t", put("a") }, { "t", too_big } })
    assert.is_false(ok)
    assert.matches("entry 2 cannot fit", err, 1, true)
    -- a long table name counts too
    ok, err = pcall(write_bodies, { { ("n"):rep(100), put_of_size(MB16 - 25) } })
    assert.is_false(ok)
    assert.matches("entry 1 cannot fit", err, 1, true)
  end)

  it("raises on malformed entries, naming them", function()
    local function fails(entries, pattern)
      local ok, err = pcall(write_bodies, entries)
      assert.is_false(ok)
      assert.matches(pattern, err, 1, true)
    end
    fails({ { "t", put("a") }, "x" }, "entry 2 must be a { table_name, request_json } table (got string)")
    fails({ { "t" } }, "entry 1: request_json (entry[2]) must be a string (got nil)")
    fails({ { nil, put("a") } }, "entry 1: table_name (entry[1]) must be a string (got nil)")
    fails({ { 42, put("a") } }, "entry 1: table_name (entry[1]) must be a string (got number)")
    fails({ { "t", put("a") }, { "t", {} } }, "entry 2: request_json (entry[2]) must be a string (got table)")
    fails({ { "t", put("a") }, { "t", "" } }, "entry 2: the request is empty")
    fails({ { "t\255", put("a") } }, "entry 1: the table name is not valid UTF-8")
    assert.has_error(function() write_bodies(nil) end)
    assert.has_error(function() write_bodies("x") end)
  end)

  it("reads entries raw, without running metamethods", function()
    local entry = setmetatable({}, { __index = function() error("must not run") end })
    local ok, err = pcall(write_bodies, { entry })
    assert.is_false(ok)
    assert.matches("table_name (entry[1]) must be a string (got nil)", err, 1, true)
  end)
end)

-- What one get body must be, from { { table, options, { keys } }, ... }.
local function expected_get_body(groups)
  local parts = {}
  for i, g in ipairs(groups) do
    parts[i] = cjson.encode(g[1]) .. ':{"Keys":[' .. table.concat(g[3], ",") .. "]"
      .. (g[2] ~= "" and "," .. g[2] or "") .. "}"
  end
  return '{"RequestItems":{' .. table.concat(parts, ",") .. "}}"
end

describe("core.batch_get_bodies", function()
  local OPTS = '"ConsistentRead":true,"ProjectionExpression":"#0","ExpressionAttributeNames":{"#0":"a"}'

  it("packs 250 keys over two tables into 100 + 100 + 50, repeating each table's options", function()
    local k1, k2 = {}, {}
    for i = 1, 150 do k1[i] = key("a" .. i) end
    for i = 1, 100 do k2[i] = key("b" .. i) end
    local bodies = get_bodies {
      { "first", keys = k1, options_json = OPTS },
      { "second", keys = k2, options_json = "" },
    }
    assert.equal(3, #bodies)
    assert.equal(expected_get_body { { "first", OPTS, slice(k1, 1, 100) } }, bodies[1])
    assert.equal(expected_get_body { { "first", OPTS, slice(k1, 101, 150) },
                                     { "second", "", slice(k2, 1, 50) } }, bodies[2])
    assert.equal(expected_get_body { { "second", "", slice(k2, 51, 100) } }, bodies[3])
    local d = cjson.decode(bodies[2]).RequestItems
    assert.equal(50, #d.first.Keys)
    assert.is_true(d.first.ConsistentRead)
    assert.equal("#0", d.first.ProjectionExpression)
    assert.same({ ["#0"] = "a" }, d.first.ExpressionAttributeNames)
    assert.equal(50, #d.second.Keys)
    assert.is_nil(d.second.ConsistentRead)
    assert.same({ id = { S = "a101" } }, d.first.Keys[1])
    assert.same({ id = { S = "b50" } }, d.second.Keys[50])
  end)

  it("writes the exact text of a small body", function()
    assert.same({ '{"RequestItems":{"t":{"Keys":[{"id":{"S":"x"}},{"id":{"S":"y"}}],"ConsistentRead":true}}}' },
      get_bodies { { "t", keys = { key("x"), key("y") }, options_json = '"ConsistentRead":true' } })
    assert.same({ '{"RequestItems":{"t":{"Keys":[{"id":{"S":"x"}}]}}}' },
      get_bodies { { "t", keys = { key("x") }, options_json = "" } })
    -- options_json may be left out
    assert.same({ '{"RequestItems":{"t":{"Keys":[{"id":{"S":"x"}}]}}}' },
      get_bodies { { "t", keys = { key("x") } } })
  end)

  it("makes 50 bodies for 5,000 keys, each key once and in order", function()
    local keys = {}
    for i = 1, 5000 do keys[i] = key(("%05d"):format(i)) end
    local bodies = get_bodies { { "t", keys = keys, options_json = "" } }
    assert.equal(50, #bodies)
    for b = 1, 50 do
      assert.equal(expected_get_body { { "t", "", slice(keys, 100 * b - 99, 100 * b) } }, bodies[b])
    end
  end)

  it("copies keys and options byte for byte and escapes table names", function()
    local k = ' { "id" : {"S":"\\u00e9\\n é"} } '
    local bodies = get_bodies { { 'q"t', keys = { k }, options_json = ' "ConsistentRead" : false ' } }
    assert.same({ '{"RequestItems":{"q\\"t":{"Keys":[' .. k .. '], "ConsistentRead" : false }}}' }, bodies)
    assert.is_table(cjson.decode(bodies[1]))
  end)

  it("skips tables without keys", function()
    assert.same({}, get_bodies {})
    assert.same({}, get_bodies { { "t", keys = {}, options_json = "" } })
    assert.same({ expected_get_body { { "u", "", { key("a") } } } },
      get_bodies { { "t", keys = {} }, { "u", keys = { key("a") } }, { "v", keys = {} } })
  end)

  it("merges a table named twice with the same options, and splits when options differ", function()
    local bodies = get_bodies {
      { "t", keys = { key("a") }, options_json = OPTS },
      { "u", keys = { key("b") }, options_json = "" },
      { "t", keys = { key("c") }, options_json = OPTS },
    }
    assert.same({ expected_get_body { { "t", OPTS, { key("a"), key("c") } }, { "u", "", { key("b") } } } },
      bodies)
    bodies = get_bodies {
      { "t", keys = { key("a") }, options_json = OPTS },
      { "t", keys = { key("c") }, options_json = "" },
    }
    assert.same({ expected_get_body { { "t", OPTS, { key("a") } } },
                  expected_get_body { { "t", "", { key("c") } } } }, bodies)
  end)

  it("splits at 16 MB", function()
    local big = '"ProjectionExpression":"' .. ("p"):rep(9 * 1024 * 1024) .. '"'
    local bodies = get_bodies {
      { "t", keys = { key("a"), key("b") }, options_json = big },
      { "u", keys = { key("c") }, options_json = big },
    }
    assert.equal(2, #bodies)
    assert.equal(expected_get_body { { "t", big, { key("a"), key("b") } } }, bodies[1])
    assert.equal(expected_get_body { { "u", big, { key("c") } } }, bodies[2])
    local huge = '"ProjectionExpression":"' .. ("p"):rep(MB16) .. '"'
    local ok, err = pcall(get_bodies, { { "t", keys = { key("a") }, options_json = huge } })
    assert.is_false(ok)
    assert.matches("table 1: key 1 cannot fit in a BatchGetItem body of at most 16 MB", err, 1, true)
  end)

  it("raises on malformed tables, naming them", function()
    local function fails(tables, pattern)
      local ok, err = pcall(get_bodies, tables)
      assert.is_false(ok)
      assert.matches(pattern, err, 1, true)
    end
    fails({ "t" }, "table 1 must be a { table_name, keys = {...}, options_json = ... } table (got string)")
    fails({ { "t" } }, "table 1: keys must be an array of key JSON texts (got nil)")
    fails({ { keys = { key("a") } } }, "table 1: table_name (table[1]) must be a string (got nil)")
    fails({ { "t", keys = { key("a") } }, { "u", keys = { key("a"), 7 } } },
      "table 2: key 2 must be a string (got number)")
    fails({ { "t", keys = { key("a") }, options_json = true } },
      "table 1: options_json must be a string (got boolean)")
    fails({ { "t", keys = { "" } } }, "table 1: key 1 is empty")
    fails({ { "\255", keys = { key("a") } } }, "table 1: the table name is not valid UTF-8")
    assert.has_error(function() get_bodies(nil) end)
  end)
end)

describe("core.batch_unprocessed", function()
  it("returns UnprocessedItems byte for byte as the next body, with the request count", function()
    local items = '{ "t1" : [ {"PutRequest":{"Item":{"s":{"S":"\\u00e9"}}}} ,'
      .. '{"DeleteRequest":{"Key":{"id":{"N":"1.0E2"}}}}],\n"t2":[{"PutRequest":{"Item":{}}}] }'
    local resp = '{"ConsumedCapacity":[{"TableName":"t1","CapacityUnits":2}],"UnprocessedItems": '
      .. items .. ' ,"ItemCollectionMetrics":{"t1":[{"ItemCollectionKey":{"k":{"S":"x"}}}]}}'
    local nxt, count = unprocessed("write", resp)
    assert.equal('{"RequestItems":' .. items .. "}", nxt)
    assert.equal(3, count)
    assert.same({ RequestItems = cjson.decode(resp).UnprocessedItems }, cjson.decode(nxt))
  end)

  it("returns UnprocessedKeys with their options, counting every table's keys", function()
    local keys = '{"t1":{"Keys":[{"id":{"S":"a"}},{"id":{"S":"b"}}],"ConsistentRead":true,'
      .. '"ProjectionExpression":"#0","ExpressionAttributeNames":{"#0":"a"}},'
      .. '"t2":{"ProjectionExpression":"x","Keys":[{"id":{"S":"c"}}]}}'
    local resp = '{"Responses":{"t1":[{"id":{"S":"z"},"deep":{"L":[{"M":{"a":{"L":[]}}}]}}]},'
      .. '"UnprocessedKeys":' .. keys .. "}"
    local nxt, count = unprocessed("get", resp)
    assert.equal('{"RequestItems":' .. keys .. "}", nxt)
    assert.equal(3, count)
  end)

  it("returns false, 0 when nothing is left", function()
    for _, kind in ipairs { "write", "get" } do
      local member = kind == "write" and "UnprocessedItems" or "UnprocessedKeys"
      for _, resp in ipairs {
        "{}",
        '{"Responses":{"t":[]}}',
        '{"' .. member .. '":null}',
        '{"' .. member .. '":{}}',
        '{ "' .. member .. '" : { } }',
      } do
        local nxt, count = unprocessed(kind, resp)
        assert.is_false(nxt, resp)
        assert.equal(0, count)
      end
    end
    -- tables with nothing in them count for nothing
    assert.same({ false, 0 }, { unprocessed("write", '{"UnprocessedItems":{"t":[]}}') })
    assert.same({ false, 0 }, { unprocessed("get", '{"UnprocessedKeys":{"t":{"Keys":[]}}}') })
    -- the other kind's member is not looked at
    assert.same({ false, 0 }, { unprocessed("get", '{"UnprocessedItems":{"t":[{}]}}') })
    assert.same({ false, 0 }, { unprocessed("write", '{"UnprocessedKeys":{"t":{"Keys":[{}]}}}') })
  end)

  it("takes the last occurrence of a repeated member, as a decoder would", function()
    local nxt, count = unprocessed("write", '{"UnprocessedItems":{"a":[1,2]},"UnprocessedItems":{"b":[3]}}')
    assert.equal('{"RequestItems":{"b":[3]}}', nxt)
    assert.equal(1, count)
    assert.same({ false, 0 }, { unprocessed("write", '{"UnprocessedItems":{"a":[1]},"UnprocessedItems":null}') })
  end)

  it("returns nil, message for malformed responses", function()
    local cases = {
      { "write", "", "response: invalid JSON at byte 1" },
      { "write", "{", "response: invalid JSON" },
      { "write", '{"UnprocessedItems":{"t":[1,2]}', "response: invalid JSON" },
      { "write", '{"UnprocessedItems":{"t":[1,2]}} x', "response: invalid JSON" },
      { "write", "[]", "response: not a JSON object" },
      { "write", '"x"', "response: not a JSON object" },
      { "write", '{"UnprocessedItems":"x"}', "response: UnprocessedItems is not an object" },
      { "write", '{"UnprocessedItems":[]}', "response: UnprocessedItems is not an object" },
      { "write", '{"UnprocessedItems":{"t":{}}}', "UnprocessedItems maps a table to something other than a list" },
      { "get", '{"UnprocessedKeys":{"t":[]}}', "UnprocessedKeys maps a table to something other than an object" },
      { "get", '{"UnprocessedKeys":{"t":{"Keys":{}}}}', "UnprocessedKeys has a table whose Keys is not a list" },
      { "get", '{"UnprocessedKeys":{"t":{"Keys":[1,}}}', "response: invalid JSON" },
      { "get", '{"UnprocessedKeys":{"t":{"Keys":[1]}}, "x": tru}', "response: invalid JSON" },
      { "get", '{"UnprocessedKeys":' .. ("["):rep(200) .. ("]"):rep(200) .. "}", "response:" },
      { "get", '{"a":' .. ("["):rep(200) .. ("]"):rep(200) .. "}", "response: invalid JSON" },
      { "get", '{"UnprocessedKeys":{"t\255":{"Keys":[1]}}}', "response: invalid JSON" },
    }
    for _, c in ipairs(cases) do
      local nxt, err = unprocessed(c[1], c[2])
      assert.is_nil(nxt, c[2])
      assert.is_string(err)
      assert.matches(c[3], err, 1, true)
    end
  end)

  it("raises on misuse", function()
    assert.has_error(function() unprocessed("put", "{}") end)
    assert.has_error(function() unprocessed(nil, "{}") end)
    assert.has_error(function() unprocessed("write", nil) end)
    assert.has_error(function() unprocessed("write", {}) end)
  end)

  it("turns a write body's remainder back into the same body", function()
    local entries = {}
    for i = 1, 25 do entries[i] = { i % 2 == 0 and "a" or "b", put("k" .. i) } end
    local body = write_bodies(entries)[1]
    local resp = '{"UnprocessedItems":' .. body:sub(#'{"RequestItems":' + 1, -2) .. "}"
    local nxt, count = unprocessed("write", resp)
    assert.equal(body, nxt)
    assert.equal(25, count)
  end)
end)

-- Randomized checks against plain Lua references of the packing rules.
describe("batch planning, randomized", function()
  local seed = 20240601
  local function rand(n)        -- Park-Miller: exact in doubles, so the same on both interpreters
    seed = (seed * 16807) % 2147483647
    return seed % n + 1
  end

  local function ref_write(entries)
    local bodies, chunk = {}, {}
    for _, e in ipairs(entries) do
      chunk[#chunk + 1] = e
      if #chunk == 25 then bodies[#bodies + 1] = expected_write_body(chunk); chunk = {} end
    end
    if #chunk > 0 then bodies[#bodies + 1] = expected_write_body(chunk) end
    return bodies
  end

  local function ref_get(tables)
    local bodies, groups, by_name, total = {}, {}, {}, 0
    local function close()
      if total > 0 then bodies[#bodies + 1] = expected_get_body(groups) end
      groups, by_name, total = {}, {}, 0
    end
    for _, t in ipairs(tables) do
      local opts = t.options_json or ""
      for _, k in ipairs(t.keys) do
        local g = by_name[t[1]]
        if g and g[2] ~= opts then close(); g = nil end
        if not g then
          g = { t[1], opts, {} }
          groups[#groups + 1] = g
          by_name[t[1]] = g
        end
        table.insert(g[3], k)
        total = total + 1
        if total == 100 then close() end
      end
    end
    close()
    return bodies
  end

  it("packs writes as the reference does", function()
    for _ = 1, 200 do
      local entries = {}
      for i = 1, rand(120) - 1 do
        local t = ({ "a", "b", "c", "d" })[rand(4)]
        entries[i] = { t, rand(2) == 1 and put("k" .. i) or del("k" .. i) }
      end
      assert.same(ref_write(entries), write_bodies(entries))
    end
  end)

  it("packs gets as the reference does", function()
    local options = { "", '"ConsistentRead":true', '"ProjectionExpression":"#0","ExpressionAttributeNames":{"#0":"a"}' }
    for _ = 1, 200 do
      local tables, n = {}, 0
      for i = 1, rand(6) - 1 do
        local keys = {}
        for j = 1, rand(160) - 1 do n = n + 1; keys[j] = key("k" .. n) end
        tables[i] = { ({ "a", "b", "c" })[rand(3)], keys = keys, options_json = options[rand(3)] }
      end
      assert.same(ref_get(tables), get_bodies(tables))
    end
  end)

  it("never fails badly on damaged responses", function()
    local base = '{"UnprocessedItems":{"t1":[{"PutRequest":{"Item":{"s":{"S":"a\\"b"}}}}],'
      .. '"t2":[{"DeleteRequest":{"Key":{"n":{"N":"1"}}}}]},"UnprocessedKeys":{"t":{"Keys":[{"k":'
      .. '{"S":"x"}}],"ConsistentRead":true}},"ConsumedCapacity":[{"CapacityUnits":1.5}]}'
    local alphabet = '{}[]":,\\ 0aeU\255'
    for _ = 1, 3000 do
      local s = base
      for _ = 1, rand(4) do
        local at, op = rand(#s), rand(3)
        local ci = rand(#alphabet)
        local c = alphabet:sub(ci, ci)
        if op == 1 then s = s:sub(1, at - 1) .. c .. s:sub(at + 1)
        elseif op == 2 then s = s:sub(1, at - 1) .. s:sub(at + 1)
        else s = s:sub(1, at) .. c .. s:sub(at + 1) end
      end
      for _, kind in ipairs { "write", "get" } do
        local nxt, count = unprocessed(kind, s)
        if nxt == nil then
          assert.is_string(count)
        else
          assert.is_number(count)
          if nxt then
            assert.is_true(count > 0)
            assert.equal('{"RequestItems":{', nxt:sub(1, 17))
            assert.is_true(core.json_valid(nxt))
          else
            assert.equal(0, count)
          end
        end
      end
    end
  end)
end)

describe("core.batch_builder", function()
  local A = require "lunamodb.attributes"
  local Refuses = A.define{
    kind = "BuilderSpecRefuses", type = "S",
    serialize = function(_, v) if v == "bad" then error("no bad values") end return v end,
    deserialize = function(_, s) return s end,
  }
  local T = A.schema({ pk = A.Unicode{ hash_key = true }, sk = A.Number{ range_key = true },
    note = Refuses{ null = true } }, "BuilderSpec")
  local plan = A.encode_plan(T)

  local function key_of(id, sk) return ('{"pk":{"S":"%s"},"sk":{"N":"%d"}}'):format(id, sk) end

  it("packs the puts it encodes and the requests it is given, as batch_write_bodies does", function()
    local b = core.batch_builder()
    local entries, items = {}, {}
    for i = 1, 30 do
      local t = i % 4 == 0 and "other" or "main"
      local item = { pk = "k" .. i, sk = i, note = "n" }
      items[i] = item
      if i % 5 == 0 then
        assert.is_true(b:add(t, del("k" .. i), key_of("k" .. i, i), item, "delete"))
        entries[#entries + 1] = { t, del("k" .. i) }
      else
        assert.is_true(b:put(item, plan, t))
        entries[#entries + 1] = { t, '{"PutRequest":{"Item":'
          .. A.encode_item_json(T, item) .. "}}" }
      end
    end
    assert.equal(30, #b)
    assert.same(write_bodies(entries), b:bodies())
    -- each request leads back to its item and operation, by table and key
    for i = 1, 30 do
      local item, op = b:find(i % 4 == 0 and "other" or "main", key_of("k" .. i, i))
      assert.equal(items[i], item)
      assert.equal(i % 5 == 0 and "delete" or "save", op)
    end
    assert.is_nil(b:find("main", key_of("k4", 4)))                   -- k4 went to other
    assert.is_nil(b:find("nowhere", key_of("k1", 1)))
  end)

  it("refuses a second write of one key in one table, queueing nothing", function()
    local b = core.batch_builder()
    local first = { pk = "p", sk = 1 }
    assert.is_true(b:put(first, plan, "main"))
    local before = b:bodies()
    assert.is_false(b:put({ pk = "p", sk = 1, note = "other" }, plan, "main"))
    assert.is_false(b:add("main", del("p"), key_of("p", 1), {}, "delete"))
    assert.is_false(b:add_put("main", A.encode_item_json(T, first), key_of("p", 1), first))
    assert.equal(1, #b)
    assert.same(before, b:bodies())
    assert.equal(first, (b:find("main", key_of("p", 1))))
    -- the same key in another table is another item
    assert.is_true(b:put({ pk = "p", sk = 1 }, plan, "other"))
    assert.is_true(b:add("third", del("p"), key_of("p", 1), {}, "delete"))
    assert.equal(3, #b)
    -- enough keys to grow the set several times: every one still found once
    for i = 2, 600 do assert.is_true(b:put({ pk = "p", sk = i }, plan, "main")) end
    for i = 2, 600 do assert.is_false(b:put({ pk = "p", sk = i }, plan, "main")) end
    assert.equal(602, #b)
    assert.equal(25, #b:bodies())                               -- 602 requests, 25 a body
    -- reset: empty, and the same keys go in again (into other tables' slots, too)
    b:reset()
    assert.equal(0, #b)
    assert.same({}, b:bodies())
    assert.is_nil(b:find("main", key_of("p", 1)))
    local again = { pk = "p", sk = 1 }
    assert.is_true(b:put(again, plan, "third"))
    assert.is_true(b:put({ pk = "p", sk = 2 }, plan, "main"))
    assert.is_false(b:put({ pk = "p", sk = 1 }, plan, "third"))
    assert.equal(again, (b:find("third", key_of("p", 1))))
    assert.is_nil(b:find("main", key_of("p", 1)))
    assert.same({ '{"RequestItems":{"third":[{"PutRequest":{"Item":'
      .. A.encode_item_json(T, again) .. '}}],"main":[{"PutRequest":{"Item":'
      .. A.encode_item_json(T, { pk = "p", sk = 2 }) .. '}}]}}' }, b:bodies())
    -- and it holds on to no item after a reset
    local held = setmetatable({}, { __mode = "k" })
    held[again] = true
    again = nil
    b:reset()
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(held))
  end)

  it("queues nothing for values the fast path does not take (the caller encodes them)", function()
    local b = core.batch_builder()
    assert.is_nil(b:put({ sk = 1 }, plan, "main"))                    -- no hash key
    assert.is_nil(b:put({ pk = "p", sk = 1, note = "bad" }, plan, "main"))  -- its encode raises
    assert.is_nil(b:put({ pk = "p", sk = 1, nope = 1 }, plan, "main"))  -- undeclared
    assert.equal(0, #b)
    assert.same({}, b:bodies())
    assert.is_true(b:put({ pk = "p", sk = 1 }, plan, "main"))
    assert.same({ '{"RequestItems":{"main":[{"PutRequest":{"Item":'
      .. A.encode_item_json(T, { pk = "p", sk = 1 }) .. '}}]}}' }, b:bodies())
    assert.has_error(function() b:put({ pk = "p", sk = 2 }, {}, "main") end,
      "bad argument #2 to 'put' (an encode plan (core.encode_plan) expected)")
    assert.has_error(function() b:add("main", "", key_of("q", 1), {}, "delete") end,
      "bad argument #2 to 'add' (an empty request)")
    assert.has_error(function() b:add("main", del("q"), "", {}, "delete") end,
      "bad argument #3 to 'add' (an empty key)")
    assert.has_error(function() b:add("main", del("q"), key_of("q", 1), {}, "remove") end,
      "bad argument #5 to 'add' (invalid option 'remove')")
    -- what the caller encodes goes in with the same PutRequest wrapper
    local item = A.encode_item_json(T, { pk = "q", sk = 2 })
    assert.is_true(b:add_put("main", item, key_of("q", 2), { pk = "q", sk = 2 }))
    assert.equal(2, #b)
    assert.same({ '{"RequestItems":{"main":[{"PutRequest":{"Item":'
      .. A.encode_item_json(T, { pk = "p", sk = 1 }) .. '}},{"PutRequest":{"Item":' .. item
      .. '}}]}}' }, b:bodies())
    assert.has_error(function() b:add_put("main", "", key_of("r", 1), {}) end,
      "bad argument #2 to 'add_put' (an empty request)")
    assert.has_error(function() b:add_put("main", item, key_of("r", 1)) end,
      "bad argument #4 to 'add_put' (value expected)")
    assert.equal(2, #b)
  end)

  it("gives its bodies as core bodies: the same text, held in C memory until released", function()
    local b = core.batch_builder()
    for i = 1, 30 do assert.is_true(b:put({ pk = "k" .. i, sk = i }, plan, "main")) end
    local texts, bodies = b:bodies(), b:bodies(true)
    assert.equal(2, #bodies)
    for i, body in ipairs(bodies) do
      assert.is_true(core.is_body(body))
      assert.equal("userdata", type(body))
      assert.equal(texts[i], tostring(body))
      assert.equal(#texts[i], #body)
    end
    assert.is_false(core.is_body(texts[1]))
    assert.is_false(core.is_body(b))
    -- what reads a body reads it as its text
    local signer = core.signer()
    signer:set_credentials("AKID", "SECRET")
    assert.same({ signer:sign_post("us-east-1", "dynamodb", 1700000000, "h", "T", texts[1]) },
      { signer:sign_post("us-east-1", "dynamodb", 1700000000, "h", "T", bodies[1]) })
    assert.are_not.same({ signer:sign_post("us-east-1", "dynamodb", 1700000000, "h", "T", texts[1]) },
      { signer:sign_post("us-east-1", "dynamodb", 1700000000, "h", "T", bodies[2]) })
    -- released: its memory goes at once, and any later use is refused
    bodies[1]:release()
    bodies[1]:release()                                       -- twice is harmless
    local ok, err = pcall(tostring, bodies[1])
    assert.is_false(ok)
    assert.matches("a released lunamodb.body", err, 1, true)
    ok, err = pcall(signer.sign_post, signer, "us-east-1", "dynamodb", 1700000000, "h", "T",
      bodies[1])
    assert.is_false(ok)
    assert.matches("a released lunamodb.body", err, 1, true)
    ok, err = pcall(signer.sign_post, signer, "us-east-1", "dynamodb", 1700000000, "h", "T", {})
    assert.is_false(ok)
    assert.matches("a string or a lunamodb.body expected (got table)", err, 1, true)
    assert.equal(texts[2], tostring(bodies[2]))
  end)
end)
