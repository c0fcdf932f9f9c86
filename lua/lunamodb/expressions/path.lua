-- lunamodb.expressions.path: document paths, and the conditions, operands
-- and update actions built from them.
--
-- Root paths come from the schema: path.root(attr, "Thread") for each
-- declared attribute. From a path:
--
--   Thread.addr.street     a field of a typed map (Lua name, sent as its
--                          wire name); any key of a raw or dynamic map
--   Thread.lines[2].sku    a list element, 1-based in Lua, sent as [1]
--   p:field(name)          the same, for names that collide with methods
--   p:index(i)             (method names win in p.name lookups)
--
-- Conditions (lunamodb.expressions.condition combines them):
--   p:eq(v) :ne :lt :le :gt :ge   p:between(lo, hi)   p:is_in(v1, v2, ...)
--   p:begins_with(s)   p:contains(v)   p:exists()   p:does_not_exist()
--   p:is_type([t])     p:size():gt(3)  (size operands compare like paths)
-- A right-hand side is a value (serialized through the path's attribute),
-- another path or a size operand. A value is never nil.
--
-- Update actions, for serializer:update:
--   p:set(v)  p:remove()  p:add(v)  p:delete(v)
--   operands for set: p + v, v + p, p - v, v - p, p + q, p:if_not_exists(v)
--   (itself + and - able), p:append(list), p:prepend(list)
--
-- Paths define no __eq (== keeps its identity meaning); <, <=, .., and
-- calling a path raise with a hint, because Lua forces comparison results
-- to booleans. Paths are immutable.
--
-- Every error is a plain string starting with "lunamodb: " and naming the
-- path in its Lua form ("Thread.lines[2].sku").

local condition = require "lunamodb.expressions.condition"

local setmetatable, getmetatable = setmetatable, getmetatable
local type, tostring, error, select, next, pairs = type, tostring, error, select, next, pairs
local format, find = string.format, string.find
local concat, sort = table.concat, table.sort
local floor = math.floor
local new_condition, is_condition = condition.new, condition.is_condition
local describe, a_describe = condition.describe, condition.a_describe

local M = {}

M.is_condition = is_condition
M.check_condition = condition.check_condition

-- The AttributeValue type letters DynamoDB knows.
local TYPES = { S = true, N = true, B = true, BOOL = true, NULL = true, M = true, L = true,
  SS = true, NS = true, BS = true }
local TYPE_LIST = "S, N, B, BOOL, NULL, M, L, SS, NS, BS"
local SETS = { SS = true, NS = true, BS = true }
local ORDERED = { S = true, N = true, B = true }
local SIZED = { S = true, B = true, M = true, L = true, SS = true, NS = true, BS = true }

-- Most operands of IN that DynamoDB accepts.
M.MAX_IN = 100

local function fail(msg, ...)
  error("lunamodb: " .. format(msg, ...), 0)
end

-- The attributes module is loaded on first use (it loads after us).
local serialize_dynamic
local function dynamic(v, where)
  if not serialize_dynamic then
    serialize_dynamic = require("lunamodb.attributes").serialize_dynamic
  end
  return serialize_dynamic(v, where)
end

---------------------------------------------------------------- value text

-- A short readable form of an AttributeValue, for tostring().
local function av_text(av)
  if type(av) ~= "table" then return tostring(av) end
  local t, v = next(av)
  if t == "S" then return format("%q", v)
  elseif t == "N" then return tostring(v)
  elseif t == "BOOL" then return tostring(v)
  elseif t == "NULL" then return "NULL"
  elseif t == "B" then return "B" .. format("%q", v)
  elseif t == "L" or SETS[t] then
    local parts = {}
    for i = 1, #v do
      local x = v[i]
      if t == "L" then parts[i] = av_text(x)
      elseif t == "NS" then parts[i] = tostring(x)
      else parts[i] = format("%q", x) end
    end
    if t == "L" then return "[" .. concat(parts, ", ") .. "]" end
    return t .. "{" .. concat(parts, ", ") .. "}"
  elseif t == "M" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    sort(keys)
    for i = 1, #keys do keys[i] = format("[%q] = %s", keys[i], av_text(v[keys[i]])) end
    return "{" .. concat(keys, ", ") .. "}"
  end
  return "?"
end

---------------------------------------------------------------- operands

-- Values, size(), if_not_exists(), list_append() and arithmetic. Each kind
-- has its own metatable; all carry `kind`.
local Value = { __what = "value operand", __name = "lunamodb.Operand" }
local Size = { __what = "size() operand", __name = "lunamodb.Operand" }
local IfNotExists = { __what = "if_not_exists() operand", __name = "lunamodb.Operand" }
local ListAppend = { __what = "list_append() operand", __name = "lunamodb.Operand" }
local Arith = { __what = "arithmetic operand", __name = "lunamodb.Operand" }
local OPERANDS = { [Value] = true, [Size] = true, [IfNotExists] = true, [ListAppend] = true,
  [Arith] = true }

local function is_operand(x)
  return OPERANDS[getmetatable(x)] == true
end
M.is_operand = is_operand

Value.__tostring = function(o) return av_text(o.av) end
Size.__tostring = function(o) return "size (" .. tostring(o.path) .. ")" end
IfNotExists.__tostring = function(o)
  return "if_not_exists (" .. tostring(o.path) .. ", " .. tostring(o.value) .. ")"
end
ListAppend.__tostring = function(o)
  return "list_append (" .. tostring(o.a) .. ", " .. tostring(o.b) .. ")"
end
Arith.__tostring = function(o)
  return tostring(o.a) .. " " .. o.sym .. " " .. tostring(o.b)
end

local Action = { __name = "lunamodb.UpdateAction", __what = "update action" }
M.Action = Action

local function is_action(x)
  return getmetatable(x) == Action
end
M.is_action = is_action

local function value_operand(av)
  return setmetatable({ kind = "value", av = av }, Value)
end

-- A value operand of a plain string or number: its type letter and wire text, the
-- AttributeValue table made only if something reads .av (the Lua serializer, tostring);
-- core.update_body writes it from the two. One table per update value instead of two.
Value.__index = function(o, k)
  if k == "av" then
    local t = rawget(o, "t")
    if t then
      local av = { [t] = rawget(o, "v") }
      rawset(o, "av", av)
      return av
    end
  end
end
local function plain_operand(t, v)
  return setmetatable({ kind = "value", t = t, v = v }, Value)
end

---------------------------------------------------------------- paths

local Path = {}                      -- methods
local PathMT = { __name = "lunamodb.Path", __what = "path" }
-- Private state lives under table keys, so every string key is free to
-- name a field of the document.
local ATTR, SEGS, TEXT = {}, {}, {}

local function is_path(x)
  return getmetatable(x) == PathMT
end
M.is_path = is_path

local function new_path(attr, segs, text)
  return setmetatable({ [ATTR] = attr or false, [SEGS] = segs, [TEXT] = text }, PathMT)
end

-- The Lua form of a name after a path: .name, or ["odd name"].
local function name_text(name)
  if find(name, "^[%a_][%w_]*$") then return "." .. name end
  return format("[%q]", name)
end

local function kind_of(attr)
  return tostring(attr.kind or attr.type)
end

local function check_name(name, where)
  if type(name) ~= "string" then
    fail("%s: a field name must be a string (got %s)", where, describe(name))
  end
  if name == "" then fail("%s: a field name cannot be empty", where) end
end

-- A root path for a declared attribute; display_prefix ("Thread") is used
-- in messages and tostring ("Thread.views").
function M.root(attr, display_prefix)
  if type(attr) ~= "table" then
    fail("path.root: expected an attribute (got %s)", describe(attr))
  end
  local wire = attr.wire_name or attr.name
  local name = attr.name or wire
  check_name(wire, "path.root")
  local text
  if display_prefix ~= nil then
    text = tostring(display_prefix) .. name_text(name)
  else
    text = name
  end
  return new_path(attr, { wire }, text)
end

-- A root path for an undeclared attribute: any field or index below it,
-- values typed dynamically. name is the DynamoDB name.
function M.untyped(name, display_prefix)
  check_name(name, "path.untyped")
  local text = display_prefix ~= nil and (tostring(display_prefix) .. name_text(name)) or name
  return new_path(nil, { name }, text)
end

local function append_seg(segs, seg)
  local out = {}
  for i = 1, #segs do out[i] = segs[i] end
  out[#segs + 1] = seg
  return out
end

local function child_field(p, name)
  local text = p[TEXT]
  check_name(name, text)
  local attr = p[ATTR]
  local child, wire = nil, name
  if attr then
    local fields = attr.fields
    local f = fields and fields[name]
    if f then
      child, wire = f, f.wire_name or f.name or name
    elseif attr.dynamic or (attr.type == "M" and not fields) then
      child = nil                                 -- any key, typed dynamically
    elseif attr.type == "M" then
      fail("%s has no field '%s'", text, name)
    else
      fail("%s is a %s: it has no field '%s'", text, kind_of(attr), name)
    end
  end
  return new_path(child, append_seg(p[SEGS], wire), text .. name_text(name))
end

local function child_index(p, i)
  local text = p[TEXT]
  if type(i) ~= "number" or i ~= i or i < 1 or i > 9007199254740992 or floor(i) ~= i then
    fail("%s[%s]: a list position is an integer from 1", text, tostring(i))
  end
  local attr = p[ATTR]
  local elem = nil
  if attr then
    if attr.type ~= "L" then
      fail("%s is a %s, not a List: it cannot be indexed with [%s]", text, kind_of(attr),
        format("%d", i))
    end
    elem = attr.of
  end
  return new_path(elem, append_seg(p[SEGS], i - 1), text .. "[" .. format("%d", i) .. "]")
end

function Path:field(name) return child_field(self, name) end
function Path:index(i) return child_index(self, i) end

PathMT.__index = function(p, k)
  local m = Path[k]
  if m ~= nil then return m end
  local t = type(k)
  if t == "string" then return child_field(p, k) end
  if t == "number" then return child_index(p, k) end
  fail("%s: a path is indexed by a field name or a list position (got %s)", p[TEXT], describe(k))
end

PathMT.__newindex = function(p, k)
  fail("paths are read-only (assigning %s.%s): build an update with :set(value)", p[TEXT],
    tostring(k))
end

PathMT.__tostring = function(p) return p[TEXT] end

local function cmp_hint(a, b, method, reverse)
  local p = is_path(a) and a or b
  local m = is_path(a) and method or reverse
  fail("use %s:%s(x): Lua comparisons always yield booleans", p[TEXT], m)
end
PathMT.__lt = function(a, b) cmp_hint(a, b, "lt", "gt") end
PathMT.__le = function(a, b) cmp_hint(a, b, "le", "ge") end
PathMT.__call = function(p)
  fail("%s is a path, not a function (conditions and updates are its methods: :eq, :set, ...)",
    p[TEXT])
end
PathMT.__concat = function(a, b)
  local p = is_path(a) and a or b
  fail("%s is a path: it cannot be concatenated (tostring(path) gives its text)", p[TEXT])
end
PathMT.__unm = function(p)
  fail("-%s: write 0 - %s for a negated number", p[TEXT], p[TEXT])
end
local function no_logic(a, b)
  local p = is_path(a) and a or b
  fail("%s is a path, not a condition: combine conditions such as %s:exists()", p[TEXT], p[TEXT])
end
PathMT.__mul = no_logic
PathMT.__band = no_logic
PathMT.__bor = no_logic
PathMT.__bnot = no_logic

-- Internal accessors, for the serializer and the model layer.
function M.attr(p) return p[ATTR] or nil end
function M.text(p) return p[TEXT] end
function M.segments(p) return p[SEGS] end

-- What core.update_body reads update actions with: the paths' segments key, and the node
-- metatables numbered as csrc/lmdb.c's UK_* kinds.
M.UPDATE_SPEC = { segs = SEGS, kinds = { [Action] = 1, [PathMT] = 2, [Value] = 3, [Arith] = 4,
  [IfNotExists] = 5, [ListAppend] = 6 } }

---------------------------------------------------------------- values

local NIL_HINT = "a value cannot be nil (use :exists() or :does_not_exist() to test presence, "
  .. "lunamodb.null for NULL)"

-- The metatables of expression nodes (conditions, operands, paths, actions): one lookup
-- tells a node from a value.
local NODES = { [condition.Condition] = true, [PathMT] = true, [Action] = true }
for mt in pairs(OPERANDS) do NODES[mt] = true end

local function check_not_node(v, where)
  if NODES[getmetatable(v)] then
    fail("%s: %s cannot be used as a value here", where, a_describe(v))
  end
end

-- The AttributeValue of v (known to be neither nil nor a node) for the path p (through its
-- attribute, or typed dynamically when p has none); nil when the attribute calls v absent.
local function value_av(p, v)
  local attr = p[ATTR]
  if attr then return attr:serialize(v, p[TEXT]) end
  return dynamic(v, p[TEXT])
end

-- A plain number or string for a built-in Number or Unicode attribute: its type letter and
-- wire text, without the encode chain (nil: value_av decides, and raises what is wrong).
local function plain_value(p, v)
  local attr = p[ATTR]
  local plain = attr and attr.plain_value
  local text = plain and plain(attr, v)
  if text then return attr.type, text end
end

-- value_av of any v: nil and nodes refused, with where as the error's context.
local function serialize(p, v, where)
  if v == nil then fail("%s: %s", where, NIL_HINT) end
  check_not_node(v, where)
  return value_av(p, v)
end

local function serialize_present(p, v, where)
  local av = serialize(p, v, where)
  if av == nil then
    fail("%s: the value serializes to nothing (an empty set?): DynamoDB cannot compare with it",
      where)
  end
  return av
end

local function letter(av) return (next(av)) end

local function path_kind(p)
  local attr = p[ATTR]
  return attr and attr.type or nil
end

---------------------------------------------------------------- conditions

-- The context error messages start with ("path:method(arg)"): only formatted when an error is
-- raised (fail's %s calls __tostring), since building expressions is on every call's path.
local Where = {}
Where.__tostring = function(self) return format("%s:%s(%s)", self[1][TEXT], self[2], self[3] or "") end
local function where(p, method, arg)
  return setmetatable({ p, method, arg }, Where)
end

-- The right-hand side of a comparison with the path p: a path, a size
-- operand or a value.
local function rhs_for_path(p, v, w)
  if is_path(v) then return v end
  local mt = getmetatable(v)
  if mt == Size then return v end
  if is_operand(v) then
    fail("%s: %s cannot be compared (use a value, a path or size())", w, a_describe(v))
  end
  return value_operand(serialize_present(p, v, w))
end

-- The right-hand side of a comparison with size(): a number, path or size.
local function rhs_for_size(s, v, w)
  if is_path(v) or getmetatable(v) == Size then return v end
  if v == nil then fail("%s: %s", w, NIL_HINT) end
  if is_operand(v) then
    fail("%s: %s cannot be compared (use a number, a path or size())", w, a_describe(v))
  end
  check_not_node(v, w)
  local av = dynamic(v, tostring(s))
  if letter(av) ~= "N" then fail("%s: size() is compared with numbers", w) end
  return value_operand(av)
end

local function check_ordered(p, w)
  local t = path_kind(p)
  if t and not ORDERED[t] then
    fail("%s: <, <=, >, >= and BETWEEN compare strings, numbers and binaries; %s is a %s", w,
      p[TEXT], kind_of(p[ATTR]))
  end
end

local SYMBOLS = { eq = "=", ne = "<>", lt = "<", le = "<=", gt = ">", ge = ">=" }
local ORDERING = { lt = true, le = true, gt = true, ge = true }

for method, sym in pairs(SYMBOLS) do
  Path[method] = function(self, v)
    local w = where(self, method, "...")
    if ORDERING[method] then
      check_ordered(self, w)
      if is_path(v) then check_ordered(v, w) end
    end
    return new_condition({ op = "cmp", sym = sym, left = self, right = rhs_for_path(self, v, w) })
  end
  Size[method] = function(self, v)
    local w = format("%s:%s(...)", tostring(self), method)
    return new_condition({ op = "cmp", sym = sym, left = self, right = rhs_for_size(self, v, w) })
  end
end

function Path:between(lo, hi)
  local w = where(self, "between", "lo, hi")
  check_ordered(self, w)
  local a = rhs_for_path(self, lo, w)
  local b = rhs_for_path(self, hi, w)
  return new_condition({ op = "between", left = self, lo = a, hi = b })
end

local function in_list(n, w, each, ...)
  if n == 0 then fail("%s: IN needs at least one value", w) end
  if n > M.MAX_IN then
    fail("%s: IN takes at most %d values (got %d)", w, M.MAX_IN, n)
  end
  local list = {}
  for i = 1, n do list[i] = each((select(i, ...))) end
  return list
end

function Path:is_in(...)
  local w = where(self, "is_in", "...")
  local list = in_list(select("#", ...), w, function(v) return rhs_for_path(self, v, w) end, ...)
  return new_condition({ op = "in", left = self, list = list })
end

function Path:begins_with(prefix)
  local w = where(self, "begins_with", "...")
  local t = path_kind(self)
  if t and t ~= "S" and t ~= "B" then
    fail("%s: begins_with works on strings and binaries; %s is a %s", w, self[TEXT],
      kind_of(self[ATTR]))
  end
  local av = serialize_present(self, prefix, w)
  local l = letter(av)
  if l ~= "S" and l ~= "B" then
    fail("%s: the prefix must be a string or binary value", w)
  end
  return new_condition({ op = "fn", name = "begins_with", args = { self, value_operand(av) } })
end

function Path:contains(v)
  local w = where(self, "contains", "...")
  local arg
  if is_path(v) then
    arg = v
  else
    local attr, av = self[ATTR], nil
    if attr then
      local t = attr.type
      if SETS[t] or t == "L" then
        if v == nil then fail("%s: %s", w, NIL_HINT) end
        check_not_node(v, w)
        av = attr:serialize_element(v, self[TEXT])
      elseif t == "S" or t == "B" then
        av = serialize(self, v, w)
      else
        fail("%s: contains works on strings, binaries, sets and lists; %s is a %s", w,
          self[TEXT], kind_of(attr))
      end
      if av == nil then fail("%s: the value serializes to nothing", w) end
    else
      av = serialize_present(self, v, w)
    end
    arg = value_operand(av)
  end
  return new_condition({ op = "fn", name = "contains", args = { self, arg } })
end

function Path:exists()
  return new_condition({ op = "fn", name = "attribute_exists", args = { self } })
end

function Path:does_not_exist()
  return new_condition({ op = "fn", name = "attribute_not_exists", args = { self } })
end

function Path:is_type(t)
  if t == nil then
    t = path_kind(self)
    if not t then
      fail("%s: this path has no declared type: name one (%s)", where(self, "is_type"), TYPE_LIST)
    end
  end
  if not TYPES[t] then
    fail("%s: the type must be one of %s", where(self, "is_type", format("%q", tostring(t))),
      TYPE_LIST)
  end
  return new_condition({ op = "fn", name = "attribute_type",
    args = { self, value_operand({ S = t }) } })
end

function Path:size()
  local t = path_kind(self)
  if t and not SIZED[t] then
    fail("%s: size() works on strings, binaries, sets, lists and maps; %s is a %s",
      where(self, "size"), self[TEXT], kind_of(self[ATTR]))
  end
  return setmetatable({ kind = "size", path = self }, Size)
end

Size.__index = Size

function Size:between(lo, hi)
  local w = format("%s:between(lo, hi)", tostring(self))
  return new_condition({ op = "between", left = self, lo = rhs_for_size(self, lo, w),
    hi = rhs_for_size(self, hi, w) })
end

function Size:is_in(...)
  local w = format("%s:is_in(...)", tostring(self))
  local list = in_list(select("#", ...), w, function(v) return rhs_for_size(self, v, w) end, ...)
  return new_condition({ op = "in", left = self, list = list })
end

---------------------------------------------------------------- update actions

local function new_action(clause, p, value)
  return setmetatable({ clause = clause, path = p, value = value }, Action)
end

Action.__tostring = function(a)
  local c = a.clause
  if c == "SET" then return "SET " .. tostring(a.path) .. " = " .. tostring(a.value) end
  if c == "REMOVE" then return "REMOVE " .. tostring(a.path) end
  return c .. " " .. tostring(a.path) .. " " .. tostring(a.value)
end
local function action_misuse()
  error("lunamodb: update actions are not combined with operators: pass them in a table, "
    .. "{ a:set(1), b:remove() }", 0)
end
Action.__add, Action.__mul, Action.__band, Action.__bor = action_misuse, action_misuse,
  action_misuse, action_misuse

-- An operand for the right-hand side of SET, or inside if_not_exists,
-- list_append and arithmetic, with p giving the type of a value.
local function update_operand(p, v, w)
  if is_path(v) then return v end
  local mt = getmetatable(v)
  if mt == Size then fail("%s: size() is for conditions, not updates", w) end
  if is_operand(v) then return v end
  local av = serialize(p, v, w)
  if av == nil then fail("%s: the value serializes to nothing (an empty set?)", w) end
  return value_operand(av)
end

-- (The error context is made only on the failing branches: set is on every update's path.)
function Path:set(v)
  local tv = type(v)
  if tv == "string" or tv == "number" then
    local t, text = plain_value(self, v)
    if t then return new_action("SET", self, plain_operand(t, text)) end
  end
  if v == nil then
    fail("%s: use %s:remove() to delete the attribute, or lunamodb.null to store NULL",
      where(self, "set", "nil"), self[TEXT])
  end
  local mt = getmetatable(v)
  if mt == Size then fail("%s: size() is for conditions, not updates", where(self, "set", "...")) end
  if mt == PathMT or OPERANDS[mt] then return new_action("SET", self, v) end
  if NODES[mt] then check_not_node(v, where(self, "set", "...")) end
  local av = value_av(self, v)
  if av == nil then return new_action("REMOVE", self) end   -- an empty set: PynamoDB 6
  return new_action("SET", self, value_operand(av))
end

function Path:remove()
  return new_action("REMOVE", self)
end

-- One member of a set: a string, a number, or lunamodb.decimal/binary.
local MEMBER_TYPES = { ["lunamodb.decimal"] = true, ["lunamodb.binary"] = true }
local function is_member(v)
  local t = type(v)
  if t == "string" or t == "number" then return true end
  local mt = getmetatable(v)
  return t == "table" and type(mt) == "table" and MEMBER_TYPES[mt.__name] == true
end

-- ADD and DELETE take a set, or one member on a set attribute, sent as a
-- one-member set.
local function set_value(p, v, w, what)
  if v == nil then fail("%s: %s", w, NIL_HINT) end
  check_not_node(v, w)
  local attr = p[ATTR]
  local av
  if attr and SETS[attr.type] and is_member(v) then
    local el = attr:serialize_element(v, p[TEXT])
    local _, x = next(el)
    av = { [attr.type] = { x } }
  else
    av = serialize(p, v, w)
  end
  if av == nil then fail("%s: %s needs a non-empty value (DynamoDB has no empty sets)", w, what) end
  return av
end

function Path:add(v)
  local w = where(self, "add", "...")
  local t = path_kind(self)
  if t and t ~= "N" and not SETS[t] then
    fail("%s: ADD works on numbers and sets; %s is a %s", w, self[TEXT], kind_of(self[ATTR]))
  end
  if is_path(v) or is_operand(v) then fail("%s: ADD takes a value", w) end
  local av = set_value(self, v, w, "ADD")
  local l = letter(av)
  if l ~= "N" and not SETS[l] then fail("%s: ADD takes a number or a set", w) end
  return new_action("ADD", self, value_operand(av))
end

function Path:delete(v)
  local w = where(self, "delete", "...")
  local t = path_kind(self)
  if t and not SETS[t] then
    fail("%s: DELETE removes members from a set; %s is a %s", w, self[TEXT], kind_of(self[ATTR]))
  end
  if is_path(v) or is_operand(v) then fail("%s: DELETE takes a value", w) end
  local av = set_value(self, v, w, "DELETE")
  if not SETS[letter(av)] then fail("%s: DELETE takes a set", w) end
  return new_action("DELETE", self, value_operand(av))
end

local function check_list(p, w)
  local t = path_kind(p)
  if t and t ~= "L" then
    fail("%s: list_append works on lists; %s is a %s", w, p[TEXT], kind_of(p[ATTR]))
  end
end

local function list_operand(p, v, w)
  if v == nil then fail("%s: %s", w, NIL_HINT) end
  local o = update_operand(p, v, w)
  if getmetatable(o) == Value and letter(o.av) ~= "L" then
    fail("%s: list_append takes a list", w)
  end
  if getmetatable(o) == Arith then fail("%s: list_append takes a list, not arithmetic", w) end
  return o
end

-- self: a path, or an if_not_exists operand (whose path gives the type).
local function appender(self, p, method, v)
  local w = where(p, method, "...")
  check_list(p, w)
  local o = list_operand(p, v, w)
  if method == "append" then
    return setmetatable({ kind = "list_append", a = self, b = o }, ListAppend)
  end
  return setmetatable({ kind = "list_append", a = o, b = self }, ListAppend)
end

function Path:append(v) return appender(self, self, "append", v) end
function Path:prepend(v) return appender(self, self, "prepend", v) end

function Path:if_not_exists(v)
  local w = where(self, "if_not_exists", "...")
  if v == nil then fail("%s: %s", w, NIL_HINT) end
  local o = update_operand(self, v, w)
  local mt = getmetatable(o)
  if mt == Arith or mt == ListAppend then
    fail("%s: the default must be a value or a path", w)
  end
  return setmetatable({ kind = "if_not_exists", path = self, value = o }, IfNotExists)
end

IfNotExists.__index = {
  append = function(self, v) return appender(self, self.path, "append", v) end,
  prepend = function(self, v) return appender(self, self.path, "prepend", v) end,
}

-- Arithmetic: +, - between numbers (paths, if_not_exists operands, values).
local function numeric_path(x)
  local mt = getmetatable(x)
  if mt == PathMT then return x end
  if mt == IfNotExists then return x.path end
  return nil
end

local function show(x)
  if is_path(x) or getmetatable(x) == IfNotExists or type(x) == "number" then
    return tostring(x)
  end
  if type(x) == "string" then return format("%q", x) end
  return describe(x)
end

-- "a + b" for error messages, formatted only when one is raised (see Where), and made only
-- then too: arithmetic is on updates' path.
local ArithWhere = {}
ArithWhere.__tostring = function(self)
  return format("%s %s %s", show(self[1]), self[2], show(self[3]))
end
local function arith_where(a, sym, b) return setmetatable({ a, sym, b }, ArithWhere) end

-- One side of an arithmetic value: a numeric path, or a number serialized like ref.
local function arith_side(x, ref, a, sym, b)
  local xp = numeric_path(x)
  if xp then
    local t = path_kind(xp)
    if t and t ~= "N" then
      fail("%s: arithmetic works on numbers; %s is a %s", arith_where(a, sym, b), xp[TEXT],
        kind_of(xp[ATTR]))
    end
    return x
  end
  if x == nil then fail("%s: %s", arith_where(a, sym, b), NIL_HINT) end
  local mt = getmetatable(x)
  if mt == Arith then
    fail("%s: DynamoDB allows one + or - in a SET value", arith_where(a, sym, b))
  end
  if NODES[mt] then
    fail("%s: %s cannot be used in arithmetic", arith_where(a, sym, b), a_describe(x))
  end
  local av = value_av(ref, x)
  if av == nil or letter(av) ~= "N" then
    fail("%s: arithmetic takes numbers", arith_where(a, sym, b))
  end
  return value_operand(av)
end

local function arith(sym, a, b)
  -- the common case first: a Number attribute's path and a plain number (arith_side's
  -- checks hold for both)
  if getmetatable(a) == PathMT then
    local t, text = plain_value(a, b)
    if t == "N" then
      return setmetatable({ kind = "arith", sym = sym, a = a, b = plain_operand(t, text) }, Arith)
    end
  end
  local ref = numeric_path(a) or numeric_path(b)
  local left = arith_side(a, ref, a, sym, b)
  local right = arith_side(b, ref, a, sym, b)
  return setmetatable({ kind = "arith", sym = sym, a = left, b = right }, Arith)
end

PathMT.__add = function(a, b) return arith("+", a, b) end
PathMT.__sub = function(a, b) return arith("-", a, b) end
IfNotExists.__add = PathMT.__add
IfNotExists.__sub = PathMT.__sub

local function no_more_arith()
  error("lunamodb: DynamoDB allows one + or - in a SET value", 0)
end
Arith.__add, Arith.__sub = no_more_arith, no_more_arith
local function size_in_update()
  error("lunamodb: size() is for conditions, not arithmetic", 0)
end
Size.__add, Size.__sub = size_in_update, size_in_update

M.av_text = av_text

return M
