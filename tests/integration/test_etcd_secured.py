"""The agent on a locked-down etcd (issue #15, item 3), against real etcd 3.4
and three real PostgreSQL 15 nodes (ttl 5, loop_wait 1): etcd serves https
only and requires a client certificate its CA signed, authentication is on,
and the agents' user may read and write /service/ and nothing else; simple
auth tokens expire after 2 s unused. The agents (`etcd3.protocol`,
`cacert`, `cert`, `key`, `username`, `password`) bootstrap, fail over after
a kill -9 of the leader node, and rejoin; dbctl reads the same etcd with a
node's configuration, and libdbha (examples/dbha-example with
`--etcd https://...`, the CA, the client certificate and the user) finds
the new primary through it.

Mid-failover every token the agents hold is made worthless: etcd is
restarted right after the kill (simple tokens live in its memory only), so
the surviving agents' next requests are refused as "invalid auth token" and
they must authenticate again, in the middle of electing and promoting
(`dbha_etcd_authentications_total` in /metrics counts it). A writer probes
every node's port directly; no two nodes may accept writes in overlapping
intervals.
"""
import json
import os
import subprocess
import time

import pytest

from lib.cluster import DbhaCluster
from lib.cluster import SUPERUSER, SUPERUSER_PW
from lib.procs import LOOPBACK, build_dir, wait_until
from lib.writer import start_with_writer

TTL = 5
USER, PASSWORD = "dbha", "dbha-etcd-secret"


@pytest.fixture
def cluster(procs, workdir):
    c = DbhaCluster(procs, workdir, n=3, ttl=TTL, loop_wait=1, retry_timeout=1, etcd_tls=True,
                    etcd_auth=(USER, PASSWORD), etcd_args=["--auth-token-ttl", "2"])
    yield c
    c.stop_all()


def authentications(node):
    code, body = node.api("/metrics")
    assert code == 200, body
    for line in body.decode().splitlines():
        if line.startswith("dbha_etcd_authentications_total"):  # {scope=...,name=...} N
            return int(float(line.split()[-1]))
    raise AssertionError("no dbha_etcd_authentications_total in /metrics")


def test_failover_on_tls_and_auth_with_tokens_made_stale_mid_failover(cluster):
    s, leader, w = start_with_writer(cluster)
    assert len(s["members"]) == 3
    # the agents' user is confined to /service/: a read outside is refused
    status, body = cluster.etcd.api("auth/authenticate", {"name": USER, "password": PASSWORD})
    assert status == 200, body
    status, body = cluster.etcd.api("kv/range", {"key": "L2V0Yw=="}, token=body["token"])  # /etc
    assert status != 200, body
    survivors = [n for n in cluster.nodes if n is not leader]
    before = {n.name: authentications(n) for n in survivors}
    assert all(v >= 1 for v in before.values()), before
    with w:
        t0 = time.monotonic()
        leader.kill_with_postgres()
        cluster.etcd.restart(cluster.etcd.members[0])
        t_etcd = time.monotonic() - t0

        def new_leader():
            lead = cluster.status()["leader"]
            return lead if lead and lead != leader.name else None
        new = cluster.node(wait_until(new_leader, TTL + 30, interval=0.2, what="a new leader"))
        first = wait_until(lambda: w.first_ack_after(t0, node=new), 15,
                           what=f"a write acknowledged by {new.name}")
        print(f"kill -9 of {leader.name}, etcd restarted (up again {t_etcd:.1f} s after the "
              f"kill): {new.name} took its first write {first - t0:.1f} s after the kill")
    after = {n.name: authentications(n) for n in survivors}
    print(f"authentications before {before}, after {after}")
    assert all(after[k] > before[k] for k in before), (before, after)
    w.assert_no_overlap()
    leader.start()  # the old leader node rejoins through the same etcd
    s = cluster.wait_healthy(timeout=120)
    assert s["leader"] == new.name and len(s["members"]) == 3
    for n in cluster.nodes:
        assert not cluster.procs.log_contains(n.name, PASSWORD), f"{n.name} logged the password"
    # libdbha through the same etcd: the pool lends connections to the new primary
    tls = cluster.tls
    m = cluster.etcd.members[0]
    argv = [os.path.join(build_dir(), "examples", "dbha-example"),
            "--etcd", f"https://{LOOPBACK}:{m.client_port}", "--scope", cluster.scope,
            "--etcd-cacert", tls.ca, "--etcd-cert", tls.client_cert, "--etcd-key", tls.client_key,
            "--etcd-user", USER,
            "--conninfo", f"user={SUPERUSER} password={SUPERUSER_PW} dbname=postgres "
                          "connect_timeout=2",
            "--acquire", "primary", "--count", "5", "--interval-ms", "100"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, DBHA_ETCD_PASSWORD=PASSWORD))
    events = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    acq = [e for e in events if e.get("event") == "acquire"]
    assert r.returncode == 0 and len(acq) == 5, (r.returncode, r.stderr[-2000:])
    assert all(e["ok"] and e["node"] == new.name for e in acq), acq
    assert PASSWORD not in r.stdout + r.stderr
