#!/usr/bin/env bash
# Checks what the `custody` binary itself produces -- its signed checkpoint, verifier key,
# inclusion proofs and consistency proofs over a real log -- with an independent
# implementation of C2SP tlog-checkpoint / signed-note and RFC 9162, the PyPI package
# aics-tlog. Tampered checkpoints and proofs must be rejected, so the check can fail.
#
#   scripts/custody-interop.sh [path/to/custody]     (default: cargo build --release)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

CUSTODY=${1:-}
if [ -z "$CUSTODY" ]; then
    cargo build -q --release -p custody-cli
    CUSTODY="$ROOT/target/release/custody"
fi
CUSTODY=$(realpath "$CUSTODY")
AICS=${AICS_TLOG:-}
if [ -z "$AICS" ]; then
    AICS=$("$ROOT/scripts/aics-install.sh" | tail -n 1)
fi
[ -x "$AICS" ] || { echo "custody-interop: ERROR: aics-tlog not found at '$AICS'" >&2; exit 1; }
PY="$(dirname "$AICS")/python"
[ -x "$PY" ] || PY=python3
echo "custody-interop: $("$CUSTODY" --version) against aics-tlog $("$AICS" --version)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/custody-interop.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
OUT="$WORK/out.json"
PASSED=0
c() { (cd "$WORK" && "$CUSTODY" --db "$WORK/custody.db" "$@"); }

fail() {
    echo "custody-interop: FAIL: $1" >&2
    [ -f "$OUT" ] && { echo "--- aics-tlog said:" >&2; cat "$OUT" >&2; }
    echo "custody-interop: $PASSED passed, 1 failed"
    exit 1
}
expect() { # expect ok|reject NAME ARGS...
    local want=$1 name=$2 rc=0
    shift 2
    "$AICS" "$@" >"$OUT" 2>&1 || rc=$?
    if [ "$want" = ok ]; then
        [ "$rc" -eq 0 ] && grep -q '"ok": true' "$OUT" || fail "$name: aics-tlog did not accept it (exit $rc)"
    else
        [ "$rc" -eq 1 ] && grep -q '"ok": false' "$OUT" || fail "$name: aics-tlog did not reject it (exit $rc)"
    fi
    PASSED=$((PASSED + 1))
}
field() { "$PY" -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print(v if isinstance(v,str) else json.dumps(v))' "$1" "$2"; }

# A real log: the five stories, ingested in two runs so there are two checkpoints.
c ingest --no-progress "$ROOT"/examples/01-*.ndjson "$ROOT"/examples/02-*.ndjson >/dev/null
c checkpoint > "$WORK/old.note"
OLD_SIZE=$(sed -n 2p "$WORK/old.note")
OLD_ROOT=$(sed -n 3p "$WORK/old.note")
c ingest --no-progress "$ROOT"/examples/03-*.ndjson "$ROOT"/examples/04-*.ndjson "$ROOT"/examples/05-*.ndjson >/dev/null
c checkpoint > "$WORK/cp.note"
c checkpoint --key > "$WORK/log.vkey"
ORIGIN=$(sed -n 1p "$WORK/cp.note")
SIZE=$(sed -n 2p "$WORK/cp.note")
ROOT_B64=$(sed -n 3p "$WORK/cp.note")
VKEY=$(cat "$WORK/log.vkey")

expect ok "checkpoint" verify-checkpoint --note "$WORK/cp.note" --log-key "$VKEY" --origin "$ORIGIN"
grep -q "\"size\": $SIZE," "$OUT" || fail "aics-tlog read another size"
expect ok "older checkpoint" verify-checkpoint --note "$WORK/old.note" --log-key "$VKEY" --origin "$ORIGIN"

n=0
for index in 0 1 $((SIZE / 3)) $((SIZE / 2)) $((SIZE - 2)) $((SIZE - 1)); do
    c proof --index "$index" --format json > "$WORK/p.json"
    c proof --index "$index" > "$WORK/p.txt"
    field "$WORK/p.json" leaf > "$WORK/leaf.bin"
    # `field` adds a newline; the leaf is the canonical JSON without one.
    "$PY" -c 'import sys; d=open(sys.argv[1],"rb").read(); open(sys.argv[1],"wb").write(d[:-1])' "$WORK/leaf.bin"
    expect ok "inclusion $index/$SIZE (leaf bytes, signed checkpoint)" verify-inclusion --index "$index" \
        --checkpoint "$WORK/cp.note" --log-key "$VKEY" --origin "$ORIGIN" --proof "$WORK/p.txt" --leaf "$WORK/leaf.bin"
    expect ok "inclusion $index/$SIZE (leaf hash)" verify-inclusion --index "$index" --size "$SIZE" \
        --root "$ROOT_B64" --proof "$WORK/p.txt" --leaf-hash "$(field "$WORK/p.json" leaf_hash_hex)"
    n=$((n + 1))
done
echo "custody-interop: $n inclusion proofs verified"

c proof --from "$OLD_SIZE" > "$WORK/c.txt"
expect ok "consistency $OLD_SIZE->$SIZE" verify-consistency --old-size "$OLD_SIZE" --new-size "$SIZE" \
    --old-root "$OLD_ROOT" --new-root "$ROOT_B64" --proof "$WORK/c.txt"

# Tampering must be caught by the independent verifier too.
sed "2s/.*/$((SIZE + 1))/" "$WORK/cp.note" > "$WORK/bad-size.note"
expect reject "checkpoint with a changed size" verify-checkpoint --note "$WORK/bad-size.note" --log-key "$VKEY" --origin "$ORIGIN"
"$PY" - "$WORK/p.txt" "$WORK/p-bad.txt" <<'EOF'
import base64, sys
lines = open(sys.argv[1]).read().splitlines()
h = bytearray(base64.b64decode(lines[0])); h[0] ^= 1
lines[0] = base64.b64encode(bytes(h)).decode()
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
EOF
expect reject "inclusion proof with a flipped bit" verify-inclusion --index "$((SIZE - 1))" --size "$SIZE" \
    --root "$ROOT_B64" --proof "$WORK/p-bad.txt" --leaf-hash "$(field "$WORK/p.json" leaf_hash_hex)"
sed 's/"2026/"2025/' "$WORK/leaf.bin" > "$WORK/leaf-bad.bin"
expect reject "inclusion of an altered event" verify-inclusion --index "$((SIZE - 1))" \
    --checkpoint "$WORK/cp.note" --log-key "$VKEY" --origin "$ORIGIN" --proof "$WORK/p.txt" --leaf "$WORK/leaf-bad.bin"
expect reject "consistency against another old root" verify-consistency --old-size "$OLD_SIZE" --new-size "$SIZE" \
    --old-root "$ROOT_B64" --new-root "$ROOT_B64" --proof "$WORK/c.txt"

echo "custody-interop: $PASSED passed, 0 failed"
