#!/usr/bin/env bash
# make demo: a dbha cluster on loopback in ./demo-data.
#   scripts/demo.sh start   start etcd, check the three node configs
#   scripts/demo.sh stop    stop everything the demo started (by PID)
# Ports: etcd 127.0.0.1:23790 (peer 23800). PostgreSQL 5441-5443, REST 8011-8013.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
data=$top/demo-data
etcd_client=127.0.0.1:23790
etcd_peer=127.0.0.1:23800

stop_pidfile() {
    local f=$1
    [[ -f $f ]] || return 0
    local pid
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
}

port_in_use() {
    ss -Hltn "sport = :$1" | grep -q .
}

start() {
    mkdir -p "$data"
    if [[ -f $data/etcd.pid ]] && kill -0 "$(cat "$data/etcd.pid")" 2>/dev/null; then
        echo "etcd already running (pid $(cat "$data/etcd.pid"))"
    else
        for p in 23790 23800; do
            if port_in_use $p; then
                echo "demo: port $p is in use; stop what uses it or run 'make demo-stop'" >&2
                exit 1
            fi
        done
        etcd --name demo --data-dir "$data/etcd" \
            --listen-client-urls "http://$etcd_client" --advertise-client-urls "http://$etcd_client" \
            --listen-peer-urls "http://$etcd_peer" --initial-advertise-peer-urls "http://$etcd_peer" \
            --initial-cluster "demo=http://$etcd_peer" >"$data/etcd.log" 2>&1 &
        echo $! >"$data/etcd.pid"
        for _ in $(seq 1 100); do
            curl -fsS "http://$etcd_client/health" >/dev/null 2>&1 && break
            sleep 0.1
        done
        echo "etcd: pid $(cat "$data/etcd.pid"), http://$etcd_client ($(curl -fsS "http://$etcd_client/version"))"
    fi

    # The example configs are used as they are; the environment points them
    # at the demo's etcd and data directories (Patroni's PATRONI_* overrides).
    for i in 1 2 3; do
        echo "--- node$i: dbagent --validate-config configs/node$i.yml"
        PATRONI_ETCD3_HOSTS=$etcd_client PATRONI_POSTGRESQL_DATA_DIR=$data/node$i \
            bin/dbagent --validate-config "configs/node$i.yml"
    done
    echo
    bin/dbctl version
    cat <<MSG

What runs now: etcd on $etcd_client and configuration checking.
Not yet: the agents that bootstrap PostgreSQL and elect a leader, and
'dbctl status' (see the feature table in README.md).
Stop with: make demo-stop
MSG
}

case "${1:-start}" in
start) start ;;
stop)
    stop_pidfile "$data/etcd.pid"
    echo "demo stopped"
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
