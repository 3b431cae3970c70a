#!/usr/bin/env bash
# Installs aics-tlog (PyPI, pure Python), an independent C2SP/RFC 9162 verifier that
# scripts/aics-interop.sh checks custody-merkle against, into a virtualenv.
#
#   scripts/aics-install.sh            # venv at ${AICS_VENV:-/tmp/aics-venv}
#   AICS_PYTHON=/path/to/python3 scripts/aics-install.sh   # use this interpreter
#
# aics-tlog declares Python >= 3.12. A Python 3.12+ is used when one can be found (on PATH, or
# installed by pyenv); otherwise the machine's python3 (3.11 on the standard Debian image) gets
# `pip install --ignore-requires-python`, and the install only counts if `aics-tlog --help`
# then runs. An existing venv whose aics-tlog reports the wanted version is reused.
# Progress goes to stderr; the last line on stdout is the path of the aics-tlog executable.
# Exits non-zero, saying why, when it cannot install.
set -euo pipefail

VENV=${AICS_VENV:-/tmp/aics-venv}
VERSION=${AICS_TLOG_VERSION:-0.2.1}
PYENV_DIR=${PYENV_ROOT:-$HOME/.pyenv}

log() { echo "aics-install: $*" >&2; }
die() {
    echo "aics-install: ERROR: $*" >&2
    exit 1
}

# 0 when $1 is a runnable Python interpreter of at least version $2.$3.
python_at_least() {
    "$1" -c "import sys; sys.exit(0 if sys.version_info >= ($2, $3) else 1)" >/dev/null 2>&1
}

# 0 when the venv's aics-tlog runs and reports $VERSION.
venv_ok() {
    [ -x "$VENV/bin/aics-tlog" ] || return 1
    local got
    got=$("$VENV/bin/aics-tlog" --version 2>/dev/null) || return 1
    [ "$got" = "$VERSION" ] || return 1
    "$VENV/bin/aics-tlog" --help >/dev/null 2>&1
}

# The first Python >= 3.12 found, or nothing.
find_python312() {
    local candidates=() c
    for c in python3.14 python3.13 python3.12 python3; do
        if command -v "$c" >/dev/null 2>&1; then candidates+=("$(command -v "$c")"); fi
    done
    # pyenv-installed versions, newest first; their shims only work for the selected version.
    for c in $(ls -d "$PYENV_DIR"/versions/3.* 2>/dev/null | sort -V -r); do
        candidates+=("$c/bin/python3")
    done
    for c in /usr/local/bin/python3.1[2-9] /usr/bin/python3.1[2-9]; do
        [ -e "$c" ] && candidates+=("$c")
    done
    for c in "${candidates[@]}"; do
        if python_at_least "$c" 3 12; then
            echo "$c"
            return 0
        fi
    done
    return 0
}

# Creates the venv with interpreter $1, installing Debian's python3-venv once if need be.
make_venv() {
    local py=$1
    rm -rf "$VENV"
    if "$py" -m venv "$VENV" >&2; then return 0; fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "venv failed; installing Debian's python3-venv and retrying"
        apt-get update -qq >&2 || true
        local minor
        minor=$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv "python${minor}-venv" >&2 ||
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2 || true
        rm -rf "$VENV"
        "$py" -m venv "$VENV" >&2 && return 0
    fi
    return 1
}

if venv_ok; then
    log "reusing $VENV (aics-tlog $VERSION)"
    echo "$VENV/bin/aics-tlog"
    exit 0
fi

PY=${AICS_PYTHON:-$(find_python312)}
if [ -n "$PY" ] && python_at_least "$PY" 3 12; then
    log "using $PY ($("$PY" --version 2>&1)) for a venv at $VENV"
    make_venv "$PY" || die "could not create a virtualenv at $VENV with $PY"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "aics-tlog==$VERSION" >&2 ||
        die "pip could not install aics-tlog==$VERSION with $PY"
else
    PY=${PY:-$(command -v python3 || true)}
    [ -n "$PY" ] || die "no python3 on PATH, and no Python >= 3.12 found"
    python_at_least "$PY" 3 8 || die "$PY does not run, or is older than 3.8"
    log "no Python >= 3.12 to use; trying $PY ($("$PY" --version 2>&1)) with --ignore-requires-python"
    make_venv "$PY" || die "could not create a virtualenv at $VENV with $PY (install python3-venv)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --ignore-requires-python \
        "aics-tlog==$VERSION" >&2 ||
        die "pip could not install aics-tlog==$VERSION with $PY"
fi

venv_ok || {
    "$VENV/bin/aics-tlog" --help >&2 || true
    die "aics-tlog was installed in $VENV but does not run (see above)"
}
log "installed aics-tlog $VERSION in $VENV"
echo "$VENV/bin/aics-tlog"
