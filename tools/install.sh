#!/usr/bin/env bash
# Installs sedkit on a fresh Debian/Ubuntu machine, into a virtual environment:
#   - apt: sox and libsox-dev (scaper's soxbindings compiles against them) and, where the
#     interpreter lacks it, the venv module;
#   - .venv (or $SEDKIT_VENV): created if absent, then brought to exactly the versions of
#     requirements.lock (hash-checked; re-running repairs a venv that drifted);
#   - sedkit itself, editable, with its entry points (`.venv/bin/sedkit`), built without network.
# Idempotent: running it twice changes nothing. Run from anywhere; uses sudo for apt when not root.
# Why a venv: stock Debian 12 / Ubuntu 24.04 refuse `pip install` into the system Python (PEP 668).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${SEDKIT_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

apt_install() {
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "install.sh: sedkit needs Python >= 3.11; $PYTHON is $("$PYTHON" -V 2>&1)" >&2
    exit 2
fi
if ! dpkg -s sox libsox-dev >/dev/null 2>&1; then
    apt_install sox libsox-dev
fi
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt_install "python3-venv"
fi

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi
# The lock pins every package with its hashes, so this is byte-for-byte the same every time.
"$VENV/bin/python" -m pip install --quiet --require-hashes -r requirements.lock
# sedkit itself: no dependencies (all locked above), built with the locked setuptools.
"$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
"$VENV/bin/sedkit" doctor
echo "install.sh: sedkit is installed in $VENV (run it as $VENV/bin/sedkit)"
