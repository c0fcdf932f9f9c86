-- lunamodb.values: the Lua values that stand for DynamoDB values.
--
--   values.null          DynamoDB NULL where nil cannot stand (inside lists and maps)
--   values.set(list)     SS / NS / BS: O(1) membership, order-insensitive equality
--   values.datetime(x)   a UTC instant with microsecond precision (PynamoDB's
--                        UTCDateTimeAttribute text: "%Y-%m-%dT%H:%M:%S.%f+0000")
--   values.decimal(x)    an exact DynamoDB number (38 digits, 1E-130 <= |x| < 1E+126)
--   values.binary(s)     bytes where a plain Lua string would mean S
--   values.encode_number / values.decode_number: the N wire codec, never rounding silently
--
-- Canonical number text (decimal:text(), encode_number, set keys): plain decimal
-- notation, never an exponent, exactly as DynamoDB itself returns numbers: an optional
-- '-', no '+', no leading zeros ("0.5", not ".5"), no trailing zeros after the point and
-- no point when there is no fraction; zero is "0" (also for -0.0). So "1.50", "15E-1" and
-- "+1.5" all read "1.5", "1E+2" reads "100" and 1E-130 is "0." followed by 129 zeros and
-- "1". One value has one text, so texts compare equal exactly when values do. DynamoDB
-- (Local, verified) answers every number in this form, so for any N text t it returns,
-- encode_number(decode_number(t)) == t. Significant digits are counted after trimming
-- leading and trailing zeros, as DynamoDB counts them ("1" followed by 60 zeros is fine).
--
-- decode_number: integers that fit (int64 on 5.4, |n| <= 2^53 on LuaJIT) become Lua
-- integers; non-integers of at most 15 significant digits become floats (each such
-- decimal survives a trip through a double, so encode_number gives the same text back);
-- everything else becomes a decimal. Nothing is rounded.
--
-- encode_number of a float sends its shortest round-trip text, as PynamoDB (json.dumps)
-- does. For integral floats beyond 2^53 that text is an integer other than the float's
-- exact binary value (2^60 as a float is sent as 1152921504606847000), and it reads back
-- as that integer (5.4) or decimal: use integers or decimals for large exact values.
--
-- Comparisons: == never holds across types (decimal("1") ~= 1: Lua does not call __eq
-- for a table and a number). Lua 5.4 calls __lt/__le for decimal-vs-number and they
-- compare exactly; LuaJIT refuses to compare a table with a number. # on a set or binary
-- works on 5.4 only (LuaJIT ignores __len on tables): use s:size() and #b.data.
--
-- Datetimes round fractions of a microsecond to the nearest, ties to even (as Python's
-- datetime.fromtimestamp and timedelta do), for epoch floats, ISO fractions and add().
--
-- Misuse (a wrong argument) raises "lunamodb.<function>: ..." at the caller; the codecs
-- (encode_number, decode_number, parse_datetime_wire) return nil, message instead.
--
-- Lua 5.4 and LuaJIT 2.1: LuaJIT has no integer subtype, so "integer" there means an
-- integral double of magnitude <= 2^53, the range in which doubles are exact.

local core = require "lunamodb.core"

local type, tostring, tonumber, setmetatable, getmetatable, rawget, rawset, rawequal, error,
  next, pairs = type, tostring, tonumber, setmetatable, getmetatable, rawget, rawset, rawequal,
  error, next, pairs
local floor, ceil, huge = math.floor, math.ceil, math.huge
local format, find, match, sub, rep, byte, gsub = string.format, string.find, string.match,
  string.sub, string.rep, string.byte, string.gsub
local concat, sort = table.concat, table.sort
local now_ms, NULL = core.now_ms, core.null
local setlocale = os and os.setlocale

-- Lua 5.3+ has 64-bit integers; LuaJIT numbers are doubles. Version differences go
-- through these locals only.
local IS_INT64 = math.type ~= nil
local math_type = math.type or function(n)
  if type(n) ~= "number" then return nil end
  return (n % 1 == 0) and "integer" or "float"
end
local tointeger = math.tointeger or function(x)
  if x % 1 == 0 then return x end
  return nil
end

local M = {}

M.null = core.null

-- Hidden keys: the fields of decimals, binaries, datetimes and sets live under keys no
-- other code can name, so the public fields (dt.epoch_s, b.data) are read-only.
local K_SIGN, K_COEF, K_EXP, K_TEXT = {}, {}, {}, {}
local K_DATA = {}
local K_SEC, K_USEC, K_ISO = {}, {}, {}
-- K_WIRE: a string set's members as the encoder last wrote them (sorted JSON strings joined by
-- commas), kept as a datetime keeps its text; every change of the members drops it
local K_MEMBERS, K_SIZE, K_KIND, K_WIRE = {}, {}, {}, {}

local Decimal, Binary, Set, Datetime = {}, {}, {}, {}
Decimal.__name = "lunamodb.decimal"
Binary.__name = "lunamodb.binary"
Set.__name = "lunamodb.set"
Datetime.__name = "lunamodb.datetime"

