"""dbctl failover, scheduled switchover and flush on one real three-node
cluster (ttl 5, loop_wait 1; node3 is tagged nofailover, so node1 and node2
are the only members that may lead). In order: refusals that change
nothing; a lagging candidate refused; a switchover scheduled a few seconds
ahead happens then and not before; flush cancels one; failover to a
caught-up replica after kill -9 of the leader's agent and PostgreSQL,
confirmed on a terminal; and last, with the leader dead again, a candidate
too far behind (its WAL receiver stopped while the leader wrote 48 MB) is
neither promoted automatically nor by a plain failover, only with --force.

Lag is measured by replay (test_lag.py pauses replay); these tests stop the
candidate's WAL receiver (SIGSTOP), so it neither receives nor replays."""
import json
import os
import signal
import time
from datetime import datetime, timedelta, timezone

import pytest

from conftest import started_cluster
from lib.procs import binary, wait_until
from lib.tty import run_tty

TTL = 5
MB = 1024 * 1024


@pytest.fixture(scope="module")
def cluster():
    def no_failover_on_node3(c):
        c.node("node3").tags = {"nofailover": True}
    with started_cluster("dbha-dbctl-failover-", no_failover_on_node3, n=3, ttl=TTL, loop_wait=1,
                         retry_timeout=1) as c:
        yield c


def leader_and_candidate(cluster):
    """(leader node, the other member that may lead) once the cluster is healthy."""
    s = cluster.wait_healthy(timeout=120)
    leader = cluster.node(s["leader"])
    cand = next(n for n in cluster.nodes if n is not leader and n.name != "node3")
    return leader, cand


def lag_of(cluster, name):
    m = {m["name"]: m for m in cluster.status()["members"]}.get(name)
    return m["lag_bytes"] if m else None


def stop_receiving(node):
    """SIGSTOP the WAL receiver of a replica; returns its PID."""
    pid = wait_until(lambda: (node.sql("SELECT pid FROM pg_stat_wal_receiver") or [[None]])[0][0],
                     20, what=f"a WAL receiver on {node.name}")
    os.kill(pid, signal.SIGSTOP)
    return pid


def write_mb(node, mb):
    node.sql("CREATE TABLE IF NOT EXISTS ballast (x text)")
    node.sql("INSERT INTO ballast SELECT repeat('x', 1000) FROM generate_series(1, %s)",
             (mb * 1000,))




def test_refusals_change_nothing(cluster):
    leader, cand = leader_and_candidate(cluster)
    cases = [("nosuch", "no such member"), ("node3", "it is tagged nofailover"),
             (leader.name, "it is the current leader")]
    for name, why in cases:
        for force in ((), ("--force",)):
            p = cluster.dbctl("failover", "--candidate", name, *force)
            assert p.returncode == 1, (name, p.stderr)
            assert p.stderr == f'dbctl failover: cannot fail over to "{name}": {why}\n'
    assert cluster.etcd_get("failover") is None
    assert cluster.status()["leader"] == leader.name


def test_lagging_candidate_is_refused(cluster):
    leader, cand = leader_and_candidate(cluster)
    pid = stop_receiving(cand)
    try:
        write_mb(leader, 8)
        wait_until(lambda: (lag_of(cluster, cand.name) or 0) > 2 * MB, 30, interval=0.2,
                   what=f"{cand.name} 2 MB behind")
        p = cluster.dbctl("failover", "--candidate", cand.name)
        assert p.returncode == 1
        assert f'cannot fail over to "{cand.name}": it lags ' in p.stderr
        assert "maximum_lag_on_failover is 1048576); --force to fail over anyway" in p.stderr
        assert cluster.etcd_get("failover") is None
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: lag_of(cluster, cand.name) == 0, 30, interval=0.2,
               what=f"{cand.name} caught up")
    assert cluster.status()["leader"] == leader.name


def test_scheduled_switchover_happens_at_its_time(cluster):
    leader, cand = leader_and_candidate(cluster)
    at = (datetime.now(timezone.utc) + timedelta(seconds=6)).replace(microsecond=0)
    p = cluster.dbctl("switchover", "--candidate", cand.name, "--scheduled", at.isoformat(),
                      "--force")
    assert p.returncode == 0, p.stderr
    assert p.stdout == (f'Switchover scheduled at {at.isoformat()} from "{leader.name}" '
                        f'to "{cand.name}"\n')
    s = cluster.status()
    assert s["scheduled_switchover"] == {"at": at.isoformat(), "from": leader.name,
                                         "to": cand.name}
    assert f" Switchover scheduled at: {at.isoformat()}" in cluster.dbctl("status").stdout
    # nothing happens before the time (checked up to a second before it)
    while datetime.now(timezone.utc) < at - timedelta(seconds=1):
        assert cluster.status()["leader"] == leader.name, "switched over too early"
        time.sleep(0.3)
    wait_until(lambda: cluster.status()["leader"] == cand.name, 30, interval=0.1,
               what=f"{cand.name} leading after the scheduled time")
    assert datetime.now(timezone.utc) >= at - timedelta(seconds=0.5)
    wait_until(lambda: cluster.etcd_get("failover") is None, 10, what="the failover key cleared")
    s = cluster.wait_healthy(timeout=90)  # the old leader follows
    assert "scheduled_switchover" not in s


