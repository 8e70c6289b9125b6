#!/usr/bin/env bash
# Scale: latchkey with 1,000,000 keys in its database, 100,000 of them in use,
# against the same server with 1,000 keys; wrk cycles through every active
# key (bench/keys.lua), server and wrk on different cores.
#
#   bench/scale.sh
#
# For each case: `latchkey migrate`, the keys seeded by examples/seed_keys.rs
# (one transaction; 10,000/min each), `serve`, one pass over every active key
# (cold: each is a cache miss and one indexed lookup), then a measured run of
# $DURATION over the same keys (warm). Reports requests/s and p50/p99 of
# GET /api/v1/me, and the server's RSS (VmRSS from /proc/PID/status; VmHWM is
# the peak).
#
# Environment (defaults): SCALE_KEYS=1000000 ACTIVE=100000 SMALL_KEYS=1000
# DURATION=10s CONNECTIONS=64 SERVER_CPU=1 CLIENT_CPU=0 SKIP_BUILD=0
# UPDATE_DOCS=1 KEEP=0 (keep the ~400 MB database) LATCHKEY_LOG=warn
# OUT=target/bench/scale-<time>. Traffic goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
. bench/lib.sh
trap stop_all EXIT INT TERM

SCALE_KEYS=${SCALE_KEYS:-1000000}
ACTIVE=${ACTIVE:-100000}
SMALL_KEYS=${SMALL_KEYS:-1000}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
UPDATE_DOCS=${UPDATE_DOCS:-1}
export LATCHKEY_LOG=${LATCHKEY_LOG:-warn}
OUT=${OUT:-target/bench/scale-$(date +%Y%m%d-%H%M%S)}
PORT=18084

need wrk taskset curl awk
port_free "$PORT"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --bin latchkey --example seed_keys >&2
fi
bin=$root/target/release/latchkey
seed=$root/target/release/examples/seed_keys
rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
info=$(machine_info)
echo "$info" >&2

declare -A ROW
# scale_case NAME KEYS ACTIVE
scale_case() {
  local name=$1 total=$2 active=$3 dir="$OUT/$1" pid started seeded idle cold warm after hwm
  mkdir -p "$dir"
  echo "== $name: $total keys, $active active" >&2
  "$bin" --data-dir "$dir/data" migrate 2>/dev/null
  started=$(date +%s)
  "$seed" "$dir/data" "$total" "$active" "$dir/keys.txt" >&2
  seeded=$(($(date +%s) - started))
  taskset -c "$SERVER_CPU" "$bin" --data-dir "$dir/data" serve --listen "127.0.0.1:$PORT" \
    >"$dir/latchkey.log" 2>&1 &
  pid=$!
  BENCH_PIDS+=("$pid")
  wait_http "http://127.0.0.1:$PORT/healthz" 60
  idle=$(rss_kib "$pid")
  # Cold: one pass over every active key (cache misses).
  wrk_until_done 1 "$dir/cold.txt" taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d900s --latency \
    -s bench/keys.lua "http://127.0.0.1:$PORT" -- "$dir/keys.txt" /api/v1/me once
  cold=$(parse_wrk "$dir/cold.txt")
  warm_rss=$(rss_kib "$pid")
  # Warm: the measured run.
  taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/keys.lua \
    "http://127.0.0.1:$PORT" -- "$dir/keys.txt" /api/v1/me >"$dir/warm.txt"
  warm=$(parse_wrk "$dir/warm.txt")
  errors=$(awk '$2 == "ERROR" || $2 == "WARN"' "$dir/latchkey.log" | grep -vc 'server secret' || true)
  after=$(rss_kib "$pid")
  hwm=$(hwm_kib "$pid")
  # Graceful shutdown (SIGTERM) ends with the final usage flush.
  stop_pid "$pid" 120
  local shutdown=$STOP_SECONDS
  [ "$STOP_KILLED" = 0 ] || shutdown=">120 (killed)"
  ROW[$name]="$total $active $seeded $idle $warm_rss $after $hwm ${shutdown// /_} $errors | $cold | $warm"
  echo "   server warnings and errors logged: $errors (see $dir/latchkey.log)" >&2
  echo "   cold: $cold; warm: $warm; RSS idle/after cold/after warm/peak KiB: $idle $warm_rss $after $hwm; SIGTERM to exit: $shutdown s" >&2
  [ "${KEEP:-0}" = 1 ] || rm -rf "$dir/data"
}

scale_case small "$SMALL_KEYS" "$SMALL_KEYS"
scale_case large "$SCALE_KEYS" "$ACTIVE"

part() { echo "${ROW[$1]}" | awk -F'|' -v p="$2" '{print $p}'; }
f() { part "$1" "$2" | awk -v i="$3" '{print $i}'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
{
  echo "$info"
  echo "- Command: \`bench/scale.sh\` (SCALE_KEYS=$SCALE_KEYS ACTIVE=$ACTIVE SMALL_KEYS=$SMALL_KEYS DURATION=$DURATION CONNECTIONS=$CONNECTIONS); wrk -t1 on CPU $CLIENT_CPU, latchkey on CPU $SERVER_CPU, GET /api/v1/me cycling through every active key"
  echo "- Load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "| Keys in database | Active keys | Seeding (s) | Cold pass req/s | Warm req/s | Warm p50 (ms) | Warm p99 (ms) | Non-2xx | RSS idle (MiB) | RSS after cold pass (MiB) | RSS after warm run (MiB) | Peak RSS (MiB) | SIGTERM to exit (s) |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for c in small large; do
    printf '| %s | %s | %s | %.0f | %.0f | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
      "$(f $c 1 1)" "$(f $c 1 2)" "$(f $c 1 3)" "$(f $c 2 1)" "$(f $c 3 1)" "$(f $c 3 2)" "$(f $c 3 3)" \
      "$(($(f $c 2 5) + $(f $c 3 5)))" "$(mib "$(f $c 1 4)")" "$(mib "$(f $c 1 5)")" "$(mib "$(f $c 1 6)")" "$(mib "$(f $c 1 7)")" \
      "$(f $c 1 8 | tr _ ' ')"
  done
  echo
  echo "- Warm p50 latency, large ÷ small: $(ratio "$(f large 3 2)" "$(f small 3 2)"); warm requests/s, small ÷ large: $(ratio "$(f small 3 1)" "$(f large 3 1)") (target for verify: within 1.2×)"
  echo "- Peak RSS with $SCALE_KEYS keys, $ACTIVE active: $(mib "$(f large 1 7)") MiB (target <= 300 MiB)"
  echo "- Warnings and errors the server logged (small / large case): $(f small 1 9) / $(f large 1 9) (e.g. slow database pool acquisition; see the run directory's latchkey.log)"
} >"$OUT/results.md"
cat "$OUT/results.md"
if [ "$UPDATE_DOCS" = 1 ]; then
  replace_block docs/BENCHMARKS.md scale "$OUT/results.md"
fi
echo "raw wrk output: $OUT" >&2
