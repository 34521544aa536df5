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

# The real spark-submit (PyPI pyspark, Java 17) runs against the simulated cluster.
if ! command -v java >/dev/null 2>&1; then
  echo "scripts/test.sh: Java 17 is needed for spark-submit (apt-get install openjdk-17-jre-headless)" >&2
  exit 1
fi
venv=.cache/venv
if [ ! -x "$venv/bin/spark-submit" ]; then
  echo "== installing pyspark into $venv (once)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "pyspark==4.3.0"
fi
export SPARKGANG_SPARK_SUBMIT="$PWD/$venv/bin/spark-submit"
export SPARKGANG_REQUIRE_SPARK=1

cargo test --workspace --all-targets --locked "$@"
# Doc tests are not part of --all-targets.
cargo test --workspace --doc --locked
