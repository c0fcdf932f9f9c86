-- lunamodb.config: where a client's region, endpoint and credentials come
-- from, in the order the AWS SDKs use. Everything here is resolved once, at
-- Client.new, and raises on misconfiguration before any network call.
--
--   region       option, AWS_REGION, AWS_DEFAULT_REGION, the profile's region
--   endpoint     option, AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL, the
--                profile's endpoint_url (the three configured ones are skipped
--                when AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true), else
--                https://dynamodb.<region>.amazonaws.com
--   credentials  options, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY[/AWS_SESSION_TOKEN]
--                (skipped when a profile is named in code), the shared
--                credentials/config files' profile (AWS_PROFILE, else
--                "default"; AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE),
--                container credentials, EC2 instance metadata (IMDSv2)

local core = require "lunamodb.core"
local credentials = require "lunamodb.credentials"

local type, tostring, tonumber = type, tostring, tonumber
local format = string.format

local M = {}

local function fail(msg)
  error("lunamodb.Client.new: " .. msg, 0)
end

local function nonempty(v)
  if v == nil or v == "" then return nil end
  return v
end

local function check_header_safe(name, v)
  if v ~= nil and not core.header_value_safe(v) then
    fail(name .. " contains CR, LF or NUL")
  end
end

local function endpoint_for(region)
  local suffix = region:find("^cn%-") and "amazonaws.com.cn" or "amazonaws.com"
  return format("https://dynamodb.%s.%s", region, suffix)
end

-- opts: the validated Client.new options; getenv: os.getenv or a stand-in.
function M.resolve(opts, getenv)
  getenv = getenv or os.getenv
  local env = function(name) return nonempty(getenv(name)) end

  -- the profile and its files
  local profile_name = opts.profile or env("AWS_PROFILE") or env("AWS_DEFAULT_PROFILE") or "default"
  local home = env("HOME")
  local cred_file = env("AWS_SHARED_CREDENTIALS_FILE") or (home and home .. "/.aws/credentials")
  local conf_file = env("AWS_CONFIG_FILE") or (home and home .. "/.aws/config")
  local profile, perr = core.load_profile(cred_file, conf_file, profile_name)
  if not profile then fail(perr) end
  if opts.profile and not profile.found then
    fail(format("profile '%s' is not in the shared credentials or config file", opts.profile))
  end

  -- region
  local region = opts.region or env("AWS_REGION") or env("AWS_DEFAULT_REGION") or profile.region
  if not region then
    fail("no region: pass region = \"us-east-1\" (for example), or set AWS_REGION, "
      .. "or set region in the AWS config file's profile")
  end
  if not core.region_valid(region) then
    fail(format("region %q is not a valid region name", region))
  end

  -- endpoint
  local endpoint = opts.host
  local endpoint_source = "the host option"
  if not endpoint and (getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") or ""):lower() ~= "true" then
    endpoint = env("AWS_ENDPOINT_URL_DYNAMODB")
    endpoint_source = "AWS_ENDPOINT_URL_DYNAMODB"
    if not endpoint then endpoint, endpoint_source = env("AWS_ENDPOINT_URL"), "AWS_ENDPOINT_URL" end
    if not endpoint then
      endpoint, endpoint_source = profile.endpoint_url, "the profile's endpoint_url"
    end
  end
  if not endpoint then
    endpoint, endpoint_source = endpoint_for(region), "the region"
  end
  local url, why = core.parse_url(endpoint)
  if not url then
    fail(format("endpoint from %s is malformed: %s", endpoint_source, why))
  end
  if url.path ~= "/" then
    fail(format("endpoint from %s must not have a path (got %q)", endpoint_source, url.path))
  end

  -- credentials
  local providers, tried = {}, {}
  local function add(p, what)
    if p then providers[#providers + 1] = p end
    tried[#tried + 1] = what
  end
  if opts.access_key_id or opts.secret_access_key then
    if not (opts.access_key_id and opts.secret_access_key) then
      fail("access_key_id and secret_access_key must be given together")
    end
    check_header_safe("access_key_id", opts.access_key_id)
    check_header_safe("session_token", opts.session_token)
    add(credentials.static(opts.access_key_id, opts.secret_access_key, opts.session_token,
      "options"), "options")
  else
    if not opts.profile then
      local akid, secret = env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")
      if akid or secret then
        if not (akid and secret) then
          fail("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together")
        end
        local token = env("AWS_SESSION_TOKEN") or env("AWS_SECURITY_TOKEN")
        check_header_safe("AWS_ACCESS_KEY_ID", akid)
        check_header_safe("AWS_SESSION_TOKEN", token)
        add(credentials.static(akid, secret, token, "environment"), "environment")
      end
    end
    if #providers == 0 then
      local akid, secret = profile.aws_access_key_id, profile.aws_secret_access_key
      if akid or secret then
        if not (akid and secret) then
          fail(format("profile '%s' has only one of aws_access_key_id and "
            .. "aws_secret_access_key", profile_name))
        end
        check_header_safe("the profile's aws_access_key_id", akid)
        check_header_safe("the profile's aws_session_token", profile.aws_session_token)
        add(credentials.static(akid, secret, profile.aws_session_token,
          "profile " .. profile_name), "profile " .. profile_name)
      elseif profile.role_arn or profile.credential_process or profile.sso_start_url
          or profile.sso_session or profile.web_identity_token_file then
        fail(format("profile '%s' uses assume-role, SSO, web identity or credential_process, "
          .. "which lunamodb does not support yet: export static or container credentials "
          .. "instead", profile_name))
      end
    end
    if #providers == 0 then
      add(credentials.container(getenv), "container credentials")
      add(credentials.imds(getenv), "EC2 instance metadata")
    end
  end
  if #providers == 0 then
    fail("no AWS credentials: pass access_key_id and secret_access_key, set "
      .. "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or configure a profile "
      .. "(EC2 instance metadata is disabled by AWS_EC2_METADATA_DISABLED)")
  end

  local max_attempts = opts.max_attempts
  if max_attempts == nil then
    local raw = env("AWS_MAX_ATTEMPTS") or profile.max_attempts
    if raw then
      max_attempts = tonumber(raw)
      if not max_attempts or max_attempts < 1 or max_attempts % 1 ~= 0 then
        fail("AWS_MAX_ATTEMPTS / max_attempts must be a whole number >= 1 (got "
          .. tostring(raw) .. ")")
      end
    end
  end

  local ca_bundle = opts.ca_bundle or env("AWS_CA_BUNDLE") or profile.ca_bundle

  return {
    region = region,
    endpoint = url.scheme .. "://" .. url.host_header .. "/",
    host_header = url.host_header,
    scheme = url.scheme,
    credentials = #providers == 1 and providers[1]
      or credentials.chain(providers, table.concat(tried, ", ")),
    profile = profile_name,
    max_attempts = max_attempts,
    ca_bundle = ca_bundle,
  }
end

M.endpoint_for = endpoint_for
return M
