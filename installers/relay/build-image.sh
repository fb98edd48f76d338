#!/usr/bin/env bash
# Build the relay's container image with buildah: no Docker engine, no image registry.
#
#   1. a Debian bookworm base made with `debootstrap --variant=minbase`, trimmed like
#      Debian's bookworm-slim and imported as $BASE_IMAGE (skipped if it exists);
#   2. wheels of Puente and of the relay's dependencies (requirements.txt), built by
#      the host's Python 3.11 (bookworm's too), so the image build needs no network;
#   3. installers/relay/Containerfile on top of the base -> $IMAGE.
#
# Run as root (debootstrap needs it). Settings, from the environment:
#   IMAGE=localhost/puente-relay  BASE_IMAGE=localhost/puente-bookworm-slim
#   DEBIAN_MIRROR=<url>  (debootstrap's default mirror if unset)
#   PYTHON=python3       (a Python 3.11 with pip, to build the wheels)
#   WORK_DIR=build/relay-image   REBUILD_BASE=1 (make the base again)
#
# Two builds at once wait for each other (a lock in WORK_DIR). A build that fails or is
# interrupted unmounts what debootstrap mounted inside its root file system and removes
# what it made (keeping only debootstrap.log); one killed outright is cleaned up by the
# next build before it starts.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
IMAGE=${IMAGE:-localhost/puente-relay}
BASE_IMAGE=${BASE_IMAGE:-localhost/puente-bookworm-slim}
PYTHON=${PYTHON:-python3}
WORK_DIR=${WORK_DIR:-$root/build/relay-image}

fail() { echo "build-image.sh: $*" >&2; exit 2; }
need() { command -v "$1" >/dev/null 2>&1 || fail "$1 is missing; install it with 'apt install $2'."; }
step() { echo "[$1/3] $2" >&2; }

[ "$(id -u)" = 0 ] || fail "run me as root: debootstrap and buildah's chroot isolation need it."
need buildah buildah
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null \
    || fail "$PYTHON is not Python 3.11 (bookworm's); set PYTHON to a Python 3.11 with pip."
mkdir -p "$WORK_DIR"
WORK_DIR=$(cd "$WORK_DIR" && pwd -P)
rootfs="$WORK_DIR/rootfs"
container=

# Unmount everything mounted at or below the root file system (deepest first: debootstrap
# mounts /proc, /sys and /dev/pts inside it), then remove it without ever crossing into a
# file system that is still mounted there.
release_rootfs() {
    local mounts
    mounts=$(awk -v root="$rootfs" '$2 == root || index($2, root "/") == 1 { print $2 }' \
        /proc/self/mounts | sort -r)
    for mount in $mounts; do
        umount "$mount" 2>/dev/null || umount --lazy "$mount" 2>/dev/null \
            || echo "build-image.sh: could not unmount $mount; unmount it by hand" >&2
    done
    [ -e "$rootfs" ] && rm -rf --one-file-system "$rootfs"
    return 0
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ "$status" != 0 ]; then
        release_rootfs
        rm -f "$WORK_DIR/rootfs.tar" "$WORK_DIR/Containerfile"
        rm -rf "$WORK_DIR/wheels"
        [ -n "$container" ] && buildah rm "$container" >/dev/null 2>&1
        echo "build-image.sh: the build stopped; what it had mounted and made is removed." >&2
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# One build at a time in this folder: a second one waits here.
exec 9>"$WORK_DIR/.lock"
flock 9
release_rootfs  # what a build killed outright (no chance to clean up) left behind

# --- 1. the base ------------------------------------------------------------------
if [ -n "${REBUILD_BASE:-}" ] || ! buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    need debootstrap debootstrap
    step 1 "making a Debian bookworm base with debootstrap (downloads about 40 MB)..."
    mkdir -p "$rootfs"
    # shellcheck disable=SC2086  # DEBIAN_MIRROR is one optional word
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,passwd \
        bookworm "$rootfs" ${DEBIAN_MIRROR:-} >"$WORK_DIR/debootstrap.log" 2>&1 \
        || fail "debootstrap failed; see $WORK_DIR/debootstrap.log (set DEBIAN_MIRROR to another mirror?)"
    # Trim what bookworm-slim leaves out: docs, manuals, locales, package lists, caches.
    rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
        "$rootfs"/usr/share/locale/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* \
        "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/log/* "$rootfs"/tmp/*
    tar -C "$rootfs" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' \
        --exclude='./sys/*' -cf "$WORK_DIR/rootfs.tar" .
    release_rootfs
    container=$(buildah from scratch)
    buildah add --quiet "$container" "$WORK_DIR/rootfs.tar" / >/dev/null
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 --cmd /bin/bash "$container"
    buildah commit --quiet --rm "$container" "$BASE_IMAGE" >/dev/null
    container=
    rm -f "$WORK_DIR/rootfs.tar"
else
    step 1 "base image $BASE_IMAGE already exists (REBUILD_BASE=1 to make it again)"
fi

# --- 2. wheels --------------------------------------------------------------------
step 2 "building wheels of Puente and the relay's locked dependencies (requirements.txt)..."
rm -rf "$WORK_DIR/wheels" && mkdir -p "$WORK_DIR/wheels"
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$WORK_DIR/wheels" \
    --no-deps "$root" 2>&1 | grep -v "is ignored" >&2 || true
# requirements.txt is the lock (hashes included; .ci/refresh-lock writes it from
# requirements.in): the image gets the same versions every day.
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$WORK_DIR/wheels" \
    --require-hashes -r "$here/requirements.txt" 2>&1 | grep -v "is ignored" >&2 || true
ls "$WORK_DIR"/wheels/puente-*.whl "$WORK_DIR"/wheels/websockets-*.whl >/dev/null 2>&1 \
    || fail "building the wheels failed (see pip's message above)."
cp "$here/requirements.txt" "$WORK_DIR/wheels/requirements.txt"
cp "$here/Containerfile" "$WORK_DIR/Containerfile"

# --- 3. the image -----------------------------------------------------------------
step 3 "building $IMAGE from installers/relay/Containerfile..."
# --format docker keeps HEALTHCHECK (the OCI format has no field for it).
buildah bud --quiet --isolation chroot --format docker --layers=false \
    --build-arg "BASE=$BASE_IMAGE" -f "$WORK_DIR/Containerfile" -t "$IMAGE" "$WORK_DIR" >/dev/null
echo "built $IMAGE" >&2
