"""A topology key that names another leader than the leader key is not
followed: a document left over (a cluster moved back to Patroni keeps dbha's
last one, not leased), or not rewritten yet (the window of a failover
between the leader key moving and the new leader's rewrite). Written by hand
here through the etcd v3 gateway while the leader's agent is stopped
(SIGSTOP, so it cannot rewrite it at once): libdbha (examples/dbha-example
on etcd), `dbctl topology`, `dbctl route pgbouncer` and the other agent's
GET /topology all name the leader key's member, built from the member keys;
once the leader's agent runs again its next publication agrees with the
leader key (one version skipped) and every reader follows the key again."""
import json
import os
import signal
import subprocess

import pytest

from conftest import started_cluster
from lib.cluster import SUPERUSER, SUPERUSER_PW
from lib.etcd_cluster import b64
from lib.procs import LOOPBACK, build_dir, wait_until

pytestmark = pytest.mark.concurrent

CONNINFO = f"user={SUPERUSER} password={SUPERUSER_PW} dbname=postgres connect_timeout=2"
INI = """[databases]
postgres = host=127.0.0.1 port=1 dbname=postgres
postgres_ro = host=127.0.0.1 port=1 dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = 1
"""


@pytest.fixture(scope="module")
def cluster():
    # loop_wait 10: the leader rewrites the key only at its ticks
    with started_cluster("dbha-topo-stale-", n=2, ttl=30, loop_wait=10, retry_timeout=10) as c:
        yield c


def events(path):
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    return out


def key_doc(c):
    return json.loads(c.etcd_get("topology") or "null")


def route(c, ini):
    """One `dbctl route pgbouncer` pass: (the write entry's port, stderr)."""
    r = c.dbctl("route", "pgbouncer", "--ini", ini, "--no-reload")
    assert r.returncode == 0, r.stderr
    for line in open(ini).read().splitlines():
        if line.startswith("postgres ="):
            return dict(p.split("=", 1) for p in line.split("=", 1)[1].split())["port"], r.stderr
    raise AssertionError("no postgres entry")


def dbctl_topology(c):
    r = c.dbctl("topology", "-o", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_stale_topology_key_is_not_followed(cluster):
    c = cluster
    leader = c.primary()
    replica = next(n for n in c.nodes if n is not leader)
    doc = wait_until(lambda: (lambda d: d if d and d["leader"] == leader.name and d["replicas"]
                              and d["replicas"][0]["state"] == "streaming" else None)(key_doc(c)),
                     30, interval=0.2, what="the leader's topology key")
    ini = os.path.join(c.workdir, "stale.ini")
    with open(ini, "w") as f:
        f.write(INI)

    log = os.path.join(c.workdir, "stale-example.log")
    with open(log, "wb") as out:
        ex = subprocess.Popen([os.path.join(build_dir(), "examples", "dbha-example"),
                               "--etcd", c.etcd.endpoints[0], "--scope", c.scope,
                               "--conninfo", CONNINFO, "--acquire", "primary", "--duration", "90",
                               "--interval-ms", "200", "--timeout-ms", "1000"],
                              stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    stopped = False
    try:
        wait_until(lambda: [e for e in events(log) if e["event"] == "acquire" and e["ok"]
                            and e["node"] == leader.name], 20, what="libdbha acquires the leader")
        assert route(c, ini)[0] == str(leader.pg_port)

        # the document names the replica (as a key left by another leader
        # would), at a higher version; the leader's agent cannot rewrite it
        stale = dict(doc, version=doc["version"] + 10, leader=replica.name,
                     primary={"name": replica.name, "host": LOOPBACK, "port": replica.pg_port},
                     replicas=[dict(doc["replicas"][0], name=leader.name,
                                    port=leader.pg_port)])
        os.kill(leader.proc.pid, signal.SIGSTOP)
        stopped = True
        status, body = c.etcd.api("kv/put", {"key": b64(f"/service/{c.scope}/topology"),
                                             "value": b64(json.dumps(stale))})
        assert status == 200, body
        assert key_doc(c)["leader"] == replica.name

        built = doc["version"] + 11  # a reader's own number: the stale key's + 1
        t = dbctl_topology(c)
        assert t["leader"] == leader.name and t["version"] == built, t
        assert t["primary"]["port"] == leader.pg_port, t
        assert [r["name"] for r in t["replicas"]] == [replica.name], t
        port, err = route(c, ini)
        assert port == str(leader.pg_port), err
        assert f'names leader "{replica.name}"' in err, err
        # the other agent serves the same rule at GET /topology
        wait_until(lambda: replica.api_json("/topology")[1].get("version") == built, 10,
                   interval=0.2, what="the replica's agent serves the built document")
        assert replica.api_json("/topology")[1]["leader"] == leader.name
        wait_until(lambda: [e for e in events(log) if e["event"] == "topology"
                            and e["version"] == built], 10, what="libdbha follows the built one")
        n_acquires = len([e for e in events(log) if e["event"] == "acquire"])
        wait_until(lambda: len([e for e in events(log) if e["event"] == "acquire"])
                   >= n_acquires + 5, 10, what="five more acquires")

        os.kill(leader.proc.pid, signal.SIGCONT)
        stopped = False
        # its next tick rewrites the key, skipping the readers' number
        fresh = wait_until(lambda: (lambda d: d if d["leader"] == leader.name else None)(
            key_doc(c)), 30, interval=0.2, what="the leader rewrites the key")
        assert fresh["version"] == built + 1, fresh
        t = dbctl_topology(c)
        assert t["version"] == built + 1 and t["leader"] == leader.name, t
        port, err = route(c, ini)
        assert port == str(leader.pg_port) and "names leader" not in err, err
        wait_until(lambda: replica.api_json("/topology")[1].get("version") == built + 1, 10,
                   interval=0.2, what="the replica's agent serves the key again")
        wait_until(lambda: [e for e in events(log) if e["event"] == "topology"
                            and e["version"] == built + 1], 10, what="libdbha follows the key")
    finally:
        if stopped:
            os.kill(leader.proc.pid, signal.SIGCONT)
        ex.kill()
        ex.wait()
    ev = events(log)
    # libdbha never named the replica the primary, and every acquire went to the leader
    tops = [e for e in ev if e["event"] == "topology"]
    assert tops and all(e["primary"] == leader.name for e in tops), tops
    acq = [e for e in ev if e["event"] == "acquire"]
    assert acq and all(e["ok"] and e["node"] == leader.name for e in acq), \
        [e for e in acq if not e["ok"] or e["node"] != leader.name][:3]
    assert [e["version"] for e in tops] == sorted(e["version"] for e in tops), tops
