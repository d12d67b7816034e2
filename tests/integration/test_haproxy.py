"""HAProxy 2.6 with configs/haproxy.cfg (rendered for the test's ports) in
front of a three-node dbha cluster (ttl 4, loop_wait 1). The write frontend's
backend checks OPTIONS /primary, the read frontend's GET /replica?lag=1MB.

- Reads through the read port reach both replicas, never the primary; when
  replay is paused on one replica and the primary writes 3 MB, the checks take
  it out and every read lands on the other replica; resumed, it comes back.
- A client writing through the write port while the leader node dies
  (kill -9 of agent and PostgreSQL) has its writes acknowledged again within
  3 s of the promotion, and every write acknowledged after the kill is on
  the new primary.
"""
import os
import threading
import time
import urllib.request

import psycopg2
import pytest

from conftest import started_cluster
from lib.cluster import SUPERUSER, SUPERUSER_PW
from lib.haproxy import HAProxy, render
from lib.procs import LOOPBACK, Procs, wait_until

TTL = 4
LAG_LIMIT = 1048576       # the example's ?lag=1MB
WRITE_MB = 3              # written while replay is paused: well past the limit
ACK_AFTER_PROMOTION = 3.0  # the brief's bound: first acknowledged write after promotion


@pytest.fixture(scope="module")
def setup():
    with started_cluster("dbha-haproxy-", n=3, ttl=TTL, loop_wait=1, retry_timeout=1) as c:
        wd = c.workdir
        procs = Procs(wd)
        hp = HAProxy(procs, wd, c.nodes)
        try:
            hp.start()
            yield c, hp
        finally:
            hp.stop()
            procs.stop_all()


def connect(port, timeout=2):
    return psycopg2.connect(host=LOOPBACK, port=port, user=SUPERUSER, password=SUPERUSER_PW,
                            dbname="postgres", connect_timeout=timeout, sslmode="disable",
                            gssencmode="disable")


def server_of(port):
    """(server port, in recovery) of a fresh connection through HAProxy's port."""
    conn = connect(port)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT inet_server_port(), pg_is_in_recovery()")
            return cur.fetchone()
    finally:
        conn.close()


def settled(c, hp, primary, replicas):
    """HAProxy's checks agree with the cluster: the write backend has only
    the primary, the read backend exactly these replicas."""
    want_w, want_r = [primary.name], sorted(n.name for n in replicas)

    def ok():
        return hp.up("pg_primary") == want_w and hp.up("pg_replicas") == want_r
    try:
        wait_until(ok, 20, interval=0.2, what=f"haproxy: write {want_w}, read {want_r}")
    except AssertionError:
        print(f"pg_primary {hp.status('pg_primary')}, pg_replicas {hp.status('pg_replicas')}")
        raise


def test_example_config_renders_every_node():
    class N:
        def __init__(self, i):
            self.name, self.pg_port, self.api_port = f"node{i}", 20000 + i, 21000 + i
    nodes = [N(i) for i in (1, 2, 3)]
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "configs", "haproxy.cfg")) as f:
        text = f.read()
    out = render(text, nodes, {"pg_write": 1, "pg_read": 2, "stats": 3}, "/tmp/x.sock")
    for n in nodes:
        assert out.count(f"server {n.name} 127.0.0.1:{n.pg_port} ") == 2, out
        assert out.count(f"check port {n.api_port}") == 2, out
    assert "option httpchk OPTIONS /primary" in out
    assert "option httpchk GET /replica?lag=1MB" in out
    with pytest.raises(ValueError):
        render(text, nodes[:2], {"pg_write": 1, "pg_read": 2, "stats": 3}, "/tmp/x.sock")


def test_reads_avoid_a_replica_past_the_lag_bound(setup):
    c, hp = setup
    s = c.wait_healthy(timeout=60)
    leader = c.node(s["leader"])
    paused, other = sorted((n for n in c.nodes if n is not leader), key=lambda n: n.name)
    settled(c, hp, leader, [paused, other])

    # the write port reaches the primary, the read port both replicas in turn
    assert server_of(hp.write_port) == (leader.pg_port, False)
    seen = {server_of(hp.read_port) for _ in range(6)}
    assert seen == {(paused.pg_port, True), (other.pg_port, True)}, seen

    leader.sql("CREATE TABLE IF NOT EXISTS ballast (x text)")
    wait_until(lambda: all(n.sql("SELECT to_regclass('ballast') IS NOT NULL")[0][0]
                           for n in (paused, other)), 20, what="the table on both replicas")
    paused.sql("SELECT pg_wal_replay_pause()")
    try:
        t0 = time.monotonic()
        leader.sql("INSERT INTO ballast SELECT repeat('x', 1000) FROM generate_series(1, %s)",
                   (WRITE_MB * 1000,))
        settled(c, hp, leader, [other])
        print(f"\nthe paused replica left the read backend {time.monotonic() - t0:.2f} s after "
              f"the {WRITE_MB} MB write")
        code, _ = paused.api(f"/replica?lag={LAG_LIMIT}")
        assert code == 503
        paused_lsn = paused.sql("SELECT pg_last_wal_replay_lsn()")[0][0]
        behind = leader.sql("SELECT pg_current_wal_lsn() - %s::pg_lsn", (paused_lsn,))[0][0]
        assert behind > LAG_LIMIT, behind
        ports = [server_of(hp.read_port) for _ in range(20)]
        assert set(ports) == {(other.pg_port, True)}, ports
        # a write through the write port changes nothing: still the primary
        assert server_of(hp.write_port) == (leader.pg_port, False)
    finally:
        paused.sql("SELECT pg_wal_replay_resume()")
    t1 = time.monotonic()
    settled(c, hp, leader, [paused, other])
    print(f"it came back {time.monotonic() - t1:.2f} s after the resume")
    seen = {server_of(hp.read_port) for _ in range(6)}
    assert seen == {(paused.pg_port, True), (other.pg_port, True)}, seen


