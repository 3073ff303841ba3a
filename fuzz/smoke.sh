#!/usr/bin/env bash
# Smoke fuzz for CI: builds every target of fuzz/ and runs each for a short, bounded time.
# tests/run-all.sh (the README's test command, which CI runs) calls it with SMOKE_SECONDS=15.
#
#   bash fuzz/smoke.sh            # SMOKE_SECONDS (default 20) per target
#   SMOKE_SECONDS=60 bash fuzz/smoke.sh envelope document
#
# Exits 0 when no target finds anything; otherwise non-zero, with the crashing input in
# fuzz/artifacts/<target>/ (copy it into fuzz/regressions/<target>/ and fix the bug; see
# docs/fuzzing.md). Leaves the repository as it was: each run grows a scratch corpus in a temporary
# folder, and fuzz/artifacts/ is ignored by git.
#
# Environment:
#   SMOKE_SECONDS     seconds per target (default 20)
#   FUZZ_TARGET_DIR   cargo's target dir for the fuzz build (default: <CARGO_TARGET_DIR or
#                     <repo>/target>/fuzz, beside the main build and never shared with it;
#                     tests/run-all.sh keeps it in ~/.cache/streetsync/fuzz-target)
#
# Runs on the installed stable toolchain: cargo-fuzz passes nightly-only flags to rustc
# (-Zsanitizer, -Cpasses=sancov-module ...), which stable accepts with RUSTC_BOOTSTRAP=1 (set here
# only, so the main build's fingerprints are not touched). Runs without AddressSanitizer (-s none):
# the code under test is safe Rust, and the sanitizer halves the throughput; see docs/fuzzing.md.
set -euo pipefail

cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${SMOKE_SECONDS:-20}"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/fuzz}"
CARGO_FUZZ_VERSION=0.13.2

# cargo-fuzz is installed once into ~/.cargo/bin (cargo finds its subcommands there even when it is
# not on PATH) and kept; a failed download is retried once.
if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
    echo "installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked ||
        { sleep 10; cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked; }
fi

ALL_TARGETS=(envelope auth_header api_json sealed_blob invite_code bundle document)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

BUILD_FLAGS=(-O -a -s none)
cargo fuzz build "${BUILD_FLAGS[@]}"

status=0
corpus=""
trap 'rm -rf "$corpus" "$corpus.log"' EXIT
for t in "${TARGETS[@]}"; do
    # One process per target, one target after another (libFuzzer's default: no -jobs/-workers, so
    # its output stays on stderr instead of fuzz-N.log files). A scratch corpus per run, started
    # from the committed seeds and crash fixtures, so CI never grows the repository: libFuzzer
    # writes new inputs into the first folder only.
    corpus="$(mktemp -d)"
    mkdir -p "fuzz/artifacts/$t"
    dirs=("$corpus" "fuzz/seeds/$t")
    [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
    echo "== $t: ${SECONDS_PER_TARGET}s"
    if ! cargo fuzz run "${BUILD_FLAGS[@]}" "$t" "${dirs[@]}" -- \
        -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 \
        -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="fuzz/artifacts/$t/" 2>"$corpus.log"; then
        status=1
        echo "!! $t found a problem:"
        grep -E "panicked|ERROR|SUMMARY|Test unit written" "$corpus.log" || tail -40 "$corpus.log"
    fi
    grep -E "^stat::(number_of_executed_units|average_exec_per_sec)|^Done" "$corpus.log" || true
    rm -rf "$corpus" "$corpus.log"
done
exit "$status"
