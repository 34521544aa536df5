#!/usr/bin/env bash
# Fails unless the Rust toolchain is at least the workspace's `rust-version` (Cargo.toml).
# CI runs it first: cargo itself refuses an older toolchain only with a less direct message, and
# a newer `rust-version` must come with a toolchain that has it. With rustup and the pinned
# toolchain installed (`rustup toolchain install <rust-version>`), it also checks that the
# workspace builds with exactly that version (`--exact`: `cargo +<rust-version> check`, unless
# the default toolchain is that version already); CI machines have one toolchain and no way to
# fetch another, so that part is skipped there when they differ, and says so. RUSTC overrides
# the rustc asked (tests/tests/ci_scripts.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

wanted=$(sed -n '/^\[workspace.package\]/,/^\[/s/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml)
if [ -z "$wanted" ]; then
  echo "check-rust-version: no rust-version in [workspace.package] of Cargo.toml" >&2
  exit 1
fi
found=$(${RUSTC:-rustc} --version | sed -n 's/^rustc \([0-9][0-9.]*\).*/\1/p')
if [ -z "$found" ]; then
  echo "check-rust-version: cannot read the version of \`${RUSTC:-rustc} --version\`" >&2
  exit 1
fi
# Compare major.minor.patch numerically (a missing patch is 0).
older=$(printf '%s\n%s\n' "$wanted" "$found" | awk -F. '
  NR == 1 { w = sprintf("%05d%05d%05d", $1, $2, $3) }
  NR == 2 { f = sprintf("%05d%05d%05d", $1, $2, $3) }
  END { print (f < w) ? "yes" : "no" }')
if [ "$older" = yes ]; then
  echo "check-rust-version: rustc $found is older than rust-version $wanted of Cargo.toml;" \
    "install it with: rustup toolchain install $wanted (or rustup update)" >&2
  exit 1
fi
echo "rust-version $wanted: rustc $found is new enough"

if [ "${1:-}" = --exact ]; then
  case "$found" in
    "$wanted" | "$wanted".*)
      echo "rustc $found is rust-version $wanted itself: the builds that follow are the exact check"
      exit 0 ;;
  esac
  if command -v rustup >/dev/null 2>&1 && rustup run "$wanted" rustc --version >/dev/null 2>&1; then
    echo "== cargo +$wanted check --workspace --all-targets --locked"
    cargo "+$wanted" check --workspace --all-targets --locked
  else
    echo "check-rust-version: toolchain $wanted is not installed; skipped the build with exactly it"
  fi
fi
