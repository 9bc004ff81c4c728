#!/usr/bin/env bash
# Runs noticed's whole test suite: every package under -race (the Redis and
# deployment tests start their own redis-server, nginx and headless chromium;
# deploy/'s tests check the operator's kit with systemd-analyze, promtool and
# podman), then each fuzz target briefly. Installs what the tests need when it is
# missing and this is root on Debian/Ubuntu; otherwise says what to install.
# The load tool is a module of its own, with its own command:
# bench/scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

# Every temporary file goes here, removed however the script ends.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

FUZZTIME=${FUZZTIME:-10s}

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)  # creates the test Redis Clusters
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v chromium >/dev/null 2>&1 || need+=(chromium)  # the browser test (e2e)
# The operator's kit (deploy/): promtool checks the alerts and the dashboard,
# systemd-analyze the unit, podman builds and runs the image (with runc: crun
# refuses some hybrid cgroup set-ups).
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
if ! command -v podman >/dev/null 2>&1; then
  command -v docker >/dev/null 2>&1 || need+=(podman runc)
elif ! command -v runc >/dev/null 2>&1 && [ ! -x /usr/sbin/runc ]; then
  need+=(runc)
fi
# The producer examples (e2e): Python's redis-py, Node with npm, redis-cli and curl.
python3 -c 'import redis' >/dev/null 2>&1 || /usr/bin/python3 -c 'import redis' >/dev/null 2>&1 || need+=(python3-redis)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    # Debian starts the packaged services; the tests start their own.
    service redis-server stop >/dev/null 2>&1 || true
    service nginx stop >/dev/null 2>&1 || true
    service prometheus stop >/dev/null 2>&1 || true
    service prometheus-node-exporter stop >/dev/null 2>&1 || true
  else
    echo "test.sh: the tests need ${need[*]}: install with  sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
fi
command -v go >/dev/null 2>&1 || { echo "test.sh: Go is not installed (https://go.dev/doc/install)" >&2; exit 1; }
export PATH="$PATH:/usr/sbin"

# The Node producer example's one dependency (redis, from npm), at the
# version package-lock.json pins.
if [ ! -d examples/producers/node/node_modules/redis ]; then
  (cd examples/producers/node && npm ci --no-audit --no-fund --loglevel=error)
fi

go vet ./...
go test -race -count=1 -timeout 20m ./...
# End to end: real redis-server, two noticed, nginx with deploy/nginx.conf
# (and nginx-tls.conf), headless chromium and the producer examples. A
# module of its own (e2e/, replacing the product with ../), so the browser
# driver it needs is no dependency of the product. Its summary lines count
# the events sent, received, lost, duplicated and misrouted.
e2elog=$tmp/e2e.log
if ! (cd e2e && go vet ./... && go test -race -count=1 -timeout 15m -v ./...) >"$e2elog" 2>&1; then
  cat "$e2elog"
  echo "e2e: FAILED"
  exit 1
fi
grep -E '^(e2e |ok )' "$e2elog"

# Each fuzz target, briefly; a longer run is FUZZTIME=10m scripts/test.sh.
# The targets are found, not listed: a new one runs without touching this.
# A failing input is saved under the package's testdata/fuzz/<target>, so
# a second run replays it first and fails again. A run that fails with no
# such input was the fuzzing engine's own trouble: Go 1.26's coordinator
# can report "context deadline exceeded" as -fuzztime ends
# (golang/go#75804, fixed in Go 1.27). The second run is therefore bounded
# by a count of inputs, which takes no deadline; its output is shown
# either way.
FUZZRETRY=${FUZZRETRY:-5000x}
# $1 is the module's directory, $2 the package, $3 the target.
fuzz() {
  local out=$tmp/fuzz.out
  if (cd "$1" && go test -run '^$' -fuzz "^$3\$" -fuzztime "$FUZZTIME" "$2") >"$out" 2>&1; then
    echo "fuzz $3: ok ($FUZZTIME)"; return
  fi
  echo "fuzz $3: failed; its output:"; grep -v '^fuzz: elapsed' "$out" || true
  echo "fuzz $3: running it once more, for $FUZZRETRY inputs (a saved failing input is replayed first)"
  if ! (cd "$1" && go test -run '^$' -fuzz "^$3\$" -fuzztime "$FUZZRETRY" "$2") >"$out" 2>&1; then
    grep -v '^fuzz: elapsed' "$out" || true; echo "fuzz $3 FAILED again"; exit 1
  fi
  echo "fuzz $3: ok ($FUZZRETRY, second run)"
}
# In both modules (the product's and e2e/'s): go test -list prints a
# package's matching names, then its "ok" line.
for mod in . e2e; do
  (cd "$mod" && go test -list '^Fuzz' ./...) >"$tmp/fuzz.list"
  cat "$tmp/fuzz.list" >>"$tmp/fuzz.lists"
  awk -v mod="$mod" '/^Fuzz/ { names[n++] = $1; next }
       /^ok /  { for (i = 0; i < n; i++) print mod, $2, names[i]; n = 0 }' "$tmp/fuzz.list" >>"$tmp/fuzz.targets"
done
[ -s "$tmp/fuzz.targets" ] || { echo "test.sh: no fuzz target found"; cat "$tmp/fuzz.lists"; exit 1; }
# (fd 3: nothing the loop runs can read the list.)
while read -r mod pkg name <&3; do
  fuzz "$mod" "$pkg" "$name"
done 3<"$tmp/fuzz.targets"
echo "all tests passed"
