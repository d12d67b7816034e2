"""vitabaks/postgresql_cluster's Patroni template, rendered as a standby
cluster with permanent slots (tests/patroni-configs/
postgresql_cluster-walg-standby.yml), run as a three-node dbha standby
cluster following a real primary cluster ("main", one dbha node).

What the file asks for, and what is checked:
- `bootstrap.dcs.standby_cluster` (host, port, primary_slot_name standby_dc2,
  restore_command, recovery_min_apply_delay 5min): the first member clones
  main and is the standby leader, streaming from main through main's slot
  standby_dc2; it applies WAL five minutes late (a row written on main is
  received at once and not replayed), the other members cascade from it;
  no member takes writes; the standby leader never promotes.
- `bootstrap.dcs.slots`: the physical permanent slot standby_dc2 exists on
  the standby leader, next to the members' slots; the logical one
  (pgoutput) is not created in a standby cluster (as Patroni 3.0.2).
- `create_replica_methods: [pgbackrest, wal_g, basebackup]`: pgbackrest and
  wal-g are not installed here, so each replica's clone tries them in order
  and is made by basebackup.
- `config_dir` (postgresql.conf, pg_hba.conf, pg_ident.conf with the file's
  `pg_ident` line), `use_unix_socket` with `unix_socket_directories:
  /var/run/postgresql`, `ssl: on` with the file's certificate paths,
  `logging_collector` into /var/log/postgresql, `log.dir: /var/log/patroni`
  (the agent's log file), `callbacks.on_role_change` (a standby_leader role
  reported), restapi authentication (a PATCH without it is refused).
- After kill -9 of the standby leader's node (agent and postmaster) another
  member becomes standby leader, following main, without a promotion.

The file is used as published, changed only where one test machine needs it:
each node's name, REST and PostgreSQL listen/connect addresses (loopback,
free ports), the etcd endpoint, and standby_cluster's host and port (main's
primary). The file names PostgreSQL 17's paths and this machine has 15:
each node runs in a mount namespace of its own where /usr/lib/postgresql/17
is PostgreSQL 15 (the parameters it sets all exist in 15), with empty tmpfs
over /var/lib/postgresql, /etc/postgresql, /run/postgresql,
/var/log/postgresql, /var/log/patroni and /etc/patroni: three hosts' file
systems, one network. The certificate and the callback scripts the file
names are made in each namespace before the agent starts (the template's
Ansible roles install them). main has the file's replication user and
password, and the slot standby_dc2 as a permanent slot of its own.
"""
import os
import subprocess
import time

import pytest

from conftest import sanitizer_lines
from lib.cluster import DbhaCluster
from lib.etcd_cluster import EtcdCluster
from lib.nsnode import (NamespaceNode, namespace_workdir, start_first_then_rest,
                        stop_and_check)
from lib.pg import PG_OS_USER, as_root, hand_to_pg_user
from lib.procs import LOOPBACK, Procs, free_port, wait_until

FILE = "postgresql_cluster-walg-standby.yml"
TMPFS = ("/var/lib/postgresql", "/etc/postgresql", "/run/postgresql", "/var/log/postgresql",
         "/var/log/patroni", "/etc/patroni", "/usr/local/bin")
# WAL-G cannot be installed here: a stand-in at the file's path serves main's
# WAL archive (a directory main's archive_command copies to) and has no base
# backup. Every call is logged.
WALG = """#!/bin/sh
echo "$*" >> /var/log/patroni/wal-g.log
while [ "$1" = --config ]; do shift 2; done
case "$1" in
wal-fetch) [ -f "{arch}/$2" ] && exec cp "{arch}/$2" "$3"; exit 1 ;;
*) echo "wal-g stand-in: no base backup in the archive" >&2; exit 1 ;;
esac
"""
SOCKET = "/var/run/postgresql"
SLOT = "standby_dc2"
REPL_PW = "S3cr3tReplicatorPwd"
REST_AUTH = ("patroni", "S3cr3tRestApiPwd")

pytestmark = [pytest.mark.concurrent, pytest.mark.skipif(
    not as_root(), reason="needs root (mount namespaces)")]


