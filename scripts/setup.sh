#!/usr/bin/env bash
# Installs what the tests and the demo need, pinned, into .venv (idempotent).
# Usage: scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements-emulator
if ! cmp -s requirements/emulator.txt "$stamp" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/emulator.txt
  cp requirements/emulator.txt "$stamp"
fi
