#!/usr/bin/env bash
# Installs what the load tool (bench/) and its scripts/plots.sh need and are missing:
# redis-server, nginx with Debian's Nchan module (libnginx-mod-nchan), and
# gnuplot (gnuplot-nox): as root on Debian/Ubuntu with apt-get, otherwise
# it says what to install. And Centrifugo, built with go install into
# $(go env GOPATH)/bin, where the tool finds it (about 3 minutes on 2 cores).
set -euo pipefail

CENTRIFUGO_VERSION=v6.9.1
centrifugo_found() {
  command -v centrifugo >/dev/null 2>&1 || [ -x "$(go env GOPATH | cut -d: -f1)/bin/centrifugo" ]
}
if ! centrifugo_found; then
  command -v go >/dev/null 2>&1 || { echo "bench-deps.sh: Go is needed to install Centrifugo (https://go.dev/doc/install)" >&2; exit 1; }
  echo "bench-deps.sh: installing Centrifugo $CENTRIFUGO_VERSION (go install, about 3 minutes)"
  go install "github.com/centrifugal/centrifugo/v6@$CENTRIFUGO_VERSION"
fi

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_nchan_module.so ] || need+=(libnginx-mod-nchan)
command -v gnuplot >/dev/null 2>&1 || need+=(gnuplot-nox)

if [ ${#need[@]} -eq 0 ]; then
  echo "bench-deps.sh: all there"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "bench-deps.sh: missing ${need[*]}: install with  sudo apt-get install ${need[*]}" >&2
  exit 1
fi
echo "bench-deps.sh: installing ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
# Debian starts the packaged services; the benchmark starts its own.
service redis-server stop >/dev/null 2>&1 || true
service nginx stop >/dev/null 2>&1 || true
