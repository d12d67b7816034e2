"""The Python binding (python/dbha, ctypes over the tested build's libdbha.so)
against real etcd and three real PostgreSQL 15 nodes: the topology names the
leader, the primary DSN reaches a writable server and the replica DSN a
replica through psycopg2, a callback that raises does not stop the client,
and examples/python/app.py (writes to the primary, read-your-writes reads)
follows a kill -9 failover: its change callback names the new leader and its
writes land there; no read is older than the write before it.

The binding runs in child processes (python3 with the build's libdbha.so):
an ASan build's library needs libasan preloaded into a python that is not
built with it, which only a fresh process can have. LeakSanitizer is off in
them (the interpreter keeps its memory at exit); ASan and UBSan reports fail
the test as for every other process."""
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import sanitizer_lines, started_cluster
from lib.cluster import SUPERUSER, SUPERUSER_PW
from lib.etcd_cluster import b64
from lib.procs import build_dir, wait_until

pytestmark = pytest.mark.concurrent

TTL = 4
CONNINFO = f"user={SUPERUSER} password={SUPERUSER_PW} dbname=postgres"
REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
APP = os.path.join(REPO, "examples", "python", "app.py")


def library():
    d = build_dir()
    libs = sorted(f for f in os.listdir(d) if f.startswith("libdbha.so"))
    assert libs, f"no libdbha.so in {d}"
    return os.path.join(d, libs[-1])


