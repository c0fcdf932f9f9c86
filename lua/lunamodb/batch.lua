-- lunamodb.batch: BatchGetItem and BatchWriteItem for models.
--
--   for user in User:batch_get{ "a@x", "b@x", ... } do ... end        -- any number of keys
--   local ok, err = User:batch_write(function(batch)
--     for _, u in ipairs(users) do batch:save(u) end
--     batch:delete(old)
--   end)
--   -- err.unprocessed: what was not written, never dropped silently
--
-- The C core packs requests into bodies (25 writes / 100 keys / 16 MB) and
-- extracts what DynamoDB left unprocessed; this module sends them, retries
-- the unprocessed part with full-jitter backoff up to a bound, and reports
-- whatever is still unprocessed to the caller.

local core = require "lunamodb.core"
local errors = require "lunamodb.errors"
local model = require "lunamodb.model"
local serializer = require "lunamodb.expressions.serializer"

local setmetatable, getmetatable, type, tostring, pairs, ipairs, error, pcall =
  setmetatable, getmetatable, type, tostring, pairs, ipairs, error, pcall
local format, concat = string.format, table.concat
local json_encode, json_decode = core.json_encode, core.json_decode
local A = require "lunamodb.attributes"
local NATIVE = A.NATIVE

local I = model._internal
local M = {}
local NOTHING = {}

-- Misuse found below the public entry points is raised at the user's line:
-- M.get <- Model:batch_get <- user is four frames above raise_misuse.
local function raise_at(fn, ...)
  return I.raise_misuse(4, nil, fn, ...)
end

M.MAX_ATTEMPTS = 8          -- sends of one body, the first included
M.BASE_MS = 50
M.CAP_MS = 5000

local key_id = I.key_id

local function backoff(client, attempt)
  local ceiling = M.BASE_MS * 2 ^ (attempt - 1)
  if ceiling > M.CAP_MS then ceiling = M.CAP_MS end
  client:sleep(core.random() * ceiling)
end

-- Sends one body, then its unprocessed remainder, up to max_attempts sends.
-- Returns the responses' decoded tables in a list, plus the JSON text of
-- what is still unprocessed (or nil); or nil, err when a call failed.
local function send(client, operation, kind, body, max_attempts, on_response)
  local attempt = 0
  while body do
    attempt = attempt + 1
    local text, err = client:call_raw(operation, body)
    if not text then return nil, err, body end
    if on_response then on_response(text) end
    local nxt, why = core.batch_unprocessed(kind, text)
    if nxt == nil then
      -- an unreadable answer: whether anything was applied is unknown
      return nil, errors.new { kind = "transport", operation = operation,
        code = "SerializationError", message = "cannot read the response: " .. tostring(why) }, body
    end
    if not nxt then return true end
    if attempt >= max_attempts then return true, nil, nxt end
    backoff(client, attempt)
    body = nxt
  end
  return true
end

------------------------------------------------------------------ writes

local Writer = {}
local TARGETS = 1                     -- batch[TARGETS]: see M.writer
local BUILDER, PLAN, TABLE = 1, 2, 3  -- a target's members the core's batch:save reads
Writer.__index = Writer
Writer.__name = "lunamodb.BatchWrite"

local WRITE_OPTIONS = I.set_of("max_attempts", "ignore_version")

-- A batch of puts and deletes, for items of any models. Only classes whose
-- items it was made for when `cls` is given.
local function check_attempts(n, what)
  if n ~= nil and (type(n) ~= "number" or n < 1 or n % 1 ~= 0) then
    error(format("lunamodb: %s: max_attempts must be a whole number >= 1", what), 0)
  end
end

