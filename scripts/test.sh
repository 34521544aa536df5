#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: installs what the tests need, then
# `cargo test`. This is the README's test command; .ci/run calls it after fmt and clippy.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --all-targets --locked "$@"
# Doc tests are not part of --all-targets.
cargo test --workspace --doc --locked
