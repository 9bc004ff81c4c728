#!/usr/bin/env bash
# Runs noticed's whole test suite: every package under -race (the Redis and
# deployment tests start their own redis-server and nginx on free ports),
# then each fuzz target briefly. Installs what the tests need when it is
# missing and this is root on Debian/Ubuntu; otherwise says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${FUZZTIME:-10s}

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    # Debian starts the packaged services; the tests start their own.
    service redis-server stop >/dev/null 2>&1 || true
    service nginx stop >/dev/null 2>&1 || true
  else
    echo "test.sh: the tests need ${need[*]}: install with  sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
fi
command -v go >/dev/null 2>&1 || { echo "test.sh: Go is not installed (https://go.dev/doc/install)" >&2; exit 1; }
export PATH="$PATH:/usr/sbin"

go vet ./...
go test -race -count=1 -timeout 20m ./...

# Each fuzz target of outside input, briefly; a longer run is
# FUZZTIME=10m scripts/test.sh.
fuzz() { go test -run '^$' -fuzz "^$2\$" -fuzztime "$FUZZTIME" "$1" >/dev/null || { echo "fuzz $2 failed"; go test -run '^$' -fuzz "^$2\$" -fuzztime "$FUZZTIME" "$1"; exit 1; }; echo "fuzz $2: ok ($FUZZTIME)"; }
fuzz ./internal/notice FuzzParseID
fuzz ./internal/sse FuzzAppendEvent
fuzz ./internal/sse FuzzReader
fuzz ./internal/auth FuzzVerify
fuzz ./internal/server FuzzPublishBody
echo "all tests passed"
