-- lunamodb.attributes: typed attributes with PynamoDB 6.1's exact wire
-- formats, item (de)serialization and validation.
--
--   local A = lunamodb.attributes
--   local Thread = A.schema({
--     forum = A.Unicode{ hash_key = true },
--     views = A.Number{ default = 0 },
--     tags  = A.UnicodeSet{},
--     addr  = A.Map{ fields = { street = A.Unicode{}, zip_code = A.Number{ attr_name = "zip" } } },
--   }, "Thread")
--   local item = A.serialize_item(Thread, { forum = "lua", views = 1 })   -- wire AVs
--   local vals = A.deserialize_item(Thread, item)
--   Thread.views:gt(10)                                                   -- an expression path
--
-- Every check runs before any network call and names the full path of the
-- value it refuses ("addr.street", "lines[2].sku", Lua names, 1-based).

local core = require "lunamodb.core"
local values = require "lunamodb.values"

local setmetatable, getmetatable, rawget, rawset = setmetatable, getmetatable, rawget, rawset
local type, tostring, pairs, ipairs, next, error, select, pcall = type, tostring, pairs, ipairs,
  next, error, select, pcall
local format, byte, char, sort, concat = string.format, string.byte, string.char, table.sort, table.concat
local floor = math.floor
local utf8_valid, b64encode, b64decode = core.utf8_valid, core.base64_encode, core.base64_decode
local array_mt, null = core.array_mt, core.null
local encode_number, decode_number = values.encode_number, values.decode_number
local is_set, is_datetime, is_decimal, is_binary = values.is_set, values.is_datetime,
  values.is_decimal, values.is_binary

local M = {}

M.MAX_ITEM_BYTES = 400 * 1024
M.MAX_DEPTH = 32

---------------------------------------------------------------- errors

