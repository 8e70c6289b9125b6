#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer through cargo-fuzz) of what latchkey
# parses from the outside world: keys, the Authorization / X-API-Key / query
# extraction, X-Forwarded-For behind trusted proxies, allow-lists, the legacy
# import file and every JSON body of the API (through the real router on a
# real SQLite database). Targets and their invariants: fuzz/fuzz_targets/.
#
#   scripts/fuzz.sh              20 s per target (what CI runs)
#   scripts/fuzz.sh 600          ten minutes per target
#   scripts/fuzz.sh 60 key_parse one target
#
# Installs cargo-fuzz from crates.io when missing. cargo-fuzz drives rustc
# options that only nightly compilers accept; RUSTC_BOOTSTRAP=1 lets the
# stable toolchain take them. No sanitizer (latchkey forbids unsafe code):
# what is looked for is panics, failed invariants, 5xx answers, leaks of
# memory past the RSS limit and hangs. Crashes are kept under
# fuzz/artifacts/<target>/; the corpus grows under fuzz/corpus/<target>/
# (both git-ignored). Exits non-zero when any target finds a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-20}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(key_parse key_extract client_ip allowed_ips legacy_csv json_bodies)

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz (crates.io)"
    cargo install cargo-fuzz --version 0.13.2 --locked
fi

export RUSTC_BOOTSTRAP=1
echo "==> building the fuzz targets"
cargo fuzz build --sanitizer none --release --debug-assertions

status=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    echo "==> fuzzing $t for ${seconds}s"
    log=$(mktemp)
    # Committed seeds (fuzz/seeds/<target>/) and a dictionary
    # (fuzz/dict/<target>.dict) where a target has them: JSON bodies are
    # reached far sooner from valid examples and the field names.
    extra=()
    [ -d "fuzz/seeds/$t" ] && extra+=("fuzz/seeds/$t")
    flags=()
    [ -f "fuzz/dict/$t.dict" ] && flags+=("-dict=fuzz/dict/$t.dict")
    if cargo fuzz run --sanitizer none --release --debug-assertions "$t" "fuzz/corpus/$t" "${extra[@]}" -- \
        "${flags[@]}" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=4096 \
        -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log" \
            | sed "s/^/    $t /" || true
        grep -E '^#[0-9]+.*DONE' "$log" | tail -1 | sed "s/^/    $t /" || true
    else
        echo "!!! $t found a failure:"; tail -60 "$log"
        status=1
    fi
    rm -f "$log"
done
exit $status
