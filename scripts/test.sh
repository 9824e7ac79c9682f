#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy (warnings are errors), and all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# The plugin .so files must exist for the GST_PLUGIN_PATH test.
cargo build --workspace
cargo test --workspace --all-targets
