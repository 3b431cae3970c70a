#!/usr/bin/env bash
# The project's test command (README): formatting, lints, every test, and the check of
# Custody's checkpoints and proofs by an independent implementation (aics-tlog).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "== cargo test"
cargo test --workspace --all-features
echo "== third-party checks (aics-tlog)"
cargo build -q -p custody-cli
bash scripts/aics-interop.sh
bash scripts/custody-interop.sh target/debug/custody
