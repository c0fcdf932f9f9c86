#!/usr/bin/env bash
# lunamodb's benchmark: `make bench` runs this. It sets up what it needs, then bench/bench.py
# runs every runner and prints the report (also in bench/results/latest.txt).
#
#   bench/run.sh                                       full run: about 5 minutes on 2 cores
#   bench/run.sh --quick --only lunamodb54 --workloads put,query     small counts, 1 run
#   bench/run.sh --help                                all options
#
# Set-up, all idempotent: the project's Debian packages (scripts/install-deps.sh) plus the
# bench-only ones (libcjson-dev for the floor, python3-boto3 for the boto3 runner), the Lua 5.4
# and LuaJIT cores (make all luajit), the floor program (build/bench/floor), the JS SDK
# (npm ci into bench/node_modules from the committed lockfile; node >= 20 needed). DynamoDB
# Local comes from scripts/ddb-local.sh (cached), started by bench.py when needed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cd "$root"

die() {
    printf '\nbench: ERROR: %s\n' "$*" >&2
    exit 1
}

for a in "$@"; do
    if [[ "$a" == -h || "$a" == --help ]]; then exec /usr/bin/python3 "$here/bench.py" --help; fi
done

bash scripts/install-deps.sh
bench_pkgs=(libcjson-dev python3-boto3)
missing=()
for p in "${bench_pkgs[@]}"; do
    [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" == "install ok installed" ]] ||
        missing+=("$p")
done
if ((${#missing[@]})); then
    ((EUID == 0)) || die "missing packages: ${missing[*]} (run as root: apt-get install -y ${missing[*]})"
    echo "bench: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; } ||
        die "apt-get install ${missing[*]} failed"
fi

make --no-print-directory -s all luajit

mkdir -p build/bench
if [[ ! -x build/bench/floor || bench/floor.c -nt build/bench/floor ]]; then
    gcc -std=c99 -O2 -Wall -Wextra -o build/bench/floor bench/floor.c -lcurl -lcjson ||
        die "cannot build the floor program"
fi

command -v node >/dev/null || die "node is missing (the JS SDK runner needs node >= 20)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
((node_major >= 20)) || die "node $(node -v) is too old: @aws-sdk 3.1162.0 needs node >= 20"
# npm ci only when the lockfile changed since the last install.
if [[ ! -f bench/node_modules/.package-lock.json || bench/package-lock.json -nt bench/node_modules/.package-lock.json ]]; then
    echo "bench: npm ci (AWS JS SDK 3.1162.0) into bench/node_modules"
    (cd bench && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) ||
        die "npm ci in bench/ failed"
fi

exec /usr/bin/python3 "$here/bench.py" "$@"
