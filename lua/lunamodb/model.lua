-- lunamodb.model: a DynamoDB table declared in one Lua literal.
--
--   local User = lunamodb.Model{
--     table_name = "users", region = "us-east-1",
--     attributes = { email = A.Unicode{ hash_key = true }, logins = A.Number{ default = 0 } },
--   }
--   local u = User.new{ email = "ada@example.com" }
--   assert(u:save())
--   local again, err = User:get("ada@example.com")     -- nil, err (code "DoesNotExist") when absent
--
-- A model class holds the class methods (get, create_table, ...) and the
-- attributes' expression paths (User.logins:add(1)). Items are plain-feeling
-- tables whose metatable is separate from the class, so a missing field
-- reads as nil and never falls through to a class member.

local core = require "lunamodb.core"
local A = require "lunamodb.attributes"
local errors = require "lunamodb.errors"
local Client = require "lunamodb.client"
local path = require "lunamodb.expressions.path"
local serializer = require "lunamodb.expressions.serializer"
local indexes = require "lunamodb.indexes"
local pagination = require "lunamodb.pagination"

local setmetatable, getmetatable, rawget, rawset = setmetatable, getmetatable, rawget, rawset
local type, tostring, pairs, ipairs, next, error, select = type, tostring, pairs, ipairs, next, error, select
local format, concat, sort = string.format, table.concat, table.sort
local floor = math.floor
local pcall = pcall
local json_decode, decode_items = core.json_decode, core.decode_items
local NATIVE, DECODE_HOOKS, EXTRA = A.NATIVE, A.DECODE_HOOKS, A.EXTRA
local encode_item_json, encode_key_json, raw_json = A.encode_model_item_json, A.encode_key_json,
  core.raw_json

local M = {}

M.DoesNotExist = "DoesNotExist"

-- Per-class data, keyed by the class table: never reachable from items.
local classes = setmetatable({}, { __mode = "k" })
-- Per-item bookkeeping: partial (projected) reads, stored names the model
-- does not declare.
local item_state = setmetatable({}, { __mode = "k" })
-- Tables shared by many callers, which only read them.
local function frozen(t, what)
  return setmetatable(t, { __newindex = function()
    error("lunamodb: internal: " .. what .. " is read-only", 2)
  end })
end
-- The states of most items, shared: whole, or read through a projection. A whole item
-- with nothing aside has no entry (readers take nil as WHOLE): an entry per item read
-- would be a weak-table insert, and a clearing by the collector, for every item.
local WHOLE = frozen({}, "a shared item state")
local PARTIAL = frozen({ partial = true }, "a shared item state")
local function state_of(partial, extra)
  if extra then return { partial = partial, extra = extra } end
  return partial and PARTIAL or nil
end

local ClassMethods = {}
local ItemMethods = {}
-- User.by_email: an index bound to a class, with query, scan, count.
local IndexHandle = {}
IndexHandle.__index = IndexHandle
IndexHandle.__name = "lunamodb.Index"

-------------------------------------------------------------- declaration

-- Options of the literal, apart from attributes: name -> expected type.
local OPTIONS = {
  table_name = "string", name = "string",
  region = "string", host = "string", profile = "string",
  access_key_id = "string", secret_access_key = "string", session_token = "string",
  connect_timeout = "number", read_timeout = "number", timeout = "number",
  max_attempts = "number", retry = "table", ca_bundle = "string", client = "table",
  billing_mode = "string", read_capacity_units = "number", write_capacity_units = "number",
  stream_view_type = "string", tags = "table", keep_unknown = "boolean",
  attributes = "table", discriminator = "string", indexes = "table",
}
-- The options that make a connection; models that agree on all of them
-- share one client.
local CONNECTION_OPTIONS = {
  "region", "host", "profile", "access_key_id", "secret_access_key", "session_token",
  "connect_timeout", "read_timeout", "timeout", "max_attempts", "ca_bundle",
}
-- A subclass shares its root's table and connection: only these are its own.
local SUBCLASS_OPTIONS = { name = true, attributes = true, discriminator = true, keep_unknown = true }
local BILLING = { PROVISIONED = true, PAY_PER_REQUEST = true }
local STREAM_VIEWS = { NEW_IMAGE = true, OLD_IMAGE = true, NEW_AND_OLD_IMAGES = true, KEYS_ONLY = true }

-- Names an attribute may not take: they are class or item methods (those
-- of later issues included, so adding them never breaks a model).
local RESERVED = {}
for name in ([[
new get create_table delete_table exists describe_table update_ttl from_table from_dynamodb
extend query scan count parallel_scan batch_get batch_write transact_get transact_write get_ref
DoesNotExist
save update delete refresh to_table to_dynamodb key_values is_partial client table_name schema
]]):gmatch("%S+") do RESERVED[name] = true end

local function declare_error(display, msg, level)
  error(format("lunamodb.Model(%s): %s", display, msg), level or 3)
end

