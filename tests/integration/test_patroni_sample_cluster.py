"""Patroni's own three sample configurations (tests/patroni-configs/
patroni-postgres0.yml, -1, -2: the cluster "batman" that Patroni's docs
start) run as a three-node dbha cluster, changed only where this machine
needs it: the ports (8008-8010 and 5432-5434 become free ones), the etcd
endpoint, and the passfile path (/tmp/pgpassN, shared by every test run,
moves into the test's directory). Everything else is as published: the
relative data_dir (data/postgresqlN, under the agent's working directory),
unix_socket_directories '..', the cluster's pg_hba in bootstrap.dcs
(md5, replication from 127.0.0.1 only), initdb's data-checksums,
use_pg_rewind with a rewind user, ttl 30 and loop_wait 10.

Checked: the members replicate through exactly that pg_hba (written to each
data directory, the same on every member); checksums are on; the relative
paths land where Patroni puts them; the roles the file names log in with
their passwords; and after kill -9 of the primary a replica takes over, and
the old primary rejoins through pg_rewind (not set aside and cloned).
"""
import glob
import json
import os
import tempfile

import psycopg2
import pytest

from conftest import sanitizer_lines
from lib.etcd_cluster import EtcdCluster
from lib.pg import PG_OS_USER, as_root, hand_to_pg_user, pid_alive
from lib.procs import LOOPBACK, Procs, binary, free_port, wait_until

pytestmark = pytest.mark.concurrent

CORPUS = os.path.join(os.path.dirname(__file__), "..", "patroni-configs")
HBA = ["host replication replicator 127.0.0.1/32 md5", "host all all 0.0.0.0/0 md5"]


class Member:
    def __init__(self, i, wd, endpoint):
        self.i, self.name = i, f"postgresql{i}"
        self.api_port, self.pg_port = free_port(), free_port()
        with open(os.path.join(CORPUS, f"patroni-postgres{i}.yml")) as f:
            text = f.read()
        for old, new in ((f"127.0.0.1:{8008 + i}", f"{LOOPBACK}:{self.api_port}"),
                         (f"127.0.0.1:{5432 + i}", f"{LOOPBACK}:{self.pg_port}"),
                         ("etcd3: {hosts: 127.0.0.1:2379}", f"etcd3: {{hosts: {endpoint}}}"),
                         (f"pgpass: /tmp/pgpass{i}", f"pgpass: {wd}/pgpass{i}")):
            assert text.count(old) >= 1, (self.name, old)
            text = text.replace(old, new)
        self.config_path = os.path.join(wd, f"postgres{i}.yml")
        with open(self.config_path, "w") as f:
            f.write(text)
        os.chmod(self.config_path, 0o644)
        self.data_dir = os.path.join(wd, "data", self.name)
        self.proc = None

    def connect(self, user="postgres", password="patroni", dbname="postgres"):
        return psycopg2.connect(host=LOOPBACK, port=self.pg_port, user=user, password=password,
                                dbname=dbname, connect_timeout=3, sslmode="disable",
                                gssencmode="disable")

    def sql(self, query):
        conn = self.connect()
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(query)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid")) as f:
                pid = int(f.readline())
            return pid if pid_alive(pid) else None
        except (OSError, ValueError):
            return None


@pytest.fixture(scope="module")
def batman():
    wd = tempfile.mkdtemp(prefix="dbha-batman-")
    os.chmod(wd, 0o755)
    procs = Procs(wd)
    etcd = EtcdCluster(procs, wd)
    etcd.start()
    hand_to_pg_user(os.path.join(wd, "data"))
    if as_root():  # the agents (as postgres) write their passfiles here
        hand_to_pg_user(wd)
    members = [Member(i, wd, etcd.endpoints[0]) for i in range(3)]

    def start(m):
        m.proc = procs.spawn(m.name, [binary("dbagent"), m.config_path], cwd=wd,
                             user=PG_OS_USER)

    for m in members:
        start(m)
    try:
        yield wd, procs, etcd, members, start
    finally:
        for m in members:
            if m.proc is not None:
                procs.stop(m.proc, timeout=60)
        for m in members:
            pid = m.postmaster_pid()
            if pid:
                os.kill(pid, 9)
        logs = sorted({procs.log_path(n) for n, _, _ in procs.procs})
        procs.stop_all()
        found = [f"{p}: {line}" for p in logs for line in sanitizer_lines(p)]
        print(f"\ncluster logs in {wd}")
        assert not found, "sanitizer report(s):\n" + "\n".join(found[:50])


