#!/usr/bin/env bash
# Runs every fuzz target, coverage-guided, for FUZZ_SECONDS each (default 20): libFuzzer (from
# the libfuzzer-sys crate) with rustc's coverage instrumentation (the `sancov-module` pass and
# its LLVM options, all stable `-C` flags; no sanitizer, which would need nightly). Called by
# tests/run.sh.
#
# Each target's corpus grows in target/fuzz/corpus/<target>; the inputs in
# crates/*/fuzz/regressions/<target>/ (crashes found before, kept as regression tests) and
# crates/*/fuzz/seeds/<target>/ are run first, every time. A crash fails the run: its input is in
# target/fuzz/artifacts/<target>/; copy it into the target's regressions folder with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-20}
host=$(rustc -vV | sed -n 's/^host: //p')
out=target/fuzz
# What cargo-fuzz passes with `--sanitizer none`. `--target` keeps the flags off build scripts.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"

failed=0
for dir in crates/belfry-proto/fuzz crates/belfry-engine/fuzz crates/belfry-core/fuzz crates/belfry-cluster/fuzz crates/belfry-redis/fuzz; do
  CARGO_TARGET_DIR=$out cargo build --quiet --release --bins --target "$host" \
    --manifest-path "$dir/Cargo.toml"
  for name in $(sed -n 's/^name = "\(.*\)"$/\1/p' "$dir/Cargo.toml" | tail -n +2); do
    corpus=$out/corpus/$name
    artifacts=$out/artifacts/$name/
    mkdir -p "$corpus" "$artifacts"
    inputs=("$corpus")
    [ -d "$dir/regressions/$name" ] && inputs+=("$dir/regressions/$name")
    # Seeds: inputs that reach what the fuzzer would not find by itself (string keys compared
    # with `memcmp`, which is not instrumented without a sanitizer).
    [ -d "$dir/seeds/$name" ] && inputs+=("$dir/seeds/$name")
    printf '==> fuzz %s for %ss\n' "$name" "$seconds"
    if ! "$out/$host/release/$name" -max_total_time="$seconds" -print_final_stats=1 \
        -artifact_prefix="$artifacts" "${inputs[@]}" >"$out/$name.log" 2>&1; then
      echo "fuzz target $name failed; its input is in $artifacts (last lines of $out/$name.log):"
      tail -30 "$out/$name.log"
      failed=1
      continue
    fi
    # The runs, and the coverage reached (edges and features).
    grep -E '^stat::number_of_executed_units|^Done' "$out/$name.log" | tail -1
    grep -E '^#[0-9]+.*(DONE|pulse)' "$out/$name.log" | tail -1 || true
  done
done
exit "$failed"
