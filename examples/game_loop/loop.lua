-- examples/game_loop/loop.lua: a fixed-timestep 60 Hz game loop that keeps its frame rate
-- while hundreds of lunamodb tasks read and write DynamoDB.
--
--   local loop = dofile("examples/game_loop/loop.lua")   -- or require "examples.game_loop.loop"
--   local report = loop.run{ endpoint = "http://127.0.0.1:8000" }
--   print(loop.summary(report))
--
-- examples/game_loop/main.lua runs it as a script; spec/integration/game_loop_spec.lua runs
-- it and checks the report.
--
-- The game: players log in over the first second (a few per frame), each one a lunamodb
-- task that plays a session: save the new player and read it back, then a few actions with
-- think time between them (award points and move, both conditional updates; a level-up the
-- condition must refuse; reload the player; query its zone), then log out (one more
-- conditional update). Every few frames the game also spawns a one-off leaderboard query.
-- All of it is ordinary blocking-style model code; inside a task each call yields while its
-- request is out.
--
-- Each frame: wait for the frame's deadline, do the game's own work, spawn that frame's
-- tasks, then call lunamodb.step(0) exactly once. step(0) never waits for the network: it
-- resumes the tasks whose request finished (or whose think time ran out), lets them send
-- their next request, and returns. What the loop measures per tick, to tell lunamodb's
-- delay from the machine's:
--   * step time: how long step(0) took, as CPU time of this process (os.clock, microseconds;
--     time the OS gave to other processes, such as DynamoDB Local, is not counted) and as
--     wall time (the core's monotonic clock, whole milliseconds: it would show step(0)
--     blocking, e.g. in a poll, which CPU time cannot).
--   * waits: whether step(0) ever slept or waited (Linux: the thread's voluntary context
--     switches during step(0); being preempted is not one), however busy the machine is.
--   * lateness: how late the tick started versus its schedule (start + n * 16.67 ms): the
--     sleep's wake-up jitter plus whatever the previous frame overran.
--
-- What a tick costs: step(0) spends CPU on each task it resumes (decoding the last response,
-- building, signing and sending the next request: roughly 50-250 us per request on Lua 5.4,
-- more for a page of query results) and next to nothing on tasks that wait. So its time
-- follows how many requests complete per tick, not how many are out: hundreds of tasks in
-- flight are cheap as long as they do not all become ready in the same tick. The spawn rate
-- (logins_per_tick) and the think times set that. A burst is capped anyway by step's budget
-- (step(0, step_budget_ms)): once that much time is spent, the tasks still ready wait for the
-- next frame, so a frame never pays for more than its share.
local lunamodb = require "lunamodb"
local core = require "lunamodb.core"
local curl_transport = require "lunamodb.transport.curl"
local A = lunamodb.attributes

local format, concat, sort = string.format, table.concat, table.sort
local floor, min, max, ceil = math.floor, math.min, math.max, math.ceil
local os_clock = os.clock
local monotonic_ms, sleep_ms = core.monotonic_ms, core.sleep_ms
local task_sleep = lunamodb.scheduler.sleep

local M = {}

M.FRAME_MS = 1000 / 60
M.DEFAULTS = {
  players = 300,           -- sessions, one lunamodb task each
  logins_per_tick = 5,     -- so all players are in after players / logins_per_tick frames
  zones = 10,
  actions = 4,             -- per session, between login and logout
  think_ms = 900,          -- mean think time before each action (spread over 0.5x..1.5x)
  leaderboard_every = 6,   -- ticks between one-off leaderboard queries
  entities = 2000,         -- the game's own per-frame work: move this many particles
  step_budget_ms = 4,      -- lunamodb's share of a frame: step(0, budget) stops resuming
                           -- tasks after this long (false: no budget)
  drain_seconds = 30,      -- then sessions still running are cancelled and reported
}

local MAX_LEVEL = 50       -- the refused level-up asks for this; every player stays at 1

