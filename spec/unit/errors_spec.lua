-- The structured error: parsing DynamoDB error bodies, matching and printing.
local core = require "lunamodb.core"
local errors = require "lunamodb.errors"

local function from_body(status, text, header_type)
  local doc = core.json_decode(text)
  local code = core.error_code(header_type or (doc and doc.__type) or "")
  return errors.from_response("PutItem", status, code, doc, "REQ123")
end

describe("lunamodb.errors", function()
  it("reads both message casings and both namespaces", function()
    local local_style = from_body(400, '{"__type":"com.amazonaws.dynamodb.v20120810#'
      .. 'ConditionalCheckFailedException","Message":"The conditional request failed"}')
    assert.equal("ConditionalCheckFailedException", local_style.code)
    assert.equal("The conditional request failed", local_style.message)
    assert.equal(400, local_style.status)
    assert.equal("REQ123", local_style.request_id)

    local aws_style = from_body(400, '{"__type":"com.amazon.coral.validate#ValidationException",'
      .. '"message":"1 validation error detected"}')
    assert.equal("ValidationException", aws_style.code)
    assert.equal("1 validation error detected", aws_style.message)

    local service = from_body(400, '{"__type":"com.amazon.coral.service#UnknownOperationException"}')
    assert.equal("UnknownOperationException", service.code)
    assert.equal("", service.message)
  end)

  it("prefers the X-Amzn-Errortype header and cuts at ':'", function()
    local e = from_body(400, '{"__type":"x#Other"}', "ThrottlingException:http://internal.amazon.com/")
    assert.equal("ThrottlingException", e.code)
  end)

  it("names an error without a type by its status", function()
    local e = from_body(503, "<html>busy</html>")
    assert.equal("HTTP503", e.code)
    assert.equal(503, e.status)
  end)

  it("parses cancellation reasons in request order, with the item", function()
    local e = from_body(400, [[{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
      "CancellationReasons":[{"Code":"None"},{"Item":{"v":{"N":"1"},"id":{"S":"t1"}},
      "Code":"ConditionalCheckFailed","Message":"The conditional request failed"},
      {"Code":"ConditionalCheckFailed","Message":"The conditional request failed."}],
      "Message":"Transaction cancelled, please refer cancellation reasons for specific reasons"}]])
    assert.equal("TransactionCanceledException", e.code)
    assert.equal(3, #e.reasons)
    assert.equal("None", e.reasons[1].code)
    assert.equal("ConditionalCheckFailed", e.reasons[2].code)
    assert.same({ v = { N = "1" }, id = { S = "t1" } }, e.reasons[2].item)
    assert.equal("The conditional request failed.", e.reasons[3].message)
    assert.matches("reasons %[None, ConditionalCheckFailed, ConditionalCheckFailed%]", tostring(e))
  end)

  it("keeps throttling reasons and the ALL_OLD item", function()
    local e = from_body(400, '{"__type":"x#ThrottlingException","message":"slow down",'
      .. '"ThrottlingReasons":[{"reason":"TableReadProvisionedThroughputExceeded","resource":"arn"}]}')
    assert.equal("TableReadProvisionedThroughputExceeded", e.throttling_reasons[1].reason)
    local c = from_body(400, '{"__type":"x#ConditionalCheckFailedException","Item":{"id":{"S":"a"}}}')
    assert.same({ id = { S = "a" } }, c.item)
  end)

  it("matches codes with or without the Exception suffix", function()
    local e = from_body(400, '{"__type":"x#ConditionalCheckFailedException"}')
    assert.is_true(e:is("ConditionalCheckFailed"))
    assert.is_true(e:is("ConditionalCheckFailedException"))
    assert.is_false(e:is("Validation"))
    local t = from_body(400, '{"__type":"x#RequestLimitExceeded"}')
    assert.is_true(t:is("RequestLimitExceeded"))
    assert.is_true(t:is("RequestLimitExceededException"))
    assert.is_true(errors.is_error(e))
    assert.is_false(errors.is_error({ code = "x" }))
  end)

  it("prints operation, code, message, status and request id", function()
    local e = from_body(400, '{"__type":"a#ResourceNotFoundException","Message":"no table"}')
    e.attempts = 1
    assert.equal("lunamodb: PutItem: ResourceNotFoundException: no table (HTTP 400, request id REQ123)",
      tostring(e))
    local t = errors.from_transport("GetItem", "timeout", "timed out after 1000 ms")
    t.attempts = 4
    assert.equal("lunamodb: GetItem: RequestTimeout: timed out after 1000 ms (4 attempts)", tostring(t))
    assert.equal("ConnectionError", errors.from_transport("GetItem", "not_sent", "refused").code)
    assert.equal("ResponseTooLarge", errors.from_transport("GetItem", "too_large", "big").code)
  end)
end)
