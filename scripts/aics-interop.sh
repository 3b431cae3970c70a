#!/usr/bin/env bash
# Interop check of custody-merkle against aics-tlog, an independent Python implementation of
# C2SP signed-note / tlog-checkpoint and the RFC 9162 proof verifiers.
#
#   scripts/aics-interop.sh            # installs aics-tlog if needed (scripts/aics-install.sh)
#   AICS_TLOG=/path/to/aics-tlog scripts/aics-interop.sh
#
# 1. `cargo run --example interop_fixture` writes checkpoints (signed with a fixed test key),
#    inclusion and consistency proofs for a 37-leaf tree, and a manifest.
# 2. aics-tlog must ACCEPT every checkpoint (with the origin), every inclusion proof (by raw
#    leaf, by leaf hash, and against the signed checkpoint) and every consistency proof.
# 3. aics-tlog must REJECT tampered inputs (a changed checkpoint body, a flipped signature
#    bit, the wrong key, the wrong origin, a flipped proof bit, the wrong leaf, swapped roots),
#    with exit status 1 and a verification error, so this check can fail.
# 4. The other way round: a checkpoint and proofs made by aics-tlog's Python API must verify
#    with custody-merkle (`--example interop_verify`) and equal the proofs it builds itself.
# Stops at the first failure with exit 1; ends with "aics-interop: N passed, 0 failed".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

AICS=${AICS_TLOG:-}
if [ -z "$AICS" ]; then
    AICS=$("$ROOT/scripts/aics-install.sh" | tail -n 1)
fi
[ -x "$AICS" ] || { echo "aics-interop: ERROR: aics-tlog not found at '$AICS'" >&2; exit 1; }
PY="$(dirname "$AICS")/python"
[ -x "$PY" ] || PY=python3
echo "aics-interop: using $AICS ($("$AICS" --version))"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/aics-interop.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
FX="$WORK/fixture"
# AICS_CARGO_DIR: run cargo from another checkout or workspace of this crate (default: here).
(cd "${AICS_CARGO_DIR:-$ROOT}" && cargo run -q -p custody-merkle --example interop_fixture -- "$FX")

ORIGIN=$(cat "$FX/origin.txt")
VKEY=$(cat "$FX/log.vkey")
PASSED=0
OUT="$WORK/out.json"

fail() {
    echo "aics-interop: FAIL: $1" >&2
    [ -f "$OUT" ] && { echo "--- aics-tlog said:" >&2; cat "$OUT" >&2; }
    echo "aics-interop: $PASSED passed, 1 failed"
    exit 1
}

# expect_ok NAME CMD...: aics-tlog exits 0 and reports "ok": true.
expect_ok() {
    local name=$1
    shift
    local rc=0
    "$AICS" "$@" >"$OUT" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || fail "$name: expected acceptance, exit status $rc"
    grep -q '"ok": true' "$OUT" || fail "$name: exit 0 but no \"ok\": true"
    PASSED=$((PASSED + 1))
}

