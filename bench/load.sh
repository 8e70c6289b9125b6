#!/usr/bin/env bash
# HTTP load, side by side in one run: latchkey and peers doing the same job
# on this machine, with wrk. Server on one core, wrk on another (taskset).
#
#   bench/load.sh
#
# Every server is started first (all pinned to the same core, idle ones use no
# CPU), then the runs below are taken in $ROUNDS interleaved rounds, each run
# for $DURATION after a $WARMUP warm-up; a row reports the round with the
# median requests/s. Interleaving spreads the machine's noise (other jobs on
# the host) over every system alike, so the ratios hold even when the
# absolute figures move. Runs:
#   1. latchkey GET /healthz (no key)          -- the floor
#   2. latchkey GET /api/v1/me (keyed)          -- auth overhead = 1 - (2)/(1)
#   2b. the same two on a second latchkey with the default logging (LATCHKEY_LOG
#      unset: every request logged at info, stderr to a file), the way users
#      run it; the same database and keys
#   3. latchkey GET /api/v1/orders/{id} (keyed)
#   3b. latchkey GET /api/v1/orders/{id} with keys lacking orders:read: 403
#      after the whole auth path (verify, rate limit, usage, permission) and
#      no handler, so no database query -- auth overhead without the /me
#      handler
#   4. nginx    GET /healthz (a fixed string) and GET /api/v1/me (keyed: map +
#      limit_req + JSON file) -- the same overhead measure for a peer
#   5. HAProxy  GET /healthz and GET /api/v1/me (keyed: map + stick-table +
#      http-request return)
#   6. DRF      GET /api/v1/me (keyed: djangorestframework-api-key + throttle, gunicorn)
#   6b. latchkey on PostgreSQL (PEERS contains "postgres"): a second latchkey
#      on a throwaway PostgreSQL (Debian's postgresql binaries, initdb in
#      $OUT, fsync off like the SQLite store is not), seeded the same way:
#      GET /api/v1/me (from memory either way) and GET /api/v1/orders/{id}
#      (one indexed read) -- the keyed-read cost of each store, same run
#   6b'. latchkey with the Redis limiter (PEERS contains "redis"): a second
#      latchkey on the same SQLite data with --redis-url to a throwaway
#      redis-server (no persistence) on the server's core: keyed /me with the
#      shared limiter vs the in-memory one, and the latency it adds
#   6c. a baseline latchkey (BASELINE_BIN=path to another build, e.g. of the
#      previous commit): its /healthz and keyed /me beside this build's, so a
#      change's effect on the keyed-request cost is a same-run ratio
#   7. usage accuracy: exactly N keyed requests under load, then the usage
#      endpoint's count must equal N (skipped while GET /api/v1/keys/{id}/usage
#      does not answer).
# Every keyed run cycles through $KEYS keys (X-API-Key), 10,000/min each in
# every system, so no run is throttled (non-2xx answers are reported).
# Request logging is off everywhere but in run 2b (LATCHKEY_LOG=warn, nginx
# access_log off, no HAProxy log, no gunicorn access log).
#
# Results: a table on stdout and in $OUT/results.md; with UPDATE_DOCS=1 (the
# default) also in docs/BENCHMARKS.md between the `load` markers.
#
# Environment (defaults): ROUNDS=3 DURATION=8s WARMUP=2s CONNECTIONS=64 THREADS=1
# SERVER_CPU=1 CLIENT_CPU=0 KEYS=200 DRF_WORKERS=3 USAGE_REQUESTS=50000
# PEERS="nginx haproxy drf postgres redis" (plus "baseline" when BASELINE_BIN is set) SKIP_BUILD=0 UPDATE_DOCS=1 LATCHKEY_LOG=warn
# OUT=target/bench/load-<time>. Traffic goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
. bench/lib.sh
trap stop_all EXIT INT TERM

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
KEYS=${KEYS:-200}
DRF_WORKERS=${DRF_WORKERS:-3}
USAGE_REQUESTS=${USAGE_REQUESTS:-50000}
PEERS=${PEERS:-nginx haproxy drf postgres redis${BASELINE_BIN:+ baseline}}
UPDATE_DOCS=${UPDATE_DOCS:-1}
export LATCHKEY_LOG=${LATCHKEY_LOG:-warn}
OUT=${OUT:-target/bench/load-$(date +%Y%m%d-%H%M%S)}
LK_PORT=18080 NGINX_PORT=18081 HAPROXY_PORT=18082 DRF_PORT=18083 LK_PG_PORT=18084 PG_PORT=18085 LK_BASE_PORT=18086 LK_REDIS_PORT=18087 REDIS_PORT=18088 LK_LOG_PORT=18089

