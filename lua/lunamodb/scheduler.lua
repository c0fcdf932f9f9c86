-- lunamodb.scheduler: coroutine tasks that make lunamodb calls non-blocking.
--
--   local scheduler = require "lunamodb.scheduler"
--   local t = scheduler.spawn(function(name) return client:call("DescribeTable", { TableName = name }) end, "users")
--   scheduler.run()                       -- a blocking host: step until no task is left
--   -- or, in a game loop, once per frame:  scheduler.step(0)
--   print(t:result())                     -- true, out | true, nil, err | false, error
--
-- DESIGN.md §1: "When the caller is a coroutine run by lunamodb's scheduler, waiting yields;
-- otherwise it blocks." Every wait of lunamodb goes through a transport (send, sleep); the curl
-- transport asks scheduler.current() and, inside a task, parks the task here instead of
-- blocking. The same code therefore blocks in a plain script and yields in a task.
--
-- One scheduler per Lua state (module-level state, no globals); under OpenResty, one per nginx
-- request (or timer), since the requests of a worker share its Lua state but each must drive
-- only its own tasks. It never busy-waits: with
-- nothing ready, step waits in the transports' poll (curl_multi_poll) or, when only sleeps are
-- pending, sleeps until the nearest deadline; never longer than the timeout it was given.
--
-- scheduler.spawn(fn, ...) -> task
--     Creates a task running fn(...) in a new coroutine. The task does not run yet: it starts at
--     the next scheduler.step (so spawn never runs user code, and a task spawned inside a step,
--     e.g. by another task, starts at the following step).
-- scheduler.step([timeout_ms = 0[, budget_ms]]) -> number of tasks still alive
--     0. moves the transports' transfers forward without waiting, so responses that arrived
--        since the last step count as finished now;
--     1. resumes, once each, every task that is ready: new, its request finished, its sleep
--        elapsed, or it yielded with a plain coroutine.yield() (a "let the others run").
--        With budget_ms (a game loop's share of the frame), it stops resuming once that much
--        time has passed (at least one task runs); the rest run first at the next step;
--     2. polls every transport some task is waiting on, waiting at most timeout_ms for I/O
--        (0: never waits; never longer than the nearest sleep deadline; not at all when a task
--        is already ready again); with no request in flight but sleepers, sleeps instead.
--     Tasks whose request completed during the poll are resumed by the next step. Raises when
--     called from inside a task or re-entrantly.
-- scheduler.io_wait([out]) -> timeout_ms, n, out
--     For a host with its own event loop: what to wait on before the next step(0). out (a table,
--     reused if given) gets n sockets as pairs out[2i-1] = fd, out[2i] = events (1 readable,
--     2 writable, 3 both) of the transports tasks wait on; timeout_ms is the longest the host may
--     wait before stepping again: 0 when a task is ready (step now), -1 when waiting cannot help
--     lunamodb (no task alive, or those left only wait for each other).
--     When a socket is ready or the timeout has passed, call step(0). Transports without
--     sockets/timeout methods are looked at again every MULTI_SLICE_MS.
-- scheduler.run()
--     Steps until no task is left (a blocking host). Raises "deadlock" when tasks are left that
--     only wait for each other.
-- scheduler.current() -> the running lunamodb task, or nil (main thread, or a coroutine that is
--     not a task: waits there block).
-- scheduler.wait_request(transport, req)
--     For transports. Inside a task: parks it until req:done() and returns (the scheduler polls
--     transport meanwhile). Outside: blocks, calling transport:poll(ms) until req:done().
--     Transport contract: transport:poll(timeout_ms) moves its I/O forward, waiting at most
--     timeout_ms; req:done() -> boolean; req:release() frees/aborts the request (on cancel).
--     The transport is watched (polled by step) only while a task waits on one of its requests.
-- scheduler.sleep(ms)
--     Inside a task: parks it until ms have elapsed on the monotonic clock (ms <= 0: until the
--     next step). Outside: scheduler.host_sleep(ms).
-- scheduler.host_sleep(ms)
--     The blocking wait used outside tasks and by step when only sleepers are pending: ngx.sleep
--     where an OpenResty request or timer may yield (never stalls the worker), else
--     core.sleep_ms.
-- scheduler.join(tasks) -> true | false, err
--     Waits until every task of the array is done (yields inside a task; outside, drives the
--     scheduler like run() does) and returns false plus the error of the first task, in array
--     order, that failed or was cancelled, else true. Marks all of them as asked about (see the
--     error rule) before waiting.
-- scheduler.wrap(fn)
--     Like coroutine.wrap, for generators/iterators built on coroutines: lunamodb waits inside
--     fn suspend the enclosing task (they would otherwise block, because the generator's
--     coroutine is not a task); other yields of fn return to the caller as with coroutine.wrap.
--
-- task:done()   -> true once the task finished, failed or was cancelled
-- task:status() -> "new" | "ready" | "running" | "waiting" | "sleeping" | "joining"
--                  | "finished" | "failed" | "cancelled"
-- task:result() -> true, fn's results | false, err      (like pcall)
--     err is the value fn raised, or the string "cancelled". On an unfinished task it waits:
--     inside another task it yields until the task is done; outside any task it drives the
--     scheduler (steps) until then. Calling it marks the task as asked about. It raises when
--     called on an unfinished task from a coroutine that is not a task while a step runs (a
--     plain coroutine.wrap inside a task: use scheduler.wrap there).
-- task:cancel() -> true if the task was stopped, false if it was already done
--     Stops the task where it is parked: a request it waits on is released (libcurl aborts the
--     transfer), a sleep is dropped; its coroutine is closed (Lua 5.4 runs its to-be-closed
--     variables). A task may cancel itself (the call does not return). Tasks waiting for it in
--     task:result() get false, "cancelled". Tasks it spawned keep running.
-- task.traceback: for a failed task, the error message with the task's stack.
--
-- The error rule: an error raised inside a task is never lost.
--   * It is kept on the task: task:result() returns false, err (err as raised, unchanged).
--   * Whoever asks for it handles it: if task:result() or scheduler.join() was called for the
--     task (before it failed, e.g. a task waiting for it, or by the end of the step in which it
--     failed), nothing else happens.
--   * Otherwise the step in which it failed raises it, at the end of the step (every ready task
--     was resumed and the transports polled first, so the scheduler stays consistent and the
--     host may pcall(scheduler.step) and go on). A string error is raised as task.traceback (the
--     message plus the task's stack); any other value (a lunamodb.Error, a table) is raised
--     unchanged. One error per step: when several tasks failed unobserved in one step, the next
--     steps raise the others (unless asked about meanwhile). run() and an outside task:result()
--     drive step, so they raise the same way.
--   So a fire-and-forget task that raises surfaces in the host's loop, and code that collects
--   results (spawn then join/result) gets false, err instead.
--   Cancellation is not an error: it is never raised by step.
--
-- Hosts (issue 7): a game loop calls step(0) (or step(ms) with the frame's spare time) once per
-- tick; a blocking script calls run() or task:result(). Any transport with poll/done/release
-- can be waited on. Several transports with requests in flight at once are polled in turn in
-- short slices (MULTI_SLICE_MS), since one curl multi handle cannot wait on another's sockets:
-- clients that share one transport (Client.new{ transport = t }) wait most efficiently.

local core = require "lunamodb.core"

local setmetatable, getmetatable, type, tostring, select, error, pcall, next, pairs =
  setmetatable, getmetatable, type, tostring, select, error, pcall, next, pairs
local remove = table.remove
local co_create, co_resume, co_yield, co_running, co_status =
  coroutine.create, coroutine.resume, coroutine.yield, coroutine.running, coroutine.status
local co_close = coroutine.close                  -- Lua 5.4 only
local traceback = debug and debug.traceback
local unpack = table.unpack or unpack             -- luacheck: ignore (LuaJIT)
local floor, ceil, min = math.floor, math.ceil, math.min
local monotonic_ms, monotonic_us, core_sleep_ms = core.monotonic_ms, core.monotonic_us, core.sleep_ms
local ngx = ngx                                   -- luacheck: ignore (OpenResty's; nil elsewhere)

-- A blocking sleep would stall an nginx worker: in the OpenResty phases where the request
-- (or timer) may yield, waiting goes through ngx.sleep instead. Elsewhere (plain Lua, an
-- embedding host, nginx's init phases) it blocks.
local NGX_YIELDABLE = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true, preread = true,
}
local function sleep_ms(ms)
  if ngx and ngx.sleep and NGX_YIELDABLE[ngx.get_phase()] then
    ngx.sleep(ms / 1000)
  else
    core_sleep_ms(ms)
  end
end

local function pack(...)
  return { n = select("#", ...), ... }
end

local M = {}
M.host_sleep = sleep_ms

-- Longest single wait of run() and of an outside task:result() (they loop anyway).
local RUN_WAIT_MS = 1000
-- With several transports in flight, each round of polling waits about this long in total.
M.MULTI_SLICE_MS = 10
local MAX_WAIT_MS = 2 ^ 30

local WAIT = setmetatable({}, { __tostring = function() return "lunamodb.scheduler.WAIT" end })

------------------------------------------------------------------ state

local owner = setmetatable({}, { __mode = "k" })  -- wrap() coroutine -> task it runs for

-- One scheduler's state. Every task points to the state it belongs to (t.S).
local function new_state()
  return {
    by_co = {},            -- task coroutine -> task (alive tasks only)
    ready = {}, spare = {}, -- tasks to resume at the next step (FIFO)
    waiting = {},          -- tasks parked on a request (may hold stale entries)
    sleepers = {},         -- tasks parked on a deadline (may hold stale entries)
    watched = {}, nwatched = 0, -- transport -> tasks waiting on it
    unreported = {},       -- failed tasks nobody asked about yet
    alive = 0, njoining = 0,
    stepping = false,
  }
end

local shared_state = new_state()
-- OpenResty: ngx.ctx (one table per request or timer) -> that request's state; weak, so a
-- finished request's state goes with it.
local request_states = setmetatable({}, { __mode = "k" })
local NGX_NO_REQUEST = { init = true, init_worker = true, exit_worker = true }

-- The state of the running context: the request's under nginx, else the one shared state.
local function state()
  if ngx and not NGX_NO_REQUEST[ngx.get_phase()] then
    local ctx = ngx.ctx
    local S = request_states[ctx]
    if not S then
      S = new_state()
      request_states[ctx] = S
    end
    return S
  end
  return shared_state
end
M.context = state

local Task = {}
Task.__index = Task
Task.__name = "lunamodb.task"

local function watch(S, transport)
  local watched = S.watched
  local n = watched[transport]
  if n then
    watched[transport] = n + 1
  else
    watched[transport] = 1
    S.nwatched = S.nwatched + 1
  end
end

local function unwatch(S, transport)
  local watched = S.watched
  local n = watched[transport]
  if n == 1 then
    watched[transport] = nil
    S.nwatched = S.nwatched - 1
  elseif n then
    watched[transport] = n - 1
  end
end

local function make_ready(t)
  t.state = "ready"
  local ready = t.S.ready
  ready[#ready + 1] = t
end

local function finish(t, state_name, ...)
  local S = t.S
  t.state = state_name
  t.res = pack(...)
  S.by_co[t.co] = nil
  S.alive = S.alive - 1
  local joiners = t.joiners
  if joiners then
    t.joiners = nil
    for i = 1, #joiners do
      local j = joiners[i]
      if j.state == "joining" and j.joining == t then
        j.joining = nil
        S.njoining = S.njoining - 1
        make_ready(j)
      end
    end
  end
end

local function safe_tostring(v)
  local ok, s = pcall(tostring, v)
  return ok and s or "(error object)"
end

local function resume_task(t)
  local co = t.co
  t.state = "running"
  local res
  local args = t.args
  if args then
    t.args = nil
    res = pack(co_resume(co, unpack(args, 1, args.n)))
  else
    res = pack(co_resume(co))
  end
  if co_status(co) == "dead" then
    if res[1] then
      finish(t, "finished", unpack(res, 1, res.n))
    else
      local err = res[2]
      local msg = type(err) == "string" and err or safe_tostring(err)
      t.traceback = traceback and traceback(co, msg) or msg
      finish(t, "failed", false, err)
      local unreported = t.S.unreported
      if not t.observed then unreported[#unreported + 1] = t end
    end
    return
  end
  local st = t.state
  if st == "running" then
    make_ready(t)                 -- a plain coroutine.yield(): run again at the next step
  elseif st == "cancelling" then
    if co_close then pcall(co_close, co) end
    finish(t, "cancelled", false, "cancelled")
  end
  -- "waiting", "sleeping", "joining", "ready" (sleep(0)): parked by the scheduler already
end

-- Moves tasks whose request is done or whose deadline passed to the ready queue;
-- drops stale entries. Returns the nearest pending deadline (or nil).
local function promote(S, now)
  local waiting, sleepers = S.waiting, S.sleepers
  local n, j = #waiting, 0
  for i = 1, n do
    local t = waiting[i]
    if t.state == "waiting" then
      if t.req:done() then
        unwatch(S, t.transport)
        t.req, t.transport = nil, nil
        make_ready(t)
      else
        j = j + 1
        waiting[j] = t
      end
    end
  end
  for i = j + 1, n do waiting[i] = nil end

  local nearest
  n, j = #sleepers, 0
  for i = 1, n do
    local t = sleepers[i]
    if t.state == "sleeping" then
      local d = t.deadline
      if d <= now then
        t.deadline = nil
        make_ready(t)
      else
        j = j + 1
        sleepers[j] = t
        if not nearest or d < nearest then nearest = d end
      end
    end
  end
  for i = j + 1, n do sleepers[i] = nil end
  return nearest
end

local function any_request_done(S)
  local waiting = S.waiting
  for i = 1, #waiting do
    local t = waiting[i]
    if t.state == "waiting" and t.req:done() then return true end
  end
  return false
end

local function poll_transports(S, wait)
  local watched, nwatched = S.watched, S.nwatched
  if nwatched == 1 then
    local transport = next(watched)
    transport:poll(wait)
    return
  end
  for transport in pairs(watched) do transport:poll(0) end
  if wait <= 0 or any_request_done(S) then return end
  local deadline = monotonic_ms() + wait
  local slice = M.MULTI_SLICE_MS / nwatched
  slice = slice < 1 and 1 or floor(slice)
  while true do
    for transport in pairs(watched) do
      local left = deadline - monotonic_ms()
      if left <= 0 then return end
      transport:poll(min(slice, ceil(left)))
    end
    if any_request_done(S) then return end
  end
end

-- Resumes the tasks of batch in order; with deadline_us, stops once it has passed and
-- returns the index of the first task left and the last one (else nil). batch[1..n] is
-- a sequence on entry; resumed entries are cleared.
local function resume_batch(batch, deadline_us)
  local n = #batch
  for i = 1, n do
    local t = batch[i]
    batch[i] = nil
    local s = t.state
    if s == "ready" or s == "new" then resume_task(t) end
    if deadline_us and i < n and monotonic_us() >= deadline_us then return i + 1, n end
  end
  return nil
end

local function step(S, timeout, budget_ms)
  -- Responses that arrived since the last step resume their tasks now, not a step later.
  if S.nwatched > 0 then
    for transport in pairs(S.watched) do transport:poll(0) end
  end
  local now = monotonic_ms()
  promote(S, now)

  local batch = S.ready
  S.ready = S.spare
  local left, n = resume_batch(batch, budget_ms and monotonic_us() + budget_ms * 1000)
  if left then
    -- Out of budget: the tasks not resumed go first at the next step, in their order,
    -- before those made ready during this one. (#batch is unreliable here: its head is nil.)
    local k = 0
    for i = left, n do
      k = k + 1
      batch[k] = batch[i]
      batch[i] = nil
    end
    local later = S.ready
    for i = 1, #later do
      batch[k + i] = later[i]
      later[i] = nil
    end
    S.ready, S.spare = batch, later
  else
    S.spare = batch
  end

  now = monotonic_ms()
  local nearest = promote(S, now)
  local wait = timeout
  if S.alive == 0 or #S.ready > 0 then wait = 0 end
  if nearest then
    local until_deadline = ceil(nearest - now)
    if until_deadline < wait then wait = until_deadline end
  end
  if wait < 0 then wait = 0 end
  if S.nwatched > 0 then
    poll_transports(S, wait)
  elseif nearest and wait > 0 then
    sleep_ms(wait)
  end
end

-- Raises the oldest error nobody asked about (see the error rule), if any.
local function report(S)
  local unreported = S.unreported
  while #unreported > 0 do
    local t = remove(unreported, 1)
    if not t.observed then
      t.observed = true
      local err = t.res[2]
      if type(err) == "string" then error(t.traceback, 0) end
      error(err, 0)
    end
  end
end

local function check_not_stepping(S, what)
  if S.stepping then
    error("lunamodb.scheduler: " .. what .. " cannot be called from inside a task "
      .. "or from inside scheduler.step", 3)
  end
end

local function deadlocked(S)
  return S.alive > 0 and S.njoining == S.alive
end

------------------------------------------------------------------ public API

function M.current()
  local co = co_running()
  if not co then return nil end                 -- LuaJIT's main thread
  return state().by_co[co] or owner[co]
end

function M.spawn(fn, ...)
  if type(fn) ~= "function" then
    error("lunamodb.scheduler.spawn: fn must be a function (got " .. type(fn) .. ")", 2)
  end
  local S = state()
  local co = co_create(fn)
  local t = setmetatable({ co = co, args = pack(...), state = "new", S = S }, Task)
  S.by_co[co] = t
  S.alive = S.alive + 1
  local ready = S.ready
  ready[#ready + 1] = t
  return t
end

function M.step(timeout_ms, budget_ms)
  if timeout_ms == nil then
    timeout_ms = 0
  elseif type(timeout_ms) ~= "number" or timeout_ms ~= timeout_ms then
    error("lunamodb.scheduler.step: timeout_ms must be a number (got " .. type(timeout_ms) .. ")", 2)
  end
  if budget_ms ~= nil and (type(budget_ms) ~= "number" or not (budget_ms >= 0)) then
    error("lunamodb.scheduler.step: budget_ms must be a number >= 0 (got "
      .. (type(budget_ms) == "number" and tostring(budget_ms) or type(budget_ms)) .. ")", 2)
  end
  local S = state()
  check_not_stepping(S, "scheduler.step")
  if timeout_ms < 0 then timeout_ms = 0 end
  if timeout_ms > MAX_WAIT_MS then timeout_ms = MAX_WAIT_MS end
  S.stepping = true
  local ok, err = pcall(step, S, floor(timeout_ms), budget_ms)
  S.stepping = false
  if not ok then error(err, 0) end
  report(S)
  return S.alive
end

function M.io_wait(out)
  if out ~= nil and type(out) ~= "table" then
    error("lunamodb.scheduler.io_wait: out must be a table (got " .. type(out) .. ")", 2)
  end
  out = out or {}
  local S = state()
  if S.alive == 0 then return -1, 0, out end
  local now = monotonic_ms()
  local nearest = promote(S, now)
  if #S.ready > 0 then return 0, 0, out end
  local timeout = nearest and ceil(nearest - now) or -1
  local n = 0
  for transport in pairs(S.watched) do
    local t
    if transport.sockets then
      n = transport:sockets(out, n)
      t = transport:timeout()
    else
      t = M.MULTI_SLICE_MS   -- nothing to wait on: look again soon
    end
    if t >= 0 and (timeout < 0 or t < timeout) then timeout = t end
  end
  return timeout, n, out
end

function M.run()
  local S = state()
  check_not_stepping(S, "scheduler.run")
  while S.alive > 0 do
    M.step(RUN_WAIT_MS)
    if deadlocked(S) then
      error("lunamodb.scheduler.run: deadlock: " .. S.alive .. " task(s) wait for each other", 2)
    end
  end
end

function M.wait_request(transport, req)
  local t = M.current()
  if not t then
    while not req:done() do transport:poll(1000) end
    return
  end
  if req:done() then return end
  t.state = "waiting"
  t.req, t.transport = req, transport
  local S = t.S
  watch(S, transport)
  local waiting = S.waiting
  waiting[#waiting + 1] = t
  co_yield(WAIT)
end

function M.sleep(ms)
  if type(ms) ~= "number" or ms ~= ms then
    error("lunamodb.scheduler.sleep: ms must be a number (got " .. type(ms) .. ")", 2)
  end
  local t = M.current()
  if not t then
    if ms > 0 then sleep_ms(ms) end
    return
  end
  if ms <= 0 then
    make_ready(t)
  else
    t.state = "sleeping"
    t.deadline = monotonic_ms() + ms
    local sleepers = t.S.sleepers
    sleepers[#sleepers + 1] = t
  end
  co_yield(WAIT)
end

-- Parks the current task until `target` is done.
local function join_one(cur, target)
  if cur == target then
    error("lunamodb.scheduler: a task cannot wait for itself", 3)
  end
  local joiners = target.joiners
  if not joiners then
    joiners = {}
    target.joiners = joiners
  end
  joiners[#joiners + 1] = cur
  cur.state = "joining"
  cur.joining = target
  cur.S.njoining = cur.S.njoining + 1
  co_yield(WAIT)
end

local function is_done(t)
  return t.res ~= nil
end

-- Outside any task, waiting drives the scheduler: impossible while a step runs
-- (a coroutine that is not a task, resumed by a task).
local function check_can_wait(what)
  if state().stepping and not M.current() then
    error("lunamodb.scheduler: " .. what .. ": cannot wait for an unfinished task from a "
      .. "coroutine that is not a lunamodb task (use scheduler.wrap for generators)", 3)
  end
end

-- Waits until every task in `list` is done (the caller checked can_wait).
local function wait_all(list)
  local cur = M.current()
  if cur then
    for i = 1, #list do
      if not is_done(list[i]) then join_one(cur, list[i]) end
    end
    return
  end
  local S = state()
  for i = 1, #list do
    local t = list[i]
    while not is_done(t) do
      M.step(RUN_WAIT_MS)
      if not is_done(t) and deadlocked(S) then
        error("lunamodb.scheduler: deadlock: " .. S.alive .. " task(s) wait for each other", 3)
      end
    end
  end
end

function M.join(tasks)
  if type(tasks) ~= "table" then
    error("lunamodb.scheduler.join: tasks must be an array of tasks (got " .. type(tasks) .. ")", 2)
  end
  for i = 1, #tasks do
    local t = tasks[i]
    if getmetatable(t) ~= Task then
      error("lunamodb.scheduler.join: tasks[" .. i .. "] is not a task", 2)
    end
    t.observed = true
  end
  for i = 1, #tasks do
    if not is_done(tasks[i]) then
      check_can_wait("scheduler.join")
      wait_all(tasks)
      break
    end
  end
  for i = 1, #tasks do
    local res = tasks[i].res
    if not res[1] then return false, res[2] end
  end
  return true
end

function M.wrap(fn)
  if type(fn) ~= "function" then
    error("lunamodb.scheduler.wrap: fn must be a function (got " .. type(fn) .. ")", 2)
  end
  local co = co_create(fn)
  return function(...)
    owner[co] = M.current()
    local res = pack(co_resume(co, ...))
    while res[1] and res[2] == WAIT and co_status(co) == "suspended" do
      co_yield(WAIT)                  -- a lunamodb wait inside fn: suspend the enclosing task
      owner[co] = M.current()
      res = pack(co_resume(co))
    end
    owner[co] = nil
    if not res[1] then error(res[2], 0) end
    return unpack(res, 2, res.n)
  end
end

------------------------------------------------------------------ tasks

function Task:done()
  return self.res ~= nil
end

function Task:status()
  return self.state
end

function Task:result()
  self.observed = true
  if not self.res then
    check_can_wait("task:result()")
    wait_all({ self })
  end
  local res = self.res
  return unpack(res, 1, res.n)
end

function Task:cancel()
  local st = self.state
  if self.res then return false end
  if st == "running" then
    if M.current() ~= self then
      error("lunamodb.scheduler: task:cancel(): the task is running in a coroutine "
        .. "that is not its own; cancel it from elsewhere", 2)
    end
    self.state = "cancelling"
    co_yield(WAIT)                              -- never resumed
    error("lunamodb.scheduler: a cancelled task was resumed", 2)
  end
  if st == "waiting" then
    local req = self.req
    self.req = nil
    unwatch(self.S, self.transport)
    self.transport = nil
    if req.release then req:release() end
  elseif st == "joining" then
    self.joining = nil
    self.S.njoining = self.S.njoining - 1
  elseif st == "sleeping" then
    self.deadline = nil
  end
  if co_close then pcall(co_close, self.co) end
  finish(self, "cancelled", false, "cancelled")
  return true
end

function Task:__tostring()
  return "lunamodb.task (" .. self.state .. ")"
end

return M
