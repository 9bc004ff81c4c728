#!/usr/bin/env bash
# Installs what the load tool (bench/) and its scripts/plots.sh need and are missing:
# redis-server, nginx with Debian's Nchan module (libnginx-mod-nchan), and
# gnuplot (gnuplot-nox). As root on Debian/Ubuntu it installs them with
# apt-get; otherwise it says what to install.
set -euo pipefail

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
