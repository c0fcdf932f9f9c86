-- examples/openresty under a real nginx (worker_processes 1) against DynamoDB Local: the
-- handler's model code runs unchanged over cosockets, requests of one worker overlap while
-- DynamoDB is slow, a health location stays fast meanwhile, a parallel scan runs its segments
-- concurrently inside one request, and retry backoff waits without blocking the worker.
--
-- The same nginx also serves the test's upstreams (conf.d/spec.conf): a "slow" one that waits
-- DELAY seconds and then proxies to DynamoDB Local, and a "flaky" one that answers every
-- first attempt of a call with 503 + x-amz-retry-after. Both run in the one worker the API
-- runs in, so a handler that blocked the worker would stall them too.
--
-- Needs nginx, libnginx-mod-http-lua, lua-resty-core (scripts/install-deps.sh) and the LuaJIT
-- build of the core (make luajit): nginx always loads build/luajit/lunamodb/core.so, whichever
-- interpreter runs busted.
local ddb = require "spec.helpers.ddb"
local nginx = require "spec.helpers.nginx"
local files = require "spec.helpers.files"
local lunamodb = require "lunamodb"
local app = require "examples.openresty.app"

local CORE = "build/luajit/lunamodb/core.so"
local DELAY = 1.0                 -- seconds the slow upstream waits before each answer
local RETRY_AFTER_MS = 800        -- the flaky upstream's x-amz-retry-after
local N = 8                       -- concurrent requests

local json_decode = lunamodb.json.decode

local function cwd()
  return (nginx.sh("pwd"):match("^[^\n]*"))
end

-- conf.d/spec.conf: the upstreams and a second API server with two more instances of app.lua
-- (created lazily in the worker, unlike the default one, which init_by_lua creates).
local function spec_conf(ports, ddb_hostport, table_name)
  local upstream = string.format([[
    proxy_pass http://%s;
    proxy_http_version 1.1;
    proxy_set_header Host $http_host;
    proxy_set_header Connection "";
]], ddb_hostport)
  local record = [[
      local d = ngx.shared.lunamodb_spec
      local reused = tonumber(ngx.var.connection_requests)
      if reused > (d:get("max_connection_requests") or 0) then
        d:set("max_connection_requests", reused)
      end
]]
  local function instance(name, port, extra)
    return string.format([[
    location /%s/items {
      content_by_lua_block {
        require("app").serve("%s", {
          prefix = "/%s", table_name = "%s", host = "http://127.0.0.1:%d",
          region = "us-east-1", access_key_id = "lunamodbtest", secret_access_key = "lunamodbtest",
          %s
        })
      }
    }
]], name, name, name, table_name, port, extra or "")
  end
  return string.format([[
lua_shared_dict lunamodb_spec 1m;

server {                                   # slow: DynamoDB Local, %g s late
  listen 127.0.0.1:%d;
  location / {
    access_by_lua_block {
%s
      ngx.shared.lunamodb_spec:incr("slow", 1, 0)
      ngx.sleep(%g)
    }
%s
  }
}

server {                                   # flaky: the first attempt of every call fails
  listen 127.0.0.1:%d;
  location / {
    access_by_lua_block {
%s
      ngx.req.read_body()
      local d = ngx.shared.lunamodb_spec
      local key = "flaky:" .. ngx.md5(ngx.req.get_body_data() or "")
      if d:incr(key, 1, 0) %% 2 == 1 then            -- a retry sends the same body
        d:incr("flaky_failed", 1, 0)
        ngx.status = 503
        ngx.header["Content-Type"] = "application/x-amz-json-1.0"
        ngx.header["x-amz-retry-after"] = "%d"
        ngx.print('{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError",'
          .. '"message":"try again later"}')
        return ngx.exit(ngx.HTTP_OK)
      end
    }
%s
  }
}

server {                                   # more API instances, same worker
  listen 127.0.0.1:%d;
  location = /stats {
    content_by_lua_block {
      local d = ngx.shared.lunamodb_spec
      ngx.say(require("lunamodb").json.encode {
        slow = d:get("slow") or 0, flaky_failed = d:get("flaky_failed") or 0,
        max_connection_requests = d:get("max_connection_requests") or 0,
      })
    }
  }
  location = /transport {
    content_by_lua_block { ngx.say(tostring(require("app").get("default"):client().transport)) }
  }
%s%s}
]], DELAY, ports.slow, record, DELAY, upstream, ports.flaky, record, RETRY_AFTER_MS, upstream,
    ports.api2,
    instance("slow", ports.slow),
    instance("flaky", ports.flaky, "max_attempts = 3"))
