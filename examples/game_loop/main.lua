-- examples/game_loop/main.lua: a 60 Hz game loop that keeps ticking while hundreds of
-- lunamodb tasks read and write DynamoDB (the loop itself is examples/game_loop/loop.lua).
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/lua5.4/?.so;;' \
--   LUNAMODB_TEST_ENDPOINT=http://127.0.0.1:8000 lua5.4 examples/game_loop/main.lua \
--     [players [think_ms]]
--
-- It creates a table, lets `players` (default 300) log in and play short sessions (think_ms:
-- mean pause between actions, default 900), checks every result and the stored items,
-- deletes the table and prints what happened; exits 1 if anything was wrong. Meant for
-- DynamoDB Local (scripts/with-ddb-local.sh starts one and sets the endpoint): it sends a
-- few thousand requests.
local here = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
local loop = dofile(here .. "/loop.lua")

local endpoint = os.getenv("LUNAMODB_TEST_ENDPOINT")
if not endpoint or endpoint == "" then
  io.stderr:write("LUNAMODB_TEST_ENDPOINT is not set: run under scripts/with-ddb-local.sh\n")
  os.exit(2)
end

local report = loop.run{
  endpoint = endpoint,
  players = tonumber(arg and arg[1]),
  think_ms = tonumber(arg and arg[2]),
}
print(loop.summary(report))
os.exit(#report.failures == 0 and 0 or 1)