def test_flush_cancels_a_scheduled_switchover(cluster):
    leader, cand = leader_and_candidate(cluster)
    at = (datetime.now(timezone.utc) + timedelta(hours=1)).replace(microsecond=0)
    p = cluster.dbctl("switchover", "--candidate", cand.name, "--scheduled", at.isoformat(),
                      "--force")
    assert p.returncode == 0, p.stderr
    assert cluster.status()["scheduled_switchover"]["to"] == cand.name
    p = cluster.dbctl("flush", "--force")
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"Cancelled the switchover scheduled at {at.isoformat()}\n"
    assert cluster.etcd_get("failover") is None
    time.sleep(2)  # two loops: nobody acts on it
    s = cluster.status()
    assert s["leader"] == leader.name and "scheduled_switchover" not in s
    p = cluster.dbctl("flush", "--force")
    assert p.returncode == 1 and "no scheduled switchover" in p.stderr


def test_failover_with_the_leader_dead(cluster):
    leader, cand = leader_and_candidate(cluster)
    leader.kill_with_postgres()
    t0 = time.monotonic()
    # confirmed on a terminal (no --force: the candidate is caught up)
    rc, out = run_tty([binary("dbctl"), "--etcd", ",".join(cluster.etcd.endpoints), "--scope",
                       cluster.scope, "failover", "--candidate", cand.name],
                      [("[y/N]", "y")], timeout=60)
    took = time.monotonic() - t0
    assert rc == 0, out
    assert f'Fail over to "{cand.name}" ("{leader.name}" is the leader now)? [y/N]' in out
    assert f'Failed over to "{cand.name}" in ' in out
    print(f"failover with the leader dead: {took:.2f} s (ttl {TTL})")
    assert took <= TTL + 10
    assert cluster.status()["leader"] == cand.name
    wait_until(lambda: cluster.etcd_get("failover") is None, 10, what="the failover key cleared")
    history = json.loads(cluster.etcd_get("history"))
    assert history[-1][4] == cand.name
    # the old leader comes back as a replica of the new one
    leader.start()
    s = cluster.wait_healthy(timeout=120)
    assert s["leader"] == cand.name


def test_forced_failover_to_a_lagging_candidate(cluster):
    """Last: the nofailover replica ends ahead of the new leader's timeline."""
    leader, cand = leader_and_candidate(cluster)
    pid = stop_receiving(cand)
    try:
        write_mb(leader, 48)
        wait_until(lambda: (lag_of(cluster, cand.name) or 0) > 24 * MB, 60, interval=0.2,
                   what=f"{cand.name} 24 MB behind")
        # the rewind below needs node3 past the candidate's fork point: wait
        # for it to have received (flushed) WAL beyond what the candidate has
        node3 = cluster.node("node3")
        cand_lsn = cand.sql("SELECT pg_last_wal_receive_lsn()::text")[0][0]
        wait_until(lambda: node3.sql("SELECT pg_last_wal_receive_lsn() - %s::pg_lsn > 0",
                                     (cand_lsn,))[0][0], 60, interval=0.2,
                   what="node3 past the candidate's received WAL")
        leader.kill_with_postgres()
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: cluster.etcd_get("leader") is None, TTL + 10, interval=0.1,
               what="the dead leader's key expired")
    # nobody may take over on its own: the candidate is too far behind, node3 is nofailover
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert cluster.etcd_get("leader") is None, "a lagging member took over by itself"
        time.sleep(0.2)
    lag = lag_of(cluster, cand.name)
    assert lag > MB, lag
    p = cluster.dbctl("failover", "--candidate", cand.name)
    assert p.returncode == 1 and "it lags" in p.stderr, p.stderr
    assert cluster.etcd_get("failover") is None
    p = cluster.dbctl("failover", "--candidate", cand.name, "--force")
    assert p.returncode == 0, p.stderr
    assert f'warning: "{cand.name}": it lags' in p.stderr
    assert f'Failed over to "{cand.name}" in ' in p.stdout
    assert cluster.status()["leader"] == cand.name
    assert cand.sql("SELECT pg_is_in_recovery()") == [(False,)]
    # node3 had received more WAL than the new leader: its timeline goes past
    # the fork point, so it is rewound against the new leader and follows it.

    def node3_streams():
        m = [m for m in cluster.status()["members"] if m["name"] == "node3"]
        return m and m[0]["state"] == "streaming"
    wait_until(node3_streams, 90, interval=0.5, what="node3 streaming from the new leader")
    assert cluster.procs.log_contains("node3", "past the leader's fork point: rewinding")
    cand.sql("CREATE TABLE after_fork (x int)")
    cand.sql("INSERT INTO after_fork VALUES (7)")
    wait_until(lambda: node3.sql("SELECT to_regclass('after_fork') IS NOT NULL")[0][0]
               and node3.sql("SELECT x FROM after_fork") == [(7,)], 30, interval=0.2,
               what="a write on the new leader to reach node3")