end

local function decode(res)
  local doc, err = json_decode(res.body)
  assert(doc ~= nil, "not JSON (" .. tostring(err) .. "): HTTP " .. tostring(res.status)
    .. " " .. tostring(res.body))
  return doc
end

-- Fails with the bodies of the responses that are not `status`.
local function assert_all(results, status)
  local bad = {}
  for i, r in ipairs(results) do
    if r.status ~= status then bad[#bad + 1] = i .. ": HTTP " .. r.status .. " " .. r.body end
  end
  assert(#bad == 0, "unexpected responses:\n" .. table.concat(bad, "\n"))
end

describe("examples/openresty under nginx #integration", function()
  local srv, ports, Item, table_name

  setup(function()
    if not files.read(CORE) then
      error(CORE .. " is missing: nginx needs the LuaJIT build of the core (make luajit)", 0)
    end
    local endpoint = ddb.endpoint()
    table_name = ddb.unique_table("openresty")
    Item = app.model {
      table_name = table_name, host = endpoint, region = "us-east-1",
      access_key_id = "lunamodbtest", secret_access_key = "lunamodbtest",
    }
    assert(Item:create_table { wait = true })

    ports = {}
    ports.main, ports.api2, ports.slow, ports.flaky = nginx.free_ports(4)
    local conf = assert(files.read("examples/openresty/nginx.conf"))
    local n
    conf, n = conf:gsub("listen 127%.0%.0%.1:8080;", "listen 127.0.0.1:" .. ports.main .. ";")
    assert(n == 1, "examples/openresty/nginx.conf: expected one `listen 127.0.0.1:8080;`")
    assert(conf:find("\nworker_processes 1;", 1, true), "the example must run one worker")
    local root = cwd()
    srv = nginx.start {
      conf = conf,
      files = {
        ["conf/conf.d/spec.conf"] = spec_conf(ports, endpoint:match("^http://([^/]+)"), table_name),
      },
      links = {
        lua = root .. "/lua", clib = root .. "/build/luajit", app = root .. "/examples/openresty",
      },
      env = {
        AWS_ENDPOINT_URL_DYNAMODB = endpoint, AWS_REGION = "us-east-1",
        AWS_ACCESS_KEY_ID = "lunamodbtest", AWS_SECRET_ACCESS_KEY = "lunamodbtest",
        LUNAMODB_TABLE = table_name,
      },
      port = ports.main, ready = "/health",
    }
  end)

  teardown(function()
    if srv then srv:stop() end
    if Item then Item:delete_table() end
  end)

  it("uses the cosocket transport in handlers, for a client created in init_by_lua", function()
    local res = nginx.request(ports.api2, "GET", "/transport")
    assert.equal(200, res.status)
    assert.matches("^lunamodb%.transport%.ngx", res.body)
  end)

  it("serves CRUD requests, and the items really are in DynamoDB", function()
    local res = nginx.request(ports.main, "PUT", "/items/ada",
      '{"name":"Ada","qty":3,"tags":["math","engines"]}')
    assert.equal(200, res.status, res.body)
    assert.equal("application/json", res.headers["content-type"])
    local doc = decode(res)
    assert.same({ "engines", "math" }, doc.tags)

    local stored = assert(Item:get("ada", { consistent_read = true }))
    assert.equal("Ada", stored.name)
    assert.equal(3, stored.qty)
    assert.is_true(stored.tags:has("math"))

    res = nginx.request(ports.main, "GET", "/items/ada")
    assert.equal(200, res.status, res.body)
    doc = decode(res)
    assert.equal("Ada", doc.name)
    assert.equal(3, doc.qty)
    assert.equal(tostring(stored.updated), doc.updated)

    -- a write from outside shows through the API
    assert(Item.new { id = "bob", name = "Bob", qty = 7 }:save())
    res = nginx.request(ports.main, "GET", "/items")
    assert.equal(200, res.status, res.body)
    doc = decode(res)
    assert.equal(2, doc.count)
    assert.same({ "ada", "bob" }, { doc.items[1].id, doc.items[2].id })

    res = nginx.request(ports.main, "DELETE", "/items/ada")
    assert.equal(200, res.status, res.body)
    local gone, err = Item:get("ada", { consistent_read = true })
    assert.is_nil(gone)
    assert.is_true(err:is(lunamodb.DoesNotExist))
    assert.equal(404, nginx.request(ports.main, "GET", "/items/ada").status)
    assert.equal(404, nginx.request(ports.main, "DELETE", "/items/ada").status)
    assert(Item.new { id = "bob" }:delete())
  end)

  it("answers bad requests with 4xx JSON errors", function()
    local res = nginx.request(ports.main, "PUT", "/items/x", "{not json")
    assert.equal(400, res.status)
    assert.equal("BadRequest", decode(res).error)
    res = nginx.request(ports.main, "PUT", "/items/x", '{"qty":"many"}')
    assert.equal(400, res.status, res.body)
    assert.equal(405, nginx.request(ports.main, "POST", "/items/x").status)
    assert.equal(404, nginx.request(ports.main, "GET", "/items/x/y").status)
    assert.equal(400, nginx.request(ports.main, "GET", "/items?limit=0").status)
  end)

  it("runs concurrent requests of one worker side by side while DynamoDB is slow", function()
    local list = {}
    for i = 1, N do
      list[i] = { "PUT", "/slow/items/s" .. i, '{"name":"slow ' .. i .. '","qty":' .. i .. "}" }
    end
    local results, ms = nginx.parallel(ports.api2, list)
    assert_all(results, 200)
    -- each waited DELAY; one after the other they would take N * DELAY
    assert.is_true(ms >= DELAY * 1000 * 0.9, "too fast for the slow upstream: " .. ms .. " ms")
    assert.is_true(ms < 3 * DELAY * 1000, string.format(
      "%d requests with %g s of upstream delay each took %.0f ms: they were serialized",
      N, DELAY, ms))
    for i = 1, N do
      local item = assert(Item:get("s" .. i, { consistent_read = true }))
      assert.equal(i, item.qty)
    end
  end)

  it("keeps a health location fast while slow DynamoDB calls are in flight", function()
    local list = {}
    for i = 1, N do list[i] = { "GET", "/slow/items/s" .. i } end
    local health = {}
    local last = 0
    local results, ms = nginx.parallel(ports.api2, list, function()
      if #health < 40 and require("socket").gettime() - last > 0.05 then
        health[#health + 1] = nginx.request(ports.main, "GET", "/health", nil, 5)
        last = require("socket").gettime()
      end
    end)
    assert_all(results, 200)
    for i, r in ipairs(results) do assert.equal(i, decode(r).qty) end
    assert.is_true(ms < 3 * DELAY * 1000, "slow requests took " .. ms .. " ms")
    assert.is_true(#health >= 5, "only " .. #health .. " health checks ran meanwhile")
    local worst = 0
    for _, h in ipairs(health) do
      assert.equal(200, h.status)
      if h.ms > worst then worst = h.ms end
    end
    assert.is_true(worst < 200, "a health check took " .. worst .. " ms during slow calls")
  end)

  it("runs a parallel scan's segments concurrently inside one request", function()
    local res = nginx.request(ports.main, "GET", "/items?segments=4")
    assert.equal(200, res.status, res.body)
    local doc = decode(res)
    assert.equal(N, doc.count)
    for i = 1, N do assert.equal("s" .. i, doc.items[i].id) end   -- sorted by id (s1..s8)

    -- four Scan calls, each DELAY late: one after the other they would take 4 * DELAY
    local t0 = require("socket").gettime()
    res = nginx.request(ports.api2, "GET", "/slow/items?segments=4", nil, 20)
    local ms = (require("socket").gettime() - t0) * 1000
    assert.equal(200, res.status, res.body)
    assert.equal(N, decode(res).count)
    assert.is_true(ms < 2.5 * DELAY * 1000, "a 4-segment scan took " .. ms .. " ms")
  end)

  it("runs parallel scans of several concurrent requests of one worker (a scheduler each)", function()
    local list = {}
    for i = 1, 6 do list[i] = { "GET", "/slow/items?segments=4" } end
    local results, ms = nginx.parallel(ports.api2, list)
    assert_all(results, 200)
    for _, r in ipairs(results) do
      local doc = decode(r)
      assert.equal(N, doc.count)
      for i = 1, N do assert.equal("s" .. i, doc.items[i].id) end
    end
    -- 6 requests x 4 segments, each Scan DELAY late: all overlap
    assert.is_true(ms < 2.5 * DELAY * 1000, "6 concurrent 4-segment scans took " .. ms .. " ms")
  end)

  it("waits out retry backoff without blocking the worker", function()
    local list = {}
    for i = 1, 4 do list[i] = { "GET", "/flaky/items/s" .. i } end
    local health = {}
    local results, ms = nginx.parallel(ports.api2, list, function()
      if #health < 20 then health[#health + 1] = nginx.request(ports.main, "GET", "/health") end
    end)
    assert_all(results, 200)
    local stats = decode(nginx.request(ports.api2, "GET", "/stats"))
    assert.equal(4, stats.flaky_failed)            -- every call failed once, then succeeded
    assert.is_true(ms >= RETRY_AFTER_MS * 0.9, "no backoff happened: " .. ms .. " ms")
    assert.is_true(ms < 2 * RETRY_AFTER_MS, "4 backoffs took " .. ms .. " ms: serialized")
    for _, h in ipairs(health) do
      assert.equal(200, h.status)
      assert.is_true(h.ms < 200, "a health check took " .. h.ms .. " ms during backoff")
    end
    -- the retry went over the connection of the first attempt: the cosocket pool works
    assert.is_true(stats.max_connection_requests >= 2, "no connection was reused")
  end)

  it("leaves no errors in the error log", function()
    local log = srv:error_log()
    local bad = {}
    for line in log:gmatch("[^\n]+") do
      if line:find("%[error%]") or line:find("%[alert%]") or line:find("%[crit%]")
        or line:find("%[emerg%]") then
        bad[#bad + 1] = line
      end
    end
    io.stderr:write(srv:error_log())
    assert(#bad == 0, "nginx error log:\n" .. table.concat(bad, "\n"))
  end)
end)

------------------------------------------------------------------ the transport itself

-- A probe module run inside nginx: POST /probe with a JSON command, JSON results back.
local PROBE = [=[
local ngx_transport = require "lunamodb.transport.ngx"
local scheduler = require "lunamodb.scheduler"
local core = require "lunamodb.core"
local json = require("lunamodb").json

local M = {}
-- created in init_by_lua, like a module-level client would be
local shared = ngx_transport.new { keepalive_timeout_ms = 10000, pool_size = 4 }
local phases = {}

local function pack(status, a, b)
  if status then return { status = status, headers = a, body = b } end
  return { net = a, message = b }
end

function M.phase_send(url)             -- init, init_worker: no cosockets there
  phases[ngx.get_phase()] = pack(shared:send("GET", url, {}, "", { read_timeout_ms = 2000 }))
  if ngx.get_phase() == "init_worker" then
    ngx.timer.at(0, function(premature)
      if premature then return end
      local t = scheduler.spawn(function() return pack(shared:send("GET", url, {}, "", {})) end)
      local _, res = t:result()
      phases.timer = { direct = pack(shared:send("GET", url, {}, "", {})), task = res }
    end)
  end
end

local OPS = {}

function OPS.send(p)
  local t = p.fresh and ngx_transport.new() or shared
  local out = {}
  for i = 1, p.n or 1 do
    out[i] = pack(t:send(p.method or "GET", p.url, p.headers or {}, p.body or "", p.opts or {}))
  end
  return out
end

function OPS.tasks(p)
  local t0 = core.monotonic_ms()
  local tasks = {}
  for i = 1, p.n do
    tasks[i] = scheduler.spawn(function()
      if p.sleep_ms then shared:sleep(p.sleep_ms) return { slept = true } end
      return pack(shared:send("GET", p.url, {}, "", p.opts or {}))
    end)
  end
  assert(scheduler.join(tasks))
  local out = {}
  for i, t in ipairs(tasks) do
    local _, res = t:result()
    out[i] = res
  end
  return { results = out, ms = core.monotonic_ms() - t0 }
end

function OPS.sleep(p)                  -- outside a task: ngx.sleep, the worker goes on
  local t0 = core.monotonic_ms()
  shared:sleep(p.ms)
  return { ms = core.monotonic_ms() - t0 }
end

function OPS.cancel(p)
  local t0 = core.monotonic_ms()
  local task = scheduler.spawn(function()
    return pack(shared:send("GET", p.url, {}, "", p.opts))
  end)
  while core.monotonic_ms() - t0 < p.after_ms do scheduler.step(10) end
  local cancelled = task:cancel()
  local after = pack(shared:send("GET", p.url2, {}, "", {}))
  return { cancelled = cancelled, state = task:status(), after = after,
           ms = core.monotonic_ms() - t0 }
end

function OPS.close(p)
  local t = ngx_transport.new()
  local t0 = core.monotonic_ms()
  local task = scheduler.spawn(function() return pack(t:send("GET", p.url, {}, "", p.opts)) end)
  while core.monotonic_ms() - t0 < p.after_ms do scheduler.step(10) end
  t:close()
  local ok, res = task:result()
  return { ok = ok, result = res, after = pack(t:send("GET", p.url, {}, "", {})),
           ms = core.monotonic_ms() - t0, text = tostring(t) }
end

function OPS.phases()
  return phases
end

function M.handle()
  ngx.req.read_body()
  local p = assert(json.decode(ngx.req.get_body_data()))
  local out = OPS[p.op](p)
  ngx.header["Content-Type"] = "application/json"
  ngx.print(json.encode(out))
end

return M
]=]

local function probe_conf(port, tls_port, bad_tls_port, phase_url, prefix_lua)
  return string.format([[
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1;
daemon on;
pid logs/nginx.pid;
error_log logs/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path tmp/body; proxy_temp_path tmp/proxy; fastcgi_temp_path tmp/fastcgi;
  uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;
  lua_package_path "$prefix/lua/?.lua;$prefix/lua/?/init.lua;$prefix/t/?.lua;;";
  lua_package_cpath "$prefix/clib/?.so;;";
  lua_socket_log_errors off;
  lua_ssl_trusted_certificate good.crt;
  init_by_lua_block { require("probe").phase_send(%q) }
  init_worker_by_lua_block { require("probe").phase_send(%q) }
  server {
    listen 127.0.0.1:%d;
    location = /health { return 200 "ok"; }
    location = /probe { content_by_lua_block { require("probe").handle() } }
  }
  server {
    listen 127.0.0.1:%d ssl;
    ssl_certificate good.crt; ssl_certificate_key good.key;
    location / { return 200 "$connection_requests"; }
  }
  server {
    listen 127.0.0.1:%d ssl;
    ssl_certificate bad.crt; ssl_certificate_key bad.key;
    location / { return 200 "untrusted"; }
  }
}
]], phase_url, phase_url, port, tls_port, bad_tls_port)
end

-- A self-signed certificate for IP 127.0.0.1: crt, key (PEM texts).
local function self_signed()
  local dir = nginx.sh("mktemp -d \"${TMPDIR:-/tmp}/lunamodb-cert.XXXXXX\""):match("^[^\n]*")
  local ok = nginx.run(string.format("openssl req -x509 -newkey ec -pkeyopt "
    .. "ec_paramgen_curve:prime256v1 -nodes -keyout %s/k -out %s/c -subj /CN=127.0.0.1 "
    .. "-addext subjectAltName=IP:127.0.0.1 -days 2 >/dev/null 2>&1", dir, dir))
  local crt, key = files.read(dir .. "/c"), files.read(dir .. "/k")
  nginx.run("rm -rf '" .. dir .. "'")
  assert(ok and crt and key, "openssl could not make a self-signed certificate")
  return crt, key
end

describe("lunamodb.transport.ngx inside nginx #integration", function()
  local loopback = require "spec.helpers.loopback"
  local srv, port, tls_port, bad_tls_port, phase_srv

  local function probe(cmd)
    local res = nginx.request(port, "POST", "/probe", lunamodb.json.encode(cmd), 20)
    assert(res.status == 200, "probe: HTTP " .. res.status .. " " .. res.body)
    return decode(res)
  end

  setup(function()
    if not files.read(CORE) then
      error(CORE .. " is missing: nginx needs the LuaJIT build of the core (make luajit)", 0)
    end
    phase_srv = loopback.start { routes = { ["GET /phase"] = { body = "phase" } } }
    port, tls_port, bad_tls_port = nginx.free_ports(3)
    local good_crt, good_key = self_signed()
    local bad_crt, bad_key = self_signed()
    local root = cwd()
    srv = nginx.start {
      conf = probe_conf(port, tls_port, bad_tls_port, phase_srv.url .. "/phase"),
      files = {
        ["t/probe.lua"] = PROBE,
        ["conf/good.crt"] = good_crt, ["conf/good.key"] = good_key,
        ["conf/bad.crt"] = bad_crt, ["conf/bad.key"] = bad_key,
      },
      links = { lua = root .. "/lua", clib = root .. "/build/luajit" },
      port = port, ready = "/health",
    }
  end)

  teardown(function()
    if srv then srv:stop() end
    if phase_srv then phase_srv:stop() end
  end)

  it("falls back to blocking curl in init and init_worker, and uses cosockets in timers", function()
    local deadline = require("socket").gettime() + 5
    local phases = probe { op = "phases" }
    while not phases.timer and require("socket").gettime() < deadline do
      require("socket").sleep(0.05)
      phases = probe { op = "phases" }
    end
    assert.equal(200, phases.init.status, phases.init.message)
    assert.equal("phase", phases.init.body)
    assert.equal(200, phases.init_worker.status, phases.init_worker.message)
    assert.equal(200, phases.timer.direct.status, phases.timer.direct.message)
    assert.equal(200, phases.timer.task.status, phases.timer.task.message)
  end)

  it("sends requests, lowercases response headers and keeps connections alive", function()
    local lb = loopback.start { routes = {
      ["POST /a"] = { headers = { ["X-Thing"] = "v" }, body = "hello" },
      ["GET /chunked"] = { chunked = true, chunk_size = 7, body = string.rep("0123456789", 30) },
      ["HEAD /h"] = { body = "not sent" },
    } }
    finally(function() lb:stop() end)
    local out = probe { op = "send", n = 3, method = "POST", url = lb.url .. "/a",
      headers = { "Content-Type: application/x-amz-json-1.0", "Expect:", "X-Empty;" },
      body = "{}" }
    for i = 1, 3 do
      assert.equal(200, out[i].status, out[i].message)
      assert.equal("hello", out[i].body)
      assert.equal("v", out[i].headers["x-thing"])
      assert.equal("5", out[i].headers["content-length"])
    end
    local reqs = lb:requests()
    assert.equal(3, #reqs)
    assert.equal(reqs[1].connection, reqs[3].connection)      -- one pooled connection
    assert.equal("127.0.0.1:" .. lb.port, reqs[1].headers.host)
    assert.equal("2", reqs[1].headers["content-length"])
    assert.equal("", reqs[1].headers["x-empty"])
    assert.is_nil(reqs[1].headers.expect)                       -- "Name:" drops the header
    assert.equal("{}", reqs[1].body)

    out = probe { op = "send", url = lb.url .. "/chunked" }
    assert.equal(string.rep("0123456789", 30), out[1].body)
    out = probe { op = "send", method = "HEAD", url = lb.url .. "/h" }
    assert.equal(200, out[1].status, out[1].message)
    assert.equal("", out[1].body)
  end)

  it("reports failures with the curl transport's net categories", function()
    local lb = loopback.start { routes = {
      ["GET /big"] = { body = string.rep("x", 100) },
      ["GET /bigchunked"] = { chunked = true, body = string.rep("x", 100) },
      ["GET /late"] = { delay_ms = 600 },
      ["GET /slow"] = { action = "slow", body = string.rep("x", 50), interval_ms = 50 },
      ["GET /reset"] = { action = "reset" },
      ["GET /truncate"] = { action = "truncate", body = string.rep("x", 40) },
      ["GET /hang"] = { action = "hang" },
    } }
    finally(function() lb:stop() end)
    local function one(path, opts, extra)
      local cmd = { op = "send", url = lb.url .. path, opts = opts or {}, fresh = true }
      for k, v in pairs(extra or {}) do cmd[k] = v end
      return probe(cmd)[1]
    end
    local r = one("/big", { max_response_bytes = 10 })
    assert.same({ net = "too_large", message = "response body over 10 bytes" }, r)
    assert.equal("too_large", one("/bigchunked", { max_response_bytes = 10 }).net)
    assert.equal(200, one("/big", { max_response_bytes = 100 }).status)

    r = one("/late", { read_timeout_ms = 150 })
    assert.equal("timeout", r.net)
    assert.matches("read timeout", r.message)
    r = one("/slow", { total_timeout_ms = 300 })
    assert.equal("timeout", r.net)
    assert.matches("timed out after 300 ms", r.message)
    r = one("/hang", { connect_timeout_ms = 1000, read_timeout_ms = 200 })
    assert.equal("timeout", r.net)

    local closed_port = nginx.free_ports(1)
    r = probe { op = "send", url = "http://127.0.0.1:" .. closed_port .. "/" }[1]
    assert.equal("not_sent", r.net)
    assert.matches("connect to 127.0.0.1:%d+ failed", r.message)
    r = probe { op = "send", url = "http://no-such-host.invalid/" }[1]
    assert.equal("not_sent", r.net)                           -- no resolver configured

    assert.equal("ambiguous", one("/reset").net)
    assert.equal("ambiguous", one("/truncate").net)

    assert.same({ net = "other", message = "invalid URL: URL scheme must be http or https" },
      probe { op = "send", url = "127.0.0.1/x" }[1])
    r = one("/big", {}, { headers = { "Bad Header: x" } })
    assert.same({ net = "other", message = "header 1 is not a valid \"Name: value\" line" }, r)
    r = one("/big", {}, { headers = { "X-Evil: a\rb" } })
    assert.equal("other", r.net)
  end)

  it("retries a request once on a fresh connection when a pooled one died", function()
    local lb = loopback.start { routes = {
      ["GET /s"] = { { body = "one" }, { action = "close" }, { body = "two" } },
    } }
    finally(function() lb:stop() end)
    local out = probe { op = "send", n = 2, url = lb.url .. "/s", fresh = true }
    assert.equal("one", out[1].body)
    assert.equal("two", out[2].body, out[2].message)
    local reqs = lb:requests()
    assert.equal(3, #reqs)
    assert.equal(reqs[1].connection, reqs[2].connection)      -- the pooled one, closed
    assert.are_not.equal(reqs[2].connection, reqs[3].connection)
  end)

  it("overlaps the requests and sleeps of lunamodb tasks inside one request", function()
    local lb = loopback.start { routes = { ["GET /d"] = { delay_ms = 400, body = "late" } } }
    finally(function() lb:stop() end)
    local out = probe { op = "tasks", n = 4, url = lb.url .. "/d" }
    for i = 1, 4 do assert.equal("late", out.results[i].body, out.results[i].message) end
    assert.is_true(out.ms >= 390 and out.ms < 800, "4 tasks took " .. out.ms .. " ms")
    out = probe { op = "tasks", n = 5, sleep_ms = 300 }
    assert.is_true(out.ms >= 290 and out.ms < 600, "5 sleeping tasks took " .. out.ms .. " ms")
    out = probe { op = "sleep", ms = 200 }
    assert.is_true(out.ms >= 190 and out.ms < 400, "sleep(200) took " .. out.ms .. " ms")
  end)

  it("lets a task waiting on a request be cancelled, and the transport be closed", function()
    local lb = loopback.start { routes = {
      ["GET /hang"] = { action = "hang" }, ["GET /ok"] = { body = "fine" },
    } }
    finally(function() lb:stop() end)
    local out = probe { op = "cancel", url = lb.url .. "/hang", url2 = lb.url .. "/ok",
      after_ms = 100, opts = { read_timeout_ms = 300 } }
    assert.is_true(out.cancelled)
    assert.equal("cancelled", out.state)
    assert.equal("fine", out.after.body, out.after.message)

    out = probe { op = "close", url = lb.url .. "/hang", after_ms = 100,
      opts = { read_timeout_ms = 300 } }
    assert.is_true(out.ok)
    assert.same({ net = "closed", message = "transport closed" }, out.result)
    assert.same({ net = "other", message = "transport closed" }, out.after)
    assert.is_true(out.ms < 250, "close took " .. out.ms .. " ms to end the task")
    assert.matches("closed", out.text)
  end)

  it("speaks TLS with verification and reuses TLS connections", function()
    local url = "https://127.0.0.1:" .. tls_port .. "/"
    local out = probe { op = "send", n = 2, url = url }
    assert.equal(200, out[1].status, out[1].message)
    assert.equal("1", out[1].body)
    assert.equal("2", out[2].body)                            -- same connection, no handshake
    local r = probe { op = "send", url = "https://127.0.0.1:" .. bad_tls_port .. "/" }[1]
    assert.equal("not_sent", r.net)
    assert.matches("TLS handshake with 127.0.0.1:%d+ failed", r.message)
  end)

  it("leaves no errors in the error log but the reset it provoked", function()
    local bad = {}
    for line in srv:error_log():gmatch("[^\n]+") do
      -- nginx itself logs a reset cosocket connection (lua_socket_log_errors cannot stop it)
      local expected = line:find("recv() failed (104: Connection reset by peer)", 1, true)
      if not expected and (line:find("%[error%]") or line:find("%[alert%]")
        or line:find("%[crit%]") or line:find("%[emerg%]")) then
        bad[#bad + 1] = line
      end
    end
    assert(#bad == 0, "nginx error log:\n" .. table.concat(bad, "\n"))
  end)
end)