-- The queue's tables come with the first write (target_of) and go at commit, so a batch
-- costs what it holds: groups[client] (one per client; order lists them in the order of
-- first use) holds a core batch builder with the requests for the core to pack, each with
-- its item and key (the builder refuses a second write of one item and maps unprocessed
-- requests back to their items); infos[table_name] is the table's model info;
-- batch[TARGETS][class data] is where a class's items go, and [item metatable] too for a
-- class whose whole items batch:save hands straight to the core (which reads them there).
function M.writer(cls, opts)
  local n, ignore_version
  if opts ~= nil then
    opts = I.check_call_options(opts, WRITE_OPTIONS, "batch_write")
    n, ignore_version = opts.max_attempts, opts.ignore_version
    check_attempts(n, "batch_write")
    if ignore_version ~= nil and type(ignore_version) ~= "boolean" then
      error("lunamodb: batch_write: ignore_version must be a boolean", 0)
    end
  end
  if cls ~= nil and not I.classes[cls] then error("lunamodb: not a model class", 0) end
  -- save is the batch's own field: batch:save runs once per item, and a field found in the
  -- table costs less than one found through the metatable
  return setmetatable({ false, cls = cls, max_attempts = n or M.MAX_ATTEMPTS,
    ignore_version = ignore_version, save = Writer.save }, Writer)
end

-- A key's identity in a batch: the Key map's JSON, hash then range. key is a wire Key (or a
-- whole wire item: only its key attributes count). The core writes a Key's JSON in this form.
local function key_text(info, key)
  local h = info.hash_key.wire_name
  local text = "{" .. json_encode(h) .. ":" .. json_encode(key[h])
  if info.range_key then
    local r = info.range_key.wire_name
    text = text .. "," .. json_encode(r) .. ":" .. json_encode(key[r])
  end
  return text .. "}"
end

-- Builders emptied by a commit, kept for the next batches (a few: one per batch in flight at
-- once is what a program reuses); a batch takes one, or makes one.
local spare, SPARE_MAX = {}, 4
local function take_builder()
  local n = #spare
  if n == 0 then return core.batch_builder() end
  local b = spare[n]
  spare[n] = nil
  return b
end
local function give_back(builder)
  builder:reset()
  if #spare < SPARE_MAX then spare[#spare + 1] = builder end
end

-- Where a class's items go in this batch, checked once per class.
local function target_of(self, data, what)
  if self.cls and I.classes[data.root] ~= I.classes[I.classes[self.cls].root] then
    error(format("lunamodb: %s: this batch writes %s items, not %s items", what,
      I.classes[self.cls].display, data.display), 4)
  end
  local targets = self[TARGETS]
  if not targets then
    targets = {}
    self[TARGETS], self.groups, self.order, self.infos = targets, {}, {}, {}
  end
  local root = I.classes[data.root]
  local client = I.client_of(data)
  local builder = self.groups[client]
  if not builder then
    builder = take_builder()
    self.groups[client] = builder
    self.order[#self.order + 1] = client
  end
  local name = root.table_name
  self.infos[name] = root.info
  local target = { builder, A.item_plan(data.schema), name, info = root.info,
    versioned = data.info.version and not self.ignore_version }
  targets[data] = target
  if not target.versioned then targets[data.item_mt] = target end
  return target
end

local classes, class_of = I.classes, model.class_of
local put_whole, put_item_text = I.put_whole, I.put_item_text
local item_state = I.item_state
local encode_key_json = A.encode_key_json

-- DynamoDB refuses two writes of one item in a batch: the builder does not queue the second.
local function duplicate(what, level)
  error(format("lunamodb: %s: the item with this key is already in the batch (DynamoDB refuses "
    .. "two writes of one item in a batch)", what), level + 1)
end

-- Queues a write: a put the core encodes goes straight into the group's builder (its Key
-- cut from it); anything else is encoded here and added as text. declined: the core's
-- encoder already refused this item.
local function add(self, item, op, what, declined)
  local icls = class_of(item)
  local data = icls and classes[icls]
  if not data then
    error(format("lunamodb: %s: expected an item of a model (got %s)", what, type(item)), 3)
  end
  local target = self[TARGETS] and self[TARGETS][data] or target_of(self, data, what)
  local builder, name = target[BUILDER], target[TABLE]
  local item_text, queued
  if op == "save" then
    if target.versioned then
      error(format("lunamodb: %s: %s has a Version attribute, which a batch cannot check; use "
        .. "item:save or a transaction, or pass ignore_version = true", what, data.display), 3)
    end
    -- the stored version stays the item's own: a batch neither checks nor moves it
    local fast, state = put_whole(data, item, what, 4)
    if fast and not declined then queued = builder:put(item, target[PLAN], name) end
    if queued == nil then item_text = put_item_text(data, item, state, 4) end
  end
  if queued == nil then
    -- serialize_key (in key_of) raises what is wrong when the core does not take the key
    local key_json = encode_key_json(data.schema, item)
      or key_text(target.info, I.key_of(data, item))
    if item_text then
      queued = builder:add_put(name, item_text, key_json, item)
    else
      queued = builder:add(name, '{"DeleteRequest":{"Key":' .. key_json .. "}}", key_json, item,
        "delete")
    end
  end
  if not queued then duplicate(what, 3) end
