"""Patroni's postgresql.config_dir, config_base_name and custom_conf (and
node2's database, krbsrvname and proxy_address) on a real two-node cluster.

node1's config_dir does not exist before the start (the agent creates it),
its files are named by config_base_name (`pg.conf`) and include
custom_conf instead of a base. node2 has Debian's layout: a config
directory whose postgresql.conf names another data_directory and an
include_dir, a conf.d file with a setting, and a pg_ident.conf of its own.
Each server must read its configuration from its config_dir (SHOW
config_file, hba_file, ident_file), run on the agent's data directory and
port, and take the settings of the files beside it; a switchover restarts
both (the demoted one as a replica) from the same files, and a cluster-wide
parameter change reaches the config_dir's file. Before, config_dir was
ignored with a warning: everything was written into the data directory, and
Debian's settings (conf.d, pg_ident.conf) were not read.
"""
import json
import os

import pytest

from conftest import started_cluster
from lib.pg import PG_OS_USER, as_root, hand_to_pg_user
from lib.procs import wait_until

pytestmark = pytest.mark.concurrent

DEBIAN_CONF = """\
# a cluster made by pg_createcluster
data_directory = '/var/lib/postgresql/15/elsewhere'
hba_file = '/etc/postgresql/15/elsewhere/pg_hba.conf'
ident_file = '/etc/postgresql/15/elsewhere/pg_ident.conf'
port = 5432
include_dir = 'conf.d'
"""


def put(path, text):
    with open(path, "w") as f:
        f.write(text)
    if as_root():
        import pwd
        pw = pwd.getpwnam(PG_OS_USER)
        os.chown(path, pw.pw_uid, pw.pw_gid)


@pytest.fixture(scope="module")
def cluster():
    dirs = {}

    def configure(c):
        n1, n2 = c.nodes
        dirs["node1"] = os.path.join(n1.dir, "conf")
        n1.postgresql_yaml += (f"  config_dir: {dirs['node1']}\n  config_base_name: pg\n"
                               "  custom_conf: custom.conf\n")
        debian = os.path.join(n2.dir, "etc", "15", "main")
        dirs["node2"] = debian
        for d in (n2.dir, os.path.join(n2.dir, "etc"), os.path.join(n2.dir, "etc", "15"), debian,
                  os.path.join(debian, "conf.d")):
            hand_to_pg_user(d)
        put(os.path.join(debian, "postgresql.conf"), DEBIAN_CONF)
        put(os.path.join(debian, "conf.d", "50-site.conf"), "work_mem = '7MB'\n")
        put(os.path.join(debian, "pg_ident.conf"), "debmap root postgres\n")
        n2.postgresql_yaml += (f"  config_dir: {debian}\n  database: template1\n"
                               "  krbsrvname: dbhatest\n  proxy_address: 127.0.0.1:6432\n")
        # node1's custom_conf, relative to its config_dir: made by the
        # operator before the start, beside where the agent will write
        hand_to_pg_user(n1.dir)
        hand_to_pg_user(dirs["node1"])
        put(os.path.join(dirs["node1"], "custom.conf"), "work_mem = '5MB'\n")

    with started_cluster("dbha-config-dir-", configure, n=2, ttl=10, loop_wait=1,
                         retry_timeout=2) as c:
        c.config_dirs = dirs
        yield c


def show(node, name):
    return node.sql(f"SHOW {name}")[0][0]


def check_files(cluster):
    n1, n2 = cluster.node("node1"), cluster.node("node2")
    d1, d2 = cluster.config_dirs["node1"], cluster.config_dirs["node2"]
    for n, d, conf in ((n1, d1, "pg.conf"), (n2, d2, "postgresql.conf")):
        assert show(n, "config_file") == os.path.join(d, conf), n.name
        assert show(n, "hba_file") == os.path.join(d, "pg_hba.conf"), n.name
        assert show(n, "ident_file") == os.path.join(d, "pg_ident.conf"), n.name
        assert show(n, "data_directory") == n.data_dir, n.name
        assert int(show(n, "port")) == n.pg_port, n.name
        with open(os.path.join(d, "pg_hba.conf")) as f:
            assert f.read().startswith("# Written by dbagent from postgresql.pg_hba."), n.name
        # the data directory's postgresql.conf is not the agent's
        with open(os.path.join(n.data_dir, "postgresql.conf")) as f:
            assert not f.read().startswith("# Written by dbagent"), n.name
    # custom_conf instead of a base on node1; Debian's file is node2's base
    assert show(n1, "work_mem") == "5MB"
    with open(os.path.join(d1, "pg.conf")) as f:
        assert "\ninclude 'custom.conf'\n" in f.read()
    assert not os.path.exists(os.path.join(d1, "pg.base.conf"))
    assert show(n2, "work_mem") == "7MB"
    with open(os.path.join(d2, "postgresql.base.conf")) as f:
        assert f.read() == DEBIAN_CONF
    rows = n2.sql("SELECT map_name, sys_name, pg_username FROM pg_ident_file_mappings")
    assert ("debmap", "root", "postgres") in rows, rows


