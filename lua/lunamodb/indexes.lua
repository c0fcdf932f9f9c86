-- lunamodb.indexes: secondary index declarations for models.
--
--   indexes = {
--     by_views = lunamodb.GlobalSecondaryIndex{ hash_key = "forum", range_key = "views",
--                                               projection = "ALL" },
--     by_last  = lunamodb.LocalSecondaryIndex{ range_key = "last_post", projection = "KEYS_ONLY" },
--     by_tag   = lunamodb.GlobalSecondaryIndex{ hash_key = "tag", projection = { "subject" } },  -- INCLUDE
--   }
--
-- Keys name attributes of the model (Lua names). A LocalSecondaryIndex
-- shares the table's hash key. `projection` is "ALL" (default), "KEYS_ONLY"
-- or a list of attribute names (INCLUDE). The model binds each index and
-- gives it query, scan, count and parallel_scan (lunamodb.model).

local setmetatable, getmetatable, type, tostring, pairs, ipairs, error =
  setmetatable, getmetatable, type, tostring, pairs, ipairs, error
local format = string.format

local M = {}

local Index = {}
Index.__index = Index
Index.__name = "lunamodb.Index"
M.Index = Index

local OPTIONS = {
  hash_key = "string", range_key = "string", projection = true, index_name = "string",
  read_capacity_units = "number", write_capacity_units = "number",
}

local function declare(kind, opts)
  if type(opts) ~= "table" then
    error(format("lunamodb.%s: expected a table of options (got %s)", kind, type(opts)), 3)
  end
  for k, v in pairs(opts) do
    local want = OPTIONS[k]
    if not want then error(format("lunamodb.%s: unknown option '%s'", kind, tostring(k)), 3) end
    if want ~= true and type(v) ~= want then
      error(format("lunamodb.%s: option '%s' must be a %s (got %s)", kind, k, want, type(v)), 3)
    end
  end
  local p = opts.projection or "ALL"
  if p ~= "ALL" and p ~= "KEYS_ONLY" then
    if type(p) ~= "table" or #p == 0 then
      error(format("lunamodb.%s: projection must be \"ALL\", \"KEYS_ONLY\" or a non-empty list "
        .. "of attribute names (INCLUDE)", kind), 3)
    end
    for i, name in ipairs(p) do
      if type(name) ~= "string" then
        error(format("lunamodb.%s: projection[%d] must be an attribute name", kind, i), 3)
      end
    end
  end
  if kind == "LocalSecondaryIndex" then
    if opts.hash_key then
      error("lunamodb.LocalSecondaryIndex: a local index shares the table's hash key: "
        .. "give only range_key", 3)
    end
    if not opts.range_key then error("lunamodb.LocalSecondaryIndex: range_key is required", 3) end
    if opts.read_capacity_units or opts.write_capacity_units then
      error("lunamodb.LocalSecondaryIndex: a local index uses the table's capacity", 3)
    end
  elseif not opts.hash_key then
    error("lunamodb.GlobalSecondaryIndex: hash_key is required", 3)
  end
  for _, cap in ipairs({ "read_capacity_units", "write_capacity_units" }) do
    local v = opts[cap]
    if v ~= nil and (v < 1 or v % 1 ~= 0) then
      error(format("lunamodb.%s: %s must be a whole number >= 1", kind, cap), 3)
    end
  end
  local self = { kind = kind, global = kind == "GlobalSecondaryIndex", projection = p }
  for k, v in pairs(opts) do if k ~= "projection" then self[k] = v end end
  return setmetatable(self, Index)
end

function M.GlobalSecondaryIndex(opts) return declare("GlobalSecondaryIndex", opts) end
function M.LocalSecondaryIndex(opts) return declare("LocalSecondaryIndex", opts) end

function M.is_index(v)
  return getmetatable(v) == Index
end

-- Resolves a declared index against a model's attributes (info from
-- lunamodb.attributes). Returns the bound index: name, index_name, hash and
-- range attributes, projection wire form, whether items read are partial.
function M.bind(decl, name, info, display)
  local function key_attr(role, attr_name)
    local a = info.by_name[attr_name]
    if not a then
      error(format("lunamodb.Model(%s): index '%s': %s '%s' is not an attribute of the model",
        display, name, role, attr_name), 0)
    end
    if a.type ~= "S" and a.type ~= "N" and a.type ~= "B" then
      error(format("lunamodb.Model(%s): index '%s': %s '%s' must be a string, number or binary "
        .. "attribute (got %s)", display, name, role, attr_name, a.kind), 0)
    end
    return a
  end
  if not decl.global and not info.range_key then
    error(format("lunamodb.Model(%s): index '%s': a local index needs a table with a range key",
      display, name), 0)
  end
  local hash = decl.global and key_attr("hash_key", decl.hash_key) or info.hash_key
  local range = decl.range_key and key_attr("range_key", decl.range_key) or nil
  local projection, partial
  if decl.projection == "ALL" then
    projection, partial = { ProjectionType = "ALL" }, false
  elseif decl.projection == "KEYS_ONLY" then
    projection, partial = { ProjectionType = "KEYS_ONLY" }, true
  else
    local names = {}
    for i, n in ipairs(decl.projection) do
      local a = info.by_name[n]
      if not a then
        error(format("lunamodb.Model(%s): index '%s': projected attribute '%s' is not an "
          .. "attribute of the model", display, name, n), 0)
      end
      names[i] = a.wire_name
    end
    projection, partial = { ProjectionType = "INCLUDE", NonKeyAttributes = names }, true
  end
  -- the attributes an index item always carries: its keys and the table's
  local projected = {
    [info.hash_key.wire_name] = true, [hash.wire_name] = true,
  }
  if info.range_key then projected[info.range_key.wire_name] = true end
  if range then projected[range.wire_name] = true end
  if projection.NonKeyAttributes then
    for _, n in ipairs(projection.NonKeyAttributes) do projected[n] = true end
  end
  return setmetatable({
    name = name, index_name = decl.index_name or name, global = decl.global, kind = decl.kind,
    hash = hash, range = range, projection = projection, partial = partial,
    projects_all = not partial, projected = projected,
    read_capacity_units = decl.read_capacity_units, write_capacity_units = decl.write_capacity_units,
  }, Index)
end

function Index:__tostring()
  return format("lunamodb.%s(%s)", self.kind, self.index_name or "unbound")
end

return M