------------------------------------------------------------------------------------------
-- Small helpers

local QUOTE = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
for i = 0, 31 do
  local c = string.char(i)
  if not QUOTE[c] then QUOTE[c] = format("\\%03d", i) end
end
QUOTE["\127"] = "\\127"

-- A string as a double-quoted Lua literal, for tostring and error messages.
local function quote(s)
  return '"' .. gsub(s, '[%c"\\]', QUOTE) .. '"'
end

-- A value for an error message: strings quoted and cut at 80 bytes.
local function show(v)
  if type(v) == "string" then
    if #v > 80 then return quote(sub(v, 1, 80)) .. "..." end
    return quote(v)
  end
  return tostring(v)
end

-- The name of a value's kind for error messages.
local function kind_of(v)
  local mt = getmetatable(v)
  if mt ~= nil and type(v) == "table" then
    if mt == Decimal then return "decimal" end
    if mt == Binary then return "binary" end
    if mt == Set then return "set" end
    if mt == Datetime then return "datetime" end
  end
  if rawequal(v, NULL) then return "lunamodb.null" end
  return type(v)
end

-- Bytewise string order. Lua 5.4 compares strings with strcoll, which is bytewise only
-- in the C locale; LuaJIT always compares bytes.
local function bytes_lt(a, b)
  local n = #a
  if #b < n then n = #b end
  for i = 1, n do
    local x, y = byte(a, i), byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function bytewise_sort(list)
  local collate = IS_INT64 and setlocale and setlocale(nil, "collate") or "C"
  if collate == "C" or collate == "POSIX" then sort(list) else sort(list, bytes_lt) end
  return list
end

------------------------------------------------------------------------------------------
-- Number text: parse, check DynamoDB's limits, format canonically

local MAX_DIGITS = 38          -- significant digits DynamoDB keeps
local MAX_ADJ = 125            -- |x| < 1E+126: the leading digit's exponent is at most 125
local MIN_ADJ = -130           -- |x| >= 1E-130

