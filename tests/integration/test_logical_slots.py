"""Permanent logical slots through a kill -9 failover, with a real
pg_recvlogical consumer (Patroni 3.0's approach on PostgreSQL 15).

Three nodes, wal_level logical, `slots: {cdc: {type: logical, database:
postgres, plugin: test_decoding}}` in bootstrap.dcs. The primary creates
`cdc` and publishes its confirmed_flush_lsn in the status key; each replica
copies the slot's state file from the primary, restarts to load it, and
advances it to the published position every loop, with hot_standby_feedback
on.

The consumer is pg_recvlogical, run the way a consumer that keeps its own
position (Debezium's offsets) runs: in rounds from its last committed
position (--startpos) to a position both replicas have flushed (--endpos,
from pg_stat_replication: what a failover cannot lose, the rule PostgreSQL
17's synchronized_standby_slots enforces in the server); a round's output is
committed when pg_recvlogical ends it at --endpos, and thrown away when the
round fails (the primary died under it), to be read again from the committed
position on whichever node is the primary then. Writes go on all the while;
the primary node is killed with -9 in the middle of them.

After the failover every row the new primary holds was consumed exactly
once: nothing missed, nothing read again.

Before that, a permanent logical slot added with PATCH /config appears on the
primary and on both replicas, and removing it drops it everywhere, while a
logical slot an operator made on the primary is left alone (Patroni would
drop it unless ignore_slots named it).
"""
import collections
import json
import os
import re
import subprocess
import threading
import time

import psycopg2
import pytest

from conftest import started_cluster
from lib.cluster import SUPERUSER, SUPERUSER_PW, DbhaCluster
from lib.pg import pg_tool
from lib.procs import LOOPBACK, wait_until

pytestmark = pytest.mark.concurrent  # bounded waits only: nothing here measures time

SLOT = "cdc"
ROW = re.compile(r"^table public\.cdc_t: INSERT: id\[integer\]:(\d+)$")


def configure(c):
    for n in c.nodes:
        n.parameters["wal_level"] = "logical"
        n.parameters["wal_sender_timeout"] = "5min"  # no reply requested inside a round


@pytest.fixture(scope="module")
def cluster():
    with started_cluster("dbha-logical-", configure=configure, n=3, ttl=10, loop_wait=1,
                         retry_timeout=2,
                         slots={SLOT: {"type": "logical", "database": "postgres",
                                       "plugin": "test_decoding"}}) as c:
        yield c


def dsn(cluster, **extra):
    nodes = cluster.nodes
    d = dict(host=",".join(LOOPBACK for _ in nodes), port=",".join(str(n.pg_port) for n in nodes),
             user=SUPERUSER, password=SUPERUSER_PW, dbname="postgres",
             target_session_attrs="read-write", connect_timeout="2")
    d.update(extra)
    return " ".join(f"{k}={v}" for k, v in d.items())


def logical_slot(node):
    rows = node.sql("SELECT plugin, database, confirmed_flush_lsn::text FROM "
                    "pg_catalog.pg_replication_slots WHERE slot_name = %s AND slot_type = 'logical'",
                    (SLOT,))
    return rows[0] if rows else None


