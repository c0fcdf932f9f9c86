-- lunamodb.transaction: TransactWriteItems and TransactGetItems for models.
--
--   local ok, err = lunamodb.transact_write(function(tx)
--     tx:condition_check(Account, "alice", Account.balance:ge(100))
--     tx:update(Account.get_ref("alice"), { Account.balance:set(Account.balance - 100) })
--     tx:save(Transfer.new{ id = "t1", amount = 100 })
--   end, { client_request_token = "t1" })
--   -- cancelled: err.code == "TransactionCanceledException", err.reasons[i] per action, in call order
--
--   local a, b = lunamodb.transact_get(function(tx)
--     return tx:get(Account, "alice"), tx:get(Account, "bob")
--   end)
--
-- Actions keep the order they were added in (PynamoDB reorders them by
-- type), so err.reasons[i] is the i-th action's. Versioned models carry the
-- same version conditions as single-item writes and their local versions
-- move on success. The C core checks the limits (100 actions, 4 MB, one
-- action per item) before anything is sent, and the ClientRequestToken is
-- made once per call, so a retried transaction never applies twice.

local core = require "lunamodb.core"
local errors = require "lunamodb.errors"
local model = require "lunamodb.model"
local A = require "lunamodb.attributes"

local setmetatable, getmetatable, type, tostring, ipairs, error, pcall, select, rawset =
  setmetatable, getmetatable, type, tostring, ipairs, error, pcall, select, rawset
local path = require "lunamodb.expressions.path"
local format = string.format
local json_encode, json_decode = core.json_encode, core.json_decode

local I = model._internal
local M = {}

local function pack(...)
  return { n = select("#", ...), ... }
end

local key_id = I.key_id

------------------------------------------------------------------ writes

local Write = {}
Write.__index = Write
Write.__name = "lunamodb.TransactWrite"

local RETURN_VALUES = { ALL_OLD = true, NONE = true }

local function check_return(opts, what)
  local rv = opts.return_values_on_failure
  if rv ~= nil and not RETURN_VALUES[rv] then
    error(format("lunamodb: %s: return_values_on_failure must be \"ALL_OLD\" or \"NONE\"", what), 3)
  end
  return rv
end

-- One action: its wire form, and the client it must go through.
local function push(self, data, key, kind, params, after)
  local client = I.client_of(data)
  if self.client and self.client ~= client then
    error(format("lunamodb: transaction: %s does not share the other models' connection "
      .. "settings (one transaction goes to one region and account)", data.display), 3)
  end
  self.client = client
  params.TableName = I.classes[data.root].table_name
  local n = #self.actions + 1
  self.actions[n] = { params.TableName, key_id(params.TableName, key), json_encode({ [kind] = params }) }
  self.after[n] = after or false
end

local SAVE_OPTIONS = { condition = true, add_version_condition = true, return_values_on_failure = true }
local UPDATE_OPTIONS = SAVE_OPTIONS
local DELETE_OPTIONS = SAVE_OPTIONS

-- tx:save(item[, { condition, add_version_condition, return_values_on_failure }])
function Write:save(item, opts)
  local data = I.item_data(item, "save")
  local what = "transaction save of " .. data.display
  opts = I.check_call_options(opts, SAVE_OPTIONS, what)
  local rv = check_return(opts, what)
  local ok, params, new_version = pcall(I.save_request, item, opts, what, 0)
  if not ok then error(params, 2) end
  params.ReturnValuesOnConditionCheckFailure = rv
  local vattr = data.info.version
  push(self, data, I.key_of(data, item), "Put", params, vattr and function()
    rawset(item, vattr.name, new_version)
  end)
end

-- tx:update(item, { actions }[, opts]). The item's local values are not
-- re-read (DynamoDB returns nothing from a transaction); its version moves.
function Write:update(item, actions, opts)
  local data = I.item_data(item, "update")
  local what = "transaction update of " .. data.display
  opts = I.check_call_options(opts, UPDATE_OPTIONS, what)
  local rv = check_return(opts, what)
  local ok, params, new_version = pcall(I.update_request, item, actions, opts, what, 0)
  if not ok then error(params, 2) end
  params.ReturnValuesOnConditionCheckFailure = rv
  local vattr = data.info.version
  push(self, data, params.Key, "Update", params, vattr and function()
    rawset(item, vattr.name, new_version)
  end)
end

-- tx:delete(item[, opts])
function Write:delete(item, opts)
  local data = I.item_data(item, "delete")
  local what = "transaction delete of " .. data.display
  opts = I.check_call_options(opts, DELETE_OPTIONS, what)
  local rv = check_return(opts, what)
  local ok, params = pcall(I.delete_request, item, opts, what)
  if not ok then error(params, 2) end
  params.ReturnValuesOnConditionCheckFailure = rv
  push(self, data, params.Key, "Delete", params)
end

