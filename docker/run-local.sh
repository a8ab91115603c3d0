#!/usr/bin/env bash
# The compose stack without docker: a local redis-server, the demo looping against it, and the metrics endpoint.
# Usage: bash docker/run-local.sh   (Ctrl-C stops everything). Needs redis-server and `pip install -e .`.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT_REDIS=${PORT_REDIS:-6390}
PORT_METRICS=${PORT_METRICS:-9464}
redis-server --port "$PORT_REDIS" --save '' --appendonly no --daemonize no &
REDIS_PID=$!
trap 'kill $REDIS_PID $DEMO_PID $METRICS_PID 2>/dev/null || true' EXIT
sleep 0.5
STORE="redis://127.0.0.1:$PORT_REDIS/0"
router metrics --store "$STORE" --port "$PORT_METRICS" --policy policies/demo.yaml &
METRICS_PID=$!
router demo --store "$STORE" --loop --metrics-port "${PORT_DEMO_METRICS:-9465}" &
DEMO_PID=$!
echo "metrics on http://127.0.0.1:$PORT_METRICS/metrics (Ctrl-C to stop)"
wait
