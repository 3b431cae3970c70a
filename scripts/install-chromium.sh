#!/usr/bin/env bash
# Installs Debian's `chromium` (and a font for it) when missing: the report test
# (crates/custody-cli/tests/report.rs) opens `custody report`'s page in headless Chromium and
# checks the screenshot. Uses sudo only when not already root.
set -euo pipefail

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -d /usr/share/fonts/truetype/dejavu ] || need+=(fonts-dejavu-core)
if [ "${#need[@]}" -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
else
    as_root=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q
"${as_root[@]}" apt-get install -y -q --no-install-recommends "${need[@]}"
/usr/bin/chromium --version
