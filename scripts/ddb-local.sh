#!/usr/bin/env bash
# DynamoDB Local for lunamodb's integration tests.
#
#   scripts/ddb-local.sh fetch        download DynamoDB Local 1.25.1 into the cache (once)
#   scripts/ddb-local.sh start DIR    start it on a free loopback port; writes DIR/port, DIR/pid
#                                     and DIR/ddb-local.log; prints the endpoint URL
#   scripts/ddb-local.sh stop DIR     stop it (TERM, KILL after 5 s) and remove DIR/port, DIR/pid
#   scripts/ddb-local.sh path         print the cache directory
#
# DynamoDB Local comes from the npm tarball amplify-dynamodb-simulator@2.9.30, which ships
# AWS's unmodified DynamoDB Local under package/emulator (see
# shared/reference/dynamodb-local.md). Only that folder is extracted.
#
# Environment:
#   LUNAMODB_CACHE      cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/lunamodb)
#   LUNAMODB_DDB_TGZ    optional path to an already downloaded amplify-dynamodb-simulator-2.9.30.tgz;
#                       it is sha256-verified like a download (saves 54 MB when developing)
#   JAVA                java binary (default: java)
#   LUNAMODB_DDB_START_TIMEOUT  seconds to wait for the first ListTables 200 (default 60)
#
# Failures are LOUD (message on stderr, non-zero exit): integration tests must never be
# skipped silently.
set -euo pipefail

readonly DDB_VERSION=1.25.1
readonly NPM_SPEC=amplify-dynamodb-simulator@2.9.30
readonly TGZ_NAME=amplify-dynamodb-simulator-2.9.30.tgz
readonly TGZ_SHA256=3503ffac19f183407909fecdacf4db51ab1fdad1da7b2f177016670b2d80e4b9
readonly JAR_SHA256=454305e9bc3e6ebcca5b62569869e31563b8d7e346474e94557b2600702146c7
readonly START_TIMEOUT="${LUNAMODB_DDB_START_TIMEOUT:-60}"  # seconds until the first ListTables 200
readonly START_ATTEMPTS=5      # ports tried
readonly STOP_GRACE=5          # seconds between TERM and KILL

CACHE_ROOT="${LUNAMODB_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/lunamodb}"
DDB_DIR="$CACHE_ROOT/ddb-local/$DDB_VERSION"
JAVA="${JAVA:-java}"

