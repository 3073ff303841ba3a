#!/usr/bin/env bash
# Smoke fuzz for CI: builds every target of fuzz/ and runs each for a short, bounded time.
# tests/run-all.sh (the README's test command, which CI runs) calls it with SMOKE_SECONDS=15.
#
#   bash fuzz/smoke.sh            # SMOKE_SECONDS (default 20) per target
#   SMOKE_SECONDS=60 bash fuzz/smoke.sh envelope document
#
# The targets are the [[bin]] names of fuzz/Cargo.toml (in the order they are declared there), so a
# new target is smoke-fuzzed as soon as it is added; a name given on the command line that is not
# one of them is an error.
#
# Exits 0 when no target finds anything; otherwise non-zero, with the input in
# fuzz/artifacts/<target>/ (copy it into fuzz/regressions/<target>/ and fix the bug; see
# docs/fuzzing.md). "Anything" is a crash, timeout or out-of-memory (libFuzzer exits non-zero), and
# also a panic that a guard of the core caught at a site no fixture covers yet: the document target
# then writes fuzz/artifacts/document/caught-<crate>-<file>-<line> and carries on, so the exit code
# alone would hide it. A caught-* file written during this run whose name is not in
# fuzz/regressions/<target>/ fails the run (replaying the committed fixtures rewrites the known
# ones, which is expected). Leaves the repository as it was: each run grows a scratch corpus in a
# temporary folder, and fuzz/artifacts/ is ignored by git.
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

# Every target: the `name` of each [[bin]] table of fuzz/Cargo.toml (what `cargo fuzz list` lists).
mapfile -t ALL_TARGETS < <(awk '
    /^[[:space:]]*\[/ { in_bin = ($0 ~ /^[[:space:]]*\[\[bin\]\][[:space:]]*(#.*)?$/) }
    in_bin && /^[[:space:]]*name[[:space:]]*=/ {
        if (match($0, /"[^"]+"/)) print substr($0, RSTART + 1, RLENGTH - 2)
    }' fuzz/Cargo.toml)
if [ "${#ALL_TARGETS[@]}" -eq 0 ]; then
    echo "!! no [[bin]] targets found in fuzz/Cargo.toml" >&2
    exit 2
fi
if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
    for t in "${TARGETS[@]}"; do
        if ! printf '%s\n' "${ALL_TARGETS[@]}" | grep -qxF -- "$t"; then
            echo "!! no fuzz target named '$t' (fuzz/Cargo.toml has: ${ALL_TARGETS[*]})" >&2
            exit 2
        fi
    done
else
    TARGETS=("${ALL_TARGETS[@]}")
fi
echo "targets: ${TARGETS[*]}"

BUILD_FLAGS=(-O -a -s none)
cargo fuzz build "${BUILD_FLAGS[@]}"

status=0
corpus=""
stamp="$(mktemp)"
trap 'rm -rf "$corpus" "$corpus.log" "$stamp"' EXIT
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
    touch "$stamp"
    if ! cargo fuzz run "${BUILD_FLAGS[@]}" "$t" "${dirs[@]}" -- \
        -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 \
        -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="fuzz/artifacts/$t/" 2>"$corpus.log"; then
        status=1
        echo "!! $t found a problem:"
        grep -E "panicked|ERROR|SUMMARY|Test unit written" "$corpus.log" || tail -40 "$corpus.log"
    fi
    grep -E "^stat::(number_of_executed_units|average_exec_per_sec)|^Done" "$corpus.log" || true
    # Panics caught behind a guard at a site with no fixture yet (see the top of this file).
    while IFS= read -r -d '' caught; do
        name="$(basename "$caught")"
        [ -e "fuzz/regressions/$t/$name" ] && continue
        status=1
        echo "!! $t: a guard caught a panic at a new site: $caught"
        echo "   (copy it into fuzz/regressions/$t/ and run the fuzz_regressions test; see docs/fuzzing.md)"
        # caught-<crate>-<file>-<line>: the panic hook printed "panic at <path>/<file>.rs:<line>: ...".
        line="${name##*-}"
        file="${name%-*}"
        file="${file##*-}"
        grep -F "/$file.rs:$line:" "$corpus.log" | grep -E "^panic at " | head -3 || true
    done < <(find "fuzz/artifacts/$t" -maxdepth 1 -type f -name 'caught-*' -newer "$stamp" -print0)
    rm -rf "$corpus" "$corpus.log"
done
exit "$status"
