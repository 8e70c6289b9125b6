#!/usr/bin/env bash
# A whole latchkey cluster on this machine, for trying it out and as the worked
# example of docs/DEPLOY.md: a throwaway PostgreSQL, a throwaway Redis, three
# `latchkey serve` instances sharing both (and one server secret), and HAProxy
# in front of them on one port. Everything listens on 127.0.0.1 only, lives in
# one temporary directory, and stops on Ctrl-C (or SIGTERM): instances first,
# so their last usage counts are flushed, then HAProxy, Redis and PostgreSQL.
#
#   scripts/cluster.sh
#
# Needs Debian's (or Ubuntu's) packages: postgresql, redis-server, haproxy
# (`sudo apt-get install postgresql redis-server haproxy`); their system
# services are not used. Builds latchkey with `cargo build --release` unless
# LATCHKEY_BIN names a binary.
#
# Environment (defaults): PORT=8080 (HAProxy, the cluster's one URL)
# INSTANCES=3 FIRST_INSTANCE_PORT=8081 PG_PORT=15432 REDIS_PORT=16379
# LATCHKEY_BIN=target/release/latchkey CLUSTER_DIR=<new temporary directory>
# KEEP_CLUSTER_DIR=0 (1 keeps the directory, its logs and data, after stopping)
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-8080}
INSTANCES=${INSTANCES:-3}
FIRST_INSTANCE_PORT=${FIRST_INSTANCE_PORT:-8081}
PG_PORT=${PG_PORT:-15432}
REDIS_PORT=${REDIS_PORT:-16379}
KEEP_CLUSTER_DIR=${KEEP_CLUSTER_DIR:-0}

say() { echo "cluster: $*" >&2; }
die() {
  say "$*"
  exit 1
}

# ---- what it needs -------------------------------------------------------------
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
missing=()
[ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v haproxy >/dev/null || missing+=(haproxy)
command -v curl >/dev/null || missing+=(curl)
[ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]}; install with: sudo apt-get install ${missing[*]}"
case "$INSTANCES" in
  '' | *[!0-9]*) die "INSTANCES=$INSTANCES: give a number from 1 to 9" ;;
esac
[ "$INSTANCES" -ge 1 ] && [ "$INSTANCES" -le 9 ] || die "INSTANCES=$INSTANCES: give a number from 1 to 9"

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ports=("$PORT" "$PG_PORT" "$REDIS_PORT")
for i in $(seq 0 $((INSTANCES - 1))); do ports+=($((FIRST_INSTANCE_PORT + i))); done
for p in "${ports[@]}"; do
  if port_in_use "$p"; then
    die "port $p on 127.0.0.1 is in use; stop what listens there or choose other ports (PORT, FIRST_INSTANCE_PORT, PG_PORT, REDIS_PORT)"
  fi
done

# latchkey refuses LATCHKEY_* variables it does not know: keep this one to the script.
bin=${LATCHKEY_BIN:-}
unset LATCHKEY_BIN
if [ -z "$bin" ]; then
  say "building latchkey (cargo build --release; the first build takes a few minutes)"
  cargo build --release --quiet
  bin=$(pwd)/target/release/latchkey
fi
[ -x "$bin" ] || die "LATCHKEY_BIN=$bin is not an executable"