local function check_options(decl, display)
  for k, v in pairs(decl) do
    local want = OPTIONS[k]
    if not want then declare_error(display, format("unknown option '%s'", tostring(k)), 4) end
    if type(v) ~= want then
      declare_error(display, format("option '%s' must be a %s (got %s)", k, want, type(v)), 4)
    end
  end
  local name = decl.table_name
  if name and (#name < 3 or #name > 255 or name:find("[^%w_%.%-]")) then
    declare_error(display, format("table_name %q must be 3-255 characters of letters, digits, "
      .. "'_', '-' and '.'", name), 4)
  end
  if decl.billing_mode and not BILLING[decl.billing_mode] then
    declare_error(display, "billing_mode must be \"PROVISIONED\" or \"PAY_PER_REQUEST\"", 4)
  end
  if decl.stream_view_type and not STREAM_VIEWS[decl.stream_view_type] then
    declare_error(display, "stream_view_type must be NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES "
      .. "or KEYS_ONLY", 4)
  end
  if decl.max_attempts ~= nil and (decl.max_attempts < 1 or decl.max_attempts % 1 ~= 0) then
    declare_error(display, "max_attempts must be a whole number >= 1", 4)
  end
  for _, t in ipairs({ "connect_timeout", "read_timeout", "timeout" }) do
    if decl[t] ~= nil and not (decl[t] > 0) then
      declare_error(display, format("%s must be a positive number of seconds", t), 4)
    end
  end
  for _, cap in ipairs({ "read_capacity_units", "write_capacity_units" }) do
    local v = decl[cap]
    if v ~= nil and (v < 1 or v % 1 ~= 0) then
      declare_error(display, format("%s must be a whole number >= 1", cap), 4)
    end
  end
end

-- Builds a class from a literal. parent: the class being extended, if any.
local function build(decl, parent)
  local pdata = parent and classes[parent]
  local display = decl.name or decl.table_name or (pdata and pdata.display) or "Model"
  check_options(decl, display)
  if pdata then
    for k in pairs(decl) do
      if not SUBCLASS_OPTIONS[k] then
        declare_error(display, format("a subclass shares its parent's table: '%s' cannot be set",
          tostring(k)), 3)
      end
    end
  elseif not decl.table_name then
    declare_error(display, "table_name is required", 3)
  end
  local own = decl.attributes or {}
  local merged = {}
  if pdata then
    for name, attr in pairs(pdata.info.by_name) do merged[name] = attr end
  end
  for name, attr in pairs(own) do
    if type(name) ~= "string" then declare_error(display, "attribute names must be strings", 3) end
    if RESERVED[name] then
      declare_error(display, format("attribute '%s' would hide the model method of that name "
        .. "(use attr_name = \"%s\" to keep the stored name)", name, name), 3)
    end
    if name:sub(1, 1) == "_" then
      declare_error(display, format("attribute '%s': names starting with '_' are reserved", name), 3)
    end
    if merged[name] then
      declare_error(display, format("attribute '%s' is already declared by the parent model", name), 3)
    end
    merged[name] = attr
  end
  local ok, T = pcall(A.schema, merged, display)
  if not ok then declare_error(display, tostring(T):gsub("^lunamodb%.attributes%.schema: ", ""), 3) end
  local info = A.info(T)
  if not info.hash_key then
    declare_error(display, "no attribute is declared hash_key = true", 3)
  end

  -- indexes: declared on the root model, bound to its attributes
  local bound_indexes = {}
  if decl.indexes then
    local seen_names = {}
    for name, idecl in pairs(decl.indexes) do
      if type(name) ~= "string" or not indexes.is_index(idecl) then
        declare_error(display, "indexes must map names to lunamodb.GlobalSecondaryIndex{...} "
          .. "or lunamodb.LocalSecondaryIndex{...}", 3)
      end
      if merged[name] or RESERVED[name] then
        declare_error(display, format("index '%s' has the name of an attribute or method", name), 3)
      end
      local okb, b = pcall(indexes.bind, idecl, name, info, display)
      if not okb then error(b, 2) end                -- build is tail-called: 2 is the user
      if seen_names[b.index_name] then
        declare_error(display, format("two indexes are named '%s'", b.index_name), 3)
      end
      seen_names[b.index_name] = true
      bound_indexes[name] = b
    end
  elseif pdata then
    bound_indexes = pdata.indexes
  end

  local cls = {}
  local data = {
    indexes = bound_indexes,
    display = display, schema = T, info = info, parent = parent,
    table_name = pdata and pdata.table_name or decl.table_name,
    decl = decl, root = pdata and pdata.root or nil,
    keep_unknown = decl.keep_unknown,
  }
  data.root = data.root or cls
  if pdata and data.keep_unknown == nil then data.keep_unknown = pdata.keep_unknown end
  if not pdata then
    data.connection = {}
    for _, k in ipairs(CONNECTION_OPTIONS) do data.connection[k] = decl[k] end
    data.connection.retry = decl.retry
    data.client = decl.client
    data.billing_mode = decl.billing_mode
    data.read_capacity_units = decl.read_capacity_units
    data.write_capacity_units = decl.write_capacity_units
    data.stream_view_type = decl.stream_view_type
    data.tags = decl.tags
  else
    data.connection = pdata.connection
  end

  -- polymorphism: a subclass registers its value in the shared Discriminator
  if decl.discriminator then
    if not info.discriminator then
      declare_error(display, "'discriminator' needs a Discriminator attribute in the model", 3)
    end
    info.discriminator:register(cls, decl.discriminator)
    data.discriminated = true
  elseif pdata and info.discriminator then
    declare_error(display, "a subclass of a model with a Discriminator needs its own "
      .. "'discriminator' value", 3)
  end

  -- the item metatable: methods first, then the parent's, never the class
  local item_mt = {
    __index = ItemMethods,
    __name = "lunamodb.Model(" .. display .. ")",
  }
  item_mt.__newindex = function(item, k, v)
    if info.by_name[k] == nil then
      error(format("lunamodb: %s has no attribute '%s'", display, tostring(k)), 2)
    end
    rawset(item, k, v)
  end
  item_mt.__tostring = function(item)
    local parts = {}
    for _, a in ipairs(info.order) do
      local v = rawget(item, a.name)
      if v ~= nil then
        local s = type(v) == "string" and format("%q", v) or tostring(v)
        if type(v) == "table" and getmetatable(v) == nil then s = "{...}" end
        parts[#parts + 1] = a.name .. "=" .. s
      end
    end
    return display .. "(" .. concat(parts, ", ") .. ")"
  end
  data.item_mt = item_mt
  item_mt.__class = cls

  -- the attribute paths and new live behind __index, so the class table
  -- stays empty and every assignment to it raises
  local members = {}
  for k, v in pairs(T) do members[k] = v end
  -- User.new{...} and User:new{...} both work
  members.new = function(a, b)
    if a == cls then return ClassMethods.new(cls, b) end
    return ClassMethods.new(cls, a)
  end
  members.get_ref = function(a, b, c)
    if a == cls then return ClassMethods.get_ref(cls, b, c) end
    return ClassMethods.get_ref(cls, a, b)
  end
  for name, idx in pairs(bound_indexes) do
    members[name] = setmetatable({ cls = cls, index = idx }, IndexHandle)
  end
  local paths = {}
  for k, v in pairs(members) do paths[k] = v end
  data.paths = paths
  classes[cls] = data
  -- User.score is a table lookup (paths are on every update's and condition's path); the
  -- class methods, and a typo (User.login for User.logins), which raises instead of reading
  -- nil, go on to a function
  setmetatable(members, { __index = function(_, k)
    local m = ClassMethods[k]
    if m == nil then
      error(format("lunamodb: %s has no attribute or method '%s'", display, tostring(k)), 2)
    end
    return m
  end })
  return setmetatable(cls, {
    __index = members,
    __newindex = function(_, k)
      error(format("lunamodb: %s: cannot set '%s' on a model class", display, tostring(k)), 2)
    end,
    __tostring = function() return "lunamodb.Model(" .. display .. ")" end,
    __name = "lunamodb.Model",
  })
end

function M.Model(decl)
  if type(decl) ~= "table" then
    error("lunamodb.Model: expected a table literal (got " .. type(decl) .. ")", 2)
  end
  return build(decl, nil)
end

-- A subclass sharing the table: more attributes and a discriminator value.
function ClassMethods.extend(cls, decl)
  if not classes[cls] then error("lunamodb: use Model:extend{...} on a model class", 2) end
  if type(decl) ~= "table" then
    error("lunamodb: extend: expected a table literal (got " .. type(decl) .. ")", 2)
  end
  return build(decl, cls)
end

function M.is_model(v)
  return classes[v] ~= nil
end

function M.class_of(item)
  local mt = getmetatable(item)
  return type(mt) == "table" and rawget(mt, "__class") or nil
end

local function class_data(cls, what)
  local data = classes[cls]
  if not data then
    error(format("lunamodb: %s must be called on a model class (User:%s(...), not User.%s(...))",
      what, what, what), 3)
  end
  return data
end

local function item_data(item, what)
  local cls = M.class_of(item)
  local data = cls and classes[cls]
  if not data then
    error(format("lunamodb: %s must be called on an item (item:%s(...))", what, what), 3)
  end
  return data, cls
end

-- "User:save" and the like, made once per class and method (error messages name the call).
local function call_name(data, method)
  local names = data.call_names
  if not names then
    names = {}
    data.call_names = names
  end
  local name = names[method]
  if not name then
    name = data.display .. ":" .. method
    names[method] = name
  end
  return name
end

-- No options: one shared table (callers only read options).
local NO_OPTIONS = frozen({}, "the shared empty options table")

-- Strict option tables: a typo never silently changes behaviour.
local function check_call_options(opts, allowed, what)
  if opts == nil then return NO_OPTIONS end
  if type(opts) ~= "table" then
    error(format("lunamodb: %s: options must be a table (got %s)", what, type(opts)), 3)
  end
  for k in pairs(opts) do
    if not allowed[k] then
      error(format("lunamodb: %s: unknown option '%s'", what, tostring(k)), 3)
    end
  end
  return opts
end

local function set_of(...)
  local t = {}
  for i = 1, select("#", ...) do t[select(i, ...)] = true end
  return t
end

-------------------------------------------------------------- connection

local shared_clients = setmetatable({}, { __mode = "v" })

local function connection_key(conn)
  local parts = {}
  for _, k in ipairs(CONNECTION_OPTIONS) do
    local v = conn[k]
    if k == "secret_access_key" or k == "session_token" then
      v = v and core.sha256_hex(v)                    -- never keep secrets in a key
    end
    parts[#parts + 1] = k .. "=" .. tostring(v)
  end
  if conn.retry then
    local keys = {}
    for k, v in pairs(conn.retry) do keys[#keys + 1] = tostring(k) .. ":" .. tostring(v) end
    sort(keys)
    parts[#parts + 1] = "retry=" .. concat(keys, ",")
  end
  return concat(parts, "\0")
end

-- The client of a class: given in the literal, or shared by every model
-- with the same connection options. Created on first use, so declaring a
-- model never touches configuration.
local function client_of(data)
  local root = classes[data.root]
  if root.client then return root.client end
  local key = connection_key(root.connection)
  local c = shared_clients[key]
  if not c then
    local opts = {}
    for k, v in pairs(root.connection) do opts[k] = v end
    c = Client.new(opts)
    shared_clients[key] = c
  end
  root.client = c
  return c
end

function ClassMethods.client(cls)
  return client_of(class_data(cls, "client"))
end

----------------------------------------------------------------- items

local function new_item(data)
  return setmetatable({}, data.item_mt)
end

-- Sets the discriminator and the defaults; new_item: default_for_new too.
local function apply_defaults(data, cls, item, new)
  local info = data.info
  local defaulted = data.defaulted
  if not defaulted then                 -- the attributes with a default, found once
    defaulted = {}
    for _, a in ipairs(info.order) do
      if a.default ~= nil or a.default_for_new ~= nil then defaulted[#defaulted + 1] = a end
    end
    data.defaulted = defaulted
  end
  for i = 1, #defaulted do
    local a = defaulted[i]
    if rawget(item, a.name) == nil then
      local d = a:default_value(new)
      if d ~= nil then rawset(item, a.name, d) end
    end
  end
  if info.discriminator and data.discriminated then
    rawset(item, info.discriminator.name, cls)
  end
end

-- An item holding the given values (declared names only), then defaults:
-- default_for_new as well when it is a new item.
local function item_from_values(data, cls, values, new, what)
  local item = new_item(data)
  for k, v in pairs(values) do
    if data.info.by_name[k] == nil then
      error(format("lunamodb: %s%s: %s has no attribute '%s'", data.display, what, data.display,
        tostring(k)), 3)
    end
    rawset(item, k, v)
  end
  apply_defaults(data, cls, item, new)
  return item
end

-- User.new{...} (or User:new{...}): a new item with defaults applied.
function ClassMethods.new(cls, values)
  if values == nil and classes[cls] == nil and type(cls) == "table" then
    error("lunamodb: call new on a model class: User.new{...} or User:new{...}", 2)
  end
  local data = class_data(cls, "new")
  if values ~= nil and type(values) ~= "table" then
    error(format("lunamodb: %s.new: expected a table of values (got %s)", data.display, type(values)), 2)
  end
  return item_from_values(data, cls, values or {}, true, ".new")
end

-- Is c cls or one of its subclasses?
local function descends(c, cls)
  while c and c ~= cls do c = classes[c] and classes[c].parent end
  return c == cls
end

local function wrong_class(stored, data)
  return errors.new {
    kind = "model", code = "WrongClass",
    message = format("the stored item is a %s, not a %s", classes[stored].display, data.display),
  }
end

-- The class a stored wire item belongs to (polymorphism), read from its
-- discriminator before anything else so the item is decoded with that
-- class's own attributes. nil, err when it is no cls.
local function stored_class(cls, data, wire)
  local disc = data.info.discriminator
  local av = disc and wire[disc.wire_name]
  if not av or av.S == nil then return cls, data end
  local stored = disc.class_of[av.S]
  if stored == nil then
    return nil, errors.new {
      kind = "model", code = "DeserializationError",
      message = format("%s: unknown discriminator value %q", data.display, av.S),
    }
  end
  if not descends(stored, cls) then return nil, wrong_class(stored, data) end
  return stored, classes[stored]
end

local DECODE_OPTIONS = { unknown = "aside" }
-- Only the attributes a model declares are written (as PynamoDB writes them): a field rawset
-- on an item under another name is not the model's.
local WRITE_OPTIONS = { unknown = "ignore" }

-- Decodes a wire item with a class's schema into its values, the names the model does not
-- declare at [EXTRA] (as core.decode_items puts them); stored data the schema cannot read is
-- a runtime failure (nil, err), not a raise.
local function decode(data, wire)
  local ok, values = pcall(A.deserialize_item, data.schema, wire, DECODE_OPTIONS)
  if ok then return values end
  return nil, errors.new {
    kind = "model", code = "DeserializationError",
    message = (tostring(values):gsub("^lunamodb: ", data.display .. ": stored ")),
  }
end

-- An item from decoded values (core.decode_items', or decode's): their table, fresh for each
-- item, becomes the item (no copy); the names the model does not declare are already aside.
local function load_values(cls, data, values, partial)
  local extra = values[EXTRA]
  if extra then values[EXTRA] = nil end
  local item = setmetatable(values, data.item_mt)
  if not partial then apply_defaults(data, cls, item, false) end
  if partial or extra then item_state[item] = state_of(partial, extra) end   -- a fresh table
  return item
end

-- An item from a wire item; partial when read through a projection.
local function load_item(cls, data, wire, partial)
  local icls, idata = stored_class(cls, data, wire)
  if not icls then return nil, idata end
  local values, err = decode(idata, wire)
  if not values then return nil, err end
  return load_values(icls, idata, values, partial)
end

-- Replaces an item's values with a stored item's (refresh, update). native: the core
-- decoded it into values already (response_decoder). Either way the values hold declared
-- names only, the others aside, so one pass over the declared attributes sets and clears
-- them (an item holds no others).
local function reload(item, data, cls, wire, native)
  local values = wire
  if not native then
    local icls, idata = stored_class(cls, data, wire)
    if not icls then return nil, idata end
    if icls ~= cls then return nil, wrong_class(icls, data) end
    local err
    values, err = decode(idata, wire)
    if not values then return nil, err end
  end
  local order = data.info.order
  for i = 1, #order do
    local name = order[i].name
    local v = values[name]
    -- a plain assignment: a name the item holds needs no call, and __newindex takes every
    -- declared one it lacks
    if v ~= nil then
      item[name] = v
    elseif item[name] ~= nil then
      item[name] = nil
    end
  end
  apply_defaults(data, cls, item, false)
  item_state[item] = state_of(false, values[EXTRA])
  return item
end

-- A decoder of responses carrying items of this class, for client:call_decoded and
-- pagination: the core decodes the items under `field` (mode "item", "list" or "tables",
-- see core.decode_items) straight into values and marks the response [NATIVE]; when it
-- cannot (a polymorphic model, whose items each name their class; a stored value the
-- schema cannot read), the response is decoded generically and its items go through
-- load_item, which reports what is wrong. Cached per class.
local function response_decoder(data, mode, field)
  local decoders = data.decoders
  if not decoders then
    decoders = {}
    data.decoders = decoders
  end
  local cache = decoders[mode]                 -- by mode, then field: no key string per call
  if not cache then
    cache = {}
    decoders[mode] = cache
  end
  local dec = cache[field]
  if dec then return dec end
  if data.info.discriminator then
    dec = json_decode
  else
    local spec = A.decode_spec(data.schema)
    dec = function(text)
      local ok, out = pcall(decode_items, text, spec, mode, field, DECODE_HOOKS)
      if ok and out then
        out[NATIVE] = true
        return out
      end
      return json_decode(text)
    end
  end
  cache[field] = dec
  return dec
end

-- A call whose response carries items of this class (a client given as the `client`
-- option needs only `call`).
local function call_items(data, operation, params, mode, field)
  local client = client_of(data)
  if client.call_decoded then
    return client:call_decoded(operation, params, response_decoder(data, mode, field))
  end
  return client:call(operation, params)
end

function ClassMethods.from_table(cls, t)
  local data = class_data(cls, "from_table")
  if type(t) ~= "table" then
    error(format("lunamodb: %s:from_table: expected a table (got %s)", data.display, type(t)), 2)
  end
  -- a table naming a subclass in its discriminator becomes that subclass
  local disc = data.info.discriminator
  local sub = disc and t[disc.name]
  if sub ~= nil and sub ~= cls then
    if not (classes[sub] and descends(sub, cls)) then
      error(format("lunamodb: %s:from_table: '%s' is not %s or one of its subclasses",
        data.display, disc.name, data.display), 2)
    end
    cls, data = sub, classes[sub]
  end
  return item_from_values(data, cls, t, false, ":from_table")
end

-- DynamoDB's typed JSON (text, or a decoded table) -> an item.
function ClassMethods.from_dynamodb(cls, doc)
  local data = class_data(cls, "from_dynamodb")
  if type(doc) == "string" then
    local decoded, err = core.json_decode(doc)
    if decoded == nil then
      error(format("lunamodb: %s:from_dynamodb: %s", data.display, err), 2)
    end
    doc = decoded
  end
  if type(doc) ~= "table" then
    error(format("lunamodb: %s:from_dynamodb: expected JSON text or a table (got %s)",
      data.display, type(doc)), 2)
  end
  local item, err = load_item(cls, data, doc, false)
  if not item then error("lunamodb: " .. data.display .. ":from_dynamodb: " .. err.message, 2) end
  return item
end

function ItemMethods.to_table(item)
  item_data(item, "to_table")
  local t = {}
  for k, v in pairs(item) do t[k] = v end
  return t
end

-- DynamoDB's typed JSON text of the item (binary base64-encoded), as the
-- AWS console shows it; from_dynamodb reads it back.
function ItemMethods.to_dynamodb(item)
  local data = item_data(item, "to_dynamodb")
  return core.json_encode((A.serialize_item(data.schema, item, WRITE_OPTIONS)))
end

function ItemMethods.is_partial(item)
  item_data(item, "is_partial")
  return item_state[item] and item_state[item].partial or false
end

-- The hash (and range) values of an item.
function ItemMethods.key_values(item)
  local data = item_data(item, "key_values")
  local info = data.info
  return rawget(item, info.hash_key.name), info.range_key and rawget(item, info.range_key.name)
end

local function key_of(data, item)
  local info = data.info
  return A.serialize_key(data.schema, rawget(item, info.hash_key.name),
    info.range_key and rawget(item, info.range_key.name))
end

---------------------------------------------------------- version logic

-- An item's Key for a single-item request: its JSON straight from the core (key_of builds
-- the wire table when the core does not take it, and raises what is wrong).
local function key_param(data, item)
  local text = encode_key_json(data.schema, item)
  if text then return raw_json(text) end
  return key_of(data, item)
end

-- '{"TableName":"<name>",' once per class: the start of the bodies the core writes.
local function body_head(data)
  local head = data.body_head
  if not head then
    head = '{"TableName":' .. core.json_encode(data.table_name) .. ","
    data.body_head = head
  end
  return head
end

-- '{"TableName":"<name>","Key":' once per class: what a body's Key follows.
local function key_head(data)
  local head = data.key_head
  if not head then
    head = body_head(data) .. '"Key":'
    data.key_head = head
  end
  return head
end

-- The Key for hash (and range) values, the same way: its JSON text (between prefix and
-- suffix when given; nil when the core does not take the values), or the Key param.
local function key_text_of_values(data, hash, range, prefix, suffix)
  local info = data.info
  if hash ~= nil and (range ~= nil) == (info.range_key ~= nil) then
    local vals = { [info.hash_key.name] = hash }
    if info.range_key then vals[info.range_key.name] = range end
    return encode_key_json(data.schema, vals, prefix, suffix)
  end
  return nil
end

local function key_of_values(data, hash, range)
  local text = key_text_of_values(data, hash, range)
  if text then return raw_json(text) end
  return A.serialize_key(data.schema, hash, range)
end

-- The condition and the new value a versioned write carries (§6.2 of the
-- PynamoDB reference): nil locally means "must not exist yet".
local function version_path(data)
  return data.paths[data.info.version.name]
end

local function version_condition(data, item)
  local v = data.info.version
  if not v then return nil end
  local current = rawget(item, v.name)
  local p = version_path(data)
  if current == nil then return p:does_not_exist(), 1 end
  return p:eq(current), current + 1
end

local function and_conditions(a, b)
  if a and b then return a * b end
  return a or b
end

-- opts.condition, checked; `what` names the call ("User:save"), the message adds " condition".
local function check_condition(cond, what)
  if cond ~= nil then path.check_condition(cond, what .. " condition") end
  return cond
end

------------------------------------------------------------------- CRUD

local GET_OPTIONS = set_of("consistent_read", "attributes")

-- User:get(hash[, range][, opts]) -> item, or nil, err ("DoesNotExist"
-- when there is no such item). opts: consistent_read, attributes (a
-- projection: the item comes back partial and cannot be saved).
function ClassMethods.get(cls, hash, range, opts)
  local data = class_data(cls, "get")
  if opts == nil and type(range) == "table" and getmetatable(range) == nil then
    if not data.info.range_key then
      range, opts = nil, range
    else
      error(format("lunamodb: %s:get: the range key value is missing (options come third: "
        .. "%s:get(hash, range, options))", data.display, data.display), 2)
    end
  end
  opts = check_call_options(opts, GET_OPTIONS, call_name(data, "get"))
  -- the body as text, written around the Key by the core: no params table to encode
  local params = not opts.attributes and client_of(data).call_decoded
    and key_text_of_values(data, hash, range, key_head(data),
      opts.consistent_read and ',"ConsistentRead":true}' or ',"ConsistentRead":false}')
  local partial = false
  if not params then
    params = {
      TableName = data.table_name,
      Key = key_of_values(data, hash, range),
      ConsistentRead = opts.consistent_read and true or false,
    }
  end
  if opts.attributes then
    local s = serializer.new()
    params.ProjectionExpression = s:projection(opts.attributes, cls)
    s:apply(params)
    partial = true
  end
  local out, err = call_items(data, "GetItem", params, "item", "Item")
  if not out then return nil, err end
  if not out.Item then
    return nil, errors.new {
      kind = "model", operation = "GetItem", code = M.DoesNotExist,
      message = format("%s item does not exist", data.display),
    }
  end
  if out[NATIVE] then return load_values(cls, data, out.Item, partial) end
  return load_item(cls, data, out.Item, partial)
end

local SAVE_OPTIONS = set_of("condition", "add_version_condition", "keep_unknown")
local UPDATE_OPTIONS = set_of("condition", "add_version_condition")
local DELETE_OPTIONS = set_of("condition", "add_version_condition")

-- Request builders shared by the single-item writes and transactions, so
-- both carry the same version conditions. Each returns the operation's
-- parameters (without TableName's siblings a transaction adds) and what to
-- do locally on success. `what` names the caller in messages; misuse
-- raises at level `level` (the user's frame).

local function finish_params(params, s)
  s:apply(params)
  return params
end

-- params with cond (if any) as its ConditionExpression and the placeholders it uses.
local function with_condition(params, cond)
  if not cond then return params end
  local s = serializer.new()
  params.ConditionExpression = s:condition(cond)
  return finish_params(params, s)
end

-- The stored names the model does not declare that a whole write carries back: keep (the
-- call's keep_unknown) or else the model's option decides. nil when none.
local function kept_extra(data, state, keep)
  if keep == nil then keep = data.keep_unknown end
  return keep and state.extra or nil
end

-- The item as written: its JSON text from the core's encoder, or (when the core does not
-- take it, or stored names the model does not declare are kept alongside) the wire table
-- serialize_item builds, which raises what is wrong.
local function item_wire(data, item, state, keep)
  local extra = kept_extra(data, state, keep)
  local text = not extra and encode_item_json(data.schema, item)
  if text then return text end
  local wire = A.serialize_item(data.schema, item, WRITE_OPTIONS)
  if extra then
    for k, v in pairs(extra) do wire[k] = A.serialize_dynamic(v, k) end
  end
  return wire
end

-- The item's state, for writing it whole (a projected item cannot be). level as the
-- caller's own (0: no position).
local function whole_state(item, what, level)
  local state = item_state[item] or WHOLE
  if state.partial then
    error(format("lunamodb: %s: this item was read through a projection and holds only "
      .. "some attributes; saving it would erase the others (use update instead)", what),
      level == 0 and 0 or level + 1)
  end
  return state
end

-- For a batch's PutRequest (the version left as it is): whether the core's encoder may write
-- the item (it keeps no stored names aside), and its state.
local function put_whole(data, item, what, level)
  local state = whole_state(item, what, level)
  return not kept_extra(data, state, nil), state
end

-- The item's JSON text when the core's encoder does not take it (what is wrong raises).
local function put_item_text(data, item, state, level)
  local ok, wire = pcall(item_wire, data, item, state, nil)
  if not ok then error(wire, level) end
  if type(wire) ~= "string" then wire = core.json_encode(wire) end
  return wire
end

-- PutItem of the whole item: params, the version it will hold.
local function save_request(item, opts, what, level)
  local data = item_data(item, what)
  local state = whole_state(item, what, level)
  local cond = check_condition(opts.condition, what)
  local vattr = not opts.keep_version and data.info.version
  local old_version, new_version
  if vattr then
    local vcond
    vcond, new_version = version_condition(data, item)
    if opts.add_version_condition ~= false then cond = and_conditions(cond, vcond) end
    old_version = rawget(item, vattr.name)
    rawset(item, vattr.name, new_version)
  end
  local ok, wire = pcall(item_wire, data, item, state, opts.keep_unknown)
  if vattr then rawset(item, vattr.name, old_version) end
  if not ok then error(wire, level) end
  if type(wire) == "string" then wire = raw_json(wire) end
  local params = { TableName = data.table_name, Item = wire }
  return with_condition(params, cond), new_version
end

-- UpdateItem: params (without ReturnValues), the version it will hold.
local function update_request(item, actions, opts, what, level, key)
  local data = item_data(item, what)
  if type(actions) ~= "table" or path.is_action(actions) or #actions == 0 then
    error(format("lunamodb: %s: expected a non-empty list of update actions", what), level)
  end
  for i = 1, #actions do
    if not path.is_action(actions[i]) then
      error(format("lunamodb: %s: action %d is not an update action (got %s)", what, i,
        type(actions[i])), level)
    end
  end
  local cond = check_condition(opts.condition, what)
  local all = actions
  local vattr = data.info.version
  local new_version
  if vattr then
    all = {}
    for i = 1, #actions do all[i] = actions[i] end
    local vcond
    vcond, new_version = version_condition(data, item)
    local p = version_path(data)
    if rawget(item, vattr.name) == nil then
      all[#all + 1] = p:set(1)
    else
      all[#all + 1] = p:add(1)
    end
    if opts.add_version_condition ~= false then cond = and_conditions(cond, vcond) end
  end
  local params = { TableName = data.table_name, Key = key or key_of(data, item) }
  local s = serializer.new()
  -- the condition is numbered first, as PynamoDB does (reference §5.4)
  if cond then params.ConditionExpression = s:condition(cond) end
  params.UpdateExpression = s:update(all)
  return finish_params(params, s), new_version
end

local UPDATE_SPEC, update_body = path.UPDATE_SPEC, core.update_body

-- Whether a write can go as a body the core writes: no condition or version to add, and a
-- client that takes body text (one given as the `client` option may only have `call`).
local function plain_write(data, opts)
  return opts.condition == nil and not data.info.version and client_of(data).call_decoded ~= nil
end

-- The UpdateItem body (ReturnValues ALL_NEW) the core writes straight from the actions, when
-- no condition or version is involved; nil otherwise, or when the core does not take the
-- actions (update_request then builds the params, and raises what is wrong).
local function fast_update_body(data, item, actions, opts)
  if not plain_write(data, opts) or type(actions) ~= "table" then return nil end
  local head = encode_key_json(data.schema, item, key_head(data), ",")
  if not head then return nil end
  return update_body(UPDATE_SPEC, actions, head, ',"ReturnValues":"ALL_NEW"}')
end

-- The PutItem body the core writes straight from the item, when no condition or version is
-- involved and no stored names are kept aside; nil otherwise (save_request then builds it).
local function fast_put_body(data, item, opts, what)
  if not plain_write(data, opts) then return nil end
  if kept_extra(data, whole_state(item, what, 3), opts.keep_unknown) then return nil end
  if not data.put_head then data.put_head = body_head(data) .. '"Item":' end
  return (core.encode_item(item, A.item_plan(data.schema), false, data.put_head, "}"))
end

-- DeleteItem: params.
local function delete_request(item, opts, what, key)
  local data = item_data(item, what)
  local cond = check_condition(opts.condition, what)
  if data.info.version and opts.add_version_condition ~= false then
    cond = and_conditions(cond, (version_condition(data, item)))
  end
  local params = { TableName = data.table_name, Key = key or key_of(data, item) }
  return with_condition(params, cond)
end

-- item:save{ condition = ..., add_version_condition = true, keep_unknown = false }
-- Replaces the whole stored item (PutItem). Stored attributes the model
-- does not declare are dropped unless keep_unknown (or the model's option)
-- writes them back. Returns the item, or nil, err.
function ItemMethods.save(item, opts)
  local data = item_data(item, "save")
  local what = call_name(data, "save")
  opts = check_call_options(opts, SAVE_OPTIONS, what)
  local body = fast_put_body(data, item, opts, what)
  local out, err, new_version
  if body then
    out, err = client_of(data):call_decoded("PutItem", body, json_decode)
  else
    local params
    params, new_version = save_request(item, opts, what, 3)
    out, err = client_of(data):call("PutItem", params)
  end
  if not out then return nil, err end
  if data.info.version then rawset(item, data.info.version.name, new_version) end
  return item
end

-- item:update({ User.logins:add(1), ... }[, { condition = ... }])
-- UpdateItem, then the item holds the stored values (ALL_NEW). Like
-- DynamoDB (and PynamoDB) it creates the item when it does not exist; add
-- condition = User.email:exists() to require it. Returns the item, or nil, err.
function ItemMethods.update(item, actions, opts)
  local data, cls = item_data(item, "update")
  local what = call_name(data, "update")
  opts = check_call_options(opts, UPDATE_OPTIONS, what)
  local params = fast_update_body(data, item, actions, opts)
  if not params then
    params = update_request(item, actions, opts, what, 3, key_param(data, item))
    params.ReturnValues = "ALL_NEW"
  end
  local out, err = call_items(data, "UpdateItem", params, "item", "Attributes")
  if not out then return nil, err end
  local ok, rerr = reload(item, data, cls, out.Attributes or {}, out[NATIVE])
  if not ok then return nil, rerr end
  return item
end

-- item:delete{ condition = ... } -> true, or nil, err. A versioned item
-- is deleted only at the version held locally.
function ItemMethods.delete(item, opts)
  local data = item_data(item, "delete")
  local what = call_name(data, "delete")
  opts = check_call_options(opts, DELETE_OPTIONS, what)
  local out, err = client_of(data):call("DeleteItem",
    delete_request(item, opts, what, key_param(data, item)))
  if not out then return nil, err end
  return true
end

local REFRESH_OPTIONS = set_of("consistent_read")

-- item:refresh{ consistent_read = true } -> the item with the stored
-- values, or nil, err ("DoesNotExist" when it is gone).
function ItemMethods.refresh(item, opts)
  local data, cls = item_data(item, "refresh")
  opts = check_call_options(opts, REFRESH_OPTIONS, call_name(data, "refresh"))
  local out, err = call_items(data, "GetItem", {
    TableName = data.table_name, Key = key_param(data, item),
    ConsistentRead = opts.consistent_read and true or false,
  }, "item", "Item")
  if not out then return nil, err end
  if not out.Item then
    return nil, errors.new {
      kind = "model", operation = "GetItem", code = M.DoesNotExist,
      message = format("%s item does not exist in the table", data.display),
    }
  end
  return reload(item, data, cls, out.Item, out[NATIVE])
end

--------------------------------------------------------- table lifecycle

local function root_data(cls, what)
  local data = class_data(cls, what)
  return classes[data.root], data
end

-- The CreateTable request of a model (PynamoDB's shape, reference §6.14).
local function create_table_params(root, opts)
  local info = root.info
  local defs, keys = {}, {}
  for _, role in ipairs({ { info.hash_key, "HASH" }, { info.range_key, "RANGE" } }) do
    local a = role[1]
    if a then
      defs[#defs + 1] = { AttributeName = a.wire_name, AttributeType = a.type }
      keys[#keys + 1] = { AttributeName = a.wire_name, KeyType = role[2] }
    end
  end
  local params = { TableName = root.table_name, AttributeDefinitions = defs, KeySchema = keys }
  local billing = opts.billing_mode or root.billing_mode or "PROVISIONED"
  -- index keys join the attribute definitions once each
  local defined = {}
  for _, d in ipairs(defs) do defined[d.AttributeName] = true end
  local function define(a)
    if a and not defined[a.wire_name] then
      defined[a.wire_name] = true
      defs[#defs + 1] = { AttributeName = a.wire_name, AttributeType = a.type }
    end
  end
  local names = {}
  for name in pairs(root.indexes) do names[#names + 1] = name end
  sort(names)
  for _, name in ipairs(names) do
    local idx = root.indexes[name]
    define(idx.hash)
    define(idx.range)
    local ks = { { AttributeName = idx.hash.wire_name, KeyType = "HASH" } }
    if idx.range then ks[2] = { AttributeName = idx.range.wire_name, KeyType = "RANGE" } end
    local spec = { IndexName = idx.index_name, KeySchema = ks, Projection = idx.projection }
    if idx.global then
      if billing ~= "PAY_PER_REQUEST" then
        spec.ProvisionedThroughput = {
          ReadCapacityUnits = idx.read_capacity_units or opts.read_capacity_units or root.read_capacity_units,
          WriteCapacityUnits = idx.write_capacity_units or opts.write_capacity_units or root.write_capacity_units,
        }
      end
      params.GlobalSecondaryIndexes = params.GlobalSecondaryIndexes or {}
      params.GlobalSecondaryIndexes[#params.GlobalSecondaryIndexes + 1] = spec
    else
      params.LocalSecondaryIndexes = params.LocalSecondaryIndexes or {}
      params.LocalSecondaryIndexes[#params.LocalSecondaryIndexes + 1] = spec
    end
  end
  if not BILLING[billing] then
    error("lunamodb: create_table: billing_mode must be \"PROVISIONED\" or \"PAY_PER_REQUEST\"", 3)
  end
  if billing == "PAY_PER_REQUEST" then
    params.BillingMode = "PAY_PER_REQUEST"
  else
    local r = opts.read_capacity_units or root.read_capacity_units
    local w = opts.write_capacity_units or root.write_capacity_units
    if not r or not w then
      error(format("lunamodb: %s:create_table: PROVISIONED billing needs read_capacity_units and "
        .. "write_capacity_units (or billing_mode = \"PAY_PER_REQUEST\")", root.display), 3)
    end
    params.ProvisionedThroughput = { ReadCapacityUnits = r, WriteCapacityUnits = w }
  end
  local view = opts.stream_view_type or root.stream_view_type
  if view then
    if not STREAM_VIEWS[view] then
      error("lunamodb: create_table: stream_view_type must be NEW_IMAGE, OLD_IMAGE, "
        .. "NEW_AND_OLD_IMAGES or KEYS_ONLY", 3)
    end
    params.StreamSpecification = { StreamEnabled = true, StreamViewType = view }
  end
  if root.tags then
    local tags = {}
    for k, v in pairs(root.tags) do tags[#tags + 1] = { Key = tostring(k), Value = tostring(v) } end
    sort(tags, function(x, y) return x.Key < y.Key end)
    params.Tags = tags
  end
  return params
end
M.create_table_params = create_table_params

-- Polls DescribeTable until the table (and its indexes) are ACTIVE, or
-- gone when want == nil. Waits through the client's transport.
local function wait_for(root, want, timeout_s)
  local client = client_of(root)
  local deadline = core.monotonic_ms() + (timeout_s or 300) * 1000
  local delay = 100
  while true do
    local out, err = client:call("DescribeTable", { TableName = root.table_name })
    if not out then
      if want == nil and err:is("ResourceNotFound") then return true end
      return nil, err
    end
    local t = out.Table
    if want and t.TableStatus == want then
      local ready = true
      for _, g in ipairs(t.GlobalSecondaryIndexes or {}) do
        if g.IndexStatus ~= "ACTIVE" then ready = false end
      end
      if ready then return true end
    end
    if core.monotonic_ms() + delay > deadline then
      return nil, errors.new {
        kind = "model", code = "WaiterTimeout", operation = "DescribeTable",
        message = format("table %s did not become %s within %s s", root.table_name,
          want or "deleted", tostring(timeout_s or 300)),
      }
    end
    client:sleep(delay)
    delay = delay < 2000 and delay * 2 or 2000
  end
end

local CREATE_OPTIONS = set_of("billing_mode", "read_capacity_units", "write_capacity_units",
  "stream_view_type", "wait", "wait_timeout", "ttl")

-- User:create_table{ billing_mode = "PAY_PER_REQUEST", wait = true }
-- Creates the table unless it exists, waits for ACTIVE when asked, and
-- enables TTL on the model's TTL attribute unless it already is (ttl =
-- false skips that). Returns true, or nil, err.
function ClassMethods.create_table(cls, opts)
  local root, data = root_data(cls, "create_table")
  opts = check_call_options(opts, CREATE_OPTIONS, data.display .. ":create_table")
  local params = create_table_params(root, opts)
  local client = client_of(root)
  local exists, err = ClassMethods.exists(cls)
  if exists == nil then return nil, err end
  if not exists then
    local out
    out, err = client:call("CreateTable", params)
    if not out and not err:is("ResourceInUse") then return nil, err end
  end
  if opts.wait then
    local ok
    ok, err = wait_for(root, "ACTIVE", opts.wait_timeout)
    if not ok then return nil, err end
  end
  if root.info.ttl and opts.ttl ~= false then
    local ok
    ok, err = ClassMethods.update_ttl(cls)
    if not ok then return nil, err end
  end
  return true
end

local DELETE_TABLE_OPTIONS = set_of("wait", "wait_timeout")

-- User:delete_table{ wait = true } -> true, or nil, err.
function ClassMethods.delete_table(cls, opts)
  local root, data = root_data(cls, "delete_table")
  opts = check_call_options(opts, DELETE_TABLE_OPTIONS, data.display .. ":delete_table")
  local out, err = client_of(root):call("DeleteTable", { TableName = root.table_name })
  if not out then return nil, err end
  if opts.wait then return wait_for(root, nil, opts.wait_timeout) end
  return true
end

-- User:describe_table() -> the Table description, or nil, err.
function ClassMethods.describe_table(cls)
  local root = root_data(cls, "describe_table")
  local out, err = client_of(root):call("DescribeTable", { TableName = root.table_name })
  if not out then return nil, err end
  return out.Table
end

-- User:exists() -> whether the table exists; nil, err on any other failure.
function ClassMethods.exists(cls)
  local root = root_data(cls, "exists")
  local out, err = client_of(root):call("DescribeTable", { TableName = root.table_name })
  if out then return true end
  if err:is("ResourceNotFound") then return false end
  return nil, err
end

-- Enables TTL on the model's TTL attribute, unless it already is.
function ClassMethods.update_ttl(cls)
  local root, data = root_data(cls, "update_ttl")
  local ttl = root.info.ttl
  if not ttl then
    error(format("lunamodb: %s:update_ttl: the model has no TTL attribute", data.display), 2)
  end
  local client = client_of(root)
  local out, err = client:call("DescribeTimeToLive", { TableName = root.table_name })
  if not out then return nil, err end
  local d = out.TimeToLiveDescription or {}
  if d.AttributeName == ttl.wire_name and (d.TimeToLiveStatus == "ENABLED" or d.TimeToLiveStatus == "ENABLING") then
    return true
  end
  out, err = client:call("UpdateTimeToLive", { TableName = root.table_name,
    TimeToLiveSpecification = { AttributeName = ttl.wire_name, Enabled = true } })
  if not out then return nil, err end
  return true
end

function ClassMethods.table_name(cls)
  return classes[class_data(cls, "table_name").root].table_name
end

-- The schema behind the class (lunamodb.attributes), for advanced use.
function ClassMethods.schema(cls)
  return class_data(cls, "schema").schema
end


------------------------------------------------------------- reading

-- path.check_condition's message, raised at the caller's level.
local function raise_unless_condition(x, what, level)
  if not path.is_condition(x) then
    local _, msg = pcall(path.check_condition, x, what)
    error(msg, level + 1)
  end
end

local RANGE_OPERATORS = { ["="] = true, ["<"] = true, ["<="] = true, [">"] = true, [">="] = true }

-- The key condition of a query: hash = value, AND the range condition,
-- which must be one DynamoDB accepts on the (index) range key.
local function key_condition(data, where, hash_attr, range_attr, hash, range_cond)
  if hash == nil then
    error(format("lunamodb: %s: a hash key value is required", where), 4)
  end
  local hpath = data.paths[hash_attr.name]
  local cond = hpath:eq(hash)
  if range_cond == nil then return cond end
  raise_unless_condition(range_cond, where .. ": range_key_condition", 4)
  if not range_attr then
    error(format("lunamodb: %s: range_key_condition given, but there is no range key", where), 4)
  end
  local target, values
  if range_cond.op == "cmp" and RANGE_OPERATORS[range_cond.sym] then
    target, values = range_cond.left, { range_cond.right }
  elseif range_cond.op == "between" then
    target, values = range_cond.left, { range_cond.lo, range_cond.hi }
  elseif range_cond.op == "fn" and range_cond.name == "begins_with" then
    target, values = range_cond.args[1], { range_cond.args[2] }
  else
    error(format("lunamodb: %s: range_key_condition must be one eq, lt, le, gt, ge, between or "
      .. "begins_with on the range key '%s'", where, range_attr.name), 4)
  end
  local segs = path.is_path(target) and path.segments(target)
  if not segs or #segs ~= 1 or segs[1] ~= range_attr.wire_name then
    error(format("lunamodb: %s: range_key_condition is on %s, not on the range key '%s'", where,
      path.is_path(target) and path.text(target) or "a size", range_attr.name), 4)
  end
  for _, v in ipairs(values) do
    if path.is_path(v) or type(v) ~= "table" or rawget(v, "kind") ~= "value" then
      error(format("lunamodb: %s: range_key_condition must compare the range key '%s' with "
        .. "values, not with other attributes", where, range_attr.name), 4)
    end
  end
  return cond * range_cond
end

-- Subclass reads only return that subclass (and its own subclasses).
local function class_filter(cls, data, idx, where)
  local disc = data.info.discriminator
  if not disc or classes[cls].parent == nil then return nil end
  if idx and not idx.projects_all and not idx.projected[disc.wire_name] then
    error(format("lunamodb: %s: index '%s' does not project the discriminator '%s', so it cannot "
      .. "tell %s items from others", where, idx.name, disc.name, data.display), 4)
  end
  local list = {}
  for _, c in pairs(disc.class_of) do
    if descends(c, cls) then
      local seen = false
      for i = 1, #list do seen = seen or list[i] == c end
      if not seen then list[#list + 1] = c end
    end
  end
  local p = data.paths[disc.name]
  return p:is_in((table.unpack or unpack)(list))
end

local function positive_whole(v, name, where, allow_zero)
  if v ~= nil and (type(v) ~= "number" or v % 1 ~= 0 or v < (allow_zero and 0 or 1)) then
    error(format("lunamodb: %s: %s must be a whole number >= %d", where, name, allow_zero and 0 or 1), 4)
  end
end

local READ_COMMON = { "filter_condition", "consistent_read", "limit", "page_size",
  "exclusive_start_key", "last_evaluated_key", "attributes", "rate_limit" }
local QUERY_OPTIONS = set_of("range_key_condition", "scan_index_forward", (table.unpack or unpack)(READ_COMMON))
local SCAN_OPTIONS = set_of("segment", "total_segments", (table.unpack or unpack)(READ_COMMON))
local COUNT_OPTIONS = set_of("range_key_condition", "filter_condition", "consistent_read", "limit",
  "page_size", "rate_limit")
local PARALLEL_OPTIONS = set_of("total_segments", "filter_condition", "consistent_read", "limit",
  "page_size", "attributes", "rate_limit")

-- A projection list that also names the table's and the index's keys
-- (resume keys and item identity need them), each attribute once.
local function with_keys(data, idx, attributes)
  local list = {}
  if type(attributes) ~= "table" or path.is_path(attributes) then attributes = { attributes } end
  local named = {}
  for i, a in ipairs(attributes) do
    list[i] = a
    if type(a) == "string" then
      named[a] = true
    elseif path.is_path(a) then
      local segs = path.segments(a)
      if #segs == 1 then named[data.info.by_wire[segs[1]] and data.info.by_wire[segs[1]].name or ""] = true end
    end
  end
  local info = data.info
  for _, a in ipairs({ info.hash_key, info.range_key, idx and idx.hash, idx and idx.range }) do
    if a and not named[a.name] then
      named[a.name] = true
      list[#list + 1] = data.paths[a.name]
    end
  end
  return list
end

-- Builds the Results of a Query or Scan on a class (idx: a bound index or nil).
local function read(cls, idx, operation, hash, opts, where)
  local data = classes[cls]
  local root = classes[data.root]
  positive_whole(opts.limit, "limit", where, true)
  positive_whole(opts.page_size, "page_size", where)
  if opts.rate_limit ~= nil and (type(opts.rate_limit) ~= "number" or not (opts.rate_limit > 0)) then
    error(format("lunamodb: %s: rate_limit must be a positive number of read units per second", where), 3)
  end
  for _, b in ipairs({ "consistent_read", "scan_index_forward" }) do
    if opts[b] ~= nil and type(opts[b]) ~= "boolean" then
      error(format("lunamodb: %s: %s must be a boolean (got %s)", where, b, type(opts[b])), 3)
    end
  end
  if idx and idx.global and opts.consistent_read then
    error(format("lunamodb: %s: global secondary indexes do not support consistent reads", where), 3)
  end
  local start = opts.exclusive_start_key or opts.last_evaluated_key
  if start ~= nil and type(start) ~= "table" then
    error(format("lunamodb: %s: exclusive_start_key must be a key in DynamoDB JSON, as "
      .. "last_evaluated_key gives it (got %s)", where, type(start)), 3)
  end
  local params = { TableName = root.table_name }
  if idx then params.IndexName = idx.index_name end
  local s = serializer.new()
  local info = data.info
  if operation == "Query" then
    local hash_attr = idx and idx.hash or info.hash_key
    local range_attr = idx and idx.range or (not idx and info.range_key)
    params.KeyConditionExpression = s:condition(
      key_condition(data, where, hash_attr, range_attr, hash, opts.range_key_condition),
      where .. ": key condition")
    if opts.scan_index_forward == false then params.ScanIndexForward = false end
  else
    positive_whole(opts.segment, "segment", where, true)
    positive_whole(opts.total_segments, "total_segments", where)
    if (opts.segment == nil) ~= (opts.total_segments == nil) then
      error(format("lunamodb: %s: segment and total_segments go together", where), 3)
    end
    if opts.segment and opts.segment >= opts.total_segments then
      error(format("lunamodb: %s: segment must be below total_segments", where), 3)
    end
    params.Segment, params.TotalSegments = opts.segment, opts.total_segments
  end
  local filter = opts.filter_condition
  if filter ~= nil then raise_unless_condition(filter, where .. ": filter_condition", 3) end
  local cf = class_filter(cls, data, idx, where)
  if cf then filter = filter and (filter * cf) or cf end
  if filter then params.FilterExpression = s:condition(filter, where .. ": filter") end
  -- resume keys: the table's keys and the index's
  local key_names, key_attrs, seen = {}, {}, {}
  local function key(a)
    if a and not seen[a.wire_name] then
      seen[a.wire_name] = true
      key_names[#key_names + 1] = a.wire_name
      key_attrs[#key_attrs + 1] = a
    end
  end
  key(info.hash_key); key(info.range_key)
  if idx then key(idx.hash); key(idx.range) end
  local partial = idx and idx.partial or false
  if opts.attributes then
    params.ProjectionExpression = s:projection(with_keys(data, idx, opts.attributes), cls)
    partial = true
  end
  if opts.consistent_read then params.ConsistentRead = true end
  s:apply(params)
  return pagination.new {
    client = client_of(data), operation = operation, params = params,
    limit = opts.limit, page_size = opts.page_size, exclusive_start_key = start,
    rate_limit = opts.rate_limit, limiter = opts.limiter, key_names = key_names,
    map = function(wire) return load_item(cls, data, wire, partial) end,
    decode = response_decoder(data, "list", "Items"),
    map_native = function(values) return load_values(cls, data, values, partial) end,
    key_of_native = function(values)
      local k = {}
      for i = 1, #key_attrs do
        local a = key_attrs[i]
        k[a.wire_name] = a:serialize(values[a.name])
      end
      return k
    end,
  }
end

-- Runs fn; a misuse error (a string) is raised again at stack level
-- `level` counted from here (3: the user of a class method that calls this
-- directly), without the position it was first raised with and, when
-- `where` is given, with that entry point named.
local function raise_misuse(level, where, fn, ...)
  local ok, a, b = pcall(fn, ...)
  if ok then return a, b end
  if type(a) == "string" then
    local msg = a:gsub("^[^\n]-:%d+: ", "")
    if where and not msg:find(where, 1, true) then
      msg = msg:gsub("^lunamodb: ", "lunamodb: " .. where .. ": ")
    end
    error(msg, level)
  end
  error(a, 0)
end

-- A stable identity for a wire key, whatever the order of its members:
-- the table name, then each key attribute's name, type and value.
local function key_id(table_name, key)
  local parts = {}
  for name, av in pairs(key) do
    local letter, v = next(av)
    parts[#parts + 1] = name .. "=" .. tostring(letter) .. ":" .. tostring(v)
  end
  sort(parts)
  return table_name .. "\0" .. concat(parts, "\0")
end

-- User:query(hash[, opts]) -> results (iterate them; raises on failure).
-- opts: range_key_condition, filter_condition, consistent_read,
-- scan_index_forward, limit (items returned, exactly), page_size (items per
-- request), exclusive_start_key (or last_evaluated_key), attributes, rate_limit.
function ClassMethods.query(cls, hash, opts)
  local data = class_data(cls, "query")
  local where = call_name(data, "query")
  local a, b = raise_misuse(3, where, function()
    return read(cls, nil, "Query", hash, check_call_options(opts, QUERY_OPTIONS, where), where)
  end)
  return a, b                                  -- no tail call: errors name the caller
end

-- User:scan{...} -> results. opts as query's, plus segment/total_segments.
function ClassMethods.scan(cls, opts)
  local data = class_data(cls, "scan")
  local where = call_name(data, "scan")
  local a, b = raise_misuse(3, where, function()
    return read(cls, nil, "Scan", nil, check_call_options(opts, SCAN_OPTIONS, where), where)
  end)
  return a, b                                  -- no tail call: errors name the caller
end

local function count(cls, idx, hash, opts, where)
  local data = classes[cls]
  if hash == nil and opts.range_key_condition ~= nil then
    error(format("lunamodb: %s: range_key_condition needs a hash key value", where), 3)
  end
  positive_whole(opts.limit, "limit", where, true)
  local results = read(cls, idx, hash == nil and "Scan" or "Query", hash, {
    range_key_condition = opts.range_key_condition, filter_condition = opts.filter_condition,
    consistent_read = opts.consistent_read,
    page_size = opts.page_size or (opts.limit ~= nil and opts.limit > 0 and opts.limit or nil),
    rate_limit = opts.rate_limit,
  }, where)
  -- the request read() built, counted instead of listed
  local params = core.json_decode(results.body)
  return pagination.count {
    client = client_of(data), operation = results.operation, params = params,
    limit = opts.limit, rate_limit = opts.rate_limit,
  }
end

-- User:count([hash][, opts]) -> the exact number of matching items (at most
-- limit), or nil, err. Without a hash key it counts the whole table with a
-- Scan (exact, unlike DescribeTable's ItemCount, which lags by hours).
function ClassMethods.count(cls, hash, opts)
  local data = class_data(cls, "count")
  if type(hash) == "table" and opts == nil and getmetatable(hash) == nil then hash, opts = nil, hash end
  local where = call_name(data, "count")
  local a, b = raise_misuse(3, where, function()
    return count(cls, nil, hash, check_call_options(opts, COUNT_OPTIONS, where), where)
  end)
  return a, b                                  -- no tail call: errors name the caller
end

-- A scan of total_segments segments run concurrently (lunamodb tasks over
-- one curl multi handle); items arrive as their pages do, in no order.
local function parallel_scan(cls, idx, opts, where)
  local scheduler = require "lunamodb.scheduler"
  local n = opts.total_segments
  if type(n) ~= "number" or n < 1 or n % 1 ~= 0 then
    error(format("lunamodb: %s: total_segments must be a whole number >= 1", where), 3)
  end
  positive_whole(opts.limit, "limit", where, true)
  local limit = opts.limit or math.huge
  local queue, head, tail = {}, 1, 0
  local segments = {}
  -- one limiter for the whole scan: rate_limit bounds all segments together
  local limiter = opts.rate_limit and pagination.limiter(opts.rate_limit)
  for seg = 0, n - 1 do
    segments[seg + 1] = read(cls, idx, "Scan", nil, {
      filter_condition = opts.filter_condition, consistent_read = opts.consistent_read,
      page_size = opts.page_size, attributes = opts.attributes, rate_limit = opts.rate_limit,
      segment = seg, total_segments = n, limiter = limiter,
    }, where)
  end
  local tasks = {}
  for i, results in ipairs(segments) do
    tasks[i] = scheduler.spawn(function()
      for page in results:pages() do
        for _, item in ipairs(page.items) do
          tail = tail + 1
          queue[tail] = item
        end
      end
    end)
  end
  local returned = 0
  local function stop()
    for _, t in ipairs(tasks) do if not t:done() then t:cancel() end end
  end
  return function()
    while true do
      if returned >= limit then stop(); return nil end
      if head <= tail then
        local item = queue[head]
        queue[head] = nil
        head = head + 1
        returned = returned + 1
        return item
      end
      local alive = false
      for _, t in ipairs(tasks) do
        if t:done() then
          local ok, err = t:result()
          if not ok then stop(); error(err, 0) end
        else
          alive = true
        end
      end
      if not alive then return nil end
      scheduler.step(50)
    end
  end, segments
end

-- User:parallel_scan{ total_segments = 4, ... } -> an iterator over every
-- item, segments scanned concurrently. Raises on failure.
function ClassMethods.parallel_scan(cls, opts)
  local data = class_data(cls, "parallel_scan")
  local where = call_name(data, "parallel_scan")
  local it = raise_misuse(3, where, function()
    return parallel_scan(cls, nil, check_call_options(opts, PARALLEL_OPTIONS, where), where)
  end)
  return it
end

------------------------------------------------------------- indexes

local function index_call(handle, what)
  if getmetatable(handle) ~= IndexHandle then
    error(format("lunamodb: %s must be called on an index (User.by_email:%s(...))", what, what), 3)
  end
  local data = classes[handle.cls]
  return handle.cls, handle.index, data.display .. "." .. handle.index.name .. ":" .. what
end

function IndexHandle.query(handle, hash, opts)
  local cls, idx, where = index_call(handle, "query")
  local a, b = raise_misuse(3, where, function()
    return read(cls, idx, "Query", hash, check_call_options(opts, QUERY_OPTIONS, where), where)
  end)
  return a, b                                  -- no tail call: errors name the caller
end

function IndexHandle.scan(handle, opts)
  local cls, idx, where = index_call(handle, "scan")
  local a, b = raise_misuse(3, where, function()
    return read(cls, idx, "Scan", nil, check_call_options(opts, SCAN_OPTIONS, where), where)
  end)
  return a, b                                  -- no tail call: errors name the caller
end

function IndexHandle.count(handle, hash, opts)
  local cls, idx, where = index_call(handle, "count")
  if type(hash) == "table" and opts == nil and getmetatable(hash) == nil then hash, opts = nil, hash end
  local a, b = raise_misuse(3, where, function()
    return count(cls, idx, hash, check_call_options(opts, COUNT_OPTIONS, where), where)
  end)
  return a, b                                  -- no tail call: errors name the caller
end

function IndexHandle.parallel_scan(handle, opts)
  local cls, idx, where = index_call(handle, "parallel_scan")
  local it = raise_misuse(3, where, function()
    return parallel_scan(cls, idx, check_call_options(opts, PARALLEL_OPTIONS, where), where)
  end)
  return it
end

function IndexHandle.__tostring(handle)
  return format("lunamodb.%s(%s)", handle.index.kind, handle.index.index_name)
end

-- User:batch_get(keys[, { consistent_read, attributes, max_attempts }]):
-- see lunamodb.batch.
function ClassMethods.batch_get(cls, keys, opts)
  class_data(cls, "batch_get")
  local it = require("lunamodb.batch").get(cls, keys, opts)
  return it
end

-- User:batch_write(function(batch) ... end[, opts]) -> true, or nil, err;
-- User:batch_write() -> a batch to fill and commit(). See lunamodb.batch.
function ClassMethods.batch_write(cls, fn, opts)
  class_data(cls, "batch_write")
  local a, b = require("lunamodb.batch").write(cls, fn, opts)
  return a, b
end

-- User:get_ref(hash[, range]): an item holding only its key, for updates,
-- deletes and condition checks without reading it first. It is partial:
-- save refuses it.
function ClassMethods.get_ref(cls, hash, range)
  local data = class_data(cls, "get_ref")
  local info = data.info
  A.serialize_key(data.schema, hash, range)        -- checks the key values now
  local item = new_item(data)
  rawset(item, info.hash_key.name, hash)
  if info.range_key then rawset(item, info.range_key.name, range) end
  item_state[item] = PARTIAL
  return item
end

-- What lunamodb.batch and lunamodb.transaction build on; not a public API.
M._internal = {
  classes = classes, item_data = item_data, class_data = class_data, client_of = client_of,
  key_of = key_of, load_item = load_item, save_request = save_request,
  load_values = load_values, response_decoder = response_decoder, put_whole = put_whole,
  item_state = item_state,
  put_item_text = put_item_text,
  update_request = update_request, delete_request = delete_request,
  check_call_options = check_call_options, set_of = set_of, with_keys = with_keys,
  check_condition = check_condition, raise_misuse = raise_misuse, key_id = key_id,
}

ClassMethods.DoesNotExist = M.DoesNotExist

M.ClassMethods = ClassMethods
M.ItemMethods = ItemMethods
return M
