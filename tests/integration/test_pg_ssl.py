"""Each user's libpq settings (Patroni's postgresql.authentication.<user>.
sslmode, sslrootcert, ...) reach the connections that user makes.

Three nodes whose PostgreSQL serves TLS with a certificate for IP:127.0.0.1
from a throwaway CA; the replication user asks for `sslmode: verify-full`
against that CA. The replicas clone and stream over TLS (pg_stat_ssl on the
primary shows every walsender encrypted). A fourth node whose sslrootcert is
another CA's cannot clone: the server's certificate is refused, so the
setting is enforced, not only passed along (before, dbha wrote
`sslmode=prefer` whatever the file said, and that node would have cloned
without verifying anything).
"""
import os
import pwd
import shutil
import tempfile

import pytest

from conftest import started_cluster
from lib.cluster import Node
from lib.etcd_cluster import EtcdTls
from lib.pg import PG_OS_USER, as_root
from lib.procs import wait_until

pytestmark = pytest.mark.concurrent


def serve_tls(node, tls):
    os.makedirs(node.dir, exist_ok=True)
    cert, key = os.path.join(node.dir, "server.crt"), os.path.join(node.dir, "server.key")
    shutil.copy(tls.server_cert, cert)
    shutil.copy(tls.server_key, key)
    os.chmod(key, 0o600)  # PostgreSQL refuses a key others can read
    if as_root():
        pw = pwd.getpwnam(PG_OS_USER)
        os.chown(key, pw.pw_uid, pw.pw_gid)
    node.parameters.update(ssl="on", ssl_cert_file=cert, ssl_key_file=key)
    # libpq looks for a client certificate in ~/.postgresql: the agent runs
    # as postgres but inherits root's HOME here, which it may not enter
    node.env = {"HOME": node.dir}


@pytest.fixture(scope="module")
def cluster():
    # readable by the agents, which run as postgres
    dirs = [tempfile.mkdtemp(prefix="dbha-pg-ca-") for _ in range(2)]
    good, other = EtcdTls(dirs[0]), EtcdTls(dirs[1])
    for d in dirs:
        os.chmod(d, 0o755)
        for f in os.listdir(d):
            os.chmod(os.path.join(d, f), 0o644)

    def configure(c):
        for n in c.nodes:
            serve_tls(n, good)
            n.auth_extra["replication"] = {"sslmode": "verify-full", "sslrootcert": good.ca}
    try:
        with started_cluster("dbha-pg-ssl-", configure, n=3, ttl=10, loop_wait=1,
                             retry_timeout=2) as c:
            c.other_ca = other.ca
            c.good_tls = good
            yield c
    finally:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


def test_replicas_clone_and_stream_with_verify_full(cluster):
    s = cluster.wait_healthy(timeout=60)
    leader = cluster.node(s["leader"])
    rows = leader.sql("SELECT r.application_name, s.ssl, s.version FROM pg_stat_replication r "
                      "JOIN pg_stat_ssl s ON s.pid = r.pid")
    assert len(rows) == 2, rows
    assert all(ssl for _, ssl, _ in rows), rows
    for n in cluster.nodes:
        if n is not leader:
            conninfo = n.sql("SELECT setting FROM pg_settings WHERE name = 'primary_conninfo'")
            assert "sslmode='verify-full'" in conninfo[0][0], conninfo
            assert f"sslrootcert='{cluster.good_tls.ca}'" in conninfo[0][0], conninfo


def test_a_replica_that_cannot_verify_the_server_does_not_clone(cluster):
    s = cluster.wait_healthy(timeout=60)
    leader = cluster.node(s["leader"])
    stranger = Node(cluster, "node4")
    cluster.nodes.append(stranger)
    serve_tls(stranger, cluster.good_tls)
    stranger.auth_extra["replication"] = {"sslmode": "verify-full",
                                          "sslrootcert": cluster.other_ca}
    stranger.start()
    wait_until(lambda: cluster.procs.log_contains(stranger.name, "certificate verify failed"), 60,
               what="pg_basebackup refusing the server's certificate")
    assert stranger.postmaster_pid() is None
    names = {r[0] for r in leader.sql("SELECT application_name FROM pg_stat_replication")}
    assert stranger.name not in names, names
    stranger.stop()
    cluster.nodes.remove(stranger)