need wrk taskset curl jq python3 awk
[[ " $PEERS " == *" nginx "* ]] && need nginx
[[ " $PEERS " == *" haproxy "* ]] && need haproxy
[[ " $PEERS " == *" redis "* ]] && need redis-server
for p in $LK_PORT $NGINX_PORT $HAPROXY_PORT $DRF_PORT $LK_PG_PORT $PG_PORT $LK_BASE_PORT $LK_REDIS_PORT $REDIS_PORT $LK_LOG_PORT; do port_free "$p"; done

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release >&2
fi
bin=$root/target/release/latchkey
rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
info=$(machine_info)
echo "$info" >&2

wrk_on_client() { taskset -c "$CLIENT_CPU" wrk -t"$THREADS" -c"$CONNECTIONS" --latency "$@"; }

# run NAME [wrk args...]: warm-up, then the measured run into $OUT/NAME.<round>.txt,
# with the CPU share the server (${PID_OF[NAME]} and its children) used meanwhile.
# Appends "rps p50_ms p99_ms requests non2xx socket_errors server_cpu_%" to
# $OUT/NAME.rounds.
declare -A PID_OF ARGS_OF
clk_tck=$(getconf CLK_TCK)
run() {
  local name=$1 round=$2 t0 t1 s0 s1 cpu line pid=${PID_OF[$1]}
  shift 2
  echo "== $name (round $round)" >&2
  wrk_on_client -d"$WARMUP" "$@" >/dev/null
  t0=$(cpu_ticks "$pid")
  s0=$(date +%s%N)
  wrk_on_client -d"$DURATION" "$@" >"$OUT/$name.$round.txt"
  t1=$(cpu_ticks "$pid")
  s1=$(date +%s%N)
  cpu=$(awk -v t="$((t1 - t0))" -v hz="$clk_tck" -v ns="$((s1 - s0))" 'BEGIN { printf "%.0f", t / hz / (ns / 1e9) * 100 }')
  line="$(parse_wrk "$OUT/$name.$round.txt") $cpu"
  echo "$line" >>"$OUT/$name.rounds"
  echo "   $line  (req/s p50_ms p99_ms requests non2xx socket_errors server_cpu_%)" >&2
}

# target NAME PID WRK_ARGS...: a run to take in every round.
TARGETS=()
target() {
  local name=$1
  PID_OF[$name]=$2
  shift 2
  ARGS_OF[$name]="$*"
  TARGETS+=("$name")
}

# ---- latchkey --------------------------------------------------------------
lk() { "$bin" --data-dir "$OUT/latchkey" "$@"; }
shop=$(lk shop create --name "Load bench" --owner-email "load@bench.example" --json | jq -r .shop_id)
lk test-data reset --shop "$shop" --json >/dev/null
: >"$OUT/keys.txt"
: >"$OUT/key_ids.txt"
for i in $(seq "$KEYS"); do
  lk keys create --shop "$shop" --name "load $i" --environment test \
    --permission orders:read --rate-limit 10000 --json >"$OUT/key.json"
  jq -r .key.secret "$OUT/key.json" >>"$OUT/keys.txt"
  jq -r .key.id "$OUT/key.json" >>"$OUT/key_ids.txt"
done
: >"$OUT/keys_noperm.txt"
for i in $(seq "$KEYS"); do
  lk keys create --shop "$shop" --name "no orders $i" --environment test \
    --permission clients:read --rate-limit 10000 --json | jq -r .key.secret >>"$OUT/keys_noperm.txt"
done
admin=$(lk keys create --shop "$shop" --name "usage reader" --environment test \
  --permission keys:read --rate-limit 10000 --json | jq -r .key.secret)
rm -f "$OUT/key.json"

taskset -c "$SERVER_CPU" "$bin" --data-dir "$OUT/latchkey" serve --listen "127.0.0.1:$LK_PORT" \
  >"$OUT/latchkey.log" 2>&1 &
lk_pid=$!
BENCH_PIDS+=("$lk_pid")
wait_http "http://127.0.0.1:$LK_PORT/healthz"
first_key=$(head -1 "$OUT/keys.txt")
curl -sf "http://127.0.0.1:$LK_PORT/api/v1/me" -H "X-API-Key: $first_key" >"$OUT/me.json"
order=$(curl -sf "http://127.0.0.1:$LK_PORT/api/v1/orders?per_page=1" -H "X-API-Key: $first_key" |
  jq -r '(.orders // .data // .items)[0].id')