def lsn(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def fmt(v):
    return f"{v >> 32:X}/{v & 0xFFFFFFFF:X}"


class Writer(threading.Thread):
    """Inserts ids 1, 2, ... into cdc_t on whichever node is the primary,
    one committed row at a time, for at most 180 s."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.dsn = dsn(cluster)
        self.stop = threading.Event()
        self.acked = []
        self.errors = 0

    def run(self):
        conn, i, t0 = None, 0, time.monotonic()
        while not self.stop.is_set() and time.monotonic() - t0 < 180:
            try:
                if conn is None:
                    conn = psycopg2.connect(self.dsn)
                    conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO cdc_t VALUES (%s)", (i + 1,))
                i += 1
                self.acked.append(i)
                time.sleep(0.01)
            except psycopg2.Error:
                self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
                i += 1  # the id whose commit is unknown is not used again
                time.sleep(0.2)


class Consumer(threading.Thread):
    """pg_recvlogical in rounds from the committed position (see the module
    doc); at most 600 rounds and 240 s."""

    def __init__(self, cluster, workdir, start):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.workdir = workdir
        self.pos = start
        self.lines = []  # committed output
        self.rounds = []  # (start, end, rows, host port) of each committed round
        self.failed = 0
        self.stop = threading.Event()

    def end_position(self):
        """What every replica streaming from the primary has flushed."""
        conn = psycopg2.connect(dsn(self.cluster))
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_catalog.min(flush_lsn)::text, pg_catalog.count(*), "
                            "pg_catalog.inet_server_port() FROM pg_catalog.pg_stat_replication "
                            "WHERE state = 'streaming'")
                end, n, port = cur.fetchone()
        finally:
            conn.close()
        return (lsn(end) if end and n else None), port

    def run(self):
        t0 = time.monotonic()
        for k in range(600):
            if self.stop.is_set() or time.monotonic() - t0 > 240:
                return
            try:
                end, port = self.end_position()
            except psycopg2.Error:
                self.failed += 1
                time.sleep(0.3)
                continue
            if end is None or end <= self.pos:
                time.sleep(0.2)
                continue
            out = os.path.join(self.workdir, f"round-{k}.out")
            p = subprocess.run(
                [pg_tool("pg_recvlogical"), "-d", dsn(self.cluster), "-S", SLOT, "--start",
                 "--no-loop", "-I", fmt(self.pos), "-E", fmt(end), "-s", "0", "-F", "0",
                 "-f", out], capture_output=True, text=True, timeout=30)
            lines = open(out).read().splitlines() if os.path.exists(out) else []
            if os.path.exists(out):
                os.unlink(out)
            if p.returncode != 0:
                self.failed += 1  # the round's output is thrown away
                time.sleep(0.3)
                continue
            rows = [int(m.group(1)) for m in map(ROW.match, lines) if m]
            self.lines.extend(lines)
            self.rounds.append((self.pos, end, rows, port))
            self.pos = end

    def ids(self):
        return [int(m.group(1)) for m in map(ROW.match, self.lines) if m]


def patch_config(node, body):
    code, text = node.api("/config", "PATCH", timeout=10, data=json.dumps(body))
    return code, json.loads(text or b"null")


def logical_names(node):
    return {r[0] for r in node.sql("SELECT slot_name FROM pg_catalog.pg_replication_slots "
                                   "WHERE slot_type = 'logical'")}


def test_a_slot_added_and_removed_at_run_time_and_an_operators_slot_kept(cluster):
    s = cluster.wait_healthy(timeout=90)
    leader = cluster.node(s["leader"])
    replicas = [n for n in cluster.nodes if n is not leader]
    leader.sql("SELECT pg_catalog.pg_create_logical_replication_slot('own', 'test_decoding')")
    code, body = patch_config(leader, {"slots": {"audit": {"type": "logical",
                                                           "database": "postgres",
                                                           "plugin": "test_decoding"}}})
    assert code == 200, body
    wait_until(lambda: "audit" in logical_names(leader), 30, what="audit on the primary")
    for n in replicas:
        wait_until(lambda: {"audit", SLOT} <= logical_names(n), 90, interval=0.5,
                   what=f"audit copied to {n.name}")
        assert "own" not in logical_names(n), "only the permanent slots are copied"
    cluster.wait_healthy(timeout=60)
    code, body = patch_config(leader, {"slots": {"audit": None}})
    assert code == 200, body
    for n in cluster.nodes:
        wait_until(lambda: "audit" not in logical_names(n), 30, interval=0.5,
                   what=f"audit dropped on {n.name}")
    time.sleep(3)  # more loops: the operator's slot and the permanent one stay
    assert {"own", SLOT} <= logical_names(leader)
    for n in replicas:
        assert SLOT in logical_names(n)
    leader.sql("SELECT pg_catalog.pg_drop_replication_slot('own')")
    cluster.wait_healthy(timeout=60)


def test_cdc_consumer_resumes_on_the_new_primary_after_a_kill_9_failover(cluster):
    s = cluster.wait_healthy(timeout=90)
    leader = cluster.node(s["leader"])
    replicas = [n for n in cluster.nodes if n is not leader]

    # the primary made the slot and publishes its position
    wait_until(lambda: logical_slot(leader) is not None, 30, what="cdc on the primary")
    assert logical_slot(leader)[:2] == ("test_decoding", "postgres")
    wait_until(lambda: SLOT in (json.loads(cluster.etcd_get("status") or "{}")
                               .get("slots") or {}), 30, what="cdc in the status key")
    # each replica copied it (a restart loaded it) and keeps it
    for n in replicas:
        wait_until(lambda: logical_slot(n) is not None, 60, interval=0.5,
                   what=f"cdc copied to {n.name}")
        assert cluster.procs.log_contains(n.name, 'copied logical slot "cdc" from the primary')
        assert n.sql("SHOW hot_standby_feedback") == [("on",)]
        # Patroni's readiness check: the primary keeps the catalog rows it needs
        wait_until(lambda: cluster.procs.log_contains(
            n.name, 'logical slot "cdc" is safe to be used after a failover'), 60, interval=0.5,
            what=f"{n.name}'s copy known safe")
    cluster.wait_healthy(timeout=60)

    leader.sql("CREATE TABLE cdc_t (id int PRIMARY KEY)")
    start = lsn(leader.sql("SELECT pg_catalog.pg_current_wal_lsn()::text")[0][0])
    # the consumer's first position is past the slot's: the DDL is not a row
    writer = Writer(cluster)
    consumer = Consumer(cluster, cluster.workdir, start)
    writer.start()
    consumer.start()
    try:
        # rows flow, and the replicas' copies follow the primary's position
        wait_until(lambda: len(consumer.ids()) >= 200, 60, interval=0.2,
                   what="200 rows consumed before the failover")
        moved = lsn(logical_slot(leader)[2])
        for n in replicas:
            wait_until(lambda: lsn(logical_slot(n)[2]) >= moved, 15, interval=0.2,
                       what=f"{n.name}'s copy advanced to {fmt(moved)}")

        # kill -9 of the primary node in the middle of the writes
        before = len(writer.acked)
        leader.kill_with_postgres()
        wait_until(lambda: (cluster.status().get("leader") or leader.name) != leader.name, 60,
                   interval=0.2, what="a new leader")
        new = cluster.node(cluster.status()["leader"])
        wait_until(lambda: len(writer.acked) >= before + 200, 60, interval=0.2,
                   what="200 rows written on the new primary")
    finally:
        writer.stop.set()
        writer.join(30)
    final = lsn(new.sql("SELECT pg_catalog.pg_current_wal_lsn()::text")[0][0])
    try:
        wait_until(lambda: consumer.pos >= final, 90, interval=0.5,
                   what=f"the consumer past {fmt(final)} on the new primary")
    finally:
        consumer.stop.set()
        consumer.join(60)

    held = {r[0] for r in new.sql("SELECT id FROM cdc_t")}
    ids = consumer.ids()
    counts = collections.Counter(ids)
    missed = sorted(held - set(ids))
    again = sorted(i for i, c in counts.items() if c > 1)
    after = [r for r in consumer.rounds if r[3] == new.pg_port and r[2]]
    print(f"cdc: {len(held)} rows on the new primary, {len(ids)} consumed in "
          f"{len(consumer.rounds)} rounds ({consumer.failed} failed and read again), "
          f"{len(after)} rounds with rows from {new.name}; missed {len(missed)}, "
          f"read twice {len(again)}; writer acknowledged {len(writer.acked)}, "
          f"{writer.errors} errors")
    assert after, "the consumer resumed on the new primary"
    assert not missed, f"rows the new primary holds that the consumer never got: {missed[:20]}"
    assert not again, f"rows consumed twice: {again[:20]}"
    assert set(ids) <= held, "the consumer got only rows the new primary holds"
    # the slot lives on: the new primary publishes it, the surviving replica keeps a copy
    wait_until(lambda: SLOT in (json.loads(cluster.etcd_get("status") or "{}")
                               .get("slots") or {}), 30, what="cdc published by the new primary")
    survivor = next(n for n in replicas if n is not new)
    wait_until(lambda: logical_slot(survivor) is not None, 60, interval=0.5,
               what=f"cdc on {survivor.name}")


def test_a_copy_that_cannot_advance_is_kept_until_a_new_copy_replaces_it(procs, workdir):
    """The worst moment for a copy: the primary's slot was made before the
    replica was cloned and no consumer has moved it since, so the copy
    starts before the replica's own WAL and cannot advance. Patroni drops it
    and copies again at once (a restart each loop, and no slot at all in
    between: a failover then makes a new slot that silently starts later).
    dbha keeps it until a new copy, made after a backoff, replaces it: a
    sampler reading node2's slots every 0.1 s never finds it missing. (The
    primary saves a slot's new start only at its next running-xacts record,
    so a copy or two more may be needed, each after a doubled wait.)"""
    c = DbhaCluster(procs, workdir, n=2, ttl=10, loop_wait=1, retry_timeout=2,
                    slots={SLOT: {"type": "logical", "database": "postgres",
                                  "plugin": "test_decoding"}})
    configure(c)
    try:
        node1, node2 = c.nodes
        c.start(nodes=[node1])
        wait_until(lambda: logical_slot(node1) is not None, 60, interval=0.5,
                   what="cdc on node1")
        # WAL past the slot's start, in later segments: node2's clone starts there
        for _ in range(3):
            node1.sql("SELECT pg_catalog.pg_switch_wal()")
            node1.sql("CREATE TABLE IF NOT EXISTS pad (x int); INSERT INTO pad VALUES (1)")
        node1.sql("CHECKPOINT")
        node2.start()
        c.wait_healthy(timeout=120)
        wait_until(lambda: logical_slot(node2) is not None, 60, interval=0.5,
                   what="cdc copied to node2")

        missing, samples, stop = [], [0], threading.Event()

        def sample():
            t0 = time.monotonic()
            while not stop.is_set() and time.monotonic() - t0 < 120:
                try:
                    if logical_slot(node2) is None:
                        missing.append(time.monotonic())
                    samples[0] += 1
                except psycopg2.Error:
                    pass  # restarting: neither there nor missing
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            # a consumer moves the slot: node1 publishes a later position,
            # node2's copy cannot reach it (its WAL starts later)
            node1.sql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
            node1.sql("SELECT count(*) FROM pg_catalog.pg_logical_slot_get_changes(%s, NULL, NULL)",
                      (SLOT,))
            wait_until(lambda: c.procs.log_contains("node2", 'logical slot "cdc" cannot advance '
                                                              "here"), 30, interval=0.2,
                       what="node2's copy found unable to advance")
            # kept; replaced by a new copy after the backoff, which advances
            wait_until(lambda: c.procs.log_count("node2", 'copied logical slot "cdc"') >= 2, 60,
                       interval=0.2, what="a second copy on node2")
            node1.sql("INSERT INTO t VALUES (2)")
            node1.sql("SELECT count(*) FROM pg_catalog.pg_logical_slot_get_changes(%s, NULL, NULL)",
                      (SLOT,))
            want = lsn(logical_slot(node1)[2])
            wait_until(lambda: lsn(logical_slot(node2)[2]) >= want, 30, interval=0.2,
                       what="the new copy advanced")
        finally:
            stop.set()
            sampler.join(10)
        print(f"copy kept: {samples[0]} samples of node2's slots, {len(missing)} without cdc")
        assert samples[0] > 20
        assert not missing, "node2 had no cdc slot at some sample"
        # a new copy (a restart) only after each copy found unable to
        # advance, after its backoff: not one each loop
        copies = c.procs.log_count("node2", 'copied logical slot "cdc"')
        stuck = c.procs.log_count("node2", 'logical slot "cdc" cannot advance here')
        print(f"{copies} copies, {stuck} found unable to advance")
        assert copies == stuck + 1, (copies, stuck)
        assert c.procs.log_count("node2", "replaces it, in 10 s") <= 1
    finally:
        c.stop_all()
