-- lunamodb's runner: the benchmark workloads through the public model API.
--
--   lua5.4|luajit bench/lunamodb_runner.lua WORKLOAD CALLS ENDPOINT DATADIR [WARMUP]
--
-- WORKLOAD: put get update query scan batch_write batch_get (timed, one RESULT line, as every
-- runner prints), memory (CALLS gets sampling heap and RSS), pscan (CALLS parallel scans of
-- the pscan table with WARMUP = total_segments), setup (creates and fills the DynamoDB Local
-- tables). Run with LUA_PATH/LUA_CPATH pointing at lua/ and build/<variant>/ (bench.py does).
local lunamodb = require "lunamodb"
local core = require "lunamodb.core"
local A = lunamodb.attributes

local workload, calls, endpoint, datadir = arg[1], tonumber(arg[2]), arg[3], arg[4]
assert(workload and calls and endpoint and datadir,
  "usage: lunamodb_runner.lua WORKLOAD CALLS ENDPOINT DATADIR [WARMUP]")
local warmup = tonumber(arg[5] or "") or math.max(3, math.floor(calls / 10))

local function read(path)
  local f = assert(io.open(datadir .. "/" .. path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end
local meta = lunamodb.json.decode(read("meta.json"))

local function model(table_name)
  return lunamodb.Model{
    table_name = table_name, host = endpoint, region = "us-east-1",
    access_key_id = "bench", secret_access_key = "bench",
    attributes = {
      pk = A.Unicode{ hash_key = true },
      sk = A.Number{ range_key = true },
      name = A.Unicode{},
      email = A.Unicode{},
      score = A.Number{},
      ratio = A.Number{},
      active = A.Boolean{},
      tags = A.UnicodeSet{},
      created = A.UTCDateTime{},
      profile = A.Map{ fields = { city = A.Unicode{}, zip = A.Number{}, verified = A.Boolean{},
                                  level = A.Number{} } },
      history = A.List{ of = A.Number },
    },
  }
end
local Item = model(meta.table)

-- The item as native values: what every check below compares with.
local proto = Item:from_dynamodb(read("item.json"))
assert(proto.score == 31337 and proto.ratio == 0.7315)
assert(math.type == nil and proto.score % 1 == 0 or math.type(proto.score) == "integer")
assert(lunamodb.datetime("2024-05-17T09:26:53.123456+0000") == proto.created)
assert(proto.tags == lunamodb.set{ "admin", "beta", "engines" } and proto.history[5] == 30)

local function same(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" or getmetatable(a) ~= getmetatable(b) then return false end
  local mt = getmetatable(a)
  if mt and mt.__eq then return false end            -- sets, datetimes: == already said no
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
local function check_item(got, sk)
  local want = proto:to_table()
  want.sk = sk
  local t = got:to_table()
  for k, v in pairs(want) do
    if not same(v, t[k]) then error(("decoded %s differs from the item: %s"):format(k, tostring(t[k])), 2) end
  end
end

local function page_items()
  local list = {}
  for i, wire in ipairs(lunamodb.json.decode(read("page.json"))) do list[i] = Item:from_dynamodb(wire) end
  return list
end

-- One call of each workload; returns the items it stands for. The first call checks the values.
local PK = meta.pk
local checked = false
local step = {}

function step.put()
  assert(proto:save())
  return 1
end

function step.get()
  local it = assert(Item:get(PK, meta.get_sk))
  if not checked then check_item(it, meta.get_sk); checked = true end
  return 1
end

local target = Item:get_ref(PK, meta.update_sk)
function step.update()
  assert(target:update{ Item.score:set(Item.score + 1), Item.name:set(meta.new_name) })
  if not checked then
    assert(target.name == meta.new_name and target.score > 31337 and target.sk == meta.update_sk)
    assert(target.tags == proto.tags and target.created == proto.created)
    checked = true
  end
  return 1
end

-- The update target is skipped: against DynamoDB Local it holds the updated values.
local function read_all(results)
  local n = 0
  for it in results do
    n = n + 1
    if not checked and it.sk ~= meta.update_sk then check_item(it, it.sk) end
  end
  checked = true
  return n
end

function step.query()
  local n = read_all(Item:query(PK))
  assert(n == 1000, n)
  return n
end

function step.scan()
  local n = read_all(Item:scan())
  assert(n == 1000, n)
  return n
end

local batch_items
function step.batch_write()
  batch_items = batch_items or { (table.unpack or unpack)(page_items(), 1, 25) }
  assert(Item:batch_write(function(b)
    for i = 1, #batch_items do b:save(batch_items[i]) end
  end))
  return #batch_items
end

local keys = {}
for i = 1, 100 do keys[i] = { PK, i } end
function step.batch_get()
  local n = read_all(Item:batch_get(keys))
  assert(n == 100, n)
  return n
end

local function result(fields)
  local parts = {}
  for _, k in ipairs({ "workload", "items", "requests", "cpu_us_per_item", "wall_us_per_item",
                       "segments", "wall_us_per_scan", "samples", "heap_kb", "rss_kb" }) do
    local v = fields[k]
    if v ~= nil then
      local text = type(v) == "string" and ('"' .. v .. '"') or type(v) == "table"
        and ("[" .. table.concat(v, ",") .. "]") or (v % 1 == 0 and ("%d"):format(v) or ("%.4f"):format(v))
      parts[#parts + 1] = '"' .. k .. '":' .. text
    end
  end
  io.write("RESULT {", table.concat(parts, ","), "}\n")
end

local function rss_kb()
  local f = assert(io.open("/proc/self/statm"))
  local pages = f:read("*n"); pages = f:read("*n")    -- the second field: resident pages
  f:close()
  return pages * 4
end

if step[workload] then
  local fn = step[workload]
  for _ = 1, warmup do fn() end
  -- the set-up's garbage (the page decoded for the batches, the warm-up's) is collected
  -- before timing: otherwise a short timed section pays for it
  collectgarbage()
  collectgarbage()
  local items = 0
  local c0, w0 = os.clock(), core.monotonic_us()
  for _ = 1, calls do items = items + fn() end
  local cpu, wall = (os.clock() - c0) * 1e6, core.monotonic_us() - w0
  result { workload = workload, items = items, requests = warmup + calls,
           cpu_us_per_item = cpu / items, wall_us_per_item = wall / items }

elseif workload == "memory" then
  -- CALLS gets; heap (after a full collection, so it is what stays alive) and RSS sampled
  -- ten times, after a warm-up of one tenth.
  local heap, rss = {}, {}
  local every = math.floor(calls / 10)
  local function sample()
    collectgarbage(); collectgarbage()
    heap[#heap + 1] = math.floor(collectgarbage("count"))
    rss[#rss + 1] = rss_kb()
  end
  for i = 1, calls do
    step.get()
    if i % every == 0 then sample() end
  end
  result { workload = "memory", items = calls, requests = calls, samples = every,
           heap_kb = heap, rss_kb = rss }

elseif workload == "pscan" then
  local P = model(meta.pscan_table)
  local segments = warmup
  local expect = P:count()
  local function once()
    local n = 0
    for _ in P:parallel_scan{ total_segments = segments } do n = n + 1 end
    assert(n == expect, n)
  end
  once()
  local w0 = core.monotonic_us()
  for _ = 1, calls do once() end
  result { workload = "pscan", items = expect * calls, segments = segments,
           wall_us_per_scan = (core.monotonic_us() - w0) / calls }

elseif workload == "setup" then
  -- The DynamoDB Local tables: the page (1,000 items under one pk, so a Query or a Scan of the
  -- table is that page) and CALLS items spread over 64 pks for the parallel scan.
  local P = model(meta.pscan_table)
  for _, M in ipairs({ Item, P }) do
    if M:exists() then assert(M:delete_table{ wait = true }) end
    assert(M:create_table{ billing_mode = "PAY_PER_REQUEST", wait = true })
  end
  local page = page_items()
  assert(Item:batch_write(function(b) for _, it in ipairs(page) do b:save(it) end end))
  assert(P:batch_write(function(b)
    for i = 1, calls do
      local it = page[(i - 1) % #page + 1]:to_table()
      it.pk, it.sk = ("p#%02d"):format(i % 64), i
      b:save(P.new(it))
    end
  end))
  assert(Item:count() == #page and P:count() == calls)
  result { workload = "setup", items = #page + calls }

else
  error("unknown workload " .. tostring(workload))
end
