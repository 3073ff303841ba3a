#!/usr/bin/env bash
# Runs every test of streetsync on a fresh Debian machine: installs what is missing, builds the
# workspace (the relay binary the end-to-end tests start), and runs all test suites.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each step prints the seconds since the start, so a slow CI run shows where its time went.
step() { echo "==> [${SECONDS}s] $*"; }

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
# The fault tests shift a device's clock with faketime and drop privileges with setpriv.
command -v faketime >/dev/null 2>&1 || need_apt+=(faketime)
command -v setpriv >/dev/null 2>&1 || need_apt+=(util-linux)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo is required (rustup)"; exit 1; }

# The end-to-end tests start the real relay and CLI binaries; build them once for all tests.
step "build the workspace binaries"
cargo build --workspace --bins
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export STREETSYNC_RELAY_BIN="$TARGET_DIR/debug/streetsync-relay"
export STREETSYNC_CLI_BIN="$TARGET_DIR/debug/streetsync"

# The relay's PostgreSQL backend is tested against a real, throwaway cluster (issue 16): initdb in
# a temp dir as an unprivileged user on a loopback port (installs Debian's postgresql if missing),
# stopped on exit. The tests fail, never skip, without STREETSYNC_TEST_DATABASE_URL.
PG_DIR="$(mktemp -d /tmp/streetsync-pg.XXXXXX)"
trap 'tests/postgres/cluster.sh stop "$PG_DIR" || true; rm -rf "$PG_DIR"' EXIT
STREETSYNC_TEST_DATABASE_URL="$(tests/postgres/cluster.sh start "$PG_DIR")"
export STREETSYNC_TEST_DATABASE_URL

# Benches are not tests: they run with `cargo bench --workspace` (README).
step "Rust test suites"
cargo test --workspace --lib --bins --tests
cargo test --workspace --doc

# The desk in a real browser: Debian's Chromium (installed with apt-get when missing) driven by
# playwright-core (npm, cached under ~/.cache/streetsync/desk-node; no browser download) against
# the real desk, a real relay and workers logging through the CLI; axe-core on every page;
# screenshots in target/desk-screenshots/ (docs/testing.md).
step "desk in Chromium"
bash tests/desk/run.sh

# A representative subset of the end-to-end sync, membership and fault suites once more, on
# PostgreSQL with two relay instances behind a round-robin proxy (tests/tests/common/postgres.rs):
# the tests that do not read the relay's SQLite file or expect the only relay to be down.
step "end-to-end suites on PostgreSQL"
STREETSYNC_TEST_RELAY_BACKEND=postgres cargo test -p streetsync-tests \
  --test sync --test membership --test faults -- --exact \
  three_devices_write_offline_then_sync_in_every_order_and_converge \
  other_teams_unsigned_and_replayed_requests_are_refused \
  live_sync_delivers_changes_and_survives_a_relay_restart \
  invites_enrol_devices_and_refuse_bad_codes \
  only_leads_change_the_roster_approve_or_erase \
  history_shows_who_changed_what_from_which_device \
  five_devices_through_a_misbehaving_network_converge_on_every_saved_contact \
  device_clocks_a_year_off_change_nothing

# The bindings from the languages app developers write: Kotlin on the JVM and Python against the
# real library and a real relay, and the Swift generation (installs a JDK, JNA, pytest, maturin and
# the Kotlin compiler itself, cached under ~/.cache/streetsync).
step "bindings"
bash bindings/tests/run.sh

# A short smoke fuzz of every libFuzzer target (fuzz/, its own crate and build): SMOKE_SECONDS each
# (default 15), from the committed seeds and crash fixtures into a scratch corpus. Installs
# cargo-fuzz into ~/.cargo/bin once, builds under ~/.cache/streetsync/fuzz-target (FUZZ_TARGET_DIR
# overrides; kept between runs like the other downloads there, because the instrumented build of
# every dependency takes 5 to 9 minutes on 2 cores and changes only with the code), and fails on
# any crash, leaving the input in fuzz/artifacts/; see docs/fuzzing.md.
step "smoke fuzz"
SMOKE_SECONDS="${SMOKE_SECONDS:-15}" \
  FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/streetsync/fuzz-target}" \
  bash fuzz/smoke.sh
step "all tests passed"
