# Shared by bench/load.sh and bench/scale.sh (sourced, not run).

# Processes this script started; stopped (by pid) on exit.
BENCH_PIDS=()
stop_all() {
  local pid
  for pid in "${BENCH_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${BENCH_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  BENCH_PIDS=()
}

# stop_pid PID [MAX_SECONDS]: stops one process started here (SIGTERM, then
# SIGKILL after MAX_SECONDS, default 60). Sets STOP_SECONDS to how long it took
# to exit, and STOP_KILLED=1 if it had to be killed.
STOP_SECONDS=0
STOP_KILLED=0
stop_pid() {
  local pid=$1 max=${2:-60} rest=() p started
  started=$(date +%s%N)
  STOP_KILLED=0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq $((max * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    STOP_KILLED=1
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  STOP_SECONDS=$(awk -v ns="$(($(date +%s%N) - started))" 'BEGIN { printf "%.1f", ns / 1e9 }')
  for p in "${BENCH_PIDS[@]}"; do [ "$p" = "$pid" ] || rest+=("$p"); done
  BENCH_PIDS=("${rest[@]}")
}

need() {
  local missing=()
  for c in "$@"; do command -v "$c" >/dev/null || missing+=("$c"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "missing: ${missing[*]} (Debian: apt-get install wrk nginx-light haproxy valgrind jq curl python3-venv)" >&2
    exit 1
  fi
}

port_free() {
  if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/"; then
    echo "port $1 is already in use; stop what listens there or pick another port" >&2
    exit 1
  fi
}

# wait_http URL [seconds]: waits until URL answers 200 (bounded).
wait_http() {
  local url=$1 limit=${2:-30} i
  for i in $(seq $((limit * 10))); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url")" = 200 ]; then return 0; fi
    sleep 0.1
  done
  echo "no answer from $url after ${limit}s" >&2
  return 1
}

# wrk_until_done THREADS OUTFILE COMMAND...: runs COMMAND, a wrk (its own -d bounds
# it) with a script that, per thread, creates "$WRK_DONE_FILE.<n>" when its
# work is done and stops; once every thread has, wrk is interrupted (SIGINT:
# it prints its report and exits; its own runtime then ends there too).
wrk_until_done() {
  local threads=$1 out=$2 marker wpid
  shift 2
  marker=$(mktemp -u "${TMPDIR:-/tmp}/wrk-done.XXXXXX")
  WRK_DONE_FILE=$marker "$@" >"$out" &
  wpid=$!
  while kill -0 "$wpid" 2>/dev/null; do
    if [ "$(compgen -G "$marker.*" | wc -l)" -ge "$threads" ]; then
      kill -INT "$wpid" 2>/dev/null || true
      break
    fi
    sleep 0.05
  done
  wait "$wpid" || true
  rm -f "$marker".*
}

# to_ms VALUE: wrk's latency (e.g. 812.00us, 1.23ms, 1.01s) in milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else { printf "%s", v }
  }'
}

# parse_wrk FILE: prints "rps p50_ms p99_ms requests non2xx socket_errors".
parse_wrk() {
  local f=$1 rps p50 p99 total non2xx errors
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$f")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")
  total=$(awk '/requests in/ {print $1}' "$f")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$f")
  errors=$(awk '/Socket errors:/ {s = 0; for (i = 4; i <= NF; i += 2) { gsub(",", "", $i); s += $i }; print s}' "$f")
  echo "${rps:-0} ${p50:-0} ${p99:-0} ${total:-0} ${non2xx:-0} ${errors:-0}"
}

machine_info() {
  echo "- Date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, Linux $(uname -r)"
  echo "- Load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other jobs share this machine)"
  echo "- latchkey: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes'), release build"
}

# cpu_ticks PID: CPU time (user + system, in clock ticks) used so far by PID
# and its direct children (nginx and gunicorn workers).
cpu_ticks() {
  local pid=$1 total=0 p t
  for p in $pid $(ps -o pid= --ppid "$pid" 2>/dev/null); do
    t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0)
    total=$((total + ${t:-0}))
  done
  echo "$total"
}

# rss_kib PID: resident set size (VmRSS) in KiB.
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

# replace_block FILE NAME CONTENT_FILE: replaces the text between
# `<!-- NAME:begin -->` and `<!-- NAME:end -->` in FILE.
replace_block() {
  local file=$1 name=$2 content=$3
  [ -f "$file" ] || return 0
  grep -q "<!-- $name:begin -->" "$file" || return 0
  python3 - "$file" "$name" "$content" <<'PY'
import re, sys
path, name, content = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
text = open(path).read()
begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
text = pattern.sub(lambda _: begin + "\n" + content.rstrip("\n") + "\n" + end, text, count=1)
open(path, "w").write(text)
PY
}
