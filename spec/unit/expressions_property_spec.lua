-- Property: no attribute name or value ever lands in expression text.
--
-- 100,000 random attribute names (DynamoDB's 573 reserved words, '.', '#',
-- ':', spaces, quotes, brackets, operators, placeholder look-alikes,
-- non-ASCII UTF-8; 1 to 255 bytes) and random string values build
-- projections, conditions and updates. Each expression must be exactly the
-- expected text over placeholders, contain only placeholders, operators,
-- keywords and punctuation, and the name and value maps must hold the
-- names and values exactly.
local path = require "lunamodb.expressions.path"
local serializer = require "lunamodb.expressions.serializer"

local format, concat, random = string.format, table.concat, math.random

-- Values of no declared type go through lunamodb.attributes; a stand-in
-- for strings and numbers when that module cannot be loaded.
if not pcall(require, "lunamodb.attributes") then
  package.loaded["lunamodb.attributes"] = {
    serialize_dynamic = function(v)
      if type(v) == "number" then return { N = format("%d", v) } end
      assert(type(v) == "string", "stand-in serialize_dynamic: strings and numbers only")
      return { S = v }
    end,
  }
end

-- doc_source/ReservedWords.md of the DynamoDB developer guide (573 words).
local RESERVED = {}
for w in ([[
ABORT ABSOLUTE ACTION ADD AFTER AGENT AGGREGATE ALL ALLOCATE ALTER ANALYZE AND ANY ARCHIVE ARE
ARRAY AS ASC ASCII ASENSITIVE ASSERTION ASYMMETRIC AT ATOMIC ATTACH ATTRIBUTE AUTH AUTHORIZATION
AUTHORIZE AUTO AVG BACK BACKUP BASE BATCH BEFORE BEGIN BETWEEN BIGINT BINARY BIT BLOB BLOCK
BOOLEAN BOTH BREADTH BUCKET BULK BY BYTE CALL CALLED CALLING CAPACITY CASCADE CASCADED CASE CAST
CATALOG CHAR CHARACTER CHECK CLASS CLOB CLOSE CLUSTER CLUSTERED CLUSTERING CLUSTERS COALESCE
COLLATE COLLATION COLLECTION COLUMN COLUMNS COMBINE COMMENT COMMIT COMPACT COMPILE COMPRESS
CONDITION CONFLICT CONNECT CONNECTION CONSISTENCY CONSISTENT CONSTRAINT CONSTRAINTS CONSTRUCTOR
CONSUMED CONTINUE CONVERT COPY CORRESPONDING COUNT COUNTER CREATE CROSS CUBE CURRENT CURSOR
CYCLE DATA DATABASE DATE DATETIME DAY DEALLOCATE DEC DECIMAL DECLARE DEFAULT DEFERRABLE DEFERRED
DEFINE DEFINED DEFINITION DELETE DELIMITED DEPTH DEREF DESC DESCRIBE DESCRIPTOR DETACH
DETERMINISTIC DIAGNOSTICS DIRECTORIES DISABLE DISCONNECT DISTINCT DISTRIBUTE DO DOMAIN DOUBLE
DROP DUMP DURATION DYNAMIC EACH ELEMENT ELSE ELSEIF EMPTY ENABLE END EQUAL EQUALS ERROR ESCAPE
ESCAPED EVAL EVALUATE EXCEEDED EXCEPT EXCEPTION EXCEPTIONS EXCLUSIVE EXEC EXECUTE EXISTS EXIT
EXPLAIN EXPLODE EXPORT EXPRESSION EXTENDED EXTERNAL EXTRACT FAIL FALSE FAMILY FETCH FIELDS FILE
FILTER FILTERING FINAL FINISH FIRST FIXED FLATTERN FLOAT FOR FORCE FOREIGN FORMAT FORWARD FOUND
FREE FROM FULL FUNCTION FUNCTIONS GENERAL GENERATE GET GLOB GLOBAL GO GOTO GRANT GREATER GROUP
GROUPING HANDLER HASH HAVE HAVING HEAP HIDDEN HOLD HOUR IDENTIFIED IDENTITY IF IGNORE IMMEDIATE
IMPORT IN INCLUDING INCLUSIVE INCREMENT INCREMENTAL INDEX INDEXED INDEXES INDICATOR INFINITE
INITIALLY INLINE INNER INNTER INOUT INPUT INSENSITIVE INSERT INSTEAD INT INTEGER INTERSECT
INTERVAL INTO INVALIDATE IS ISOLATION ITEM ITEMS ITERATE JOIN KEY KEYS LAG LANGUAGE LARGE LAST
LATERAL LEAD LEADING LEAVE LEFT LENGTH LESS LEVEL LIKE LIMIT LIMITED LINES LIST LOAD LOCAL
LOCALTIME LOCALTIMESTAMP LOCATION LOCATOR LOCK LOCKS LOG LOGED LONG LOOP LOWER MAP MATCH
MATERIALIZED MAX MAXLEN MEMBER MERGE METHOD METRICS MIN MINUS MINUTE MISSING MOD MODE MODIFIES
MODIFY MODULE MONTH MULTI MULTISET NAME NAMES NATIONAL NATURAL NCHAR NCLOB NEW NEXT NO NONE NOT
NULL NULLIF NUMBER NUMERIC OBJECT OF OFFLINE OFFSET OLD ON ONLINE ONLY OPAQUE OPEN OPERATOR
OPTION OR ORDER ORDINALITY OTHER OTHERS OUT OUTER OUTPUT OVER OVERLAPS OVERRIDE OWNER PAD
PARALLEL PARAMETER PARAMETERS PARTIAL PARTITION PARTITIONED PARTITIONS PATH PERCENT PERCENTILE
PERMISSION PERMISSIONS PIPE PIPELINED PLAN POOL POSITION PRECISION PREPARE PRESERVE PRIMARY
PRIOR PRIVATE PRIVILEGES PROCEDURE PROCESSED PROJECT PROJECTION PROPERTY PROVISIONING PUBLIC PUT
QUERY QUIT QUORUM RAISE RANDOM RANGE RANK RAW READ READS REAL REBUILD RECORD RECURSIVE REDUCE
REF REFERENCE REFERENCES REFERENCING REGEXP REGION REINDEX RELATIVE RELEASE REMAINDER RENAME
REPEAT REPLACE REQUEST RESET RESIGNAL RESOURCE RESPONSE RESTORE RESTRICT RESULT RETURN RETURNING
RETURNS REVERSE REVOKE RIGHT ROLE ROLES ROLLBACK ROLLUP ROUTINE ROW ROWS RULE RULES SAMPLE
SATISFIES SAVE SAVEPOINT SCAN SCHEMA SCOPE SCROLL SEARCH SECOND SECTION SEGMENT SEGMENTS SELECT
SELF SEMI SENSITIVE SEPARATE SEQUENCE SERIALIZABLE SESSION SET SETS SHARD SHARE SHARED SHORT
SHOW SIGNAL SIMILAR SIZE SKEWED SMALLINT SNAPSHOT SOME SOURCE SPACE SPACES SPARSE SPECIFIC
SPECIFICTYPE SPLIT SQL SQLCODE SQLERROR SQLEXCEPTION SQLSTATE SQLWARNING START STATE STATIC
STATUS STORAGE STORE STORED STREAM STRING STRUCT STYLE SUB SUBMULTISET SUBPARTITION SUBSTRING
SUBTYPE SUM SUPER SYMMETRIC SYNONYM SYSTEM TABLE TABLESAMPLE TEMP TEMPORARY TERMINATED TEXT THAN
THEN THROUGHPUT TIME TIMESTAMP TIMEZONE TINYINT TO TOKEN TOTAL TOUCH TRAILING TRANSACTION
TRANSFORM TRANSLATE TRANSLATION TREAT TRIGGER TRIM TRUE TRUNCATE TTL TUPLE TYPE UNDER UNDO UNION
UNIQUE UNIT UNKNOWN UNLOGGED UNNEST UNPROCESSED UNSIGNED UNTIL UPDATE UPPER URL USAGE USE USER
USERS USING UUID VACUUM VALUE VALUED VALUES VARCHAR VARIABLE VARIANCE VARINT VARYING VIEW VIEWS
VIRTUAL VOID WAIT WHEN WHENEVER WHERE WHILE WINDOW WITH WITHIN WITHOUT WORK WRAPPED WRITE YEAR
ZONE
]]):gmatch("%S+") do RESERVED[#RESERVED + 1] = w end

local SPECIALS = { ".", "#", ":", " ", "  ", "'", '"', "[", "]", "(", ")", ",", "=", "<>", "<",
  ">=", "+", "-", "\\", "\t", "#0", ":0", "#1", ":v", "[0]", "[1]", "a.b", "x y", "é", "ü", "字",
  "名前", "Ω", "🙂", "\226\128\168", "0", "9", "_", "a", "Z", "size", "contains", "attribute_exists",
  "SET", "REMOVE", "ADD", "DELETE", "AND", "OR", "NOT", "BETWEEN", "IN" }

local function piece()
  local r = random()
  if r < 0.35 then
    local w = RESERVED[random(#RESERVED)]
    return random() < 0.3 and w:lower() or w
  end
  return SPECIALS[random(#SPECIALS)]
end

-- A random string of 1..max bytes, made of whole UTF-8 characters.
local function random_text(max)
  local target = random(1, max)
  local parts, len = {}, 0
  for _ = 1, 400 do
    local p = piece()
    if len + #p <= target then
      parts[#parts + 1] = p
      len = len + #p
      if len == target then break end
    elseif len > 0 and random() < 0.2 then
      break
    end
  end
  if len == 0 then parts[1], len = ".", 1 end
  return concat(parts)
end

-- A strict check of the text: placeholders (#n, :n), positions [n], the
-- expression keywords, operators and punctuation, nothing else.
local KEYWORDS = { BETWEEN = true, AND = true, OR = true, NOT = true, IN = true, SET = true,
  REMOVE = true, ADD = true, DELETE = true, attribute_exists = true,
  attribute_not_exists = true, attribute_type = true, begins_with = true, contains = true,
  size = true, if_not_exists = true, list_append = true }

local function lex(text, names_used, values_used)
  for ph in text:gmatch("#%d+") do names_used[ph] = true end
  for ph in text:gmatch(":%d+") do values_used[ph] = true end
  local rest = text:gsub("[#:]%d+", ""):gsub("%[%d+%]", "")
  for word in rest:gmatch("[%a_]+") do
    if not KEYWORDS[word] then return false, format("unexpected word %q in %q", word, text) end
  end
  rest = rest:gsub("[%a_]+", "")
  if rest:find("[^<>=+%-%.,%(%) ]") then
    return false, format("unexpected bytes %q in %q", rest, text)
  end
  return true
end

local function same(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

-- Bytes that never occur in expression text: a name or value holding one
-- must not be found in it literally either.
local function foreign(str)
  return str:find("[^%w_ %.,%(%)=<>+%-#:%[%]]") ~= nil
end

local String = {}
String.__index = String
function String:serialize(v) if v == nil then return nil end return { S = v } end
local function string_attr(name)
  return setmetatable({ type = "S", kind = "Unicode", name = name, wire_name = name }, String)
end

describe("expressions over random names and values", function()
  it("never put a name or a value in the text (100,000 names)", function()
    local seed = tonumber(os.getenv("LUNAMODB_PROPERTY_SEED") or "") or 20261121
    math.randomseed(seed)
    -- LUNAMODB_PROPERTY_NAMES sets the count. Under valgrind (which hunts
    -- memory errors in the C core, where this pure-Lua property adds
    -- nothing) it defaults to 5,000 names, about ten seconds there.
    local NAMES_EACH = 5
    local under_valgrind = (os.getenv("LD_PRELOAD") or ""):find("vgpreload", 1, true)
    local total = tonumber(os.getenv("LUNAMODB_PROPERTY_NAMES") or "")
      or (under_valgrind and 5000 or 100000)
    local ITERATIONS = math.ceil(total / NAMES_EACH)
    local count, literal_checks = 0, 0
    for iter = 1, ITERATIONS do
      local n1, n2, n3, n4, n5 = random_text(255), random_text(255), random_text(255),
        random_text(255), random_text(255)
      local v1, v2, v3 = random_text(60), random_text(60), random_text(60)
      count = count + NAMES_EACH

      -- a typed root (n1), a root without a declared type (n2) with a key n3,
      -- and a typed map (n5) whose field `f` is stored as n4
      local P1 = path.root(string_attr(n1), "Doc")
      local X = path.untyped(n2):field(n3)
      local map = { type = "M", kind = "Map", name = "m", wire_name = n5,
        fields = { f = string_attr("f") } }
      map.fields.f.wire_name = n4
      local MF = path.root(map, "Doc").f

      local s = serializer.new()
      local proj = s:projection({ P1, X, MF })
      local cond = s:condition(((P1:eq(v1) * X:begins_with(v2)) + (-MF:is_in(v1, v3) * X[2]:contains(v2)))
        * P1:size():gt(#v1))
      local upd = s:update({ P1:set(v3), X[1]:set(v1), MF:set(MF:if_not_exists(v2)), X[3]:remove() })

      -- the exact text, over the placeholders de-duplicated in order of use
      local ids, next_id = {}, 0
      local function id(name)
        if not ids[name] then ids[name] = "#" .. next_id next_id = next_id + 1 end
        return ids[name]
      end
      local p1, x, mf = id(n1), id(n2) .. "." .. id(n3), id(n5) .. "." .. id(n4)
      local ok = proj == format("%s, %s, %s", p1, x, mf)
        and cond == format("(((%s = :0 AND begins_with (%s, :1)) OR ((NOT %s IN (:2, :3)) AND "
          .. "contains (%s[1], :4))) AND size (%s) > :5)", p1, x, mf, x, p1)
        and upd == format("SET %s = :6, %s[0] = :7, %s = if_not_exists (%s, :8) REMOVE %s[2]",
          p1, x, mf, mf, x)
      if not ok then
        error(format("seed %d iteration %d: unexpected text\n%s\n%s\n%s", seed, iter, proj, cond, upd))
      end

      -- only placeholders, operators, keywords and punctuation
      local names_used, values_used = {}, {}
      for _, text in ipairs({ proj, cond, upd }) do
        local fine, why = lex(text, names_used, values_used)
        if not fine then error(format("seed %d iteration %d: %s", seed, iter, why)) end
      end

      -- the maps hold exactly the names and values
      local names, values = s:names(), s:values()
      local expected_names = {}
      for name, ph in pairs(ids) do expected_names[ph] = name end
      if not same(expected_names, names) then assert.same(expected_names, names) end
      for ph in pairs(names) do assert(names_used[ph], ph .. " is unused") end
      for ph in pairs(names_used) do assert(names[ph], ph .. " is not in the names map") end
      local expected_values = {
        [":0"] = { S = v1 }, [":1"] = { S = v2 }, [":2"] = { S = v1 }, [":3"] = { S = v3 },
        [":4"] = { S = v2 }, [":5"] = { N = format("%d", #v1) }, [":6"] = { S = v3 },
        [":7"] = { S = v1 }, [":8"] = { S = v2 },
      }
      if not same(expected_values, values) then assert.same(expected_values, values) end
      for ph in pairs(values_used) do assert(values[ph], ph .. " is not in the values map") end
      for ph in pairs(values) do assert(values_used[ph], ph .. " is unused") end

      -- and literally: a name or value with a byte foreign to expressions
      -- is nowhere in the text
      for _, str in ipairs({ n1, n2, n3, n4, n5, v1, v2, v3 }) do
        if foreign(str) then
          literal_checks = literal_checks + 1
          for _, text in ipairs({ proj, cond, upd }) do
            if text:find(str, 1, true) then
              error(format("seed %d iteration %d: %q appears in %q", seed, iter, str, text))
            end
          end
        end
      end
    end
    assert.equal(ITERATIONS * NAMES_EACH, count)
    assert.is_true(literal_checks > count / 2)
  end)

  it("draws from at least 100 reserved words and every special kind", function()
    assert.equal(573, #RESERVED)
    local seen = {}
    math.randomseed(1)
    local lengths = {}
    for _ = 1, 2000 do
      local t = random_text(255)
      assert.is_true(#t >= 1 and #t <= 255)
      lengths[#t] = true
      for _, ch in ipairs({ ".", "#", ":", " ", "'", '"', "[", "é", "字", "🙂" }) do
        if t:find(ch, 1, true) then seen[ch] = true end
      end
    end
    for _, ch in ipairs({ ".", "#", ":", " ", "'", '"', "[", "é", "字", "🙂" }) do
      assert.is_true(seen[ch], "never drew " .. ch)
    end
    assert.is_true(lengths[1] and lengths[255] and true or false)
  end)
end)
