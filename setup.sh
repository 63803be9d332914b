#!/usr/bin/env bash
# One-time (idempotent) set-up: a virtual environment at .venv with streamrecon installed editable,
# its test extras, and the native extension built by CMakeLists.txt. Re-running is cheap: it
# reinstalls only when pyproject.toml, CMakeLists.txt or native/ changed.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
stamp=.venv/.streamrecon-setup
want=$(cat pyproject.toml CMakeLists.txt native/* setup.sh | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! .venv/bin/python -c "import streamrecon._native" 2>/dev/null; then
  echo "setup: installing streamrecon (editable) and its dependencies into .venv" >&2
  # CPU torch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[test]"
  echo "$want" > "$stamp"
fi
