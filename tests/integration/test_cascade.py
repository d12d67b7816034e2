"""Cascading replication (the `replicatefrom` tag) against real etcd and
three PostgreSQL 15 nodes (ttl 10, loop_wait 1): node3 streams from node2
with a slot there; when node2's PostgreSQL dies (its agent hung, so its
member key still says "streaming") node3 falls back to the leader within
two loops, and returns to node2 once node2 is back; and a failover while
node3 cascades.

Serial (not concurrent): the fallback is timed (within two loops) and the
failover waits on the ttl. The tests of tags naming an unknown member or
the member itself, and of a reloaded tag and a loop of tags, measure no
time: they are in test_cascade_functional.py, in the concurrent pass, which
takes the helpers below from here."""
import json
import os
import signal
import time

import pytest

from lib.cluster import DbhaCluster
from lib.procs import wait_until

LOOP_WAIT = 1


def upstreams(cluster):
    """(leader, [(replica, upstream)]) from `dbctl topology -o json`."""
    t = json.loads(cluster.dbctl("topology", "-o", "json").stdout)
    return t["leader"], [(r["name"], r["upstream"]) for r in t["replicas"]]


@pytest.fixture
def cluster(procs, workdir):
    c = DbhaCluster(procs, workdir, n=3, ttl=10, loop_wait=LOOP_WAIT, retry_timeout=2)
    yield c
    c.stop_all()


def start_node1_first(c):
    """node1 bootstraps and leads; then the others join."""
    c.start([c.node("node1")])
    c.wait_healthy(timeout=90, replicas=0)
    c.start([c.node("node2"), c.node("node3")])
    s = c.wait_healthy(timeout=120)
    assert s["leader"] == "node1"
    return c.node("node1")


def receiver(node):
    """(status, sender_host, sender_port) of node's walreceiver, or None."""
    rows = node.sql("SELECT status, sender_host, sender_port FROM pg_stat_wal_receiver")
    return tuple(rows[0]) if rows else None


def streams_from(node, upstream):
    r = receiver(node)
    return r is not None and r[0] == "streaming" and r[2] == upstream.pg_port


def senders(node):
    """application_name -> state of node's walsenders."""
    return dict(node.sql("SELECT application_name, state FROM pg_stat_replication"))


def slot(node, name):
    """(active, restart_lsn) of the physical slot name on node, or None."""
    rows = node.sql("SELECT active, restart_lsn::text FROM pg_replication_slots "
                    "WHERE slot_name = %s AND slot_type = 'physical'", (name,))
    return tuple(rows[0]) if rows else None


