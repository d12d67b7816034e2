#!/usr/bin/env bash
# `make install` into a temporary DESTDIR, then check what libdbha exports
# and links, and build a program against the installed libdbha through its
# pkg-config file, shared and static, and run both. Part of `make check`.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() {
    echo "install-check: $*" >&2
    exit 1
}
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
make -s install DESTDIR="$dest" PREFIX=/opt/dbha >/dev/null
root=$dest/opt/dbha
for f in bin/dbagent bin/dbctl lib/libdbha.a lib/libdbha.so lib/libdbha.so.0 include/dbha/dbha.h \
    lib/pkgconfig/libdbha.pc; do
    [[ -e $root/$f ]] || fail "missing $f"
done
# Nothing internal is installed: one header directory, libdbha only.
extra=$(cd "$root" && find include lib -type f ! -path 'include/dbha/*' ! -path 'lib/systemd/system/dbagent@.service' ! -name 'libdbha.*')
[[ -z $extra ]] || fail "installed files that are not libdbha: $extra"
"$root/bin/dbagent" --version >/dev/null

# Only the public API is defined global, in the archive and in the shared
# library (whose version node DBHA_<n> is an absolute symbol, not code).
static_syms=$(nm --defined-only -g "$root/lib/libdbha.a" | awk 'NF == 3 {print $3}' | sort -u)
bad=$(grep -v '^dbha_' <<<"$static_syms" || true)
[[ -z $bad ]] || fail "libdbha.a defines non-public global symbols: $(echo $bad)"
shared_syms=$(nm -D --defined-only "$root/lib/libdbha.so" | awk '!($2 == "A" && $3 ~ /^DBHA_[0-9]+$/) {print $3}' |
    sort -u)
bad=$(grep -v '^dbha_' <<<"$shared_syms" || true)
[[ -z $bad ]] || fail "libdbha.so exports non-public symbols: $(echo $bad)"
[[ $(wc -l <<<"$static_syms") -ge 20 && $static_syms == "$(sed 's/@.*//' <<<"$shared_syms" | sort -u)" ]] ||
    fail "libdbha.a and libdbha.so do not define the same dbha_* symbols"
# The client's dependencies only: not the agent's.
needed=$(readelf -d "$root/lib/libdbha.so" | awk '/NEEDED/ {print $NF}' | tr -d '[]')
bad=$(grep -E '^lib(yaml|systemd|microhttpd)' <<<"$needed" || true)
[[ -z $bad ]] || fail "libdbha.so needs agent-only libraries: $(echo $bad)"

# An application: the public API only, and its own functions named like
# dbha's internal ones (a clash would fail the static link).
cat >"$dest/app.c" <<'C'
#include <stdio.h>
#include <string.h>

#include <dbha/dbha.h>

/* Named like libdbha's internal modules; must not clash with them. */
int log_internal(void);
int etcd_client_new(void);
int log_internal(void) { return 1; }
int etcd_client_new(void) { return 2; }

int main(void)
{
    static const char doc[] = "{\"version\": 7, \"scope\": \"s\", \"leader\": \"n1\", \"timeline\": 1,"
                              " \"primary\": {\"name\": \"n1\", \"host\": \"h\", \"port\": 5432},"
                              " \"replicas\": []}";
    DbhaTopology *t;
    DbhaError err;
    if (dbha_topology_parse(doc, strlen(doc), &t, &err) < 0 || t->version != 7 ||
        log_internal() + etcd_client_new() != 3) {
        return 1;
    }
    dbha_topology_unref(t);
    dbha_client_free(NULL); /* reaches the etcd client and log code inside libdbha */
    printf("%s\n", dbha_version());
    return 0;
}
C
export PKG_CONFIG_PATH=$root/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest
[[ $(pkg-config --modversion libdbha) == "$(sed -n 's/^VERSION *:= *//p' Makefile)" ]] ||
    fail "libdbha.pc version differs from the Makefile's"
# shellcheck disable=SC2046 # pkg-config output is a list of words
cc -std=c11 -Wall -Werror $(pkg-config --cflags libdbha) "$dest/app.c" $(pkg-config --libs libdbha) \
    -o "$dest/app-shared"
# The static link names the archive (-l:libdbha.a): -ldbha would pick the .so.
static_libs=$(pkg-config --static --libs libdbha)
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror $(pkg-config --cflags libdbha) "$dest/app.c" ${static_libs/-ldbha/-l:libdbha.a} \
    -o "$dest/app-static"
readelf -d "$dest/app-shared" | grep -q 'NEEDED.*\[libdbha\.so\.0\]' || fail "app-shared does not use libdbha.so"
! readelf -d "$dest/app-static" | grep -q 'NEEDED.*libdbha' || fail "app-static still needs libdbha.so"
shared=$(LD_LIBRARY_PATH="$root/lib" "$dest/app-shared") || fail "app-shared failed"
static=$("$dest/app-static") || fail "app-static failed"
want=$("$root/bin/dbagent" --version | cut -d' ' -f2)
[[ $shared == "$want" && $static == "$want" ]] ||
    fail "version mismatch: shared=$shared static=$static want=$want"
echo "install-check: installed tree complete; libdbha.a and libdbha.so define $(wc -l <<<"$static_syms")" \
    "dbha_* symbols and nothing else; libdbha.so needs $(echo $needed);" \
    "apps built with pkg-config, shared and static, link and report $want"
