#!/usr/bin/env bash
# Runs the load tool's tests: go vet, every test under -race (they build
# ../cmd/noticed and start it, a redis-server of their own, nginx with
# Nchan, and Centrifugo), then each fuzz target briefly. Installs what is
# missing when this is root on Debian/Ubuntu; otherwise says what to
# install. Centrifugo is built with go install when missing: about 3
# minutes on 2 cores, once (the binary stays in $(go env GOPATH)/bin). The
# product's own suite is scripts/test.sh at the top of the repository.
set -euo pipefail
cd "$(dirname "$0")/.."   # bench/

FUZZTIME=${FUZZTIME:-10s}
FUZZRETRY=${FUZZRETRY:-5000x}

# Every temporary file goes here, removed however the script ends.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_nchan_module.so ] || need+=(libnginx-mod-nchan)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bench/scripts/test.sh: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    # Debian starts the packaged services; the tests start their own.
    service redis-server stop >/dev/null 2>&1 || true
    service nginx stop >/dev/null 2>&1 || true
  else
    echo "bench/scripts/test.sh: the tests need ${need[*]}: install with  sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
fi
command -v go >/dev/null 2>&1 || { echo "bench/scripts/test.sh: Go is not installed (https://go.dev/doc/install)" >&2; exit 1; }
export PATH="$PATH:/usr/sbin"

# The version scripts/bench-deps.sh installs.
CENTRIFUGO_VERSION=$(sed -n 's/^CENTRIFUGO_VERSION=//p' scripts/bench-deps.sh)
if ! command -v centrifugo >/dev/null 2>&1 && [ ! -x "$(go env GOPATH | cut -d: -f1)/bin/centrifugo" ]; then
  echo "bench/scripts/test.sh: installing Centrifugo $CENTRIFUGO_VERSION (go install, about 3 minutes)"
  go install "github.com/centrifugal/centrifugo/v6@$CENTRIFUGO_VERSION"
fi

go vet ./...
go test -race -count=1 -timeout 20m ./...

# Each fuzz target, found rather than listed, briefly. As in the product's
# scripts/test.sh: a failing input is saved under testdata/fuzz/<target>
# and replayed by the second run; a first run failing with no such input
# was Go 1.26's fuzzing coordinator (golang/go#75804), so the second run is
# bounded by a count of inputs instead of a deadline.
fuzz() {
  local out=$tmp/fuzz.out
  if go test -run '^$' -fuzz "^$2\$" -fuzztime "$FUZZTIME" "$1" >"$out" 2>&1; then
    echo "fuzz $2: ok ($FUZZTIME)"; return
  fi
  echo "fuzz $2: failed; its output:"; grep -v '^fuzz: elapsed' "$out" || true
  echo "fuzz $2: running it once more, for $FUZZRETRY inputs (a saved failing input is replayed first)"
  if ! go test -run '^$' -fuzz "^$2\$" -fuzztime "$FUZZRETRY" "$1" >"$out" 2>&1; then
    grep -v '^fuzz: elapsed' "$out" || true; echo "fuzz $2 FAILED again"; exit 1
  fi
  echo "fuzz $2: ok ($FUZZRETRY, second run)"
}
# go test -list prints a package's matching names, then its "ok" line.
go test -list '^Fuzz' ./... >"$tmp/fuzz.list"
awk '/^Fuzz/ { names[n++] = $1; next }
     /^ok /  { for (i = 0; i < n; i++) print $2, names[i]; n = 0 }' "$tmp/fuzz.list" >"$tmp/fuzz.targets"
[ -s "$tmp/fuzz.targets" ] || { echo "bench/scripts/test.sh: no fuzz target found"; cat "$tmp/fuzz.list"; exit 1; }
# (fd 3: nothing the loop runs can read the list.)
while read -r pkg name <&3; do
  fuzz "$pkg" "$name"
done 3<"$tmp/fuzz.targets"
echo "bench: all tests passed"
