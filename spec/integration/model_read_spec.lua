-- Reading at scale against DynamoDB Local: one table with a hash and range
-- key, a GSI (ALL), a GSI (INCLUDE) and an LSI (KEYS_ONLY), 2,000 items in
-- one partition and 50 more in ten others. Every query, scan and count
-- option is checked against the data it must return: order, limit versus
-- page_size, resuming from last_evaluated_key, range conditions, filters,
-- projections, index reads, exact counts, segments, the parallel scan,
-- rate limiting observed, and misuse refused before any network call.
-- Conditions use * + - (LuaJIT runs this too).
local lunamodb = require "lunamodb"
local A = require "lunamodb.attributes"
local core = require "lunamodb.core"
local ddb = require "spec.helpers.ddb"

local monotonic_ms = core.monotonic_ms
local GSI, LSI = lunamodb.GlobalSecondaryIndex, lunamodb.LocalSecondaryIndex

local BIG = 2000          -- items in the partition "big"
local SMALL = 10          -- other partitions, of 5 items each
local TOTAL = BIG + SMALL * 5

-- every table a spec creates, deleted in teardown
local created = {}

local function Model(decl)
  decl.table_name = decl.table_name or ddb.unique_table(decl.name or "reads")
  if not decl.client then
    decl.host = ddb.endpoint()
    decl.region = "us-east-1"
    decl.access_key_id, decl.secret_access_key = "lunamodbtest", "lunamodbtest"
  end
  created[#created + 1] = decl.table_name
  return lunamodb.Model(decl)
end

local function sk(i) return string.format("%04d", i) end

-- The stored data, as the spec computes it: records { forum, sk, views,
-- author, score, title }, in table order (forum, then sk).
local big, small, all = {}, {}, {}
for i = 1, BIG do
  big[i] = { forum = "big", sk = sk(i), views = i % 50, author = "a" .. (i % 4),
             score = (i * 7919) % 2003, title = "t" .. (i % 10) }
  all[#all + 1] = big[i]
end
for p = 0, SMALL - 1 do
  for i = 1, 5 do
    local r = { forum = string.format("small%02d", p), sk = sk(i), views = 100 + i, author = "b" .. p,
                score = i, title = "t" .. i }
    small[#small + 1] = r
    all[#all + 1] = r
  end
end

local function where(list, pred)
  local out = {}
  for _, r in ipairs(list) do if pred(r) then out[#out + 1] = r end end
  return out
end
local function field(list, name)
  local out = {}
  for i, r in ipairs(list) do out[i] = r[name] end
  return out
end
local slice = require("spec.helpers.lists").slice
local function reversed(list)
  local out = {}
  for i = #list, 1, -1 do out[#out + 1] = list[i] end
  return out
end
local function id(r) return r.forum .. "/" .. r.sk end
-- sorted "forum/sk" ids; raises on a duplicate
local function id_set(list)
  local out, seen = {}, {}
  for _, r in ipairs(list) do
    local k = id(r)
    assert(not seen[k], "returned twice: " .. k)
    seen[k] = true
    out[#out + 1] = k
  end
  table.sort(out)
  return out
end
local function drain(it)
  local out = {}
  for v in it do out[#out + 1] = v end
  return out
end
local function wire_key(forum, s) return { forum = { S = forum }, sk = { S = s } } end

describe("query, scan and count at scale #integration", function()
  local Post

  setup(function()
    Post = Model{ name = "Post", billing_mode = "PAY_PER_REQUEST", attributes = {
      forum = A.Unicode{ hash_key = true }, sk = A.Unicode{ range_key = true },
      author = A.Unicode{}, views = A.Number{ default = 0 }, score = A.Number{},
      title = A.Unicode{}, body = A.Unicode{ null = true },
    }, indexes = {
      by_views = GSI{ hash_key = "author", range_key = "views", projection = "ALL" },
      by_title = GSI{ hash_key = "title", projection = { "views" } },
      by_score = LSI{ range_key = "score", projection = "KEYS_ONLY" },
    } }
    assert(Post:create_table{ wait = true })
    local t0 = monotonic_ms()
    for _, r in ipairs(all) do
      assert(Post.new{ forum = r.forum, sk = r.sk, views = r.views, author = r.author, score = r.score,
                       title = r.title }:save())
    end
    local ms = monotonic_ms() - t0
    assert(ms < 30000, "loading " .. TOTAL .. " items took " .. ms .. " ms")
  end)

  teardown(function()
    local client = ddb.client()
    for _, name in ipairs(created) do client:call("DeleteTable", { TableName = name }) end
    client:close()
  end)

  describe("a 2,000-item partition", function()
    it("in pages of 100: every item exactly once, in range-key order, with its values", function()
      local it = Post:query("big", { page_size = 100 })
      local got = drain(it)
      assert.equal(BIG, #got)
      assert.same(field(big, "sk"), field(got, "sk"))
      for i, item in ipairs(got) do
        local r = big[i]
        if item.views ~= r.views or item.author ~= r.author or item.score ~= r.score or item.title ~= r.title then
          error("item " .. i .. " differs: " .. tostring(item))
        end
        assert(not item:is_partial())
      end
      assert.equal(BIG, it.total_count)
      assert.is_nil(it.last_evaluated_key)
    end)

    it("backwards with scan_index_forward = false", function()
      local got = drain(Post:query("big", { page_size = 100, scan_index_forward = false }))
      assert.same(reversed(field(big, "sk")), field(got, "sk"))
    end)

    it("pages() gives pages of page_size, the last one smaller", function()
      local sizes, n = {}, 0
      for p in Post:query("big", { page_size = 300 }):pages() do
        sizes[#sizes + 1] = p.count
        assert.equal(p.count, #p.items)
        for _, item in ipairs(p.items) do
          n = n + 1
          assert.equal(sk(n), item.sk)
        end
        if p.last_evaluated_key then
          assert.same(wire_key("big", sk(n)), p.last_evaluated_key)
        end
      end
      assert.same({ 300, 300, 300, 300, 300, 300, 200 }, sizes)
      -- 2,000 in pages of 100: twenty full pages (DynamoDB may add an empty last one)
      sizes = {}
      for p in Post:query("big", { page_size = 100 }):pages() do sizes[#sizes + 1] = p.count end
      if sizes[21] then assert.equal(0, sizes[21]); sizes[21] = nil end
      local want = {}
      for i = 1, 20 do want[i] = 100 end
      assert.same(want, sizes)
    end)

    it("limit 250 with page_size 100 yields exactly 250; limit 50 alone yields 50", function()
      local it = Post:query("big", { limit = 250, page_size = 100 })
      local got = drain(it)
      assert.same(field(slice(big, 1, 250), "sk"), field(got, "sk"))
      assert.equal(250, it.total_count)
      assert.same(wire_key("big", "0250"), it.last_evaluated_key)      -- stopped inside the third page
      local sizes = {}
      for p in Post:query("big", { limit = 250, page_size = 100 }):pages() do sizes[#sizes + 1] = p.count end
      assert.same({ 100, 100, 50 }, sizes)
      local fifty = Post:query("big", { limit = 50 })
      got = drain(fifty)
      assert.equal(50, #got)
      assert.equal("0050", got[50].sk)
      assert.same(wire_key("big", "0050"), fifty.last_evaluated_key)
      local back = drain(Post:query("big", { limit = 7, scan_index_forward = false }))
      assert.same({ "2000", "1999", "1998", "1997", "1996", "1995", "1994" }, field(back, "sk"))
      assert.equal(BIG, #drain(Post:query("big", { limit = 2500, page_size = 700 })))
      assert.equal(0, #drain(Post:query("big", { limit = 0 })))
    end)

    local function resume_all(opts, first_lek)
      local seen, rounds, lek = {}, 0, nil
      repeat
        local o = {}
        for k, v in pairs(opts) do o[k] = v end
        o.exclusive_start_key = lek
        local it = Post:query("big", o)
        local got = drain(it)
        assert.is_true(#got <= opts.limit)
        for _, item in ipairs(got) do seen[#seen + 1] = item.sk end
        lek = it.last_evaluated_key
        rounds = rounds + 1
        if rounds == 1 then assert.same(first_lek, lek) end
        assert(rounds < 100, "resuming never ends")
      until lek == nil
      assert.same(field(big, "sk"), seen)
      return rounds
    end

    it("resuming after a limit that stops inside a page continues exactly where it stopped", function()
      resume_all({ limit = 250, page_size = 100 }, wire_key("big", "0250"))
      resume_all({ limit = 333, page_size = 1000 }, wire_key("big", "0333"))
    end)

    it("resuming after a limit that stops at a page boundary continues exactly where it stopped", function()
      resume_all({ limit = 200, page_size = 100 }, wire_key("big", "0200"))
      resume_all({ limit = 100 }, wire_key("big", "0100"))
    end)

    it("resuming an index query: the key holds the table's and the index's keys", function()
      local want = where(big, function(r) return r.author == "a1" end)
      local seen, lek, rounds = {}, nil, 0
      repeat
        local it = Post.by_views:query("a1", { limit = 70, page_size = 30, exclusive_start_key = lek })
        for item in it do seen[#seen + 1] = item end
        lek = it.last_evaluated_key
        rounds = rounds + 1
        if rounds == 1 then
          local last = seen[#seen]
          assert.same({ forum = { S = "big" }, sk = { S = last.sk }, author = { S = "a1" },
                        views = { N = tostring(last.views) } }, lek)
        end
        assert(rounds < 100)
      until lek == nil
      assert.same(id_set(want), id_set(seen))
      for i = 2, #seen do assert(seen[i - 1].views <= seen[i].views, "views out of order") end
    end)
  end)

  describe("range key conditions", function()
    local function sks(cond, opts)
      local o = { range_key_condition = cond }
      for k, v in pairs(opts or {}) do o[k] = v end
      return field(drain(Post:query("big", o)), "sk")
    end
    local function range(a, b)
      local out = {}
      for i = a, b do out[#out + 1] = sk(i) end
      return out
    end

    it("every allowed operator returns exactly the expected items", function()
      assert.same({ "1000" }, sks(Post.sk:eq("1000")))
      assert.same({}, sks(Post.sk:eq("9999")))
      assert.same(range(1, 10), sks(Post.sk:lt("0011")))
      assert.same(range(1, 10), sks(Post.sk:le("0010")))
      assert.same(range(1991, 2000), sks(Post.sk:gt("1990")))
      assert.same(range(1990, 2000), sks(Post.sk:ge("1990")))
      assert.same(range(500, 549), sks(Post.sk:between("0500", "0549")))
      assert.same(range(100, 199), sks(Post.sk:begins_with("01")))
      assert.same({ "2000" }, sks(Post.sk:begins_with("2")))
      assert.same(reversed(range(1991, 2000)), sks(Post.sk:gt("1990"), { scan_index_forward = false }))
      assert.same(range(100, 149), sks(Post.sk:begins_with("01"), { page_size = 7, limit = 50 }))
    end)

    it("counts with each operator are exact", function()
      assert.equal(1, assert(Post:count("big", { range_key_condition = Post.sk:eq("1000") })))
      assert.equal(10, assert(Post:count("big", { range_key_condition = Post.sk:lt("0011") })))
      assert.equal(10, assert(Post:count("big", { range_key_condition = Post.sk:le("0010") })))
      assert.equal(10, assert(Post:count("big", { range_key_condition = Post.sk:gt("1990") })))
      assert.equal(11, assert(Post:count("big", { range_key_condition = Post.sk:ge("1990") })))
      assert.equal(50, assert(Post:count("big", { range_key_condition = Post.sk:between("0500", "0549") })))
      assert.equal(100, assert(Post:count("big", { range_key_condition = Post.sk:begins_with("01"), page_size = 30 })))
    end)
  end)

  describe("filters and projections", function()
    it("filter conditions, combined with * + -", function()
      local got = drain(Post:query("big", { filter_condition = Post.views:ge(45), page_size = 500 }))
      assert.same(field(where(big, function(r) return r.views >= 45 end), "sk"), field(got, "sk"))
      local cond = (Post.views:lt(5) + Post.views:ge(45)) * -Post.author:eq("a0")
      local want = where(big, function(r) return (r.views < 5 or r.views >= 45) and r.author ~= "a0" end)
      got = drain(Post:query("big", { filter_condition = cond }))
      assert.same(field(want, "sk"), field(got, "sk"))
      -- with a range condition and a limit: the first 30 that pass
      got = drain(Post:query("big", { range_key_condition = Post.sk:gt("0100"), filter_condition = cond,
                                      limit = 30, page_size = 40 }))
      local after = where(want, function(r) return r.sk > "0100" end)
      assert.same(field(slice(after, 1, 30), "sk"), field(got, "sk"))
      -- nothing passes: no items, through every (empty) page
      assert.same({}, drain(Post:query("big", { filter_condition = Post.body:exists(), page_size = 400 })))
      -- a scan with a filter
      got = drain(Post:scan{ filter_condition = Post.author:begins_with("b") * Post.views:gt(103) })
      assert.same(id_set(where(small, function(r) return r.views > 103 end)), id_set(got))
    end)

    it("projections give partial items, without defaults, that refuse save", function()
      local got = drain(Post:query("big", { attributes = { "title" }, limit = 20 }))
      assert.equal(20, #got)
      for i, item in ipairs(got) do
        assert.is_true(item:is_partial())
        assert.equal(big[i].title, item.title)
        assert.equal("big", item.forum)
        assert.equal(sk(i), item.sk)
        assert.is_nil(item.views)                      -- not the default 0
        assert.is_nil(item.author)
      end
      assert.has_error(function() got[1]:save() end)
      got = drain(Post:scan{ attributes = { Post.score }, filter_condition = Post.forum:eq("small01") })
      assert.equal(5, #got)
      for _, item in ipairs(got) do
        assert.is_true(item:is_partial())
        assert.is_nil(item.title)
        assert.is_number(item.score)
      end
    end)

    it("a projection may list key attributes too", function()
      local got = drain(Post:query("big", { attributes = { Post.views, "forum", "sk" }, limit = 3 }))
      assert.same({ "0001", "0002", "0003" }, field(got, "sk"))
      assert.same({ 1, 2, 3 }, field(got, "views"))
    end)

    it("consistent_read on the table and on the local index", function()
      assert.equal(10, #drain(Post:query("big", { consistent_read = true, limit = 10 })))
      assert.equal(TOTAL, #drain(Post:scan{ consistent_read = true, page_size = 1000 }))
      assert.equal(5, #drain(Post.by_score:query("small02", { consistent_read = true })))
      assert.equal(BIG, assert(Post:count("big", { consistent_read = true })))
      assert.has_error(function() Post.by_views:query("a1", { consistent_read = true }) end)
    end)
  end)

  describe("indexes", function()
    it("a GSI (ALL): query, backwards, range condition, count, scan; whole items", function()
      local want = where(big, function(r) return r.author == "a1" end)
      local got = drain(Post.by_views:query("a1", { page_size = 100 }))
      assert.same(id_set(want), id_set(got))
      for i, item in ipairs(got) do
        assert.is_false(item:is_partial())
        assert.is_string(item.title)
        if i > 1 then assert(got[i - 1].views <= item.views, "views out of order") end
      end
      local back = drain(Post.by_views:query("a1", { scan_index_forward = false, limit = 30 }))
      assert.equal(30, #back)
      for i = 2, #back do assert(back[i - 1].views >= back[i].views, "views out of order backwards") end
      assert.equal(49, back[1].views)
      local cond = Post.views:between(10, 19)
      local in_range = where(want, function(r) return r.views >= 10 and r.views <= 19 end)
      assert.same(id_set(in_range), id_set(drain(Post.by_views:query("a1", { range_key_condition = cond }))))
      assert.equal(#in_range, assert(Post.by_views:count("a1", { range_key_condition = cond })))
      assert.equal(#want, assert(Post.by_views:count("a1")))
      assert.equal(#where(want, function(r) return r.views < 10 end),
        assert(Post.by_views:count("a1", { range_key_condition = Post.views:lt(10), page_size = 20 })))
      assert.equal(0, assert(Post.by_views:count("nobody")))
      assert.same(id_set(all), id_set(drain(Post.by_views:scan{ page_size = 250 })))
      assert.equal(TOTAL, assert(Post.by_views:count()))
    end)

    it("a GSI (INCLUDE): the projected attributes only, partial items", function()
      local want = where(all, function(r) return r.title == "t3" end)
      local got = drain(Post.by_title:query("t3"))
      assert.same(id_set(want), id_set(got))
      for _, item in ipairs(got) do
        assert.is_true(item:is_partial())
        assert.equal("t3", item.title)
        assert.is_number(item.views)
        assert.is_nil(item.author)
        assert.is_nil(item.score)
      end
      assert.has_error(function() got[1]:save() end)
      assert.equal(#want, assert(Post.by_title:count("t3")))
      assert.equal(#where(want, function(r) return r.views >= 100 end),
        assert(Post.by_title:count("t3", { filter_condition = Post.views:ge(100) })))
      local scanned = drain(Post.by_title:scan{ page_size = 500 })
      assert.same(id_set(all), id_set(scanned))
      assert.is_true(scanned[1]:is_partial())
      assert.equal(TOTAL, assert(Post.by_title:count()))
    end)

    it("an LSI (KEYS_ONLY): query in index order, count, scan; keys only", function()
      local want = where(big, function(r) return r.score < 100 end)
      table.sort(want, function(a, b) return a.score < b.score end)
      local got = drain(Post.by_score:query("big", { range_key_condition = Post.score:lt(100) }))
      assert.same(field(want, "sk"), field(got, "sk"))
      assert.same(field(want, "score"), field(got, "score"))
      for _, item in ipairs(got) do
        assert.is_true(item:is_partial())
        assert.is_nil(item.views)
        assert.is_nil(item.title)
      end
      assert.has_error(function() got[1]:save() end)
      assert.equal(#want, assert(Post.by_score:count("big", { range_key_condition = Post.score:lt(100) })))
      local top = drain(Post.by_score:query("big", { scan_index_forward = false, limit = 3 }))
      assert.same({ 2002, 2001, 2000 }, field(top, "score"))
      assert.equal(BIG, assert(Post.by_score:count("big")))
      assert.same(id_set(all), id_set(drain(Post.by_score:scan())))
      assert.equal(TOTAL, assert(Post.by_score:count()))
    end)
  end)

  describe("count", function()
    it("with filters and limits, exactly", function()
      assert.equal(BIG, assert(Post:count("big")))
      assert.equal(BIG, assert(Post:count("big", { page_size = 100 })))
      assert.equal(200, assert(Post:count("big", { filter_condition = Post.views:ge(45) })))
      assert.equal(200, assert(Post:count("big", { filter_condition = Post.views:ge(45), page_size = 64 })))
      assert.equal(1234, assert(Post:count("big", { limit = 1234 })))
      assert.equal(1234, assert(Post:count("big", { limit = 1234, page_size = 100 })))
      assert.equal(150, assert(Post:count("big", { filter_condition = Post.views:ge(45), limit = 150, page_size = 300 })))
      assert.equal(BIG, assert(Post:count("big", { limit = 5000 })))
      assert.equal(5, assert(Post:count("small03")))
      assert.equal(0, assert(Post:count("nobody")))
    end)

    it("without a hash key: the number of items in the table", function()
      assert.equal(TOTAL, assert(Post:count()))
      assert.equal(TOTAL, assert(Post:count{ page_size = 300 }))
      local want = #where(all, function(r) return r.views >= 45 end)
      assert.equal(want, assert(Post:count{ filter_condition = Post.views:ge(45) }))
      assert.equal(100, assert(Post:count{ limit = 100 }))
    end)
  end)

  describe("segments and the parallel scan", function()
    it("scan with segment/total_segments over 4 segments covers every item exactly once", function()
      local every = {}
      for seg = 0, 3 do
        local part = drain(Post:scan{ segment = seg, total_segments = 4, page_size = 200 })
        for _, item in ipairs(part) do every[#every + 1] = item end
      end
      assert.same(id_set(all), id_set(every))
    end)

    it("parallel_scan with total_segments = 4 returns exactly the table's items", function()
      local got = {}
      for item in Post:parallel_scan{ total_segments = 4, page_size = 100 } do got[#got + 1] = item end
      assert.same(id_set(all), id_set(got))
      got = {}
      for item in Post:parallel_scan{ total_segments = 3, filter_condition = Post.views:ge(45) } do
        got[#got + 1] = item
      end
      assert.same(id_set(where(all, function(r) return r.views >= 45 end)), id_set(got))
      got = {}
      for item in Post.by_title:parallel_scan{ total_segments = 4, page_size = 300 } do got[#got + 1] = item end
      assert.same(id_set(all), id_set(got))
      assert.is_true(got[1]:is_partial())
      local n = 0
      for _ in Post:parallel_scan{ total_segments = 4, limit = 77, page_size = 10 } do n = n + 1 end
      assert.equal(77, n)
    end)
  end)

  describe("rate limiting", function()
    it("a rate-limited scan takes at least the time its consumed capacity allows", function()
      -- the capacity each page consumes, as DynamoDB Local reports it
      local units = {}
      for p in Post:scan{ page_size = 300, rate_limit = 1e9 }:pages() do units[#units + 1] = p.consumed_capacity end
      assert.is_true(#units >= 4, "pages: " .. #units)
      local waited = 0                                  -- every page but the last is waited for
      for i = 1, #units - 1 do waited = waited + assert(units[i]) end
      local rate = waited / 1.5                         -- so the whole scan takes about 1.5 s
      local t0 = monotonic_ms()
      local n = 0
      for _ in Post:scan{ page_size = 300, rate_limit = rate } do n = n + 1 end
      local elapsed = (monotonic_ms() - t0) / 1000
      assert.equal(TOTAL, n)
      local expected = waited / rate
      assert.is_true(elapsed >= 0.9 * expected, string.format("elapsed %.3f s, expected at least %.3f s", elapsed, expected))
      assert.is_true(elapsed < expected + 3, string.format("elapsed %.3f s, expected about %.3f s", elapsed, expected))
      -- without a rate limit the same scan is much faster
      t0 = monotonic_ms()
      assert.equal(TOTAL, #drain(Post:scan{ page_size = 300 }))
      assert.is_true((monotonic_ms() - t0) / 1000 < expected / 2)
    end)
  end)

  describe("bad input", function()
    it("fails before any network call", function()
      local real = ddb.client()
      local calls = 0
      local proxy = setmetatable({}, { __index = function(_, k)
        local v = real[k]
        if type(v) == "function" then
          return function(_, ...) calls = calls + 1; return v(real, ...) end
        end
        return v
      end })
      local P = Model{ name = "Probe", table_name = Post:table_name(), client = proxy, attributes = {
        forum = A.Unicode{ hash_key = true }, sk = A.Unicode{ range_key = true },
        author = A.Unicode{}, views = A.Number{ default = 0 }, score = A.Number{},
        title = A.Unicode{}, body = A.Unicode{ null = true },
      }, indexes = {
        by_views = GSI{ hash_key = "author", range_key = "views", projection = "ALL" },
        by_score = LSI{ range_key = "score", projection = "KEYS_ONLY" },
      } }
      -- a range condition on a non-key attribute
      assert.has_error(function() P:query("big", { range_key_condition = P.views:eq(1) }) end)
      assert.has_error(function() P:count("big", { range_key_condition = P.title:begins_with("t") }) end)
      assert.has_error(function() P.by_views:query("a1", { range_key_condition = P.sk:eq("0001") }) end)
      -- an unknown index
      assert.has_error(function() return P.by_nothing end)
      assert.has_error(function() P.by_nothing:query("x") end)
      -- and more misuse
      assert.has_error(function() P:query("big", { range_key_condition = P.sk:ne("0001") }) end)
      assert.has_error(function() P:count{ range_key_condition = P.sk:eq("0001") } end)
      assert.has_error(function() P.by_views:query("a1", { consistent_read = true }) end)
      assert.has_error(function() P:scan{ segment = 4, total_segments = 4 } end)
      assert.has_error(function() P:query("big", { limit = -1 }) end)
      assert.has_error(function() P:query("big", { filter_condition = P.views == 1 }) end)
      assert.equal(0, calls)
      -- the same client does reach DynamoDB for a good call
      assert.equal(BIG, assert(P:count("big")))
      assert.is_true(calls > 0)
    end)
  end)
end)