def lsn(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def row_reaches(writer, readers, value, timeout=15):
    writer.sql("INSERT INTO cascade_t VALUES (%s)", (value,))
    for n in readers:
        wait_until(lambda n=n: n.sql("SELECT 1 FROM cascade_t WHERE v = %s", (value,)), timeout,
                   interval=0.1, what=f"row {value} on {n.name}")


def cascaded(leader, node2, node3):
    return (streams_from(node3, node2) and senders(node2).get("node3") == "streaming"
            and "node3" not in senders(leader))


def test_cascade_falls_back_to_the_leader_and_returns(cluster):
    cluster.node("node3").tags = {"replicatefrom": "node2"}
    leader = start_node1_first(cluster)
    node2, node3 = cluster.node("node2"), cluster.node("node3")

    # node3 streams from node2, with its slot there; the leader keeps one
    # for it too (the fallback needs it)
    wait_until(lambda: cascaded(leader, node2, node3), 30, interval=0.2,
               what="node3 streaming from node2 only")
    assert senders(node2) == {"node3": "streaming"}
    assert senders(leader) == {"node2": "streaming"}
    assert slot(node2, "node3")[0] is True
    assert slot(leader, "node3") is not None and slot(leader, "node3")[0] is False
    assert slot(leader, "node2")[0] is True
    assert node3.sql("SHOW primary_slot_name") == [("node3",)]
    # the topology document names the upstream each replica streams from
    wait_until(lambda: upstreams(cluster) == ("node1", [("node2", "node1"), ("node3", "node2")]),
               10, interval=0.2, what="node3 under node2 in the topology document")
    leader.sql("CREATE TABLE cascade_t (v int)")
    row_reaches(leader, [node2, node3], 1)

    # The leader's unused slot for node3 follows node3's position (less a
    # segment) instead of holding WAL since node3 left it.
    before = lsn(slot(leader, "node3")[1])
    for i in range(3):
        leader.sql("INSERT INTO cascade_t VALUES (100)")
        leader.sql("SELECT pg_switch_wal()")
    wait_until(lambda: lsn(slot(leader, "node3")[1]) > before, 15, interval=0.2,
               what="the leader's slot for node3 advanced")
    after = lsn(slot(leader, "node3")[1])
    print(f"leader's slot node3 advanced by {(after - before) / 2**20:.0f} MB while unused")

    # node2 had node3's slot before it first published "running": node3
    # never had to give up on it
    assert not cluster.procs.log_contains("node3", "not streaming from")

    # node2's PostgreSQL dies while its agent hangs: its member key still
    # says running and streaming, but node3 gets no WAL from it.
    os.kill(node2.proc.pid, signal.SIGSTOP)
    try:
        pid = node2.postmaster_pid()
        assert pid
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: streams_from(node3, leader)
                   and senders(leader).get("node3") == "streaming",
                   10 * LOOP_WAIT, interval=0.05, what="node3 streaming from the leader")
        took = time.monotonic() - t0
        print(f"fallback: node3 streams from the leader {took:.2f} s after node2's "
              f"postmaster was killed (loop_wait {LOOP_WAIT} s)")
        # within two loops (plus the walreceiver's own reconnection)
        assert took <= 2 * LOOP_WAIT + 0.5, f"fallback took {took:.2f} s"
        assert cluster.procs.log_contains("node3", 'not streaming from "node2"')
        row_reaches(leader, [node3], 2)

        # dbctl topology draws whom node3 streams from, not only its tag
        wait_until(lambda: ("node3", "node1") in upstreams(cluster)[1], 10, interval=0.2,
                   what="node3 under node1 in the topology document")
    finally:
        os.kill(node2.proc.pid, signal.SIGCONT)

    # node2's agent restarts its PostgreSQL; node3 goes back to it.
    t1 = time.monotonic()
    wait_until(lambda: cascaded(leader, node2, node3), 60, interval=0.2,
               what="node3 streaming from node2 again")
    print(f"return: node3 streams from node2 again {time.monotonic() - t1:.2f} s after "
          f"node2's agent resumed")
    assert slot(node2, "node3")[0] is True
    row_reaches(leader, [node2, node3], 3)
    wait_until(lambda: ("node3", "node2") in upstreams(cluster)[1], 10, interval=0.2,
               what="node3 under node2 in the topology document again")
    assert cluster.procs.log_contains("node3", 'following "node2" (replicatefrom)')

    # A clean stop of node2 (its agent stops PostgreSQL and its member key
    # goes with its lease): node3 falls back from the view alone.
    t2 = time.monotonic()
    node2.stop()
    wait_until(lambda: streams_from(node3, leader), 10 * LOOP_WAIT, interval=0.05,
               what="node3 streaming from the leader after node2 stopped")
    took = time.monotonic() - t2
    print(f"fallback: node3 streams from the leader {took:.2f} s after node2's agent was "
          f"told to stop")
    assert took <= 2 * LOOP_WAIT + 1.0, f"fallback took {took:.2f} s"
    assert cluster.procs.log_contains(
        "node3", '"node2" is unavailable (it is not a member of the cluster)')
    row_reaches(leader, [node3], 4)
    node2.start()
    wait_until(lambda: cascaded(leader, node2, node3), 60, interval=0.2,
               what="node3 streaming from node2 after node2's restart")
    row_reaches(leader, [node2, node3], 5)


def test_cascade_survives_a_failover(cluster):
    """The leader dies while node3 cascades from node2: a new leader is
    elected, and the remaining replica streams from it on its timeline."""
    cluster.node("node3").tags = {"replicatefrom": "node2"}
    leader = start_node1_first(cluster)
    node2, node3 = cluster.node("node2"), cluster.node("node3")
    wait_until(lambda: cascaded(leader, node2, node3), 30, interval=0.2,
               what="node3 streaming from node2 only")
    leader.sql("CREATE TABLE cascade_t (v int)")
    row_reaches(leader, [node2, node3], 1)

    pid = leader.postmaster_pid()
    leader.kill()                  # the agent ...
    os.kill(pid, signal.SIGKILL)   # ... and its PostgreSQL together

    def new_leader():
        s = cluster.status()
        return s["leader"] if s["leader"] in ("node2", "node3") else None
    new = cluster.node(wait_until(new_leader, 30, interval=0.2, what="a new leader"))
    other = node3 if new is node2 else node2
    wait_until(lambda: streams_from(other, new), 30, interval=0.2,
               what=f"{other.name} streaming from the new leader {new.name}")
    tli = new.sql("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")[0][0]
    wait_until(lambda: receiver(other) and int(tli, 16) == other.sql(
        "SELECT received_tli FROM pg_stat_wal_receiver")[0][0], 30, interval=0.2,
        what=f"{other.name} on the new timeline")
    row_reaches(new, [other], 2)
    print(f"failover: {new.name} leads, {other.name} streams from it on timeline {int(tli, 16)}")