# expect_reject NAME PATTERN CMD...: aics-tlog exits 1 (not 2: a usage error proves nothing),
# reports "ok": false, and its error matches PATTERN (an extended regexp).
expect_reject() {
    local name=$1 pattern=$2
    shift 2
    local rc=0
    "$AICS" "$@" >"$OUT" 2>&1 || rc=$?
    [ "$rc" -eq 1 ] || fail "$name: expected rejection (exit 1), got exit status $rc"
    grep -q '"ok": false' "$OUT" || fail "$name: exit 1 but no \"ok\": false"
    grep -Eq "$pattern" "$OUT" || fail "$name: rejected, but not for the expected reason /$pattern/"
    echo "aics-interop: rejected as expected: $name: $(sed -n 's/.*"error": "\([^"]*\)".*/\1/p' "$OUT")"
    PASSED=$((PASSED + 1))
}

# The manifest as tab-separated rows, read with Python's json (no jq needed).
rows() {
    "$PY" - "$FX/manifest.json" "$1" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
kind = sys.argv[2]
for it in m[kind]:
    if kind == "checkpoints":
        print(it["size"], it["root"], it["note"], sep="\t")
    elif kind == "inclusion":
        print(it["index"], it["size"], it["root"], it["leaf"], it["leaf_hash"], it["proof"], sep="\t")
    else:
        print(it["old_size"], it["new_size"], it["old_root"], it["new_root"], it["proof"], sep="\t")
EOF
}

# --- accepted: checkpoints -------------------------------------------------------------------
n=0
while IFS=$'\t' read -r size root note; do
    expect_ok "checkpoint size $size" verify-checkpoint --note "$FX/$note" --log-key "$VKEY" --origin "$ORIGIN"
    grep -q "\"size\": $size," "$OUT" || fail "checkpoint size $size: aics-tlog read another size"
    grep -q "\"root\": \"$root\"" "$OUT" || fail "checkpoint size $size: aics-tlog read another root"
    n=$((n + 1))
done < <(rows checkpoints)
[ "$n" -gt 0 ] || fail "no checkpoints in the manifest"
echo "aics-interop: $n checkpoints verified"

# --- accepted: inclusion proofs --------------------------------------------------------------
n=0
while IFS=$'\t' read -r index size root leaf leaf_hash proof; do
    if [ $((n % 2)) -eq 0 ]; then
        expect_ok "inclusion $index/$size (leaf data)" verify-inclusion --index "$index" --size "$size" \
            --root "$root" --proof "$FX/$proof" --leaf "$FX/$leaf"
    else
        expect_ok "inclusion $index/$size (leaf hash)" verify-inclusion --index "$index" --size "$size" \
            --root "$root" --proof "$FX/$proof" --leaf-hash "$leaf_hash"
    fi
    if [ "$size" -eq 37 ]; then
        # Against the signed checkpoint itself: signature, origin and proof in one go.
        expect_ok "inclusion $index/$size (signed checkpoint)" verify-inclusion --index "$index" \
            --checkpoint "$FX/checkpoint.note" --log-key "$VKEY" --origin "$ORIGIN" \
            --proof "$FX/$proof" --leaf "$FX/$leaf"
        grep -q '"checkpoint_verified": true' "$OUT" || fail "inclusion $index/37: checkpoint not verified"
    fi
    n=$((n + 1))
done < <(rows inclusion)
[ "$n" -gt 0 ] || fail "no inclusion proofs in the manifest"
echo "aics-interop: $n inclusion proofs verified"

# --- accepted: consistency proofs ------------------------------------------------------------
n=0
while IFS=$'\t' read -r old new old_root new_root proof; do
    expect_ok "consistency $old->$new" verify-consistency --old-size "$old" --new-size "$new" \
        --old-root "$old_root" --new-root "$new_root" --proof "$FX/$proof"
    n=$((n + 1))
done < <(rows consistency)
[ "$n" -gt 0 ] || fail "no consistency proofs in the manifest"
echo "aics-interop: $n consistency proofs verified"

# --- rejected: tampered inputs ---------------------------------------------------------------
T="$WORK/tampered"
mkdir -p "$T"
ROOT37=$(tr -d '\n' <"$FX/root.b64")
ROOT17=$(tr -d '\n' <"$FX/roots/17.b64")

# Flip bit $3 of hash line $2 (1-based) of proof file $1 into $4; keeps canonical base64.
flip_proof() {
    "$PY" - "$@" <<'EOF'
import base64, sys
src, line, bit, dst = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
lines = open(src).read().splitlines()
h = bytearray(base64.b64decode(lines[line - 1]))
h[bit // 8] ^= 1 << (bit % 8)
lines[line - 1] = base64.b64encode(bytes(h)).decode()
open(dst, "w").write("".join(l + "\n" for l in lines))
EOF
}

# The body says 38 entries, the signature is over 37.
sed '2s/^37$/38/' "$FX/checkpoint.note" >"$T/size.note"
cmp -s "$FX/checkpoint.note" "$T/size.note" && fail "could not tamper with the checkpoint size"
expect_reject "checkpoint with a changed size" "failed verification|signature" \
    verify-checkpoint --note "$T/size.note" --log-key "$VKEY" --origin "$ORIGIN"

# One bit of the signature flipped (past the 4-byte key id).
"$PY" - "$FX/checkpoint.note" "$T/sig.note" <<'EOF'
import base64, sys
text = open(sys.argv[1], encoding="utf-8").read()
body, sigs = text.rsplit("\n\n", 1)
dash, name, blob = sigs.rstrip("\n").split(" ")
raw = bytearray(base64.b64decode(blob))
raw[20] ^= 0x01
open(sys.argv[2], "w", encoding="utf-8").write(f"{body}\n\n{dash} {name} {base64.b64encode(bytes(raw)).decode()}\n")
EOF
expect_reject "checkpoint with a flipped signature bit" "failed verification|signature" \
    verify-checkpoint --note "$T/sig.note" --log-key "$VKEY" --origin "$ORIGIN"

# A different key under the same name (its key id differs, so its line is ignored).
OTHER_VKEY=$(cat "$FX/other.vkey")
expect_reject "checkpoint under another key" "no signature from log key|signature" \
    verify-checkpoint --note "$FX/checkpoint.note" --log-key "$OTHER_VKEY" --origin "$ORIGIN"

expect_reject "checkpoint for another origin" "origin mismatch" \
    verify-checkpoint --note "$FX/checkpoint.note" --log-key "$VKEY" --origin "other.example/log"

# Inclusion: a flipped proof bit, the wrong leaf, and a checkpoint whose body was changed.
flip_proof "$FX/inclusion/37-5.proof" 3 77 "$T/incl.proof"
expect_reject "inclusion proof with a flipped bit" "does not verify" \
    verify-inclusion --index 5 --size 37 --root "$ROOT37" --proof "$T/incl.proof" --leaf "$FX/leaves/5.bin"
expect_reject "inclusion proof for the wrong leaf" "does not verify" \
    verify-inclusion --index 5 --size 37 --root "$ROOT37" --proof "$FX/inclusion/37-5.proof" --leaf "$FX/leaves/6.bin"
expect_reject "inclusion against a tampered checkpoint" "failed verification|signature" \
    verify-inclusion --index 5 --checkpoint "$T/size.note" --log-key "$VKEY" --origin "$ORIGIN" \
    --proof "$FX/inclusion/37-5.proof" --leaf "$FX/leaves/5.bin"

# Consistency: a flipped proof bit, and the roots swapped.
flip_proof "$FX/consistency/17-37.proof" 1 200 "$T/cons.proof"
expect_reject "consistency proof with a flipped bit" "consistency proof does not verify" \
    verify-consistency --old-size 17 --new-size 37 --old-root "$ROOT17" --new-root "$ROOT37" --proof "$T/cons.proof"
expect_reject "consistency proof with swapped roots" "consistency proof does not verify" \
    verify-consistency --old-size 17 --new-size 37 --old-root "$ROOT37" --new-root "$ROOT17" \
    --proof "$FX/consistency/17-37.proof"

# --- the other direction: aics-tlog's own output, checked by custody-merkle -------------------
# aics-tlog's Python API signs a checkpoint and builds proofs over the same kind of leaves;
# examples/interop_verify.rs must verify them, find them identical to its own proofs, and
# reject bit-flipped copies.
REV="$WORK/reverse"
rm -f "$OUT"
"$PY" - "$REV" <<'EOF'
import base64, json, os, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from aics_tlog import (Checkpoint, MerkleTree, format_vkey, leaf_hash, sign_checkpoint,
                       vkey_from_ed25519)
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
origin, n = "aics.example/reverse", 37
leaves = [f"leaf-{i}\n".encode() for i in range(n)]
tree = MerkleTree(leaves)
key = Ed25519PrivateKey.from_private_bytes(bytes([0x2C]) * 32)
note = sign_checkpoint(Checkpoint(origin, n, tree.root()), key, origin)
open(os.path.join(out, "checkpoint.note"), "wb").write(note.to_bytes())
vkey = format_vkey(vkey_from_ed25519(origin, key.public_key()))
open(os.path.join(out, "log.vkey"), "w").write(vkey + "\n")
b64 = lambda b: base64.b64encode(b).decode()
sizes = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 32, 33, 37]
inclusion = [
    {"index": i, "size": s, "root": b64(tree.root(s)), "leaf_hash": leaf_hash(leaves[i]).hex(),
     "proof": [b64(p) for p in tree.inclusion_proof(i, s)]}
    for s in sizes for i in range(s)
]
consistency = [
    {"old_size": m, "new_size": s, "old_root": b64(tree.root(m)), "new_root": b64(tree.root(s)),
     "proof": [b64(p) for p in tree.consistency_proof(m, s)]}
    for s in sizes for m in range(1, s + 1)
]
json.dump({"origin": origin, "size": n, "inclusion": inclusion, "consistency": consistency},
          open(os.path.join(out, "proofs.json"), "w"))
print(f"aics-interop: aics-tlog wrote a checkpoint, {len(inclusion)} inclusion and "
      f"{len(consistency)} consistency proofs")
EOF
(cd "${AICS_CARGO_DIR:-$ROOT}" && cargo run -q -p custody-merkle --example interop_verify -- "$REV") ||
    fail "custody-merkle did not accept aics-tlog's checkpoint and proofs"
PASSED=$((PASSED + 1))

echo "aics-interop: custody-merkle output checked by aics-tlog $("$AICS" --version)"
echo "aics-interop: $PASSED passed, 0 failed"