# ---- one directory for everything, removed on the way out ----------------------------
dir=${CLUSTER_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/latchkey-cluster.XXXXXX")}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
chmod 0755 "$dir" # PostgreSQL runs as its own user when we are root

pids=()        # instances, then HAProxy, Redis: stopped in this order
pg_started=""
as_pg=()
stopping=""
stop_all() {
  [ -z "$stopping" ] || return 0
  stopping=1
  trap - INT TERM
  say "stopping"
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$pg_started" ]; then
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$dir/postgres" -m fast -w stop >/dev/null 2>&1 || true
  fi
  if [ "$KEEP_CLUSTER_DIR" = 1 ]; then
    say "kept $dir (logs: $dir/*.log)"
  else
    rm -rf "$dir"
  fi
  say "stopped"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for() { # URL SECONDS WHAT
  local i
  for i in $(seq $(($2 * 10))); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1")" = 200 ]; then return 0; fi
    sleep 0.1
  done
  die "$3 did not answer $1 within $2 s; its log is in $dir (set KEEP_CLUSTER_DIR=1 to keep it)"
}

# ---- PostgreSQL --------------------------------------------------------------------
if [ "$(id -u)" = 0 ]; then
  as_pg=(runuser -u postgres --)
  mkdir -p "$dir/postgres"
  chown postgres "$dir/postgres"
fi
say "starting PostgreSQL on 127.0.0.1:$PG_PORT"
"${as_pg[@]}" "$pg_bin/initdb" -D "$dir/postgres" -U postgres -A trust >"$dir/postgres-init.log" 2>&1 ||
  die "initdb failed: $(tail -3 "$dir/postgres-init.log")"
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$dir/postgres" -l "$dir/postgres/server.log" -w \
  -o "-p $PG_PORT -k $dir/postgres -c listen_addresses=127.0.0.1" start >/dev/null ||
  die "PostgreSQL did not start: $(tail -3 "$dir/postgres/server.log" 2>/dev/null)"
pg_started=1
"${as_pg[@]}" "$pg_bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres latchkey
database_url="postgres://postgres@127.0.0.1:$PG_PORT/latchkey"

# ---- Redis ---------------------------------------------------------------------------
say "starting Redis on 127.0.0.1:$REDIS_PORT"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$dir" --save "" --appendonly no \
  --daemonize no >"$dir/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 50); do port_in_use "$REDIS_PORT" && break; sleep 0.1; done
port_in_use "$REDIS_PORT" || die "Redis did not start: $(tail -3 "$dir/redis.log")"
redis_url="redis://127.0.0.1:$REDIS_PORT"

# ---- the instances: one secret, one database, one Redis ------------------------------------
# The secret is made once, here, and every instance reads the same file
# (docs/DEPLOY.md: in production it comes from your secret manager).
(umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$dir/secret.key")
export LATCHKEY_DATABASE_URL=$database_url LATCHKEY_REDIS_URL=$redis_url \
  LATCHKEY_SECRET_FILE=$dir/secret.key LATCHKEY_PUBLIC_URL="http://127.0.0.1:$PORT" \
  LATCHKEY_TRUSTED_PROXIES=127.0.0.1/32
# Migrations once, before any instance (the instances would also agree among
# themselves: one migrates, the others wait).
"$bin" --data-dir "$dir/cli" migrate >"$dir/migrate.log" 2>&1 ||
  die "latchkey migrate failed: $(tail -3 "$dir/migrate.log")"
backends=""
for i in $(seq 1 "$INSTANCES"); do
  port=$((FIRST_INSTANCE_PORT + i - 1))
  say "starting latchkey instance $i on 127.0.0.1:$port"
  "$bin" --data-dir "$dir/instance-$i" serve --listen "127.0.0.1:$port" \
    >"$dir/instance-$i.log" 2>&1 &
  pids+=("$!")
  backends+="    server latchkey-$i 127.0.0.1:$port check"$'\n'
done
for i in $(seq 1 "$INSTANCES"); do
  wait_for "http://127.0.0.1:$((FIRST_INSTANCE_PORT + i - 1))/readyz" 60 "instance $i"
done

# ---- HAProxy in front ---------------------------------------------------------------------
cat >"$dir/haproxy.cfg" <<EOF
global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    option forwardfor
frontend latchkey
    bind 127.0.0.1:$PORT
    default_backend instances
backend instances
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 1s fall 2 rise 1
$backends
EOF
say "starting HAProxy on 127.0.0.1:$PORT"
haproxy -db -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 &
pids+=("$!")
pids+=("$redis_pid")
wait_for "http://127.0.0.1:$PORT/readyz" 30 "HAProxy"

setup=$(grep -ho 'http://[^ ]*/setup?token=[A-Za-z0-9]*' "$dir"/instance-*.log | head -1 || true)
echo
echo "latchkey cluster: $INSTANCES instances behind HAProxy at http://127.0.0.1:$PORT"
echo "  PostgreSQL $database_url, Redis $redis_url, logs and data in $dir"
if [ -n "$setup" ]; then
  echo "  first run: open $setup to create the shop and its owner"
fi
echo "  readiness: curl http://127.0.0.1:$PORT/readyz"
echo "  stop everything with Ctrl-C"
echo

# Until Ctrl-C, or until a process of the cluster ends on its own.
while :; do
  for pid in "${pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      die "a process of the cluster (pid $pid) stopped on its own; logs in $dir (KEEP_CLUSTER_DIR=1 keeps them)"
    fi
  done
  sleep 1
done