[ -n "$order" ] && [ "$order" != null ] || { echo "no order in the test data" >&2; exit 1; }

# /healthz through the same script as the keyed runs (it ignores the key), so
# wrk does the same work per request in every run.
target latchkey_healthz "$lk_pid" -s bench/keys.lua "http://127.0.0.1:$LK_PORT" -- "$OUT/keys.txt" /healthz
target latchkey_me "$lk_pid" -s bench/keys.lua "http://127.0.0.1:$LK_PORT" -- "$OUT/keys.txt" /api/v1/me
target latchkey_order "$lk_pid" -s bench/keys.lua "http://127.0.0.1:$LK_PORT" -- "$OUT/keys.txt" "/api/v1/orders/$order"
target latchkey_auth_only "$lk_pid" -s bench/keys.lua "http://127.0.0.1:$LK_PORT" -- "$OUT/keys_noperm.txt" "/api/v1/orders/$order"

# The default logging: a second instance on the same database with
# LATCHKEY_LOG unset, its request log in a file.
env -u LATCHKEY_LOG taskset -c "$SERVER_CPU" "$bin" --data-dir "$OUT/latchkey" serve --listen "127.0.0.1:$LK_LOG_PORT" \
  >"$OUT/latchkey_logged.log" 2>&1 &
lk_log_pid=$!
BENCH_PIDS+=("$lk_log_pid")
wait_http "http://127.0.0.1:$LK_LOG_PORT/healthz"
target latchkey_logged_healthz "$lk_log_pid" -s bench/keys.lua "http://127.0.0.1:$LK_LOG_PORT" -- "$OUT/keys.txt" /healthz
target latchkey_logged_me "$lk_log_pid" -s bench/keys.lua "http://127.0.0.1:$LK_LOG_PORT" -- "$OUT/keys.txt" /api/v1/me

# The peers answer with latchkey's own /me body, so every response is the same size.
peer_map() { # FORMAT: nginx | haproxy
  paste -d' ' "$OUT/keys.txt" "$OUT/key_ids.txt" | while read -r k id; do
    if [ "$1" = nginx ]; then echo "\"$k\" $id;"; else echo "$k $id"; fi
  done
}

# ---- nginx -----------------------------------------------------------------
if [[ " $PEERS " == *" nginx "* ]]; then
  mkdir -p "$OUT/nginx/tmp"
  cp bench/peers/nginx.conf "$OUT/nginx/nginx.conf"
  sed -i "s/127.0.0.1:18081/127.0.0.1:$NGINX_PORT/" "$OUT/nginx/nginx.conf"
  cp "$OUT/me.json" "$OUT/nginx/me.json"
  peer_map nginx >"$OUT/nginx/keys.map"
  taskset -c "$SERVER_CPU" nginx -p "$OUT/nginx/" -c "$OUT/nginx/nginx.conf" -e stderr -g 'daemon off;' \
    >"$OUT/nginx.log" 2>&1 &
  pid=$!
  BENCH_PIDS+=("$pid")
  wait_http "http://127.0.0.1:$NGINX_PORT/healthz"
  curl -sf "http://127.0.0.1:$NGINX_PORT/api/v1/me" -H "X-API-Key: $first_key" >/dev/null
  target nginx_healthz "$pid" -s bench/keys.lua "http://127.0.0.1:$NGINX_PORT" -- "$OUT/keys.txt" /healthz
  target nginx_me "$pid" -s bench/keys.lua "http://127.0.0.1:$NGINX_PORT" -- "$OUT/keys.txt" /api/v1/me
fi

# ---- HAProxy -----------------------------------------------------------------
if [[ " $PEERS " == *" haproxy "* ]]; then
  mkdir -p "$OUT/haproxy"
  cp "$OUT/me.json" "$OUT/haproxy/me.json"
  peer_map haproxy >"$OUT/haproxy/keys.map"
  BENCH_DIR="$OUT/haproxy" HAPROXY_PORT=$HAPROXY_PORT taskset -c "$SERVER_CPU" \
    haproxy -db -f bench/peers/haproxy.cfg >"$OUT/haproxy.log" 2>&1 &
  pid=$!
  BENCH_PIDS+=("$pid")
  wait_http "http://127.0.0.1:$HAPROXY_PORT/healthz"
  curl -sf "http://127.0.0.1:$HAPROXY_PORT/api/v1/me" -H "X-API-Key: $first_key" >/dev/null
  target haproxy_healthz "$pid" -s bench/keys.lua "http://127.0.0.1:$HAPROXY_PORT" -- "$OUT/keys.txt" /healthz
  target haproxy_me "$pid" -s bench/keys.lua "http://127.0.0.1:$HAPROXY_PORT" -- "$OUT/keys.txt" /api/v1/me
