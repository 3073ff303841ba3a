#!/usr/bin/env bash
# The FFI library's size (issue 18): the stripped `release-mobile` build of `streetsync-ffi`
# (the library an Android app ships, built here for the host), once at `opt-level = "s"` (the
# profile's setting) and once at `"z"`, with the profile's other settings (thin LTO, one codegen
# unit, strip, panic = unwind). Writes target/bench/ffi_size.json. Slow (two whole release
# builds, about 5 minutes each on 2 cores), so it is a benchmark, not part of the test command:
#   bash tests/ffi-size/measure.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target/bench"
declare -A size
for level in s z; do
    CARGO_PROFILE_RELEASE_MOBILE_OPT_LEVEL=$level \
        cargo build -q -p streetsync-ffi --lib --profile release-mobile
    lib="$target/release-mobile/libstreetsync_ffi.so"
    size[$level]=$(stat -c %s "$lib")
    echo "opt-level $level: ${size[$level]} bytes ($(numfmt --to=iec-i --suffix=B "${size[$level]}"))"
done
python3 - "$target/bench/ffi_size.json" "${size[s]}" "${size[z]}" <<'PY'
import json, sys
out, s, z = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mib = 1024 * 1024
figures = {
    "ffi_release_mobile_s_mib": {"value": round(s / mib, 3), "unit": "MiB", "goal": 8.0,
                                 "lower_is_better": True},
    "ffi_release_mobile_z_mib": {"value": round(z / mib, 3), "unit": "MiB", "goal": 8.0,
                                 "lower_is_better": True},
}
json.dump(figures, open(out, "w"), indent=2)
print(json.dumps(figures, indent=2))
PY
