-- One schema with every attribute class, for the specs of the core's item codecs
-- (core.decode_items, core.encode_item), which compare them with the attributes' own.
local A = require "lunamodb.attributes"

local M = {}

local Upper = A.define{
  kind = "CodecSpecUpper", type = "S",
  serialize = function(_, v) return v:upper() end,
  deserialize = function(_, s) return s:lower() end,
}

-- A fresh schema named `name`; `extra` adds attributes.
function M.schema(name, extra)
  local decl = {
    pk = A.Unicode{ hash_key = true },
    sk = A.Number{ range_key = true },
    name = A.Unicode{ null = true },
    score = A.Number{ null = true },
    active = A.Boolean{ null = true },
    tags = A.UnicodeSet{},
    nums = A.NumberSet{},
    raw = A.Binary{ null = true },
    created = A.UTCDateTime{ null = true, attr_name = "c" },
    profile = A.Map{ null = true, fields = {
      city = A.Unicode{ null = true }, zip = A.Number{ attr_name = "z", null = true },
      inner = A.Map{ null = true, fields = { deep = A.Boolean{ null = true } } },
    } },
    dyn = A.DynamicMap{ null = true, fields = { known = A.Number{ null = true } } },
    anything = A.Map{ null = true },
    history = A.List{ null = true, of = A.Number{} },
    lines = A.List{ null = true, of = A.Map{ fields = { sku = A.Unicode{}, qty = A.Number{} } } },
    loose = A.List{ null = true },
    doc = A.JSON{ null = true },
    expires = A.TTL{ null = true },
    shout = Upper{ null = true },
  }
  for k, v in pairs(extra or {}) do decl[k] = v end
  return A.schema(decl, name)
end

return M