fi

# ---- Django REST Framework API Key ---------------------------------------------
if [[ " $PEERS " == *" drf "* ]]; then
  venv=$root/target/bench/drf-venv
  if [ ! -x "$venv/bin/gunicorn" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r bench/peers/drf/requirements.txt
  fi
  mkdir -p "$OUT/drf"
  export DRF_DB="$OUT/drf/db.sqlite3" DRF_ME_JSON="$OUT/me.json"
  (cd bench/peers/drf && "$venv/bin/python" manage.py migrate -v0 && "$venv/bin/python" seed.py "$KEYS") \
    >"$OUT/drf/keys_and_ids.txt"
  cut -d' ' -f1 "$OUT/drf/keys_and_ids.txt" >"$OUT/drf/keys.txt"
  taskset -c "$SERVER_CPU" "$venv/bin/gunicorn" --chdir bench/peers/drf -w "$DRF_WORKERS" \
    -b "127.0.0.1:$DRF_PORT" --log-level warning benchsite.wsgi >"$OUT/drf.log" 2>&1 &
  pid=$!
  BENCH_PIDS+=("$pid")
  wait_http "http://127.0.0.1:$DRF_PORT/healthz"
  curl -sf "http://127.0.0.1:$DRF_PORT/api/v1/me" -H "X-API-Key: $(head -1 "$OUT/drf/keys.txt")" >/dev/null
  target drf_me "$pid" -s bench/keys.lua "http://127.0.0.1:$DRF_PORT" -- "$OUT/drf/keys.txt" /api/v1/me
fi

# ---- latchkey on PostgreSQL -------------------------------------------------------
if [[ " $PEERS " == *" postgres "* ]]; then
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -x "$pg_bin/initdb" ] || { echo "PEERS has postgres: install Debian's postgresql package" >&2; exit 1; }
  pg_dir="$OUT/postgres"
  mkdir -p "$pg_dir"
  as_pg=()
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$pg_dir"
    as_pg=(runuser -u postgres --)
  fi
  "${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust >"$OUT/postgres.init.log"
  taskset -c "$SERVER_CPU" "${as_pg[@]}" "$pg_bin/postgres" -D "$pg_dir/data" -p "$PG_PORT" -k "$pg_dir" \
    -c listen_addresses=127.0.0.1 >"$OUT/postgres.log" 2>&1 &
  BENCH_PIDS+=("$!")
  for _ in $(seq 50); do "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break; sleep 0.2; done
  pg_url="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  # Same secret as the SQLite instance, so one data dir serves both.
  lk_pg() { "$bin" --data-dir "$OUT/latchkey" --database-url "$pg_url" "$@"; }
  pg_shop=$(lk_pg shop create --name "Load bench (PostgreSQL)" --owner-email "load-pg@bench.example" --json | jq -r .shop_id)
  lk_pg test-data reset --shop "$pg_shop" --json >/dev/null
  : >"$OUT/keys_pg.txt"
  for i in $(seq "$KEYS"); do
    lk_pg keys create --shop "$pg_shop" --name "load $i" --environment test \
      --permission orders:read --rate-limit 10000 --json | jq -r .key.secret >>"$OUT/keys_pg.txt"
  done
  taskset -c "$SERVER_CPU" "$bin" --data-dir "$OUT/latchkey" --database-url "$pg_url" serve \
    --listen "127.0.0.1:$LK_PG_PORT" >"$OUT/latchkey_pg.log" 2>&1 &
  lk_pg_pid=$!
  BENCH_PIDS+=("$lk_pg_pid")
  wait_http "http://127.0.0.1:$LK_PG_PORT/healthz"
  pg_key=$(head -1 "$OUT/keys_pg.txt")
  pg_order=$(curl -sf "http://127.0.0.1:$LK_PG_PORT/api/v1/orders?per_page=1" -H "X-API-Key: $pg_key" | jq -r '.orders[0].id')
  [ -n "$pg_order" ] && [ "$pg_order" != null ] || { echo "no order in the PostgreSQL test data" >&2; exit 1; }
  # PostgreSQL runs on the server's core too, so both instances' CPU counts
  # the database's work: PID_OF names latchkey only; see the CPU note below.
  target latchkey_pg_me "$lk_pg_pid" -s bench/keys.lua "http://127.0.0.1:$LK_PG_PORT" -- "$OUT/keys_pg.txt" /api/v1/me
  target latchkey_pg_order "$lk_pg_pid" -s bench/keys.lua "http://127.0.0.1:$LK_PG_PORT" -- "$OUT/keys_pg.txt" "/api/v1/orders/$pg_order"