-- A path node: { parent = node, key = "name" | index } or a root { text = "x" }.
-- Nodes are made per container, never per scalar, and rendered only on error.
local function render(node, key)
  local parts = {}
  local n = 0
  if key ~= nil then
    n = 1
    parts[1] = key
  end
  while node do
    if node.text then
      n = n + 1
      parts[n] = node.text
      break
    end
    n = n + 1
    parts[n] = node.key
    node = node.parent
  end
  local out = {}
  for i = n, 1, -1 do
    local p = parts[i]
    if type(p) == "number" then
      out[#out + 1] = "[" .. p .. "]"
    elseif #out == 0 then
      out[#out + 1] = p
    else
      out[#out + 1] = "." .. p
    end
  end
  return concat(out)
end
M.render_path = render

local function fail(node, key, msg)
  local where = render(node, key)
  if where == "" then where = "(item)" end
  error("lunamodb: " .. where .. ": " .. msg, 0)
end

local function typename(v)
  if v == null then return "lunamodb.null" end
  if is_set(v) then return "set" end
  if is_datetime(v) then return "datetime" end
  if is_decimal(v) then return "decimal" end
  if is_binary(v) then return "binary" end
  return type(v)
end

------------------------------------------------------------ size budget

-- Item size as DynamoDB counts it, accumulated while serializing (one
-- item at a time: serialization never yields).
local size = 0

-- text: a canonical N text (values.encode_number): a sign, digits and at most one point.
-- Its significant digits run from the first non-zero one to the end, the point aside.
local find = string.find
local function number_size(text)
  local first = find(text, "[1-9]")
  local digits = 0
  if first then
    digits = #text - first + 1
    if find(text, ".", first, true) then digits = digits - 1 end
  end
  return floor((digits + 1) / 2) + 1
end

------------------------------------------------------------- base class

local Attribute = {}
Attribute.__index = Attribute
Attribute.__name = "lunamodb.Attribute"
M.Attribute = Attribute

local function is_attribute(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__attribute") == true
end
M.is_attribute = is_attribute

local COMMON_OPTIONS = {
  hash_key = "boolean", range_key = "boolean", null = "boolean",
  default = true, default_for_new = true, attr_name = "string",
}

local function check_default(kind, option, v)
  if v == nil then return end
  local t = type(v)
  if t == "function" or t == "string" or t == "number" or t == "boolean"
      or is_datetime(v) or is_decimal(v) or is_binary(v) or v == null then
    return
  end
  error(format("lunamodb.attributes.%s: '%s' must be an immutable value or a function "
    .. "returning a fresh one (got a %s, which every item would share)", kind, option, t), 4)
end

-- Builds the constructor of one attribute class. spec: kind, type,
-- null_default, options (extra option names -> expected type), init(self).
local function class(spec)
  local mt = {}
  for k, v in pairs(Attribute) do mt[k] = v end
  for k, v in pairs(spec.methods or {}) do mt[k] = v end
  mt.__index = mt
  mt.__attribute = true
  mt.__name = "lunamodb.attributes." .. spec.kind
  mt.__tostring = function(self)
    return format("%s(%s)", spec.kind, self.name or "unbound")
  end
  local extra = spec.options or {}
  local function new(opts)
    if opts == nil then opts = {} end
    if type(opts) ~= "table" or is_attribute(opts) then
      error(format("lunamodb.attributes.%s: options must be a table (got %s)", spec.kind,
        type(opts)), 2)
    end
    local self = setmetatable({
      type = spec.type, kind = spec.kind,
      null = spec.null_default or false,
    }, mt)
    for k, v in pairs(opts) do
      local want = COMMON_OPTIONS[k] or extra[k]
      if not want then
        error(format("lunamodb.attributes.%s: unknown option '%s'", spec.kind, tostring(k)), 2)
      end
      if want ~= true and type(v) ~= want then
        error(format("lunamodb.attributes.%s: option '%s' must be a %s (got %s)", spec.kind, k,
          want, type(v)), 2)
      end
      self[k] = v
    end
    if opts.default ~= nil and opts.default_for_new ~= nil then
      error(format("lunamodb.attributes.%s: an attribute cannot have both 'default' and "
        .. "'default_for_new'", spec.kind), 2)
    end
    check_default(spec.kind, "default", opts.default)
    check_default(spec.kind, "default_for_new", opts.default_for_new)
    if opts.attr_name == "" then
      error(format("lunamodb.attributes.%s: 'attr_name' must not be empty", spec.kind), 2)
    end
    if spec.init then spec.init(self, opts) end
    return self
  end
  M[spec.kind] = setmetatable({ kind = spec.kind, class = mt }, {
    __call = function(_, opts) return new(opts) end,
    __name = "lunamodb.attributes." .. spec.kind,
  })
  return mt
end

-- An attribute given as a constructor (A.Unicode) or an instance.
local function as_attribute(v, what)
  if is_attribute(v) then return v end
  if type(v) == "table" and getmetatable(v) and v.class and v.kind then
    return v()
  end
  error(format("lunamodb.attributes: %s must be an attribute (got %s)", what, type(v)), 4)
end

-- A copy, so one declaration can be bound under several names.
local function clone(attr)
  local c = setmetatable({}, getmetatable(attr))
  for k, v in pairs(attr) do c[k] = v end
  return c
end

local function bind(attr, name)
  attr.name = name
  attr.wire_name = attr.attr_name or name
  return attr
end

-- Public, path-text forms used by expressions. There lunamodb.null writes
-- NULL whatever the declared type, as DynamoDB allows (and PynamoDB's
-- attr.set(None) does); items keep to the declared type.
function Attribute:serialize(value, path_text)
  if value == null then return { NULL = true } end
  size = 0
  -- the text as the key of no node renders the same, without a node per call
  return self:encode(value, nil, path_text or self.name or "value", 1)
end

function Attribute:deserialize(av, path_text)
  return self:decode(av, { text = path_text or self.name or "value" }, nil)
end

function Attribute:serialize_element(value, path_text)
  if self.element then
    size = 0
    return self.element(self, value, { text = path_text or self.name or "value" }, nil, 1)
  end
  error(format("lunamodb: %s: a %s has no elements", path_text or self.name, self.kind), 0)
end

-- The default value of an attribute, fresh for every item.
function Attribute:default_value(new_item)
  local d = self.default
  if d == nil and new_item then d = self.default_for_new end
  if type(d) == "function" then return d() end
  return d
end

-- Reads the one type letter of an AV; NULL means absent.
local function unwrap(self, av, node, key)
  if type(av) ~= "table" then
    fail(node, key, format("stored value is not an attribute value (got %s)", type(av)))
  end
  local v = av[self.type]
  if v == nil then
    if av.NULL then return nil end
    local letter = next(av)
    fail(node, key, format("stored as %s, declared as %s (%s)", tostring(letter), self.kind,
      self.type))
  end
  return v
end

-------------------------------------------------------- scalar classes

local function check_string(v, node, key, kind)
  if type(v) ~= "string" then
    fail(node, key, format("expected a string (%s), got %s", kind, typename(v)))
  end
  if not utf8_valid(v) then
    fail(node, key, "string is not valid UTF-8 (use a Binary attribute for bytes)")
  end
  size = size + #v
end

-- plain_value(v): the wire text of the AttributeValue ({ [type] = text }) serialize gives a
-- plain Lua value, made without the encode chain (expressions make one per update value), or
-- nil to let serialize decide (and raise).
class {
  kind = "Unicode", type = "S",
  methods = {
    encode = function(self, v, node, key)
      check_string(v, node, key, self.kind)
      return { S = v }
    end,
    decode = function(self, av, node, key) return unwrap(self, av, node, key) end,
    plain_value = function(_, v)
      if type(v) == "string" and utf8_valid(v) then return v end
    end,
  },
}

local function number_text(v, node, key)
  local text, err = encode_number(v)
  if not text then fail(node, key, err) end
  size = size + number_size(text)
  return text
end

local function number_value(text, node, key)
  local v, err = decode_number(text)
  if v == nil then fail(node, key, "stored number is malformed: " .. tostring(err)) end
  return v
end

class {
  kind = "Number", type = "N",
  methods = {
    encode = function(_, v, node, key) return { N = number_text(v, node, key) } end,
    plain_value = function(_, v)
      return type(v) == "number" and encode_number(v) or nil
    end,
    decode = function(self, av, node, key)
      local text = unwrap(self, av, node, key)
      if text == nil then return nil end
      return number_value(text, node, key)
    end,
  },
}

local function binary_bytes(v, node, key)
  if is_binary(v) then v = v.data end
  if type(v) ~= "string" then
    fail(node, key, format("expected bytes (a Lua string), got %s", typename(v)))
  end
  size = size + #v
  return v
end

local function from_base64(text, node, key)
  local bytes = type(text) == "string" and b64decode(text)
  if not bytes then fail(node, key, "stored binary value is not valid base64") end
  return bytes
end

class {
  kind = "Binary", type = "B",
  options = { legacy_encoding = "boolean" },
  methods = {
    encode = function(self, v, node, key)
      local b = b64encode(binary_bytes(v, node, key))
      -- PynamoDB's legacy_encoding=True base64-encodes twice
      if self.legacy_encoding then b = b64encode(b) end
      return { B = b }
    end,
    decode = function(self, av, node, key)
      local text = unwrap(self, av, node, key)
      if text == nil then return nil end
      local bytes = from_base64(text, node, key)
      if self.legacy_encoding then bytes = from_base64(bytes, node, key) end
      return bytes
    end,
  },
}

class {
  kind = "Boolean", type = "BOOL",
  methods = {
    encode = function(_, v, node, key)
      if type(v) ~= "boolean" then
        fail(node, key, format("expected a boolean, got %s", typename(v)))
      end
      size = size + 1
      return { BOOL = v }
    end,
    decode = function(self, av, node, key) return unwrap(self, av, node, key) end,
  },
}

class {
  kind = "UTCDateTime", type = "S",
  methods = {
    encode = function(_, v, node, key)
      if not is_datetime(v) then
        fail(node, key, format("expected a datetime (lunamodb.datetime(...)), got %s", typename(v)))
      end
      size = size + 31
      return { S = v:iso() }
    end,
    decode = function(self, av, node, key)
      local text = unwrap(self, av, node, key)
      if text == nil then return nil end
      local dt, err = values.parse_datetime_wire(text)
      if not dt then fail(node, key, err) end
      return dt
    end,
  },
}

class {
  kind = "Null", type = "NULL",
  methods = {
    encode = function(_, v, node, key)
      if v ~= null then
        fail(node, key, format("expected lunamodb.null, got %s", typename(v)))
      end
      size = size + 1
      return { NULL = true }
    end,
    decode = function(_, av, node, key)
      if type(av) ~= "table" or av.NULL == nil then
        fail(node, key, "stored value is not NULL")
      end
      return null
    end,
  },
}

-------------------------------------------------------------------- JSON

-- Python's json.dumps with its defaults (ensure_ascii, ", " and ": "), keys
-- sorted so the text is deterministic: what PynamoDB's JSONAttribute stores.
local function python_float(v)
  for p = 1, 17 do
    local s = format("%." .. (p - 1) .. "e", v)
    if tonumber(s) == v then
      local mant, exp = s:match("^(-?[%d%.]+)e([-+]%d+)$")
      exp = tonumber(exp)
      local digits = mant:gsub("[-%.]", "")
      local neg = mant:sub(1, 1) == "-"
      local out
      if exp >= -4 and exp < 16 then
        if exp >= 0 then
          local int = digits:sub(1, exp + 1)
          int = int .. ("0"):rep(exp + 1 - #int)
          local frac = digits:sub(exp + 2)
          out = int .. "." .. (frac == "" and "0" or frac)
        else
          out = "0." .. ("0"):rep(-exp - 1) .. digits
        end
      else
        local m = digits:sub(1, 1)
        if #digits > 1 then m = m .. "." .. digits:sub(2) end
        out = format("%se%s%02d", m, exp < 0 and "-" or "+", exp < 0 and -exp or exp)
      end
      return neg and ("-" .. out) or out
    end
  end
end

local json_escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r",
  ["\t"] = "\\t", ["\b"] = "\\b", ["\f"] = "\\f" }

local function python_string(s)
  local out = { '"' }
  local i, n = 1, #s
  while i <= n do
    local c = byte(s, i)
    local cp, len
    if c < 0x80 then cp, len = c, 1
    elseif c < 0xE0 then cp, len = (c % 0x20) * 0x40 + byte(s, i + 1) % 0x40, 2
    elseif c < 0xF0 then
      cp, len = ((c % 0x10) * 0x40 + byte(s, i + 1) % 0x40) * 0x40 + byte(s, i + 2) % 0x40, 3
    else
      cp, len = (((c % 0x08) * 0x40 + byte(s, i + 1) % 0x40) * 0x40 + byte(s, i + 2) % 0x40)
        * 0x40 + byte(s, i + 3) % 0x40, 4
    end
    local e = json_escapes[char(c)]
    if len == 1 and e then
      out[#out + 1] = e
    elseif cp < 0x20 or cp > 0x7E then
      if cp >= 0x10000 then
        local u = cp - 0x10000
        out[#out + 1] = format("\\u%04x\\u%04x", 0xD800 + floor(u / 0x400), 0xDC00 + u % 0x400)
      else
        out[#out + 1] = format("\\u%04x", cp)
      end
    else
      out[#out + 1] = char(c)
    end
    i = i + len
  end
  out[#out + 1] = '"'
  return concat(out)
end

local function python_json(v, node, key, depth)
  local t = type(v)
  if v == null then return "null" end
  if t == "boolean" then return v and "true" or "false" end
  if t == "string" then
    if not utf8_valid(v) then fail(node, key, "string is not valid UTF-8") end
    return python_string(v)
  end
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      fail(node, key, "NaN and infinity are not JSON")
    end
    if (math.type and math.type(v) == "integer") or (not math.type and v == floor(v) and v > -2^53 and v < 2^53) then
      return format("%d", v)
    end
    return python_float(v)
  end
  if is_decimal(v) then return v:text() end
  if t ~= "table" or getmetatable(v) and getmetatable(v) ~= array_mt then
    fail(node, key, format("%s cannot be stored as JSON", typename(v)))
  end
  if depth > 128 then fail(node, key, "JSON nested deeper than 128 levels") end
  local child = { parent = node, key = key }
  if key == nil then child = node end
  local out = {}
  if getmetatable(v) == array_mt or v[1] ~= nil then
    local n = #v
    for k in pairs(v) do
      if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then
        fail(node, key, "table mixes list items and other keys")
      end
    end
    for i = 1, n do out[i] = python_json(v[i], child, i, depth + 1) end
    return "[" .. concat(out, ", ") .. "]"
  end
  local keys = {}
  for k in pairs(v) do
    if type(k) ~= "string" then fail(node, key, "JSON object keys must be strings") end
    keys[#keys + 1] = k
  end
  sort(keys)
  for i, k in ipairs(keys) do
    out[i] = python_string(k) .. ": " .. python_json(v[k], child, k, depth + 1)
  end
  return "{" .. concat(out, ", ") .. "}"
end
M.python_json = function(v) return python_json(v, { text = "value" }, nil, 1) end

class {
  kind = "JSON", type = "S",
  methods = {
    encode = function(_, v, node, key)
      local text = python_json(v, node, key, 1)
      size = size + #text
      return { S = text }
    end,
    decode = function(self, av, node, key)
      local text = unwrap(self, av, node, key)
      if text == nil then return nil end
      local v, err = core.json_decode(text)
      if v == nil then fail(node, key, "stored JSON is invalid: " .. tostring(err)) end
      return v
    end,
  },
}

-------------------------------------------------------------------- sets

local SET_MEMBER = { SS = "S", NS = "N", BS = "B" }

local function encode_member(letter, v, node, key)
  if letter == "S" then
    check_string(v, node, key, "UnicodeSet member")
    return v
  elseif letter == "N" then
    return number_text(v, node, key)
  end
  return b64encode(binary_bytes(v, node, key))
end

local function decode_member(letter, v, node, key, binary_wrap)
  if letter == "S" then return v end
  if letter == "N" then return number_value(v, node, key) end
  local bytes = from_base64(v, node, key)
  if binary_wrap then return values.binary(bytes) end
  return bytes
end

local SET_KIND_OK = {
  SS = { string = true }, NS = { number = true }, BS = { string = true, binary = true },
}

local function set_class(kind, letter)
  class {
    kind = kind, type = letter, null_default = true,
    methods = {
      -- an empty set means "absent": DynamoDB has no empty sets
      encode = function(self, v, node, key)
        if not is_set(v) then
          fail(node, key, format("expected a set (lunamodb.set{...}), got %s", typename(v)))
        end
        local members = v:items()
        if #members == 0 then return nil end
        if not SET_KIND_OK[letter][v:kind()] then
          fail(node, key, format("a %s holds %s members, not %ss", self.kind,
            SET_MEMBER[letter], v:kind()))
        end
        local m = SET_MEMBER[letter]
        for i = 1, #members do members[i] = encode_member(m, members[i], node, key) end
        return { [letter] = members }
      end,
      decode = function(self, av, node, key)
        local list = unwrap(self, av, node, key)
        if list == nil then return nil end
        local m = SET_MEMBER[letter]
        local out = {}
        for i = 1, #list do out[i] = decode_member(m, list[i], node, key, false) end
        return values.set(out)
      end,
      element = function(_, v, node, key)
        return { [SET_MEMBER[letter]] = encode_member(SET_MEMBER[letter], v, node, key) }
      end,
    },
  }
end
set_class("UnicodeSet", "SS")
set_class("NumberSet", "NS")
set_class("BinarySet", "BS")

---------------------------------------------------- dynamic (untyped) values

local encode_dynamic, decode_dynamic

-- A map whose values are typed dynamically (raw maps, maps in untyped
-- places): the wire M content, keys checked.
local function encode_map_values(v, node, key, depth)
  local child = key == nil and node or { parent = node, key = key }
  local out = {}
  for k, x in pairs(v) do
    if type(k) ~= "string" then
      fail(node, key, format("map keys must be strings (got a %s key)", type(k)))
    end
    size = size + #k + 1
    out[k] = encode_dynamic(x, child, k, depth + 1)
  end
  size = size + 3
  return out
end

local function decode_map_values(m, node, key)
  local child = key == nil and node or { parent = node, key = key }
  local out = {}
  for k, x in pairs(m) do out[k] = decode_dynamic(x, child, k) end
  return out
end

local function is_sequence(v)
  if getmetatable(v) == array_mt then return true end
  return v[1] ~= nil
end

local function encode_list_items(v, node, key, depth, each)
  local n = #v
  for k in pairs(v) do
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then
      fail(node, key, "table mixes list items and other keys (or has holes)")
    end
  end
  local child = key == nil and node or { parent = node, key = key }
  local out = setmetatable({}, array_mt)
  for i = 1, n do out[i] = each(v[i], child, i, depth + 1) end
  size = size + 3 + n
  return out
end

encode_dynamic = function(v, node, key, depth)
  local t = type(v)
  if t == "string" then
    check_string(v, node, key, "S")
    return { S = v }
  elseif t == "number" or is_decimal(v) then
    return { N = number_text(v, node, key) }
  elseif t == "boolean" then
    size = size + 1
    return { BOOL = v }
  elseif v == null then
    size = size + 1
    return { NULL = true }
  elseif is_binary(v) then
    return { B = b64encode(binary_bytes(v, node, key)) }
  elseif is_datetime(v) then
    size = size + 31
    return { S = v:iso() }
  elseif is_set(v) then
    local kind = v:kind()
    if kind == nil then
      fail(node, key, "cannot store an empty set (DynamoDB has none): leave the value out")
    end
    local letter = kind == "string" and "SS" or kind == "number" and "NS" or "BS"
    local members = v:items()
    local m = SET_MEMBER[letter]
    for i = 1, #members do members[i] = encode_member(m, members[i], node, key) end
    return { [letter] = members }
  elseif t == "table" and (getmetatable(v) == nil or getmetatable(v) == array_mt) then
    if depth > M.MAX_DEPTH then
      fail(node, key, "nested deeper than 32 levels")
    end
    if is_sequence(v) then
      return { L = encode_list_items(v, node, key, depth, encode_dynamic) }
    end
    return { M = encode_map_values(v, node, key, depth) }
  end
  fail(node, key, format("a %s cannot be stored in DynamoDB", typename(v)))
end

decode_dynamic = function(av, node, key)
  if type(av) ~= "table" then
    fail(node, key, format("stored value is not an attribute value (got %s)", type(av)))
  end
  local letter, v = next(av)
  if letter == "S" then return v
  elseif letter == "N" then return number_value(v, node, key)
  elseif letter == "BOOL" then return v
  elseif letter == "NULL" then return null
  elseif letter == "B" then return values.binary(from_base64(v, node, key))
  elseif letter == "L" then
    local child = key == nil and node or { parent = node, key = key }
    local out = setmetatable({}, array_mt)
    for i = 1, #v do out[i] = decode_dynamic(v[i], child, i) end
    return out
  elseif letter == "M" then
    return decode_map_values(v, node, key)
  elseif SET_MEMBER[letter] then
    local m = SET_MEMBER[letter]
    local out = {}
    for i = 1, #v do out[i] = decode_member(m, v[i], node, key, true) end
    return values.set(out)
  end
  fail(node, key, "unknown attribute value type " .. tostring(letter))
end

function M.serialize_dynamic(value, path_text)
  size = 0
  return encode_dynamic(value, { text = path_text or "value" }, nil, 1)
end

function M.deserialize_dynamic(av, path_text)
  return decode_dynamic(av, { text = path_text or "value" }, nil)
end

-------------------------------------------------------------------- lists

class {
  kind = "List", type = "L",
  options = { of = true },
  init = function(self, opts)
    if opts.of ~= nil then
      self.of = bind(clone(as_attribute(opts.of, "List option 'of'")), "[]")
      if self.of.hash_key or self.of.range_key then
        error("lunamodb.attributes.List: the element attribute cannot be a key", 3)
      end
    end
  end,
  methods = {
    encode = function(self, v, node, key, depth)
      if type(v) ~= "table" or (getmetatable(v) ~= nil and getmetatable(v) ~= array_mt) then
        fail(node, key, format("expected a list (a Lua sequence), got %s", typename(v)))
      end
      if depth > M.MAX_DEPTH then fail(node, key, "nested deeper than 32 levels") end
      local of = self.of
      if not of then
        return { L = encode_list_items(v, node, key, depth, encode_dynamic) }
      end
      return { L = encode_list_items(v, node, key, depth, function(x, child, i, d)
        if x == null then
          size = size + 1
          return { NULL = true }
        end
        -- an element that means "absent" (an empty set) is kept as NULL
        return of:encode(x, child, i, d) or { NULL = true }
      end) }
    end,
    decode = function(self, av, node, key)
      local list = unwrap(self, av, node, key)
      if list == nil then return nil end
      local child = key == nil and node or { parent = node, key = key }
      local out = setmetatable({}, array_mt)
      local of = self.of
      for i = 1, #list do
        local x = list[i]
        if of and not (type(x) == "table" and x.NULL) then
          out[i] = of:decode(x, child, i)
        else
          out[i] = decode_dynamic(x, child, i)
        end
      end
      return out
    end,
    element = function(self, v, node, key, depth)
      if self.of then return self.of:encode(v, node, key, depth or 1) end
      return encode_dynamic(v, node, key, depth or 1)
    end,
  },
}

--------------------------------------------------------------------- maps

-- Fields are copied and bound to their names, so a field declaration can
-- be reused in another map.
local function bind_fields(kind, fields)
  if type(fields) ~= "table" then
    error(format("lunamodb.attributes.%s: 'fields' must be a table of attributes", kind), 4)
  end
  local bound, by_wire, order = {}, {}, {}
  for name, f in pairs(fields) do
    if type(name) ~= "string" then
      error(format("lunamodb.attributes.%s: field names must be strings", kind), 4)
    end
    local a = bind(clone(as_attribute(f, "field '" .. name .. "'")), name)
    if a.hash_key or a.range_key then
      error(format("lunamodb.attributes.%s: field '%s' cannot be a key", kind, name), 4)
    end
    if by_wire[a.wire_name] then
      error(format("lunamodb.attributes.%s: fields '%s' and '%s' are both stored as '%s'",
        kind, by_wire[a.wire_name].name, name, a.wire_name), 4)
    end
    bound[name], by_wire[a.wire_name] = a, a
    order[#order + 1] = a
  end
  sort(order, function(x, y) return x.name < y.name end)
  return bound, by_wire, order
end

local function encode_fields(self, v, node, key, depth)
  if type(v) ~= "table" or getmetatable(v) ~= nil then
    fail(node, key, format("expected a map (a Lua table), got %s", typename(v)))
  end
  if depth > M.MAX_DEPTH then fail(node, key, "nested deeper than 32 levels") end
  local child = key == nil and node or { parent = node, key = key }
  local out = {}
  local fields = self.fields
  for _, f in ipairs(self.field_order) do
    local x = v[f.name]
    if x == nil then x = f:default_value(false) end
    local av = nil
    if x ~= nil then av = f:encode(x, child, f.name, depth + 1) end
    if av == nil then
      if not f.null then fail(child, f.name, "cannot be nil (the field is not declared null = true)") end
    else
      out[f.wire_name] = av
      size = size + #f.wire_name + 1
    end
  end
  for k, x in pairs(v) do
    if fields[k] == nil then
      if not self.dynamic then
        fail(child, k, format("is not a field of this map (declared: %s)", self.field_list))
      end
      if type(k) ~= "string" then fail(child, nil, "map keys must be strings") end
      if self.by_wire[k] then
        fail(child, k, format("is the stored name of field '%s': use that name", self.by_wire[k].name))
      end
      size = size + #k + 1
      out[k] = encode_dynamic(x, child, k, depth + 1)
    end
  end
  size = size + 3
  return { M = out }
end

local function decode_fields(self, av, node, key)
  local m = unwrap(self, av, node, key)
  if m == nil then return nil end
  local child = key == nil and node or { parent = node, key = key }
  local out = {}
  for wire, x in pairs(m) do
    local f = self.by_wire[wire]
    if f then
      out[f.name] = f:decode(x, child, f.name)
    elseif self.dynamic then
      out[wire] = decode_dynamic(x, child, wire)
    end
    -- a typed map ignores stored keys it does not declare, as PynamoDB does
  end
  return out
end

local function map_init(kind, dynamic)
  return function(self, opts)
    self.dynamic = dynamic
    if opts.fields ~= nil then
      self.fields, self.by_wire, self.field_order = bind_fields(kind, opts.fields)
      local names = {}
      for i, f in ipairs(self.field_order) do names[i] = f.name end
      self.field_list = concat(names, ", ")
    elseif not dynamic then
      self.dynamic = true                     -- a raw map: every key typed dynamically
      self.raw = true
    else
      self.fields, self.by_wire, self.field_order, self.field_list = {}, {}, {}, ""
    end
  end
end

class {
  kind = "Map", type = "M",
  options = { fields = true },
  init = map_init("Map", false),
  methods = {
    encode = function(self, v, node, key, depth)
      if self.raw then
        if type(v) ~= "table" or getmetatable(v) ~= nil then
          fail(node, key, format("expected a map (a Lua table), got %s", typename(v)))
        end
        if depth > M.MAX_DEPTH then fail(node, key, "nested deeper than 32 levels") end
        return { M = encode_map_values(v, node, key, depth) }
      end
      return encode_fields(self, v, node, key, depth)
    end,
    decode = function(self, av, node, key)
      if self.raw then
        local m = unwrap(self, av, node, key)
        if m == nil then return nil end
        return decode_map_values(m, node, key)
      end
      return decode_fields(self, av, node, key)
    end,
  },
}

class {
  kind = "DynamicMap", type = "M",
  options = { fields = true },
  init = map_init("DynamicMap", true),
  methods = { encode = encode_fields, decode = decode_fields },
}

--------------------------------------------------- TTL, Version, Discriminator

class {
  kind = "TTL", type = "N",
  methods = {
    -- a datetime or epoch seconds; stored as whole epoch seconds
    encode = function(_, v, node, key)
      local secs
      if is_datetime(v) then
        secs = v.epoch_s
      elseif type(v) == "number" and v == floor(v) then
        secs = v
      else
        fail(node, key, format("expected a datetime or whole epoch seconds, got %s", typename(v)))
      end
      local text = format("%d", secs)
      size = size + number_size(text)
      return { N = text }
    end,
    decode = function(self, av, node, key)
      local text = unwrap(self, av, node, key)
      if text == nil then return nil end
      local n = number_value(text, node, key)
      if type(n) ~= "number" then fail(node, key, "stored TTL is not epoch seconds") end
      return values.datetime(floor(n))
    end,
  },
}

class {
  kind = "Version", type = "N", null_default = true,
  methods = {
    encode = function(_, v, node, key)
      if type(v) ~= "number" or v ~= floor(v) or v < 0 then
        fail(node, key, format("a version must be a whole number >= 0, got %s", tostring(v)))
      end
      return { N = number_text(v, node, key) }
    end,
    decode = function(self, av, node, key)
      local text = unwrap(self, av, node, key)
      if text == nil then return nil end
      local n = number_value(text, node, key)
      if type(n) ~= "number" or n ~= floor(n) then fail(node, key, "stored version is not a whole number") end
      return n
    end,
  },
}

-- Stores which class an item belongs to: each registered class (any table)
-- has one or more string values; the first is written, all are read.
class {
  kind = "Discriminator", type = "S",
  init = function(self)
    self.value_of, self.class_of = {}, {}
  end,
  methods = {
    register = function(self, cls, ...)
      local n = select("#", ...)
      if type(cls) ~= "table" or n == 0 then
        error("lunamodb.attributes.Discriminator:register(class, value[, value...])", 2)
      end
      for i = 1, n do
        local v = select(i, ...)
        if type(v) ~= "string" or v == "" then
          error("lunamodb.attributes.Discriminator: values must be non-empty strings", 2)
        end
        local owner = self.class_of[v]
        if owner ~= nil and owner ~= cls then
          error(format("lunamodb.attributes.Discriminator: value '%s' is already registered "
            .. "for another class", v), 2)
        end
        self.class_of[v] = cls
        if i == 1 and self.value_of[cls] == nil then self.value_of[cls] = v end
      end
      return self
    end,
    encode = function(self, v, node, key)
      local text = self.value_of[v]
      if text == nil then
        fail(node, key, format("%s is not a registered class", tostring(v)))
      end
      size = size + #text
      return { S = text }
    end,
    decode = function(self, av, node, key)
      local text = unwrap(self, av, node, key)
      if text == nil then return nil end
      local cls = self.class_of[text]
      if cls == nil then fail(node, key, "unknown discriminator value: " .. text) end
      return cls
    end,
  },
}

-------------------------------------------------------------- custom types

local CUSTOM_TYPES = { S = true, N = true, B = true, BOOL = true }

-- Defines an attribute class from two functions:
--   local Upper = A.define{ kind = "Upper", type = "S",
--     serialize = function(attr, value) return value:upper() end,     -- -> the wire value
--     deserialize = function(attr, wire) return wire:lower() end }    -- -> the Lua value
-- serialize returns a string for S and N (number text), raw bytes for B, a
-- boolean for BOOL; lunamodb validates and encodes it like its own types.
-- Errors raised by either function are reported with the attribute's path.
function M.define(spec)
  if type(spec) ~= "table" or type(spec.kind) ~= "string" or not CUSTOM_TYPES[spec.type]
      or type(spec.serialize) ~= "function" or type(spec.deserialize) ~= "function" then
    error("lunamodb.attributes.define{ kind = 'Name', type = 'S'|'N'|'B'|'BOOL', "
      .. "serialize = function(attr, value), deserialize = function(attr, wire) }", 2)
  end
  if M[spec.kind] then
    error(format("lunamodb.attributes.define: '%s' already exists", spec.kind), 2)
  end
  local letter, ser, deser = spec.type, spec.serialize, spec.deserialize
  local base = letter == "S" and M.Unicode.class or letter == "N" and M.Number.class
    or letter == "B" and M.Binary.class or M.Boolean.class
  class {
    kind = spec.kind, type = letter, options = spec.options,
    methods = {
      encode = function(self, v, node, key, depth)
        local ok, wire = pcall(ser, self, v)
        if not ok then fail(node, key, tostring(wire)) end
        if letter == "N" then
          local n = type(wire) == "string" and decode_number(wire)
          if n == nil then fail(node, key, "serialize must return number text for an N attribute") end
          wire = n
        end
        return base.encode(self, wire, node, key, depth)
      end,
      decode = function(self, av, node, key)
        local wire = base.decode(self, av, node, key)
        if wire == nil then return nil end
        if letter == "N" then wire = unwrap(self, av, node, key) end
        local ok, v = pcall(deser, self, wire)
        if not ok then fail(node, key, tostring(v)) end
        return v
      end,
    },
  }
  return M[spec.kind]
end

------------------------------------------------------------------ schemas

local SchemaMT = {}
local schemas = setmetatable({}, { __mode = "k" })

local KEY_TYPES = { S = true, N = true, B = true }
local ONE_PER_SCHEMA = { TTL = true, Version = true, Discriminator = true }

-- Declares an item's attributes. Returns a table whose fields are the
-- attributes' expression paths (Thread.views); the schema itself is read
-- through M.info(T).
function M.schema(decl, display)
  if type(decl) ~= "table" then
    error("lunamodb.attributes.schema: expected a table of attributes", 2)
  end
  display = display or "item"
  local path = require "lunamodb.expressions.path"
  local info = { display = display, by_name = {}, by_wire = {}, order = {} }
  local names = {}
  for name in pairs(decl) do
    if type(name) ~= "string" or name == "" then
      error("lunamodb.attributes.schema: attribute names must be non-empty strings", 2)
    end
    names[#names + 1] = name
  end
  sort(names)
  for _, name in ipairs(names) do
    local raw = decl[name]
    if not is_attribute(raw) and not (type(raw) == "table" and raw.class and raw.kind) then
      error(format("lunamodb.attributes.schema: '%s' must be an attribute (got %s)", name,
        type(raw)), 2)
    end
    -- always a copy: one declaration may serve several names and schemas
    local attr = bind(clone(as_attribute(raw, "'" .. name .. "'")), name)
    if info.by_wire[attr.wire_name] then
      error(format("lunamodb.attributes.schema: '%s' and '%s' are both stored as '%s'",
        info.by_wire[attr.wire_name].name, name, attr.wire_name), 2)
    end
    for _, role in ipairs({ "hash_key", "range_key" }) do
      if attr[role] then
        if info[role] then
          error(format("lunamodb.attributes.schema: two %ss: '%s' and '%s'", role:gsub("_", " "),
            info[role].name, name), 2)
        end
        if not KEY_TYPES[attr.type] then
          error(format("lunamodb.attributes.schema: key '%s' must be a string, number or binary "
            .. "attribute (got %s)", name, attr.kind), 2)
        end
        if attr.null then
          error(format("lunamodb.attributes.schema: key '%s' cannot be null = true", name), 2)
        end
        info[role] = attr
      end
    end
    if ONE_PER_SCHEMA[attr.kind] then
      local slot = attr.kind:lower()
      if info[slot] then
        error(format("lunamodb.attributes.schema: at most one %s attribute ('%s' and '%s')",
          attr.kind, info[slot].name, name), 2)
      end
      info[slot] = attr
    end
    info.by_name[name], info.by_wire[attr.wire_name] = attr, attr
  end
  -- keys first, then the rest by name: PynamoDB's order, stable for tests
  local function add(a) if a then info.order[#info.order + 1] = a end end
  add(info.hash_key)
  add(info.range_key)
  for _, name in ipairs(names) do
    local a = info.by_name[name]
    if a ~= info.hash_key and a ~= info.range_key then add(a) end
  end
  local T = {}
  for _, a in ipairs(info.order) do rawset(T, a.name, path.root(a, display)) end
  schemas[T] = info
  return setmetatable(T, SchemaMT)
end

SchemaMT.__index = function(t, k)
  error(format("lunamodb: %s has no attribute '%s'", schemas[t].display, tostring(k)), 2)
end
SchemaMT.__newindex = function(t)
  error(format("lunamodb: %s's attributes are fixed when it is declared", schemas[t].display), 2)
end
SchemaMT.__tostring = function(t) return "lunamodb.schema (" .. schemas[t].display .. ")" end

-- The schema's description: by_name, by_wire, order, hash_key, range_key,
-- ttl, version, discriminator.
function M.info(T)
  local info = schemas[T]
  if not info then error("lunamodb.attributes: not a schema", 2) end
  return info
end

-- Serializes an item. opts.unknown: "error" (default), "ignore" or "keep"
-- (values under names the schema does not declare are stored dynamically).
-- Returns the wire item and its size in bytes as DynamoDB counts it.
function M.serialize_item(T, vals, opts)
  local info = M.info(T)
  if type(vals) ~= "table" then
    error(format("lunamodb: %s: values must be a table (got %s)", info.display, type(vals)), 2)
  end
  local unknown = opts and opts.unknown or "error"
  local item = {}
  size = 0
  for _, a in ipairs(info.order) do
    local v = vals[a.name]
    local av
    if v ~= nil then av = a:encode(v, nil, a.name, 1) end
    if av == nil then
      if not a.null then
        fail(nil, a.name, "cannot be nil (the attribute is not declared null = true)")
      end
    else
      if (a == info.hash_key or a == info.range_key) then
        local s = av.S or av.B
        if s == "" then fail(nil, a.name, "a key attribute cannot be empty") end
      end
      item[a.wire_name] = av
      size = size + #a.wire_name
    end
  end
  for k, v in pairs(vals) do
    if info.by_name[k] == nil then
      if unknown == "error" then
        fail(nil, k, format("%s declares no attribute '%s'", info.display, tostring(k)))
      elseif unknown == "keep" then
        if type(k) ~= "string" then fail(nil, nil, "attribute names must be strings") end
        if info.by_wire[k] then
          fail(nil, k, format("is the stored name of '%s': use that name", info.by_wire[k].name))
        end
        item[k] = encode_dynamic(v, nil, k, 1)
        size = size + #k
      end
    end
  end
  if size > M.MAX_ITEM_BYTES then
    error(format("lunamodb: %s: the item is %d bytes, over DynamoDB's 400 KB limit",
      info.display, size), 0)
  end
  return item, size
end

-- Where the names an item's schema does not declare go when they are put aside
-- (deserialize_item's unknown = "aside", and core.decode_items for models): a table at
-- values[EXTRA], apart from the item's fields.
M.EXTRA = setmetatable({}, { __tostring = function() return "lunamodb.attributes.EXTRA" end })

-- Reads a wire item. opts.unknown: "ignore" (default), "keep" (among the values, by wire
-- name) or "aside" (at values[M.EXTRA], by wire name; absent when there are none).
function M.deserialize_item(T, item, opts)
  local info = M.info(T)
  local unknown = opts and opts.unknown
  local out, aside = {}, nil
  for wire, av in pairs(item) do
    local a = info.by_wire[wire]
    if a then
      out[a.name] = a:decode(av, nil, a.name)
    elseif unknown == "keep" then
      out[wire] = decode_dynamic(av, nil, wire)
    elseif unknown == "aside" then
      aside = aside or {}
      aside[wire] = decode_dynamic(av, nil, wire)
    end
  end
  out[M.EXTRA] = aside
  return out
end

------------------------------------------------ the core's fast item decoder

-- core.decode_items decodes the items of a response straight into values, guided by a spec
-- built once per schema (see csrc/lmdb.c). Only the built-in classes get fast codes; any
-- other attribute, and any stored value of an unexpected shape, goes through the
-- attribute's own decode (hooks.fallback), so the values are the same either way.
local DECODE_CODE = { Unicode = 1, Number = 2, Boolean = 3, UnicodeSet = 4, UTCDateTime = 5 }

local function builtin(a, kind)
  local ctor = M[kind]
  return a.kind == kind and type(ctor) == "table" and getmetatable(a) == ctor.class
end

local decode_entry

-- The spec of one map level: the item's attributes or a typed map's fields.
local function decode_level(list, keep_unknown)
  local spec = { keep_unknown or false }
  for _, a in ipairs(list) do spec[a.wire_name] = decode_entry(a) end
  return spec
end

decode_entry = function(a)
  local code, sub = 0, nil
  if DECODE_CODE[a.kind] and builtin(a, a.kind) then
    code = DECODE_CODE[a.kind]
  elseif (builtin(a, "Map") and not a.raw) or builtin(a, "DynamicMap") then
    code, sub = 6, decode_level(a.field_order, a.dynamic)
  elseif builtin(a, "List") and a.of then
    code, sub = 7, decode_entry(a.of)
  end
  return { code, a.name, sub, a }
end

local layout = values._layout
M.DECODE_HOOKS = {
  fallback = function(a, av, name) return a:decode(av, nil, name) end,
  dynamic = function(av, name) return decode_dynamic(av, nil, name) end,
  number = function(text) return (decode_number(text)) end,
  null = null,
  set_mt = layout.set_mt, k_members = layout.k_members, k_size = layout.k_size,
  k_kind = layout.k_kind, dt_mt = layout.dt_mt, k_sec = layout.k_sec, k_usec = layout.k_usec,
}

-- Marks a response table whose items core.decode_items decoded into values.
M.NATIVE = setmetatable({}, { __tostring = function() return "lunamodb.attributes.NATIVE" end })

-- info[field] of a schema, built by build(info) on first use: the codecs' specs and plans.
local function cached(T, field, build)
  local info = M.info(T)
  local v = info[field]
  if v == nil then
    v = build(info)
    info[field] = v
  end
  return v
end

-- The decode spec of a schema (cached): its items keep names it does not declare, aside.
local function build_decode_spec(info)
  local spec = decode_level(info.order, true)
  spec[2] = M.EXTRA
  return spec
end
function M.decode_spec(T) return cached(T, "decode_spec", build_decode_spec) end

------------------------------------------------ the core's fast item encoder

-- core.encode_item writes an item's JSON straight from its values, guided by a plan the
-- core compiles once per schema from the spec built here (see csrc/lmdb.c). Only the built-in
-- classes get fast codes; every other attribute goes through its own encode (hooks.encode);
-- anything unexpected makes the core give up, and serialize_item then does the work (and
-- raises the precise error).
local encode_entry

local function encode_level(list, is_item, keys)
  local spec = {}
  for i, a in ipairs(list) do
    local e = encode_entry(a)
    -- flags beside the code (csrc/lmdb.c ENC_*): null_ok, is_key, has_default
    if a.null then e[1] = e[1] + 16 end
    if keys and keys[a] then
      e[1] = e[1] + 32
      e[6] = keys[a]                -- 1 the hash key, 2 the range key
    end
    if not is_item and (a.default ~= nil or a.default_for_new ~= nil) then e[1] = e[1] + 64 end
    spec[i] = e
  end
  return spec
end

encode_entry = function(a)
  local code, sub = 0, nil
  if DECODE_CODE[a.kind] and builtin(a, a.kind) then
    code = DECODE_CODE[a.kind]
  elseif builtin(a, "Map") and not a.raw then
    code, sub = 6, encode_level(a.field_order, false)
  elseif builtin(a, "List") and a.of then
    code, sub = 7, encode_entry(a.of)
  end
  return { code, a.name, core.json_encode(a.wire_name or a.name) .. ":", sub, a }
end

M.ENCODE_HOOKS = {
  encode = function(a, v, name) return a:encode(v, nil, name, 1) end,
  encode_number = function(v) return (encode_number(v)) end,
  set_mt = layout.set_mt, k_members = layout.k_members, k_size = layout.k_size,
  k_wire = layout.k_wire,
  dt_mt = layout.dt_mt, k_sec = layout.k_sec, k_usec = layout.k_usec, k_iso = layout.k_iso,
}

local encode_item, encode_plan, ENCODE_HOOKS = core.encode_item, core.encode_plan, M.ENCODE_HOOKS

local function key_positions(info)
  local keys = {}
  if info.hash_key then keys[info.hash_key] = 1 end
  if info.range_key then keys[info.range_key] = 2 end
  return keys
end

-- The encode plan of a schema (cached): the whole item.
local function build_encode_plan(info)
  return encode_plan(encode_level(info.order, true, key_positions(info)), ENCODE_HOOKS)
end
function M.encode_plan(T) return cached(T, "encode_plan", build_encode_plan) end

-- The encode plan of a model's items (cached): the item read name by name, declared names only,
-- as PynamoDB writes only the attributes a model declares. A model's items hold no others (their
-- metatable refuses them; a field rawset under another name is not the model's), and reading by
-- name is cheaper than walking the item. Typed maps inside are walked as encode_plan's are.
local function build_item_plan(info)
  local spec = encode_level(info.order, true, key_positions(info))
  spec.subset = true
  return encode_plan(spec, ENCODE_HOOKS)
end
function M.item_plan(T) return cached(T, "item_plan", build_item_plan) end

-- The JSON of a model item (encode_item_json's, by item_plan), or nil when the core does not
-- take it (serialize_item with unknown = "ignore" then does).
function M.encode_model_item_json(T, item)
  return (encode_item(item, M.item_plan(T)))
end

-- The encode plan of a schema's key attributes (cached): values may hold other names.
local function build_key_plan(info)
  local spec = encode_level({ info.hash_key, info.range_key }, true, key_positions(info))
  spec.subset = true
  return encode_plan(spec, ENCODE_HOOKS)
end
function M.key_plan(T) return cached(T, "key_plan", build_key_plan) end

-- The JSON of the item's Key map ({"hash":{..},"range":{..}}, in that order), between prefix
-- and suffix when given (one string: a body around it needs no concatenation), or nil when
-- the core does not take it (serialize_key then raises what is wrong).
function M.encode_key_json(T, vals, prefix, suffix)
  return (encode_item(vals, M.key_plan(T), false, prefix, suffix))
end

-- The item's JSON (its attribute map) from the core's fast encoder, or nil when it does not
-- take it (serialize_item then does).
function M.encode_item_json(T, vals)
  return (encode_item(vals, M.encode_plan(T)))
end

-- The Key map for a hash (and range) value.
local function key_av(a, v)
  if v == nil then fail(nil, a.name, "the key value is missing") end
  local av = a:encode(v, nil, a.name, 1)
  if av.S == "" or av.B == "" then fail(nil, a.name, "a key attribute cannot be empty") end
  return av
end

function M.serialize_key(T, hash, range)
  local info = M.info(T)
  local h, r = info.hash_key, info.range_key
  local key = { [h.wire_name] = key_av(h, hash) }
  if r then
    key[r.wire_name] = key_av(r, range)
  elseif range ~= nil then
    error(format("lunamodb: %s has no range key, but a range key value was given",
      info.display), 2)
  end
  return key
end

return M
