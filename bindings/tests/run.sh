#!/usr/bin/env bash
# The bindings test: builds libstreetsync_ffi and the relay, generates Kotlin, Swift and Python
# bindings in library mode, compiles and runs the Kotlin scenario on the JVM (no Gradle, no Maven),
# builds the pip package with maturin and runs the Python scenario with pytest against it, and
# checks the Swift output. Installs what it needs on a fresh Debian machine (apt-get, pip) and
# caches downloads under ~/.cache/streetsync. Exits non-zero on any failure.
#
# Environment:
#   CARGO_TARGET_DIR        cargo's target dir (default: <repo>/target)
#   STREETSYNC_CACHE        download cache (default: ~/.cache/streetsync)
#   STREETSYNC_SKIP_WHEEL=1 test the generated module + .so directly instead of the wheel
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BINDINGS="$(dirname "$HERE")"
ROOT="$(dirname "$BINDINGS")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
CACHE="${STREETSYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/streetsync}"
GEN="$CARGO_TARGET_DIR/bindings"
LIB="$CARGO_TARGET_DIR/debug/libstreetsync_ffi.so"
RELAY="$CARGO_TARGET_DIR/debug/streetsync-relay"
mkdir -p "$CACHE" "$GEN"

step() { printf '\n== %s\n' "$*"; }

# ---- system packages --------------------------------------------------------------------------
step "system packages"
missing=()
command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
[ -f /usr/share/java/jna.jar ] || missing+=(libjna-java)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
command -v unzip >/dev/null 2>&1 || missing+=(unzip)
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
JNA=/usr/share/java/jna.jar
echo "java: $(java -version 2>&1 | head -1); jna: $JNA"

# ---- Python tools (venv) ----------------------------------------------------------------------
step "python venv"
VENV="$CACHE/venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import pytest, maturin' >/dev/null 2>&1 \
    || "$VENV/bin/pip" install -q pytest maturin
echo "$("$VENV/bin/pytest" --version), $("$VENV/bin/maturin" --version)"

# ---- Kotlin compiler (from the kotlin-jupyter-kernel wheel) -----------------------------------
step "kotlin compiler"
KT="$CACHE/kotlin"
if ! ls "$KT"/kotlin-jupyter-kernel-*-all.jar >/dev/null 2>&1; then
    mkdir -p "$CACHE/download" "$KT"
    ls "$CACHE"/download/kotlin_jupyter_kernel-*.whl >/dev/null 2>&1 \
        || "$VENV/bin/pip" download -q --no-deps kotlin-jupyter-kernel -d "$CACHE/download"
    unzip -o -q -j "$(ls "$CACHE"/download/kotlin_jupyter_kernel-*.whl | head -1)" \
        'run_kotlin_kernel/jars/kotlin-jupyter-kernel-*-all.jar' \
        'run_kotlin_kernel/jars/kotlin-stdlib-*.jar' -d "$KT"
fi
KT_ALL="$(ls "$KT"/kotlin-jupyter-kernel-*-all.jar | head -1)"
KT_STD="$(ls "$KT"/kotlin-stdlib-*.jar | head -1)"
echo "$(basename "$KT_ALL"), $(basename "$KT_STD")"

# ---- Rust: library, bindgen, relay ------------------------------------------------------------
step "cargo build (streetsync-ffi, streetsync-relay)"
cd "$ROOT"
cargo build -q -p streetsync-ffi --lib --bin uniffi-bindgen
cargo build -q -p streetsync-relay --bin streetsync-relay
export STREETSYNC_RELAY_BIN="$RELAY"

# ---- generate bindings (library mode, from the unstripped debug library) ----------------------
step "generate bindings"
rm -rf "$GEN/kotlin" "$GEN/python" "$GEN/swift"
for lang in kotlin python swift; do
    "$CARGO_TARGET_DIR/debug/uniffi-bindgen" generate --library "$LIB" --language "$lang" \
        --no-format --out-dir "$GEN/$lang"
done
find "$GEN" -type f -newer "$LIB" | sed "s|$GEN/||" | sort

# ---- Swift: generated, not compiled (no Swift toolchain on Linux here) ------------------------
step "swift generation"
swift_ok=1
for f in Streetsync.swift streetsyncFFI.h streetsyncFFI.modulemap; do
    if [ -s "$GEN/swift/$f" ]; then echo "ok   $f ($(wc -c <"$GEN/swift/$f") bytes)"; else echo "FAIL $f missing or empty"; swift_ok=0; fi
done
grep -Eq "func syncOnce\(listener: SyncListener\?\) ?async throws" "$GEN/swift/Streetsync.swift" \
    && echo "ok   async sync in Swift" || { echo "FAIL no async syncOnce in Swift"; swift_ok=0; }
grep -q "module StreetsyncFFI" "$GEN/swift/streetsyncFFI.modulemap" \
    && echo "ok   modulemap names StreetsyncFFI" || { echo "FAIL modulemap"; swift_ok=0; }
[ "$swift_ok" -eq 1 ] && echo "swift: 5 passed, 0 failed" || { echo "swift: generation failed"; exit 1; }

# ---- Kotlin: compile generated code + scenario, run on the JVM --------------------------------
step "kotlin scenario"
KOUT="$GEN/kotlin-classes"
stamp="$(cat "$GEN/kotlin/org/streetsync/streetsync.kt" "$HERE"/kotlin/*.kt "$HERE"/kotlin/android-stubs/*.kt \
    | sha256sum | cut -c1-16)"
if [ "$(cat "$KOUT/.stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$KOUT" && mkdir -p "$KOUT"
    # The bindings are generated with `android_cleaner = true`, exactly as shipped to Android; the
    # android-stubs stand in for the three Android classes they name so the same code runs here.
    java -cp "$KT_ALL" org.jetbrains.kotlin.cli.jvm.K2JVMCompiler -no-stdlib -no-reflect \
        -jvm-target 17 -nowarn -cp "$KT_STD:$KT_ALL:$JNA" \
        "$GEN/kotlin" "$HERE/kotlin" -d "$KOUT"
    echo "$stamp" >"$KOUT/.stamp"
fi
java -Djna.library.path="$(dirname "$LIB")" -cp "$KOUT:$KT_STD:$KT_ALL:$JNA" ScenarioKt

# ---- Python: the pip package (maturin, uniffi bindings), then pytest against it ---------------
step "python package and scenario"
if [ "${STREETSYNC_SKIP_WHEEL:-0}" = "1" ]; then
    mkdir -p "$GEN/python/streetsync"
    cp "$GEN/python/streetsync.py" "$GEN/python/streetsync/streetsync.py"
    cp "$LIB" "$GEN/python/streetsync/"
    echo "from .streetsync import *  # noqa: F401,F403" >"$GEN/python/streetsync/__init__.py"
    export PYTHONPATH="$GEN/python"
else
    WHEELS="$GEN/wheels"
    rm -rf "$WHEELS"
    (cd "$BINDINGS/python" && "$VENV/bin/maturin" build --quiet --out "$WHEELS" 2>&1 | grep -v '^warning: .*old-style' || true)
    wheel="$(ls "$WHEELS"/streetsync-*.whl 2>/dev/null | head -1)"
    [ -n "$wheel" ] || { echo "FAIL maturin built no wheel"; exit 1; }
    echo "built $(basename "$wheel")"
    "$VENV/bin/pip" install -q --force-reinstall --no-deps "$wheel"
    unset PYTHONPATH
fi
cd "$HERE/python"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider .
