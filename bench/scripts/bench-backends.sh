#!/usr/bin/env bash
# Measures noticed end to end on each backend, one after the other in one run:
# memory, the file (-data), and Redis (with appendonly everysec, the usual
# durable setting). Each instance is started here on loopback and measured by
# the load tool (bench/) with -url, with events published by POST /notice, so every
# backend is driven the same way. docs/benchmarks.md gives the results.
#
#   bench/scripts/bench-backends.sh [STREAMS [RATES [DURATION]]]    defaults: 1000 "1000,3000" 10s
#   POST_CONNS=64 bench/scripts/bench-backends.sh ...               publishes in flight at once (default 16)
set -euo pipefail
cd "$(dirname "$0")/.."   # bench/; the product is ..

STREAMS=${1:-1000}
RATES=${2:-1000,3000}
DURATION=${3:-10s}
POST_CONNS=${POST_CONNS:-16}
command -v redis-server >/dev/null 2>&1 || { echo "bench-backends.sh: redis-server is missing (scripts/bench-deps.sh)" >&2; exit 1; }

dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

(cd .. && go build -o "$dir/noticed" ./cmd/noticed)
go build -o "$dir/bench" .
export NOTICED_JWT_SECRET=bench-backends-secret-bench-backends-secret

# free_port asks the kernel for a port nobody holds now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_ready waits for a noticed's /readyz, at most 30 s.
wait_ready() {
  for _ in $(seq 300); do
    curl -fs "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "bench-backends.sh: noticed on port $1 did not get ready" >&2
  exit 1
}

rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly yes --appendfsync everysec \
  --dir "$dir" --daemonize no >"$dir/redis.log" 2>&1 &
pids+=($!)

for backend in memory file redis; do
  port=$(free_port)
  args=(-addr "127.0.0.1:$port" -log-level warn -stream-maxlen 1000)
  case $backend in
    file) args+=(-data "$dir/noticed.db") ;;
    redis) args+=(-redis "redis://127.0.0.1:$rport/0") ;;
  esac
  "$dir/noticed" "${args[@]}" >"$dir/noticed-$backend.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  wait_ready "$port"
  echo "## backend: $backend"
  "$dir/bench" -mode load -target noticed -url "http://127.0.0.1:$port" -publish post -post-conns "$POST_CONNS" \
    -streams "$STREAMS" -rate "$RATES" -duration "$DURATION" -server-pid "$pid" | grep -E '^\| noticed|^latency|^events:|^result'
  kill "$pid"
  wait "$pid" 2>/dev/null || true
done
