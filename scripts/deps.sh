#!/usr/bin/env bash
# Make sure the Debian packages dbha needs are installed.
# Usage: scripts/deps.sh build|test|demo|lint|bench|fuzz|deb
#   build: compilers' inputs (headers and pkg-config files)
#   test:  build + the real peers the tests start (etcd, PostgreSQL, HAProxy,
#          pgbouncer, vip-manager, patronictl) and pytest (with xdist: independent
#          modules run two at a time)
#   demo:  test's set (the demo runs the same peers)
#   lint:  clang-format-16 and cppcheck
#   bench: test's set (with Patroni, the benchmarks' reference) and wrk (bench/rest)
#   fuzz:  build + clang (libFuzzer and its sanitizer runtimes, `make fuzz`)
#   deb:   build + the Debian packaging tools (`make deb`, `make deb-check`:
#          debhelper, dpkg-buildpackage, lintian, hardening-check, man, bash
#          completion)
# As root, missing packages are installed with apt-get; otherwise the exact
# apt-get line is printed and the script exits 1.
set -euo pipefail

build_pkgs=(gcc make pkg-config libpq-dev libyaml-dev libcurl4-openssl-dev libjansson-dev
            libmicrohttpd-dev libgnutls28-dev libsystemd-dev libcmocka-dev)
test_pkgs=(postgresql-15 etcd-server etcd-client python3 python3-pytest python3-psycopg2
           openssl procps iproute2 nftables curl
           haproxy pgbouncer vip-manager patroni python3-etcd python3-pytest-xdist
           bash-completion prometheus)
lint_pkgs=(clang-format-16 cppcheck)
# Patroni 3.0.2 (in the test set: the tests read a dbha cluster with
# patronictl) also runs beside dbha in the benchmarks, from the same configs;
# wrk loads the REST API (bench/rest).
bench_pkgs=(wrk)
# `make fuzz`: clang brings libFuzzer and the sanitizer runtimes (clang-14 ->
# libclang-common-14-dev -> libclang-rt-14-dev).
fuzz_pkgs=(clang)
# `make deb` and `make deb-check` (part of `make check`).
deb_pkgs=(debhelper devscripts lintian dpkg-dev fakeroot man-db bash-completion python3)

want=("${build_pkgs[@]}")
case "${1:-build}" in
    build) ;;
    test | demo) want+=("${test_pkgs[@]}") ;;
    lint) want+=("${lint_pkgs[@]}") ;;
    bench) want+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
    fuzz) want+=("${fuzz_pkgs[@]}") ;;
    deb) want+=("${deb_pkgs[@]}") ;;
    *)
        echo "usage: $0 build|test|demo|lint|bench|fuzz|deb" >&2
        exit 2
        ;;
esac

missing=()
for p in "${want[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
    echo "dbha: missing Debian packages: ${missing[*]}" >&2
    echo "install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi

echo "dbha: installing missing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The postgresql-common postinst would create and start a "main" cluster on
# port 5432; tests and the demo run their own, so do not create it.
if [[ " ${missing[*]} " == *" postgresql-15 "* ]]; then
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/dbha-no-main.conf
fi
# haproxy and pgbouncer start their system services from their postinst
# (on the ports the examples use); the tests start their own. invoke-rc.d
# asks policy-rc.d, and exit status 101 means "action forbidden": one is put
# in place for the install when the host has none, and removed afterwards.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# dbha scripts/deps.sh: no service starts during this install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
    trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if [[ $own_policy -eq 1 ]]; then
    rm -f "$policy"
    trap - EXIT
fi
