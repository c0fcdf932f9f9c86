-- Reading at scale without DynamoDB: Query, Scan and Count requests captured by
-- the scripted loopback server and compared as parsed JSON, multi-page replies,
-- limit versus page_size, resuming, exact counts, partial items from indexes,
-- CreateTable with indexes, index declarations, misuse refused before any
-- request, rate limiting and the concurrent parallel scan (reference
-- pynamodb.md §3.8, §3.9, §5.4, §6.6, §6.10, §6.11, §6.14, §9.3, §9.7).
-- Conditions use * + - so the spec also runs on LuaJIT.
local lunamodb = require "lunamodb"
local A = require "lunamodb.attributes"
local core = require "lunamodb.core"
local model = require "lunamodb.model"
local loopback = require "spec.helpers.loopback"

local json_decode, json_encode = core.json_decode, core.json_encode
local monotonic_ms = core.monotonic_ms

local W = require "spec.helpers.wire"
local SLOW, raises, raises_with = W.SLOW, W.raises, W.raises_with
local raises_here = W.raises_at("model_read_spec")

local BOOLEAN_HINT = " (Lua comparison operators such as == and < always yield booleans: "
  .. "build conditions with methods such as :eq, :ne, :lt, :gt, :exists)"

local ddb_error, OK, reply = W.ddb_error, W.OK, W.reply