fi

# ---- latchkey with the Redis limiter ----------------------------------------------
if [[ " $PEERS " == *" redis "* ]]; then
  mkdir -p "$OUT/redis"
  taskset -c "$SERVER_CPU" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$OUT/redis" \
    --save "" --appendonly no >"$OUT/redis.log" 2>&1 &
  BENCH_PIDS+=("$!")
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null && break; sleep 0.1; done
  # The same database and keys as the in-memory instance: only the limiter differs.
  taskset -c "$SERVER_CPU" "$bin" --data-dir "$OUT/latchkey" serve --listen "127.0.0.1:$LK_REDIS_PORT" \
    --redis-url "redis://127.0.0.1:$REDIS_PORT" --redis-unavailable deny >"$OUT/latchkey_redis.log" 2>&1 &
  lk_redis_pid=$!
  BENCH_PIDS+=("$lk_redis_pid")
  wait_http "http://127.0.0.1:$LK_REDIS_PORT/readyz"
  curl -sf "http://127.0.0.1:$LK_REDIS_PORT/api/v1/me" -H "X-API-Key: $first_key" >/dev/null
  target latchkey_redis_me "$lk_redis_pid" -s bench/keys.lua "http://127.0.0.1:$LK_REDIS_PORT" -- "$OUT/keys.txt" /api/v1/me
  # One connection, one request at a time: the latency the round trip adds,
  # without queueing.
  target latchkey_me_c1 "$lk_pid" -c1 -s bench/keys.lua "http://127.0.0.1:$LK_PORT" -- "$OUT/keys.txt" /api/v1/me
  target latchkey_redis_me_c1 "$lk_redis_pid" -c1 -s bench/keys.lua "http://127.0.0.1:$LK_REDIS_PORT" -- "$OUT/keys.txt" /api/v1/me
fi

# ---- a baseline latchkey build ------------------------------------------------
if [[ " $PEERS " == *" baseline "* ]]; then
  base_bin=${BASELINE_BIN:?PEERS has baseline: set BASELINE_BIN to another latchkey binary}
  [ -x "$base_bin" ] || { echo "BASELINE_BIN=$base_bin is not an executable" >&2; exit 1; }
  lk_base() { "$base_bin" --data-dir "$OUT/baseline" "$@"; }
  base_shop=$(lk_base shop create --name "Load bench (baseline)" --owner-email "load-base@bench.example" --json | jq -r .shop_id)
  : >"$OUT/keys_base.txt"
  for i in $(seq "$KEYS"); do
    lk_base keys create --shop "$base_shop" --name "load $i" --environment test \
      --permission orders:read --rate-limit 10000 --json | jq -r .key.secret >>"$OUT/keys_base.txt"
  done
  taskset -c "$SERVER_CPU" "$base_bin" --data-dir "$OUT/baseline" serve --listen "127.0.0.1:$LK_BASE_PORT" \
    >"$OUT/latchkey_base.log" 2>&1 &
  lk_base_pid=$!
  BENCH_PIDS+=("$lk_base_pid")
  wait_http "http://127.0.0.1:$LK_BASE_PORT/healthz"
  curl -sf "http://127.0.0.1:$LK_BASE_PORT/api/v1/me" -H "X-API-Key: $(head -1 "$OUT/keys_base.txt")" >/dev/null
  target latchkey_base_healthz "$lk_base_pid" -s bench/keys.lua "http://127.0.0.1:$LK_BASE_PORT" -- "$OUT/keys_base.txt" /healthz
  target latchkey_base_me "$lk_base_pid" -s bench/keys.lua "http://127.0.0.1:$LK_BASE_PORT" -- "$OUT/keys_base.txt" /api/v1/me
fi

# ---- the measured rounds ----------------------------------------------------
for round in $(seq "$ROUNDS"); do
  for name in "${TARGETS[@]}"; do
    # shellcheck disable=SC2086 # ARGS_OF holds words (no spaces inside any)
    run "$name" "$round" ${ARGS_OF[$name]}
  done
