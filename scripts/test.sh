#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: installs what the tests need, then runs
# every test target, even when one fails, and ends with a summary of all failures. This is the
# README's test command; .ci/run calls it after fmt and clippy. Extra arguments go to the first
# (debug) `cargo test`.
#
# Tiers: (1) every test target in a debug build; (2) the scenario at scale (1,000
# applications) in real time, which needs a release build to keep up, and its determinism on
# the virtual clock; (3) doc tests.
set -uo pipefail
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
  python3 -m venv "$venv" &&
    "$venv/bin/pip" install --quiet --disable-pip-version-check "pyspark==4.3.0" || {
    echo "scripts/test.sh: cannot install pyspark into $venv" >&2
    exit 1
  }
fi
export SPARKGANG_SPARK_SUBMIT="$PWD/$venv/bin/spark-submit"
export SPARKGANG_REQUIRE_SPARK=1

# The web console is tested in a real headless Chromium (Debian's package).
if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing chromium (once)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium; } >/dev/null || {
    echo "scripts/test.sh: cannot install chromium (apt-get install chromium)" >&2
    exit 1
  }
fi
export SPARKGANG_CHROMIUM="$(command -v chromium)"
export SPARKGANG_REQUIRE_CHROMIUM=1

# Free disk and the size of target/, printed after each tier: a full run needs several GB.
disk() {
  printf '%s free, target/ %s' "$(df -h --output=avail . | tail -1 | tr -d ' ')" \
    "$(du -sh target 2>/dev/null | cut -f1)"
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=()
step() {
  local name=$1
  shift
  echo "== $name: $*"
  local started=$SECONDS
  "$@" 2>&1 | tee -a "$log"
  local status=${PIPESTATUS[0]}
  echo "== $name: exit $status after $((SECONDS - started)) s; disk: $(disk)"
  [ "$status" -eq 0 ] || failed+=("$name")
}

step "tests (debug)" cargo test --workspace --all-targets --locked --no-fail-fast "$@"
step "scenario at scale (release)" \
  cargo test --release --locked -p sparkgang-tests --test scenarios --no-fail-fast -- scale_
step "virtual clock at scale (release)" \
  cargo test --release --locked -p sparkgang-sim --test virtual_clock --no-fail-fast -- scale
step "doc tests" cargo test --workspace --doc --locked --no-fail-fast

if [ ${#failed[@]} -eq 0 ]; then
  echo "== all tests passed"
  exit 0
fi
echo
echo "== FAILED: ${failed[*]}"
echo "== failing tests:"
grep -E '^test .* \.\.\. FAILED$|^    [A-Za-z_:0-9]+$' "$log" | sed -n '1,200p' | sort -u
grep -E '^error: [0-9]+ targets? failed:' -A40 "$log" | grep -E '^error|^    `' || true
exit 1