-- tx:condition_check(Model, hash[, range], condition) or
-- tx:condition_check(item, condition): the item must meet condition.
function Write:condition_check(target, ...)
  local data, key, cond
  local n = select("#", ...)
  if model.is_model(target) then
    data = I.class_data(target, "condition_check")
    local hash, range
    if n >= 3 then
      hash, range, cond = ...
    else
      hash, cond = ...
    end
    local ok, k = pcall(A.serialize_key, data.schema, hash, range)
    if not ok then error(k, 2) end
    key = k
  else
    data = I.item_data(target, "condition_check")
    cond = ...
    key = I.key_of(data, target)
  end
  if cond == nil then
    error("lunamodb: transaction condition_check: a condition is required", 2)
  end
  if not path.is_condition(cond) then
    local _, msg = pcall(path.check_condition, cond, "transaction condition_check condition")
    error(msg, 2)
  end
  local s = require("lunamodb.expressions.serializer").new()
  local params = { Key = key, ConditionExpression = s:condition(cond) }
  s:apply(params)
  push(self, data, key, "ConditionCheck", params)
end

local WRITE_OPTIONS = { client_request_token = true }

-- lunamodb.transact_write(fn[, { client_request_token }]) -> true, or nil, err.
-- fn(tx) adds the actions; if it raises, nothing is sent and the error is
-- raised again.
function M.write(fn, opts)
  if type(fn) ~= "function" then
    error("lunamodb.transact_write: expected a function(tx) (got " .. type(fn) .. ")", 2)
  end
  opts = I.check_call_options(opts, WRITE_OPTIONS, "lunamodb.transact_write")
  local token = opts.client_request_token or core.uuid4()
  local tx = setmetatable({ actions = {}, after = {} }, Write)
  local ok, err = pcall(fn, tx)
  if not ok then error(err, 0) end
  if #tx.actions == 0 then
    error("lunamodb.transact_write: the transaction has no actions", 2)
  end
  local bok, body = pcall(core.transact_body, "write", tx.actions, token)
  if not bok then error(body, 2) end
  local text, cerr = tx.client:call_raw("TransactWriteItems", body)
  if not text then return nil, cerr end
  for _, f in ipairs(tx.after) do if f then f() end end
  return true
end

-------------------------------------------------------------------- reads

local Get = {}
Get.__index = Get
Get.__name = "lunamodb.TransactGet"

local Future = {}
Future.__index = Future
Future.__name = "lunamodb.TransactGetResult"

-- tx:get(Model, hash[, range]) -> a placeholder, replaced by the item (or
-- nil when there is none) in what transact_get returns; fut:get() gives
-- the item, or nil, err (DoesNotExist) after the transaction ran.
function Get:get(cls, hash, range)
  local data = I.class_data(cls, "get")
  local ok, key = pcall(A.serialize_key, data.schema, hash, range)
  if not ok then error(key, 2) end
  local client = I.client_of(data)
  if self.client and self.client ~= client then
    error(format("lunamodb: transaction: %s does not share the other models' connection "
      .. "settings", data.display), 2)
  end
  self.client = client
  local table_name = I.classes[data.root].table_name
  local n = #self.actions + 1
  self.actions[n] = { table_name, key_id(table_name, key),
    json_encode({ Get = { TableName = table_name, Key = key } }) }
  local fut = setmetatable({ cls = cls, data = data, done = false }, Future)
  self.futures[n] = fut
  return fut
end

function Future:get()
  if not self.done then
    error("lunamodb: this transaction result is not ready: transact_get has not run yet", 2)
  end
  if self.item == nil then
    return nil, errors.new { kind = "model", operation = "TransactGetItems", code = model.DoesNotExist,
      message = self.data.display .. " item does not exist" }
  end
  return self.item
end

-- lunamodb.transact_get(fn) -> what fn returned, with every placeholder
-- replaced by its item (nil when absent); or nil, err on failure.
function M.get(fn)
  if type(fn) ~= "function" then
    error("lunamodb.transact_get: expected a function(tx) (got " .. type(fn) .. ")", 2)
  end
  local tx = setmetatable({ actions = {}, futures = {} }, Get)
  local results = pack(fn(tx))
  if #tx.actions == 0 then
    error("lunamodb.transact_get: the transaction has no gets", 2)
  end
  local bok, body = pcall(core.transact_body, "get", tx.actions)
  if not bok then error(body, 2) end
  local text, err = tx.client:call_raw("TransactGetItems", body)
  if not text then return nil, err end
  local out = json_decode(text)
  for i, fut in ipairs(tx.futures) do
    local r = out.Responses and out.Responses[i]
    fut.done = true
    if r and r.Item then
      local item, lerr = I.load_item(fut.cls, fut.data, r.Item, false)
      if not item then return nil, lerr end
      fut.item = item
    end
  end
  for i = 1, results.n do
    local v = results[i]
    if getmetatable(v) == Future then results[i] = v.item end
  end
  return (table.unpack or unpack)(results, 1, results.n)
end

return M
