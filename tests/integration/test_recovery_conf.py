"""Patroni's recovery_conf (`bootstrap.dcs.postgresql.recovery_conf`, kept in
the `config` key, and the node's own `postgresql.recovery_conf`) on a real
two-node cluster that archives its WAL.

A replica's postgresql.conf gets the restore_command, the primary's does
not. Then the replica is stopped while the leader writes and switches
through more WAL than it keeps, and checkpoints it away (the archive has
it): started again, the replica fetches what the leader no longer has from
the archive (PostgreSQL logs `restored log file`) and streams again with
every row. Before, recovery_conf was ignored with a warning, and such a
replica could not catch up at all ("requested WAL segment ... has already
been removed") until it was cloned anew.
"""
import json
import os

import pytest

from conftest import started_cluster
from lib.pg import hand_to_pg_user
from lib.procs import wait_until

pytestmark = pytest.mark.concurrent


@pytest.fixture(scope="module")
def cluster():
    state = {}

    def configure(c):
        archive = os.path.join(c.workdir, "archive")
        hand_to_pg_user(archive)
        state["archive"] = archive
        c.dcs_postgresql = {"recovery_conf": {"restore_command": f"cp {archive}/%f %p"}}
        for n in c.nodes:
            n.parameters.update({"archive_mode": "on",
                                 "archive_command": f"test ! -f {archive}/%f && cp %p {archive}/%f",
                                 "wal_keep_size": "32MB"})

    with started_cluster("dbha-recovery-conf-", configure, n=2, ttl=10, loop_wait=1,
                         retry_timeout=2) as c:
        c.archive = state["archive"]
        yield c


def show(node, name):
    return node.sql(f"SHOW {name}")[0][0]


def test_restore_command_reaches_replicas_only(cluster):
    s = cluster.wait_healthy(timeout=60)
    leader = cluster.node(s["leader"])
    replica = next(n for n in cluster.nodes if n is not leader)
    config = json.loads(cluster.etcd_get("config"))
    want = f"cp {cluster.archive}/%f %p"
    assert config["postgresql"]["recovery_conf"] == {"restore_command": want}, config
    assert show(replica, "restore_command") == want
    assert show(leader, "restore_command") == ""


def test_replica_catches_up_from_the_archive(cluster):
    s = cluster.wait_healthy(timeout=60)
    leader = cluster.node(s["leader"])
    replica = next(n for n in cluster.nodes if n is not leader)
    first_needed = leader.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0]
    assert replica.stop() == 0
    # the leader drops the slot of a member that left, so only wal_keep_size
    # (32 MB, two segments) holds WAL back
    wait_until(lambda: not leader.sql("SELECT slot_name FROM pg_replication_slots "
                                      "WHERE slot_name = %s", (replica.name,)), 20,
               what=f"slot of {replica.name} dropped")
    leader.sql("CREATE TABLE IF NOT EXISTS archived (i int)")
    for i in range(8):
        leader.sql("INSERT INTO archived VALUES (%s)", (i,))
        leader.sql("SELECT pg_switch_wal()")
    last = leader.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0]

    def archived_and_removed():
        leader.sql("CHECKPOINT")
        return (os.path.exists(os.path.join(cluster.archive, first_needed))
                and not os.path.exists(os.path.join(leader.data_dir, "pg_wal", first_needed)))

    wait_until(archived_and_removed, 30, what=f"{first_needed} archived and removed by the leader")
    assert last != first_needed

    log_path = replica.data_dir + ".log"
    start_of_run = os.path.getsize(log_path)
    replica.start()
    cluster.wait_healthy(timeout=90)
    wait_until(lambda: replica.sql("SELECT count(*) FROM archived")[0][0] == 8, 30,
               what="every row on the replica")
    with open(log_path, errors="replace") as f:
        f.seek(start_of_run)
        log = f.read()
    # this run of the replica read the segment the leader had removed
    assert f'restored log file "{first_needed}" from archive' in log, log[-3000:]
    assert show(replica, "restore_command") == f"cp {cluster.archive}/%f %p"
