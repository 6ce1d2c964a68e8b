#!/usr/bin/env bash
# `make lock`: regenerate requirements-dev.lock (the project and its dev tools) and
# requirements.lock (the services only, the image's) from pyproject.toml's pins, every
# dependency direct and indirect pinned with its hashes (uv pip compile). Run it after changing
# pyproject.toml's dependencies, and commit the lock files with the change; `make setup` refuses
# a lock that does not pin what pyproject.toml pins (tools/lockcheck.py).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
python="${PYTHON:-python3}"
venv=.venv
uv_pin="$(sed -n 's/^ *"\(uv==[^"]*\)".*/\1/p' pyproject.toml | head -1)"
[ -n "$uv_pin" ] || { echo "[lock] ERROR: pyproject.toml pins no uv (dev dependency)" >&2; exit 1; }
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
if ! "$venv/bin/uv" --version 2>/dev/null | grep -q " ${uv_pin#uv==}"; then
  echo "[lock] installing $uv_pin into $venv"
  "$venv/bin/pip" install --disable-pip-version-check -q "$uv_pin"
fi
compile=("$venv/bin/uv" pip compile pyproject.toml --generate-hashes --python-version 3.11
  --python-platform x86_64-unknown-linux-gnu --no-header --quiet)
echo "[lock] resolving pyproject.toml with its dev extra -> requirements-dev.lock"
"${compile[@]}" --extra dev -o requirements-dev.lock
echo "[lock] the services' dependencies, at the same versions -> requirements.lock"
"${compile[@]}" -c requirements-dev.lock -o requirements.lock
"$venv/bin/python" -m tools.lockcheck
echo "[lock] $(grep -c '^[a-z0-9]' requirements-dev.lock) packages in requirements-dev.lock, $(grep -c '^[a-z0-9]' requirements.lock) in requirements.lock"
