#!/usr/bin/env bash
# Reproduces the "Load generator" table of BENCHMARKS.md: verdict load vs hey vs wrk against one
# local nginx (Debian's) answering `return 200` with a small body, all in one run.
#
#   scripts/bench-load.sh            # full table (about 4 minutes)
#   RUNS=1 DURATION=5 scripts/bench-load.sh   # quick look
#
# Each measurement runs RUNS times (default 3) and the median is reported, because other
# processes may share the machine. Needs: nginx, hey, wrk (apt-get install nginx hey wrk).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
DURATION=${DURATION:-10}         # seconds per max-rate measurement
CONC=${CONC:-50}
CPU_REQUESTS=${CPU_REQUESTS:-100000}
OPEN_SECONDS=${OPEN_SECONDS:-10}
PORT=${PORT:-18089}
URL="http://127.0.0.1:${PORT}/"

for tool in nginx hey wrk; do
  if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
    echo "missing $tool: apt-get install -y nginx hey wrk" >&2
    exit 1
  fi
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release --quiet --bin verdict
VERDICT=target/release/verdict

WORK=$(mktemp -d)
cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
daemon on;
pid $WORK/nginx.pid;
error_log $WORK/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_body_temp_path $WORK;
  proxy_temp_path $WORK;
  fastcgi_temp_path $WORK;
  uwsgi_temp_path $WORK;
  scgi_temp_path $WORK;
  server {
    listen 127.0.0.1:${PORT};
    location / { default_type text/plain; return 200 "ok\n"; }
  }
}
EOF
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK"
cleanup() {
  if [ -f "$WORK/nginx.pid" ]; then kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
sleep 0.5
curl -fsS "$URL" >/dev/null

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# --- maximum requests/s at c=$CONC, fixed duration --------------------------------------------
rate_verdict() { "$VERDICT" load -z "${DURATION}s" -c "$CONC" --json "$URL" | python3 -c 'import json,sys; print(json.load(sys.stdin)["rate"])'; }
rate_hey()     { hey -z "${DURATION}s" -c "$CONC" "$URL" | awk '/Requests\/sec/ {print $2}'; }
# wrk needs threads; 2 threads for 2 cores, the same 50 connections.
rate_wrk()     { wrk -t2 -c "$CONC" -d "${DURATION}s" "$URL" | awk '/Requests\/sec/ {print $2}'; }

# --- CPU seconds (user+sys) per $CPU_REQUESTS requests -----------------------------------------
cpu() { /usr/bin/time -f '%U %S' -o "$WORK/time" "$@" >/dev/null 2>&1; awk '{print $1+$2}' "$WORK/time"; }
cpu_verdict() { cpu "$VERDICT" load -n "$CPU_REQUESTS" -c "$CONC" "$URL"; }
cpu_hey()     { cpu hey -n "$CPU_REQUESTS" -c "$CONC" "$URL"; }
# wrk has no request count: run it for the time verdict needed and scale to $CPU_REQUESTS.
cpu_wrk() {
  /usr/bin/time -f '%U %S' -o "$WORK/time" wrk -t2 -c "$CONC" -d 3s "$URL" >"$WORK/wrk.out" 2>&1
  local n; n=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
  awk -v n="$n" -v want="$CPU_REQUESTS" '{print ($1+$2)*want/n}' "$WORK/time"
}

# --- open model: achieved vs target rate -------------------------------------------------------
open_error() {
  "$VERDICT" load --rate "$1" -z "${OPEN_SECONDS}s" -c "$CONC" --json "$URL" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); e=r["errors"]; print("%.4f %.3f %.3f %d" % ((r["rate"]-r["target_rate"])/r["target_rate"]*100, r["latency"]["p50_ms"], r["latency"]["p99_ms"], sum(e.values())))'
}

measure() { # name function args...
  local name=$1; shift
  local vals=()
  for _ in $(seq "$RUNS"); do vals+=("$("$@")"); done
  printf '%s\t%s\t(runs: %s)\n' "$name" "$(printf '%s\n' "${vals[@]}" | median)" "${vals[*]}"
}

echo "machine: $(nproc) cores, $(uname -srm); date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "target: nginx $("$NGINX" -v 2>&1 | sed 's/.*\///'), 1 worker, return 200 (3-byte body), $URL"
echo "runs per figure: $RUNS (median shown)"
echo
echo "## max requests/s, c=$CONC, ${DURATION}s"
measure "verdict load" rate_verdict
measure "hey" rate_hey
measure "wrk -t2" rate_wrk
echo
echo "## CPU seconds (user+sys) per $CPU_REQUESTS requests, c=$CONC"
measure "verdict load" cpu_verdict
measure "hey" cpu_hey
measure "wrk -t2" cpu_wrk
echo
echo "## open model (verdict load --rate R -z ${OPEN_SECONDS}s -c $CONC): rate error %, p50 ms, p99 ms, errors"
for r in 1000 10000; do
  vals=()
  for _ in $(seq "$RUNS"); do vals+=("$(open_error "$r")"); done
  med=$(printf '%s\n' "${vals[@]}" | awk '{print $1}' | median)
  printf 'rate %s\tmedian error %s %%\t(runs: %s)\n' "$r" "$med" "$(printf '[%s] ' "${vals[@]}")"
done
