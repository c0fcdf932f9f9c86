#!/usr/bin/env bash
# Install lunamodb's build and test dependencies from Debian 12's apt.
#
#   scripts/install-deps.sh           install what is missing (as root); silent when nothing is
#   scripts/install-deps.sh --check   only report what is missing (exit 1 if anything is)
#
# As non-root with something missing it prints the apt-get command to run and exits 1.
#
# luajit2 + libluajit2-5.1-dev (OpenResty's LuaJIT branch) are used instead of Debian's luajit
# + libluajit-5.1-dev: they provide the same /usr/bin/luajit, headers and `pkg-config luajit`,
# and they are what nginx's lua module (lua-resty-core) needs. apt replaces Debian's luajit
# with them if it is installed (see shared/reference/dynamodb-local.md §3).
set -euo pipefail

PACKAGES=(
    lua5.4 liblua5.4-dev lua-cjson lua-busted lua-socket
    libcurl4-openssl-dev libssl-dev pkg-config gcc make curl ca-certificates
    openjdk-17-jre-headless npm luarocks
    luajit2 libluajit2-5.1-dev nginx libnginx-mod-http-lua lua-resty-core
    valgrind python3 python3-botocore libclang-rt-14-dev
)

check_only=0
case "${1:-}" in
"") ;;
--check) check_only=1 ;;
-h | --help)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
*)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "install-deps: dpkg-query not found; this script supports Debian 12 (bookworm) only." >&2
    echo "install-deps: needed: ${PACKAGES[*]}" >&2
    exit 1
fi

# Virtual packages provided by installed packages, e.g. NodeSource's nodejs provides (and
# conflicts with) npm: then Debian's npm package must not be installed.
list_provided() {
    dpkg-query -W -f='${db:Status-Abbrev} ${Provides}\n' 2>/dev/null |
        awk '$1 == "ii" { sub(/^ii */, ""); n = split($0, a, /, */)
                          for (i = 1; i <= n; i++) { sub(/ .*/, "", a[i]); if (a[i] != "") print a[i] } }' |
        sort -u
}
provided="$(list_provided)"

is_present() {
    local pkg="$1"
    if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" == "install ok installed" ]]; then
        return 0
    fi
    if grep -qxF -- "$pkg" <<<"$provided"; then
        # A provider only counts for npm if it really gives us the command.
        [[ "$pkg" != npm ]] || command -v npm >/dev/null 2>&1
        return
    fi
    return 1
}

missing_list() {
    local pkg
    for pkg in "${PACKAGES[@]}"; do
        is_present "$pkg" || printf '%s\n' "$pkg"
    done
}

mapfile -t missing < <(missing_list)

if ((${#missing[@]} == 0)); then
    if ((check_only)); then
        echo "install-deps: all ${#PACKAGES[@]} packages are installed"
    fi
    exit 0
fi

if ((check_only)); then
    echo "install-deps: missing packages: ${missing[*]}"
    echo "install-deps: install them with: apt-get update && apt-get install -y ${missing[*]}"
    exit 1
fi

if ((EUID != 0)); then
    echo "install-deps: missing packages: ${missing[*]}" >&2
    echo "install-deps: run as root:" >&2
    echo "    apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
fi

for pkg in luajit libluajit-5.1-dev; do
    if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" == "install ok installed" ]]; then
        echo "install-deps: note: Debian's $pkg will be replaced by luajit2/libluajit2-5.1-dev (drop-in: same luajit binary and headers)"
    fi
done

export DEBIAN_FRONTEND=noninteractive

# apt-get, retried while another apt/dpkg holds the lock (up to 10 minutes).
apt_retry() {
    local try out rc
    for ((try = 1; try <= 120; try++)); do
        rc=0
        out="$(apt-get -o DPkg::Lock::Timeout=60 "$@" 2>&1)" || rc=$?
        if ((rc == 0)); then
            return 0
        fi
        if grep -qiE 'could not get lock|unable to acquire|is another process using it' <<<"$out"; then
            echo "install-deps: apt is locked by another process; waiting (try $try)" >&2
            sleep 5
            continue
        fi
        printf '%s\n' "$out" >&2
        return "$rc"
    done
    echo "install-deps: apt stayed locked for too long" >&2
    return 1
}

echo "install-deps: installing: ${missing[*]}"
apt_retry -q update >/dev/null
apt_retry install -y -q "${missing[@]}" >/dev/null

provided="$(list_provided)"
mapfile -t still < <(missing_list)
if ((${#still[@]} > 0)); then
    echo "install-deps: ERROR: still missing after apt-get install: ${still[*]}" >&2
    exit 1
fi
echo "install-deps: done"
