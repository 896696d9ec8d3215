#!/usr/bin/env bash
# Lints the templates offline: template.yaml with cfn-lint, then SAM's own validation with its
# linter; member.yaml (plain CloudFormation, for a StackSet) with cfn-lint.
# Needs .venv-sam (scripts/setup.sh). Exits non-zero on any finding or failure.
# Usage: scripts/lint-template.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv-sam/bin/sam ] || [ ! -x .venv-sam/bin/cfn-lint ]; then
  echo "lint-template: .venv-sam is missing: run scripts/setup.sh" >&2
  exit 1
fi

# sam validate needs a region even offline; nothing here reaches AWS.
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
# No telemetry (it could not reach the network here anyway).
export SAM_CLI_TELEMETRY=0

echo "lint-template: cfn-lint template.yaml"
.venv-sam/bin/cfn-lint template.yaml
echo "lint-template: sam validate --lint --template template.yaml"
.venv-sam/bin/sam validate --lint --template template.yaml
echo "lint-template: cfn-lint member.yaml"
.venv-sam/bin/cfn-lint member.yaml
echo "lint-template: ok"
