"""Debian's Patroni template (tests/patroni-configs/debian-config-template.yml,
the package's /etc/patroni/config.yml.in as pg_createconfig_patroni renders
it) run as a three-node dbha cluster with Debian's own scripts:
`bootstrap.method: pg_createcluster` (/usr/share/patroni/
pg_createcluster_patroni), `create_replica_method: [pg_clonecluster]`
(/usr/share/patroni/pg_clonecluster_patroni), `config_dir:
/etc/postgresql/15/main`, the cluster's pg_hba in bootstrap.dcs, a
superuser without a password reached through the Unix socket
(`use_unix_socket`), and Debian's logging (logging_collector into
/var/log/postgresql).

Debian's layout is one node a host: the paths are fixed (/etc/postgresql/
15/main, /var/lib/postgresql/15/main, /run/postgresql). So each node runs in
a mount namespace of its own, with empty tmpfs over /etc/postgresql,
/var/lib/postgresql, /run/postgresql and /var/log/postgresql: three hosts'
file systems, one network. Changed in the file only where this machine needs
it: each node's name (the template's @HOSTNAME@), its REST and PostgreSQL
ports and addresses (@HOSTIP@, @API_PORT@, @PORT@: one machine, loopback),
and the etcd endpoint.

Checked: the first node was made by pg_createcluster (its start.conf says
`manual`, as the script asks) and the others by pg_clonecluster (their own
Debian cluster directory, the primary's system identifier); each server reads
the agent's postgresql.conf from config_dir, which includes the one
pg_createcluster wrote (postgresql.base.conf) and names the Debian data
directory; the pg_hba from bootstrap.dcs is the hba_file in config_dir on
every member; the agents reach PostgreSQL through the socket with peer
authentication; the replicator replicates with md5 from 127.0.0.1; Debian's
log file fills; a row written on the primary is read on both replicas; and
after kill -9 of the primary node a replica takes over.
"""
import os

import pytest

from conftest import sanitizer_lines
from lib.etcd_cluster import EtcdCluster
from lib.nsnode import (NamespaceNode, namespace_workdir, start_first_then_rest,
                        stop_and_check)
from lib.pg import as_root
from lib.procs import LOOPBACK, Procs, free_port, wait_until

DEBIAN_DIRS = ("/etc/postgresql", "/var/lib/postgresql", "/run/postgresql",
               "/var/log/postgresql")
SCRIPTS = ("/usr/share/patroni/pg_createcluster_patroni",
           "/usr/share/patroni/pg_clonecluster_patroni")

pytestmark = [pytest.mark.concurrent, pytest.mark.skipif(
    not as_root() or not all(os.path.exists(s) for s in SCRIPTS),
    reason="needs root (mount namespaces) and Debian's patroni package scripts")]


class DebianNode(NamespaceNode):
    def __init__(self, i, wd, endpoint):
        name = f"pg{i}"
        self.api_port, self.pg_port = free_port(), free_port()
        super().__init__(name, wd, "debian-config-template.yml", (
            ("\nname: pg1\n", f"\nname: {name}\n"),
            ("\netcd3: {hosts: 127.0.0.1:2379}\n", f"\netcd3: {{hosts: {endpoint}}}\n"),
            ("  listen: 10.0.0.11:8008\n  connect_address: 10.0.0.11:8008",
             f"  listen: {LOOPBACK}:{self.api_port}\n"
             f"  connect_address: {LOOPBACK}:{self.api_port}"),
            ('  listen: "*:5432"\n  connect_address: 10.0.0.11:5432',
             f'  listen: "{LOOPBACK}:{self.pg_port}"\n'
             f"  connect_address: {LOOPBACK}:{self.pg_port}")),
            DEBIAN_DIRS, "/run/postgresql")


