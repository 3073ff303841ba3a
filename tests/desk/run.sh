#!/usr/bin/env bash
# The desk's tests in a real browser (docs/testing.md, "The desk in a real browser"): Debian's
# Chromium driven by playwright-core against the real `streetsync desk`, a real relay process on
# 127.0.0.1 and workers' stores logging through the real CLI. Installs what is missing: Debian's
# chromium and chromium-driver (apt-get), playwright-core and axe-core from npm (the committed
# lock file, `npm ci` into ~/.cache/streetsync/desk-node; DESK_NODE_DIR overrides). No browser is
# ever downloaded: playwright starts /usr/bin/chromium. Screenshots of every page go to
# target/desk-screenshots/. Bounded: every wait in the tests has a deadline, the whole run a
# timeout (DESK_TIMEOUT_SECS, default 300).
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
fi
command -v node >/dev/null 2>&1 || { echo "node (20 or newer) is required"; exit 1; }

# The npm packages, from the committed lock file; reinstalled only when the lock file changed.
NODE_DIR="${DESK_NODE_DIR:-$HOME/.cache/streetsync/desk-node}"
if ! cmp -s tests/desk/package-lock.json "$NODE_DIR/package-lock.json" \
  || [ ! -d "$NODE_DIR/node_modules/playwright-core" ] || [ ! -d "$NODE_DIR/node_modules/axe-core" ]; then
  mkdir -p "$NODE_DIR"
  cp tests/desk/package.json tests/desk/package-lock.json "$NODE_DIR/"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$NODE_DIR" --ignore-scripts --no-audit --no-fund \
    --cache "$HOME/.cache/streetsync/npm"
fi
export DESK_NODE_DIR="$NODE_DIR"

# The binaries under test: given by tests/run-all.sh (which built the workspace), else built here.
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -z "${STREETSYNC_RELAY_BIN:-}" ] || [ -z "${STREETSYNC_CLI_BIN:-}" ]; then
  cargo build -p streetsync-relay -p streetsync --bins
  export STREETSYNC_RELAY_BIN="$TARGET_DIR/debug/streetsync-relay"
  export STREETSYNC_CLI_BIN="$TARGET_DIR/debug/streetsync"
fi

rm -rf "$TARGET_DIR/desk-screenshots"
mkdir -p "$TARGET_DIR/desk-screenshots"
timeout --kill-after=10 "${DESK_TIMEOUT_SECS:-300}" \
  node --test --test-concurrency=1 --test-timeout=240000 tests/desk/desk.test.mjs
echo "desk browser tests passed; screenshots in $TARGET_DIR/desk-screenshots/"
