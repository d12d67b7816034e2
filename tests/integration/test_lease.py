"""The leader lease when ttl changes at run time, against real etcd and three
real PostgreSQL 15 nodes, with the leader cut off from etcd by nftables (its
etcd path only: replication, REST and its clients are untouched).

The split brain this guards against: the lease was granted with the old ttl
but the agent counted its deadline with the new one, so after `ttl` went
from 10 to 30 the old primary kept taking writes for 18.6 s after etcd had
expired its key and another node had been promoted. Now the lease is
re-granted with the new ttl and the leader key moved onto it in one txn
before the new ttl counts. A writer probes every node's port directly; no
two nodes may accept writes in overlapping intervals.
"""
import base64
import json
import time
import urllib.request

import pytest

from lib.cluster import DbhaCluster
from lib.procs import LOOPBACK, wait_until
from lib.writer import start_with_writer

TTL = 10


@pytest.fixture
def cluster(procs, workdir):
    c = DbhaCluster(procs, workdir, n=3, ttl=TTL, loop_wait=1, retry_timeout=2,
                    etcd_per_node=True)
    yield c
    c.stop_all()


def patch_config(node, body):
    req = urllib.request.Request(f"http://{LOOPBACK}:{node.api_port}/config",
                                 data=json.dumps(body).encode(), method="PATCH",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200
        return json.loads(r.read())


def b64(s):
    return base64.b64encode(s.encode()).decode()


def key_lease(c, key):
    """(lease id, its granted TTL) of /service/<scope>/<key>, or None."""
    status, body = c.etcd.api("kv/range", {"key": b64(f"/service/{c.scope}/{key}")})
    assert status == 200, body
    kvs = body.get("kvs") or []
    if not kvs or not int(kvs[0].get("lease", 0)):
        return None
    lease = kvs[0]["lease"]
    status, ttl = c.etcd.api("lease/timetolive", {"ID": lease})
    assert status == 200, ttl
    return int(lease), int(ttl.get("grantedTTL", 0))


def cut_and_watch(c, leader, w, partition, max_failover):
    """Cut leader off from etcd; returns (old primary's last ack, new
    primary's first ack), both in seconds after the cut."""
    t_cut = time.monotonic()
    partition.cut_etcd(leader)
    first = wait_until(lambda: w.first_ack_after(t_cut, exclude=leader), max_failover,
                       interval=0.05, what="a write acknowledged by a new primary")
    time.sleep(1.0)  # a last write the old primary might still take
    last_old = w.last_ack(node=leader)
    return last_old - t_cut, first - t_cut


def test_ttl_raised_then_leader_cut_off_no_two_primaries(cluster, partition):
    _, leader, w = start_with_writer(cluster)
    with w:
        old = key_lease(cluster, "leader")
        assert old and old[1] == TTL, old
        patch_config(leader, {"ttl": 30})
        # the key is moved onto a lease granted with the new ttl
        new = wait_until(lambda: (lambda k: k if k and k[1] == 30 else None)(
            key_lease(cluster, "leader")), 10, interval=0.1, what="the leader key on a 30 s lease")
        assert new[0] != old[0]
        time.sleep(3)  # three loops, as in the report
        old_last, new_first = cut_and_watch(cluster, leader, w, partition, 30 + 20)
        print(f"ttl 10 -> 30, leader cut off: old primary's last write {old_last:.1f} s, "
              f"new primary's first write {new_first:.1f} s after the cut")
        # the old primary stopped within its (30 s) lease, before anyone else wrote
        assert old_last < new_first
        assert old_last <= 30
        assert cluster.procs.log_contains(leader.name, "the leader key moved to lease")
    w.assert_no_overlap()


def test_ttl_lowered_then_raised_and_cut_at_once(cluster, partition):
    _, leader, w = start_with_writer(cluster)
    with w:
        # lowering re-grants too: the leader key and every member key follow
        patch_config(leader, {"ttl": 5})
        wait_until(lambda: all((key_lease(cluster, k) or (0, 0))[1] == 5
                               for k in ["leader"] + [f"members/{n.name}" for n in cluster.nodes]),
                   10, interval=0.1, what="the leader and member keys on 5 s leases")
        lowered = key_lease(cluster, "leader")
        # the worst moment: the new ttl and the cut together, so the leader
        # may have read 30 but not moved its key off the 5 s lease
        patch_config(leader, {"ttl": 30})
        old_last, new_first = cut_and_watch(cluster, leader, w, partition, 30 + 20)
        print(f"ttl 5 -> 30 with the cut at once: old primary's last write {old_last:.1f} s, "
              f"new primary's first write {new_first:.1f} s after the cut "
              f"(the leader key was on lease {lowered})")
        assert old_last < new_first
    w.assert_no_overlap()