@pytest.fixture(scope="module")
def debian():
    wd = namespace_workdir("dbha-debian-")
    procs = Procs(wd)
    etcd = EtcdCluster(procs, wd, size=1)
    nodes = []
    try:
        etcd.start()
        nodes = [DebianNode(i + 1, wd, etcd.endpoints[0]) for i in range(3)]
        start_first_then_rest(
            procs, nodes, lambda n: n.psql("SELECT pg_catalog.pg_is_in_recovery()") == "f", 120,
            "pg1 bootstrapped by pg_createcluster")
        yield procs, etcd, nodes
    finally:
        stop_and_check(procs, nodes, wd, sanitizer_lines)


def test_debian_template_runs_as_a_cluster(debian):
    procs, etcd, (pg1, pg2, pg3) = debian
    for n in (pg2, pg3):
        wait_until(lambda: n.streaming(), 180, interval=1, what=f"{n.name} streaming")

    # pg_createcluster made pg1 (with --start-conf=manual), pg_clonecluster the others
    assert pg1.read("/etc/postgresql/15/main/start.conf").splitlines()[-1] == "manual"
    assert procs.log_contains("pg1", "pg_createcluster")
    ident = pg1.psql("SELECT system_identifier FROM pg_catalog.pg_control_system()")
    for n in (pg2, pg3):
        assert procs.log_contains(n.name, "pg_clonecluster")
        assert n.read("/etc/postgresql/15/main/start.conf") is not None
        assert n.psql("SELECT system_identifier FROM pg_catalog.pg_control_system()") == ident

    hba = [line.split() for line in
           ("local all all peer", "host all all 127.0.0.1/32 md5", "host all all ::1/128 md5",
            "local replication all peer", "host replication all 127.0.0.1/32 md5",
            "host replication all ::1/128 md5", "host replication all 10.0.0.0/24 md5")]
    for n in (pg1, pg2, pg3):
        # config_dir: the agent's file, over the one pg_createcluster wrote
        assert n.psql("SHOW config_file") == "/etc/postgresql/15/main/postgresql.conf"
        assert n.psql("SHOW data_directory") == "/var/lib/postgresql/15/main"
        conf = n.read("/etc/postgresql/15/main/postgresql.conf")
        assert "postgresql.base.conf" in conf, conf[:400]
        assert n.read("/etc/postgresql/15/main/postgresql.base.conf") is not None
        # the cluster's pg_hba, as written in bootstrap.dcs
        assert n.psql("SHOW hba_file") == "/etc/postgresql/15/main/pg_hba.conf"
        lines = [line.split() for line in n.read("/etc/postgresql/15/main/pg_hba.conf")
                 .splitlines() if line.strip() and not line.startswith("#")]
        assert lines == hba, (n.name, lines)
        # Debian's logging
        assert n.psql("SHOW logging_collector") == "on"
        assert n.read("/var/log/postgresql/postgresql-15-main.log") is not None
    # the replicator streams (md5 from 127.0.0.1)
    for n in (pg2, pg3):
        assert n.psql("SELECT sender_host FROM pg_catalog.pg_stat_wal_receiver") == LOOPBACK

    pg1.psql("CREATE TABLE deb (v int); INSERT INTO deb VALUES (42)")
    for n in (pg2, pg3):
        wait_until(lambda: n.psql("SELECT v FROM deb") == "42", 30, what=f"the row on {n.name}")

    # kill -9 of the primary node (its agent, then its postmaster): a
    # replica takes over within ttl 30 + loop_wait 10
    pg1.kill_node("/var/lib/postgresql/15/main")

    def promoted():
        return next((n for n in (pg2, pg3)
                     if n.psql("SELECT pg_catalog.pg_is_in_recovery()") == "f"), None)

    new = wait_until(promoted, 90, interval=1, what="a replica promoted")
    assert new.psql("SELECT v FROM deb") == "42"
    other = pg3 if new is pg2 else pg2
    wait_until(lambda: other.streaming(), 90, interval=1,
               what=f"{other.name} streaming from {new.name}")
