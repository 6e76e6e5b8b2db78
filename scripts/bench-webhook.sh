#!/usr/bin/env bash
# Webhook benchmark: rollout-hook latency and throughput with a real Prometheus and
# Postgres on localhost, driven by wrk (N canaries in turn) and hey (one canary), plus
# the server's resident memory. Prints the figures recorded in BENCHMARKS.md.
#   usage: scripts/bench-webhook.sh [CANARIES] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
CANARIES=${1:-1000}
SECONDS_PER_RUN=${2:-30}
PORT=18181
PG=${VERDICT_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}
DB=verdict_bench

command -v wrk >/dev/null && command -v hey >/dev/null || {
  echo "needs wrk and hey: apt-get install -y wrk hey" >&2; exit 1; }
cargo build --release --quiet --bin verdict --example bench_env

psql "$PG" -qc "drop database if exists $DB" >/dev/null
psql "$PG" -qc "create database $DB" >/dev/null
DB_URL="${PG%/*}/$DB"

work=$(mktemp -d)
exec 3> >(target/release/examples/bench_env "$CANARIES" > "$work/env.out" 2>&1)
for _ in $(seq 1 120); do grep -q PROMETHEUS_URL "$work/env.out" 2>/dev/null && break; sleep 1; done
PROM=$(sed -n 's/^PROMETHEUS_URL=//p' "$work/env.out")
[ -n "$PROM" ] || { echo "benchmark environment did not start"; cat "$work/env.out"; exit 1; }

VERDICT_LISTEN=127.0.0.1:$PORT VERDICT_DATABASE_URL=$DB_URL VERDICT_PROMETHEUS__URL=$PROM \
  VERDICT_LOG_FORMAT=json RUST_LOG=warn target/release/verdict serve 2> "$work/verdict.log" &
VPID=$!
trap 'kill $VPID 2>/dev/null; exec 3>&-; rm -rf "$work"' EXIT
for _ in $(seq 1 30); do curl -sf "localhost:$PORT/readyz" >/dev/null && break; sleep 0.5; done

echo "== opening $CANARIES analyses (pre-rollout)"
start=$(date +%s.%N)
for i in $(seq 0 $((CANARIES - 1))); do
  curl -sf -o /dev/null -XPOST "localhost:$PORT/flagger/pre-rollout" \
    -d "{\"name\":\"c$i\",\"namespace\":\"bench\",\"phase\":\"Progressing\",\"checksum\":\"r1\"}"
done
echo "pre-rollout x$CANARIES took $(awk "BEGIN{print $(date +%s.%N) - $start}") s (sequential curl)"
sleep 6

echo "== wrk: rollout for $CANARIES canaries in turn, c=50, ${SECONDS_PER_RUN}s"
CANARIES=$CANARIES wrk -t2 -c50 -d"${SECONDS_PER_RUN}s" --latency -s scripts/bench/rollout.lua \
  "http://127.0.0.1:$PORT" | sed -n '/Latency Distribution/,$p;/Requests\/sec/p;/Non-2xx/p'
echo "== wrk: the same, paced: c=20, each connection waits 100 ms between calls (~200 calls/s), ${SECONDS_PER_RUN}s"
DELAY_MS=100 CANARIES=$CANARIES wrk -t2 -c20 -d"${SECONDS_PER_RUN}s" --latency -s scripts/bench/rollout.lua \
  "http://127.0.0.1:$PORT" | sed -n '/Latency Distribution/,$p;/Requests\/sec/p;/Non-2xx/p'
echo "looks taken: $(psql "$DB_URL" -Atc 'select count(*) from look')," \
     "decisions: $(psql "$DB_URL" -Atc 'select count(*) from decision')," \
     "424s: $(psql "$DB_URL" -Atc 'select count(*) from decision where status_code = 424')"
echo "store per look: row $(psql "$DB_URL" -Atc 'select round(avg(pg_column_size(l.*))) from look l') bytes on average," \
     "of which counters $(psql "$DB_URL" -Atc 'select coalesce(round(avg(octet_length(counters))), 0) from look') bytes;" \
     "baseline per analysis $(psql "$DB_URL" -Atc 'select coalesce(round(avg(octet_length(baseline))), 0) from analysis') bytes;" \
     "look table $(psql "$DB_URL" -Atc "select pg_size_pretty(pg_total_relation_size('look'))")"

echo "== hey: rollout for one canary (answers from the stored look), c=50, ${SECONDS_PER_RUN}s"
printf '{"name":"c0","namespace":"bench","phase":"Progressing","checksum":"r1"}' > "$work/one.json"
hey -z "${SECONDS_PER_RUN}s" -c 50 -m POST -T application/json -D "$work/one.json" \
  "http://127.0.0.1:$PORT/flagger/rollout" | sed -n '/Requests\/sec/p;/Latency distribution/,/99%/p;/Status code/,/^$/p'

echo "== verdict memory"
grep -E 'VmRSS|VmHWM' "/proc/$VPID/status"
