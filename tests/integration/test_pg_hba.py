"""The cluster's pg_hba and pg_ident (Patroni's bootstrap.dcs.postgresql.
pg_hba/pg_ident, kept in the `config` key), on a real three-node cluster
whose nodes give no postgresql.pg_hba of their own.

Bootstrapped with a pg_hba that lets the role `app` in without a password:
every node writes it (a replica's clone too) and `app` connects to each. A
PATCH /config that puts `reject` for `app` first reaches every node's
pg_hba.conf and is in force within seconds (PostgreSQL reloaded), with no
restart. pg_ident lines reach pg_ident.conf and PostgreSQL reads them
(pg_ident_file_mappings). Before, both keys were ignored with a warning:
pg_hba.conf stayed initdb's, and `app` could not log in at all.
"""
import json
import os
import urllib.error
import urllib.request

import psycopg2
import pytest

from conftest import started_cluster
from lib.cluster import REPL
from lib.procs import LOOPBACK, wait_until

pytestmark = pytest.mark.concurrent

BASE_HBA = ["local all all trust", f"host replication {REPL} 127.0.0.1/32 scram-sha-256",
            "host all all 127.0.0.1/32 scram-sha-256"]
APP_TRUST = "host all app 127.0.0.1/32 trust"
APP_REJECT = "host all app 127.0.0.1/32 reject"
IDENT = "dbhamap root postgres"


@pytest.fixture(scope="module")
def cluster():
    def configure(c):
        c.dcs_postgresql = {"pg_hba": [APP_TRUST] + BASE_HBA, "pg_ident": [IDENT]}
        for n in c.nodes:
            n.local_pg_hba = False
        # postgresql.use_unix_socket: node1 false (TCP), node2 true, node3 absent
        c.nodes[0].postgresql_yaml += "  use_unix_socket: false\n"
        c.nodes[1].postgresql_yaml += "  use_unix_socket: true\n"
    with started_cluster("dbha-pg-hba-", configure, n=3, ttl=10, loop_wait=1,
                         retry_timeout=2) as c:
        yield c


def app_can_connect(node):
    try:
        psycopg2.connect(host=LOOPBACK, port=node.pg_port, user="app", dbname="postgres",
                         connect_timeout=3).close()
        return True
    except psycopg2.OperationalError:
        return False


def read(node, name):
    with open(os.path.join(node.data_dir, name)) as f:
        return f.read()


def test_cluster_pg_hba_and_pg_ident_reach_every_node(cluster):
    s = cluster.wait_healthy(timeout=60)
    leader = cluster.node(s["leader"])
    config = json.loads(cluster.etcd_get("config"))
    assert config["postgresql"]["pg_hba"] == [APP_TRUST] + BASE_HBA, config
    assert config["postgresql"]["pg_ident"] == [IDENT], config
    leader.sql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app') "
               "THEN CREATE ROLE app LOGIN; END IF; END $$")
    for n in cluster.nodes:
        assert "the cluster's postgresql.pg_hba" in read(n, "pg_hba.conf"), n.name
        assert IDENT in read(n, "pg_ident.conf"), n.name
        rows = n.sql("SELECT map_name, sys_name, pg_username FROM pg_ident_file_mappings")
        assert ("dbhamap", "root", "postgres") in rows, (n.name, rows)
        # the role reaches the replicas by replication
        wait_until(lambda: app_can_connect(n), 20, what=f"app logging in on {n.name}")


def test_patched_pg_hba_is_in_force_without_a_restart(cluster):
    s = cluster.wait_healthy(timeout=60)
    leader = cluster.node(s["leader"])
    postmasters = {n.name: n.postmaster_pid() for n in cluster.nodes}
    body = json.dumps({"postgresql": {"pg_hba": [APP_REJECT] + BASE_HBA}}).encode()
    req = urllib.request.Request(f"http://{LOOPBACK}:{leader.api_port}/config", data=body,
                                 method="PATCH", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    for n in cluster.nodes:
        wait_until(lambda: not app_can_connect(n), 20, what=f"app rejected on {n.name}")
        assert APP_REJECT in read(n, "pg_hba.conf")
    assert {n.name: n.postmaster_pid() for n in cluster.nodes} == postmasters


def test_a_node_pg_hba_wins_over_the_cluster_one(cluster):
    s = cluster.wait_healthy(timeout=60)
    replica = next(n for n in cluster.nodes if n.name != s["leader"])
    replica.local_pg_hba = True
    replica.postgresql_yaml = ""
    replica.write_config()
    replica.proc.send_signal(1)  # SIGHUP: reload
    wait_until(lambda: "from postgresql.pg_hba." in read(replica, "pg_hba.conf"), 30,
               what="the node's own pg_hba written")
    assert APP_REJECT not in read(replica, "pg_hba.conf")


def test_use_unix_socket_chooses_how_the_agent_reaches_its_server(cluster):
    """Patroni's postgresql.use_unix_socket: false, TCP to the listen address
    (pg_hba's host lines apply to the agent, as under Patroni), true, the
    Unix socket; absent, the socket of unix_socket_directories (which every
    node here sets), as dbha did before it read the key."""
    def agent_addrs(node):
        rows = node.sql("SELECT host(client_addr) FROM pg_stat_activity "
                        "WHERE application_name = 'dbha'")
        return sorted({r[0] for r in rows}, key=str)

    want = {cluster.nodes[0].name: ["127.0.0.1"], cluster.nodes[1].name: [None],
            cluster.nodes[2].name: [None]}
    got = {}
    for n in cluster.nodes:
        got[n.name] = wait_until(lambda: agent_addrs(n) or None, 10, interval=0.2,
                                 what=f"the agent's connection on {n.name}")
    assert got == want