def test_each_server_reads_its_config_dir(cluster):
    cluster.wait_healthy(timeout=60)
    check_files(cluster)


def test_database_krbsrvname_and_proxy_address(cluster):
    """node2's agent connects to `database` (template1), publishes it in
    conn_url and proxy_url (Patroni's postgres://ADDRESS/DATABASE), and
    runs with PGKRBSRVNAME, which its server inherits and its
    primary_conninfo names, as Patroni's does."""
    s = cluster.wait_healthy(timeout=60)
    n1, n2 = cluster.node("node1"), cluster.node("node2")
    if s["leader"] == n2.name:
        p = cluster.dbctl("switchover", "--leader", n2.name, "--candidate", n1.name, "--force")
        assert p.returncode == 0, p.stdout + p.stderr
        wait_until(lambda: cluster.wait_healthy(timeout=60)["leader"] == n1.name, 60,
                   what="node1 leading")
    m2 = json.loads(cluster.etcd_get("members/node2"))
    assert m2["conn_url"] == f"postgres://127.0.0.1:{n2.pg_port}/template1", m2
    assert m2["proxy_url"] == "postgres://127.0.0.1:6432/template1", m2
    m1 = json.loads(cluster.etcd_get("members/node1"))
    assert m1["conn_url"].endswith("/postgres") and "proxy_url" not in m1, m1
    assert n2.sql("SELECT datname FROM pg_stat_activity WHERE application_name = 'dbha'") == \
        [("template1",)]
    assert n1.sql("SELECT datname FROM pg_stat_activity WHERE application_name = 'dbha'") == \
        [("postgres",)]
    assert "krbsrvname='dbhatest'" in show(n2, "primary_conninfo")
    with open(f"/proc/{n2.postmaster_pid()}/environ", "rb") as f:
        assert b"PGKRBSRVNAME=dbhatest\0" in f.read()


def test_switchover_and_parameter_change_keep_the_config_dir(cluster):
    s = cluster.wait_healthy(timeout=60)
    old = cluster.node(s["leader"])
    new = next(n for n in cluster.nodes if n is not old)
    pms = {n.name: n.postmaster_pid() for n in cluster.nodes}
    p = cluster.dbctl("switchover", "--leader", old.name, "--candidate", new.name, "--force")
    assert p.returncode == 0, p.stdout + p.stderr
    wait_until(lambda: cluster.wait_healthy(timeout=60)["leader"] == new.name, 60,
               what=f"{new.name} leading")
    # the demoted one was restarted as a replica from its config_dir
    assert old.postmaster_pid() != pms[old.name]
    check_files(cluster)

    p = cluster.dbctl("edit-config", "--force", "-s", "postgresql.parameters.max_wal_senders=12")
    assert p.returncode == 0, p.stdout + p.stderr
    # a restart-only setting: written and flagged as pending on every node
    for n in cluster.nodes:
        d = cluster.config_dirs[n.name]
        conf = os.path.join(d, "pg.conf" if n.name == "node1" else "postgresql.conf")

        def written(path=conf):
            with open(path) as f:
                return "\nmax_wal_senders = '12'\n" in f.read()

        wait_until(written, 20, what=f"max_wal_senders in {conf}")
        wait_until(lambda n=n: n.sql("SELECT pending_restart FROM pg_settings "
                                     "WHERE name = 'max_wal_senders'")[0][0], 20,
                   what=f"max_wal_senders pending on {n.name}")
    config = json.loads(cluster.etcd_get("config"))
    assert config["postgresql"]["parameters"]["max_wal_senders"] in (12, "12"), config
