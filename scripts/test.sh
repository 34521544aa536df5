#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: installs what the tests need, then
# `cargo test`. This is the README's test command; .ci/run calls it after fmt and clippy.
set -euo pipefail
cd "$(dirname "$0")/.."

# deploy/ is rendered with `kubectl kustomize` by the manifest tests.
if ! command -v kubectl >/dev/null 2>&1; then
  echo "scripts/test.sh: kubectl is needed to render deploy/ (install it: https://kubernetes.io/docs/tasks/tools/)" >&2
  exit 1
fi

cargo test --workspace --all-targets --locked "$@"
# Doc tests are not part of --all-targets.
cargo test --workspace --doc --locked
