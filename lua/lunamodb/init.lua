-- lunamodb: a DynamoDB object mapper for Lua.
--
--   local lunamodb = require "lunamodb"
--   local client = assert(lunamodb.Client.new{ region = "us-east-1" })
--   local out, err = client:call("ListTables", {})
--
-- Error convention: misuse (bad arguments, bad declarations, bad
-- configuration) raises; runtime failures return nil, err with err a
-- lunamodb.Error (see lunamodb.errors). Iterators raise that same object.

local core = require "lunamodb.core"

local setmetatable, getmetatable, type = setmetatable, getmetatable, type

local M = {
  _VERSION = core.VERSION,
  VERSION = core.VERSION,
}

M.Client = require "lunamodb.client"
M.errors = require "lunamodb.errors"
M.Error = M.errors.Error
M.is_error = M.errors.is_error

-- Value types (see lunamodb.values): sets, UTC datetimes, exact decimals,
-- binary in untyped places, and NULL where nil cannot stand (lists, maps).
local values = require "lunamodb.values"
M.set = values.set
M.datetime = values.datetime
M.now = values.now
M.decimal = values.decimal
M.binary = values.binary
M.null = core.null

M.attributes = require "lunamodb.attributes"

-- Models: a table declared in one literal (see lunamodb.model).
local model = require "lunamodb.model"
M.Model = model.Model
M.DoesNotExist = model.DoesNotExist
local indexes = require "lunamodb.indexes"
M.GlobalSecondaryIndex = indexes.GlobalSecondaryIndex
M.LocalSecondaryIndex = indexes.LocalSecondaryIndex

-- Batches and transactions across models (see lunamodb.batch and
-- lunamodb.transaction).
local batch = require "lunamodb.batch"
local transaction = require "lunamodb.transaction"
function M.batch_write(fn, opts)
  local ok, err = batch.write(nil, fn, opts)
  return ok, err                               -- no tail call: errors name the caller
end
M.transact_write = transaction.write
M.transact_get = transaction.get

-- Non-blocking hosts: every lunamodb call inside a task spawned here yields
-- while it waits (requests, backoff, rate limits) instead of blocking.
-- lunamodb.run() steps until every task is done; a game loop calls
-- lunamodb.step(0) once per tick instead; a host with its own event loop asks
-- lunamodb.io_wait() which sockets to wait on, and for how long, before stepping
-- (see lunamodb.scheduler).
local scheduler = require "lunamodb.scheduler"
M.scheduler = scheduler
M.spawn = scheduler.spawn
M.step = scheduler.step
M.run = scheduler.run
M.io_wait = scheduler.io_wait

-- Expressions: schema paths (Thread.views) build conditions and updates;
-- lunamodb.path("name") starts an untyped path; a serializer turns them into
-- one request's expression strings and placeholder maps.
local path = require "lunamodb.expressions.path"
local serializer = require "lunamodb.expressions.serializer"
M.path = path.untyped
M.expressions = {
  new = serializer.new,
  is_condition = path.is_condition,
  is_path = path.is_path,
}

-- Marks a table as a JSON array, so an empty one is sent as [] (a plain
-- empty table is sent as {}). Non-empty sequences need no marking.
function M.array(t)
  if t ~= nil and type(t) ~= "table" then
    error("lunamodb.array: expected a table (got " .. type(t) .. ")", 2)
  end
  return setmetatable(t or {}, core.array_mt)
end

function M.is_array(t)
  return type(t) == "table" and getmetatable(t) == core.array_mt
end

M.json = {
  encode = core.json_encode,
  decode = core.json_decode,
}

return M
