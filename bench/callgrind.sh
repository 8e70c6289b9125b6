#!/usr/bin/env bash
# Instructions per operation of the keyed request path, counted by callgrind
# (deterministic, unlike timings on a shared machine).
#
#   bench/callgrind.sh [part ...]      # default: all parts
#
# Each part (parse, hmac, malformed, verify, calls, middleware, baseline; see
# benches/verify.rs) runs twice under `valgrind --tool=callgrind`, with
# N1 and N2 warm iterations after the same setup (1,000 keys, one warm-up
# pass); (Ir(N2) - Ir(N1)) / (N2 - N1) is the cost of one iteration.
# `middleware - baseline` is the cost of authentication per request.
#
# Environment: N1 (default 2000), N2 (default 12000), SKIP_BUILD=1,
# UPDATE_DOCS=1 (replace the `callgrind` block of docs/BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

N1=${N1:-2000}
N2=${N2:-12000}
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(parse hmac malformed verify calls middleware baseline)

command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --example verify_once >&2
fi
bin=target/release/examples/verify_once
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Total instructions (Ir) of one run.
instructions() {
  local part=$1 n=$2 file="$out/$1.$2.cg"
  timeout 600 valgrind --tool=callgrind --callgrind-out-file="$file" "$bin" "$part" "$n" \
    >/dev/null 2>"$out/$1.$2.log" || { cat "$out/$1.$2.log" >&2; return 1; }
  sed -n 's/^summary: \([0-9]*\).*/\1/p' "$file"
}

declare -A per
report=$out/report.txt
{
  echo "valgrind --tool=callgrind, $(valgrind --version), N1=$N1 N2=$N2 (bench/callgrind.sh)"
  echo
  printf '%-11s %14s %14s %12s\n' part "Ir(N=$N1)" "Ir(N=$N2)" "Ir/op"
} >"$report"
cat "$report"
for part in "${parts[@]}"; do
  a=$(instructions "$part" "$N1")
  b=$(instructions "$part" "$N2")
  per[$part]=$(( (b - a) / (N2 - N1) ))
  printf '%-11s %14d %14d %12d\n' "$part" "$a" "$b" "${per[$part]}" | tee -a "$report"
done
if [ -n "${per[middleware]:-}" ] && [ -n "${per[baseline]:-}" ]; then
  printf '%-11s %43d\n' "auth cost" $(( per[middleware] - per[baseline] )) | tee -a "$report"
  echo "(auth cost = middleware - baseline: parse, HMAC, cache, status, IPs, rate limit, permission, usage)" | tee -a "$report"
fi
if [ "${UPDATE_DOCS:-0}" = 1 ]; then
  { echo '```'; cat "$report"; echo '```'; } >"$out/block.md"
  replace_block docs/BENCHMARKS.md callgrind "$out/block.md"
fi
