#!/usr/bin/env bash
# The function's main job, locally: a local IoT endpoint with one in-scope and one out-of-scope
# permissive policy (a finding each) and a notification topic, the function under
# `cargo lambda watch`, invoked with events/audit-non-compliant.json, then undone with
# events/rollback.json. Prints each policy before and after each step, the reports and the
# notifications that arrived.
# Usage: scripts/demo.sh [--check]   (--check: fail unless each end state is the expected one)
set -euo pipefail
cd "$(dirname "$0")/.."
check=false
[ "${1:-}" = "--check" ] && check=true
# --check STATE for demo_iot.py when checking.
expect() { if $check; then echo "--check $1"; fi; }

scripts/setup.sh demo
export PATH="$PWD/.venv/bin:$PATH"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

echo "== starting the local IoT endpoint"
setsid python emulator/iot_emulator.py --port 0 --port-file "$work/url" >"$work/emulator.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/url" ] && break; sleep 0.2; done
[ -s "$work/url" ] || { cat "$work/emulator.log"; echo "the IoT emulator did not start" >&2; exit 1; }
url=$(cat "$work/url")
echo "   $url"

topic=$(python scripts/demo_iot.py seed "$url" | tail -1)
echo "   notifications go to $topic"
echo "== before"
python scripts/demo_iot.py show "$url"

echo "== building and starting the function under cargo lambda watch"
cargo build --quiet
port=$(free_port)
AWS_ENDPOINT_URL="$url" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo \
  TARGET_POLICY_PREFIX=WS_AUDIT_ NOTIFICATION_TOPIC_ARN="$topic" RUST_LOG=${RUST_LOG:-info} \
  setsid cargo lambda watch --invoke-port "$port" >"$work/watch.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 150); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.2
done

echo "== invoking with events/audit-non-compliant.json"
if ! cargo lambda invoke iot-audit-remediator --invoke-port "$port" \
    --data-file events/audit-non-compliant.json >"$work/report.json"; then
  cat "$work/watch.log"
  exit 1
fi
python -m json.tool "$work/report.json"
echo "== function log"
grep -E "policy remediated|finding skipped|audit record done" "$work/watch.log" || true

echo "== after"
# shellcheck disable=SC2046
python scripts/demo_iot.py show "$url" $(expect remediated)
if $check; then
  python - "$work/report.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
totals = report["totals"]
assert totals["remediated"] == 1 and totals["failed"] == 0, totals
assert totals["skippedByReason"] == {"out_of_scope": 1}, totals
print("demo check passed: 1 remediated, 1 out of scope")
PY
fi
echo "== the notification that arrived"
# shellcheck disable=SC2046
python scripts/demo_iot.py notifications "$url" $(expect audit)
# The metrics: one EMF object on its own stdout line per invocation.
grep -m1 '"_aws"' "$work/watch.log" || { $check && { echo "no EMF metrics line" >&2; exit 1; }; true; }

echo "== rolling the change back with events/rollback.json"
if ! cargo lambda invoke iot-audit-remediator --invoke-port "$port" \
    --data-file events/rollback.json >"$work/rollback.json"; then
  cat "$work/watch.log"
  exit 1
fi
python -m json.tool "$work/rollback.json"
echo "== after the rollback"
# shellcheck disable=SC2046
python scripts/demo_iot.py show "$url" $(expect rolled-back)
echo "== the notification that arrived"
# shellcheck disable=SC2046
python scripts/demo_iot.py notifications "$url" $(expect rollback)
if $check; then echo "demo check passed: rolled back"; fi
