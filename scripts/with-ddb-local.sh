#!/usr/bin/env bash
# Run a command with a private DynamoDB Local:
#
#   scripts/with-ddb-local.sh CMD ARGS...
#
# Fetches DynamoDB Local (cached), starts it on a free loopback port in a temp dir, exports
# LUNAMODB_TEST_ENDPOINT=http://127.0.0.1:PORT, runs the command, always stops the server
# (also on Ctrl-C / TERM) and exits with the command's status. If DynamoDB Local cannot be
# fetched or started, it fails loudly and the command is not run.
set -euo pipefail

if (($# == 0)); then
    echo "usage: $0 CMD ARGS..." >&2
    exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ddb="$here/ddb-local.sh"

"$ddb" fetch

tmpdir="$(mktemp -d "${TMPDIR:-/tmp}/lunamodb-ddb.XXXXXX")"
# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
    "$ddb" stop "$tmpdir" || true
    rm -rf "$tmpdir"
}
child=
# shellcheck disable=SC2317  # invoked by the trap
on_signal() {
    # Forward the signal as TERM (a background child of a non-interactive shell ignores
    # SIGINT), wait for the command, then stop the server through the EXIT trap.
    if [[ -n "$child" ]]; then
        kill -TERM "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
    exit "$1"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
trap 'on_signal 129' HUP

"$ddb" start "$tmpdir" >/dev/null
LUNAMODB_TEST_ENDPOINT="http://127.0.0.1:$(cat "$tmpdir/port")"
export LUNAMODB_TEST_ENDPOINT

# Run the command in the background and wait for it, so that a TERM sent to this script is
# handled at once instead of after the command ends. '<&0' keeps our stdin (bash would
# otherwise give a background command /dev/null).
status=0
"$@" <&0 &
child=$!
wait "$child" || status=$?
child=
exit "$status"
