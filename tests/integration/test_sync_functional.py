"""The functional half of test_sync.py: synchronous_mode against real etcd
and real PostgreSQL 15 nodes (each test a cluster of its own: free ports,
its temp dir): strict mode keeps a commit waiting while no standby is up
and completes it when one returns; non-strict mode falls back to
asynchronous replication and only members the sync key names lead, unless
an operator forces a failover; synchronous_node_count 2 and a member tagged
nosync; and maximum_lag_on_syncnode swapping a hung standby. Every wait is
a bounded poll with a generous limit and nothing is timed, so these run in
the concurrent pass. test_sync.py keeps the helpers and the tests that
measure time (kill -9 rounds timed against the ttl with a writer's
overlap check, a dead standby replaced within two loops)."""
import json
import os
import signal
import threading
import time

import psycopg2
import pytest

from lib.cluster import SUPERUSER, SUPERUSER_PW
from lib.procs import LOOPBACK, wait_until
import test_sync
from test_sync import settled, ssn, standbys, start_settled, sync_key, sync_rows

pytestmark = pytest.mark.concurrent


# the fixture of the timed half: a DbhaCluster with synchronous_mode on
make = test_sync.make


def commit_in_thread(node, value, result):
    def run():
        try:
            conn = psycopg2.connect(host=LOOPBACK, port=node.pg_port, user=SUPERUSER,
                                    password=SUPERUSER_PW, dbname="postgres", connect_timeout=3)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("INSERT INTO strict_t VALUES (%s)", (value,))
            result["done"] = time.monotonic()
            conn.close()
        except Exception as e:  # noqa: BLE001 - reported by the test
            result["error"] = repr(e)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_strict_mode_blocks_commits_until_a_replica_returns(make):
    c = make(synchronous_mode_strict=True)
    leader, sb = start_settled(c)
    lead = c.node(leader)
    lead.sql("CREATE TABLE strict_t (v int)")
    replicas = [n for n in c.nodes if n.name != leader]
    for n in replicas:
        n.stop()  # the agents stop their PostgreSQL
    result = {}
    t = commit_in_thread(lead, 1, result)
    time.sleep(3 * 1.0 + 1)  # three loops: nothing may release it
    assert "done" not in result and "error" not in result, result
    waiting = lead.sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")
    assert waiting[0][0] >= 1
    assert ssn(lead) != ""
    print(f"strict: commit waiting with both replicas down, "
          f"synchronous_standby_names = {ssn(lead)!r}, sync key {sync_key(c)}")
    t_start = time.monotonic()
    replicas[1].start()
    t.join(60)
    assert "done" in result, f"the commit did not complete: {result}"
    print(f"strict: commit completed {result['done'] - t_start:.2f} s after starting "
          f"{replicas[1].name}")
    wait_until(lambda: replicas[1].sql("SELECT count(*) FROM strict_t")[0][0] == 1, 10,
               what="the row on the returned replica")
    assert lead.sql("SELECT count(*) FROM strict_t")[0][0] == 1


def test_non_strict_falls_back_to_asynchronous(make):
    c = make()
    leader, sb = start_settled(c)
    lead = c.node(leader)
    lead.sql("CREATE TABLE strict_t (v int)")
    for n in c.nodes:
        if n.name != leader:
            n.stop()
    result = {}
    t = commit_in_thread(lead, 1, result)
    t.join(15)
    assert "done" in result, f"the commit did not complete: {result}"
    key = wait_until(lambda: (lambda k: k if k and standbys(k) == [] else None)(sync_key(c)),
                     10, interval=0.2, what="the sync key without a standby")
    assert key["leader"] == leader
    assert ssn(lead) == ""
    s = c.status()
    assert not [m for m in s["members"] if m["role"] == "sync_standby"], s
    table = c.dbctl("status").stdout
    assert "Synchronous mode: on (no synchronous standby: replicating asynchronously)" \
        in table, table
    assert c.procs.log_contains(leader, "replicating asynchronously")
    # members the key does not name may not lead: the replicas come back as replicas
    for n in c.nodes:
        if n.name != leader:
            n.start()
    leader, sb = settled(c, leader_name=leader)
    assert "Synchronous mode" not in c.dbctl("status").stdout  # the role says it
    # a forced failover may name a member the key does not (the operator's call)
    other = next(n for n in c.nodes if n.name not in (leader, sb))
    r = c.dbctl("failover", "--candidate", other.name, "--force")
    assert r.returncode == 0, r.stderr
    assert "not a synchronous standby" in r.stderr and "anyway" in r.stderr, r.stderr
    settled(c, leader_name=other.name)


