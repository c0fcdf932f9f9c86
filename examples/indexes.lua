-- examples/indexes.lua: query, scan and count a model and its secondary indexes.
--
-- Run against DynamoDB Local by `make test` (and by hand like examples/basic.lua:
-- set AWS_ENDPOINT_URL_DYNAMODB and credentials).
local lunamodb = require "lunamodb"
local A = lunamodb.attributes

local Thread = lunamodb.Model{
  table_name = "lunamodb_demo_threads",
  name = "Thread",
  region = os.getenv("AWS_REGION") or "us-east-1",
  billing_mode = "PAY_PER_REQUEST",
  attributes = {
    forum = A.Unicode{ hash_key = true },
    subject = A.Unicode{ range_key = true },
    views = A.Number{ default = 0 },
    author = A.Unicode{},
    last_post = A.UTCDateTime{ default_for_new = lunamodb.now },
  },
  indexes = {
    -- every forum's threads by views, across the whole table
    by_views = lunamodb.GlobalSecondaryIndex{ hash_key = "forum", range_key = "views", projection = "ALL" },
    -- one author's threads; only the keys and the views are copied into the index
    by_author = lunamodb.GlobalSecondaryIndex{ hash_key = "author", projection = { "views" } },
    -- a forum's threads by last post, kept with the table's partition
    by_last_post = lunamodb.LocalSecondaryIndex{ range_key = "last_post", projection = "KEYS_ONLY" },
  },
}

assert(Thread:create_table{ wait = true })

for i = 1, 30 do
  assert(Thread.new{ forum = "lua", subject = string.format("thread %02d", i), views = i * 7 % 31,
                     author = i % 3 == 0 and "ada" or "grace" }:save())
end

-- a query on the table: a range key condition, a filter, a limit
local hot = {}
for t in Thread:query("lua", { range_key_condition = Thread.subject:begins_with("thread 1"),
                               filter_condition = Thread.views:gt(10), limit = 5 }) do
  hot[#hot + 1] = t.subject .. " (" .. t.views .. " views)"
end
print("query:       " .. table.concat(hot, ", "))

-- the most viewed first, through the GSI
local top = Thread.by_views:query("lua", { scan_index_forward = false, limit = 3 }):all()
print(string.format("by_views:    %s has the most views (%d)", top[1].subject, top[1].views))

-- an INCLUDE index returns partial items: read, never save them
local ada = Thread.by_author:query("ada"):all()
print(string.format("by_author:   ada wrote %d threads; partial items: %s", #ada, tostring(ada[1]:is_partial())))

-- counting is exact, and pages can be walked one by one
print("count:       " .. assert(Thread:count("lua", { filter_condition = Thread.views:ge(15) })) .. " threads with 15+ views")
local pages = 0
for page in Thread:scan{ page_size = 8 }:pages() do pages = pages + 1 end
print("scan pages:  " .. pages .. " pages of at most 8 items")

-- resume where a limited query stopped
local first = Thread:query("lua", { limit = 10 })
for _ in first do end
local rest = Thread:query("lua", { exclusive_start_key = first.last_evaluated_key }):all()
print("resumed:     " .. #rest .. " more threads after the first 10")

-- the local index, and a parallel scan of the whole table
print("by_last_post: " .. Thread.by_last_post:count("lua") .. " entries")
local n = 0
for _ in Thread:parallel_scan{ total_segments = 4 } do n = n + 1 end
print("parallel:    " .. n .. " threads from 4 segments")

assert(Thread:delete_table{ wait = true })
