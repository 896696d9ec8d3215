#!/usr/bin/env bash
# Installs what the tests and the demo need, pinned (idempotent):
#   .venv      moto server and cargo-lambda (requirements/emulator.txt)
#   .venv-sam  aws-sam-cli and cfn-lint (requirements/sam.txt), kept apart because
#              aws-sam-cli's pins can clash with moto's
#   .venv-lint checkov, parliament and cfn-lint's serverless rules (requirements/lint.txt),
#              apart again: checkov's boto3 pin clashes with aws-sam-cli's
#   cargo-deny (cargo install, pinned)
# Usage: scripts/setup.sh          everything (the test suite)
#        scripts/setup.sh demo     only .venv (the demo)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}

# install_venv DIR REQUIREMENTS: creates DIR if needed, installs REQUIREMENTS into it unless the
# stamp file shows that exactly this list was installed already.
install_venv() {
  local venv=$1 requirements=$2
  if [ ! -x "$venv/bin/python" ]; then
    "$PYTHON" -m venv "$venv"
  fi
  local stamp
  stamp="$venv/.requirements-$(basename "$requirements" .txt)"
  if ! cmp -s "$requirements" "$stamp" 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$stamp"
  fi
}

install_venv .venv requirements/emulator.txt
[ "${1:-}" = demo ] && exit 0
install_venv .venv-sam requirements/sam.txt
install_venv .venv-lint requirements/lint.txt

# cargo-deny for the supply-chain checks (a crates.io build, about 4.5 min the first time).
CARGO_DENY_VERSION=0.20.2
if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $CARGO_DENY_VERSION"; then
  cargo install cargo-deny --locked --version "$CARGO_DENY_VERSION"
fi