die() {
    printf '\nddb-local: ERROR: %s\n' "$*" >&2
    exit 1
}
note() { printf 'ddb-local: %s\n' "$*" >&2; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

cache_ok() {
    [[ -f "$DDB_DIR/DynamoDBLocal.jar" && -d "$DDB_DIR/DynamoDBLocal_lib" ]] &&
        [[ "$(sha256_of "$DDB_DIR/DynamoDBLocal.jar")" == "$JAR_SHA256" ]]
}

cmd_fetch() {
    if cache_ok; then
        return 0
    fi
    if [[ -e "$DDB_DIR" ]]; then
        note "cache $DDB_DIR is incomplete or corrupt; downloading again"
        local junk
        junk="$(mktemp -d "$(dirname "$DDB_DIR")/.junk.XXXXXX")"
        mv -T "$DDB_DIR" "$junk/old" 2>/dev/null || true
        rm -rf "$junk"
    fi
    local parent
    parent="$(dirname "$DDB_DIR")"
    mkdir -p "$parent"
    command -v tar >/dev/null || die "tar is missing"
    # The temp dir lives next to the final one so that the last mv is an atomic rename.
    # Leftovers of fetches killed with SIGKILL (anything younger may be a concurrent fetch).
    find "$parent" -maxdepth 1 \( -name '.fetch.*' -o -name '.junk.*' \) -mmin +60 \
        -exec rm -rf {} + 2>/dev/null || true
    local tmp
    tmp="$(mktemp -d "$parent/.fetch.XXXXXX")"
    # shellcheck disable=SC2064  # expand $tmp now
    trap "rm -rf '$tmp'" EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM HUP
    local tgz
    if [[ -n "${LUNAMODB_DDB_TGZ:-}" ]]; then
        [[ -f "$LUNAMODB_DDB_TGZ" ]] || die "LUNAMODB_DDB_TGZ=$LUNAMODB_DDB_TGZ does not exist"
        note "using $LUNAMODB_DDB_TGZ"
        tgz="$LUNAMODB_DDB_TGZ"
    else
        command -v npm >/dev/null || die "npm is missing (run scripts/install-deps.sh)"
        note "downloading DynamoDB Local $DDB_VERSION ($NPM_SPEC, 54 MB) into $DDB_DIR"
        mkdir "$tmp/pack"
        # npm pack fetches only the tarball (registry integrity checked by npm); no deps, no scripts.
        if ! (cd "$tmp/pack" && npm pack "$NPM_SPEC" --ignore-scripts --no-fund --no-audit \
                --no-update-notifier --loglevel=error >"$tmp/npm.out" 2>&1); then
            cat "$tmp/npm.out" >&2
            die "npm pack $NPM_SPEC failed"
        fi
        tgz="$tmp/pack/$TGZ_NAME"
        [[ -f "$tgz" ]] || { cat "$tmp/npm.out" >&2; die "npm pack did not produce $TGZ_NAME"; }
    fi
    local got
    got="$(sha256_of "$tgz")"
    [[ "$got" == "$TGZ_SHA256" ]] ||
        die "sha256 mismatch for $TGZ_NAME: got $got, want $TGZ_SHA256"
    mkdir "$tmp/x"
    tar -xzf "$tgz" -C "$tmp/x" --no-same-owner package/emulator ||
        die "cannot extract package/emulator from $TGZ_NAME"
    local emu="$tmp/x/package/emulator"
    [[ -f "$emu/DynamoDBLocal.jar" && -d "$emu/DynamoDBLocal_lib" ]] ||
        die "$TGZ_NAME has no package/emulator/DynamoDBLocal.jar"
    got="$(sha256_of "$emu/DynamoDBLocal.jar")"
    [[ "$got" == "$JAR_SHA256" ]] ||
        die "sha256 mismatch for DynamoDBLocal.jar: got $got, want $JAR_SHA256"
    chmod -R u+rwX,go+rX "$emu"
    # Atomic install: rename(2) onto a missing (or empty) directory. If another fetch won
    # the race, its complete copy is kept and ours is thrown away.
    if ! mv -T "$emu" "$DDB_DIR" 2>/dev/null; then
        cache_ok || die "cannot install into $DDB_DIR"
    fi
    rm -rf "$tmp"
    trap - EXIT INT TERM HUP
    cache_ok || die "cache $DDB_DIR failed verification after install"
    note "installed DynamoDB Local $DDB_VERSION in $DDB_DIR"
}

now_ms() {
    local t="${EPOCHREALTIME/[.,]/}"
    echo $((t / 1000))
}

# Is something accepting connections on 127.0.0.1:$1?
port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

random_port() {
    echo $((20000 + (RANDOM * 32768 + RANDOM) % 40001))
}

# Prints the HTTP status of a signed-looking ListTables on port $1 (000 on connection errors).
probe() {
    local amzdate
    amzdate="$(date -u +%Y%m%dT%H%M%SZ)"
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X POST \
        -H 'Content-Type: application/x-amz-json-1.0' \
        -H 'X-Amz-Target: DynamoDB_20120810.ListTables' \
        -H "X-Amz-Date: $amzdate" \
        -H "Authorization: AWS4-HMAC-SHA256 Credential=lunamodbtest/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date, Signature=$(printf '0%.0s' {1..64})" \
        --data '{}' "http://127.0.0.1:$1/" 2>/dev/null || true
}

alive() {
    local pid="$1" state
    [[ -r "/proc/$pid/stat" ]] || return 1
    # A zombie (left when nobody reaps the JVM) counts as dead.
    state="$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [[ -n "$state" && "$state" != Z ]]
}

is_our_jvm() {
    local pid="$1"
    grep -qa 'DynamoDBLocal\.jar' "/proc/$pid/cmdline" 2>/dev/null
}

kill_wait() {
    local pid="$1" i
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_GRACE * 10; i++)); do
        alive "$pid" || return 0
        sleep 0.1
    done
    note "pid $pid ignored SIGTERM for ${STOP_GRACE}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        alive "$pid" || return 0
        sleep 0.1
    done
    die "pid $pid survived SIGKILL"
}

