#!/usr/bin/env bash
# `make install` into a temporary DESTDIR, then build a program against the
# installed libdbha, shared and static, and run it. Part of `make check`.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
make -s install DESTDIR="$dest" PREFIX=/opt/dbha >/dev/null
for f in bin/dbagent bin/dbctl lib/libdbha.a lib/libdbha.so lib/libdbha.so.0 include/dbha/dbha.h; do
    [[ -e $dest/opt/dbha/$f ]] || { echo "install-check: missing $f" >&2; exit 1; }
done
"$dest/opt/dbha/bin/dbagent" --version >/dev/null
cat >"$dest/app.c" <<'C'
#include <stdio.h>
#include <dbha/dbha.h>
int main(void) { printf("%s\n", dbha_version()); return 0; }
C
cc -std=c11 -Wall -Werror -I"$dest/opt/dbha/include" "$dest/app.c" -L"$dest/opt/dbha/lib" -ldbha \
    -o "$dest/app-shared"
shared=$(LD_LIBRARY_PATH="$dest/opt/dbha/lib" "$dest/app-shared")
cc -std=c11 -Wall -Werror -I"$dest/opt/dbha/include" "$dest/app.c" "$dest/opt/dbha/lib/libdbha.a" \
    $(pkg-config --libs libpq yaml-0.1 libcurl jansson libmicrohttpd libsystemd) -o "$dest/app-static"
static=$("$dest/app-static")
want=$("$dest/opt/dbha/bin/dbagent" --version | cut -d' ' -f2)
[[ $shared == "$want" && $static == "$want" ]] || {
    echo "install-check: version mismatch: shared=$shared static=$static want=$want" >&2
    exit 1
}
# Only the public API is exported from the shared library.
exported=$(nm -D --defined-only "$dest/opt/dbha/lib/libdbha.so" | awk '$2 == "T" {print $3}' | sort)
bad=$(grep -v '^dbha_' <<<"$exported" || true)
[[ -z $bad ]] || { echo "install-check: non-public symbols exported: $bad" >&2; exit 1; }
echo "install-check: installed tree complete; shared and static libdbha link and report $want"
