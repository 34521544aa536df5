#!/usr/bin/env bash
# Builds the Dockerfile (the image of the README's install, step 2) when a container engine
# answers: docker, else podman. Without one it says that it skipped, and succeeds: a client
# binary alone (as on CI machines without a daemon) does not count.
#   scripts/docker-build.sh [TAG]          (default: sparkgang:ci)
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-sparkgang:ci}

engine=""
for candidate in docker podman; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" info >/dev/null 2>&1; then
    engine=$candidate
    break
  fi
done
if [ -z "$engine" ]; then
  echo "docker-build: SKIPPED: no container engine answers (docker info / podman info); the Dockerfile was not built"
  exit 0
fi
echo "== $engine build -t $tag ."
"$engine" build -t "$tag" .
user=$("$engine" image inspect --format '{{.Config.User}}' "$tag")
case "$user" in
  "" | 0 | root | 0:*| root:*)
    echo "docker-build: the image runs as '$user': it must not be root" >&2
    exit 1 ;;
esac
echo "docker-build: $tag built with $engine, runs as $user"