dump_log() {
    local log="$1"
    {
        printf -- '----- DynamoDB Local log (%s) -----\n' "$log"
        cat "$log" 2>/dev/null || echo "(no log)"
        printf -- '----- end of log -----\n'
    } >&2
}

cmd_start() {
    local dir="${1:-}"
    [[ -n "$dir" ]] || die "usage: $0 start DIR"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    [[ ! -f "$dir/pid" ]] || ! alive "$(cat "$dir/pid")" ||
        die "$dir/pid exists and that process is alive; stop it first"
    rm -f "$dir/port" "$dir/pid"
    cache_ok || die "DynamoDB Local is not in the cache ($DDB_DIR); run: $0 fetch"
    command -v "$JAVA" >/dev/null || die "java is missing (apt-get install openjdk-17-jre-headless)"
    command -v curl >/dev/null || die "curl is missing (apt-get install curl)"

    local log="$dir/ddb-local.log" attempt port pid t0 deadline code bindfail elapsed
    t0="$(now_ms)"
    for ((attempt = 1; attempt <= START_ATTEMPTS; attempt++)); do
        port="$(random_port)"
        while port_busy "$port"; do port="$(random_port)"; done
        : >"$log"
        # exec: $! is the JVM itself. stdio detached so that $(...) callers never hang.
        (cd "$dir" && exec "$JAVA" -Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
            "-Djava.library.path=$DDB_DIR/DynamoDBLocal_lib" -jar "$DDB_DIR/DynamoDBLocal.jar" \
            -inMemory -port "$port" -disableTelemetry) </dev/null >"$log" 2>&1 &
        pid=$!
        deadline=$(($(now_ms) + START_TIMEOUT * 1000))
        bindfail=0
        while :; do
            if grep -qiE 'Failed to bind|BindException|Address already in use' "$log"; then
                bindfail=1
                break
            fi
            if ! alive "$pid"; then
                break
            fi
            code="$(probe "$port")"
            if [[ "$code" == 200 ]]; then
                echo "$port" >"$dir/port.tmp" && mv "$dir/port.tmp" "$dir/port"
                echo "$pid" >"$dir/pid.tmp" && mv "$dir/pid.tmp" "$dir/pid"
                elapsed=$(($(now_ms) - t0))
                note "DynamoDB Local $DDB_VERSION up on http://127.0.0.1:$port (pid $pid, $((elapsed / 1000)).$(printf '%03d' $((elapsed % 1000))) s)"
                echo "http://127.0.0.1:$port"
                return 0
            fi
            if (($(now_ms) >= deadline)); then
                kill_wait "$pid" || true
                dump_log "$log"
                die "DynamoDB Local did not answer ListTables with 200 within ${START_TIMEOUT}s on port $port (last HTTP status: $code)"
            fi
            sleep 0.1
        done
        # A failed bind leaves a live JVM: kill it.
        kill_wait "$pid" || true
        if ((bindfail)); then
            note "port $port is taken (attempt $attempt/$START_ATTEMPTS)"
            continue
        fi
        dump_log "$log"
        die "DynamoDB Local exited during start-up (port $port)"
    done
    dump_log "$log"
    die "DynamoDB Local could not bind a port after $START_ATTEMPTS attempts"
}

cmd_stop() {
    local dir="${1:-}"
    [[ -n "$dir" ]] || die "usage: $0 stop DIR"
    if [[ -f "$dir/pid" ]]; then
        local pid
        pid="$(cat "$dir/pid")"
        if [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid"; then
            if is_our_jvm "$pid"; then
                kill_wait "$pid"
            else
                note "pid $pid is not DynamoDB Local any more; not killing it"
            fi
        fi
    fi
    rm -f "$dir/pid" "$dir/port" "$dir/pid.tmp" "$dir/port.tmp"
}

case "${1:-}" in
fetch) cmd_fetch ;;
start) cmd_start "${2:-}" ;;
stop) cmd_stop "${2:-}" ;;
path) echo "$DDB_DIR" ;;
*)
    echo "usage: $0 fetch | start DIR | stop DIR | path" >&2
    exit 2
    ;;
esac
