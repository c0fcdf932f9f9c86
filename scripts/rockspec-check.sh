#!/usr/bin/env bash
# Proves rockspec/lunamodb-scm-1.rockspec builds and installs with luarocks
# into a fresh tree, and that `require "lunamodb"` works from that tree alone.
set -euo pipefail
cd "$(dirname "$0")/.."

tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT

# Every Lua module in lua/ must be listed in the rockspec, or the installed
# rock would be missing it.
missing=0
while IFS= read -r f; do
  mod=${f#lua/}; mod=${mod%.lua}; mod=${mod%/init}; mod=${mod//\//.}
  if ! grep -q "\[\"$mod\"\]" rockspec/lunamodb-scm-1.rockspec; then
    echo "rockspec-check: module $mod ($f) is not in the rockspec" >&2
    missing=1
  fi
done < <(find lua -name '*.lua' | sort)
[ "$missing" = 0 ] || exit 1

# The rockspec must also list every C source.
for c in csrc/*.c; do
  grep -q "\"$c\"" rockspec/lunamodb-scm-1.rockspec || { echo "rockspec-check: $c missing" >&2; exit 1; }
done

# Debian keeps curl/curl.h in the multiarch include dir, where luarocks does
# not look by itself; pkg-config knows it.
curl_inc=$(pkg-config --cflags-only-I libcurl | sed 's/^-I//; s/ .*//')
curl_lib=$(pkg-config --variable=libdir libcurl)
luarocks --lua-version=5.4 --tree="$tree" make --deps-mode=none \
  rockspec/lunamodb-scm-1.rockspec CURL_INCDIR="${curl_inc:-/usr/include}" CURL_LIBDIR="$curl_lib" \
  >"$tree/build.log" 2>&1 || { cat "$tree/build.log"; exit 1; }

# Only the fresh tree (plus the system's own paths) is visible.
cd "$tree"
LUA_PATH="$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua" \
LUA_CPATH="$tree/lib/lua/5.4/?.so" \
  TREE="$tree" lua5.4 -e '
    local l = require "lunamodb"
    assert(package.searchpath("lunamodb.core", package.cpath):find(os.getenv("TREE"), 1, true))
    local c = l.Client.new{ region = "us-east-1", host = "http://127.0.0.1:9",
                            access_key_id = "AKID", secret_access_key = "secret" }
    print("rockspec-check: installed lunamodb " .. l.VERSION .. " loads: " .. tostring(c))'