class WalgNode(NamespaceNode):
    def __init__(self, i, wd, endpoint, primary, walg):
        name = f"pgnode0{i}"
        self.wd = wd
        self.walg = walg
        self.api_port, self.pg_port = free_port(), free_port()
        super().__init__(name, wd, FILE, (
            ("\nname: pgnode01\n", f"\nname: {name}\n"),
            ("\netcd3: {hosts: 127.0.0.1:2379}\n", f"\netcd3: {{hosts: {endpoint}}}\n"),
            ("  listen: 0.0.0.0:8008\n  connect_address: 10.128.64.140:8008",
             f"  listen: {LOOPBACK}:{self.api_port}\n"
             f"  connect_address: {LOOPBACK}:{self.api_port}"),
            ("  listen: 0.0.0.0:5432\n  connect_address: 10.128.64.140:5432",
             f"  listen: {LOOPBACK}:{self.pg_port}\n"
             f"  connect_address: {LOOPBACK}:{self.pg_port}"),
            ("      host: 10.128.64.10\n      port: 5432\n",
             f"      host: {LOOPBACK}\n      port: {primary.pg_port}\n")),
            TMPFS, SOCKET)

    def start(self, procs):
        uid, gid = int(subprocess.check_output(["id", "-u", PG_OS_USER])), \
            int(subprocess.check_output(["id", "-g", PG_OS_USER]))
        pg15 = os.path.join(self.wd, f"{self.name}-pg15")
        os.makedirs(pg15, exist_ok=True)
        cb = "#!/bin/sh\necho \"$0 $*\" >> /var/log/patroni/callbacks.log\n"
        super().start(procs, setup=(
            # PostgreSQL 15 where the file expects 17
            f"mount --bind /usr/lib/postgresql/15 {pg15}",
            "mount -t tmpfs -o mode=0755 dbha-pglib /usr/lib/postgresql",
            "mkdir /usr/lib/postgresql/15 /usr/lib/postgresql/17",
            f"mount --bind {pg15} /usr/lib/postgresql/15",
            f"mount --bind {pg15} /usr/lib/postgresql/17",
            # what the template's roles install beside the file
            f"cp {self.walg} /usr/local/bin/wal-g && chmod 755 /usr/local/bin/wal-g",
            "mkdir -p /var/lib/postgresql/tls /etc/patroni/callbacks",
            "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost "
            "-keyout /var/lib/postgresql/tls/server.key "
            "-out /var/lib/postgresql/tls/server.crt 2>/dev/null",
            "chmod 600 /var/lib/postgresql/tls/server.key",
            f"chown -R {uid}:{gid} /var/lib/postgresql/tls",
            f"printf '%s' '{cb}' > /etc/patroni/callbacks/on_role_change.sh",
            f"printf '%s' '{cb}' > /etc/patroni/callbacks/on_stop.sh",
            "chmod 755 /etc/patroni/callbacks/on_role_change.sh "
            "/etc/patroni/callbacks/on_stop.sh"))

    def rest(self, method, path, body=None, auth=None):
        argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method,
                f"http://{LOOPBACK}:{self.api_port}{path}"]
        if body is not None:
            argv += ["-H", "Content-Type: application/json", "-d", body]
        if auth:
            argv += ["-u", ":".join(auth)]
        return int(subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout)


@pytest.fixture(scope="module")
def clusters():
    wd = namespace_workdir("dbha-walg-")
    procs = Procs(wd)
    os.makedirs(os.path.join(wd, "main"))
    os.chmod(os.path.join(wd, "main"), 0o755)
    main = DbhaCluster(procs, os.path.join(wd, "main"), n=1, scope="main",
                       slots={SLOT: {"type": "physical"}})
    main.nodes[0].repl_password = REPL_PW
    arch = os.path.join(wd, "arch")
    hand_to_pg_user(arch)
    main.nodes[0].parameters.update(archive_mode="on",
                                    archive_command=f"test ! -f {arch}/%f && cp %p {arch}/%f")
    walg = os.path.join(wd, "wal-g")
    with open(walg, "w") as f:
        f.write(WALG.format(arch=arch))
    os.chmod(walg, 0o755)
    etcd = EtcdCluster(procs, wd, size=1, name="etcd-dr")
    nodes = []
    try:
        main.start()
        main.wait_healthy(timeout=120, replicas=0)
        etcd.start()
        nodes = [WalgNode(i + 1, wd, etcd.endpoints[0], main.nodes[0], walg)
                 for i in range(3)]
        start_first_then_rest(
            procs, nodes, lambda n: n.psql("SELECT pg_catalog.pg_is_in_recovery()") == "t", 180,
            "pgnode01 cloned from main")
        yield procs, main, nodes
    finally:
        stop_and_check(procs, nodes, wd, sanitizer_lines, clusters=(main,))


def sender_port(node):
    got = node.psql("SELECT sender_port FROM pg_catalog.pg_stat_wal_receiver")
    return int(got) if got else None


