#!/usr/bin/env bash
# `make deb-check` (part of `make check`): build the Debian packages, run
# lintian on them, check the hardening flags landed in the binaries and that
# the maintainer scripts create and start nothing, install them on this
# machine with dpkg -i, use what they installed (dbagent, dbctl, the man
# pages, the unit, the bash completion, libdbha through pkg-config, shared
# and static), then purge them and check that no file is left behind.
# Runs as root (as `make check` does on CI); the tree's own bin/ is never
# used: every command is the installed one, by its absolute path.
# Usage: tests/package/deb_check.sh OUTDIR
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: $0 OUTDIR}
fail() {
    echo "deb-check: $*" >&2
    exit 1
}
[[ $(id -u) -eq 0 ]] || fail "must run as root (it installs and purges the packages)"
pkgs=(dbha libdbha0 libdbha-dev python3-dbha)
version=$(sed -n 's/^VERSION *:= *//p' Makefile)
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
for p in "${pkgs[@]}"; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'installed'; then
        fail "$p is already installed here; purge it first (this check installs and purges it)"
    fi
done

t0=$(date +%s)
scripts/build-deb.sh "$out" >/dev/null
t_build=$(($(date +%s) - t0))
debs=()
for p in "${pkgs[@]}"; do
    a=$arch
    [[ $p == python3-* ]] && a=all
    debs+=("$out/${p}_${version}_${a}.deb")
    [[ -f ${debs[-1]} ]] || fail "make deb did not produce ${debs[-1]}"
done

# lintian: no error (warnings and infos are printed, not fatal).
lintian --fail-on error --suppress-tags no-symbols-control-file "$out"/dbha_"${version}"_"${arch}".changes ||
    fail "lintian reports errors"

work=$(mktemp -d /tmp/dbha-debcheck.XXXXXX)
installed=0
cleanup() {
    if [[ $installed -eq 1 ]]; then
        dpkg --purge "${pkgs[@]}" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Hardening: fortify, stack protector, RELRO and BIND_NOW in the binaries
# and the shared library (dpkg-buildflags' flags through the Makefile).
for d in "${debs[@]}"; do
    dpkg-deb -x "$d" "$work/x"
done
# (hardening-check's exit status also counts checks Debian 12's
# dpkg-buildflags has no flag for: control flow integrity.)
hc=$(hardening-check "$work/x/usr/bin/dbagent" "$work/x/usr/bin/dbctl" \
    "$work/x/usr/lib/$multiarch/libdbha.so.$version" || true)
for f in dbagent dbctl libdbha.so; do
    for what in "Stack protected" "Fortify Source functions" "Read-only relocations" "Immediate binding"; do
        line=$(awk -v f="$f" -v w="$what" '/^\// {cur = $0} index($0, w ":") && index(cur, f) {print}' <<<"$hc")
        [[ $line == *": yes"* ]] || fail "$f: $what: ${line:-not reported} ($hc)"
    done
done
readelf -d "$work/x/usr/bin/dbagent" | grep -q 'FLAGS.*BIND_NOW' || fail "dbagent not linked with -z now"

# The maintainer scripts: no user, group or directory created (postgres and
# /var/run/postgresql belong to PostgreSQL's packages), no service started.
for i in "${!pkgs[@]}"; do
    p=${pkgs[$i]}
    dpkg-deb -e "${debs[$i]}" "$work/ctl-$p"
    for s in preinst postinst prerm postrm; do
        f=$work/ctl-$p/$s
        [[ -f $f ]] || continue
        ! grep -nE 'adduser|useradd|addgroup|groupadd|mkdir|install -d|chown|chmod|systemd-tmpfiles|invoke-rc\.d|deb-systemd-invoke +(start|restart)|systemctl +(start|restart|enable)' "$f" ||
            fail "$p's $s creates or starts something"
    done
done

# Install: nothing of the packages may exist before (then the purge check
# means something, and no file of someone else's is overwritten).
mapfile -t paths < <(for d in "${debs[@]}"; do dpkg-deb -c "$d"; done | awk '$1 !~ /^d/ {print substr($6, 2)}' | sort -u)
for f in "${paths[@]}"; do
    [[ ! -e $f && ! -L $f ]] || fail "$f exists before the install (a make install PREFIX=/usr?)"
done
[[ ! -e /etc/dbha ]] || fail "/etc/dbha exists before the install"
installed=1
dpkg -i "${debs[@]}" >"$work/dpkg.log" 2>&1 || {
    cat "$work/dpkg.log" >&2
    fail "dpkg -i failed"
}

# Use it as an operator would, with the system's PATH only.
run() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/nonexistent LC_ALL=C.UTF-8 "$@"; }
[[ $(run sh -c 'command -v dbagent') == /usr/bin/dbagent ]] || fail "dbagent is not /usr/bin/dbagent"
[[ $(run dbagent --version) == "dbagent $version" ]] || fail "dbagent --version: $(run dbagent --version)"
run dbctl --help | grep -q '^Commands:' || fail "dbctl --help"
[[ $(run man -w dbagent) == /usr/share/man/man8/dbagent.8.gz ]] || fail "man -w dbagent: $(run man -w dbagent)"
[[ $(run man -w 1 dbctl) == /usr/share/man/man1/dbctl.1.gz ]] || fail "man -w dbctl"
[[ $(run man -w 5 dbagent.yml) == /usr/share/man/man5/dbagent.yml.5.gz ]] || fail "man -w dbagent.yml"
[[ $(run man -w 3 libdbha) == /usr/share/man/man3/libdbha.3.gz ]] || fail "man -w libdbha"
run man 5 dbagent.yml 2>/dev/null | grep -q 'postgresql.config_dir' || fail "man 5 dbagent.yml lacks postgresql.config_dir"
[[ -d /etc/dbha ]] || fail "no /etc/dbha"

