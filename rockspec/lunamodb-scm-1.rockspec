rockspec_format = "3.0"
package = "lunamodb"
version = "scm-1"
source = {
  url = "git+https://example.invalid/lunamodb.git",
}
description = {
  summary = "A DynamoDB object mapper for Lua, with a C core (SigV4, libcurl multi)",
  detailed = [[
lunamodb is to Lua what PynamoDB is to Python: models with typed attributes,
operator-built conditions and updates, pagination, batches and transactions,
over a small C core that signs with SigV4 (OpenSSL libcrypto) and talks HTTP
through libcurl's multi interface without blocking its host.
]],
  license = "Apache-2.0",
}
-- lua-cjson is not a runtime dependency: the core has its own JSON codec
-- (integers stay integers, [] and {} stay apart). See the README.
dependencies = {
  "lua >= 5.1",
}
external_dependencies = {
  CURL = { header = "curl/curl.h", library = "curl" },
  OPENSSL = { header = "openssl/evp.h", library = "crypto" },
}
build = {
  type = "builtin",
  modules = {
    ["lunamodb.core"] = {
      sources = {
        "csrc/base64.c", "csrc/batch.c", "csrc/buf.c", "csrc/civil.c", "csrc/credentials.c",
        "csrc/digest.c", "csrc/endpoint.c", "csrc/http.c", "csrc/json.c", "csrc/lmdb.c",
        "csrc/paginate.c", "csrc/retry.c", "csrc/sigv4.c", "csrc/transact.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L", "OPENSSL_API_COMPAT=30000" },
      libraries = { "curl", "crypto" },
      incdirs = { "csrc", "$(CURL_INCDIR)", "$(OPENSSL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(OPENSSL_LIBDIR)" },
    },
    ["lunamodb"] = "lua/lunamodb/init.lua",
    ["lunamodb.attributes"] = "lua/lunamodb/attributes.lua",
    ["lunamodb.batch"] = "lua/lunamodb/batch.lua",
    ["lunamodb.client"] = "lua/lunamodb/client.lua",
    ["lunamodb.config"] = "lua/lunamodb/config.lua",
    ["lunamodb.credentials"] = "lua/lunamodb/credentials.lua",
    ["lunamodb.errors"] = "lua/lunamodb/errors.lua",
    ["lunamodb.indexes"] = "lua/lunamodb/indexes.lua",
    ["lunamodb.model"] = "lua/lunamodb/model.lua",
    ["lunamodb.pagination"] = "lua/lunamodb/pagination.lua",
    ["lunamodb.transaction"] = "lua/lunamodb/transaction.lua",
    ["lunamodb.scheduler"] = "lua/lunamodb/scheduler.lua",
    ["lunamodb.expressions.condition"] = "lua/lunamodb/expressions/condition.lua",
    ["lunamodb.expressions.path"] = "lua/lunamodb/expressions/path.lua",
    ["lunamodb.expressions.serializer"] = "lua/lunamodb/expressions/serializer.lua",
    ["lunamodb.transport.curl"] = "lua/lunamodb/transport/curl.lua",
    ["lunamodb.transport.ngx"] = "lua/lunamodb/transport/ngx.lua",
    ["lunamodb.values"] = "lua/lunamodb/values.lua",
  },
}
test_dependencies = { "busted", "lua-cjson" }
test = { type = "busted" }
