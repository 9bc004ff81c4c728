#!/usr/bin/env bash
# Draws noticed-bench's CSV (-csv file) as two PNGs:
#
#   docs/bench-latency.png  latency p50, p99 and p99.9 against the event rate,
#                           at $STREAMS open streams (default 10000), for
#                           noticed (per publish path), Centrifugo, Nchan and
#                           the floor: -mode load rows
#   docs/bench-memory.png   server memory with the streams open and idle
#                           against open streams, for noticed, Centrifugo,
#                           Nchan and the floor (a bare Go server, -target
#                           floor): every
#                           -mode load row (memory is measured before publishing)
#
# Usage: bench/scripts/plots.sh bench.csv [outdir]   (outdir: the product's docs/)
# When a combination was measured more than once, the last row counts.
# Needs gnuplot: installed here when missing and root (Debian's gnuplot-nox).
set -euo pipefail

csv=$(realpath "${1:?usage: bench/scripts/plots.sh bench.csv [outdir]}")
out=$(realpath -m "${2:-$(dirname "$0")/../../docs}")
STREAMS=${STREAMS:-10000}

if ! command -v gnuplot >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "plots.sh: installing gnuplot-nox"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null
  else
    echo "plots.sh: needs gnuplot: sudo apt-get install gnuplot-nox" >&2
    exit 1
  fi
fi
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# pick MODE KEY... : the named columns of the rows of a mode (ok or not),
# last row per key (the first columns asked for), sorted by the key.
pick() {
  awk -F, -v mode="$1" -v cols="$2" -v keyn="$3" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; n = split(cols, want, " "); next }
    $col["mode"] != mode { next }
    {
      key = ""; line = ""
      for (i = 1; i <= n; i++) {
        v = $col[want[i]]
        if (i <= keyn) key = key SUBSEP v
        line = line (i > 1 ? " " : "") (v == "" ? "NaN" : v)
      }
      if (!(key in rows)) order[++m] = key
      rows[key] = line
    }
    END { for (i = 1; i <= m; i++) print rows[order[i]] }
  ' "$csv"
}

# Latency against rate, one file per server and publish path.
# x is the rate achieved (events delivered per second), not the one asked
# for: a publisher that cannot keep up (POST past a few thousand a second on
# two shared cores) shows where it really was.
pick load "target publish streams rate delivered_per_s p50_ms p99_ms p999_ms" 4 |
  awk -v s="$STREAMS" -v dir="$tmp" '$3 == s && $4 > 0 {
    p = $2; sub("/", "x", p)   # post/100: batches of 100
    f = dir "/lat-" $1 "-" p ".dat"; print $5, $6, $7, $8 > f; files[f] = 1
  } END { for (f in files) close(f) }'
for f in "$tmp"/lat-*.dat; do [ -e "$f" ] && sort -n -o "$f" "$f"; done

# Memory against streams, one file per server.
pick load "target streams rss_idle_mib pss_idle_mib" 2 |
  awk -v dir="$tmp" '$3 != "NaN" { f = dir "/mem-" $1 ".dat"; print $2, $3, $4 > f; files[f] = 1 }
    END { for (f in files) close(f) }'
for f in "$tmp"/mem-*.dat; do [ -e "$f" ] && sort -n -o "$f" "$f"; done

lat_plots=()
for f in "$tmp"/lat-*.dat; do
  [ -e "$f" ] || continue
  name=$(basename "$f" .dat); name=${name#lat-}
  case $name in
    noticed-xadd) label="noticed (XADD)"; color="#1f77b4" ;;
    noticed-post) label="noticed (POST)"; color="#2ca02c" ;;
    noticed-postx*) label="noticed (POST, batches of ${name#noticed-postx})"; color="#17becf" ;;
    centrifugo-*) label="Centrifugo (POST)"; color="#9467bd" ;;
    nchan-*) label="Nchan (POST)"; color="#d62728" ;;
    floor-*) label="floor (POST; bare Go server)"; color="#7f7f7f" ;;
    *) label=$name; color="#7f7f7f" ;;
  esac
  lat_plots+=("'$f' using 1:2 with linespoints lw 2 pt 7 lc rgb '$color' title '$label p50'")
  lat_plots+=("'$f' using 1:3 with linespoints lw 2 pt 5 dt 2 lc rgb '$color' title '$label p99'")
  lat_plots+=("'$f' using 1:4 with linespoints lw 2 pt 9 dt 3 lc rgb '$color' title '$label p99.9'")
done
if [ ${#lat_plots[@]} -gt 0 ]; then
  gnuplot <<EOF
set terminal pngcairo size 1000,620 font "sans,11"
set output "$out/bench-latency.png"
set title "Latency from send to receipt, $STREAMS open streams (one per user)"
set xlabel "events delivered per second (achieved rate)"
set ylabel "latency (ms, log scale)"
set logscale y
set grid
set key outside right top
plot $(IFS=,; echo "${lat_plots[*]}")
EOF
  echo "plots.sh: $out/bench-latency.png"
else
  echo "plots.sh: no -mode load rows at $STREAMS streams with a rate above 0: no latency plot" >&2
fi

mem_plots=()
[ -e "$tmp/mem-noticed.dat" ] && mem_plots+=("'$tmp/mem-noticed.dat' using 1:2 with linespoints lw 2 pt 7 lc rgb '#1f77b4' title 'noticed RSS'")
if [ -e "$tmp/mem-nchan.dat" ]; then
  mem_plots+=("'$tmp/mem-nchan.dat' using 1:2 with linespoints lw 2 pt 5 lc rgb '#d62728' title 'Nchan RSS (master + workers)'")
  mem_plots+=("'$tmp/mem-nchan.dat' using 1:3 with linespoints lw 2 pt 9 dt 2 lc rgb '#d62728' title 'Nchan PSS (shared memory counted once)'")
fi
[ -e "$tmp/mem-centrifugo.dat" ] && mem_plots+=("'$tmp/mem-centrifugo.dat' using 1:2 with linespoints lw 2 pt 11 lc rgb '#9467bd' title 'Centrifugo RSS'")
[ -e "$tmp/mem-floor.dat" ] && mem_plots+=("'$tmp/mem-floor.dat' using 1:2 with linespoints lw 2 pt 3 dt 4 lc rgb '#7f7f7f' title 'floor RSS (bare Go server: no token check, no Redis)'")
if [ ${#mem_plots[@]} -gt 0 ]; then
  gnuplot <<EOF
set terminal pngcairo size 1000,620 font "sans,11"
set output "$out/bench-memory.png"
set title "Server memory with the streams open and idle"
set xlabel "open streams"
set ylabel "MiB"
set xrange [0:*]
set yrange [0:*]
set grid
set key left top
plot $(IFS=,; echo "${mem_plots[*]}")
EOF
  echo "plots.sh: $out/bench-memory.png"
else
  echo "plots.sh: no -mode load rows with server memory: no memory plot" >&2
fi