def roles(etcd):
    """{member: (role, state)} from the members' keys."""
    out = {}
    for i in range(3):
        v = etcd.get(f"/service/batman/members/postgresql{i}")
        if v:
            d = json.loads(v)
            out[f"postgresql{i}"] = (d.get("role"), d.get("state"))
    return out


def healthy(etcd, n_replicas):
    r = roles(etcd)
    leader = etcd.get("/service/batman/leader")
    streaming = [k for k, v in r.items() if v[0] == "replica" and v[1] == "running"]
    return leader if leader and len(streaming) >= n_replicas else None


def replicating(m):
    return m.sql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")[0][0]


def test_patronis_sample_cluster(batman):
    wd, procs, etcd, members, start = batman
    leader = wait_until(lambda: healthy(etcd, 2), 180, interval=1,
                        what="batman: a leader and two replicas")
    lm = next(m for m in members if m.name == leader)
    wait_until(lambda: replicating(lm) == 2, 60, what="two replicas streaming")
    for m in members:
        # the relative paths: data/postgresqlN under the working directory,
        # the socket in its parent ('..')
        assert os.path.isfile(os.path.join(m.data_dir, "PG_VERSION")), m.name
        assert os.path.exists(os.path.join(wd, "data", f".s.PGSQL.{m.pg_port}")), m.name
        # the cluster's pg_hba, as written
        with open(os.path.join(m.data_dir, "pg_hba.conf")) as f:
            lines = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
        assert lines == HBA, (m.name, lines)
        assert m.sql("SHOW data_checksums") == [("on",)]
    # the roles the file names, with its passwords (md5 over TCP)
    lm.connect(user="replicator", password="rep-pass", dbname="postgres").close()
    lm.connect(user="rewind_user", password="rewind_password").close()
    with pytest.raises(psycopg2.OperationalError):
        lm.connect(password="wrong")

    lm.sql("CREATE TABLE gotham (i int)")
    lm.sql("INSERT INTO gotham SELECT generate_series(1, 50)")
    # kill -9 of the primary, agent and PostgreSQL: a replica takes over (ttl 30)
    pid = lm.postmaster_pid()
    procs.stop(lm.proc, sig=9)
    lm.proc = None
    os.kill(pid, 9)
    new = wait_until(lambda: (lambda l: l if l and l != leader else None)(
        etcd.get("/service/batman/leader")), 90, interval=1, what="a new leader")
    nm = next(m for m in members if m.name == new)
    wait_until(lambda: nm.sql("SELECT NOT pg_is_in_recovery()") == [(True,)], 60,
               what=f"{new} writable")
    assert nm.sql("SELECT count(*) FROM gotham") == [(50,)]
    nm.sql("INSERT INTO gotham VALUES (51)")
    # the old primary comes back through pg_rewind, as rewind_user
    start(lm)
    wait_until(lambda: healthy(etcd, 2) == new and replicating(nm) == 2, 180, interval=1,
               what=f"{leader} rejoined")
    assert procs.log_contains(leader, "rewinding against")
    assert not glob.glob(lm.data_dir + ".dbha-old-*")  # rewound, not set aside and cloned
    wait_until(lambda: lm.sql("SELECT count(*) FROM gotham") == [(51,)], 60,
               what=f"{leader} has the new row")
