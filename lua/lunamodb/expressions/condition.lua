-- lunamodb.expressions.condition: condition nodes and their combinators.
--
-- Conditions are built by the methods of paths (lunamodb.expressions.path):
-- Thread.views:gt(10), Thread.tags:contains("lua"), Thread.closed:exists().
-- They combine with
--
--   a & b   a * b     AND      (& | ~ exist on Lua 5.3+ only;
--   a | b   a + b     OR        * + and unary - work everywhere,
--   ~a      -a        NOT       LuaJIT and OpenResty included)
--
-- and serialize (lunamodb.expressions.serializer) to PynamoDB's exact text:
-- "(a AND b)", "(a OR b)", "(NOT a)", fully parenthesized and left-nested.
--
-- Lua forces the results of ==, <, <= to booleans, so a condition can never
-- come out of them: `Thread.views == 3` is just `false`. Combining a
-- condition with anything that is not a condition raises, with a hint when
-- that thing is a boolean. Conditions define no __eq: == keeps its identity
-- meaning. tostring(cond) gives a readable form with Lua paths and values.

local setmetatable, getmetatable = setmetatable, getmetatable
local type, tostring, error, rawget = type, tostring, error, rawget
local format = string.format
local concat = table.concat

local M = {}

local Condition = { __name = "lunamodb.Condition" }
M.Condition = Condition

local BOOLEAN_HINT = " (Lua comparison operators such as == and < always yield booleans: "
  .. "build conditions with methods such as :eq, :ne, :lt, :gt, :exists)"

-- A name for what a value is, for messages: our own node kinds by their
-- metatable's __what ("path", "update action", ...), else the Lua type.
local function describe(v)
  local mt = getmetatable(v)
  local what = type(mt) == "table" and rawget(mt, "__what")
  if type(what) == "string" then return what end
  return type(v)
end
M.describe = describe

-- describe(v) with its article: "a boolean", "an update action".
local function a_describe(v)
  local what = describe(v)
  return (what:find("^[aeiou]") and "an " or "a ") .. what
end
M.a_describe = a_describe

local function is_condition(x)
  return getmetatable(x) == Condition
end
M.is_condition = is_condition

-- Raises unless x is a condition; `what` names the place it was expected
-- ("Thread:save: condition"). Returns x.
function M.check_condition(x, what)
  if getmetatable(x) == Condition then return x end
  error(format("lunamodb: %s must be a condition, got %s%s", tostring(what or "value"),
    a_describe(x), type(x) == "boolean" and BOOLEAN_HINT or ""), 0)
end

local function check_operand(x)
  if getmetatable(x) ~= Condition then
    error(format("lunamodb: cannot combine a condition with %s%s", a_describe(x),
      type(x) == "boolean" and BOOLEAN_HINT or ""), 0)
  end
  return x
end

-- fields: the node; op is one of "cmp", "between", "in", "fn", "AND", "OR",
-- "NOT" (built by lunamodb.expressions.path).
function M.new(fields)
  return setmetatable(fields, Condition)
end

local function both(op)
  return function(a, b)
    check_operand(a)
    check_operand(b)
    return setmetatable({ op = op, a = a, b = b }, Condition)
  end
end

local function negate(a)
  check_operand(a)
  return setmetatable({ op = "NOT", a = a }, Condition)
end

Condition.__band = both("AND")
Condition.__mul = both("AND")
Condition.__bor = both("OR")
Condition.__add = both("OR")
Condition.__bnot = negate
Condition.__unm = negate

local function no_compare()
  error("lunamodb: conditions cannot be compared with < or <=" .. BOOLEAN_HINT, 0)
end
Condition.__lt = no_compare
Condition.__le = no_compare
Condition.__concat = function()
  error("lunamodb: a condition cannot be concatenated (use tostring(cond) for its text)", 0)
end
Condition.__call = function()
  error("lunamodb: a condition is not a function", 0)
end
Condition.__what = "condition"

local function text(c)
  local op = c.op
  if op == "AND" or op == "OR" then
    return "(" .. text(c.a) .. " " .. op .. " " .. text(c.b) .. ")"
  elseif op == "NOT" then
    return "(NOT " .. text(c.a) .. ")"
  elseif op == "cmp" then
    return tostring(c.left) .. " " .. c.sym .. " " .. tostring(c.right)
  elseif op == "between" then
    return tostring(c.left) .. " BETWEEN " .. tostring(c.lo) .. " AND " .. tostring(c.hi)
  elseif op == "in" then
    local parts = {}
    for i = 1, #c.list do parts[i] = tostring(c.list[i]) end
    return tostring(c.left) .. " IN (" .. concat(parts, ", ") .. ")"
  elseif op == "fn" then
    local parts = {}
    for i = 1, #c.args do parts[i] = tostring(c.args[i]) end
    return c.name .. " (" .. concat(parts, ", ") .. ")"
  end
  return "?"
end

Condition.__tostring = text

return M
