-- examples/openresty/app.lua: a small JSON API over a lunamodb model, served by nginx
-- (examples/openresty/nginx.conf shows the configuration and how to run it).
--
--   GET    /health            {"status":"ok"}, never touches DynamoDB
--   GET    /items             {"items":[...],"count":n}   ?limit=N (default 100)
--                             ?segments=S: a parallel scan of S segments, run concurrently
--   GET    /items/<id>        the item, or 404
--   PUT    /items/<id>        body {"name":"...","qty":3,"tags":["a","b"]}: creates or replaces
--   DELETE /items/<id>        removes it (404 when there was none)
--
-- The model code is the same as in a plain Lua script: Item:get, item:save, Item:scan,
-- Item:parallel_scan. Inside nginx lunamodb's default transport is cosockets, so a request
-- waiting for DynamoDB never blocks the worker, and other requests go on meanwhile.
--
-- In nginx.conf:
--   init_by_lua_block { require("app").configure("default", { table_name = "items" }) }
--   location = /health { content_by_lua_block { require("app").health() } }
--   location /items    { content_by_lua_block { require("app").serve("default") } }
-- configure(name, conf) declares the model for one API instance; conf: table_name, prefix
-- (the part of the URI before /items, default ""), and the model's connection options
-- (host, region, access_key_id, secret_access_key, max_attempts, timeout, read_timeout,
-- connect_timeout); the rest comes from the environment (AWS_ENDPOINT_URL_DYNAMODB,
-- AWS_REGION, AWS_ACCESS_KEY_ID, ...: list them with nginx's `env` directive).
-- serve(name, conf) also configures the instance on first use when given conf.

local lunamodb = require "lunamodb"

local A = lunamodb.attributes
local json_encode, json_decode = lunamodb.json.encode, lunamodb.json.decode
local type, pairs, ipairs, pcall, tostring, tonumber, error = type, pairs, ipairs, pcall,
  tostring, tonumber, error
local sort = table.sort
local match, sub, format = string.match, string.sub, string.format
local ngx = ngx                                   -- luacheck: ignore (nil outside nginx)

local M = {}

local CONNECTION = {
  host = true, region = true, access_key_id = true, secret_access_key = true,
  max_attempts = true, timeout = true, read_timeout = true, connect_timeout = true,
}

-- The model of one API instance. Loadable outside nginx too (the spec creates its table).
function M.model(conf)
  local decl = {
    table_name = conf.table_name or "lunamodb_openresty_items",
    region = conf.region or os.getenv("AWS_REGION") or "us-east-1",
    billing_mode = "PAY_PER_REQUEST",
    attributes = {
      id = A.Unicode{ hash_key = true },
      name = A.Unicode{ null = true },
      qty = A.Number{ default = 0 },
      tags = A.UnicodeSet{},
      updated = A.UTCDateTime{ null = true },
    },
  }
  for k, v in pairs(conf) do
    if CONNECTION[k] then decl[k] = v end
  end
  return lunamodb.Model(decl)
end

local instances = {}

function M.configure(name, conf)
  if type(name) ~= "string" then
    error("app.configure: name must be a string (got " .. type(name) .. ")", 2)
  end
  conf = conf or {}
  local Item = M.model(conf)
  -- Create the client now: a configuration error stops nginx at start-up instead of failing
  -- every request. Created in init_by_lua, it still uses cosockets in the handlers.
  Item:client()
  instances[name] = { Item = Item, prefix = conf.prefix or "" }
  return Item
end

-- The model of a configured instance (or nil).
function M.get(name)
  local inst = instances[name]
  return inst and inst.Item
end

------------------------------------------------------------------ responses

local function reply(status, doc)
  local body = json_encode(doc)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Content-Length"] = #body
  ngx.print(body)
  return ngx.exit(status)
end

-- A lunamodb error from DynamoDB or the network: the upstream failed.
local function upstream_error(err)
  return reply(502, { error = err.code or "Error", message = err.message or tostring(err) })
end

local function to_json(item)
  return {
    id = item.id,
    name = item.name,
    qty = item.qty,
    tags = lunamodb.array(item.tags and item.tags:items() or {}),
    updated = item.updated and tostring(item.updated) or nil,
  }
end

local function list_json(items)
  local out = {}
  for i, item in ipairs(items) do out[i] = to_json(item) end
  sort(out, function(a, b) return a.id < b.id end)
  return { items = lunamodb.array(out), count = #out }
end

------------------------------------------------------------------ handlers

local function read_json_body()
  ngx.req.read_body()
  local text = ngx.req.get_body_data()
  if not text then
    if ngx.req.get_body_file() then return nil, "request body too large" end
    return nil, "a JSON object body is required"
  end
  local doc, err = json_decode(text)
  if type(doc) ~= "table" or lunamodb.is_array(doc) then
    return nil, err or "the body must be a JSON object"
  end
  return doc
end

local function list(Item)
  local args = ngx.req.get_uri_args()
  local limit = tonumber(args.limit) or 100
  if limit < 1 or limit > 1000 or limit % 1 ~= 0 then
    return reply(400, { error = "BadRequest", message = "limit must be a whole number 1-1000" })
  end
  local segments = tonumber(args.segments)
  if segments and (segments < 1 or segments > 16 or segments % 1 ~= 0) then
    return reply(400, { error = "BadRequest", message = "segments must be a whole number 1-16" })
  end
  -- iterators raise the lunamodb.Error on failure
  local ok, res = pcall(function()
    local items = {}
    if segments then
      for item in Item:parallel_scan{ total_segments = segments, limit = limit } do
        items[#items + 1] = item
      end
    else
      for item in Item:scan{ limit = limit } do items[#items + 1] = item end
    end
    return items
  end)
  if not ok then
    if lunamodb.is_error(res) then return upstream_error(res) end
    error(res, 0)
  end
  return reply(200, list_json(res))
end

-- The item, or nil after answering 404 (none) or the upstream error.
local function find(Item, id)
  local item, err = Item:get(id)
  if item then return item end
  if err:is(lunamodb.DoesNotExist) then
    reply(404, { error = "NotFound", message = "no item " .. id })
  else
    upstream_error(err)
  end
  return nil
end

local function get(Item, id)
  local item = find(Item, id)
  if item then return reply(200, to_json(item)) end
end

local function put(Item, id)
  local doc, why = read_json_body()
  if not doc then return reply(400, { error = "BadRequest", message = why }) end
  if doc.tags ~= nil and type(doc.tags) ~= "table" then
    return reply(400, { error = "BadRequest", message = "tags must be an array of strings" })
  end
  -- the model checks every value when it builds the request: a value of the wrong type
  -- raises (misuse), which here means a bad request; DynamoDB failures return nil, err
  local item
  local ok, saved, err = pcall(function()
    item = Item.new {
      id = id, name = doc.name, qty = doc.qty,
      tags = doc.tags and #doc.tags > 0 and lunamodb.set(doc.tags) or nil,
      updated = lunamodb.now(),
    }
    return item:save()
  end)
  if not ok then
    if lunamodb.is_error(saved) then return upstream_error(saved) end
    local msg = tostring(saved)
    return reply(400, { error = "BadRequest", message = msg:match("lunamodb: (.*)$") or msg })
  end
  if not saved then return upstream_error(err) end
  return reply(200, to_json(item))
end

local function delete(Item, id)
  local item = find(Item, id)
  if not item then return end
  local ok, err = item:delete()
  if not ok then return upstream_error(err) end
  return reply(200, { deleted = id })
end

function M.health()
  return reply(200, { status = "ok" })
end

-- Serves the current request with the instance called name.
function M.serve(name, conf)
  local inst = instances[name]
  if not inst then
    if not conf then error("app.serve: no API instance '" .. tostring(name) .. "'", 2) end
    M.configure(name, conf)
    inst = instances[name]
  end
  local Item = inst.Item
  local uri = ngx.var.uri
  local prefix = inst.prefix
  if sub(uri, 1, #prefix) ~= prefix then
    return reply(404, { error = "NotFound", message = "no such resource" })
  end
  local path = sub(uri, #prefix + 1)
  local method = ngx.req.get_method()
  if path == "/items" or path == "/items/" then
    if method == "GET" then return list(Item) end
    return reply(405, { error = "MethodNotAllowed", message = method .. " " .. path })
  end
  local id = match(path, "^/items/([^/]+)$")
  if not id then return reply(404, { error = "NotFound", message = "no such resource" }) end
  if method == "GET" then return get(Item, id) end
  if method == "PUT" then return put(Item, id) end
  if method == "DELETE" then return delete(Item, id) end
  return reply(405, { error = "MethodNotAllowed", message = format("%s %s", method, path) })
end

return M