-- p (0..1) of a sorted array.
local function percentile(sorted, p)
  if #sorted == 0 then return 0 end
  return sorted[max(1, ceil(p * #sorted))]
end

-- { p50, p99, max, n } of an array of numbers.
function M.stats_of(values)
  local sorted = {}
  for i = 1, #values do sorted[i] = values[i] end
  sort(sorted)
  return {
    p50 = percentile(sorted, 0.50), p99 = percentile(sorted, 0.99),
    max = sorted[#sorted] or 0, n = #sorted,
  }
end

-- Any table with send/sleep/poll/close is a transport: this one wraps the curl transport to
-- count HTTP requests and how many are out at once. The curl transport's send still parks
-- the task and the scheduler polls it, so nothing else changes.
local function counting_transport(counters)
  local inner = curl_transport.new()
  local t = {}
  function t.send(_, ...)
    counters.requests = counters.requests + 1
    counters.in_flight = counters.in_flight + 1
    if counters.in_flight > counters.peak_in_flight then
      counters.peak_in_flight = counters.in_flight
    end
    local sent_at = counters.tick
    local status, headers, body = inner:send(...)
    counters.in_flight = counters.in_flight - 1
    counters.request_ticks[#counters.request_ticks + 1] = counters.tick - sent_at
    return status, headers, body
  end
  function t.sleep(_, ms) return inner:sleep(ms) end
  function t.poll(_, ms) return inner:poll(ms) end
  function t.close() return inner:close() end
  return t
end

-- The calling thread's voluntary context switches so far (a sleep, or a poll that waits,
-- is one; preemption is not), or nil where /proc is missing.
local function voluntary_switches()
  local f = io.open("/proc/self/status", "r")
  if not f then return nil end
  local status = f:read("*a")
  f:close()
  return tonumber(status:match("\nvoluntary_ctxt_switches:%s*(%d+)"))
end

local function player_id(i) return format("p%04d", i) end
local function player_name(i) return format("player %d", i) end
local function zone_of(i, zones) return format("z%02d", (i - 1) % zones + 1) end

-- Deterministic per player and action, so a run can be replayed.
local function think_time(o, i, a)
  local spread = ((i * 7919 + a * 104729) % 1000) / 1000        -- 0 .. 1
  return floor(o.think_ms * (0.5 + spread))
end

------------------------------------------------------------------ the world

-- The game's own work, so a frame is not all waiting: move particles around a box.
local function new_world(n)
  local xs, ys, vxs, vys = {}, {}, {}, {}
  for i = 1, n do
    xs[i], ys[i] = i % 97, i % 89
    vxs[i], vys[i] = (i % 7) - 3, (i % 5) - 2
  end
  return { n = n, xs = xs, ys = ys, vxs = vxs, vys = vys }
end

local function simulate(world, dt)
  local xs, ys, vxs, vys = world.xs, world.ys, world.vxs, world.vys
  for i = 1, world.n do
    local x, y = xs[i] + vxs[i] * dt, ys[i] + vys[i] * dt
    if x < 0 or x > 100 then vxs[i] = -vxs[i] end
    if y < 0 or y > 100 then vys[i] = -vys[i] end
    xs[i], ys[i] = x, y
  end
end

------------------------------------------------------------------ the tasks

local function fail(fmt, ...)
  error(format(fmt, ...), 0)
end

-- A zone's leaderboard: its player count and top score. Players keep logging in while the
-- query runs, so the count is checked against bounds: at least those whose login had been
-- read back when the query started, at most those that began logging in.
local function query_zone(Player, zones, zone)
  local at_least = zones.stored[zone]
  local n, best = 0, -1
  for p in Player:query(zone, { consistent_read = true }) do
    if p.zone ~= zone then fail("query %s: got a player of %s", zone, tostring(p.zone)) end
    n = n + 1
    if p.score > best then best = p.score end
  end
  if n < at_least or n > zones.spawned[zone] then
    fail("query %s: %d players, expected %d to %d", zone, n, at_least, zones.spawned[zone])
  end
  return n, best
end

-- One player's session. Its player is written by this task alone, so every value read back
-- must be exactly what the session computed. Returns the player's final state.
local function session(o, Player, zones, i)
  local id, zone = player_id(i), zone_of(i, o.zones)
  local me = Player.new{ zone = zone, id = id, name = player_name(i), online = true }
  assert(me:save())
  local got = assert(Player:get(zone, id, { consistent_read = true }))
  if got.name ~= player_name(i) or got.score ~= 0 or got.level ~= 1 or got.online ~= true then
    fail("login %s: read back name=%s score=%s level=%s online=%s", id, tostring(got.name),
      tostring(got.score), tostring(got.level), tostring(got.online))
  end
  zones.stored[zone] = zones.stored[zone] + 1

  local score, x, y = 0, 0, 0
  local actions = { "award", "move", "denied", "load", "query" }
  for a = 1, o.actions do
    task_sleep(think_time(o, i, a))
    local kind = actions[(i + a) % #actions + 1]
    if kind == "award" then
      local points = (i + a) % 10 + 1
      score = score + points
      assert(me:update({ Player.score:add(points) }, { condition = Player.level:lt(MAX_LEVEL) }))
      if me.score ~= score then
        fail("award %s: score %s, expected %d", id, tostring(me.score), score)
      end
    elseif kind == "move" then
      local dx, dy = (i + a) % 5 - 2, a % 3 - 1
      x, y = x + dx, y + dy
      assert(me:update({ Player.x:add(dx), Player.y:add(dy) },
        { condition = Player.online:eq(true) }))
      if me.x ~= x or me.y ~= y then
        fail("move %s: at %s,%s, expected %d,%d", id, tostring(me.x), tostring(me.y), x, y)
      end
    elseif kind == "denied" then
      local ok, err = me:update({ Player.level:add(1) }, { condition = Player.level:ge(MAX_LEVEL) })
      if ok or not err:is("ConditionalCheckFailed") then
        fail("level-up %s: expected ConditionalCheckFailed, got %s", id,
          ok and "success" or tostring(err))
      end
    elseif kind == "load" then
      got = assert(Player:get(zone, id, { consistent_read = true }))
      if got.score ~= score or got.x ~= x or got.y ~= y then
        fail("load %s: score=%s x=%s y=%s, expected %d %d %d", id, tostring(got.score),
          tostring(got.x), tostring(got.y), score, x, y)
      end
    else
      query_zone(Player, zones, zone)
    end
  end

  -- Log out once: a second logout would fail its condition.
  assert(me:update({ Player.online:set(false) }, { condition = Player.online:eq(true) }))
  return { score = score, x = x, y = y }
end

------------------------------------------------------------------ the run

-- A task whose error nobody asked for makes step() raise it (lunamodb.scheduler's error
-- rule): the loop collects failures as results instead, so one bad request never stops it.
local function guarded(fn, ...)
  return pcall(fn, ...)
end

local function declare(o, client)
  return lunamodb.Model{
    table_name = o.table_name or format("lunamodb_game_loop_%d_%d", os.time(), math.random(1e6)),
    client = client,
    billing_mode = "PAY_PER_REQUEST",
    attributes = {
      zone = A.Unicode{ hash_key = true },
      id = A.Unicode{ range_key = true },
      name = A.Unicode{},
      online = A.Boolean{},
      x = A.Number{ default = 0 },
      y = A.Number{ default = 0 },
      score = A.Number{ default = 0 },
      level = A.Number{ default = 1 },
    },
  }
end

-- Reads every player back (blocking, after the loop) and compares with the final state the
-- sessions returned. Returns a list of mismatches and the number of players stored.
local function verify(Player, o, finals)
  local problems, stored = {}, 0
  for z = 1, o.zones do
    for p in Player:query(format("z%02d", z), { consistent_read = true }) do
      stored = stored + 1
      local want = finals[tonumber(p.id:sub(2))]
      if not want then
        problems[#problems + 1] = "a player whose session failed is stored: " .. p.id
      elseif p.score ~= want.score or p.x ~= want.x or p.y ~= want.y or p.level ~= 1
          or p.online ~= false then
        problems[#problems + 1] = format("%s: stored score=%s x=%s y=%s level=%s online=%s, "
          .. "expected %d %d %d 1 false", p.id, tostring(p.score), tostring(p.x), tostring(p.y),
          tostring(p.level), tostring(p.online), want.score, want.x, want.y)
      end
    end
  end
  return problems, stored
end

-- The loop itself. `pending` holds its unfinished tasks (M.run cancels them if it fails).
-- Returns the report (see M.run).
local function play(o, Player, counters, pending)
  local zones = { spawned = {}, stored = {} }
  for z = 1, o.zones do
    local zone = format("z%02d", z)
    zones.spawned[zone], zones.stored[zone] = 0, 0
  end
  local world = new_world(o.entities)

  local finals, failures = {}, {}
  local counts = { sessions = 0, sessions_ok = 0, leaderboards = 0, leaderboards_ok = 0 }
  local function spawn(kind, on_success, fn, ...)
    pending[#pending + 1] = { task = lunamodb.spawn(guarded, fn, ...), kind = kind,
      on_success = on_success }
    counts[kind] = counts[kind] + 1
  end

  -- Results of the tasks that finished during the last step.
  local function collect()
    local j = 0
    for k = 1, #pending do
      local p = pending[k]
      if p.task:done() then
        local ran, ok, value = p.task:result()
        if not ran then ok, value = false, ok end       -- cancelled: false, "cancelled"
        if ok then
          counts[p.kind .. "_ok"] = counts[p.kind .. "_ok"] + 1
          if p.on_success then p.on_success(value) end
        else
          failures[#failures + 1] = format("%s: %s", p.kind, tostring(value))
        end
      else
        j = j + 1
        pending[j] = p
      end
    end
    for k = j + 1, #pending do pending[k] = nil end
  end

  local step_cpu_ms, step_wall_ms, lateness_ms, alive_at, sent_at = {}, {}, {}, {}, {}
  local waits = voluntary_switches() and {} or nil
  local peak_alive, alive, next_player = 0, 0, 1
  local last_tick = ceil(o.players / o.logins_per_tick)
    + ceil((o.drain_seconds * 1000 + o.actions * o.think_ms * 1.5) / M.FRAME_MS)
  local start = monotonic_ms()
  local tick = 0
  while true do
    -- Fixed timestep: tick n is due at start + n frames; a late tick does not shift the rest.
    local due = start + tick * M.FRAME_MS
    local now = monotonic_ms()
    if now < due then
      sleep_ms(due - now)
      now = monotonic_ms()
    end
    tick = tick + 1
    counters.tick = tick
    lateness_ms[tick] = max(0, now - due)

    simulate(world, M.FRAME_MS / 1000)

    for _ = 1, o.logins_per_tick do
      if next_player > o.players then break end
      local i = next_player
      next_player = next_player + 1
      local zone = zone_of(i, o.zones)
      zones.spawned[zone] = zones.spawned[zone] + 1
      spawn("sessions", function(final) finals[i] = final end, session, o, Player, zones, i)
    end
    if tick % o.leaderboard_every == 0 and counts.sessions_ok < counts.sessions then
      spawn("leaderboards", nil, query_zone, Player, zones, format("z%02d", tick % o.zones + 1))
    end

    local switches0 = waits and voluntary_switches()
    local cpu0, wall0, requests0 = os_clock(), monotonic_ms(), counters.requests
    alive = lunamodb.step(0, o.step_budget_ms or nil)
    step_wall_ms[tick] = monotonic_ms() - wall0
    step_cpu_ms[tick] = (os_clock() - cpu0) * 1000
    if waits then waits[tick] = voluntary_switches() - switches0 end
    sent_at[tick] = counters.requests - requests0
    alive_at[tick] = alive
    if alive > peak_alive then peak_alive = alive end

    collect()
    if next_player > o.players and #pending == 0 then break end
    if tick >= last_tick then
      for k = 1, #pending do pending[k].task:cancel() end
      collect()
      failures[#failures + 1] = format("tasks still running after %d ticks: cancelled", tick)
      break
    end
  end
  local elapsed_ms = monotonic_ms() - start

  local problems, stored = verify(Player, o, finals)
  for _, p in ipairs(problems) do failures[#failures + 1] = "verify: " .. p end

  return {
    ticks = tick,
    elapsed_ms = elapsed_ms,
    -- ticks the elapsed time holds at 60 Hz (the first tick runs at 0 ms)
    expected_ticks = floor(elapsed_ms / M.FRAME_MS) + 1,
    sessions = counts.sessions, sessions_ok = counts.sessions_ok,
    leaderboards = counts.leaderboards, leaderboards_ok = counts.leaderboards_ok,
    requests = counters.requests,
    peak_in_flight = counters.peak_in_flight,
    request_ticks = counters.request_ticks,
    peak_alive = peak_alive,
    players_stored = stored,
    step_cpu_ms = step_cpu_ms,
    step_wall_ms = step_wall_ms,
    lateness_ms = lateness_ms,
    alive = alive_at,
    sent = sent_at,
    step_waits = waits,
    failures = failures,
  }
end

-- loop.run(opts) -> report
-- opts: endpoint (required: a DynamoDB Local URL; the run creates and deletes a table),
--       table_name, and the knobs of M.DEFAULTS.
-- report: ticks, expected_ticks, elapsed_ms, sessions, sessions_ok, leaderboards,
--       leaderboards_ok, requests, peak_in_flight (HTTP requests out at once), peak_alive
--       (lunamodb tasks alive at once), request_ticks (per request: ticks from its send to
--       its task's resumption), players_stored; per tick: step_cpu_ms, step_wall_ms,
--       lateness_ms, alive, sent (requests sent during the step), step_waits (voluntary
--       context switches during the step; nil without /proc); failures (messages; empty
--       when every task and every check passed).
function M.run(opts)
  local o = {}
  for k, v in pairs(M.DEFAULTS) do o[k] = v end
  for k, v in pairs(opts or {}) do o[k] = v end
  if type(o.endpoint) ~= "string" or o.endpoint == "" then
    error("game_loop: opts.endpoint (a DynamoDB Local URL) is required", 2)
  end
  -- tick: the loop's current tick; request_ticks: per request, the ticks it took
  local counters = { requests = 0, in_flight = 0, peak_in_flight = 0, tick = 0, request_ticks = {} }
  -- DynamoDB Local checks no signature but wants alphanumeric access keys.
  local client = lunamodb.Client.new{
    host = o.endpoint, region = "us-east-1",
    access_key_id = "gameloop", secret_access_key = "gameloop",
    transport = counting_transport(counters),
  }
  local Player = declare(o, client)

  -- Setup blocks (no task runs yet): fine before the first frame.
  assert(Player:create_table{ wait = true })
  local pending = {}
  local ok, report = pcall(play, o, Player, counters, pending)
  if not ok then
    -- the scheduler outlives this run: leave no task behind on a table about to go away
    for k = 1, #pending do pending[k].task:cancel() end
  end
  local deleted, err = Player:delete_table{ wait = true }
  client:close()
  if not ok then error(report, 0) end
  if not deleted then report.failures[#report.failures + 1] = "delete_table: " .. tostring(err) end
  return report
end

-- How many ticks' step(0) slept or waited (nil when it was not measured).
function M.ticks_with_waits(r)
  if not r.step_waits then return nil end
  local n = 0
  for tick = 1, #r.step_waits do
    if r.step_waits[tick] > 0 then n = n + 1 end
  end
  return n
end

-- A few lines for people: what ran, and how long lunamodb held the loop.
function M.summary(r)
  local cpu, wall = M.stats_of(r.step_cpu_ms), M.stats_of(r.step_wall_ms)
  local late, rt = M.stats_of(r.lateness_ms), M.stats_of(r.request_ticks)
  local lines = {
    format("ticks:     %d in %.2f s (%d at 60 Hz)", r.ticks, r.elapsed_ms / 1000, r.expected_ticks),
    format("tasks:     %d/%d sessions and %d/%d leaderboard queries succeeded", r.sessions_ok,
      r.sessions, r.leaderboards_ok, r.leaderboards),
    format("requests:  %d; at most %d in flight and %d tasks alive at once; each took %d "
      .. "ticks (p50), %d (max)", r.requests, r.peak_in_flight, r.peak_alive, rt.p50, rt.max),
    format("stored:    %d players, %s", r.players_stored,
      #r.failures == 0 and "as their sessions left them" or "checked: see the failures"),
    format("step(0):   cpu p50 %.2f ms, p99 %.2f ms, max %.2f ms; wall p99 %.0f ms, max %.0f ms",
      cpu.p50, cpu.p99, cpu.max, wall.p99, wall.max),
    r.step_waits and format("waits:     %d ticks with a wait inside step(0)", M.ticks_with_waits(r))
      or "waits:     not measured (no /proc/self/status)",
    format("lateness:  p50 %.1f ms, p99 %.1f ms, max %.1f ms", late.p50, late.p99, late.max),
  }
  if #r.failures > 0 then
    lines[#lines + 1] = format("failures:  %d", #r.failures)
    for k = 1, min(#r.failures, 10) do lines[#lines + 1] = "  " .. r.failures[k] end
  end
  return concat(lines, "\n")
end

return M
