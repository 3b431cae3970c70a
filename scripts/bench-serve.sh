#!/usr/bin/env bash
# Gate decisions over HTTP on loopback: `custody serve` (release build) over the example
# stories and policies, loaded by wrk (Debian package `wrk`) posting a proposed action to
# POST /v1/authorize. Every answer is a decision recorded in the log first.
#
#   scripts/bench-serve.sh [seconds] [connections]     # defaults 20 s, 16 connections
#
# Prints wrk's summary with latency percentiles, then the server's own decision metrics
# and `custody verify` of the log afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECS=${1:-20}
CONNS=${2:-16}
command -v wrk >/dev/null || { echo "bench-serve: install wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release -q -p custody-cli
BIN=target/release/custody
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cfg=examples/custody.toml
"$BIN" --db "$work/b.db" --config "$cfg" ingest --no-progress examples/*.ndjson >/dev/null
"$BIN" --db "$work/b.db" --config "$cfg" serve --listen 127.0.0.1:0 2>"$work/serve.log" &
pid=$!
addr=""
for _ in $(seq 1 100); do
    addr=$(grep -o 'listening on http://[0-9.:]*' "$work/serve.log" | sed 's|listening on http://||' || true)
    [ -n "$addr" ] && break
    sleep 0.1
done
[ -n "$addr" ] || { cat "$work/serve.log" >&2; exit 1; }
body=$(tr -d '\n' < examples/proposals/01-allow-read-inventory-secret.json | sed 's/\\/\\\\/g; s/"/\\"/g')
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = "$body"
LUA
echo "bench-serve: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); wrk -t${WRK_THREADS:-2} -c$CONNS -d${SECS}s"
curl -sf -X POST -H 'content-type: application/json' --data-binary @examples/proposals/01-allow-read-inventory-secret.json "http://$addr/v1/authorize" | head -c 120; echo
wrk -t"${WRK_THREADS:-2}" -c"$CONNS" -d"${SECS}s" --latency -s "$work/post.lua" "http://$addr/v1/authorize"
curl -sf "http://$addr/metrics" | grep -E '^custody_(decisions_total|decision_seconds_(count|sum)|log_size)'
kill -TERM "$pid"; wait "$pid" || true; pid=""
"$BIN" --db "$work/b.db" --config "$cfg" verify
