#!/usr/bin/env bash
# Runs the measurements of docs/benchmarks.md, noticed beside Centrifugo,
# Nchan and the floor, one run after the other (each run starts its own
# redis-server and server), then draws docs/bench-latency.png and
# docs/bench-memory.png. Run it on a quiet machine: everything shares its
# cores. The figures to read are ratios between runs of one invocation:
# load and batch run PAIRS rounds, the order reversed every other round.
#
#   bench/scripts/bench-suite.sh                 all of it (about 90 minutes)
#   SUITE="load batch" bench/scripts/bench-suite.sh   only some
#
# Steps (SUITE): load batch sweep memory storm soak. Knobs: STREAMS (10000),
# PAIRS (3), RATES (2000,5000,10000), BATCH_RATES (10000,20000,40000),
# DURATION (20s), SOAK (10m), SERVER_PROCS
# (0: each server's default; N: GOMAXPROCS=N for noticed, N Nchan workers),
# OUT (a new directory under $TMPDIR or /tmp). Each step's report goes to OUT/<step>.txt,
# every run's row to OUT/runs.csv.
set -euo pipefail
cd "$(dirname "$0")/.."   # bench/; the product is ..

STREAMS=${STREAMS:-10000}
PAIRS=${PAIRS:-3}
RATES=${RATES:-2000,5000,10000}
BATCH_RATES=${BATCH_RATES:-10000,20000,40000}
DURATION=${DURATION:-20s}
SOAK=${SOAK:-10m}
SUITE=${SUITE:-load batch sweep memory storm soak}
SERVER_PROCS=${SERVER_PROCS:-0}
OUT=${OUT:-${TMPDIR:-/tmp}/noticed-bench-$(date -u +%Y%m%d-%H%M%S)}

scripts/bench-deps.sh
mkdir -p "$OUT"
go build -o "$OUT/noticed-bench" .
(cd .. && go build -o "$OUT/noticed" ./cmd/noticed)
csv="$OUT/runs.csv"
status=0

step() {
  local name=$1; shift
  echo "== $name: noticed-bench -server-procs $SERVER_PROCS $*" | tee -a "$OUT/commands.txt"
  if ! "$OUT/noticed-bench" -noticed-bin "$OUT/noticed" -server-procs "$SERVER_PROCS" -csv "$csv" "$@" | tee "$OUT/$name.txt"; then
    echo "== $name: FAILED (see $OUT/$name.txt)"
    status=1
  fi
}

{ uname -a; nproc; grep MemTotal /proc/meminfo; redis-server --version; /usr/sbin/nginx -v 2>&1; go version; git rev-parse HEAD; } >"$OUT/machine.txt" 2>&1 || true

for s in $SUITE; do
  case $s in
    load)   # (1) STREAMS users × 1 stream at 5,000 events/s: noticed fed by POST
            # (one event a request) and by XADD, beside Centrifugo, Nchan and the
            # floor (all three sent POSTs); latency, memory per idle stream and
            # streams opened per second, as ratios over PAIRS rounds
      step load -mode load -target noticed/post,noticed/xadd,centrifugo,nchan,floor -streams "$STREAMS" -rate 5000 -duration "$DURATION" -pairs "$PAIRS" ;;
    batch)  # (2) the highest rate sustained: noticed sent batches of 100 events a
            # POST, the peers one event a POST
      step batch -mode load -target noticed/batch,centrifugo,nchan -post-batch 100 -streams "$STREAMS" -rate "$BATCH_RATES" -duration 10s -pairs "$PAIRS" ;;
    sweep)  # (3) latency against the rate at STREAMS users, for the plot
      step sweep -mode load -target noticed/xadd,noticed/post,centrifugo,nchan,floor -streams "$STREAMS" -rate "$RATES" -duration "$DURATION" ;;
    memory) # (4) memory with 1k, 5k, 10k idle streams, and new streams per second;
            # the floor (a bare Go server) says what the machine allows at best
      step memory -mode load -target noticed,centrifugo,nchan,floor -streams 1000,5000,"$STREAMS" -rate 0 ;;
    storm)  # (5) every stream drops, 10 events behind, comes back with Last-Event-ID
      step storm -mode storm -target noticed,nchan -streams "$STREAMS" -behind 10 ;;
    soak)   # (6) steady load with churn; RSS, goroutines and open files sampled
      step soak -mode soak -target noticed,nchan -streams "$STREAMS" -rate 1000 -duration "$SOAK" -churn 100 -sample 10s ;;
    *) echo "bench-suite.sh: unknown step $s (load batch sweep memory storm soak)" >&2; exit 2 ;;
  esac
done

STREAMS=$STREAMS scripts/plots.sh "$csv" ../docs
echo "bench-suite.sh: reports, commands and runs.csv in $OUT"
exit $status
