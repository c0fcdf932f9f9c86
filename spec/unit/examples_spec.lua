-- The examples that need no server run as part of the suite (basic.lua runs
-- in `make demo`, against DynamoDB Local).
describe("examples/custom_attribute.lua", function()
  it("runs, and its Enum type refuses values outside its choices", function()
    local printed = {}
    local real_print = print
    _G.print = function(...) printed[#printed + 1] = table.concat({ ... }, " ") end
    local ok, Enum = pcall(dofile, "examples/custom_attribute.lua")
    _G.print = real_print
    assert(ok, tostring(Enum))
    assert.matches('"state":{"S":"open"}', printed[1])
    assert.equal("read:    state = open", printed[2])
    assert.equal("refused: lunamodb: state: expected one of open, closed, got lost", printed[3])
    local A = require "lunamodb.attributes"
    local e = Enum{ choices = { "a" } }
    assert.same({ S = "a" }, e:serialize("a", "e"))
    assert.has_error(function() e:serialize("b", "e") end, "lunamodb: e: expected one of a, got b")
    assert.is_true(A.is_attribute(e))
  end)
end)

describe("the README quick start", function()
  it("is examples/basic.lua, verbatim", function()
    local files = require "spec.helpers.files"
    local readme = assert(files.read("README.md"))
    local block = readme:match("## Quick start.-```lua\n(.-)```")
    assert.is_string(block)
    assert.equal(assert(files.read("examples/basic.lua")), block)
  end)
end)