class HAWriter:
    """One client writing through HAProxy's write port: every attempt is
    recorded as (seq, t_send, t_ack, server port or None, error). The
    connection is kept until an error, then made again (bounded in count
    and time)."""

    def __init__(self, port, interval=0.02, max_seconds=120):
        self.port = port
        self.interval = interval
        self.max_seconds = max_seconds
        self.attempts = []
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        conn, end = None, time.monotonic() + self.max_seconds
        for seq in range(1, 100000):
            if self.stop_ev.is_set() or time.monotonic() > end:
                break
            t_send = time.monotonic()
            try:
                if conn is None:
                    conn = connect(self.port, timeout=1)
                    conn.autocommit = True
                    with conn.cursor() as cur:
                        cur.execute("SET statement_timeout = 1000")
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO ha_writes (seq) VALUES (%s) "
                                "RETURNING inet_server_port()", (seq,))
                    port = cur.fetchone()[0]
                rec = (seq, t_send, time.monotonic(), port, None)
            except psycopg2.Error as e:
                rec = (seq, t_send, time.monotonic(), None, str(e).strip().split("\n")[0])
                try:
                    if conn is not None:
                        conn.close()
                except psycopg2.Error:
                    pass
                conn = None
            with self.lock:
                self.attempts.append(rec)
            self.stop_ev.wait(self.interval if rec[3] else 0.05)
        if conn is not None:
            conn.close()

    def acked(self, after=0.0):
        with self.lock:
            return [a for a in self.attempts if a[3] is not None and a[2] > after]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the writer did not stop"


def is_primary(node):
    """When the node's agent says /primary and its PostgreSQL left recovery."""
    req = urllib.request.Request(f"http://{LOOPBACK}:{node.api_port}/primary", method="OPTIONS")
    try:
        with urllib.request.urlopen(req, timeout=0.5) as r:
            if r.status != 200:
                return False
    except OSError:
        return False
    return node.sql("SELECT NOT pg_is_in_recovery()")[0][0]


def test_writes_through_haproxy_resume_on_the_new_primary(setup):
    c, hp = setup
    s = c.wait_healthy(timeout=60)
    old = c.node(s["leader"])
    survivors = [n for n in c.nodes if n is not old]
    settled(c, hp, old, survivors)
    old.sql("CREATE TABLE IF NOT EXISTS ha_writes (seq bigint PRIMARY KEY, "
            "t timestamptz DEFAULT clock_timestamp())")
    wait_until(lambda: all(n.sql("SELECT to_regclass('ha_writes') IS NOT NULL")[0][0]
                           for n in survivors), 20, what="the table on both replicas")

    with HAWriter(hp.write_port) as w:
        wait_until(lambda: len(w.acked()) >= 20, 10, what="writes through haproxy")
        assert {a[3] for a in w.acked()} == {old.pg_port}
        t_kill = time.monotonic()
        old.kill_with_postgres()
        t_dead = time.monotonic()  # agent and PostgreSQL gone: no more acks from old

        def promoted():
            for n in survivors:
                try:
                    if is_primary(n):
                        return n
                except psycopg2.Error:
                    pass
            return None
        new = wait_until(promoted, TTL + 20, interval=0.05, what="a new primary")
        t_promoted = time.monotonic()
        # the poller above sees the promotion up to ~0.1 s late: the first
        # acknowledged write is looked for from the kill on (it may precede t_promoted)
        first = wait_until(lambda: min((a[2] for a in w.acked(after=t_dead)), default=None),
                           ACK_AFTER_PROMOTION + 10, interval=0.02,
                           what="a write acknowledged through haproxy after the kill")
        time.sleep(1)  # a few more writes on the new primary
    after_kill = w.acked(after=t_dead)
    errors = sorted({a[4] for a in w.attempts if a[4] and a[1] > t_kill})
    last_old = max(a[2] for a in w.acked() if a[3] == old.pg_port)
    print(f"\nkilled {old.name}; {new.name} primary {t_promoted - t_kill:.2f} s later; first "
          f"write acknowledged through haproxy {first - t_promoted:+.2f} s after the promotion; "
          f"no write acknowledged for {first - last_old:.2f} s; {len(after_kill)} writes "
          f"acknowledged after the kill; client errors: {errors[:6]}")
    assert first - t_promoted <= ACK_AFTER_PROMOTION, \
        f"first acknowledged write {first - t_promoted:.2f} s after the promotion"
    assert t_promoted - t_kill < TTL + 10
    # every write acknowledged after the kill was on the new primary, and is there
    assert after_kill and {a[3] for a in after_kill} == {new.pg_port}, \
        {a[3] for a in after_kill}
    seqs = [a[0] for a in after_kill]
    rows = new.sql("SELECT count(*) FROM ha_writes WHERE seq = ANY(%s)", (seqs,))[0][0]
    assert rows == len(seqs)
    # the checks follow: the write backend has only the new primary
    wait_until(lambda: hp.up("pg_primary") == [new.name], 10, interval=0.2,
               what=f"haproxy's write backend: {new.name} only")
    assert server_of(hp.write_port) == (new.pg_port, False)
