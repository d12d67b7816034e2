#!/usr/bin/env bash
# `make deb`: build the Debian packages (debian/) from a copy of this tree,
# so the build writes nothing into the checkout, and put the .deb files (and
# the .buildinfo/.changes) in OUTDIR.
# Usage: scripts/build-deb.sh OUTDIR
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: $0 OUTDIR}
version=$(sed -n 's/^VERSION *:= *//p' Makefile)
changelog=$(dpkg-parsechangelog -l debian/changelog -S Version)
[[ $version == "$changelog" ]] || {
    echo "build-deb: debian/changelog is at $changelog, the Makefile's VERSION at $version" >&2
    exit 1
}
work=$(mktemp -d /tmp/dbha-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
src=$work/dbha-$version
mkdir -p "$src"
# Tracked and new files of the tree (not build outputs nor ignored files).
git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} sh -c '[ -e "{}" ] && echo "{}"' |
    tar -c -T - | tar -x -C "$src"
(cd "$src" && DEB_BUILD_OPTIONS="nocheck ${DEB_BUILD_OPTIONS:-}" \
    dpkg-buildpackage -us -uc -b -j"$(nproc 2>/dev/null || echo 2)" >"$work/build.log" 2>&1) || {
    tail -n 60 "$work/build.log" >&2
    echo "build-deb: dpkg-buildpackage failed (the last lines above)" >&2
    exit 1
}
mkdir -p "$out"
rm -f "$out"/*.deb "$out"/*.ddeb "$out"/*.buildinfo "$out"/*.changes
mv "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes "$out"/
mv "$work"/*.ddeb "$out"/ 2>/dev/null || true
cp "$work/build.log" "$out/build.log"
ls "$out"
