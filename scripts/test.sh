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
echo "== SARIF against the OASIS schema"
cargo build -q -p custody-cli
sarif_dir=$(mktemp -d)
target/debug/custody --db "$sarif_dir/c.db" --config examples/custody.toml ingest examples/*.ndjson >/dev/null
target/debug/custody --db "$sarif_dir/c.db" --config examples/custody.toml findings --format sarif >"$sarif_dir/f.sarif"
python3 scripts/check-sarif.py "$sarif_dir/f.sarif"
rm -rf "$sarif_dir"
echo "== third-party checks (aics-tlog)"
bash scripts/aics-interop.sh
bash scripts/custody-interop.sh target/debug/custody
echo "== OpenTelemetry SDK -> custody serve (OTLP/HTTP protobuf)"
bash scripts/otel-sdk-check.sh target/debug/custody
