"""The functional half of test_cascade.py: cascading replication (the
`replicatefrom` tag) against real etcd and three PostgreSQL 15 nodes (ttl
10, loop_wait 1), each test on a cluster of its own (free ports, its temp
dir): a tag naming an unknown member, or the member itself, simply follows
the leader; the tag is reloadable, and a loop of tags (node2 from node3,
node3 from node2) puts both on the leader. Every wait is a bounded poll and
nothing is timed, so these run in the concurrent pass. test_cascade.py
keeps the helpers and the tests that time the fallback to the leader
(within two loops) and a failover under a cascade."""
import os
import signal
import time

import pytest

from lib.cluster import DbhaCluster
from lib.procs import wait_until
from test_cascade import (LOOP_WAIT, cascaded, lsn, row_reaches, senders, slot, start_node1_first,
                          streams_from, upstreams)

pytestmark = pytest.mark.concurrent


@pytest.fixture
def cluster(procs, workdir):
    c = DbhaCluster(procs, workdir, n=3, ttl=10, loop_wait=LOOP_WAIT, retry_timeout=2)
    yield c
    c.stop_all()


def test_replicatefrom_unknown_or_itself_follows_the_leader(cluster):
    cluster.node("node2").tags = {"replicatefrom": "node2"}
    cluster.node("node3").tags = {"replicatefrom": "nosuch"}
    leader = start_node1_first(cluster)
    node2, node3 = cluster.node("node2"), cluster.node("node3")
    wait_until(lambda: streams_from(node2, leader) and streams_from(node3, leader), 30,
               interval=0.2, what="both replicas streaming from the leader")
    assert senders(leader) == {"node2": "streaming", "node3": "streaming"}
    # nobody cascades from a replica: they keep no slots
    for n in (node2, node3):
        assert n.sql("SELECT count(*) FROM pg_replication_slots") == [(0,)]
        assert senders(n) == {}
    assert cluster.procs.log_contains(
        "node2", '"node2" is unavailable (it names this member itself): following the leader')
    assert cluster.procs.log_contains(
        "node3", '"nosuch" is unavailable (it is not a member of the cluster): following the leader')
    wait_until(lambda: upstreams(cluster) == ("node1", [("node2", "node1"), ("node3", "node1")]),
               10, interval=0.2, what="both replicas under the leader in the topology document")


def test_replicatefrom_reload_and_loop(cluster):
    """The tag is reloadable: a SIGHUP moves node3 under node2; then node2
    tagged replicatefrom node3 closes a loop, and both follow the leader."""
    leader = start_node1_first(cluster)
    node2, node3 = cluster.node("node2"), cluster.node("node3")
    wait_until(lambda: streams_from(node2, leader) and streams_from(node3, leader), 30,
               interval=0.2, what="both replicas streaming from the leader")

    node3.tags = {"replicatefrom": "node2"}
    node3.write_config()
    os.kill(node3.proc.pid, signal.SIGHUP)
    wait_until(lambda: cascaded(leader, node2, node3), 30, interval=0.2,
               what="node3 streaming from node2 after a reload")

    node2.tags = {"replicatefrom": "node3"}
    node2.write_config()
    os.kill(node2.proc.pid, signal.SIGHUP)
    wait_until(lambda: streams_from(node2, leader) and streams_from(node3, leader)
               and senders(leader) == {"node2": "streaming", "node3": "streaming"}, 30,
               interval=0.2, what="both replicas back on the leader (a loop)")
    for n, other in ((node2, "node3"), (node3, "node2")):
        assert cluster.procs.log_contains(
            n.name, f'"{other}" is unavailable (its replicatefrom tags lead back to this member)')
    # stable: nobody flips back into the loop
    time.sleep(3 * LOOP_WAIT)
    assert streams_from(node2, leader) and streams_from(node3, leader)
    leader.sql("CREATE TABLE cascade_t (v int)")
    row_reaches(leader, [node2, node3], 1)
    # node2 (a standby) keeps a slot for node3, whose tag still names it;
    # unused while node3 streams from the leader, it follows node3 too
    assert slot(node2, "node3") is not None and slot(node2, "node3")[0] is False
    before = lsn(slot(node2, "node3")[1])
    for _ in range(3):
        leader.sql("INSERT INTO cascade_t VALUES (100)")
        leader.sql("SELECT pg_switch_wal()")
    wait_until(lambda: lsn(slot(node2, "node3")[1]) > before, 15, interval=0.2,
               what="node2's slot for node3 advanced")
