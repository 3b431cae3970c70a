#!/usr/bin/env bash
# Ingest into a store that already holds many events, beside the same ingest into an empty
# one: how much a batch costs more as the store grows (the link index is what grows; see
# docs/performance.md, fifth session of 2026-12-05, "Where the time goes, measured by taking
# parts away").
#
#   scripts/bench-ingest-grown.sh [stored] [added] [runs]   # defaults 2000000 200000 3
#
# Builds the release binary, writes `stored` synthetic events (`custody gen-events --seed 7`)
# into a store once, then per run, alternating: `added` new events (`--seed 9`, so none is a
# duplicate) into a fresh copy of that store, and the same events into an empty store.
# Prints the machine, then per run: wall time, events/s, user and system CPU, peak RSS.
# The copy is flushed to disk (`sync`) before each timed run; other work on a shared machine
# still moves wall-clock figures, so compare the two columns of the same run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
STORED=${1:-2000000}
ADDED=${2:-200000}
RUNS=${3:-3}
[ -x /usr/bin/time ] || { echo "bench-ingest-grown: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
cargo build --release -q -p custody-cli
BIN=$PWD/target/release/custody
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "bench-ingest-grown: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%FT%TZ)"
"$BIN" gen-events --seed 7 "$STORED" >"$work/stored.ndjson"
"$BIN" gen-events --seed 9 "$ADDED" >"$work/added.ndjson"
mkdir "$work/grown"
/usr/bin/time -f "%e" -o "$work/time" "$BIN" --db "$work/grown/c.db" ingest "$work/stored.ndjson" >/dev/null
echo "bench-ingest-grown: the store of $STORED events built in $(cat "$work/time") s"
rm "$work/stored.ndjson"

# One timed ingest of the added events into the store at $1; prints a line labelled $2.
timed() {
    sync
    /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$BIN" --db "$1" ingest "$work/added.ndjson" >/dev/null
    read -r wall user sys rss <"$work/time"
    awk -v label="$2" -v wall="$wall" -v n="$ADDED" -v user="$user" -v sys="$sys" -v rss="$rss" \
        'BEGIN { printf "  %-22s %6.2f s  %8.0f events/s  user %5.2f s  sys %5.2f s  peak RSS %4d MB\n",
                 label, wall, n / wall, user, sys, rss / 1024 }'
}

for run in $(seq "$RUNS"); do
    echo "run $run:"
    rm -rf "$work/copy" "$work/empty"
    mkdir "$work/copy" "$work/empty"
    cp "$work"/grown/c.db* "$work/copy/"
    timed "$work/copy/c.db" "into $STORED"
    timed "$work/empty/c.db" "into an empty store"
done