def child_env():
    """Environment of a python3 that loads the tested libdbha.so."""
    lib = library()
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "python"), DBHA_LIBRARY=lib,
               PYTHONDONTWRITEBYTECODE="1")
    needed = subprocess.run(["readelf", "-d", lib], capture_output=True, text=True).stdout
    if "libasan" in needed:
        asan = subprocess.run(["cc", "-print-file-name=libasan.so"], capture_output=True,
                              text=True).stdout.strip()
        assert os.path.isabs(asan), asan
        env["LD_PRELOAD"] = asan
        env["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    return env


def run_py(code, *args, timeout=60):
    r = subprocess.run([sys.executable, "-c", code, *args], env=child_env(),
                       capture_output=True, text=True, timeout=timeout)
    san = [l for l in r.stderr.splitlines() if any(m.decode() in l for m in (
        b"runtime error: ", b"ERROR: AddressSanitizer", b"SUMMARY: UndefinedBehaviorSanitizer"))]
    assert not san, r.stderr[-5000:]
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def events(path):
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    return out


@pytest.fixture(scope="module")
def cluster():
    with started_cluster("dbha-pybind-", n=3, ttl=TTL, loop_wait=1, retry_timeout=1) as c:
        wait_until(lambda: (lambda d: d and d["primary"] and len(d["replicas"]) == 2 and all(
            r["state"] == "streaming" for r in d["replicas"]))(
            json.loads(c.etcd_get("topology") or "null")), 20, interval=0.2,
            what="topology key with a primary and two streaming replicas")
        yield c


ROUTING = r"""
import json, sys, psycopg2, dbha
etcd, scope, conninfo = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
with dbha.Client(etcd=etcd, scope=scope, conninfo=conninfo) as c:
    topo = c.wait_topology(timeout=10)
    def ask(dsn):
        conn = psycopg2.connect(dsn, connect_timeout=3)
        with conn.cursor() as cur:
            cur.execute("SELECT pg_is_in_recovery(), current_setting('port')::int")
            row = cur.fetchone()
        conn.close()
        return row
    w = psycopg2.connect(c.primary_dsn(connect_timeout=3))
    w.autocommit = True
    with w.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS pybind_ryw (v int)")
        cur.execute("INSERT INTO pybind_ryw VALUES (42)")
    ryw = []
    for i in range(6):
        with w.cursor() as cur:
            cur.execute("INSERT INTO pybind_ryw VALUES (%s)", (i,))
        lsn = dbha.current_lsn(w)
        r, node = c.connect_ryw(psycopg2.connect, lsn, connect_timeout=3)
        with r.cursor() as cur:
            cur.execute("SELECT count(*) FROM pybind_ryw WHERE v = %s", (i,))
            seen = cur.fetchone()[0]
            cur.execute("SELECT pg_is_in_recovery()")
            ryw.append((node["name"], node["role"], seen, cur.fetchone()[0]))
        r.close()
    w.close()
    print(json.dumps({"topology": topo, "primary": c.primary(), "primary_pg": ask(c.primary_dsn()),
                      "replica": c.replica(), "replica_pg": ask(c.replica_dsn()),
                      "healthy": [n["name"] for n in c.healthy_replicas()],
                      "lsn": dbha.lsn_format(lsn), "ryw": ryw}))
"""


def test_topology_and_routing(cluster):
    c = cluster
    leader = c.primary()
    # one replica does not replay: a read-your-writes read never goes there
    paused = sorted(n.name for n in c.nodes if n is not leader)[1]
    c.node(paused).sql("SELECT pg_wal_replay_pause()")
    try:
        wait_until(lambda: c.node(paused).sql(
            "SELECT pg_get_wal_replay_pause_state()")[0][0] == "paused", 10, what="paused")
        r = run_py(ROUTING, ",".join(c.etcd.endpoints), c.scope, CONNINFO)
    finally:
        c.node(paused).sql("SELECT pg_wal_replay_resume()")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    topo = out["topology"]
    assert topo["leader"] == leader.name and topo["primary"]["name"] == leader.name, topo
    assert topo["scope"] == c.scope and topo["version"] >= 1 and topo["timeline"] >= 1, topo
    assert topo["primary"]["port"] == leader.pg_port
    assert sorted(x["name"] for x in topo["replicas"]) == sorted(
        n.name for n in c.nodes if n is not leader), topo
    assert all(x["state"] == "streaming" for x in topo["replicas"]), topo
    # the primary DSN reaches the leader's writable server, the replica DSN a replica
    assert out["primary"]["name"] == leader.name
    assert out["primary_pg"] == [False, leader.pg_port], out
    assert out["replica"]["name"] != leader.name
    # (replica() and replica_dsn() are two round-robin picks: any replica)
    assert out["replica_pg"][0] is True, out
    assert out["replica_pg"][1] in [n.pg_port for n in c.nodes if n is not leader], out
    assert len(out["healthy"]) == 2, out
    # read-your-writes: each row written just before is seen, on the node
    # named, never on the replica whose replay is paused
    assert len(out["ryw"]) == 6, out
    assert all(seen == 1 for _, _, seen, _ in out["ryw"]), out["ryw"]
    assert all(rec == (role == "replica") for _, role, _, rec in out["ryw"]), out["ryw"]
    assert paused not in {name for name, _, _, _ in out["ryw"]}, out["ryw"]
    assert "replica" in {role for _, role, _, _ in out["ryw"]}, out["ryw"]


CALLBACKS = r"""
import json, sys, threading, dbha
etcd, scope = sys.argv[1].split(","), sys.argv[2]
seen, done = [], threading.Event()
raised = []
def boom(topo):
    raised.append(topo["version"])
    raise RuntimeError("a callback that fails")
def record(topo):
    seen.append((topo["version"], topo["leader"], threading.current_thread() is not
                 threading.main_thread()))
    if topo["version"] >= 3:
        done.set()
c = dbha.Client(etcd=etcd, scope=scope)
c.on_change(boom)
c.on_change(record)
print("ready", flush=True)
ok = done.wait(20)
try:
    c.wait_topology(after_version=99, timeout=0.3)
    timeout = None
except TimeoutError as e:
    timeout = e.errno
c.close()
print(json.dumps({"ok": ok, "seen": seen, "raised": raised, "timeout_errno": timeout}))
"""


def put_key(etcd, key, value):
    status, body = etcd.api("kv/put", {"key": b64(key), "value": b64(value)})
    assert status == 200, body


def test_callback_exception_does_not_stop_client(cluster, workdir):
    """Three versions of a hand-written topology (scope "pyfake"): a callback
    that raises is reported and the client goes on delivering the next ones
    to every callback, on its own thread."""
    c = cluster
    doc = {"scope": "pyfake", "leader": "a", "timeline": 1,
           "primary": {"name": "a", "host": "127.0.0.1", "port": 1}, "replicas": []}
    put_key(c.etcd, "/service/pyfake/leader", "a")
    put_key(c.etcd, "/service/pyfake/topology", json.dumps(dict(doc, version=1)))
    err = os.path.join(workdir, "callbacks.err")
    with open(err, "w") as ef:
        p = subprocess.Popen([sys.executable, "-c", CALLBACKS, ",".join(c.etcd.endpoints),
                              "pyfake"], env=child_env(), stdout=subprocess.PIPE, stderr=ef,
                             text=True, start_new_session=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        for v in (2, 3):
            time.sleep(0.5)
            put_key(c.etcd, "/service/pyfake/topology", json.dumps(dict(doc, version=v)))
        out, _ = p.communicate(timeout=40)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, open(err).read()[-3000:]
    res = json.loads(out.strip().splitlines()[-1])
    assert res["ok"], res
    versions = [v for v, _, _ in res["seen"]]
    assert versions == sorted(versions) and versions[-2:] == [2, 3], res
    assert all(leader == "a" and other_thread for _, leader, other_thread in res["seen"]), res
    assert res["raised"][-2:] == [2, 3], res
    assert res["timeout_errno"] == 110, res  # ETIMEDOUT as TimeoutError
    text = open(err).read()
    assert text.count("RuntimeError: a callback that fails") == len(res["raised"]), text[-3000:]
    assert not sanitizer_lines(err), text[-3000:]


def test_example_follows_failover(cluster, workdir):
    c = cluster
    old = c.primary()
    duration = 25
    log = os.path.join(workdir, "app.log")
    with open(log, "wb") as out:
        p = subprocess.Popen([sys.executable, APP, "--etcd", ",".join(c.etcd.endpoints),
                              "--scope", c.scope, "--conninfo", CONNINFO, "--duration",
                              str(duration), "--interval-ms", "50"], env=child_env(),
                             stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: len([e for e in events(log) if e["event"] == "write" and e["ok"]])
                   >= 10, 30, what="10 writes of the example")
        kill_at = time.time()
        old.kill_with_postgres()
        s = wait_until(lambda: (lambda st: st if st["leader"] not in (None, old.name)
                                else None)(c.status()), 30, interval=0.2, what="new leader")
        new_leader = s["leader"]
        wait_until(lambda: [e for e in events(log) if e["event"] == "write" and e["ok"]
                            and e["node"] == new_leader], 30, what="a write on the new leader")
        assert p.wait(timeout=duration + 30) == 0, open(log, errors="replace").read()[-3000:]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert not sanitizer_lines(log), open(log, errors="replace").read()[-3000:]
    ev = events(log)
    topo = [e for e in ev if e["event"] == "topology"]
    writes = [e for e in ev if e["event"] == "write"]
    reads = [e for e in ev if e["event"] == "read"]
    summary = [e for e in ev if e["event"] == "summary"][-1]
    # before the kill: the primary is the old leader, every write lands there
    assert topo and topo[0]["leader"] == old.name and topo[0]["primary"] == old.name, topo[:2]
    before = [e for e in writes if e["ts"] < kill_at]
    assert len(before) >= 10 and all(e["ok"] and e["node"] == old.name for e in before), \
        [e for e in before if not e["ok"] or e["node"] != old.name][:3]
    # the change callback named the new leader after the kill
    changed = [e for e in topo if e["source"] == "callback" and e["ts"] > kill_at
               and e["primary"] == new_leader]
    assert changed, topo
    assert topo[-1]["primary"] == new_leader, topo[-3:]
    # then the primary DSN reaches the new leader, and only it
    after = [e for e in writes if e["ts"] > changed[0]["ts"] + 1.0]
    assert len(after) >= 5 and all(e["ok"] and e["node"] == new_leader for e in after), \
        [e for e in after if not e["ok"] or e["node"] != new_leader][:3]
    rows = {r[0] for r in c.node(new_leader).sql("SELECT seq FROM dbha_python_example")}
    assert {e["seq"] for e in after} <= rows
    # read-your-writes: a read never misses the write before it, except writes
    # the asynchronous failover lost (acknowledged by the old primary only)
    lost = {e["seq"] for e in writes if e["ok"] and e["seq"] not in rows}
    assert all(e["ts"] < kill_at + 0.5 or e["node"] == old.name for e in writes
               if e["seq"] in lost), lost
    ok_reads = [e for e in reads if e["ok"]]
    stale = [e for e in ok_reads if e["stale"] and e["want_seq"] not in lost]
    assert not stale, stale[:5]
    assert [e for e in ok_reads if e["role"] == "replica" and e["ts"] < kill_at], \
        "no read-your-writes read used a replica"
    assert [e for e in ok_reads if e["ts"] > changed[0]["ts"] + 1.0], "no read after the failover"
    assert summary["writes_ok"] == len([e for e in writes if e["ok"]]), summary
    print(f"\npython binding: {len(writes)} writes ({summary['writes_failed']} failed), "
          f"{len(ok_reads)} reads ({summary['reads_from_replica']} from a replica, "
          f"{len(stale)} stale), {len(lost)} lost by the asynchronous failover; callback "
          f"named {new_leader} {changed[0]['ts'] - kill_at:.2f} s after the kill")


# The binding's ctypes structures mirror include/dbha/dbha.h by hand: each
# field's offset and size and each structure's size must be the compiler's.
STRUCTS = {"_Error": "DbhaError", "_Node": "DbhaNode", "_Topology": "DbhaTopology",
           "_Target": "DbhaTarget", "_Stats": "DbhaClientStats", "_Options": "DbhaClientOptions"}

LAYOUT = """
import json, dbha
out = {}
for py in %r:
    cls = getattr(dbha, py)
    out[py] = {"size": dbha.ctypes.sizeof(cls),
               "fields": {f[0]: [getattr(cls, f[0]).offset, getattr(cls, f[0]).size]
                          for f in cls._fields_}}
print(json.dumps(out))
"""


def test_structures_match_the_header(workdir):
    py = json.loads(run_py(LAYOUT % (list(STRUCTS),)).stdout)
    lines = ["#include <stddef.h>", "#include <stdio.h>", '#include "dbha/dbha.h"',
             "int main(void) {"]
    for p, c in STRUCTS.items():
        lines.append(f'printf("{p} size %zu\\n", sizeof({c}));')
        for f in py[p]["fields"]:
            lines.append(f'printf("{p} {f} %zu %zu\\n", offsetof({c}, {f}), '
                         f'sizeof((({c} *)0)->{f}));')
    lines.append("return 0; }")
    src = os.path.join(workdir, "layout.c")
    with open(src, "w") as f:
        f.write("\n".join(lines) + "\n")
    exe = os.path.join(workdir, "layout")
    r = subprocess.run(["cc", "-std=c11", "-I", os.path.join(REPO, "include"), src, "-o", exe],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr  # a field the header does not have
    want = {}
    for line in subprocess.run([exe], capture_output=True, text=True, check=True,
                               timeout=10).stdout.splitlines():
        p, f, *n = line.split()
        want.setdefault(p, {"size": None, "fields": {}})
        if f == "size":
            want[p]["size"] = int(n[0])
        else:
            want[p]["fields"][f] = [int(x) for x in n]
    assert py == want