-- A Query/Scan reply: items (wire), the page's LastEvaluatedKey, extra members.
local function page(items, lek, extra)
  local t = { Items = lunamodb.array(items), Count = #items, ScannedCount = #items, LastEvaluatedKey = lek }
  for k, v in pairs(extra or {}) do t[k] = v end
  return reply(t)
end
local EMPTY = page({})

local sent, bodies, last = W.sent, W.bodies, W.last

-- The names a ProjectionExpression lists, in order (placeholders resolved).
local function projected_names(body)
  local out = {}
  for part in (body.ProjectionExpression .. ", "):gmatch("(.-), ") do
    out[#out + 1] = part:gsub("#%d+", function(p) return assert(body.ExpressionAttributeNames[p], p) end)
  end
  return out
end
local sorted = require("spec.helpers.lists").sorted

-- A list of tables keyed by one of their fields (order-free comparisons);
-- raises on a duplicate.
local function by(list, field)
  local out = {}
  for _, v in ipairs(list) do
    assert(out[v[field]] == nil, "duplicate " .. field .. " " .. tostring(v[field]))
    out[v[field]] = v
  end
  return out
end

-- Wire items of the Thread model.
local function th(subject, extra)
  local t = { forum = { S = "lua" }, subject = { S = subject } }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end
local function key(subject) return { forum = { S = "lua" }, subject = { S = subject } } end

local function subjects(items)
  local out = {}
  for i, t in ipairs(items) do out[i] = t.subject end
  return out
end

local srv
local function start(replies)
  srv = loopback.start{ routes = { ["POST /"] = replies } }
  return srv
end

local on = W.on

local function thread_decl(extra)
  local decl = { name = "Thread", table_name = "threads", attributes = {
    forum = A.Unicode{ hash_key = true }, subject = A.Unicode{ range_key = true },
    views = A.Number{ default = 0 }, author = A.Unicode{ null = true },
    last_post = A.Number{ null = true }, body = A.Unicode{ null = true },
    tags = A.UnicodeSet{}, meta = A.Map{ null = true } },
    indexes = {
      by_views = lunamodb.GlobalSecondaryIndex{ hash_key = "forum", range_key = "views", projection = "ALL" },
      by_author = lunamodb.GlobalSecondaryIndex{ hash_key = "author", projection = { "views" },
                                                 read_capacity_units = 4, write_capacity_units = 5 },
      by_last = lunamodb.LocalSecondaryIndex{ range_key = "last_post", projection = "KEYS_ONLY" },
    } }
  for k, v in pairs(extra or {}) do decl[k] = v end
  return decl
end

local function Thread(replies, extra)
  return on(start(replies), thread_decl(extra))
end

local function drain(it)
  local out = {}
  for v in it do out[#out + 1] = v end
  return out
end

-------------------------------------------------------------- request shapes

describe("query and scan requests", function()
  after_each(function() if srv then srv:stop(); srv = nil end end)

  it("a bare query sends the hash key condition and nothing else", function()
    local T = Thread{ EMPTY }
    assert.same({}, drain(T:query("lua")))
    assert.same({ {
      TableName = "threads", KeyConditionExpression = "#0 = :0",
      ExpressionAttributeNames = { ["#0"] = "forum" },
      ExpressionAttributeValues = { [":0"] = { S = "lua" } },
    } }, bodies(srv))
    assert.equal("Query", select(2, last(srv)))
  end)

  it("a bare scan sends the table name only", function()
    local T = Thread{ EMPTY }
    assert.same({}, drain(T:scan()))
    assert.same({ { TableName = "threads" } }, bodies(srv))
    drain(T:scan{})
    assert.same({ TableName = "threads" }, (last(srv)))
  end)

  it("each range operator DynamoDB allows: eq lt le gt ge between begins_with", function()
    local T = Thread{ EMPTY }
    local cases = {
      { T.subject:eq("m"), "(#0 = :0 AND #1 = :1)", { "m" } },
      { T.subject:lt("m"), "(#0 = :0 AND #1 < :1)", { "m" } },
      { T.subject:le("m"), "(#0 = :0 AND #1 <= :1)", { "m" } },
      { T.subject:gt("m"), "(#0 = :0 AND #1 > :1)", { "m" } },
      { T.subject:ge("m"), "(#0 = :0 AND #1 >= :1)", { "m" } },
      { T.subject:between("a", "k"), "(#0 = :0 AND #1 BETWEEN :1 AND :2)", { "a", "k" } },
      { T.subject:begins_with("thr"), "(#0 = :0 AND begins_with (#1, :1))", { "thr" } },
    }
    for i, c in ipairs(cases) do
      drain(T:query("lua", { range_key_condition = c[1] }))
      local values = { [":0"] = { S = "lua" } }
      for j, v in ipairs(c[3]) do values[":" .. j] = { S = v } end
      assert.same({ TableName = "threads", KeyConditionExpression = c[2],
                    ExpressionAttributeNames = { ["#0"] = "forum", ["#1"] = "subject" },
                    ExpressionAttributeValues = values }, bodies(srv)[i], c[2])
    end
    -- and on a count
    assert.equal(0, assert(T:count("lua", { range_key_condition = T.subject:between("a", "k") })))
    assert.same({ TableName = "threads", Select = "COUNT",
                  KeyConditionExpression = "(#0 = :0 AND #1 BETWEEN :1 AND :2)",
                  ExpressionAttributeNames = { ["#0"] = "forum", ["#1"] = "subject" },
                  ExpressionAttributeValues = { [":0"] = { S = "lua" }, [":1"] = { S = "a" }, [":2"] = { S = "k" } } },
      (last(srv)))
  end)

  it("every query option: placeholders numbered key condition, then filter, then projection", function()
    local T = Thread{ EMPTY }
    local start_key = key("s05")
    drain(T:query("lua", {
      range_key_condition = T.subject:begins_with("s"),
      filter_condition = T.views:gt(3) * -T.author:exists(),
      attributes = { T.body, "meta" },
      consistent_read = true, scan_index_forward = false, page_size = 10,
      exclusive_start_key = start_key, rate_limit = 100,
    }))
    local body = last(srv)
    local names = projected_names(body)
    body.ProjectionExpression = nil
    assert.same({
      TableName = "threads",
      KeyConditionExpression = "(#0 = :0 AND begins_with (#1, :1))",
      FilterExpression = "(#2 > :2 AND (NOT attribute_exists (#3)))",
      ExpressionAttributeNames = { ["#0"] = "forum", ["#1"] = "subject", ["#2"] = "views",
                                   ["#3"] = "author", ["#4"] = "body", ["#5"] = "meta" },
      ExpressionAttributeValues = { [":0"] = { S = "lua" }, [":1"] = { S = "s" }, [":2"] = { N = "3" } },
      ConsistentRead = true, ScanIndexForward = false, Limit = 10,
      ExclusiveStartKey = start_key, ReturnConsumedCapacity = "TOTAL",
    }, body)
    -- the projection: the attributes asked for plus the table's keys, each once
    assert.same({ "body", "forum", "meta", "subject" }, sorted(names))
  end)

  it("every scan option: placeholders numbered filter, then projection", function()
    local T = Thread{ EMPTY }
    drain(T:scan{ filter_condition = T.views:ge(7) + T.tags:contains("x"), attributes = { "body" },
                  consistent_read = true, page_size = 25, segment = 1, total_segments = 4,
                  exclusive_start_key = key("s01"), rate_limit = 5 })
    local body = last(srv)
    local names = projected_names(body)
    body.ProjectionExpression = nil
    assert.same({
      TableName = "threads",
      FilterExpression = "(#0 >= :0 OR contains (#1, :1))",
      ExpressionAttributeNames = { ["#0"] = "views", ["#1"] = "tags", ["#2"] = "body",
                                   ["#3"] = "forum", ["#4"] = "subject" },
      ExpressionAttributeValues = { [":0"] = { N = "7" }, [":1"] = { S = "x" } },
      ConsistentRead = true, Limit = 25, Segment = 1, TotalSegments = 4,
      ExclusiveStartKey = key("s01"), ReturnConsumedCapacity = "TOTAL",
    }, body)
    assert.same({ "body", "forum", "subject" }, sorted(names))
  end)

  it("segment 0 is sent (it is not 'no segment')", function()
    local T = Thread{ EMPTY }
    drain(T:scan{ segment = 0, total_segments = 1 })
    assert.same({ TableName = "threads", Segment = 0, TotalSegments = 1 }, (last(srv)))
  end)

  it("ConsistentRead only when true; ScanIndexForward only when false", function()
    local T = Thread{ EMPTY }
    drain(T:query("lua", { consistent_read = false, scan_index_forward = true }))
    local b = last(srv)
    assert.is_nil(b.ConsistentRead)
    assert.is_not_false(b.ScanIndexForward)
    drain(T:scan{ consistent_read = false })
    assert.is_nil(last(srv).ConsistentRead)
    drain(T:query("lua", { consistent_read = true }))
    assert.is_true(last(srv).ConsistentRead)
    drain(T:query("lua", { scan_index_forward = false }))
    assert.is_false(last(srv).ScanIndexForward)
    drain(T:scan{ consistent_read = true })
    assert.is_true(last(srv).ConsistentRead)
  end)

  it("Limit is page_size; or limit when only limit is given; else absent", function()
    local T = Thread{ EMPTY }
    drain(T:query("lua", { limit = 7 }))
    assert.equal(7, last(srv).Limit)
    drain(T:query("lua", { limit = 7, page_size = 3 }))
    assert.equal(3, last(srv).Limit)
    drain(T:query("lua", { page_size = 3 }))
    assert.equal(3, last(srv).Limit)
    drain(T:query("lua", { limit = 7, page_size = 30 }))
    assert.equal(30, last(srv).Limit)
    drain(T:query("lua"))
    assert.is_nil(last(srv).Limit)
    drain(T:scan{ limit = 9 })
    assert.equal(9, last(srv).Limit)
    drain(T:scan{ limit = 9, page_size = 2 })
    assert.equal(2, last(srv).Limit)
  end)

  it("limit = 0 returns nothing and sends nothing", function()
    local T = Thread{ page({ th("a") }) }
    assert.same({}, drain(T:query("lua", { limit = 0 })))
    assert.same({}, drain(T:scan{ limit = 0 }))
    assert.equal(0, assert(T:count("lua", { limit = 0 })))
    assert.equal(0, srv:count())
  end)

  it("last_evaluated_key (the alias of exclusive_start_key) is sent as ExclusiveStartKey", function()
    local T = Thread{ EMPTY }
    local it = T:query("lua", { last_evaluated_key = key("s09") })
    assert.same(key("s09"), it.last_evaluated_key)       -- before any page: the start key
    drain(it)
    assert.same(key("s09"), last(srv).ExclusiveStartKey)
    assert.is_nil(it.last_evaluated_key)                 -- read to the end
    drain(T:scan{ last_evaluated_key = key("s10") })
    assert.same(key("s10"), last(srv).ExclusiveStartKey)
  end)

  it("ReturnConsumedCapacity = TOTAL only with rate_limit", function()
    local T = Thread{ EMPTY }
    drain(T:query("lua"))
    assert.is_nil(last(srv).ReturnConsumedCapacity)
    drain(T:scan())
    assert.is_nil(last(srv).ReturnConsumedCapacity)
    assert(T:count("lua"))
    assert.is_nil(last(srv).ReturnConsumedCapacity)
    drain(T:query("lua", { rate_limit = 1000 }))
    assert.equal("TOTAL", last(srv).ReturnConsumedCapacity)
    drain(T:scan{ rate_limit = 1000 })
    assert.equal("TOTAL", last(srv).ReturnConsumedCapacity)
    assert(T:count("lua", { rate_limit = 1000 }))
    assert.equal("TOTAL", last(srv).ReturnConsumedCapacity)
    assert(T:count({ rate_limit = 1000 }))
    assert.equal("TOTAL", last(srv).ReturnConsumedCapacity)
  end)

  it("count sends Select = COUNT, with the filter; without a hash key it is a Scan", function()
    local T = Thread{ reply{ Count = 4, ScannedCount = 9 } }
    assert.equal(4, assert(T:count("lua", { filter_condition = T.views:gt(3), consistent_read = true })))
    local b, op = last(srv)
    assert.equal("Query", op)
    assert.same({ TableName = "threads", Select = "COUNT", KeyConditionExpression = "#0 = :0",
                  FilterExpression = "#1 > :1", ConsistentRead = true,
                  ExpressionAttributeNames = { ["#0"] = "forum", ["#1"] = "views" },
                  ExpressionAttributeValues = { [":0"] = { S = "lua" }, [":1"] = { N = "3" } } }, b)
    assert.equal(4, assert(T:count()))
    b, op = last(srv)
    assert.equal("Scan", op)
    assert.same({ TableName = "threads", Select = "COUNT" }, b)
    assert.equal(4, assert(T:count{ filter_condition = T.views:gt(3), page_size = 50 }))
    b, op = last(srv)
    assert.equal("Scan", op)
    assert.same({ TableName = "threads", Select = "COUNT", FilterExpression = "#0 > :0", Limit = 50,
                  ExpressionAttributeNames = { ["#0"] = "views" },
                  ExpressionAttributeValues = { [":0"] = { N = "3" } } }, b)
    assert.equal(4, assert(T:count(nil, { filter_condition = T.views:gt(3) })))
    assert.equal("Scan", select(2, last(srv)))
  end)

  it("hash keys are serialized with the key's type", function()
    local N = on(start{ EMPTY }, { table_name = "numbered", attributes = {
      id = A.Number{ hash_key = true }, at = A.UTCDateTime{ range_key = true } } })
    drain(N:query(42, { range_key_condition = N.at:lt(lunamodb.datetime("2020-01-02T03:04:05Z")) }))
    assert.same({ [":0"] = { N = "42" }, [":1"] = { S = "2020-01-02T03:04:05.000000+0000" } },
      last(srv).ExpressionAttributeValues)
  end)

  it("a model whose keys have stored names (attr_name) projects and resumes with those names", function()
    local K = on(start{ page({ { f = { S = "lua" }, s = { S = "a" }, v = { N = "1" } },
                               { f = { S = "lua" }, s = { S = "b" }, v = { N = "2" } } }, { f = { S = "lua" }, s = { S = "b" } }) },
      { name = "K", table_name = "keyed", attributes = {
        forum = A.Unicode{ hash_key = true, attr_name = "f" }, subject = A.Unicode{ range_key = true, attr_name = "s" },
        views = A.Number{ attr_name = "v", null = true } } })
    local it = K:query("lua", { range_key_condition = K.subject:gt("0"), attributes = { K.views }, limit = 1 })
    local got = drain(it)
    assert.equal(1, #got)
    assert.equal(1, got[1].views)
    local b = last(srv)
    assert.same({ "f", "s", "v" }, sorted(projected_names(b)))
    assert.same({ ["#0"] = "f", ["#1"] = "s", ["#2"] = "v" }, b.ExpressionAttributeNames)
    assert.same({ f = { S = "lua" }, s = { S = "a" } }, it.last_evaluated_key)
  end)

  it("attributes takes what get takes: one name, or a list", function()
    local T = Thread{ EMPTY }
    drain(T:query("lua", { attributes = "body" }))
    assert.same({ "body", "forum", "subject" }, sorted(projected_names(last(srv))))
  end)

  it("a projection listing key attributes names each attribute once", function()
    local T = Thread{ EMPTY }
    drain(T:query("lua", { attributes = { "forum", T.subject, "body" } }))
    local names = projected_names(last(srv))
    assert.same({ "body", "forum", "subject" }, sorted(names))
    drain(T.by_views:query("lua", { attributes = { "views", "body" } }))
    assert.same({ "body", "forum", "subject", "views" }, sorted(projected_names(last(srv))))
  end)
end)

------------------------------------------------------------------- indexes

describe("index reads", function()
  after_each(function() if srv then srv:stop(); srv = nil end end)

  it("query an index: IndexName, the index's key condition, its hash key's type", function()
    local T = Thread{ EMPTY }
    drain(T.by_views:query("lua", { range_key_condition = T.views:between(10, 20), scan_index_forward = false }))
    assert.same({ TableName = "threads", IndexName = "by_views", ScanIndexForward = false,
                  KeyConditionExpression = "(#0 = :0 AND #1 BETWEEN :1 AND :2)",
                  ExpressionAttributeNames = { ["#0"] = "forum", ["#1"] = "views" },
                  ExpressionAttributeValues = { [":0"] = { S = "lua" }, [":1"] = { N = "10" }, [":2"] = { N = "20" } } },
      (last(srv)))
    drain(T.by_author:query("ada", { filter_condition = T.views:ge(1) }))
    assert.same({ TableName = "threads", IndexName = "by_author",
                  KeyConditionExpression = "#0 = :0", FilterExpression = "#1 >= :1",
                  ExpressionAttributeNames = { ["#0"] = "author", ["#1"] = "views" },
                  ExpressionAttributeValues = { [":0"] = { S = "ada" }, [":1"] = { N = "1" } } }, (last(srv)))
    drain(T.by_last:query("lua", { range_key_condition = T.last_post:ge(5), consistent_read = true }))
    assert.same({ TableName = "threads", IndexName = "by_last", ConsistentRead = true,
                  KeyConditionExpression = "(#0 = :0 AND #1 >= :1)",
                  ExpressionAttributeNames = { ["#0"] = "forum", ["#1"] = "last_post" },
                  ExpressionAttributeValues = { [":0"] = { S = "lua" }, [":1"] = { N = "5" } } }, (last(srv)))
  end)

  it("scan and count an index", function()
    local T = Thread{ reply{ Items = lunamodb.array(), Count = 3, ScannedCount = 3 } }
    drain(T.by_author:scan{ segment = 0, total_segments = 2, page_size = 5 })
    assert.same({ TableName = "threads", IndexName = "by_author", Segment = 0, TotalSegments = 2, Limit = 5 },
      (last(srv)))
    assert.equal(3, assert(T.by_views:count("lua", { range_key_condition = T.views:lt(3) })))
    assert.same({ TableName = "threads", IndexName = "by_views", Select = "COUNT",
                  KeyConditionExpression = "(#0 = :0 AND #1 < :1)",
                  ExpressionAttributeNames = { ["#0"] = "forum", ["#1"] = "views" },
                  ExpressionAttributeValues = { [":0"] = { S = "lua" }, [":1"] = { N = "3" } } }, (last(srv)))
    assert.equal(3, assert(T.by_last:count()))
    assert.same({ TableName = "threads", IndexName = "by_last", Select = "COUNT" }, (last(srv)))
    assert.equal(3, assert(T.by_author:count{ filter_condition = T.views:eq(1) }))
    assert.same({ TableName = "threads", IndexName = "by_author", Select = "COUNT", FilterExpression = "#0 = :0",
                  ExpressionAttributeNames = { ["#0"] = "views" },
                  ExpressionAttributeValues = { [":0"] = { N = "1" } } }, (last(srv)))
  end)

  it("index_name sets the IndexName sent", function()
    local T = on(start{ EMPTY }, { table_name = "threads", attributes = {
      forum = A.Unicode{ hash_key = true }, author = A.Unicode{ null = true } },
      indexes = { by_author = lunamodb.GlobalSecondaryIndex{ hash_key = "author", index_name = "author-index" } } })
    drain(T.by_author:query("ada"))
    assert.equal("author-index", last(srv).IndexName)
    assert.equal("lunamodb.GlobalSecondaryIndex(author-index)", tostring(T.by_author))
  end)

  it("a projection through an index always includes the table's and the index's keys", function()
    local T = Thread{ EMPTY }
    drain(T.by_views:query("lua", { attributes = { "body" } }))
    assert.same({ "body", "forum", "subject", "views" }, sorted(projected_names(last(srv))))
    drain(T.by_author:scan{ attributes = { "views" } })
    assert.same({ "author", "forum", "subject", "views" }, sorted(projected_names(last(srv))))
    drain(T.by_last:query("lua", { attributes = { "forum" } }))
    assert.same({ "forum", "last_post", "subject" }, sorted(projected_names(last(srv))))
  end)

  it("items of an ALL index are whole items; of KEYS_ONLY and INCLUDE indexes partial, without defaults, unsaveable", function()
    local T = Thread{ page({ th("a", { views = { N = "3" }, author = { S = "ada" } }), th("b") }) }
    local all = drain(T.by_views:query("lua"))
    assert.same({ "a", "b" }, subjects(all))
    for _, t in ipairs(all) do assert.is_false(t:is_partial()) end
    assert.equal(0, all[2].views)                       -- a whole item gets its defaults
    for _, idx in ipairs({ T.by_author, T.by_last }) do
      local items = idx == T.by_author and drain(idx:query("ada")) or drain(idx:query("lua"))
      assert.same({ "a", "b" }, subjects(items))
      for _, t in ipairs(items) do assert.is_true(t:is_partial(), tostring(idx)) end
      assert.is_nil(items[2].views)                     -- not a default written over the stored value
      local before = srv:count()
      raises(function() items[1]:save() end, "lunamodb: Thread:save: this item was read through a "
        .. "projection and holds only some attributes; saving it would erase the others (use update instead)")
      assert.equal(before, srv:count())
    end
    local scanned = drain(T.by_last:scan())
    assert.is_true(scanned[1]:is_partial())
    -- a projection on the table: partial too; without one: whole
    local p = drain(T:query("lua", { attributes = { "views" } }))
    assert.is_true(p[1]:is_partial())
    assert.is_nil(p[2].views)
    local whole = drain(T:scan())
    assert.is_false(whole[1]:is_partial())
    assert.equal(0, whole[2].views)
  end)

  it("an unknown index is an error, never nil", function()
    local T = Thread{ EMPTY }
    raises(function() return T.nope end, "lunamodb: Thread has no attribute or method 'nope'")
    raises(function() T.nope:query("lua") end, "lunamodb: Thread has no attribute or method 'nope'")
    assert.equal(0, srv:count())
  end)

  it("index methods need the colon", function()
    local T = Thread{ EMPTY }
    raises(function() T.by_views.query("lua") end,
      "lunamodb: query must be called on an index (User.by_email:query(...))")
    raises(function() T.by_views.count() end,
      "lunamodb: count must be called on an index (User.by_email:count(...))")
    assert.equal(0, srv:count())
  end)
end)

------------------------------------------------------------ pagination

describe("pagination", function()
  after_each(function() if srv then srv:stop(); srv = nil end end)

  it("the next page's request is the first with ExclusiveStartKey = the reply's LastEvaluatedKey", function()
    local lek1 = { forum = { S = "lua" }, subject = { S = "c" } }
    local lek2 = { forum = { S = "lua" }, subject = { S = "f" } }
    local T = Thread{ page({ th("a"), th("b"), th("c") }, lek1), page({ th("d"), th("e"), th("f") }, lek2),
                      page({ th("g") }) }
    local got = drain(T:query("lua", { range_key_condition = T.subject:gt("0"),
                                       filter_condition = T.views:ge(0), page_size = 3 }))
    assert.same({ "a", "b", "c", "d", "e", "f", "g" }, subjects(got))
    local b = bodies(srv)
    assert.equal(3, #b)
    assert.is_nil(b[1].ExclusiveStartKey)
    local want2, want3 = {}, {}
    for k, v in pairs(b[1]) do want2[k] = v; want3[k] = v end
    want2.ExclusiveStartKey, want3.ExclusiveStartKey = lek1, lek2
    assert.same(want2, b[2])
    assert.same(want3, b[3])
  end)

  it("a scan's pages too, from a given start key", function()
    local lek = { forum = { S = "x" }, subject = { S = "y" } }
    local T = Thread{ page({ th("a") }, lek), page({ th("b") }) }
    assert.same({ "a", "b" }, subjects(drain(T:scan{ exclusive_start_key = key("0"), page_size = 1 })))
    local b = bodies(srv)
    assert.same({ TableName = "threads", Limit = 1, ExclusiveStartKey = key("0") }, b[1])
    assert.same({ TableName = "threads", Limit = 1, ExclusiveStartKey = lek }, b[2])
  end)

  it("limit stops exactly, inside a page: last_evaluated_key is the last returned item's key", function()
    local T = Thread{ page({ th("a"), th("b"), th("c") }, key("c")), page({ th("d"), th("e"), th("f") }, key("f")),
                      page({ th("g") }) }
    local it = T:query("lua", { limit = 5, page_size = 3 })
    assert.same({ "a", "b", "c", "d", "e" }, subjects(drain(it)))
    assert.equal(2, srv:count())
    assert.same(key("e"), it.last_evaluated_key)
    assert.equal(5, it.total_count)                    -- items returned, not the pages' Count (6)
    assert.is_nil(it())                                -- stays done, sends nothing more
    assert.equal(2, srv:count())
    -- limit 1 of a one-page reply: the first item's key
    srv:stop()
    T = Thread{ page({ th("x"), th("y") }) }
    local one = T:scan{ limit = 1 }
    assert.equal(1, #drain(one))
    assert.same(key("x"), one.last_evaluated_key)
  end)

  it("limit stopping at a page boundary: last_evaluated_key is the page's LastEvaluatedKey", function()
    -- the page's LastEvaluatedKey is past the last returned item (a filter skipped some)
    local lek1 = { forum = { S = "lua" }, subject = { S = "c-filtered-up-to-here" } }
    local lek2 = { forum = { S = "lua" }, subject = { S = "f-filtered-up-to-here" } }
    local T = Thread{ page({ th("a"), th("b"), th("c") }, lek1), page({ th("d"), th("e"), th("f") }, lek2),
                      page({ th("g") }) }
    local it = T:query("lua", { limit = 6, page_size = 3 })
    assert.same({ "a", "b", "c", "d", "e", "f" }, subjects(drain(it)))
    assert.same(lek2, it.last_evaluated_key)
    assert.equal(6, it.total_count)
    assert.equal(2, srv:count())
    srv:stop()
    T = Thread{ page({ th("a"), th("b"), th("c") }, lek1), page({ th("d") }) }
    local three = T:query("lua", { limit = 3 })
    assert.same({ "a", "b", "c" }, subjects(drain(three)))
    assert.same(lek1, three.last_evaluated_key)
  end)

  it("while iterating, last_evaluated_key follows the items", function()
    local lek1 = { forum = { S = "lua" }, subject = { S = "c" } }
    local T = Thread{ page({ th("a"), th("b"), th("c") }, lek1), page({ th("d") }) }
    local it = T:query("lua", { page_size = 3 })
    local seen = {}
    for t in it do seen[#seen + 1] = it.last_evaluated_key and it.last_evaluated_key.subject.S or "nil" end
    assert.same({ "a", "b", "c", "nil" }, seen)
    assert.is_nil(it.last_evaluated_key)
  end)

  it("the resume key of an index read holds the table's and the index's keys", function()
    local function item(subject, n)
      return th(subject, { views = { N = n }, last_post = { N = n .. "0" }, author = { S = "au" .. n },
                           body = { S = "x" } })
    end
    -- every read below gets this reply: two items, more to come
    local T = Thread{ page({ item("a", "1"), item("b", "2") }, { forum = { S = "lua" }, subject = { S = "b" } }) }
    local it = T.by_views:query("lua", { limit = 1 })
    drain(it)
    assert.same({ forum = { S = "lua" }, subject = { S = "a" }, views = { N = "1" } }, it.last_evaluated_key)
    local lsi = T.by_last:query("lua", { limit = 1 })
    drain(lsi)
    assert.same({ forum = { S = "lua" }, subject = { S = "a" }, last_post = { N = "10" } }, lsi.last_evaluated_key)
    local s = T.by_author:scan{ limit = 1 }
    drain(s)
    assert.same({ forum = { S = "lua" }, subject = { S = "a" }, author = { S = "au1" } }, s.last_evaluated_key)
    local q = T.by_author:query("au1", { limit = 1, attributes = { "views" } })
    drain(q)
    assert.same({ forum = { S = "lua" }, subject = { S = "a" }, author = { S = "au1" } }, q.last_evaluated_key)
  end)

  it("resuming from last_evaluated_key starts right after it", function()
    local T = Thread{ page({ th("a"), th("b"), th("c") }, key("c")), page({ th("d") }) }
    local it = T:query("lua", { limit = 2 })
    drain(it)
    drain(T:query("lua", { exclusive_start_key = it.last_evaluated_key }))
    assert.same(key("b"), last(srv).ExclusiveStartKey)
  end)

  it("limit counts items, across empty and short pages (a filter)", function()
    local T = Thread{ page({ th("a"), th("b") }, key("c")), page({}, key("f")), page({ th("g"), th("h") }, key("i")),
                      page({ th("j"), th("k"), th("l") }, key("l")), page({ th("z") }) }
    local it = T:query("lua", { limit = 5, page_size = 3, filter_condition = T.views:gt(1) })
    assert.same({ "a", "b", "g", "h", "j" }, subjects(drain(it)))
    assert.equal(4, srv:count())
    assert.same(key("j"), it.last_evaluated_key)
    assert.equal(5, it.total_count)
  end)

  it("iteration skips empty pages; total_count is the number of items returned", function()
    local T = Thread{ page({ th("a") }, key("a")), page({}, key("b")), page({}, key("c")), page({ th("d") }) }
    local it = T:scan{ page_size = 1 }
    assert.same({ "a", "d" }, subjects(drain(it)))
    assert.equal(4, srv:count())
    assert.equal(2, it.total_count)
  end)

  it("total_count never sums the pages' Count", function()
    -- pages that report more than they hold (PynamoDB sums Count: §3.8, §9.3)
    local T = Thread{ page({ th("a"), th("b") }, key("b"), { Count = 5 }), page({ th("c") }, nil, { Count = 4 }) }
    local it = T:query("lua")
    assert.equal(3, #drain(it))
    assert.equal(3, it.total_count)
    local lim = T:query("lua", { limit = 1 })
    drain(lim)
    assert.equal(1, lim.total_count)
  end)

  it("pages(): each reply as a page, empty ones included, limit applied across pages", function()
    local T = Thread{ page({ th("a"), th("b"), th("c") }, key("c"), { ScannedCount = 7 }),
                      page({}, key("e"), { ScannedCount = 3 }),
                      page({ th("f"), th("g"), th("h") }, key("h")), page({ th("i") }) }
    local sizes, leks, scanned = {}, {}, {}
    for p in T:query("lua", { page_size = 3 }):pages() do
      sizes[#sizes + 1] = p.count
      assert.equal(p.count, #p.items)
      leks[#leks + 1] = p.last_evaluated_key and p.last_evaluated_key.subject.S or "nil"
      scanned[#scanned + 1] = p.scanned_count
    end
    assert.same({ 3, 0, 3, 1 }, sizes)
    assert.same({ "c", "e", "h", "nil" }, leks)
    assert.same({ 7, 3, 3, 1 }, scanned)
    -- with a limit: the page that reaches it is cut, its key is the last item's
    srv:stop()
    T = Thread{ page({ th("a"), th("b"), th("c") }, key("c")), page({}, key("e")),
                page({ th("f"), th("g"), th("h") }, key("h")), page({ th("i") }) }
    local res = T:query("lua", { page_size = 3, limit = 4 })
    local got = {}
    for p in res:pages() do got[#got + 1] = { subjects(p.items), p.last_evaluated_key } end
    assert.same({ { { "a", "b", "c" }, key("c") }, { {}, key("e") }, { { "f" }, key("f") } }, got)
    assert.same(key("f"), res.last_evaluated_key)
    assert.equal(4, res.total_count)
    -- page items are model items
    local first = T:scan():pages()()
    assert.is_true(rawequal(T, model.class_of(first.items[1])))
  end)

  it("pages() report the consumed capacity when rate limited", function()
    local cc = { ConsumedCapacity = { TableName = "threads", CapacityUnits = 1.5 } }
    local T = Thread{ page({ th("a") }, key("a"), cc), page({ th("b") }, nil, cc) }
    local units = {}
    for p in T:scan{ rate_limit = 1000 }:pages() do units[#units + 1] = p.consumed_capacity end
    assert.same({ 1.5, 1.5 }, units)
  end)

  it("all() gives the remaining items", function()
    local T = Thread{ page({ th("a"), th("b") }, key("b")), page({ th("c") }) }
    local it = T:query("lua")
    assert.equal("a", it().subject)
    assert.same({ "b", "c" }, subjects(it:all()))
    assert.same({}, it:all())
  end)

  it("a failing page raises the lunamodb.Error; count returns nil, err", function()
    local T = Thread{ page({ th("a") }, key("a")), ddb_error("ValidationException", "bad key") }
    local it = T:query("lua")
    assert.equal("a", it().subject)
    local ok, err = pcall(it)
    assert.is_false(ok)
    assert.is_true(lunamodb.is_error(err))
    assert.equal("ValidationException", err.code)
    assert.equal("bad key", err.message)
    local n, cerr = T:count("lua")
    assert.is_nil(n)
    assert.equal("ValidationException", cerr.code)
  end)
end)

----------------------------------------------------------------- counting

describe("count", function()
  after_each(function() if srv then srv:stop(); srv = nil end end)

  local function counts(...)
    local replies = {}
    local n = select("#", ...)
    for i = 1, n do
      local c = select(i, ...)
      replies[i] = reply{ Count = c, ScannedCount = c + 1,
                          LastEvaluatedKey = i < n and key("k" .. i) or nil }
    end
    return replies
  end

  it("sums Count over every page, following LastEvaluatedKey", function()
    local T = Thread(counts(4, 0, 4, 3))
    assert.equal(11, assert(T:count("lua")))
    local b = bodies(srv)
    assert.equal(4, #b)
    assert.is_nil(b[1].ExclusiveStartKey)
    assert.same(key("k1"), b[2].ExclusiveStartKey)
    assert.same(key("k3"), b[4].ExclusiveStartKey)
    for _, body in ipairs(b) do assert.equal("COUNT", body.Select) end
  end)

  it("with limit: never more than the limit, and no page after reaching it", function()
    local T = Thread(counts(4, 4, 4))
    assert.equal(6, assert(T:count("lua", { limit = 6 })))
    assert.equal(2, srv:count())
    srv:stop()
    T = Thread(counts(4, 4, 4))
    assert.equal(4, assert(T:count("lua", { limit = 4 })))
    assert.equal(1, srv:count())
    srv:stop()
    T = Thread(counts(4, 4, 4))
    assert.equal(12, assert(T:count("lua", { limit = 100 })))
    assert.equal(3, srv:count())
    srv:stop()
    T = Thread(counts(4, 4, 4))
    assert.equal(5, assert(T:count{ limit = 5, filter_condition = T.views:gt(1) }))
    assert.equal(2, srv:count())
  end)

  it("counts are whole numbers", function()
    local T = Thread(counts(3))
    local n = assert(T:count("lua"))
    assert.equal(3, n)
    if math.type then assert.equal("integer", math.type(n)) end
  end)
end)

----------------------------------------------------------------- misuse

describe("bad input fails before any request", function()
  local T
  before_each(function() T = Thread{ EMPTY } end)
  after_each(function()
    if srv then
      assert.equal(0, srv:count(), "a request was sent")
      srv:stop(); srv = nil
    end
  end)

  it("a range condition on an attribute that is not the range key", function()
    raises(function() T:query("lua", { range_key_condition = T.views:eq(1) }) end,
      "lunamodb: Thread:query: range_key_condition is on Thread.views, not on the range key 'subject'")
    raises(function() T:query("lua", { range_key_condition = T.forum:eq("x") }) end,
      "lunamodb: Thread:query: range_key_condition is on Thread.forum, not on the range key 'subject'")
    raises(function() T:count("lua", { range_key_condition = T.author:begins_with("a") }) end,
      "lunamodb: Thread:count: range_key_condition is on Thread.author, not on the range key 'subject'")
    raises(function() T:query("lua", { range_key_condition = T.meta:field("x"):eq(1) }) end,
      "lunamodb: Thread:query: range_key_condition is on Thread.meta.x, not on the range key 'subject'")
  end)

  it("on an index: a range condition on the index's range key only", function()
    raises(function() T.by_views:query("lua", { range_key_condition = T.subject:eq("a") }) end,
      "lunamodb: Thread.by_views:query: range_key_condition is on Thread.subject, not on the range key 'views'")
    raises(function() T.by_last:query("lua", { range_key_condition = T.subject:eq("a") }) end,
      "lunamodb: Thread.by_last:query: range_key_condition is on Thread.subject, not on the range key 'last_post'")
    raises(function() T.by_author:query("ada", { range_key_condition = T.subject:eq("a") }) end,
      "lunamodb: Thread.by_author:query: range_key_condition given, but there is no range key")
    raises(function() T.by_views:count("lua", { range_key_condition = T.subject:eq("a") }) end,
      "lunamodb: Thread.by_views:count: range_key_condition is on Thread.subject, not on the range key 'views'")
  end)

  it("a range condition on a model without a range key", function()
    srv:stop()
    local U = on(start{ EMPTY }, { name = "U", table_name = "users", attributes = {
      email = A.Unicode{ hash_key = true }, n = A.Number{ null = true } } })
    raises(function() U:query("a", { range_key_condition = U.n:eq(1) }) end,
      "lunamodb: U:query: range_key_condition given, but there is no range key")
  end)

  it("operators DynamoDB refuses in key conditions: ne, contains, exists, IN, AND/OR/NOT, size", function()
    local msg = "lunamodb: Thread:query: range_key_condition must be one eq, lt, le, gt, ge, between or "
      .. "begins_with on the range key 'subject'"
    for name, cond in pairs({
      ne = T.subject:ne("a"),
      contains = T.subject:contains("a"),
      exists = T.subject:exists(),
      does_not_exist = T.subject:does_not_exist(),
      is_in = T.subject:is_in("a", "b"),
      is_type = T.subject:is_type("S"),
      AND = T.subject:gt("a") * T.subject:lt("z"),
      OR = T.subject:eq("a") + T.subject:eq("b"),
      NOT = -T.subject:eq("a"),
    }) do
      raises(function() T:query("lua", { range_key_condition = cond }) end, msg)
    end
    raises(function() T:count("lua", { range_key_condition = T.subject:ne("a") }) end,
      "lunamodb: Thread:count: range_key_condition must be one eq, lt, le, gt, ge, between or "
      .. "begins_with on the range key 'subject'")
    raises(function() T:query("lua", { range_key_condition = T.subject:size():eq(3) }) end,
      "lunamodb: Thread:query: range_key_condition is on a size, not on the range key 'subject'")
  end)

  it("a range condition comparing the range key with another attribute (key conditions take values)", function()
    local msg = "range_key_condition must compare the range key 'subject' with values, not with other attributes"
    raises(function() T:query("lua", { range_key_condition = T.subject:eq(T.author) }) end,
      "lunamodb: Thread:query: " .. msg)
    raises(function() T:query("lua", { range_key_condition = T.subject:between(T.author, "z") }) end,
      "lunamodb: Thread:query: " .. msg)
    raises(function() T:query("lua", { range_key_condition = T.subject:between("a", T.body) }) end,
      "lunamodb: Thread:query: " .. msg)
    raises(function() T:count("lua", { range_key_condition = T.subject:ge(T.subject) }) end,
      "lunamodb: Thread:count: " .. msg)
    raises(function() T.by_views:query("lua", { range_key_condition = T.views:lt(T.last_post) }) end,
      "lunamodb: Thread.by_views:query: range_key_condition must compare the range key 'views' with values, "
      .. "not with other attributes")
  end)

  it("a range condition without a hash key, in count", function()
    raises(function() T:count(nil, { range_key_condition = T.subject:eq("a") }) end,
      "lunamodb: Thread:count: range_key_condition needs a hash key value")
    raises(function() T:count{ range_key_condition = T.subject:eq("a") } end,
      "lunamodb: Thread:count: range_key_condition needs a hash key value")
    raises(function() T.by_views:count{ range_key_condition = T.views:eq(1) } end,
      "lunamodb: Thread.by_views:count: range_key_condition needs a hash key value")
  end)

  it("a query without a hash key value, or with one of the wrong type", function()
    raises(function() T:query() end, "lunamodb: Thread:query: a hash key value is required")
    raises(function() T:query(nil, { limit = 1 }) end, "lunamodb: Thread:query: a hash key value is required")
    raises(function() T.by_views:query() end, "lunamodb: Thread.by_views:query: a hash key value is required")
    assert.has_error(function() T:query(5) end)
    assert.has_error(function() T:query({}) end)
    assert.has_error(function() T.by_views:query(true) end)
  end)

  it("consistent_read on a global secondary index", function()
    local msg = "global secondary indexes do not support consistent reads"
    raises(function() T.by_views:query("lua", { consistent_read = true }) end, "lunamodb: Thread.by_views:query: " .. msg)
    raises(function() T.by_author:scan{ consistent_read = true } end, "lunamodb: Thread.by_author:scan: " .. msg)
    raises(function() T.by_views:count("lua", { consistent_read = true }) end, "lunamodb: Thread.by_views:count: " .. msg)
    raises(function() T.by_author:parallel_scan{ total_segments = 2, consistent_read = true } end,
      "lunamodb: Thread.by_author:parallel_scan: " .. msg)
  end)

  it("bad limit, page_size and rate_limit values", function()
    for _, bad in ipairs({ -1, 1.5, "5", 0 / 0, true }) do
      raises(function() T:query("lua", { limit = bad }) end, "lunamodb: Thread:query: limit must be a whole number >= 0")
      raises(function() T:scan{ limit = bad } end, "lunamodb: Thread:scan: limit must be a whole number >= 0")
      raises(function() T:count("lua", { limit = bad }) end, "lunamodb: Thread:count: limit must be a whole number >= 0")
    end
    for _, bad in ipairs({ 0, -1, 2.5, "10", 0 / 0 }) do
      raises(function() T:query("lua", { page_size = bad }) end, "lunamodb: Thread:query: page_size must be a whole number >= 1")
      raises(function() T:scan{ page_size = bad } end, "lunamodb: Thread:scan: page_size must be a whole number >= 1")
      raises(function() T:count({ page_size = bad }) end, "lunamodb: Thread:count: page_size must be a whole number >= 1")
      raises(function() T.by_views:query("lua", { page_size = bad }) end,
        "lunamodb: Thread.by_views:query: page_size must be a whole number >= 1")
    end
    for _, bad in ipairs({ 0, -1, "5", 0 / 0, -math.huge }) do
      local msg = "rate_limit must be a positive number of read units per second"
      raises(function() T:query("lua", { rate_limit = bad }) end, "lunamodb: Thread:query: " .. msg)
      raises(function() T:scan{ rate_limit = bad } end, "lunamodb: Thread:scan: " .. msg)
      raises(function() T:count("lua", { rate_limit = bad }) end, "lunamodb: Thread:count: " .. msg)
      raises(function() T.by_last:scan{ rate_limit = bad } end, "lunamodb: Thread.by_last:scan: " .. msg)
    end
  end)

  it("bad segment and total_segments values", function()
    raises(function() T:scan{ segment = 0 } end, "lunamodb: Thread:scan: segment and total_segments go together")
    raises(function() T:scan{ total_segments = 2 } end, "lunamodb: Thread:scan: segment and total_segments go together")
    raises(function() T:scan{ segment = 2, total_segments = 2 } end, "lunamodb: Thread:scan: segment must be below total_segments")
    raises(function() T:scan{ segment = 5, total_segments = 2 } end, "lunamodb: Thread:scan: segment must be below total_segments")
    for _, bad in ipairs({ -1, 0.5, "1" }) do
      raises(function() T:scan{ segment = bad, total_segments = 4 } end, "lunamodb: Thread:scan: segment must be a whole number >= 0")
    end
    for _, bad in ipairs({ 0, -2, 1.5, "4" }) do
      raises(function() T:scan{ segment = 0, total_segments = bad } end,
        "lunamodb: Thread:scan: total_segments must be a whole number >= 1")
      raises(function() T:parallel_scan{ total_segments = bad } end,
        "lunamodb: Thread:parallel_scan: total_segments must be a whole number >= 1")
    end
    raises(function() T:parallel_scan() end, "lunamodb: Thread:parallel_scan: total_segments must be a whole number >= 1")
    raises(function() T.by_author:scan{ segment = 1, total_segments = 1 } end,
      "lunamodb: Thread.by_author:scan: segment must be below total_segments")
  end)

  it("unknown options, and options of another operation", function()
    raises(function() T:query("lua", { limt = 1 }) end, "lunamodb: Thread:query: unknown option 'limt'")
    raises(function() T:query("lua", { segment = 0 }) end, "lunamodb: Thread:query: unknown option 'segment'")
    raises(function() T:scan{ range_key_condition = T.subject:eq("a") } end,
      "lunamodb: Thread:scan: unknown option 'range_key_condition'")
    raises(function() T:scan{ scan_index_forward = false } end, "lunamodb: Thread:scan: unknown option 'scan_index_forward'")
    raises(function() T:count("lua", { attributes = { "views" } }) end, "lunamodb: Thread:count: unknown option 'attributes'")
    raises(function() T:count("lua", { exclusive_start_key = key("a") }) end,
      "lunamodb: Thread:count: unknown option 'exclusive_start_key'")
    raises(function() T:parallel_scan{ total_segments = 2, segment = 0 } end,
      "lunamodb: Thread:parallel_scan: unknown option 'segment'")
    raises(function() T.by_views:query("lua", { filter = T.views:gt(1) }) end,
      "lunamodb: Thread.by_views:query: unknown option 'filter'")
    raises(function() T.by_views:scan{ consistent = true } end, "lunamodb: Thread.by_views:scan: unknown option 'consistent'")
    raises(function() T.by_views:count("lua", { limits = 1 }) end, "lunamodb: Thread.by_views:count: unknown option 'limits'")
    raises(function() T:query("lua", "limit=1") end, "lunamodb: Thread:query: options must be a table (got string)")
    raises(function() T:scan(5) end, "lunamodb: Thread:scan: options must be a table (got number)")
  end)

  it("a filter that is a boolean (or a string), with the hint", function()
    local cond = (T.views == 3)                         -- Lua makes this false
    raises(function() T:query("lua", { filter_condition = cond }) end,
      "lunamodb: Thread:query: filter_condition must be a condition, got a boolean" .. BOOLEAN_HINT)
    raises(function() T:scan{ filter_condition = cond } end,
      "lunamodb: Thread:scan: filter_condition must be a condition, got a boolean" .. BOOLEAN_HINT)
    raises(function() T:count("lua", { filter_condition = cond }) end,
      "lunamodb: Thread:count: filter_condition must be a condition, got a boolean" .. BOOLEAN_HINT)
    raises(function() T:query("lua", { range_key_condition = (T.subject == "a") }) end,
      "lunamodb: Thread:query: range_key_condition must be a condition, got a boolean" .. BOOLEAN_HINT)
    raises(function() T:scan{ filter_condition = "views > 3" } end,
      "lunamodb: Thread:scan: filter_condition must be a condition, got a string")
  end)

  it("a start key that is not a key in DynamoDB JSON", function()
    raises(function() T:query("lua", { exclusive_start_key = "s05" }) end,
      "lunamodb: Thread:query: exclusive_start_key must be a key in DynamoDB JSON, as last_evaluated_key "
      .. "gives it (got string)")
    raises(function() T:scan{ last_evaluated_key = 5 } end,
      "lunamodb: Thread:scan: exclusive_start_key must be a key in DynamoDB JSON, as last_evaluated_key "
      .. "gives it (got number)")
  end)

  it("a projection of an unknown attribute", function()
    raises_with(function() T:query("lua", { attributes = { "nope" } }) end, "nope")
  end)

  it("misuse raises at the caller's line", function()
    raises_here(function() T:query("lua", { limt = 1 }) end)
    raises_here(function() T:query("lua", { range_key_condition = T.views:eq(1) }) end)
    raises_here(function() T:query("lua", { range_key_condition = T.subject:ne("a") }) end)
    raises_here(function() T:query() end)
    raises_here(function() T:query("lua", { limit = -1 }) end)
    raises_here(function() T:scan{ rate_limit = 0 } end)
    raises_here(function() T:scan{ segment = 1 } end)
    raises_here(function() T:count{ range_key_condition = T.subject:eq("a") } end)
    raises_here(function() T.by_views:query("lua", { consistent_read = true }) end)
    raises_here(function() T:query("lua", { filter_condition = T.views == 1 }) end)
    raises_here(function() T:parallel_scan{} end)
    raises_here(function() T:query("lua", { range_key_condition = T.subject:eq(T.author) }) end)
    raises_here(function() T:count("lua", { limit = 0.5 }) end)
    raises_here(function() T.by_author:scan{ page_size = 0 } end)
  end)

  it("misuse of count and parallel_scan raises at the caller's line", function()
    raises_here(function() T:count("lua", { limit = 0.5 }) end)
    raises_here(function() T:count{ range_key_condition = T.subject:eq("a") } end)
    raises_here(function() T:count("lua", { range_key_condition = T.views:eq(1) }) end)
    raises_here(function() T:count("lua", { page_size = 0 }) end)
    raises_here(function() T:count("lua", { rate_limit = 0 }) end)
    raises_here(function() T:count("lua", { filter_condition = T.views == 1 }) end)
    raises_here(function() T.by_views:count("lua", { range_key_condition = T.subject:eq("a") }) end)
    raises_here(function() T.by_views:count("lua", { consistent_read = true }) end)
    raises_here(function() T:parallel_scan{ total_segments = 2, page_size = 0 } end)
    raises_here(function() T.by_author:parallel_scan{ total_segments = 2, consistent_read = true } end)
    raises_here(function() T:parallel_scan{ total_segments = 2, limit = -1 } end)
  end)

  it("a hash key value of the wrong type, or a projection of an unknown attribute, raises at the caller's line", function()
    raises_here(function() T:query(5) end)
    raises_here(function() T.by_views:count(true) end)
    raises_here(function() T:query("lua", { attributes = { "nope" } }) end)
    raises_here(function() T:scan{ attributes = { "views", "nope" } } end)
    raises_here(function() T:scan{ filter_condition = "views > 1" } end)
    raises_here(function() lunamodb.Model(thread_decl{ indexes = { g = lunamodb.GlobalSecondaryIndex{ hash_key = "nope" } } }) end)
  end)
end)

--------------------------------------------------------------- subclasses

describe("subclass reads", function()
  after_each(function() if srv then srv:stop(); srv = nil end end)

  local Animal, Dog, Puppy, Cat
  local function animals(replies)
    Animal = on(start(replies), { name = "Animal", table_name = "animals", attributes = {
      home = A.Unicode{ hash_key = true }, id = A.Unicode{ range_key = true },
      kind = A.Discriminator{ attr_name = "k" }, name = A.Unicode{ null = true } },
      indexes = {
        by_name = lunamodb.GlobalSecondaryIndex{ hash_key = "name", projection = "KEYS_ONLY" },
        by_name_kind = lunamodb.GlobalSecondaryIndex{ hash_key = "name", projection = { "kind" } },
        by_name_all = lunamodb.GlobalSecondaryIndex{ hash_key = "name" },
      } })
    Dog = Animal:extend{ name = "Dog", discriminator = "dog", attributes = { tricks = A.Number{ default = 0 } } }
    Puppy = Dog:extend{ name = "Puppy", discriminator = "puppy" }
    Cat = Animal:extend{ name = "Cat", discriminator = "cat" }
  end

  -- the discriminator values an "IN" filter lists
  local function in_values(body, expr)
    local list = assert(expr:match("#%d+ IN %(([^)]*)%)"), expr)
    local out = {}
    for ph in list:gmatch(":%d+") do out[#out + 1] = body.ExpressionAttributeValues[ph].S end
    table.sort(out)
    return out
  end

  it("add the discriminator IN filter: the subclass and its own subclasses", function()
    animals{ EMPTY }
    drain(Dog:query("h"))
    local b = last(srv)
    assert.equal("k", b.ExpressionAttributeNames[b.FilterExpression:match("^(#%d+) IN")])
    assert.same({ "dog", "puppy" }, in_values(b, b.FilterExpression))
    drain(Puppy:scan())
    b = last(srv)
    assert.same({ "puppy" }, in_values(b, b.FilterExpression))
    assert(Cat:count("h"))
    b = last(srv)
    assert.same({ "cat" }, in_values(b, b.FilterExpression))
    assert.equal("COUNT", b.Select)
    assert(Dog:count())
    b = last(srv)
    assert.same({ "dog", "puppy" }, in_values(b, b.FilterExpression))
  end)

  it("AND the user's filter first, then the discriminator's", function()
    animals{ EMPTY }
    drain(Dog:query("h", { range_key_condition = Dog.id:gt("a"), filter_condition = Dog.tricks:gt(1) }))
    local b = last(srv)
    assert.equal("(#0 = :0 AND #1 > :1)", b.KeyConditionExpression)
    local user, disc = b.FilterExpression:match("^%((.-) AND (.-)%)$")
    assert.equal("#2 > :2", user)
    assert.same({ "dog", "puppy" }, in_values(b, disc))
  end)

  it("the root model reads every class, unfiltered, each item as its stored class", function()
    animals{ page({ { home = { S = "h" }, id = { S = "1" }, k = { S = "dog" }, tricks = { N = "3" } },
                    { home = { S = "h" }, id = { S = "2" }, k = { S = "cat" } },
                    { home = { S = "h" }, id = { S = "3" }, k = { S = "puppy" } } }) }
    local items = drain(Animal:query("h"))
    assert.is_nil(last(srv).FilterExpression)
    assert.is_true(rawequal(Dog, model.class_of(items[1])))
    assert.equal(3, items[1].tricks)
    assert.is_true(rawequal(Cat, model.class_of(items[2])))
    assert.is_true(rawequal(Puppy, model.class_of(items[3])))
    assert.is_nil(Animal:scan{ filter_condition = Animal.name:exists() }:all()[4])
    assert.equal("attribute_exists (#0)", last(srv).FilterExpression)
  end)

  it("an index that does not project the discriminator refuses subclass reads", function()
    animals{ EMPTY }
    raises(function() Dog.by_name:query("rex") end, "lunamodb: Dog.by_name:query: index 'by_name' does not "
      .. "project the discriminator 'kind', so it cannot tell Dog items from others")
    raises(function() Cat.by_name:scan() end, "lunamodb: Cat.by_name:scan: index 'by_name' does not "
      .. "project the discriminator 'kind', so it cannot tell Cat items from others")
    raises(function() Dog.by_name:count("rex") end, "lunamodb: Dog.by_name:count: index 'by_name' does not "
      .. "project the discriminator 'kind', so it cannot tell Dog items from others")
    assert.equal(0, srv:count())
    -- the root reads it; indexes projecting the discriminator serve subclasses
    drain(Animal.by_name:query("rex"))
    assert.is_nil(last(srv).FilterExpression)
    drain(Dog.by_name_kind:query("rex"))
    local b = last(srv)
    assert.equal("by_name_kind", b.IndexName)
    assert.same({ "dog", "puppy" }, in_values(b, b.FilterExpression))
    drain(Puppy.by_name_all:scan())
    b = last(srv)
    assert.same({ "puppy" }, in_values(b, b.FilterExpression))
  end)
end)

------------------------------------------------------------ create_table

describe("create_table with indexes", function()
  after_each(function() if srv then srv:stop(); srv = nil end end)

  local function created(T, opts)
    assert.is_true(T:create_table(opts))
    for _, r in ipairs(sent(srv)) do
      if r.op == "CreateTable" then return r.body end
    end
    error("no CreateTable request")
  end

  local ATTRS = {
    forum = { AttributeName = "forum", AttributeType = "S" },
    subject = { AttributeName = "subject", AttributeType = "S" },
    views = { AttributeName = "views", AttributeType = "N" },
    author = { AttributeName = "author", AttributeType = "S" },
    last_post = { AttributeName = "last_post", AttributeType = "N" },
  }

  it("PROVISIONED: GSIs with their throughput, LSIs without, attribute definitions once each (§6.14)", function()
    local T = Thread({ ddb_error("ResourceNotFoundException"), OK }, { read_capacity_units = 2, write_capacity_units = 3 })
    local b = created(T)
    assert.equal(5, #b.AttributeDefinitions)
    assert.same(ATTRS, by(b.AttributeDefinitions, "AttributeName"))
    assert.equal(2, #b.GlobalSecondaryIndexes)
    assert.same({
      by_author = { IndexName = "by_author", KeySchema = { { AttributeName = "author", KeyType = "HASH" } },
                    Projection = { ProjectionType = "INCLUDE", NonKeyAttributes = { "views" } },
                    ProvisionedThroughput = { ReadCapacityUnits = 4, WriteCapacityUnits = 5 } },
      by_views = { IndexName = "by_views", KeySchema = { { AttributeName = "forum", KeyType = "HASH" },
                                                         { AttributeName = "views", KeyType = "RANGE" } },
                   Projection = { ProjectionType = "ALL" },
                   ProvisionedThroughput = { ReadCapacityUnits = 2, WriteCapacityUnits = 3 } },
    }, by(b.GlobalSecondaryIndexes, "IndexName"))
    assert.same({ { IndexName = "by_last", KeySchema = { { AttributeName = "forum", KeyType = "HASH" },
                                                         { AttributeName = "last_post", KeyType = "RANGE" } },
                    Projection = { ProjectionType = "KEYS_ONLY" } } }, b.LocalSecondaryIndexes)
    b.AttributeDefinitions, b.GlobalSecondaryIndexes, b.LocalSecondaryIndexes = nil, nil, nil
    assert.same({ TableName = "threads",
                  KeySchema = { { AttributeName = "forum", KeyType = "HASH" }, { AttributeName = "subject", KeyType = "RANGE" } },
                  ProvisionedThroughput = { ReadCapacityUnits = 2, WriteCapacityUnits = 3 } }, b)
  end)

  it("create_table's capacities reach the GSIs without their own", function()
    local T = Thread({ ddb_error("ResourceNotFoundException"), OK }, { read_capacity_units = 2, write_capacity_units = 3 })
    local b = created(T, { read_capacity_units = 7, write_capacity_units = 8 })
    assert.same({ ReadCapacityUnits = 7, WriteCapacityUnits = 8 }, b.ProvisionedThroughput)
    local g = by(b.GlobalSecondaryIndexes, "IndexName")
    assert.same({ ReadCapacityUnits = 7, WriteCapacityUnits = 8 }, g.by_views.ProvisionedThroughput)
    assert.same({ ReadCapacityUnits = 4, WriteCapacityUnits = 5 }, g.by_author.ProvisionedThroughput)
  end)

  it("PAY_PER_REQUEST: no throughput on the table or any GSI", function()
    for _, how in ipairs({ "model", "option" }) do
      local T = Thread({ ddb_error("ResourceNotFoundException"), OK },
        how == "model" and { billing_mode = "PAY_PER_REQUEST" } or { read_capacity_units = 2, write_capacity_units = 3 })
      local b = created(T, how == "option" and { billing_mode = "PAY_PER_REQUEST" } or nil)
      assert.equal("PAY_PER_REQUEST", b.BillingMode)
      assert.is_nil(b.ProvisionedThroughput)
      assert.equal(2, #b.GlobalSecondaryIndexes)
      for _, g in ipairs(b.GlobalSecondaryIndexes) do assert.is_nil(g.ProvisionedThroughput, g.IndexName) end
      assert.same(ATTRS, by(b.AttributeDefinitions, "AttributeName"))
      srv:stop()
    end
  end)

  it("index keys with stored names, and an index on the table's own keys, define each attribute once", function()
    local T = on(start{ ddb_error("ResourceNotFoundException"), OK }, { table_name = "table2", billing_mode = "PAY_PER_REQUEST",
      attributes = { pk = A.Unicode{ hash_key = true, attr_name = "p" }, sk = A.Number{ range_key = true },
                     n = A.Number{ attr_name = "nn", null = true } },
      indexes = {
        inverted = lunamodb.GlobalSecondaryIndex{ hash_key = "sk", range_key = "pk", projection = "KEYS_ONLY" },
        by_n = lunamodb.LocalSecondaryIndex{ range_key = "n" },
        by_n_global = lunamodb.GlobalSecondaryIndex{ hash_key = "n", range_key = "sk", index_name = "n-index" },
      } })
    local b = created(T)
    assert.equal(3, #b.AttributeDefinitions)
    assert.same({ p = { AttributeName = "p", AttributeType = "S" }, sk = { AttributeName = "sk", AttributeType = "N" },
                  nn = { AttributeName = "nn", AttributeType = "N" } }, by(b.AttributeDefinitions, "AttributeName"))
    local g = by(b.GlobalSecondaryIndexes, "IndexName")
    assert.same({ { AttributeName = "sk", KeyType = "HASH" }, { AttributeName = "p", KeyType = "RANGE" } },
      g.inverted.KeySchema)
    assert.same({ { AttributeName = "nn", KeyType = "HASH" }, { AttributeName = "sk", KeyType = "RANGE" } },
      g["n-index"].KeySchema)
    assert.same({ { IndexName = "by_n", Projection = { ProjectionType = "ALL" },
                    KeySchema = { { AttributeName = "p", KeyType = "HASH" }, { AttributeName = "nn", KeyType = "RANGE" } } } },
      b.LocalSecondaryIndexes)
  end)

  it("a model without indexes sends neither list", function()
    local T = on(start{ ddb_error("ResourceNotFoundException"), OK }, { table_name = "plain",
      billing_mode = "PAY_PER_REQUEST", attributes = { id = A.Unicode{ hash_key = true } } })
    local b = created(T)
    assert.is_nil(b.GlobalSecondaryIndexes)
    assert.is_nil(b.LocalSecondaryIndexes)
  end)
end)

--------------------------------------------------------- index declarations

describe("index declarations", function()
  local function decl(indexes, attributes)
    return { name = "T", table_name = "things", attributes = attributes or {
      pk = A.Unicode{ hash_key = true }, sk = A.Number{ range_key = true }, views = A.Number{ null = true },
      tags = A.UnicodeSet{}, flag = A.Boolean{ null = true }, doc = A.Map{ null = true },
      when = A.UTCDateTime{ null = true }, data = A.Binary{ null = true } }, indexes = indexes }
  end
  local GSI, LSI = lunamodb.GlobalSecondaryIndex, lunamodb.LocalSecondaryIndex

  it("a GlobalSecondaryIndex needs a hash_key", function()
    raises(function() GSI{ range_key = "views" } end, "lunamodb.GlobalSecondaryIndex: hash_key is required")
    raises(function() GSI{} end, "lunamodb.GlobalSecondaryIndex: hash_key is required")
  end)

  it("a LocalSecondaryIndex takes a range_key and no hash_key or capacity", function()
    raises(function() LSI{ hash_key = "pk", range_key = "views" } end,
      "lunamodb.LocalSecondaryIndex: a local index shares the table's hash key: give only range_key")
    raises(function() LSI{} end, "lunamodb.LocalSecondaryIndex: range_key is required")
    raises(function() LSI{ range_key = "views", read_capacity_units = 1 } end,
      "lunamodb.LocalSecondaryIndex: a local index uses the table's capacity")
  end)

  it("declarations are strict", function()
    raises(function() GSI("pk") end, "lunamodb.GlobalSecondaryIndex: expected a table of options (got string)")
    raises(function() GSI{ hash_key = "pk", projecton = "ALL" } end,
      "lunamodb.GlobalSecondaryIndex: unknown option 'projecton'")
    raises(function() GSI{ hash_key = 5 } end, "lunamodb.GlobalSecondaryIndex: option 'hash_key' must be a string (got number)")
    raises(function() GSI{ hash_key = "pk", projection = "INCLUDE" } end,
      "lunamodb.GlobalSecondaryIndex: projection must be \"ALL\", \"KEYS_ONLY\" or a non-empty list of "
      .. "attribute names (INCLUDE)")
    raises(function() GSI{ hash_key = "pk", projection = {} } end,
      "lunamodb.GlobalSecondaryIndex: projection must be \"ALL\", \"KEYS_ONLY\" or a non-empty list of "
      .. "attribute names (INCLUDE)")
    raises(function() GSI{ hash_key = "pk", projection = { "views", 3 } } end,
      "lunamodb.GlobalSecondaryIndex: projection[2] must be an attribute name")
    for _, bad in ipairs({ 0, 1.5, -3 }) do
      raises(function() GSI{ hash_key = "pk", read_capacity_units = bad } end,
        "lunamodb.GlobalSecondaryIndex: read_capacity_units must be a whole number >= 1")
    end
  end)

  it("key attributes must be attributes of the model", function()
    raises(function() lunamodb.Model(decl{ g = GSI{ hash_key = "nope" } }) end,
      "lunamodb.Model(T): index 'g': hash_key 'nope' is not an attribute of the model")
    raises(function() lunamodb.Model(decl{ g = GSI{ hash_key = "views", range_key = "nope" } }) end,
      "lunamodb.Model(T): index 'g': range_key 'nope' is not an attribute of the model")
    raises(function() lunamodb.Model(decl{ l = LSI{ range_key = "nope" } }) end,
      "lunamodb.Model(T): index 'l': range_key 'nope' is not an attribute of the model")
  end)

  it("key attributes must be strings, numbers or binaries", function()
    for _, name in ipairs({ "tags", "flag", "doc" }) do
      raises_with(function() lunamodb.Model(decl{ g = GSI{ hash_key = name } }) end,
        "lunamodb.Model(T): index 'g': hash_key '" .. name .. "' must be a string, number or binary attribute")
      raises_with(function() lunamodb.Model(decl{ l = LSI{ range_key = name } }) end,
        "lunamodb.Model(T): index 'l': range_key '" .. name .. "' must be a string, number or binary attribute")
    end
    -- a datetime is stored as a string, a binary as B: both can be keys
    lunamodb.Model(decl{ g = GSI{ hash_key = "when", range_key = "data" } })
  end)

  it("an INCLUDE projection names attributes of the model", function()
    raises(function() lunamodb.Model(decl{ g = GSI{ hash_key = "views", projection = { "tags", "nope" } } }) end,
      "lunamodb.Model(T): index 'g': projected attribute 'nope' is not an attribute of the model")
  end)

  it("an index may not be named like an attribute or a method", function()
    for _, name in ipairs({ "views", "pk", "query", "scan", "count", "save", "get", "parallel_scan" }) do
      raises(function() lunamodb.Model(decl{ [name] = GSI{ hash_key = "views" } }) end,
        "lunamodb.Model(T): index '" .. name .. "' has the name of an attribute or method")
    end
  end)

  it("two indexes may not share an index name", function()
    raises(function()
      lunamodb.Model(decl{ a = GSI{ hash_key = "views", index_name = "same" }, b = LSI{ range_key = "views", index_name = "same" } })
    end, "lunamodb.Model(T): two indexes are named 'same'")
  end)

  it("indexes must be index declarations", function()
    raises(function() lunamodb.Model(decl{ g = { hash_key = "views" } }) end,
      "lunamodb.Model(T): indexes must map names to lunamodb.GlobalSecondaryIndex{...} or "
      .. "lunamodb.LocalSecondaryIndex{...}")
    raises(function() lunamodb.Model(decl{ GSI{ hash_key = "views" } }) end,
      "lunamodb.Model(T): indexes must map names to lunamodb.GlobalSecondaryIndex{...} or "
      .. "lunamodb.LocalSecondaryIndex{...}")
  end)

  it("a local index needs a table with a range key", function()
    raises(function()
      lunamodb.Model(decl({ l = LSI{ range_key = "views" } }, { pk = A.Unicode{ hash_key = true }, views = A.Number{} }))
    end, "lunamodb.Model(T): index 'l': a local index needs a table with a range key")
  end)

  it("indexes belong to the root model, not a subclass", function()
    local P = lunamodb.Model(decl(nil, { pk = A.Unicode{ hash_key = true }, kind = A.Discriminator{},
                                         views = A.Number{ null = true } }))
    raises(function() P:extend{ name = "C", discriminator = "c", indexes = { g = GSI{ hash_key = "views" } } } end,
      "lunamodb.Model(C): a subclass shares its parent's table: 'indexes' cannot be set")
  end)

  it("a bound index prints its kind and name; a subclass sees its parent's indexes", function()
    local P = lunamodb.Model(decl({ g = GSI{ hash_key = "views" }, l = LSI{ range_key = "views", index_name = "l-idx" } },
      { pk = A.Unicode{ hash_key = true }, sk = A.Number{ range_key = true }, kind = A.Discriminator{},
        views = A.Number{ null = true } }))
    assert.equal("lunamodb.GlobalSecondaryIndex(g)", tostring(P.g))
    assert.equal("lunamodb.LocalSecondaryIndex(l-idx)", tostring(P.l))
    local C = P:extend{ name = "C", discriminator = "c" }
    assert.equal("lunamodb.GlobalSecondaryIndex(g)", tostring(C.g))
    raises(function() P.g = 1 end, "lunamodb: T: cannot set 'g' on a model class")
  end)
end)

------------------------------------------------------------ rate limiting

describe("rate limiting", function()
  after_each(function() if srv then srv:stop(); srv = nil end end)

  -- five pages, each reporting 10 consumed read units
  local function five_pages()
    local replies = {}
    for i = 1, 5 do
      replies[i] = page({ th("s" .. i) }, i < 5 and key("s" .. i) or nil,
        { ConsumedCapacity = { TableName = "threads", CapacityUnits = 10 } })
    end
    return replies
  end

  local function timed(f)
    local t0 = monotonic_ms()
    local r = f()
    return (monotonic_ms() - t0) / 1000, r
  end

  it("rate_limit = 50 with 10 units per page: 5 pages take about 0.8 s", function()
    local T = Thread(five_pages())
    local elapsed, n = timed(function()
      local n = 0
      for _ in T:scan{ rate_limit = 50 } do n = n + 1 end
      return n
    end)
    assert.equal(5, n)
    assert.is_true(elapsed >= 0.75 and elapsed < 0.8 + 0.8 * SLOW, "elapsed " .. elapsed)
    -- the waits come between the pages, none before the first
    local reqs = sent(srv)
    for i = 2, 5 do
      local gap = reqs[i].t_ms - reqs[i - 1].t_ms
      assert.is_true(gap >= 180, "gap before page " .. i .. ": " .. gap .. " ms")
    end
  end)

  it("without rate_limit the same pages take < 0.3 s", function()
    local T = Thread(five_pages())
    local elapsed, n = timed(function() return #drain(T:scan()) end)
    assert.equal(5, n)
    assert.is_true(elapsed < 0.3 * SLOW, "elapsed " .. elapsed)
  end)

  it("query and pages() are rate limited the same way", function()
    local T = Thread(five_pages())
    local elapsed = timed(function() for _ in T:query("lua", { rate_limit = 100 }):pages() do end end)
    assert.is_true(elapsed >= 0.37 and elapsed < 0.4 + 0.8 * SLOW, "elapsed " .. elapsed)
  end)

  it("count is rate limited too", function()
    local replies = {}
    for i = 1, 4 do
      replies[i] = reply{ Count = 2, ScannedCount = 2, LastEvaluatedKey = i < 4 and key("k" .. i) or nil,
                          ConsumedCapacity = { TableName = "threads", CapacityUnits = 10 } }
    end
    local T = Thread(replies)
    local elapsed, n = timed(function() return assert(T:count("lua", { rate_limit = 50 })) end)
    assert.equal(8, n)
    assert.is_true(elapsed >= 0.55 and elapsed < 0.6 + 0.7 * SLOW, "elapsed " .. elapsed)
  end)

  it("each wait follows the capacity the previous page consumed", function()
    local replies = {}
    for i, units in ipairs({ 5, 20, 5, 1 }) do
      replies[i] = page({ th("s" .. i) }, i < 4 and key("s" .. i) or nil,
        { ConsumedCapacity = { TableName = "threads", CapacityUnits = units } })
    end
    local T = Thread(replies)
    assert.equal(4, #drain(T:query("lua", { rate_limit = 50 })))
    local reqs = sent(srv)
    local gaps = {}
    for i = 2, 4 do gaps[i - 1] = reqs[i].t_ms - reqs[i - 1].t_ms end
    -- 5 units at 50/s: 100 ms; 20 units: 400 ms; 5 units: 100 ms
    assert.is_true(gaps[1] >= 90 and gaps[1] < 100 + 250 * SLOW, "gap 1: " .. gaps[1])
    assert.is_true(gaps[2] >= 380 and gaps[2] < 400 + 250 * SLOW, "gap 2: " .. gaps[2])
    assert.is_true(gaps[3] >= 90 and gaps[3] < 100 + 250 * SLOW, "gap 3: " .. gaps[3])
  end)

  it("a generous rate_limit does not slow anything down", function()
    local T = Thread(five_pages())
    local elapsed = timed(function() return drain(T:scan{ rate_limit = 10000 }) end)
    assert.is_true(elapsed < 0.3 * SLOW, "elapsed " .. elapsed)
  end)
end)

------------------------------------------------------------ parallel scan

describe("parallel_scan", function()
  after_each(function() if srv then srv:stop(); srv = nil end end)

  local function one_item_each(delay_ms)
    local replies = {}
    for i = 1, 4 do
      local r = page({ th("s" .. i) })
      r.delay_ms = delay_ms
      replies[i] = r
    end
    return replies
  end

  it("scans every segment, concurrently, each item once", function()
    local delay = 400 * SLOW
    local T = Thread(one_item_each(delay))
    local t0 = monotonic_ms()
    local got = {}
    for t in T:parallel_scan{ total_segments = 4, filter_condition = T.views:ge(0), page_size = 10 } do
      got[#got + 1] = t.subject
    end
    local elapsed = monotonic_ms() - t0
    assert.same({ "s1", "s2", "s3", "s4" }, sorted(got))
    local segs = {}
    for _, b in ipairs(bodies(srv)) do
      segs[#segs + 1] = b.Segment
      assert.equal(4, b.TotalSegments)
      assert.equal(10, b.Limit)
      assert.equal("#0 >= :0", b.FilterExpression)
    end
    assert.same({ 0, 1, 2, 3 }, sorted(segs))
    -- all four requests were out before the first reply came back, and four
    -- delayed replies took well under four delays
    local reqs = sent(srv)
    local first, lastt = reqs[1].t_ms, reqs[1].t_ms
    for _, r in ipairs(reqs) do first = math.min(first, r.t_ms); lastt = math.max(lastt, r.t_ms) end
    assert.is_true(lastt - first < delay, "requests spread over " .. (lastt - first) .. " ms")
    assert.is_true(elapsed < 2.75 * delay, "elapsed " .. elapsed .. " ms: the segments did not run concurrently")
  end)

  it("follows each segment's pages", function()
    local T = Thread{ page({ th("a") }, key("a")), page({ th("b") }, key("b")), page({ th("c") }), page({ th("d") }),
                      page({ th("e") }) }
    local got = {}
    for t in T:parallel_scan{ total_segments = 2 } do got[#got + 1] = t.subject end
    -- 2 segments: each ends at its first reply without a LastEvaluatedKey
    local with_start = 0
    for _, b in ipairs(bodies(srv)) do if b.ExclusiveStartKey then with_start = with_start + 1 end end
    assert.equal(#got, srv:count())
    assert.equal(#got - 2, with_start)
  end)

  it("stops at limit", function()
    local T = Thread(one_item_each(0))
    local got = {}
    for t in T:parallel_scan{ total_segments = 4, limit = 2 } do got[#got + 1] = t end
    assert.equal(2, #got)
  end)

  it("a failing segment raises its lunamodb.Error", function()
    local T = Thread{ page({ th("a") }), ddb_error("ValidationException", "no") }
    local ok, err = pcall(function() for _ in T:parallel_scan{ total_segments = 2 } do end end)
    assert.is_false(ok)
    assert.is_true(lunamodb.is_error(err), tostring(err))
    assert.equal("ValidationException", err.code)
  end)

  it("rate_limit is the whole scan's rate, shared by its segments", function()
    -- 12 pages of 10 units; the first 8 have more to come: every segment
    -- ends at its first page without a LastEvaluatedKey (4 of them)
    local replies = {}
    for i = 1, 12 do
      replies[i] = page({ th("s" .. i) }, i <= 8 and key("s" .. i) or nil,
        { ConsumedCapacity = { TableName = "threads", CapacityUnits = 10 } })
    end
    local T = Thread(replies)
    local t0 = monotonic_ms()
    local n = 0
    for _ in T:parallel_scan{ total_segments = 4, rate_limit = 50 } do n = n + 1 end
    local elapsed = (monotonic_ms() - t0) / 1000
    assert.equal(12, n)
    -- 120 units at 50 per second: at least the 80 units of the 8 pages
    -- followed by another take 1.6 s (4 limiters of 50/s each would take 0.4 s)
    assert.is_true(elapsed >= 1.2, "elapsed " .. elapsed .. " s: 120 units at more than 100 units/s")
  end)

  it("on an index, with its IndexName", function()
    local T = Thread(one_item_each(0))
    local n = 0
    for t in T.by_author:parallel_scan{ total_segments = 3 } do
      n = n + 1
      assert.is_true(t:is_partial())
    end
    assert.equal(3, n)
    for _, b in ipairs(bodies(srv)) do assert.equal("by_author", b.IndexName) end
  end)
end)