end

-- batch:save(item) / batch:delete(item): queued until commit. batch:save is the core's: a
-- whole item of a class already seen goes straight to its encoder; anything else, and any
-- item the encoder does not take, through add (which it calls as this file would, so add
-- raises at the user's line).
Writer.save = core.batch_saver(add, duplicate, item_state)
function Writer:delete(item) add(self, item, "delete", "batch:delete") end

-- The operations an unprocessed BatchWriteItem body (from builder's bodies) stands for.
local function unprocessed_ops(self, builder, body)
  local req = json_decode(tostring(body))                -- a core body or a string
  local out = {}
  for table_name, list in pairs(req and req.RequestItems or {}) do
    local info = self.infos[table_name]
    for _, r in ipairs(info and list or {}) do
      -- a put carries the whole item: its key is the key attributes only
      local wire = r.PutRequest and r.PutRequest.Item or r.DeleteRequest and r.DeleteRequest.Key
      local item, op
      if wire then item, op = builder:find(table_name, key_text(info, wire)) end
      if item then out[#out + 1] = { op = op, item = item } end
    end
  end
  return out
end

-- Sends everything queued. true, or nil, err where err.unprocessed lists
-- the { op = "save"|"delete", item = item } not written (after max_attempts
-- sends of each body, with backoff), and err.cause the call error if any.
function Writer:commit()
  local unprocessed, cause = {}, nil
  for _, client in ipairs(self.order or NOTHING) do
    local builder = self.groups[client]
    -- core bodies: the text stays in C memory, and is freed once sent
    local bodies = builder:bodies(true)
    for _, body in ipairs(bodies) do
      local ok, err, left = send(client, "BatchWriteItem", "write", body, self.max_attempts)
      if not ok then cause = cause or err end
      if left then
        for _, op in ipairs(unprocessed_ops(self, builder, left)) do
          unprocessed[#unprocessed + 1] = op
        end
      end
      body:release()
    end
    give_back(builder)                         -- sent: nothing below reads it
  end
  self[TARGETS], self.groups, self.order, self.infos = false, nil, nil, nil   -- emptied
  if #unprocessed > 0 or cause then
    return nil, errors.new {
      kind = cause and cause.kind or "model", operation = "BatchWriteItem",
      code = cause and cause.code or "UnprocessedItems",
      message = format("%d writes were not applied%s", #unprocessed,
        cause and (": " .. tostring(cause.message)) or " after retries"),
      status = cause and cause.status, request_id = cause and cause.request_id,
      retryable = true, unprocessed = unprocessed, cause = cause,
    }
  end
  return true
end

-- Runs fn(batch) and commits. If fn raises, nothing is written and the
-- error is raised again.
function M.write(cls, fn, opts)
  local batch = raise_at(M.writer, cls, opts)
  if fn == nil then return batch end
  if type(fn) ~= "function" then
    error("lunamodb: batch_write: expected a function(batch) (got " .. type(fn) .. ")", 3)
  end
  local ok, err = pcall(fn, batch)
  if not ok then error(err, 0) end
  return batch:commit()
end

------------------------------------------------------------------- reads

local GET_OPTIONS = I.set_of("consistent_read", "attributes", "max_attempts")

-- Model:batch_get(keys[, opts]) -> an iterator over the items found (in no
-- particular order; missing keys are simply absent). keys: hash values, or
-- { hash, range } pairs. Duplicates are sent once. Raises a lunamodb.Error
-- on failure; err.unprocessed_keys lists the keys never read.
function M.get(cls, keys, opts)
  local plan = raise_at(function()
    local data = I.class_data(cls, "batch_get")
    local where = data.display .. ":batch_get"
    opts = I.check_call_options(opts, GET_OPTIONS, where)
    if type(keys) ~= "table" then
      error(format("lunamodb: %s: expected a list of keys (got %s)", where, type(keys)), 0)
    end
    if opts.consistent_read ~= nil and type(opts.consistent_read) ~= "boolean" then
      error(format("lunamodb: %s: consistent_read must be a boolean", where), 0)
    end
    check_attempts(opts.max_attempts, where)
    local root = I.classes[data.root]
    local info = data.info
    local key_json, seen, values_of = {}, {}, {}
    for i, k in ipairs(keys) do
      local hash, range = k, nil
      if info.range_key then
        if type(k) ~= "table" or k[1] == nil or k[2] == nil then
          error(format("lunamodb: %s: key %d must be a { hash, range } pair", where, i), 0)
        end
        hash, range = k[1], k[2]
      end
      local ok, key = pcall(A.serialize_key, data.schema, hash, range)
      if not ok then error(format("%s (key %d)", tostring(key), i), 0) end
      local id = key_id(root.table_name, key)
      if not seen[id] then
        seen[id] = true
        key_json[#key_json + 1] = json_encode(key)
        values_of[id] = k
      end
    end
    local options = {}
    if opts.consistent_read then options[#options + 1] = '"ConsistentRead":true' end
    local partial = false
    if opts.attributes then
      local s = serializer.new()
      local p = { ProjectionExpression = s:projection(I.with_keys(data, nil, opts.attributes), cls) }
      s:apply(p)
      options[#options + 1] = '"ProjectionExpression":' .. json_encode(p.ProjectionExpression)
      options[#options + 1] = '"ExpressionAttributeNames":' .. json_encode(p.ExpressionAttributeNames)
      partial = true
    end
    return {
      data = data, root = root, values_of = values_of, partial = partial,
      max_attempts = opts.max_attempts or M.MAX_ATTEMPTS,
      bodies = #key_json > 0 and core.batch_get_bodies {
        { root.table_name, keys = key_json, options_json = concat(options, ",") },
      } or {},
    }
  end)
  local data, root, values_of = plan.data, plan.root, plan.values_of
  local client = I.client_of(data)
  local decode = I.response_decoder(data, "tables", "Responses")
  local queue, head, tail, b = {}, 1, 0, 0
  local failure = nil                  -- raised once the items already read are out
  return function()
    while true do
      if head <= tail then
        local item = queue[head]
        queue[head] = nil
        head = head + 1
        return item
      end
      if failure then
        local f = failure
        failure = nil
        error(f, 0)
      end
      b = b + 1
      local body = plan.bodies[b]
      if not body then return nil end
      local ok, err, left = send(client, "BatchGetItem", "get", body, plan.max_attempts, function(text)
        local out = decode(text) or {}
        local native = out[NATIVE]
        for _, found in ipairs(out.Responses and out.Responses[root.table_name] or {}) do
          local item, lerr
          if native then
            item = I.load_values(cls, data, found, plan.partial)
          else
            item, lerr = I.load_item(cls, data, found, plan.partial)
            if not item then error(lerr, 0) end
          end
          tail = tail + 1
          queue[tail] = item
        end
      end)
      if not ok or left then
        -- left: what was never read (on a failed call, the body it carried)
        local missing = {}
        local req = left and json_decode(left)
        local t = req and req.RequestItems and req.RequestItems[root.table_name]
        for _, key in ipairs(t and t.Keys or {}) do
          missing[#missing + 1] = values_of[key_id(root.table_name, key)]
        end
        failure = errors.new {
          kind = err and err.kind or "model", operation = "BatchGetItem",
          code = err and err.code or "UnprocessedKeys",
          message = format("%d keys were not read%s", #missing,
            err and (": " .. tostring(err.message)) or " after retries"),
          status = err and err.status, request_id = err and err.request_id,
          retryable = true, unprocessed_keys = missing, cause = err,
        }
      end
    end
  end
end

return M
