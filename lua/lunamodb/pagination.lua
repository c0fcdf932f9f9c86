-- lunamodb.pagination: result iterators over Query and Scan.
--
--   local it = User:query("John", { limit = 10 })
--   for user in it do ... end                -- items; raises a lunamodb.Error on failure
--   resume_from = it.last_evaluated_key      -- where the next query should start
--   for page in User:scan{ page_size = 100 }:pages() do ... end   -- page.items, page.count, ...
--
-- The next request of each page is computed by the C core from the last
-- response (core.paginate_next): this module only drives it, applies the
-- item limit exactly, rate-limits by consumed capacity, and maps items.

local core = require "lunamodb.core"

local setmetatable, type, error, tostring, rawget = setmetatable, type, error, tostring, rawget
local floor, huge = math.floor, math.huge
local json_encode, json_decode = core.json_encode, core.json_decode
local NATIVE = require("lunamodb.attributes").NATIVE
local paginate_next, monotonic_ms = core.paginate_next, core.monotonic_ms

local M = {}

local Results = {}
Results.__name = "lunamodb.Results"

-- The resume key of a wire item: its table and index key attributes.
local function key_of(self, item)
  local key = {}
  for i = 1, #self.key_names do
    local n = self.key_names[i]
    key[n] = item[n]
  end
  return key
end

-- last_evaluated_key is computed when read, so following it costs nothing
-- per item: inside a page it is the last returned item's key, at a page
-- boundary the page's LastEvaluatedKey (nil once everything was read).
Results.__index = function(self, k)
  if k == "last_evaluated_key" then
    local item = rawget(self, "_item")
    if item then
      if rawget(self, "_item_native") then return self.key_of_native(item) end
      return key_of(self, item)
    end
    return rawget(self, "_lek")
  end
  return Results[k]
end

