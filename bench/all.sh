#!/usr/bin/env bash
# Every benchmark in one go, updating docs/BENCHMARKS.md's measured blocks:
#   cargo bench --bench verify   (block `verify`)
#   examples/alloc_count.rs      (block `allocs`)
#   bench/callgrind.sh           (block `callgrind`)
#   bench/load.sh                (block `load`)
#   bench/scale.sh               (block `scale`)
# Takes about 40 minutes (the release build with LTO is part of it). The
# targets table in docs/BENCHMARKS.md is written
# by hand from these figures.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
export UPDATE_DOCS=${UPDATE_DOCS:-1}

cargo build --release --bin latchkey --examples >&2
cargo bench --bench verify >&2
summary=target/criterion/latchkey-summary.txt
if [ "$UPDATE_DOCS" = 1 ] && [ -f "$summary" ]; then
  block=$(mktemp)
  { echo "$(machine_info)"; echo "- Command: \`cargo bench --bench verify\`"; echo; echo '```'; cat "$summary"; echo '```'; } >"$block"
  replace_block docs/BENCHMARKS.md verify "$block"
  rm -f "$block"
fi
if [ "$UPDATE_DOCS" = 1 ]; then
  block=$(mktemp)
  { echo "- Command: \`cargo run --release --example alloc_count\`"; echo; echo '```'; target/release/examples/alloc_count; echo '```'; } >"$block"
  replace_block docs/BENCHMARKS.md allocs "$block"
  rm -f "$block"
else
  target/release/examples/alloc_count
fi
SKIP_BUILD=1 bench/callgrind.sh
SKIP_BUILD=1 bench/load.sh
SKIP_BUILD=1 bench/scale.sh