# The unit: /usr/bin paths, and systemd-analyze verify says nothing.
unit=/lib/systemd/system/dbagent@.service
grep -q '^ExecStart=/usr/bin/dbagent /etc/dbha/%i.yml$' $unit || fail "the unit does not run /usr/bin/dbagent"
v=$(cd "$work" && run systemd-analyze verify $unit 2>&1) || fail "systemd-analyze verify: $v"
[[ -z $v ]] || fail "systemd-analyze verify: $v"
exposure=$(cd "$work" && run systemd-analyze security --offline=true $unit 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
[[ -n $exposure ]] || fail "systemd-analyze security gave no figure"

# Bash completion: verbs and a verb's options, from the installed dbctl.
comp() {
    run bash -c 'source /usr/share/bash-completion/bash_completion
        source /usr/share/bash-completion/completions/dbctl
        COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        _dbctl; printf "%s\n" "${COMPREPLY[@]}"' _ "$@"
}
[[ $(comp dbctl sw) == switchover ]] || fail "completion of 'dbctl sw': $(comp dbctl sw)"
comp dbctl status --w | grep -qx -- --watch || fail "completion of 'dbctl status --w': $(comp dbctl status --w)"
comp dbctl --sc | grep -qx -- --scope || fail "completion of 'dbctl --sc'"

# libdbha: pkg-config under /usr with the multiarch libdir, a program built
# against the installed library, shared and static.
[[ $(run pkg-config --modversion libdbha) == "$version" ]] || fail "pkg-config --modversion libdbha"
[[ $(run pkg-config --libs libdbha | xargs) == "-ldbha" ]] || fail "pkg-config --libs libdbha: $(run pkg-config --libs libdbha)"
[[ $(run pkg-config --variable=libdir libdbha) == /usr/lib/$multiarch ]] || fail "libdbha.pc libdir"
cat >"$work/app.c" <<'C'
#include <stdio.h>
#include <string.h>

#include <dbha/dbha.h>

int main(void)
{
    static const char doc[] = "{\"version\": 3, \"scope\": \"s\", \"leader\": \"n1\", \"timeline\": 1,"
                              " \"primary\": {\"name\": \"n1\", \"host\": \"h\", \"port\": 5432},"
                              " \"replicas\": []}";
    DbhaTopology *t;
    DbhaError err;
    if (dbha_topology_parse(doc, strlen(doc), &t, &err) < 0 || t->version != 3) {
        return 1;
    }
    dbha_topology_unref(t);
    printf("%s\n", dbha_version());
    return 0;
}
C
# shellcheck disable=SC2016,SC2046
run sh -c 'cc -std=c11 -Wall -Werror $(pkg-config --cflags libdbha) "$1"/app.c $(pkg-config --libs libdbha) -o "$1"/app' \
    _ "$work" || fail "building against the installed libdbha failed"
# shellcheck disable=SC2016
run sh -c 'l=$(pkg-config --static --libs libdbha); cc -std=c11 -Wall -Werror "$1"/app.c ${l%%-ldbha*}-l:libdbha.a${l#*-ldbha} -o "$1"/app-static' \
    _ "$work" || fail "building against the installed libdbha.a failed"
[[ $(run "$work/app") == "$version" ]] || fail "the program linked with libdbha.so does not run"
[[ $(run "$work/app-static") == "$version" ]] || fail "the program linked with libdbha.a does not run"
# The Python binding: the system's python3 imports it and it loads libdbha.so.0
# (as root, so the import writes byte code the purge must remove too).
[[ $(run python3 -c 'import dbha; print(dbha.version())') == "$version" ]] || fail "python3 -c 'import dbha' does not load libdbha"
# ldconfig first: libc-bin's trigger is noawait, and once (beside the
# concurrent test pass) the cache did not name the library yet.
ldconfig
deps=$(run ldd "$work/app")
grep -qE "libdbha\.so\.0 => (/usr)?/lib/$multiarch/libdbha\.so\.0 " <<<"$deps" ||
    fail "app does not use the installed libdbha.so.0: $(grep libdbha <<<"$deps")"

# Purge: every file and directory the packages brought is gone.
mapfile -t listed < <(dpkg -L "${pkgs[@]}" | sort -u)
dpkg --purge "${pkgs[@]}" >"$work/purge.log" 2>&1 || {
    cat "$work/purge.log" >&2
    fail "dpkg --purge failed"
}
installed=0
left=()
for f in "${listed[@]}"; do
    case $f in
        /. | /etc | /lib | /lib/systemd | /lib/systemd/system | /usr | /usr/bin | /usr/include | /usr/lib | \
            /usr/lib/"$multiarch" | /usr/lib/"$multiarch"/pkgconfig | /usr/lib/python3 | /usr/lib/python3/dist-packages | /usr/share | /usr/share/doc | /usr/share/man | \
            /usr/share/man/man[1-8] | /usr/share/bash-completion | /usr/share/bash-completion/completions)
            continue
            ;; # shared directories
    esac
    [[ -e $f || -L $f ]] && left+=("$f")
done
ls /var/lib/dpkg/info/dbha.* /var/lib/dpkg/info/libdbha* >/dev/null 2>&1 && left+=("/var/lib/dpkg/info entries")
ls /var/lib/dpkg/info/python3-dbha.* >/dev/null 2>&1 && left+=("/var/lib/dpkg/info/python3-dbha.*")
[[ ${#left[@]} -eq 0 ]] || fail "left after purge: ${left[*]}"
echo "deb-check: make deb ${t_build} s; lintian: no error; hardening (fortify, stack protector, relro," \
    "bindnow) in dbagent, dbctl, libdbha.so; installed ${#listed[@]} paths, used (version, help, 4 man" \
    "pages, unit verify clean, security exposure $exposure, completion, pkg-config, shared and static" \
    "link, python3 import dbha) and purged: nothing left"
