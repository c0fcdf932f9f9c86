-- lunamodb.expressions.serializer: expression text with placeholders.
--
--   local s = serializer.new()              -- one per request
--   local proj = s:projection({ "addr.street", Thread.views }, Thread)
--   local cond = s:condition(Thread.views:gt(10) * Thread.tags:contains("lua"))
--   local upd  = s:update({ Thread.views:set(Thread.views + 1), Thread.notes:remove() })
--   s:apply(params)         -- ExpressionAttributeNames / Values, when not empty
--
-- Placeholders are PynamoDB's: names #0, #1, ... de-duplicated by name
-- across every expression of the request, values :0, :1, ... never
-- de-duplicated, both numbered in serialization order. Every name and
-- value travels in a placeholder: user data never appears in the text.
-- The text is byte for byte PynamoDB's ("attribute_exists (#0)",
-- "(#0 = :0 AND size (#1) > :1)", "SET #0 = #0 + :0 REMOVE #1").
--
-- Limits checked before sending (DynamoDB's service quotas): an expression
-- of at most 4096 bytes, at most 100 operands of IN (checked when the
-- condition is built), attribute names of 1 to 65535 bytes.

local path = require "lunamodb.expressions.path"
local condition = require "lunamodb.expressions.condition"

local setmetatable, getmetatable = setmetatable, getmetatable
local type, tostring, error, ipairs, pairs, pcall = type, tostring, error, ipairs, pairs, pcall
local floor = math.floor
local format, find, gmatch, sub = string.format, string.find, string.gmatch, string.sub
local concat = table.concat
local tonumber = tonumber

local is_path, is_action = path.is_path, path.is_action
local segments, untyped = path.segments, path.untyped
local check_condition, describe = condition.check_condition, condition.describe
local a_describe = condition.a_describe

local M = {}

M.MAX_EXPRESSION_BYTES = 4096
M.MAX_NAME_BYTES = 65535

local function fail(msg, ...)
  error("lunamodb: " .. format(msg, ...), 0)
end

-- The length of a sequence without holes or other keys; raises otherwise.
local function sequence_length(t, what)
  local n, max = 0, 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or floor(k) ~= k then
      fail("%s: expected a list, found the key %s", what, tostring(k))
    end
    n = n + 1
    if k > max then max = k end
  end
  if max ~= n then fail("%s: the list has holes", what) end
  return n
end

local Serializer = {}
Serializer.__index = Serializer
Serializer.__name = "lunamodb.Serializer"

function M.new()
  return setmetatable({ _names = {}, _ids = {}, _nn = 0, _values = {}, _nv = 0 }, Serializer)
end

function M.is_serializer(x)
  return getmetatable(x) == Serializer
end

-- Placeholder texts by number ("#0", ":0", ...), made once: every request numbers from 0.
local function placeholders(prefix)
  return setmetatable({}, { __index = function(t, n)
    local ph = prefix .. format("%d", n)
    t[n] = ph
    return ph
  end })
end
local NAME_PH, VALUE_PH = placeholders("#"), placeholders(":")

local function name_ph(s, name)
  local ph = s._ids[name]
  if ph then return ph end
  if #name > M.MAX_NAME_BYTES then
    fail("attribute name '%s...' is %d bytes; DynamoDB allows at most %d", sub(name, 1, 40),
      #name, M.MAX_NAME_BYTES)
  end
  if name == "" then fail("an attribute name cannot be empty") end
  ph = NAME_PH[s._nn]
  s._nn = s._nn + 1
  s._ids[name] = ph
  s._names[ph] = name
  return ph
end

local function value_ph(s, av)
  local ph = VALUE_PH[s._nv]
  s._nv = s._nv + 1
  s._values[ph] = av
  return ph
end

local function path_text(s, p)
  local segs = segments(p)
  local out = {}
  for i = 1, #segs do
    local seg = segs[i]
    if type(seg) == "string" then
      local ph = name_ph(s, seg)
      out[i] = i > 1 and ("." .. ph) or ph
    else
      out[i] = "[" .. format("%d", seg) .. "]"
    end
  end
  return concat(out)
end

-- Operands, left to right so that numbering follows the text.
local function operand_text(s, o)
  if is_path(o) then return path_text(s, o) end
  local kind = o.kind
  if kind == "value" then
    return value_ph(s, o.av)
  elseif kind == "size" then
    return "size (" .. path_text(s, o.path) .. ")"
  elseif kind == "if_not_exists" then
    local a = path_text(s, o.path)
    local b = operand_text(s, o.value)
    return "if_not_exists (" .. a .. ", " .. b .. ")"
  elseif kind == "list_append" then
    local a = operand_text(s, o.a)
    local b = operand_text(s, o.b)
    return "list_append (" .. a .. ", " .. b .. ")"
  elseif kind == "arith" then
    local a = operand_text(s, o.a)
    local b = operand_text(s, o.b)
    return a .. " " .. o.sym .. " " .. b
  end
  fail("cannot serialize %s", a_describe(o))
end

local function condition_text(s, c)
  local op = c.op
  if op == "AND" or op == "OR" then
    local a = condition_text(s, c.a)
    local b = condition_text(s, c.b)
    return "(" .. a .. " " .. op .. " " .. b .. ")"
  elseif op == "NOT" then
    return "(NOT " .. condition_text(s, c.a) .. ")"
  elseif op == "cmp" then
    local a = operand_text(s, c.left)
    local b = operand_text(s, c.right)
    return a .. " " .. c.sym .. " " .. b
  elseif op == "between" then
    local a = operand_text(s, c.left)
    local lo = operand_text(s, c.lo)
    local hi = operand_text(s, c.hi)
    return a .. " BETWEEN " .. lo .. " AND " .. hi
  elseif op == "in" then
    local a = operand_text(s, c.left)
    local parts = {}
    for i = 1, #c.list do parts[i] = operand_text(s, c.list[i]) end
    return a .. " IN (" .. concat(parts, ", ") .. ")"
  elseif op == "fn" then
    local parts = {}
    for i = 1, #c.args do parts[i] = operand_text(s, c.args[i]) end
    return c.name .. " (" .. concat(parts, ", ") .. ")"
  end
  fail("cannot serialize condition node '%s'", tostring(op))
end

local function check_size(text, what)
  if #text > M.MAX_EXPRESSION_BYTES then
    fail("the %s expression is %d bytes; DynamoDB allows at most %d", what, #text,
      M.MAX_EXPRESSION_BYTES)
  end
  return text
end

-- The text of a condition (nil for nil). what names it in errors
-- ("condition", "filter", "key condition").
function Serializer:condition(cond, what)
  if cond == nil then return nil end
  what = what or "condition"
  check_condition(cond, what)
  return check_size(condition_text(self, cond), what)
end

local CLAUSES = { "SET", "REMOVE", "ADD", "DELETE" }

-- One action's text in its clause.
local function action_text(s, a)
  local target = path_text(s, a.path)
  local clause = a.clause
  if clause == "SET" then return target .. " = " .. operand_text(s, a.value) end
  if clause == "REMOVE" then return target end
  return target .. " " .. operand_text(s, a.value)
end

-- The text of an UpdateExpression: actions (an array, or one action)
-- grouped in the fixed clause order SET, REMOVE, ADD, DELETE, each clause
-- keeping the given order.
function Serializer:update(actions)
  if is_action(actions) then actions = { actions } end
  if describe(actions) ~= "table" then
    fail("update: expected a table of update actions (got %s)", describe(actions))
  end
  local n = sequence_length(actions, "update")
  if n == 0 then fail("update: no update actions") end
  for i = 1, n do
    local a = actions[i]
    if not is_action(a) then
      fail("update: action %d is %s, not an update action (p:set(v), p:remove(), ...)", i,
        a_describe(a))
    end
  end
  local clauses = {}
  for _, clause in ipairs(CLAUSES) do
    local parts
    for i = 1, n do
      local a = actions[i]
      if a.clause == clause then
        parts = parts or {}
        parts[#parts + 1] = action_text(self, a)
      end
    end
    if parts then clauses[#clauses + 1] = clause .. " " .. concat(parts, ", ") end
  end
  return check_size(concat(clauses, " "), "update")
end

-- A projection string: names separated by dots, each with optional 1-based
-- positions ("addr.street", "lines[1].sku"). With root, the first name is
-- looked up as root[name] (a root path: Lua names map to wire names);
-- without, names are DynamoDB names.
local function index(t, k) return t[k] end

local function parse_projection(str, root)
  local p
  for seg in gmatch(str .. ".", "(.-)%.") do
    local name, rest = seg:match("^([^%[%]]+)(.*)$")
    if not name or rest:gsub("%[%d+%]", "") ~= "" then
      fail("projection: '%s' is not a valid path (names separated by '.', positions as [1])", str)
    end
    if p then
      p = p:field(name)
    elseif root ~= nil then
      local ok, r = pcall(index, root, name)      -- a schema may raise on unknown names
      if not ok or not is_path(r) then
        fail("projection: unknown attribute '%s' in '%s'", name, str)
      end
      p = r
    else
      p = untyped(name)
    end
    for digits in gmatch(rest, "%[(%d+)%]") do
      p = p:index(tonumber(digits))
    end
  end
  return p
end

-- The text of a ProjectionExpression: list is an array of paths and
-- strings (or one of them). Paths project their full path.
function Serializer:projection(list, root)
  if type(list) == "string" or is_path(list) then list = { list } end
  if describe(list) ~= "table" then
    fail("projection: expected a list of paths or names (got %s)", describe(list))
  end
  if sequence_length(list, "projection") == 0 then
    fail("projection: the list of attributes is empty")
  end
  local parts = {}
  for i, item in ipairs(list) do
    local p = item
    if type(item) == "string" then
      if item == "" or find(item, "%.%.") or find(item, "^%.") or find(item, "%.$") then
        fail("projection: '%s' is not a valid path", item)
      end
      p = parse_projection(item, root)
    elseif not is_path(item) then
      fail("projection: item %d is %s, not a path or a name", i, a_describe(item))
    end
    parts[i] = path_text(self, p)
  end
  return check_size(concat(parts, ", "), "projection")
end

-- The ExpressionAttributeNames / Values maps so far (the serializer's own
-- tables), or nil while empty.
function Serializer:names()
  if self._nn == 0 then return nil end
  return self._names
end

function Serializer:values()
  if self._nv == 0 then return nil end
  return self._values
end

-- Sets ExpressionAttributeNames and ExpressionAttributeValues on a request
-- table when they are not empty. Returns params.
function Serializer:apply(params)
  if self._nn > 0 then params.ExpressionAttributeNames = self._names end
  if self._nv > 0 then params.ExpressionAttributeValues = self._values end
  return params
end


return M
