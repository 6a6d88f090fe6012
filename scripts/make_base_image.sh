#!/usr/bin/env bash
# The base the image test builds deploy/Containerfile on, where no container registry can
# be reached (as here: Docker Hub and quay.io are not, Debian's mirror is): Debian 12
# (bookworm) with python3 (3.11, as python:3.11-slim-bookworm has) and its venv module,
# made with debootstrap from Debian's mirror and imported with buildah.
#
#   scripts/make_base_image.sh [IMAGE]     default localhost/chatrelay-base:bookworm
#
# Nothing is done when IMAGE exists. Storage: buildah's vfs driver unless STORAGE_DRIVER
# says otherwise (overlay needs a kernel and mounts a sandbox may not give).
set -euo pipefail

IMAGE=${1:-localhost/chatrelay-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}

for tool in buildah debootstrap; do
  command -v "$tool" >/dev/null || { echo "make_base_image: $tool is not installed (apt-get install -y $tool)" >&2; exit 2; }
done
if buildah inspect --type image "$IMAGE" >/dev/null 2>&1; then
  echo "$IMAGE is there"
  exit 0
fi

root=$(mktemp -d)
container=""
cleanup() {
  rm -rf "$root"
  if [ -n "$container" ]; then buildah rm "$container" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

echo "debootstrap bookworm from $MIRROR (about a minute)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$MIRROR" >"$root.log" 2>&1 \
  || { tail -20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
container=$(buildah from scratch)
buildah copy --quiet "$container" "$root" / >/dev/null
buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash "$container"
buildah commit --quiet "$container" "$IMAGE" >/dev/null
echo "$IMAGE made"
