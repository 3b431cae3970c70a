#!/usr/bin/env bash
# CloudTrail ingest throughput (issue 5): the real invictus-ir CloudTrail records in
# tests/data/realdata replicated to N records (default 100,000), each with a unique eventID,
# written as one `{"Records":[...]}` document (the shape CloudTrail delivers), then ingested
# by the release `custody ingest` (format auto-detected) into a fresh SQLite store.
#
#   scripts/bench-cloudtrail.sh [records] [runs]     # defaults 100000 records, 3 runs
#   SHAPE=ndjson scripts/bench-cloudtrail.sh          # the same records, one per line
#
# Prints the machine (cores, CPU model, load average), then per run: records/s, events/s,
# wall time, user+system CPU and peak RSS (`/usr/bin/time -v`). Other builds on a shared
# machine move wall-clock figures: read them beside the load average printed with them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N=${1:-100000}
RUNS=${2:-3}
SHAPE=${SHAPE:-records}
[ -x /usr/bin/time ] || { echo "bench-cloudtrail: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
cargo build --release -q -p custody-cli
BIN=$PWD/target/release/custody
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
input="$work/cloudtrail-$N.json"
python3 - "$N" "$SHAPE" "$input" <<'PY'
import glob, json, sys
n, shape, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
records = []
for path in sorted(glob.glob("tests/data/realdata/invictus-ir-aws_dataset/CloudTrail/*.json")):
    with open(path) as f:
        records.extend(json.load(f)["Records"])
if not records:
    sys.exit("bench-cloudtrail: no invictus-ir CloudTrail records found")
with open(out, "w") as f:
    if shape == "records":
        f.write('{"Records":[')
    for i in range(n):
        r = dict(records[i % len(records)])
        # Unique and of the usual UUID shape, so every record is a new event.
        r["eventID"] = "%08x-0000-4000-8000-%012x" % (i // len(records), i)
        text = json.dumps(r, separators=(",", ":"))
        if shape == "records":
            f.write(("," if i else "") + text)
        else:
            f.write(text + "\n")
    if shape == "records":
        f.write("]}\n")
print(f"bench-cloudtrail: {n} records ({len(records)} distinct real records replicated), shape {shape}")
PY
bytes=$(stat -c %s "$input")
echo "bench-cloudtrail: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); input $((bytes / 1024 / 1024)) MiB ($((bytes / N)) bytes/record); $(date -u +%FT%TZ)"
for run in $(seq 1 "$RUNS"); do
    rm -f "$work"/b.db*
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    /usr/bin/time -v -o "$work/time.txt" \
        "$BIN" --db "$work/b.db" --format json ingest --no-progress "$input" >"$work/out.json"
    python3 - "$N" "$work/out.json" "$work/time.txt" "$run" "$load" <<'PY'
import json, re, sys
n, out, timing, run, load = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
summary = json.load(open(out))
t = open(timing).read()
def field(name):
    return re.search(re.escape(name) + r":\s*(\S+)", t).group(1)
wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)")
parts = [float(p) for p in wall.split(":")]
secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
rss = int(field("Maximum resident set size (kbytes)")) / 1024
events = summary["accepted"] + summary["duplicates"]
print(f"run {run}: {n / secs:,.0f} records/s, {events / secs:,.0f} events/s "
      f"({summary['accepted']} accepted, {summary['quarantined']} quarantined; "
      f"{secs:.2f} s wall, {cpu:.2f} s CPU, peak RSS {rss:.0f} MB; load before {load})")
PY
done
