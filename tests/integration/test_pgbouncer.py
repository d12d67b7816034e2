"""`dbctl route pgbouncer` and `dbctl dsn` against a real pgbouncer 1.18 in
front of a three-node cluster (ttl 4, loop_wait 1): the [databases] entries
follow the primary and a healthy replica, every other byte of the ini file is
kept, writes through pgbouncer resume within the failover time + 3 s after a
kill -9 of the leader, and a multi-host DSN (also one taken before the
failover) reaches the new primary with plain psql.

One cluster for the module and one failover; the tests run in file order.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import psycopg2
import pytest

from conftest import started_cluster
from lib.cluster import SUPERUSER, SUPERUSER_PW
from lib.etcd_cluster import b64
from lib.fake_cluster import FakeCluster
from lib.pgbouncer import PGBOUNCER, Bouncer
from lib.procs import LOOPBACK, binary, wait_until

TTL = 4
OUTAGE_MARGIN = 3.0  # writes through pgbouncer resume within failover time + this

pytestmark = pytest.mark.skipif(not os.path.exists(PGBOUNCER), reason="pgbouncer not installed")

def sections(text):
    """{section name: its lines} (lines before the first section under "")."""
    out, cur = {"": []}, ""
    for line in text.splitlines(keepends=True):
        m = re.match(r"\s*\[([^\]]*)\]", line)
        if m:
            cur = m.group(1).strip().lower()
            out.setdefault(cur, [])
        out[cur].append(line)
    return out


def entry(text, name):
    """{param: value} of the [databases] entry name (unquoted values only)."""
    for line in sections(text).get("databases", []):
        m = re.match(r"\s*(\S+)\s*=(.*)$", line)
        if m and m.group(1) == name:
            return dict(p.split("=", 1) for p in m.group(2).split())
    return None


@pytest.fixture(scope="module")
def cluster():
    with started_cluster("dbha-pgb-", n=3, ttl=TTL, loop_wait=1, retry_timeout=1) as c:
        yield c


@pytest.fixture(scope="module")
def bouncer(cluster):
    b = Bouncer(cluster)
    b.start()
    yield b
    b.stop()


def route(cluster, bouncer, *args, timeout=30):
    return cluster.dbctl("route", "pgbouncer", "--ini", bouncer.ini, *args, timeout=timeout)


def test_route_once(cluster, bouncer):
    s = cluster.wait_healthy()
    leader = cluster.node(s["leader"])
    replicas = {m["port"] for m in s["members"] if m["state"] == "streaming"}

    def topology_streaming():
        doc = json.loads(cluster.etcd_get("topology") or "null")
        return doc and doc["primary"] and doc["primary"]["port"] == leader.pg_port and \
            {r["port"] for r in doc["replicas"] if r["state"] == "streaming"} == replicas
    # the leader rewrites the key within a loop of the member keys' change
    wait_until(topology_streaming, 10, what="the topology key with both replicas streaming")

    r = route(cluster, bouncer)
    assert r.returncode == 0, r.stderr
    text = bouncer.text()
    w, ro = entry(text, "postgres"), entry(text, "postgres_ro")
    assert w == {"host": LOOPBACK, "port": str(leader.pg_port), "dbname": "postgres",
                 "user": SUPERUSER, "pool_size": "4"}, text
    assert ro["host"] == LOOPBACK and int(ro["port"]) in replicas and ro["dbname"] == "postgres"
    # the entry's own layout is kept, and every other section byte for byte
    assert f"postgres = host=127.0.0.1 port={leader.pg_port} dbname=postgres user={SUPERUSER}" \
           "   pool_size=4\n" in text
    before, after = sections(bouncer.original), sections(text)
    for name in ("", "pgbouncer", "users"):
        assert after[name] == before[name], name
    assert oct(os.stat(bouncer.ini).st_mode & 0o777) == "0o644"
    # RELOAD logged in with the admin's password from auth_file (SCRAM)
    assert "reloaded" in r.stderr, r.stderr

    # RELOAD ran: pgbouncer routes both entries
    assert bouncer.query("SELECT pg_is_in_recovery()") == [(False,)]
    assert bouncer.query("SELECT pg_is_in_recovery()", db="postgres_ro") == [(True,)]

    # nothing to change: the file is not written again (same inode)
    ino = os.stat(bouncer.ini).st_ino
    r = route(cluster, bouncer)
    assert r.returncode == 0, r.stderr
    assert os.stat(bouncer.ini).st_ino == ino and bouncer.text() == text


def test_route_usage(cluster, bouncer):
    for verb in ("route", "dsn"):
        p = subprocess.run([binary("dbctl"), verb, "--help"], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 0 and f" {verb} " in p.stdout.splitlines()[0], p.stdout
    assert cluster.dbctl("route").returncode == 2
    assert cluster.dbctl("route", "haproxy", "--ini", bouncer.ini).returncode == 2
    assert cluster.dbctl("route", "pgbouncer").returncode == 2
    r = route(cluster, bouncer, "--write-db", "x", "--read-db", "x")
    assert r.returncode == 2 and "twice" in r.stderr, r.stderr
    r = cluster.dbctl("route", "pgbouncer", "--ini", os.path.join(bouncer.dir, "nope.ini"))
    assert r.returncode == 2, r.stderr
    # the file changes but RELOAD is refused (no such user in auth_file): exit 1
    ini = os.path.join(bouncer.dir, "reload.ini")
    with open(ini, "w") as f:
        f.write(bouncer.original)
    r = cluster.dbctl("route", "pgbouncer", "--ini", ini, "--admin-user", "nobody")
    assert r.returncode == 1 and "admin console" in r.stderr, r.stderr
    assert entry(open(ini).read(), "postgres")["port"] != "1"


def test_route_from_topology_key(cluster, bouncer):
    """A hand-written topology key of another scope (no agents there): the
    key is what counts, unhealthy replicas are skipped, reads fall back to
    the primary, and without a primary the write entry stays."""
    ini = os.path.join(bouncer.dir, "topo.ini")
    shutil.copy(bouncer.ini, ini)
    key = "/service/pgbtopo/topology"

    def put(doc):
        status, body = cluster.etcd.api("kv/put", {"key": b64(key), "value": b64(json.dumps(doc))})
        assert status == 200, body
        # the key is followed only while the leader key names its leader
        leader = b64("/service/pgbtopo/leader")
        status, body = cluster.etcd.api("kv/put", {"key": leader, "value": b64(doc["leader"])}) \
            if doc["leader"] else cluster.etcd.api("kv/deleterange", {"key": leader})
        assert status == 200, body

    def run():
        return cluster.dbctl("--scope", "pgbtopo", "route", "pgbouncer", "--ini", ini,
                             "--no-reload", "--write-db", "app", "--dbname", "appdb")

    def rep(name, port, state="streaming", lag=0, nlb=False):
        return {"name": name, "host": "127.0.0.2", "port": port, "state": state,
                "lag_bytes": lag, "sync": False, "noloadbalance": nlb, "tags": {}}

    primary = {"name": "a", "host": "127.0.0.2", "port": 7001, "api_url": "http://x/patroni"}
    put({"version": 1, "scope": "pgbtopo", "leader": "a", "timeline": 1, "primary": primary,
         "replicas": [rep("b", 7002, lag=1 << 20), rep("c", 7003, nlb=True),
                      rep("d", 7004, state="running", lag=None), rep("e", 7005, lag=10)]})
    r = run()
    assert r.returncode == 0, r.stderr
    text = open(ini).read()
    assert entry(text, "app") == {"host": "127.0.0.2", "port": "7001", "dbname": "appdb"}
    assert entry(text, "app_ro") == {"host": "127.0.0.2", "port": "7005", "dbname": "appdb"}
    # the entries of the real cluster are untouched
    assert entry(text, "postgres") == entry(bouncer.text(), "postgres")

    put({"version": 2, "scope": "pgbtopo", "leader": "a", "timeline": 1, "primary": primary,
         "replicas": [rep("e", 7005, state="stopped")]})
    assert run().returncode == 0
    assert entry(open(ini).read(), "app_ro")["port"] == "7001"  # fallback to the primary

    put({"version": 3, "scope": "pgbtopo", "leader": None, "timeline": None, "primary": None,
         "replicas": [rep("b", 7002)]})
    r = run()
    assert r.returncode == 1 and "no primary" in r.stderr, r.stderr
    text = open(ini).read()
    assert entry(text, "app")["port"] == "7001" and entry(text, "app_ro")["port"] == "7002"
    status, _ = cluster.etcd.api("kv/deleterange", {"key": b64(key)})
    assert status == 200


def test_watch_follows_key(cluster, bouncer):
    """--watch on a hand-written key: each rewrite of the key reaches the
    file within a second or so; SIGINT ends it with status 0."""
    ini = os.path.join(bouncer.dir, "watch.ini")
    shutil.copy(bouncer.original_path, ini)
    key = "/service/pgbwatch/topology"

    def put(version, replicas):
        doc = {"version": version, "scope": "pgbwatch", "leader": "a", "timeline": 1,
               "primary": {"name": "a", "host": "127.0.0.3", "port": 7101},
               "replicas": [{"name": n, "host": "127.0.0.3", "port": p, "state": st,
                             "lag_bytes": 0, "noloadbalance": False} for n, p, st in replicas]}
        status, body = cluster.etcd.api("kv/put", {"key": b64(key), "value": b64(json.dumps(doc))})
        assert status == 200, body

    def ports():
        text = open(ini).read()
        w, ro = entry(text, "postgres"), entry(text, "postgres_ro")
        return (w["port"], ro["port"]) if w and ro else None

    # the key is followed only while the leader key names its leader
    status, body = cluster.etcd.api("kv/put", {"key": b64("/service/pgbwatch/leader"),
                                               "value": b64("a")})
    assert status == 200, body
    put(1, [("b", 7102, "streaming"), ("c", 7103, "streaming")])
    p = cluster.procs.spawn("dbctl-watch", [
        binary("dbctl"), "--etcd", ",".join(cluster.etcd.endpoints), "--scope", "pgbwatch",
        "route", "pgbouncer", "--ini", ini, "--watch", "--no-reload"])
    try:
        wait_until(lambda: ports() == ("7101", "7102"), 10, what="the first routing")
        put(2, [("b", 7102, "stopped"), ("c", 7103, "streaming")])
        t0 = time.monotonic()
        wait_until(lambda: ports() == ("7101", "7103"), 10, what="the read entry moved")
        assert time.monotonic() - t0 < 3
        assert sections(open(ini).read())["pgbouncer"] == sections(bouncer.original)["pgbouncer"]
    finally:
        rc = cluster.procs.stop(p, signal.SIGINT, timeout=10)
        cluster.etcd.api("kv/deleterange", {"key": b64(key)})
        cluster.etcd.api("kv/deleterange", {"key": b64("/service/pgbwatch/leader")})
    assert rc == 0


def test_route_patroni_cluster(cluster, bouncer):
    """Keys as Patroni writes them, no topology key: the same document is
    built from the leader and member keys (n1 leads; n3 streams, caught up;
    n2 runs 3 MB behind)."""
    fake = FakeCluster(cluster.etcd, "pgbpatroni").write()
    ini = os.path.join(bouncer.dir, "patroni.ini")
    shutil.copy(bouncer.ini, ini)
    r = fake.dbctl("route", "pgbouncer", "--ini", ini, "--no-reload", "--write-db", "app")
    assert r.returncode == 0, r.stderr
    assert "no topology key" in r.stderr
    text = open(ini).read()
    assert entry(text, "app") == {"host": LOOPBACK, "port": "5432", "dbname": "postgres"}
    assert entry(text, "app_ro") == {"host": LOOPBACK, "port": "5434", "dbname": "postgres"}
    fake.delete("leader")
    r = fake.dbctl("route", "pgbouncer", "--ini", ini, "--no-reload", "--write-db", "app")
    assert r.returncode == 1 and "no primary" in r.stderr, r.stderr
    assert open(ini).read() == text


class PgbWriter:
    """INSERTs through pgbouncer every ~20 ms; records (seq, t_send, t_ack, ok)."""

    def __init__(self, bouncer):
        self.bouncer = bouncer
        self.attempts = []
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        conn, seq = None, 0
        deadline = time.monotonic() + 120  # bounded whatever happens
        while not self.stop_ev.is_set() and time.monotonic() < deadline:
            seq += 1
            t_send = time.monotonic()
            try:
                if conn is None:
                    conn = self.bouncer.connect(timeout=1)
                    conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO pgb_writes (seq) VALUES (%s)", (seq,))
                self.attempts.append((seq, t_send, time.monotonic(), True))
            except psycopg2.Error:
                self.attempts.append((seq, t_send, time.monotonic(), False))
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(0.02)
        if conn is not None:
            conn.close()

    def acked(self, after=0.0):
        return [a for a in self.attempts if a[3] and a[1] >= after]


def test_failover_through_pgbouncer(cluster, bouncer):
    old = cluster.primary()
    old.sql("CREATE TABLE IF NOT EXISTS pgb_writes (seq int PRIMARY KEY, at timestamptz "
            "DEFAULT now())")
    watcher = cluster.procs.spawn("dbctl-route", [
        binary("dbctl"), "--etcd", ",".join(cluster.etcd.endpoints), "--scope", cluster.scope,
        "route", "pgbouncer", "--ini", bouncer.ini, "--watch"])
    w = PgbWriter(bouncer)
    w.thread.start()
    try:
        wait_until(lambda: len(w.acked()) >= 10, 15, what="writes through pgbouncer")
        # the agents write the topology key: dbctl follows it, not the member keys
        assert cluster.etcd_get("topology")
        assert not cluster.procs.log_contains("dbctl-route", "no topology key")
        before = bouncer.text()
        survivors = [n for n in cluster.nodes if n is not old]

        old.kill_with_postgres()
        t_kill = time.monotonic()

        def promoted():
            for n in survivors:
                try:
                    if n.sql("SELECT pg_is_in_recovery()") == [(False,)]:
                        return n
                except psycopg2.Error:
                    pass
            return None
        new = wait_until(promoted, 30, interval=0.05, what="a promoted survivor")
        t_promoted = time.monotonic()
        wait_until(lambda: w.acked(after=t_kill), 30, interval=0.05,
                   what="a write through pgbouncer after the kill")
        first = w.acked(after=t_kill)[0]
        wait_until(lambda: len(w.acked(after=t_kill)) >= 10, 10, what="writes keep flowing")
    finally:
        w.stop_ev.set()
        w.thread.join(10)
    failover = t_promoted - t_kill
    outage = first[2] - t_kill
    print(f"\nfailover (kill -> promotion seen) {failover:.2f} s, "
          f"write outage through pgbouncer {outage:.2f} s")
    assert outage <= failover + OUTAGE_MARGIN, (failover, outage)

    # every write acknowledged after the kill is on the new primary
    seqs = [a[0] for a in w.acked(after=t_kill)]
    rows = new.sql("SELECT count(*) FROM pgb_writes WHERE seq = ANY(%s)", (seqs,))
    assert rows == [(len(seqs),)]

    # the ini names the new primary; everything but [databases] is unchanged
    text = bouncer.text()
    assert entry(text, "postgres")["port"] == str(new.pg_port), text
    assert entry(text, "postgres_ro")["port"] != str(old.pg_port), text
    b, a = sections(before), sections(text)
    for name in ("", "pgbouncer", "users"):
        assert a[name] == b[name], name

    # SIGTERM: a clean exit 0
    assert cluster.procs.stop(watcher, signal.SIGTERM, timeout=10) == 0
    assert cluster.procs.log_contains("dbctl-route", "stopped following")


def psql(dsn, sql):
    env = dict(os.environ, PGPASSWORD=SUPERUSER_PW)
    return subprocess.run(["psql", "-X", "-At", f"{dsn} user={SUPERUSER} dbname=postgres",
                           "-c", sql], capture_output=True, text=True, timeout=30, env=env)


def test_dsn_multi_host(cluster):
    """After the failover above: the DSN dbctl prints now, and the one taken
    before with the dead node listed first, both reach the new primary."""
    s = cluster.wait_healthy(replicas=1)
    r = cluster.dbctl("dsn", "--role", "primary")
    assert r.returncode == 0, r.stderr
    dsn = r.stdout.strip()
    hosts = re.search(r"host=(\S+)", dsn).group(1).split(",")
    ports = re.search(r"port=(\S+)", dsn).group(1).split(",")
    assert len(hosts) == len(ports) >= 2
    assert ports[0] == str(cluster.node(s["leader"]).pg_port)
    assert "target_session_attrs=read-write" in dsn and "connect_timeout=3" in dsn
    p = psql(dsn, "SELECT pg_is_in_recovery()")
    assert p.returncode == 0 and p.stdout.strip() == "f", p.stderr

    # an application's static DSN that lists the dead old primary first
    dead = [n for n in cluster.nodes if n.proc is None]
    assert dead
    all_nodes = dead + [n for n in cluster.nodes if n.proc is not None]
    static = (f"host={','.join([LOOPBACK] * len(all_nodes))} "
              f"port={','.join(str(n.pg_port) for n in all_nodes)} "
              "target_session_attrs=read-write connect_timeout=2")
    t0 = time.monotonic()
    p = psql(static, "SELECT pg_is_in_recovery()")
    assert p.returncode == 0 and p.stdout.strip() == "f", p.stderr
    assert time.monotonic() - t0 < 10

    for role, want in (("replica", "t"), ("prefer-replica", "t"), ("any", None)):
        r = cluster.dbctl("dsn", "--role", role, "--connect-timeout", "0")
        assert r.returncode == 0 and "connect_timeout" not in r.stdout, r.stdout
        p = psql(r.stdout.strip(), "SELECT pg_is_in_recovery()")
        assert p.returncode == 0, p.stderr
        if want:
            assert p.stdout.strip() == want, (role, p.stdout)
    assert cluster.dbctl("dsn", "--role", "leader").returncode == 2
    assert cluster.dbctl("dsn", "--connect-timeout", "x").returncode == 2
