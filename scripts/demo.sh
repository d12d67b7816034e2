#!/usr/bin/env bash
# make demo: a three-node dbha cluster on loopback.
#   scripts/demo.sh start   etcd + three PostgreSQL 15 nodes with their agents
#   scripts/demo.sh stop    stop every process the demo started, by PID
# Everything lives in $DBHA_DEMO_DIR (default /tmp/dbha-demo): configs made
# from configs/node*.yml, data directories, logs and PID files.
# Ports: etcd 127.0.0.1:23790 (peer 23800), PostgreSQL 5441-5443, REST 8011-8013.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
demo=${DBHA_DEMO_DIR:-/tmp/dbha-demo}
etcd_client=127.0.0.1:23790
etcd_peer=127.0.0.1:23800
pg_user=postgres

stop_pidfile() {
    local f=$1
    [[ -f $f ]] || return 0
    local pid
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 300); do # up to 30 s: an agent stops its PostgreSQL first
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

# The agents run as the PostgreSQL owner when we are root (PostgreSQL
# refuses root). setpriv execs in place, so $! is the agent's own PID.
as_pg=()
if [[ $(id -u) -eq 0 ]]; then
    as_pg=(setpriv --reuid="$pg_user" --regid="$pg_user" --init-groups --)
fi

dbctl() {
    "$demo/bin/dbctl" --etcd "$etcd_client" --scope demo "$@"
}

healthy() {
    dbctl status -o json 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)
p = [m for m in s["members"] if m["role"] == "primary" and m["state"] == "running"]
r = [m for m in s["members"] if m["role"] != "primary" and m["state"] == "streaming"]
sys.exit(0 if len(p) == 1 and len(r) == 2 else 1)'
}

start() {
    if [[ -f $demo/etcd.pid ]] && kill -0 "$(cat "$demo/etcd.pid")" 2>/dev/null; then
        echo "the demo is already running; 'make demo-stop' first" >&2
        exit 1
    fi
    for p in 23790 23800 5441 5442 5443 8011 8012 8013; do
        if port_in_use $p; then
            echo "demo: port $p is in use; stop what uses it (or 'make demo-stop')" >&2
            exit 1
        fi
    done
    rm -rf "$demo"
    mkdir -p "$demo/bin"
    chmod 755 "$demo"
    cp bin/dbagent bin/dbctl "$demo/bin/"

    etcd --name demo --data-dir "$demo/etcd" \
        --listen-client-urls "http://$etcd_client" --advertise-client-urls "http://$etcd_client" \
        --listen-peer-urls "http://$etcd_peer" --initial-advertise-peer-urls "http://$etcd_peer" \
        --initial-cluster "demo=http://$etcd_peer" >"$demo/etcd.log" 2>&1 &
    echo $! >"$demo/etcd.pid"
    for _ in $(seq 1 100); do
        curl -fsS "http://$etcd_client/health" >/dev/null 2>&1 && break
        sleep 0.1
    done
    echo "etcd      pid $(cat "$demo/etcd.pid"), http://$etcd_client"

    for i in 1 2 3; do
        local dir=$demo/node$i
        mkdir -p "$dir"
        # the example config, pointed at the demo's etcd and directory
        sed -e "s#/var/lib/dbha/node$i#$dir#g" -e "s#127.0.0.1:2379\$#$etcd_client#" \
            "configs/node$i.yml" >"$demo/node$i.yml"
        if [[ $(id -u) -eq 0 ]]; then
            chown "$pg_user:" "$dir"
        fi
        "$demo/bin/dbagent" --validate-config "$demo/node$i.yml" >/dev/null
        "${as_pg[@]}" "$demo/bin/dbagent" "$demo/node$i.yml" >"$demo/node$i.log" 2>&1 &
        echo $! >"$demo/node$i.pid"
        echo "node$i     agent pid $(cat "$demo/node$i.pid"), PostgreSQL 127.0.0.1:544$i," \
            "REST http://127.0.0.1:801$i, log $demo/node$i.log"
    done

    echo -n "waiting for one primary and two streaming replicas "
    for _ in $(seq 1 240); do
        if healthy; then
            echo " ok"
            echo
            dbctl status
            cat <<MSG

Try:  $demo/bin/dbctl --etcd $etcd_client --scope demo status -o json
      curl -s http://127.0.0.1:8011/patroni
      psql -h 127.0.0.1 -p 5441 -U postgres    (password: postgres-secret)
Stop: make demo-stop
MSG
            return 0
        fi
        echo -n .
        sleep 0.5
    done
    echo " timed out; the agents' logs are in $demo" >&2
    dbctl status >&2 || true
    exit 1
}

stop() {
    # replicas first, the leader last, so nobody needs to take over
    local leader
    leader=$(dbctl status -o json 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"] or "")' 2>/dev/null || true)
    for i in 1 2 3; do
        [[ node$i == "$leader" ]] || stop_pidfile "$demo/node$i.pid"
    done
    [[ -z $leader ]] || stop_pidfile "$demo/$leader.pid"
    stop_pidfile "$demo/etcd.pid"
    # a PostgreSQL an agent could not stop (the agent was killed): by PID
    for i in 1 2 3; do
        local pidfile=$demo/node$i/data/postmaster.pid
        if [[ -f $pidfile ]]; then
            local pid
            pid=$(head -1 "$pidfile")
            kill -INT "$pid" 2>/dev/null || true
        fi
    done
    echo "demo stopped (files kept in $demo)"
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