-- Read capacity units per second, paced by the capacity DynamoDB reports:
-- each page pushes the earliest start of the next one back by its units /
-- rate, so the units consumed never run ahead of the rate by more than one
-- page. One limiter may be shared (a parallel scan's segments). Waits
-- through the client's transport, so a scheduled task yields.
function M.limiter(rate)
  return { rate = rate, next_ms = nil }
end

local function rate_wait(self)
  local lim = self.limiter
  if not lim or lim.next_ms == nil then return end
  local due = lim.next_ms - monotonic_ms()
  if due > 0 then self.client:sleep(due) end
end

local function rate_consume(self, units)
  local lim = self.limiter
  if not lim then return end
  local now = monotonic_ms()
  local base = lim.next_ms
  if base == nil or base < now then base = now end
  lim.next_ms = base + units / lim.rate * 1000
end

-- Fetches the next page; returns its decoded response, or nil at the end.
-- Raises the structured error on failure (iterators cannot return nil, err).
local function fetch(self)
  if self.body == nil then return nil end
  rate_wait(self)
  local text, err = self.client:call_raw(self.operation, self.body)
  if not text then error(err, 0) end
  local page, jerr
  if self.decode then page, jerr = self.decode(text) else page, jerr = json_decode(text) end
  if page == nil then
    error(require("lunamodb.errors").new {
      kind = "transport", operation = self.operation, code = "SerializationError",
      message = "the response is not valid JSON: " .. tostring(jerr),
    }, 0)
  end
  local nxt, info = paginate_next(self.operation, self.body, text)
  if nxt == nil then
    error(require("lunamodb.errors").new {
      kind = "transport", operation = self.operation, code = "PaginationError", message = info,
    }, 0)
  end
  self.body = nxt or nil
  self.pages_fetched = self.pages_fetched + 1
  self.scanned_count = self.scanned_count + (info.scanned or 0)
  if info.capacity then
    self.consumed_capacity = self.consumed_capacity + info.capacity
    rate_consume(self, info.capacity)
  end
  self._lek, self._item = page.LastEvaluatedKey, nil
  self.native = page[NATIVE] == true
  return page
end

-- opts: client, operation ("Query" or "Scan"), params (wire-shaped, without
-- Limit or ExclusiveStartKey), limit (items to return, exactly), page_size
-- (Limit per request; defaults to limit), exclusive_start_key (wire),
-- rate_limit (read units per second) or limiter (a shared M.limiter),
-- map (wire item -> value or nil, err),
-- key_names (wire names forming a resume key: table and index keys);
-- decode (response text -> page, its items maybe values: page[attributes.NATIVE]), then
-- map_native (values -> value or nil, err) and key_of_native (values -> wire resume key).
function M.new(opts)
  local params = opts.params
  local limit = opts.limit
  local page_size = opts.page_size or limit
  if page_size then params.Limit = page_size end
  if opts.exclusive_start_key then params.ExclusiveStartKey = opts.exclusive_start_key end
  if opts.rate_limit or opts.limiter then params.ReturnConsumedCapacity = "TOTAL" end
  return setmetatable({
    client = opts.client, operation = opts.operation,
    body = json_encode(params),
    limit = limit or huge, map = opts.map, key_names = opts.key_names,
    decode = opts.decode, map_native = opts.map_native, key_of_native = opts.key_of_native,
    native = false,
    limiter = opts.limiter or (opts.rate_limit and M.limiter(opts.rate_limit)),
    page = nil, pos = 0,
    total_count = 0, scanned_count = 0, consumed_capacity = 0, pages_fetched = 0,
    _lek = opts.exclusive_start_key, _item = nil,
  }, Results)
end

-- The next item, or nil when done. Raises on failure.
function Results:next()
  if self.total_count >= self.limit then return nil end
  while true do
    local page = self.page
    local n = page and #page or 0
    if self.pos < n then
      local pos = self.pos + 1
      self.pos = pos
      local wire = page[pos]
      self.total_count = self.total_count + 1
      self._item = pos < n and wire or nil
      self._item_native = self.native
      if self.map then
        local v, err
        if self.native then v, err = self.map_native(wire) else v, err = self.map(wire) end
        if v == nil then error(err, 0) end
        return v
      end
      return wire
    end
    local resp = fetch(self)
    if resp == nil then
      self.page, self.pos = nil, 0
      return nil
    end
    self.page, self.pos = resp.Items or {}, 0
  end
end

-- `for item in results do` calls the object itself.
function Results:__call()
  return self:next()
end

-- Every remaining item in an array (raises on failure).
function Results:all()
  local out = {}
  for v in self.next, self do out[#out + 1] = v end
  return out
end

-- An iterator over pages: { items = {...}, count, scanned_count,
-- last_evaluated_key, consumed_capacity }. Empty pages are included; the
-- item limit applies across pages.
function Results:pages()
  return function()
    if self.total_count >= self.limit then return nil end
    local resp = fetch(self)
    if resp == nil then return nil end
    local items = {}
    local raw = resp.Items or {}
    local n = #raw
    local left = self.limit - self.total_count
    if n > left then
      n = left
      self._item, self._item_native = raw[n], self.native
    end
    local map = self.native and self.map_native or self.map
    for i = 1, n do
      local v = raw[i]
      if map then
        local err
        v, err = map(v)
        if v == nil then error(err, 0) end
      end
      items[i] = v
    end
    self.total_count = self.total_count + n
    return {
      items = items, count = n, scanned_count = resp.ScannedCount,
      last_evaluated_key = self.last_evaluated_key,
      consumed_capacity = resp.ConsumedCapacity and resp.ConsumedCapacity.CapacityUnits,
    }
  end
end

-- Counts with Select = COUNT, never more than limit. Returns the count, or
-- nil, err.
function M.count(opts)
  local params = opts.params
  params.Select = "COUNT"
  if opts.rate_limit then params.ReturnConsumedCapacity = "TOTAL" end
  if opts.page_size then params.Limit = opts.page_size end
  local it = setmetatable({
    client = opts.client, operation = opts.operation, body = json_encode(params),
    limiter = opts.rate_limit and M.limiter(opts.rate_limit),
    total_count = 0, scanned_count = 0, consumed_capacity = 0, pages_fetched = 0,
  }, Results)
  local limit = opts.limit or huge
  local n = 0
  while n < limit do
    local ok, page = pcall(fetch, it)
    if not ok then return nil, page end
    if page == nil then break end
    n = n + (page.Count or 0)
  end
  if n > limit then n = limit end
  return floor(n)
end

M.Results = Results
return M
