#!/usr/bin/env bash
# Regenerates requirements.lock from pyproject.toml (all extras the README's path installs).
# One line to refresh the lock:   bash tools/lock.sh
# The lock is resolved for CPython 3.11 on x86_64 Linux (manylinux_2_28), the machines sedkit is
# tested on, with hashes, by uv (pinned here so that two refreshes resolve the same way).
# After refreshing: bash tools/install.sh && .venv/bin/python -m pytest -q, then commit both files.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION="0.13.9"
TOOL_VENV="$(mktemp -d)/uv"
trap 'rm -rf "$(dirname "$TOOL_VENV")"' EXIT
python3 -m venv "$TOOL_VENV"
"$TOOL_VENV/bin/python" -m pip install --quiet "uv==$UV_VERSION"
"$TOOL_VENV/bin/uv" pip compile pyproject.toml \
    --extra dev --extra tensorboard \
    --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --generate-hashes --custom-compile-command "bash tools/lock.sh" \
    -o requirements.lock
echo "requirements.lock: $(grep -c '^[a-z]' requirements.lock) packages"
