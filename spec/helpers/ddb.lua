-- Integration spec helpers: the DynamoDB Local started by
-- scripts/with-ddb-local.sh, a client for it, unique table names.
local lunamodb = require "lunamodb"

local M = {}

-- Fails loudly: an integration run without a server must never pass.
function M.endpoint()
  local url = os.getenv("LUNAMODB_TEST_ENDPOINT")
  if not url or url == "" then
    error("LUNAMODB_TEST_ENDPOINT is not set: run the integration specs with "
      .. "`make integration` (scripts/with-ddb-local.sh starts DynamoDB Local)", 0)
  end
  return url
end

-- DynamoDB Local wants alphanumeric access keys.
function M.client(extra)
  local opts = {
    region = "us-east-1", host = M.endpoint(),
    access_key_id = "lunamodbtest", secret_access_key = "lunamodbtest",
  }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return lunamodb.Client.new(opts)
end

local counter = 0
function M.unique_table(prefix)
  counter = counter + 1
  return string.format("%s_%d_%d_%d", prefix, os.time(), math.random(1e6), counter)
end

return M