done
declare -A RESULT
for name in "${TARGETS[@]}"; do
  # The round with the median requests/s (the middle line once sorted).
  RESULT[$name]=$(sort -g -k1,1 "$OUT/$name.rounds" | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }')
done
lk_rss=$(rss_kib "$lk_pid")
lk_log_rss=$(rss_kib "$lk_log_pid")

# ---- usage accuracy ----------------------------------------------------------
usage_line="skipped: GET /api/v1/keys/{id}/usage does not answer yet"
first_id=$(head -1 "$OUT/key_ids.txt")
usage_status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$LK_PORT/api/v1/keys/$first_id/usage" -H "X-API-Key: $admin")
usage_sum() {
  local id sum=0 n
  while read -r id; do
    n=$(curl -sf "http://127.0.0.1:$LK_PORT/api/v1/keys/$id/usage" -H "X-API-Key: $admin" | jq -r '.usage.requests.total')
    sum=$((sum + n))
  done <"$OUT/key_ids.txt"
  echo "$sum"
}
if [ "$usage_status" = 200 ]; then
  echo "== usage accuracy" >&2
  sleep 3 # earlier runs' counts flushed (once a second)
  before=$(usage_sum)
  budget=$(((USAGE_REQUESTS + THREADS - 1) / THREADS))
  wrk_until_done "$THREADS" "$OUT/usage_wrk.txt" taskset -c "$CLIENT_CPU" wrk -t"$THREADS" -c"$CONNECTIONS" \
    -d300s --latency -s bench/usage_count.lua "http://127.0.0.1:$LK_PORT" -- "$OUT/keys.txt" /api/v1/me "$budget"
  sent=$(awk '/^keyed responses:/ {print $3}' "$OUT/usage_wrk.txt")
  wrk_total=$(awk '/requests in/ {print $1}' "$OUT/usage_wrk.txt")
  sleep 3 # usage figures include requests up to 2 s old
  after=$(usage_sum)
  counted=$((after - before))
  verdict=$([ "$counted" = "$sent" ] && echo "equal: met" || echo "DIFFERENT: not met")
  usage_line="wrk sent and counted ${sent} keyed requests (of ${wrk_total} in all; the rest are unkeyed /healthz fillers after the budget); the usage endpoint's request counts rose by ${counted}: ${verdict}"
  echo "   $usage_line" >&2
elif [ "$usage_status" != 404 ]; then
  usage_line="skipped: GET /api/v1/keys/{id}/usage answered $usage_status"
fi
stop_all
# The logged instance's request lines (its log is large: counted, then removed).
logged_lines=$(grep -c ' request ' "$OUT/latchkey_logged.log" || true)
rm -f "$OUT/latchkey_logged.log"

