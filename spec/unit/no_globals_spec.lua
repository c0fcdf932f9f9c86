-- Loading lunamodb must not touch the global table, on any Lua.
describe("require 'lunamodb'", function()
  it("sets no globals", function()
    local before = {}
    for k in pairs(_G) do before[k] = true end
    for name in pairs(package.loaded) do
      if name == "lunamodb" or name:find("^lunamodb%.") then package.loaded[name] = nil end
    end
    local lunamodb = require "lunamodb"
    require "lunamodb.transport.curl"
    local added = {}
    for k in pairs(_G) do
      if not before[k] then added[#added + 1] = tostring(k) end
    end
    assert.same({}, added)
    assert.is_table(lunamodb.Client)
    assert.is_string(lunamodb.VERSION)
  end)

  it("loads every module of the rockspec", function()
    local f = assert(io.open("rockspec/lunamodb-scm-1.rockspec"))
    local text = f:read("*a")
    f:close()
    local n = 0
    for mod in text:gmatch('%["(lunamodb[%w%._]*)"%]') do
      assert.truthy(require(mod), mod)
      n = n + 1
    end
    assert.is_true(n >= 7)
  end)
end)