def test_walg_standby_template_runs_as_a_standby_cluster(clusters):
    procs, main, (n1, n2, n3) = clusters
    primary = main.nodes[0]
    for n in (n1, n2, n3):
        wait_until(lambda: n.streaming(), 240, interval=1, what=f"{n.name} streaming")
    # the standby leader streams from main through main's slot; the others from it
    assert sender_port(n1) == primary.pg_port
    assert primary.sql("SELECT active FROM pg_catalog.pg_replication_slots "
                       f"WHERE slot_name = '{SLOT}'") == [(True,)]
    assert n1.psql("SELECT slot_name FROM pg_catalog.pg_stat_wal_receiver") == SLOT
    for n in (n2, n3):
        assert sender_port(n) == n1.pg_port, n.name
        # pgbackrest is not installed; the wal-g stand-in has no base backup
        assert "backup-fetch /var/lib/postgresql/17/main LATEST" in \
            (n.read("/var/log/patroni/wal-g.log") or ""), n.name
        log = n.read("/var/log/patroni/patroni.log") or ""
        assert log.count("trying the next of create_replica_methods") >= 2, (n.name, log[-3000:])
    # restore_command (standby_cluster's on the standby leader) asks the archive
    assert "wal-fetch" in (n1.read("/var/log/patroni/wal-g.log") or "")
    for n in (n1, n2, n3):
        assert n.psql("SELECT pg_catalog.pg_is_in_recovery()") == "t", n.name
        assert n.psql("CREATE TABLE nope (v int)") is None, f"{n.name} took a write"

    # recovery_min_apply_delay on the standby leader: received now, replayed in 5 min;
    # the members that cascade from it have no delay
    assert n1.psql("SHOW recovery_min_apply_delay") == "5min"
    assert n2.psql("SHOW recovery_min_apply_delay") == "0"
    primary.sql("CREATE TABLE walg (v int); INSERT INTO walg VALUES (7)")
    lsn = primary.sql("SELECT pg_catalog.pg_current_wal_lsn()::text")[0][0]
    wait_until(lambda: n1.psql(f"SELECT pg_catalog.pg_last_wal_receive_lsn() >= '{lsn}'")
               == "t", 30, what="the standby leader received main's row")
    for n in (n2, n3):
        wait_until(lambda: n.psql("SELECT v FROM walg") == "7", 30,
                   what=f"main's row on {n.name}")
    time.sleep(3)
    assert n1.psql("SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'walg'") == "0", \
        "the standby leader replayed main's row before its apply delay"
    assert n1.psql(f"SELECT pg_catalog.pg_last_wal_replay_lsn() < '{lsn}'") == "t"

    # permanent slots: the physical one on the standby leader beside the members'
    # slots; no logical slot in a standby cluster
    slots = n1.psql("SELECT string_agg(slot_name || ':' || slot_type, ',' ORDER BY slot_name) "
                    "FROM pg_catalog.pg_replication_slots")
    assert slots == f"pgnode02:physical,pgnode03:physical,{SLOT}:physical", slots

    for n in (n1, n2, n3):
        assert n.psql("SHOW config_file") == "/etc/postgresql/17/main/postgresql.conf"
        assert n.psql("SHOW data_directory") == "/var/lib/postgresql/17/main"
        assert n.psql("SHOW hba_file") == "/etc/postgresql/17/main/pg_hba.conf"
        ident = [line.split() for line in n.read("/etc/postgresql/17/main/pg_ident.conf")
                 .splitlines() if line.strip() and not line.startswith("#")]
        assert ident == [["main", "postgres", "backup"]], (n.name, ident)
        assert n.psql("SHOW ssl") == "on"
        assert n.psql("SHOW ssl_cert_file") == "/var/lib/postgresql/tls/server.crt"
        assert n.psql("SHOW shared_preload_libraries") == "pg_stat_statements,auto_explain"
        assert n.read("/var/log/patroni/patroni.log"), f"{n.name}: no agent log file"
        assert n.run(["sh", "-c", "ls /var/log/postgresql/postgresql-*.log"]).returncode == 0
    cbs = n1.read("/var/log/patroni/callbacks.log") or ""
    assert "on_role_change.sh on_role_change standby_leader postgres-cluster" in cbs, cbs

    # restapi.authentication guards the mutating endpoints
    body = '{"postgresql": {"parameters": {"work_mem": "64MB"}}}'
    assert n1.rest("PATCH", "/config", body) == 401
    assert n1.rest("PATCH", "/config", body, auth=REST_AUTH) == 200

    # the standby leader's node dies: another member becomes standby leader, by
    # following main, not by a promotion
    n1.kill_node("/var/lib/postgresql/17/main")

    def new_standby_leader():
        return next((n for n in (n2, n3) if sender_port(n) == primary.pg_port), None)

    new = wait_until(new_standby_leader, 120, interval=1, what="a new standby leader")
    other = n3 if new is n2 else n2
    assert new.psql("SELECT pg_catalog.pg_is_in_recovery()") == "t"
    wait_until(lambda: sender_port(other) == new.pg_port, 120, interval=1,
               what=f"{other.name} cascading from {new.name}")
    assert other.psql("SELECT pg_catalog.pg_is_in_recovery()") == "t"
    assert new.psql("SHOW recovery_min_apply_delay") == "5min"
