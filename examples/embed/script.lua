-- examples/embed/script.lua: run by examples/embed/main.c, a C host that embeds
-- Lua 5.4 with lunamodb linked statically and drives lunamodb from its own loop.
--
-- The script sets things up (a table, blocking: no task runs yet), spawns 20
-- lunamodb tasks that each save and read back an item, and returns two
-- functions to the host:
--   tick()   -> true while tasks remain: one scheduler.step(0), which never waits
--   finish() -> summary, all_ok: deletes the table and checks every task's result
-- Needs LUNAMODB_TEST_ENDPOINT (a DynamoDB Local; scripts/with-ddb-local.sh sets it).
local lunamodb = require "lunamodb"
local scheduler = require "lunamodb.scheduler"
local A = lunamodb.attributes

local endpoint = os.getenv("LUNAMODB_TEST_ENDPOINT")
if not endpoint or endpoint == "" then
  error("LUNAMODB_TEST_ENDPOINT is not set: run under scripts/with-ddb-local.sh", 0)
end

local TASKS = 20
local table_name = string.format("lunamodb_embed_%d_%d_%d", os.time(), math.random(1e6),
  math.floor(os.clock() * 1e6))

local Item = lunamodb.Model{
  table_name = table_name,
  host = endpoint,
  region = "us-east-1",
  access_key_id = "embed",
  secret_access_key = "embed",
  billing_mode = "PAY_PER_REQUEST",
  attributes = {
    id = A.Unicode{ hash_key = true },
    n = A.Number{},
  },
}

-- Outside a task, lunamodb calls block: fine for setup before the loop starts.
assert(Item:create_table{ wait = true })

-- The same model code, now inside tasks: each call yields while its request runs.
local function work(i)
  local id = string.format("item-%02d", i)
  assert(Item.new{ id = id, n = i }:save())
  local got = assert(Item:get(id, { consistent_read = true }))
  if got.n ~= i then
    error(string.format("%s: read back n=%s, wanted %d", id, tostring(got.n), i), 0)
  end
  return id
end

local tasks = {}
for i = 1, TASKS do tasks[i] = scheduler.spawn(work, i) end

local function tick()
  return scheduler.step(0) > 0
end

local function finish()
  local ok_count, failures = 0, {}
  for i, t in ipairs(tasks) do
    local ok, value = t:result()
    if ok then
      ok_count = ok_count + 1
    else
      failures[#failures + 1] = string.format("task %d: %s", i, tostring(value))
    end
  end
  local deleted, err = Item:delete_table{ wait = true }
  if not deleted then failures[#failures + 1] = "delete_table: " .. tostring(err) end
  local summary = string.format("embed: %d/%d tasks succeeded", ok_count, TASKS)
  if #failures > 0 then summary = summary .. "\n" .. table.concat(failures, "\n") end
  return summary, #failures == 0
end

return tick, finish