def test_node_count_and_nosync(make):
    """synchronous_node_count 2 names two standbys; a member tagged nosync is
    never one of them, not even when a standby dies."""
    c = make(n=4, synchronous_node_count=2)
    c.node("node4").tags = {"nosync": True}
    c.start([c.node("node1")])
    c.wait_healthy(timeout=120, replicas=0)
    c.start(c.nodes[1:])
    c.wait_healthy(timeout=120)
    lead = c.node("node1")

    def names(want):
        def ok():
            key = sync_key(c)
            rows = sync_rows(lead)
            return key and sorted(standbys(key)) == want and \
                all(rows.get(n) == "sync" for n in want)
        return ok
    wait_until(names(["node2", "node3"]), 30, interval=0.2, what="node2 and node3 in the key")
    assert ssn(lead) in ('FIRST 2 ("node2","node3")', 'FIRST 2 ("node3","node2")')
    assert sync_rows(lead).get("node4") == "async"
    c.node("node2").kill_with_postgres()
    wait_until(names(["node3"]), 20, interval=0.2, what="node3 alone in the key")
    assert ssn(lead) == 'FIRST 1 ("node3")'
    assert sync_rows(lead).get("node4") == "async"
    lead.sql("CREATE TABLE t_after (v int)")  # commits go on with one standby
    roles = {m["name"]: m["role"] for m in c.status()["members"]}
    assert roles["node3"] == "sync_standby" and roles["node4"] == "replica", roles


def test_hung_sync_standby_is_swapped_with_maximum_lag_on_syncnode(make):
    """Patroni's maximum_lag_on_syncnode: the synchronous standby's
    walreceiver hangs (SIGSTOP: its connection stays up, so PostgreSQL
    still counts it as streaming) while the leader writes 4 MB with
    synchronous_commit = local; once it is more than 1 MB behind the other
    replica, the leader makes the other one its synchronous standby, and
    commits flow again. Without the key a hung standby is kept and every
    commit waits for it."""
    c = make()
    c.dcs_extra["maximum_lag_on_syncnode"] = 1048576
    leader, sb = start_settled(c)
    lead, hung = c.node(leader), c.node(sb)
    other = next(n for n in c.nodes if n.name not in (leader, sb))
    assert json.loads(c.etcd_get("config"))["maximum_lag_on_syncnode"] == 1048576
    pid = hung.sql("SELECT pid FROM pg_stat_wal_receiver")[0][0]
    os.kill(pid, signal.SIGSTOP)
    try:
        conn = lead.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SET synchronous_commit = local")
            cur.execute("CREATE TABLE IF NOT EXISTS big (t text)")
            for _ in range(4):
                cur.execute("INSERT INTO big SELECT repeat('x', 1000) FROM generate_series(1, 1000)")
        conn.close()
        wait_until(lambda: sync_rows(lead).get(other.name) == "sync", 30, interval=0.2,
                   what=f"{other.name} as synchronous standby")
        wait_until(lambda: standbys(sync_key(c)) == [other.name], 30, interval=0.2,
                   what=f"{other.name} alone in the sync key")
        assert ssn(lead) == f'FIRST 1 ("{other.name}")'
        # a commit that waits for the synchronous standby is acknowledged
        conn = lead.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            # a cancelled wait would commit locally with a warning: look for it
            cur.execute("SET statement_timeout = 10000")
            cur.execute("INSERT INTO big VALUES ('after')")
        assert not any("synchronous replication" in n for n in conn.notices), conn.notices
        conn.close()
        assert c.procs.log_contains(leader, f'synchronous_standby_names = \'FIRST 1 ("{other.name}")\'')
    finally:
        os.kill(pid, signal.SIGCONT)