# ---- report -------------------------------------------------------------------
field() { echo "${RESULT[$1]:-}" | awk -v i="$2" '{print $i}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
# Requests per second of server CPU time: the server's cost per request, which
# still compares when wrk (not the server) is the bottleneck.
per_cpu() { awk -v r="$(field "$1" 1)" -v c="$(field "$1" 7)" 'BEGIN { if (c > 0) printf "%.0f", r / (c / 100); else print 0 }'; }
me_rps=$(field latchkey_me 1)
{
  echo "$info"
  echo "- Load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency (after a $WARMUP warm-up), wrk on CPU $CLIENT_CPU, every server on CPU $SERVER_CPU; keyed runs cycle through $KEYS keys (bench/keys.lua); $ROUNDS interleaved rounds, each row the round with the median requests/s (all rounds: \`${OUT#"$root/"}/*.rounds\` of the checkout that ran it)"
  echo "- Command: \`bench/load.sh\` (ROUNDS=$ROUNDS DURATION=$DURATION CONNECTIONS=$CONNECTIONS KEYS=$KEYS DRF_WORKERS=$DRF_WORKERS)"
  echo "- Load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "| Server | Request | Requests/s | p50 (ms) | p99 (ms) | Non-2xx | Server CPU | Requests per server CPU-second | latchkey keyed /me ÷ this (req/s) | … (per CPU-second) |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  row() { # NAME SERVER REQUEST
    [ -n "${RESULT[$1]:-}" ] || return 0
    local r e
    r=$(ratio "$me_rps" "$(field "$1" 1)")
    e=$(ratio "$(per_cpu latchkey_me)" "$(per_cpu "$1")")
    printf '| %s | %s | %.0f | %s | %s | %s | %s %% | %.0f | %s | %s |\n' "$2" "$3" "$(field "$1" 1)" "$(field "$1" 2)" "$(field "$1" 3)" \
      "$(field "$1" 5)" "$(field "$1" 7)" "$(per_cpu "$1")" "$r" "$e"
  }
  row latchkey_healthz latchkey "GET /healthz (no key)"
  row latchkey_me latchkey "GET /api/v1/me (keyed)"
  row latchkey_order latchkey "GET /api/v1/orders/{id} (keyed)"
  row latchkey_auth_only latchkey "GET /api/v1/orders/{id}, key without orders:read (403: auth only, no handler)"
  row latchkey_logged_healthz "latchkey, default logging" "GET /healthz (no key)"
  row latchkey_logged_me "latchkey, default logging" "GET /api/v1/me (keyed)"
  row latchkey_pg_me "latchkey on PostgreSQL $("${pg_bin:-/nonexistent}/postgres" --version 2>/dev/null | awk '{print $3}')" "GET /api/v1/me (keyed)"
  row latchkey_pg_order "latchkey on PostgreSQL" "GET /api/v1/orders/{id} (keyed; one indexed read)"
  row latchkey_redis_me "latchkey, Redis limiter (redis-server $(redis-server --version 2>/dev/null | awk '{print $3}' | sed 's/v=//'))" "GET /api/v1/me (keyed)"
  row latchkey_me_c1 latchkey "GET /api/v1/me (keyed), one connection"
  row latchkey_redis_me_c1 "latchkey, Redis limiter" "GET /api/v1/me (keyed), one connection"
  row latchkey_base_healthz "latchkey baseline ($("${base_bin:-/nonexistent}" --version 2>/dev/null || echo "${base_bin:-}"))" "GET /healthz (no key)"
  row latchkey_base_me "latchkey baseline" "GET /api/v1/me (keyed)"
  # Only the peers that ran are named (a missing binary must not end the report).
  nginx_name="nginx $({ command -v nginx >/dev/null && nginx -v 2>&1 | sed 's|.*/||'; } || true)"
  haproxy_name="HAProxy $({ command -v haproxy >/dev/null && haproxy -v | awk 'NR==1 {print $3}'; } || true)"
  row nginx_healthz "$nginx_name" "GET /healthz (no key, a fixed string)"
  row nginx_me "$nginx_name" "GET /api/v1/me (keyed)"
  row haproxy_healthz "$haproxy_name" "GET /healthz (no key, a fixed string)"
  row haproxy_me "$haproxy_name" "GET /api/v1/me (keyed)"
  row drf_me "DRF API Key $(grep djangorestframework-api-key bench/peers/drf/requirements.txt | cut -d= -f3), gunicorn -w $DRF_WORKERS" "GET /api/v1/me (keyed)"
  echo
  hz=$(field latchkey_healthz 1)
  echo "- Auth overhead (1 - keyed /me ÷ /healthz): $(awk -v a="$me_rps" -v b="$hz" 'BEGIN { printf "%.1f %%", (1 - a / b) * 100 }') (target <= 15 %; /me answers from memory: key, cached shop, JSON)"
  overhead() { awk -v a="$(field "$1" 1)" -v b="$(field "$2" 1)" 'BEGIN { if (b > 0) printf "%.1f %%", (1 - a / b) * 100; else printf "-" }'; }
  [ -n "${RESULT[nginx_healthz]:-}" ] && echo "- The same measure for the peers (1 - keyed /me ÷ their own /healthz; the /me body is ~0.7 kB, /healthz 15 bytes): nginx $(overhead nginx_me nginx_healthz), HAProxy $(overhead haproxy_me haproxy_healthz)"
  echo "- Auth overhead without a handler (1 - 403 auth-only ÷ /healthz): $(awk -v a="$(field latchkey_auth_only 1)" -v b="$hz" 'BEGIN { printf "%.1f %%", (1 - a / b) * 100 }')"
  echo "- The same per server CPU-second (cost per request, whoever was the bottleneck): keyed /me $(awk -v a="$(per_cpu latchkey_me)" -v b="$(per_cpu latchkey_healthz)" 'BEGIN { printf "%.1f %%", (1 - a / b) * 100 }'), 403 auth-only $(awk -v a="$(per_cpu latchkey_auth_only)" -v b="$(per_cpu latchkey_healthz)" 'BEGIN { printf "%.1f %%", (1 - a / b) * 100 }')"
  echo "- Server CPU below ~95 % means wrk (one core, shared with other jobs) was the bottleneck, not the server: compare those rows per CPU-second"
  [ -n "${RESULT[nginx_me]:-}" ] && echo "- latchkey ÷ nginx, keyed /me: $(ratio "$me_rps" "$(field nginx_me 1)") in requests/s, $(ratio "$(per_cpu latchkey_me)" "$(per_cpu nginx_me)") per server CPU-second; with latchkey's default logging (nginx logs nothing): $(ratio "$(field latchkey_logged_me 1)" "$(field nginx_me 1)") in requests/s, $(ratio "$(per_cpu latchkey_logged_me)" "$(per_cpu nginx_me)") per server CPU-second (target >= 1.0)"
  [ -n "${RESULT[nginx_healthz]:-}" ] && echo "- latchkey ÷ nginx, /healthz: $(ratio "$hz" "$(field nginx_healthz 1)") in requests/s, $(ratio "$(per_cpu latchkey_healthz)" "$(per_cpu nginx_healthz)") per server CPU-second (target >= 0.8)"
  echo "- Default logging (${logged_lines} request lines written): keyed /me $(ratio "$(field latchkey_logged_me 1)" "$me_rps") and /healthz $(ratio "$(field latchkey_logged_healthz 1)" "$hz") of the same without the request log; keyed /me ÷ /healthz with it $(ratio "$(field latchkey_logged_me 1)" "$(field latchkey_logged_healthz 1)"), without it $(ratio "$me_rps" "$hz") (target >= 0.85); RSS $((lk_log_rss / 1024)) MiB"
  [ -n "${RESULT[haproxy_me]:-}" ] && echo "- latchkey ÷ HAProxy: $(ratio "$me_rps" "$(field haproxy_me 1)") in requests/s, $(ratio "$(per_cpu latchkey_me)" "$(per_cpu haproxy_me)") per server CPU-second"
  [ -n "${RESULT[drf_me]:-}" ] && echo "- latchkey ÷ DRF: $(ratio "$me_rps" "$(field drf_me 1)") in requests/s, $(ratio "$(per_cpu latchkey_me)" "$(per_cpu drf_me)") per server CPU-second (target >= 20)"
  [ -n "${RESULT[latchkey_pg_order]:-}" ] && echo "- Keyed read, PostgreSQL ÷ SQLite (GET /api/v1/orders/{id}): $(ratio "$(field latchkey_pg_order 1)" "$(field latchkey_order 1)") in requests/s; keyed /me (no query either way) $(ratio "$(field latchkey_pg_me 1)" "$me_rps"). PostgreSQL shares the server's core and its CPU is not in the CPU column"
  [ -n "${RESULT[latchkey_redis_me]:-}" ] && echo "- Redis limiter ÷ in-memory limiter, keyed /me: $(ratio "$(field latchkey_redis_me 1)" "$me_rps") in requests/s (target >= 0.7), $(ratio "$(per_cpu latchkey_redis_me)" "$(per_cpu latchkey_me)") per latchkey CPU-second; latency added at one connection (no queueing) p50 $(awk -v a="$(field latchkey_redis_me_c1 2)" -v b="$(field latchkey_me_c1 2)" 'BEGIN { printf "%+.3f ms", a - b }'), p99 $(awk -v a="$(field latchkey_redis_me_c1 3)" -v b="$(field latchkey_me_c1 3)" 'BEGIN { printf "%+.3f ms", a - b }'); under load (64 connections) p50 $(awk -v a="$(field latchkey_redis_me 2)" -v b="$(field latchkey_me 2)" 'BEGIN { printf "%+.2f ms", a - b }'), p99 $(awk -v a="$(field latchkey_redis_me 3)" -v b="$(field latchkey_me 3)" 'BEGIN { printf "%+.2f ms", a - b }'). Redis shares the server's core and its CPU is not in the CPU column"
  [ -n "${RESULT[latchkey_base_me]:-}" ] && echo "- Keyed /me ÷ /healthz, this build $(ratio "$me_rps" "$hz") vs the baseline build $(ratio "$(field latchkey_base_me 1)" "$(field latchkey_base_healthz 1)") (BASELINE_BIN=$(basename "$base_bin")); this build's /me ÷ the baseline's: $(ratio "$me_rps" "$(field latchkey_base_me 1)")"
  echo "- latchkey RSS after its runs: $((lk_rss / 1024)) MiB"
  echo "- Usage accuracy: $usage_line"
} >"$OUT/results.md"
cat "$OUT/results.md"
if [ "$UPDATE_DOCS" = 1 ]; then
  replace_block docs/BENCHMARKS.md load "$OUT/results.md"
fi
echo "raw wrk output: $OUT" >&2