-- Splits DynamoDB number syntax ([+-] digits [. digits] [e [+-] digits], with digits on
-- at least one side of the point) into sign (-1, 0 or 1), coefficient digits without
-- leading or trailing zeros ("0" for zero) and exponent: value = sign * coef * 10^exp.
-- Returns nil, why for text that is not a number, or whose exponent alone is out of any
-- range (more than 9 digits).
local function parse_number(s)
  local sg, int, frac, rest = match(s, "^([+-]?)(%d*)%.?(%d*)(.*)$")
  if not sg or (int == "" and frac == "") then return nil, "malformed" end
  local exp, big_exp = 0, nil
  if rest ~= "" then
    local es, ed = match(rest, "^[eE]([+-]?)(%d+)$")
    if not es then return nil, "malformed" end
    local first = find(ed, "[1-9]")
    if first then
      ed = sub(ed, first)
      if #ed > 9 then
        big_exp = es == "-" and "small" or "large"
      else
        exp = tonumber(ed)
        if es == "-" then exp = -exp end
      end
    end
  end
  local digits = int .. frac
  local first = find(digits, "[1-9]")
  if not first then return 0, "0", 0 end
  if big_exp then return nil, big_exp end
  exp = exp - #frac
  if first > 1 then digits = sub(digits, first) end
  local zeros = find(digits, "0+$")
  if zeros then
    exp = exp + (#digits - zeros + 1)
    digits = sub(digits, 1, zeros - 1)
  end
  return (sg == "-") and -1 or 1, digits, exp
end

-- nil when sign/coef/exp is a number DynamoDB can store, else why not.
local function check_limits(sign, coef, exp)
  if sign == 0 then return nil end
  local n = #coef
  if n > MAX_DIGITS then
    return format("has %d significant digits (DynamoDB keeps at most %d)", n, MAX_DIGITS)
  end
  local adj = exp + n - 1
  if adj > MAX_ADJ then
    return "is out of DynamoDB's range (magnitude must be below 1E+126)"
  end
  if adj < MIN_ADJ then
    return "is too small for DynamoDB (a nonzero magnitude must be at least 1E-130); "
      .. "it is refused, not rounded to 0"
  end
  return nil
end

local function limit_message(why)
  if why == "large" then return "is out of DynamoDB's range (magnitude must be below 1E+126)" end
  if why == "small" then
    return "is too small for DynamoDB (a nonzero magnitude must be at least 1E-130); "
      .. "it is refused, not rounded to 0"
  end
  return "is not a number (expected DynamoDB number syntax such as -12.5 or 1E+20)"
end

-- The canonical text (see the top of this file).
local function format_number(sign, coef, exp)
  if sign == 0 then return "0" end
  local s
  if exp >= 0 then
    s = (exp == 0) and coef or coef .. rep("0", exp)
  else
    local ip = #coef + exp               -- digits before the point
    if ip > 0 then
      s = sub(coef, 1, ip) .. "." .. sub(coef, ip + 1)
    else
      s = "0." .. rep("0", -ip) .. coef
    end
  end
  if sign < 0 then return "-" .. s end
  return s
end

-- Three-way exact comparison of two parsed numbers.
local function compare_parts(sa, ca, ea, sb, cb, eb)
  if sa ~= sb then return (sa < sb) and -1 or 1 end
  if sa == 0 then return 0 end
  local la, lb = #ca, #cb
  local aa, ab = ea + la, eb + lb         -- position just above the leading digit
  local r
  if aa ~= ab then
    r = (aa < ab) and -1 or 1
  else
    if la < lb then ca = ca .. rep("0", lb - la) elseif lb < la then cb = cb .. rep("0", la - lb) end
    if ca == cb then return 0 end
    r = bytes_lt(ca, cb) and -1 or 1
  end
  if sa < 0 then return -r end
  return r
end

------------------------------------------------------------------------------------------
-- Decimals

local decimal_methods = {}
Decimal.__index = decimal_methods

local function new_decimal(sign, coef, exp, text)
  return setmetatable({
    [K_SIGN] = sign, [K_COEF] = coef, [K_EXP] = exp,
    [K_TEXT] = text or format_number(sign, coef, exp),
  }, Decimal)
end

function Decimal.__newindex()
  error("lunamodb.decimal: decimals are immutable", 2)
end

function decimal_methods:text()
  return self[K_TEXT]
end

local INT_LIMIT_DIGITS = IS_INT64 and 19 or 16
local INT_LIMIT_POS = IS_INT64 and "9223372036854775807" or "9007199254740992"
local INT_LIMIT_NEG = IS_INT64 and "9223372036854775808" or "9007199254740992"

-- Is the integer sign * coef * 10^exp (exp >= 0) a Lua integer (int64 on 5.4, at most
-- 2^53 in magnitude on LuaJIT)?
local function fits_integer(sign, coef, exp)
  local n = #coef + exp
  if n < INT_LIMIT_DIGITS then return true end
  if n > INT_LIMIT_DIGITS then return false end
  local digits = (exp == 0) and coef or coef .. rep("0", exp)
  return digits <= ((sign < 0) and INT_LIMIT_NEG or INT_LIMIT_POS)
end

-- The nearest Lua number: an integer when the value is one that fits, else the double
-- nearest to the exact value (which may round: 38 digits do not fit in a double).
function decimal_methods:tonumber()
  local sign, coef, exp = self[K_SIGN], self[K_COEF], self[K_EXP]
  if sign == 0 then return 0 end
  if exp >= 0 and fits_integer(sign, coef, exp) then return tonumber(self[K_TEXT]) end
  return tonumber(((sign < 0) and "-" or "") .. coef .. "e" .. exp)
end

function Decimal.__tostring(d)
  return d[K_TEXT]
end

function Decimal.__eq(a, b)
  return getmetatable(a) == Decimal and getmetatable(b) == Decimal and a[K_TEXT] == b[K_TEXT]
end

-- The text of a finite number: integers (LuaJIT: integral doubles up to 2^53) in decimal,
-- other floats as the shortest "%.Ng" (N = 15, 16, 17) that reads back as the same double.
-- The core's, which its item encoder writes too (LuaJIT's own %g rounds ties differently
-- from C's, and DynamoDB would store two different decimals).
local number_text = core.number_text

-- A decimal or a Lua number as parts, for comparisons (Lua 5.4 calls __lt and __le
-- with a number on one side; LuaJIT refuses to compare a table with a number).
-- Infinities come back as sign, "inf"; NaN as nil.
local function comparable_parts(x, what)
  if getmetatable(x) == Decimal then return x[K_SIGN], x[K_COEF], x[K_EXP] end
  if type(x) == "number" then
    if x ~= x then return nil end
    if x == huge then return 1, "inf" end
    if x == -huge then return -1, "inf" end
    return parse_number(number_text(x))
  end
  error(format("lunamodb.decimal: cannot compare a %s with a %s", what, kind_of(x)), 3)
end

local function decimal_compare(a, b)
  local sa, ca, ea = comparable_parts(a, "decimal")
  local sb, cb, eb = comparable_parts(b, "decimal")
  if sa == nil or sb == nil then return nil end          -- NaN: unordered
  if ca == "inf" or cb == "inf" then
    if ca == "inf" and cb == "inf" then return (sa == sb) and 0 or ((sa < sb) and -1 or 1) end
    if ca == "inf" then return sa end
    return -sb
  end
  return compare_parts(sa, ca, ea, sb, cb, eb)
end

function Decimal.__lt(a, b)
  local r = decimal_compare(a, b)
  return r ~= nil and r < 0
end

function Decimal.__le(a, b)
  local r = decimal_compare(a, b)
  return r ~= nil and r <= 0
end

------------------------------------------------------------------------------------------
-- The N codec

-- The N text of a Lua number or decimal, or nil, why. See the top of the file for the
-- canonical form. Integers print in decimal; floats with the shortest of %.15g/%.16g/%.17g
-- that reads back as the same double (number_text), brought to the canonical form.
local function encode_number(v)
  local tv = type(v)
  if tv == "number" then
    -- an integer's text is number_text's as it stands (no NaN, no exponent): first, as the
    -- most common number
    if IS_INT64 and math_type(v) == "integer" then return number_text(v) end
    if v ~= v then return nil, "cannot encode NaN: DynamoDB numbers are finite" end
    if v == huge or v == -huge then
      return nil, "cannot encode " .. ((v > 0) and "inf" or "-inf") .. ": DynamoDB numbers are finite"
    end
    local s = number_text(v)
    if not find(s, "e", 1, true) then
      -- %g's plain form has no trailing fractional zeros and one leading zero at most:
      -- already canonical, except for the sign of -0.0.
      if v == 0 then return "0" end
      return s
    end
    local sign, coef, exp = parse_number(s)
    local why = check_limits(sign, coef, exp)
    if why then return nil, "number " .. s .. " " .. why end
    return format_number(sign, coef, exp)
  end
  if tv == "table" and getmetatable(v) == Decimal then return v[K_TEXT] end
  return nil, "expected a number, got " .. kind_of(v)
end
M.encode_number = encode_number

local FAST_INT_LEN = IS_INT64 and 18 or 15      -- [-]digits this long always fit

-- N text -> an integer, a float or a decimal, never rounded (see the module's docs).
function M.decode_number(s)
  if type(s) ~= "string" then return nil, "expected a number string, got " .. kind_of(s) end
  local n = #s
  if n <= FAST_INT_LEN and find(s, "^%-?%d+$") then
    local v = tonumber(s)
    if v == 0 then return 0 end                   -- "-0": LuaJIT would give -0.0
    return v
  end
  if n <= 16 and find(s, "^%-?%d*%.%d*[1-9]$") then
    return tonumber(s)                            -- at most 15 digits, a nonzero fraction
  end
  local sign, coef, exp = parse_number(s)
  if not sign then return nil, "number " .. show(s) .. " " .. limit_message(coef) end
  local why = check_limits(sign, coef, exp)
  if why then return nil, "number " .. show(s) .. " " .. why end
  if sign == 0 then return 0 end
  if exp >= 0 then
    if fits_integer(sign, coef, exp) then
      return tonumber(((sign < 0) and "-" or "") .. coef .. rep("0", exp))
    end
  elseif #coef <= 15 then
    -- Every decimal of at most 15 significant digits in the double range survives a trip
    -- through the nearest double; DynamoDB's whole range is inside the double range.
    return tonumber(((sign < 0) and "-" or "") .. coef .. "e" .. exp)
  end
  return new_decimal(sign, coef, exp)
end

function M.decimal(x)
  local tx = type(x)
  if tx == "string" then
    local sign, coef, exp = parse_number(x)
    if not sign then error("lunamodb.decimal: " .. show(x) .. " " .. limit_message(coef), 2) end
    local why = check_limits(sign, coef, exp)
    if why then error("lunamodb.decimal: " .. show(x) .. " " .. why, 2) end
    return new_decimal(sign, coef, exp)
  elseif tx == "number" then
    local text, err = encode_number(x)
    if not text then error("lunamodb.decimal: " .. err, 2) end
    local sign, coef, exp = parse_number(text)
    return new_decimal(sign, coef, exp, text)
  elseif getmetatable(x) == Decimal then
    return x                                      -- immutable: no copy needed
  end
  error("lunamodb.decimal: expected a string, number or decimal, got " .. kind_of(x), 2)
end

function M.is_decimal(x)
  return getmetatable(x) == Decimal and type(x) == "table"
end

------------------------------------------------------------------------------------------
-- Binary

local binary_methods = {}

function Binary.__index(self, k)
  if k == "data" then return rawget(self, K_DATA) end
  return binary_methods[k]
end

function Binary.__newindex()
  error("lunamodb.binary: binary values are immutable", 2)
end

function Binary.__eq(a, b)
  return getmetatable(a) == Binary and getmetatable(b) == Binary
    and rawget(a, K_DATA) == rawget(b, K_DATA)
end

function Binary.__len(b)
  return #rawget(b, K_DATA)
end

function Binary.__tostring(b)
  local n = #rawget(b, K_DATA)
  return format("binary(%d byte%s)", n, (n == 1) and "" or "s")
end

function M.binary(s)
  if type(s) == "string" then return setmetatable({ [K_DATA] = s }, Binary) end
  if getmetatable(s) == Binary then return s end
  error("lunamodb.binary: expected a string, got " .. kind_of(s), 2)
end

function M.is_binary(x)
  return getmetatable(x) == Binary and type(x) == "table"
end

------------------------------------------------------------------------------------------
-- Sets

local set_methods = {}
Set.__index = set_methods

-- A member's key and kind ("string", "number", "binary"), or nil, why. Numbers are keyed
-- by their canonical N text, so 1, 1.0 and decimal("1") are the same member.
local function member_key(v)
  local tv = type(v)
  if tv == "string" then return v, "string" end
  if tv == "number" then
    local text, err = encode_number(v)
    if not text then return nil, err end
    return text, "number"
  end
  if tv == "table" then
    local mt = getmetatable(v)
    if mt == Decimal then return v[K_TEXT], "number" end
    if mt == Binary then return rawget(v, K_DATA), "binary" end
  end
  return nil, "a member must be a string, number, decimal or binary, got " .. kind_of(v)
end

-- Adds v, or returns nil, why.
local function set_add(s, v)
  local key, kind = member_key(v)
  if key == nil then return nil, kind end
  local have = s[K_KIND]
  if have ~= nil and have ~= kind then
    return nil, format("cannot add a %s to a set of %ss (%s)", kind, have, show(v))
  end
  local members = s[K_MEMBERS]
  if members[key] == nil then
    members[key] = v
    s[K_SIZE] = s[K_SIZE] + 1
    s[K_KIND] = kind
    s[K_WIRE] = nil
  end
  return s
end

local function new_set()
  return setmetatable({ [K_MEMBERS] = {}, [K_SIZE] = 0 }, Set)    -- [K_KIND] unset: empty
end

-- set(nil) is empty; set(list) takes a sequence without holes; set(other_set) copies.
function M.set(list)
  local s = new_set()
  if list == nil then return s end
  if type(list) ~= "table" then
    error("lunamodb.set: expected a list or nil, got " .. kind_of(list), 2)
  end
  local mt = getmetatable(list)
  if mt == Set then
    local members = s[K_MEMBERS]
    for k, v in next, list[K_MEMBERS] do members[k] = v end
    s[K_SIZE], s[K_KIND] = list[K_SIZE], list[K_KIND]
    return s
  end
  if mt == Decimal or mt == Binary or mt == Datetime then
    error("lunamodb.set: expected a list or nil, got a " .. kind_of(list)
      .. " (wrap it in a list: set{x})", 2)
  end
  local n = 0
  for k in pairs(list) do
    if type(k) ~= "number" or k < 1 or k % 1 ~= 0 then
      error("lunamodb.set: expected a list, found the key " .. show(k), 2)
    end
    n = n + 1
  end
  for i = 1, n do
    local v = list[i]
    if v == nil then error(format("lunamodb.set: the list has a hole at index %d", i), 2) end
    local ok, why = set_add(s, v)
    if not ok then error(format("lunamodb.set: item %d: %s", i, why), 2) end
  end
  return s
end

function M.is_set(x)
  return getmetatable(x) == Set and type(x) == "table"
end

function set_methods:has(v)
  local key, kind = member_key(v)
  return key ~= nil and kind == self[K_KIND] and self[K_MEMBERS][key] ~= nil
end

function set_methods:add(v)
  local ok, why = set_add(self, v)
  if not ok then error("lunamodb.set: " .. why, 2) end
  return self
end

-- Removing a value of another kind is a no-op; a value that cannot be a member raises.
function set_methods:remove(v)
  local key, kind = member_key(v)
  if key == nil then error("lunamodb.set: " .. kind, 2) end
  local members = self[K_MEMBERS]
  if kind == self[K_KIND] and members[key] ~= nil then
    members[key] = nil
    self[K_WIRE] = nil
    local n = self[K_SIZE] - 1
    self[K_SIZE] = n
    if n == 0 then self[K_KIND] = nil end
  end
  return self
end

function set_methods:size()
  return self[K_SIZE]
end

function set_methods:kind()
  return self[K_KIND]
end

-- The members in a new array: strings and binaries bytewise, numbers by exact value.
function set_methods:items()
  local members, kind = self[K_MEMBERS], self[K_KIND]
  local keys, n = {}, 0
  for k in next, members do
    n = n + 1
    keys[n] = k
  end
  if kind == "number" then
    local parts = {}
    for i = 1, n do
      local sign, coef, exp = parse_number(keys[i])
      parts[keys[i]] = { sign, coef, exp }
    end
    sort(keys, function(a, b)
      local pa, pb = parts[a], parts[b]
      return compare_parts(pa[1], pa[2], pa[3], pb[1], pb[2], pb[3]) < 0
    end)
  else
    bytewise_sort(keys)
  end
  for i = 1, n do keys[i] = members[keys[i]] end
  return keys
end

-- for member in s:each() do ... end, in no particular order. Do not add during the loop.
function set_methods:each()
  local members, k = self[K_MEMBERS], nil
  return function()
    local v
    k, v = next(members, k)
    return v
  end
end

function Set.__eq(a, b)
  if getmetatable(a) ~= Set or getmetatable(b) ~= Set then return false end
  if a[K_SIZE] ~= b[K_SIZE] or a[K_KIND] ~= b[K_KIND] then return false end
  local mb = b[K_MEMBERS]
  for k in next, a[K_MEMBERS] do
    if mb[k] == nil then return false end
  end
  return true
end

function Set.__len(s)
  return s[K_SIZE]
end

function Set.__tostring(s)
  local items, kind = set_methods.items(s), s[K_KIND]
  for i = 1, #items do
    local v = items[i]
    if kind == "string" then
      items[i] = quote(v)
    elseif kind == "number" then
      items[i] = encode_number(v)
    else
      items[i] = tostring(v)
    end
  end
  return "set{" .. concat(items, ", ") .. "}"
end

------------------------------------------------------------------------------------------
-- Datetimes: integer epoch seconds + microseconds, calendar maths in integers
-- (Howard Hinnant's days_from_civil / civil_from_days), never os.time or os.date.

local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m > 2) and (m - 3) or (m + 9)
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
  local mp = floor((5 * doy + 2) / 153)
  local d = doy - floor((153 * mp + 2) / 5) + 1
  local m = (mp < 10) and (mp + 3) or (mp - 9)
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end

local function is_leap(y)
  return y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)
end

local MONTH_DAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

local function days_in_month(y, m)
  if m == 2 and is_leap(y) then return 29 end
  return MONTH_DAYS[m]
end

local MIN_EPOCH = days_from_civil(1, 1, 1) * 86400                -- 0001-01-01T00:00:00Z
local MAX_EPOCH = days_from_civil(9999, 12, 31) * 86400 + 86399   -- 9999-12-31T23:59:59Z

-- Rounds a float to the nearest integer, ties to even (Python's round, as in
-- datetime.fromtimestamp and timedelta).
local function round_half_even(x)
  local r = floor(x + 0.5)
  if r - x == 0.5 and r % 2 ~= 0 then r = r - 1 end
  return r
end

-- Splits finite seconds (integer or float) into integer seconds and microseconds
-- rounded to the nearest (ties to even), microseconds in 0..999999.
local function split_seconds(v)
  if math_type(v) == "integer" then return tointeger(v), 0 end
  local ip = (v >= 0) and floor(v) or ceil(v)
  local us = round_half_even((v - ip) * 1e6)
  if us >= 1000000 then
    ip, us = ip + 1, us - 1000000
  elseif us < 0 then
    ip, us = ip - 1, us + 1000000
  end
  return tointeger(ip), tointeger(us)
end

local datetime_methods = {}

function Datetime.__index(self, k)
  if k == "epoch_s" then return rawget(self, K_SEC) end
  if k == "usec" then return rawget(self, K_USEC) end
  return datetime_methods[k]
end

function Datetime.__newindex()
  error("lunamodb.datetime: datetimes are immutable", 2)
end

-- Carries usec into sec and checks the year range; returns the datetime or nil, why.
local function make_datetime(sec, usec)
  if usec >= 1000000 or usec < 0 then
    local carry = floor(usec / 1000000)
    sec, usec = sec + carry, usec - carry * 1000000
  end
  if sec < MIN_EPOCH or sec > MAX_EPOCH then
    return nil, "is outside the years 1..9999"
  end
  return setmetatable({ [K_SEC] = sec, [K_USEC] = usec }, Datetime)
end

-- The wire text, computed once per datetime (a raw write: __newindex refuses writes).
local function iso_of(dt)
  local iso = rawget(dt, K_ISO)
  if iso then return iso end
  local sec = rawget(dt, K_SEC)
  local days = floor(sec / 86400)
  local rem = sec - days * 86400
  local y, m, d = civil_from_days(days)
  local h = floor(rem / 3600)
  local mi = floor((rem - h * 3600) / 60)
  iso = format("%04d-%02d-%02dT%02d:%02d:%02d.%06d+0000", y, m, d, h, mi, rem - h * 3600 - mi * 60,
    rawget(dt, K_USEC))
  rawset(dt, K_ISO, iso)
  return iso
end

function datetime_methods:iso()
  return iso_of(self)
end

function datetime_methods:epoch()
  return rawget(self, K_SEC) + rawget(self, K_USEC) / 1e6
end

function datetime_methods:fields()
  local sec = rawget(self, K_SEC)
  local days = floor(sec / 86400)
  local rem = sec - days * 86400
  local y, m, d = civil_from_days(days)
  local h = floor(rem / 3600)
  local mi = floor((rem - h * 3600) / 60)
  return {
    year = y, month = m, day = d, hour = h, min = mi, sec = rem - h * 3600 - mi * 60,
    usec = rawget(self, K_USEC),
    wday = (days + 4) % 7 + 1,                         -- 1970-01-01 was a Thursday (5)
    yday = days - days_from_civil(y, 1, 1) + 1,
  }
end

local MAX_SPAN = MAX_EPOCH - MIN_EPOCH + 1

function datetime_methods:add(seconds)
  if type(seconds) ~= "number" then
    error("lunamodb.datetime: add expects a number of seconds, got " .. kind_of(seconds), 2)
  end
  if seconds ~= seconds or seconds > MAX_SPAN or seconds < -MAX_SPAN then
    error("lunamodb.datetime: cannot add " .. tostring(seconds) .. " seconds: the result "
      .. "is outside the years 1..9999", 2)
  end
  local s, us = split_seconds(seconds)
  local dt = make_datetime(rawget(self, K_SEC) + s, rawget(self, K_USEC) + us)
  if not dt then
    error("lunamodb.datetime: " .. iso_of(self) .. " + " .. tostring(seconds)
      .. " seconds is outside the years 1..9999", 2)
  end
  return dt
end

function Datetime.__tostring(dt)
  return iso_of(dt)
end

function Datetime.__eq(a, b)
  return getmetatable(a) == Datetime and getmetatable(b) == Datetime
    and rawget(a, K_SEC) == rawget(b, K_SEC) and rawget(a, K_USEC) == rawget(b, K_USEC)
end

local function check_comparable(a, b)
  if getmetatable(a) ~= Datetime or getmetatable(b) ~= Datetime then
    error(format("lunamodb.datetime: cannot compare a %s with a %s", kind_of(a), kind_of(b)), 3)
  end
end

function Datetime.__lt(a, b)
  check_comparable(a, b)
  local sa, sb = rawget(a, K_SEC), rawget(b, K_SEC)
  return sa < sb or (sa == sb and rawget(a, K_USEC) < rawget(b, K_USEC))
end

function Datetime.__le(a, b)
  check_comparable(a, b)
  local sa, sb = rawget(a, K_SEC), rawget(b, K_SEC)
  return sa < sb or (sa == sb and rawget(a, K_USEC) <= rawget(b, K_USEC))
end

-- Seconds since the epoch of a validated civil time.
local function civil_seconds(y, m, d, h, mi, s)
  return days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60 + s
end

-- Checks one calendar field; returns nil or why.
local function check_field(name, v, lo, hi)
  if v < lo or v > hi then
    return format("%s %d is out of range (expected %d..%d)", name, v, lo, hi)
  end
  return nil
end

local function check_civil(y, m, d, h, mi, s)
  local why = check_field("year", y, 1, 9999) or check_field("month", m, 1, 12)
  if why then return why end
  why = check_field("day", d, 1, days_in_month(y, m))
  if why then return why .. format(" for %04d-%02d", y, m) end
  return check_field("hour", h, 0, 23) or check_field("minute", mi, 0, 59)
    or check_field("second", s, 0, 59)
end

-- Parses ISO-8601 text: YYYY-MM-DD, optionally followed by T (or a space) HH:MM[:SS
-- [.fraction of 1..9 digits]] and a zone (Z, +HH:MM, +HHMM, +HH; none means UTC).
-- Returns seconds, microseconds (possibly 1000000 after rounding) or nil, why.
local function parse_iso(str)
  local y, m, d, rest = match(str, "^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then return nil, "is not an ISO-8601 date (expected YYYY-MM-DD)" end
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  local h, mi, s, us, offset = 0, 0, 0, 0, 0
  if rest ~= "" then
    local hh, mm, tail = match(rest, "^[Tt ](%d%d):(%d%d)(.*)$")
    if not hh then
      return nil, "is not an ISO-8601 datetime (expected YYYY-MM-DDTHH:MM:SS[.ffffff][Z|+HH:MM])"
    end
    h, mi = tonumber(hh), tonumber(mm)
    local ss, tail2 = match(tail, "^:(%d%d)(.*)$")
    if ss then
      s, tail = tonumber(ss), tail2
      local frac, tail3 = match(tail, "^[%.,](%d+)(.*)$")
      if frac then
        if #frac > 9 then
          return nil, "has a fraction of " .. #frac .. " digits (at most 9 are accepted)"
        end
        local n9 = tonumber(frac .. rep("0", 9 - #frac))
        us = floor(n9 / 1000)
        local r = n9 - us * 1000
        if r > 500 or (r == 500 and us % 2 == 1) then us = us + 1 end
        tail = tail3
      end
    end
    if tail ~= "" and tail ~= "Z" and tail ~= "z" then
      local sg, oh, om = match(tail, "^([+-])(%d%d):?(%d%d)$")
      if not sg then
        sg, oh = match(tail, "^([+-])(%d%d)$")
        om = "00"
      end
      if not sg then
        return nil, "has an unreadable time or zone " .. show(tail)
          .. " (expected Z, +HH:MM, +HHMM or +HH)"
      end
      oh, om = tonumber(oh), tonumber(om)
      local why = check_field("zone hour", oh, 0, 23) or check_field("zone minute", om, 0, 59)
      if why then return nil, "has a " .. why end
      offset = oh * 3600 + om * 60
      if sg == "-" then offset = -offset end
    end
  end
  local why = check_civil(y, m, d, h, mi, s)
  if why then return nil, "has " .. why end
  return civil_seconds(y, m, d, h, mi, s) - offset, us
end

-- An integral number field of a table, as an integer; nil, why otherwise.
local function table_field(t, name, default)
  local v = t[name]
  if v == nil then
    if default == nil then return nil, "has no '" .. name .. "' field" end
    return default
  end
  if type(v) ~= "number" or v ~= v or v % 1 ~= 0 then
    return nil, "has a '" .. name .. "' that is not a whole number (" .. show(v) .. ")"
  end
  if v > 1e15 or v < -1e15 then
    return nil, "has " .. name .. " " .. tostring(v) .. " out of range"
  end
  return tointeger(v)
end

local function from_table(t)
  local names = { "year", "month", "day", "hour", "min", "sec", "usec" }
  local defaults = { nil, nil, nil, 0, 0, 0, 0 }
  local f = {}
  for i = 1, 7 do
    local v, why = table_field(t, names[i], defaults[i])
    if v == nil then return nil, why end
    f[i] = v
  end
  local why = check_civil(f[1], f[2], f[3], f[4], f[5], f[6])
    or check_field("usec", f[7], 0, 999999)
  if why then return nil, "has " .. why end
  return civil_seconds(f[1], f[2], f[3], f[4], f[5], f[6]), f[7]
end

-- datetime(epoch seconds | ISO-8601 string | {year=, month=, day=, ...} | datetime)
function M.datetime(x)
  local tx = type(x)
  local sec, usec, why
  if tx == "number" then
    if x ~= x or x == huge or x == -huge then
      error("lunamodb.datetime: " .. tostring(x) .. " is not a finite number of seconds", 2)
    end
    if x < MIN_EPOCH - 1 or x > MAX_EPOCH + 1 then
      error("lunamodb.datetime: " .. tostring(x) .. " seconds since the epoch is outside "
        .. "the years 1..9999", 2)
    end
    sec, usec = split_seconds(x)
  elseif tx == "string" then
    sec, why = parse_iso(x)
    if not sec then error("lunamodb.datetime: " .. show(x) .. " " .. why, 2) end
    usec = why
  elseif tx == "table" then
    local mt = getmetatable(x)
    if mt == Datetime then
      return setmetatable({ [K_SEC] = rawget(x, K_SEC), [K_USEC] = rawget(x, K_USEC) }, Datetime)
    end
    if mt == Decimal or mt == Binary or mt == Set then
      error("lunamodb.datetime: expected epoch seconds, an ISO-8601 string, a table of "
        .. "fields or a datetime, got a " .. kind_of(x), 2)
    end
    sec, why = from_table(x)
    if not sec then error("lunamodb.datetime: the table " .. why, 2) end
    usec = why
  else
    error("lunamodb.datetime: expected epoch seconds, an ISO-8601 string, a table of "
      .. "fields or a datetime, got " .. kind_of(x), 2)
  end
  local dt
  dt, why = make_datetime(sec, usec)
  if not dt then error("lunamodb.datetime: " .. show(x) .. " " .. why, 2) end
  return dt
end

function M.now()
  local ms = now_ms()
  local sec = floor(ms / 1000)
  return setmetatable({ [K_SEC] = sec, [K_USEC] = (ms - sec * 1000) * 1000 }, Datetime)
end

function M.is_datetime(x)
  return getmetatable(x) == Datetime and type(x) == "table"
end

local WIRE_PATTERN = "^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)%.(%d%d%d%d%d%d)%+0000$"
local WIRE_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+0000"

local function wire_error(s)
  return "Datetime string '" .. s .. "' does not match format '" .. WIRE_FORMAT .. "'"
end

-- PynamoDB's strict deserialization: zero-fill to 31 characters (Python's str.zfill,
-- which keeps a leading sign first), then fixed positions and valid calendar values.
function M.parse_datetime_wire(s)
  if type(s) ~= "string" then return nil, "expected a datetime string, got " .. kind_of(s) end
  local n = #s
  if n < 31 then
    local c = byte(s, 1)
    if c == 43 or c == 45 then                        -- '+' or '-'
      s = sub(s, 1, 1) .. rep("0", 31 - n) .. sub(s, 2)
    else
      s = rep("0", 31 - n) .. s
    end
  end
  local y, m, d, h, mi, sec, us = match(s, WIRE_PATTERN)
  if not y then return nil, wire_error(s) end
  y, m, d, h, mi, sec = tonumber(y), tonumber(m), tonumber(d), tonumber(h), tonumber(mi),
    tonumber(sec)
  if check_civil(y, m, d, h, mi, sec) then return nil, wire_error(s) end
  return setmetatable({ [K_SEC] = civil_seconds(y, m, d, h, mi, sec), [K_USEC] = tonumber(us) },
    Datetime)
end

-- For the core's item codecs (attributes.lua): how sets and datetimes are laid out.
M._layout = {
  set_mt = Set, k_members = K_MEMBERS, k_size = K_SIZE, k_kind = K_KIND, k_wire = K_WIRE,
  dt_mt = Datetime, k_sec = K_SEC, k_usec = K_USEC, k_iso = K_ISO,
}

return M
