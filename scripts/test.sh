#!/usr/bin/env bash
# The whole test suite: lints, the emulator's own tests, the template checks and analysers, the function run
# through cargo lambda, and every cargo test (unit, mocked SDK, end to end against the emulator).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets -- -D warnings
echo "== cargo deny (bans, licenses, sources; advisories need GitHub, see deny.toml)"
cargo deny --log-level error check bans licenses sources
echo "== emulator self-test"
.venv/bin/python -m unittest emulator/test_iot_emulator.py
if [ -x scripts/lint-template.sh ]; then
  echo "== template lint"
  scripts/lint-template.sh
fi
echo "== analysers (checkov, cfn-lint serverless rules, parliament)"
scripts/analyse.sh
echo "== through the Lambda runtime (cargo lambda watch + invoke)"
scripts/demo.sh --check
echo "== cargo test"
# The property tests over hostile input run this many cases each (a bounded fuzz run).
export PROPTEST_CASES=${PROPTEST_CASES:-4096}
cargo test --lib --bins --tests   # every test target; not the benchmark, and the crate has no doctests
