#!/usr/bin/env bash
# The static analysers, offline: checkov on the templates (template.yaml, member.yaml) and on the
# IAM policy of policies/, cfn-lint's serverless rules on the templates, parliament on every
# policy document of the templates (scripts/iam_documents.py renders them) and of policies/. Accepted findings stay in
# each tool's own list, with a reason: .checkov.baseline, .cfnlintrc, .parliament/*.yaml.
# Needs .venv-lint (scripts/setup.sh). Exits non-zero on any other finding or failure.
# Usage: scripts/analyse.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bin=.venv-lint/bin
for tool in checkov cfn-lint parliament; do
  if [ ! -x "$bin/$tool" ]; then
    echo "analyse: .venv-lint has no $tool: run scripts/setup.sh" >&2
    exit 1
  fi
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# checkov asks PyPI for a newer version and the Prisma Cloud platform for check metadata unless
# told not to (.checkov.yaml has skip-download as well).
export CKV_SKIP_PACKAGE_UPDATE_CHECK=true BC_SKIP_MAPPING=TRUE

"$bin/python" scripts/iam_documents.py "$work" >/dev/null

# step NAME COMMAND...: runs COMMAND, says how long it took.
step() {
  local name=$1 start=$SECONDS
  shift
  echo "analyse: $name"
  "$@"
  echo "analyse: $name: ok ($((SECONDS - start)) s)"
}

# checkov's IAM checks read IAM resources of a template, so the IAM policy of policies/ goes in
# as a managed policy of a generated one; its json framework has no built-in checks.
step "checkov (template.yaml, member.yaml, policies/ as managed policies)" \
  "$bin/checkov" --config-file .checkov.yaml -f template.yaml -f member.yaml \
  -f "$work/policies.template.json"

step "cfn-lint serverless rules (template.yaml, member.yaml)" \
  "$bin/cfn-lint" -a cfn_lint_serverless.rules -- template.yaml member.yaml

# parliament, one kind of document at a time (scripts/iam_documents.py sorts them), each kind
# with its accepted findings in .parliament/<kind>.yaml if it has any. Its stdin is closed off:
# with one of its own it would wait for a policy there. The permissive sample is flagged on
# purpose, see below.
parliament_kind() {
  local kind=$1 config=()
  [ -f ".parliament/$kind.yaml" ] && config=(--config ".parliament/$kind.yaml")
  "$bin/parliament" "${config[@]}" --directory "$work/$kind" \
    --exclude_pattern '.*/permissive-sample\.json$' </dev/null
}
for kind in identity trust resource key iot; do
  if [ -d "$work/$kind" ]; then
    step "parliament, $kind documents" parliament_kind "$kind"
  fi
done

# The permissive sample is what Device Defender flags: parliament, with the IoT policies'
# ignores, must flag it too, or it has stopped looking (or an ignore has grown too broad).
if "$bin/parliament" --config .parliament/iot.yaml --json \
    --files "$work/iot/permissive-sample.json" </dev/null >"$work/permissive.json"; then
  echo "analyse: parliament found nothing in policies/permissive-sample.json" >&2
  exit 1
fi
if ! grep -q '"issue": "RESOURCE_STAR"' "$work/permissive.json"; then
  cat "$work/permissive.json" >&2
  echo "analyse: parliament did not flag Resource \"*\" in policies/permissive-sample.json" >&2
  exit 1
fi
echo "analyse: parliament flags policies/permissive-sample.json (Resource \"*\"), as it should"
echo "analyse: ok"
