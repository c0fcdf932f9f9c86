-- The canned server's handler (see canned.conf): X-Amz-Target -> a fixed body, with the
-- headers real DynamoDB sends (x-amz-crc32, x-amzn-RequestId, application/x-amz-json-1.0).
-- It counts what it answered, so bench.py can check every runner really sent its requests.
local M = {}

local OPS = { "PutItem", "GetItem", "UpdateItem", "Query", "Scan", "BatchWriteItem", "BatchGetItem" }
local TABLE = '"bench_items"'
local canned = {}

function M.init()
  local dir = os.getenv("BENCH_DATA") .. "/canned/"
  for _, op in ipairs(OPS) do
    local f = assert(io.open(dir .. op .. ".json", "rb"))
    local body = f:read("*a")
    f:close()
    canned[op] = { body = body, crc = string.format("%.0f", ngx.crc32_long(body)),
                   len = tostring(#body) }
  end
end

local function refuse(why)
  ngx.shared.counts:incr("bad", 1, 0)
  ngx.log(ngx.ERR, "canned: refused: ", why)
  ngx.status = 400
  ngx.header["Content-Type"] = "application/x-amz-json-1.0"
  ngx.print('{"__type":"com.amazon.coral.validate#ValidationException","message":"canned: ', why, '"}')
end

function M.answer()
  local target = ngx.var.http_x_amz_target
  local op = target and target:match("^DynamoDB_20120810%.(%a+)$")
  local c = op and canned[op]
  if not c then return refuse("unknown target " .. tostring(target)) end
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  -- a cheap sanity check that a real request came: it names the table and is signed
  if not body or not body:find(TABLE, 1, true) then return refuse(op .. " without the table name") end
  if not ngx.var.http_authorization then return refuse(op .. " without Authorization") end
  ngx.shared.counts:incr(op, 1, 0)
  local h = ngx.header
  h["Content-Type"] = "application/x-amz-json-1.0"
  h["Content-Length"] = c.len
  h["x-amz-crc32"] = c.crc
  h["x-amzn-RequestId"] = "BENCHCANNEDREQUEST0000000000000000000000000000000000"
  ngx.print(c.body)
end

function M.stats()
  local d = ngx.shared.counts
  local parts = {}
  for _, k in ipairs(d:get_keys(0)) do
    parts[#parts + 1] = string.format('"%s":%d', k, d:get(k))
  end
  ngx.header["Content-Type"] = "application/json"
  ngx.print("{", table.concat(parts, ","), "}")
end

return M
