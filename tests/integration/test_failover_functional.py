"""The functional half of test_failover.py (the agent, part 2), against real
etcd and real PostgreSQL 15 nodes (ttl 5, loop_wait 1), each test on a
cluster of its own (free ports, its temp dir): a stale postmaster.pid naming
another instance's postmaster is set aside and that process left alone;
members whose required watchdog has no device never lead, even with the
leader dead; bootstrap.dcs.pause seeds a paused cluster whose second node
does not clone until it resumes. Nothing here is timed (the waits are
bounded polls with generous limits; the fixed waits check that something
does not happen), so these run in the concurrent pass. test_failover.py
keeps the helpers and every test that times a failover, a demotion, a
fence or a lease, or checks a writer's overlaps."""
import json
import os
import time

import pytest

from lib.cluster import DbhaCluster
from lib.procs import pid_running, wait_until
from test_failover import TTL, kill_postgres

pytestmark = pytest.mark.concurrent


@pytest.fixture
def cluster(procs, workdir):
    c = DbhaCluster(procs, workdir, n=3, ttl=TTL, loop_wait=1, retry_timeout=1)
    yield c
    c.stop_all()


def test_stale_pidfile_naming_another_instances_postgres_is_left_alone(cluster):
    """A replica's postmaster.pid left behind names a PID that is now a
    backend of another instance (here the third node's postmaster): the
    agent must not take it for its postmaster (PID and start time against
    the file, as Patroni) nor signal it, and must still start its own
    PostgreSQL (which refuses to start beside a lock file whose PID lives:
    the file is set aside)."""
    cluster.start()
    s = cluster.wait_healthy(timeout=120)
    leader = cluster.node(s["leader"])
    replica, third = [n for n in cluster.nodes if n is not leader]
    replica.stop()  # SIGTERM: its agent stops its PostgreSQL
    wait_until(lambda: replica.postmaster_pid() is None, 30, what="the replica stopped")
    victim = third.postmaster_pid()
    assert victim
    pidfile = os.path.join(replica.data_dir, "postmaster.pid")
    with open(pidfile, "w") as f:  # PostgreSQL 15's layout; started an hour ago
        f.write(f"{victim}\n{replica.data_dir}\n{int(time.time()) - 3600}\n{replica.pg_port}\n"
                f"{replica.dir}\n127.0.0.1\n  5432001      3\nready   \n")
    st = os.stat(replica.data_dir)
    os.chown(pidfile, st.st_uid, st.st_gid)
    replica.start()
    wait_until(lambda: cluster.procs.log_contains(replica.name, "renamed to postmaster.pid.stale"),
               30, what="the stale postmaster.pid set aside")
    cluster.wait_healthy(timeout=120)
    assert third.postmaster_pid() == victim and pid_running(victim), "the other instance's " \
        "postmaster was left alone"
    assert replica.sql("SELECT pg_is_in_recovery()") == [(True,)]
    assert cluster.procs.log_contains(replica.name, f"names process {victim}")
    assert os.path.exists(pidfile + ".stale")


def test_watchdog_required_without_device_never_leads(cluster):
    for n in cluster.nodes[1:]:
        n.watchdog = {"mode": "required", "device": "/nonexistent/watchdog"}
    cluster.start(nodes=[cluster.nodes[0]])
    cluster.wait_healthy(timeout=120, replicas=0)
    cluster.start(nodes=cluster.nodes[1:])
    cluster.wait_healthy(timeout=120)
    for n in cluster.nodes[1:]:
        assert cluster.procs.log_contains(n.name, "this member will not become leader")
    leader = cluster.nodes[0]
    leader.kill()
    kill_postgres(leader)
    time.sleep(TTL + 5)
    assert cluster.status()["leader"] is None


def test_bootstrap_dcs_pause_seeds_a_paused_cluster(procs, workdir):
    """bootstrap.dcs.pause, as Patroni 3.0.2: the first node still bootstraps
    (the config key is written after initdb, so nothing is paused then) and
    leads; the config key it writes is paused, so the second node does not
    clone ("running with empty data directory") until the cluster resumes."""
    c = DbhaCluster(procs, workdir, n=2, pause=True)
    first, second = c.nodes
    try:
        c.start(nodes=[first])
        # the leader key comes before the config key (both in the same
        # tick): wait for the cluster to show both
        wait_until(lambda: (lambda st: st["leader"] == first.name and st["paused"]
                            or None)(c.status()), 90, interval=0.5,
                   what="the first node leads a paused cluster")
        assert json.loads(c.etcd_get("config"))["pause"] is True
        assert first.sql("SELECT pg_is_in_recovery()") == [(False,)]
        c.start(nodes=[second])
        wait_until(lambda: second.api("/patroni")[0] in (200, 503), 30, interval=0.5,
                   what="the second agent answers")
        time.sleep(5 * c.loop_wait + 1)  # five loops: a clone would have started
        assert not os.path.exists(os.path.join(second.data_dir, "PG_VERSION"))
        assert second.postmaster_pid() is None
        code, body = second.api("/patroni")
        assert json.loads(body).get("pause") is True, body
        r = c.dbctl("resume", "--wait", timeout=90)
        assert r.returncode == 0, r.stdout + r.stderr
        s2 = c.wait_healthy(timeout=120)
        assert s2["leader"] == first.name and s2["paused"] is False
    finally:
        c.stop_all()
