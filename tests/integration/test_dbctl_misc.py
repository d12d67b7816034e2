"""dbctl status --watch --count against a cluster made of keys only (no
agent), then dbctl against one real three-node cluster (status -o yaml and
topology, query, version, remove).

Serial (not concurrent): `status --watch` is timed (two pauses of a second),
`version` must answer within its timeout with an agent SIGSTOPped, and the
topology key must not be rewritten over three idle seconds. Query and remove
share that cluster (remove ends it), so they stay beside them. The tests on
keys only that measure no time (status -o yaml, topology, the failover
checks, scheduled switchover and flush, remove, version, --help) are in
test_dbctl_misc_functional.py, in the concurrent pass."""
import json
import os
import signal
import subprocess
import time

import pytest
import yaml

from conftest import started_cluster
from lib.cluster import SUPERUSER_PW
from lib.etcd_cluster import EtcdCluster
from lib.fake_cluster import FakeCluster
from lib.procs import binary, wait_until


@pytest.fixture
def etcd(procs, workdir):
    return EtcdCluster(procs, workdir).start()


@pytest.fixture
def fake(etcd):
    return FakeCluster(etcd)


# ---- status ----

def test_status_watch_count(fake):
    fake.write()
    t0 = time.monotonic()
    p = fake.dbctl("status", "-o", "json", "--watch", "1", "--count", "3", timeout=20)
    took = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 3, p.stdout
    assert all(json.loads(line)["leader"] == "n1" for line in lines)
    assert 1.8 <= took < 10, took  # two pauses of a second, none after the last round
    p = fake.dbctl("status", "--watch", "1", "--count", "2", timeout=20)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("+ Cluster: batman") == 2
    for bad in (("--count", "2"), ("--watch", "1", "--count", "0"),
                ("--watch", "1", "--count", "x")):
        p = fake.dbctl("status", *bad)
        assert p.returncode == 2, (bad, p.stderr)


# ---- a real cluster ----

@pytest.fixture(scope="module")
def cluster():
    with started_cluster("dbha-dbctl-misc-", n=3, ttl=5, loop_wait=1, retry_timeout=1) as c:
        yield c


def dbctl_env(cluster, *args, env=None, timeout=30):
    argv = [binary("dbctl"), "--etcd", ",".join(cluster.etcd.endpoints), "--scope",
            cluster.scope, *args]
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("PATRONI_", "DBHA_", "PG"))}
    full.update(env or {})
    return subprocess.run(argv, capture_output=True, text=True, env=full, timeout=timeout)


def test_real_status_yaml_and_topology(cluster):
    s = cluster.wait_healthy(timeout=60)
    p = cluster.dbctl("status", "-o", "yaml")
    assert p.returncode == 0, p.stderr
    y = yaml.safe_load(p.stdout)
    assert y["leader"] == s["leader"] and len(y["members"]) == 3
    p = cluster.dbctl("topology")
    assert p.returncode == 0, p.stderr
    names = [line.split("|")[1].strip() for line in p.stdout.splitlines()[3:6]]
    replicas = sorted(n.name for n in cluster.nodes if n.name != s["leader"])
    assert names == [s["leader"]] + [f"+ {r}" for r in replicas], p.stdout
    # the leader's topology key: dbctl prints it, every agent serves it
    leader = cluster.node(s["leader"])

    # streaming and caught up (lag bucket 0): a replica still replaying the
    # WAL of its base backup moves between lag buckets, which is a change a
    # router acts on and rewrites the key
    def doc_ready():
        t = json.loads(cluster.dbctl("topology", "-o", "json").stdout)
        return t if t["version"] >= 1 and all(
            r["state"] == "streaming" and r["upstream"] == s["leader"]
            and isinstance(r["lag_bytes"], int) and r["lag_bytes"] < 64 * 1024
            for r in t["replicas"]) else None
    t = wait_until(doc_ready, 20, interval=0.2,
                   what="a topology key with streaming, caught-up replicas")
    assert json.loads(cluster.etcd_get("topology")) == t
    assert (t["scope"], t["leader"], t["timeline"]) == (cluster.scope, s["leader"], 1)
    assert t["primary"] == {"name": s["leader"], "host": "127.0.0.1", "port": leader.pg_port,
                            "api_url": f"http://127.0.0.1:{leader.api_port}/patroni"}
    assert [(r["name"], r["port"], r["sync"], r["noloadbalance"]) for r in t["replicas"]] == \
        [(r, cluster.node(r).pg_port, False, False) for r in replicas]
    assert all(isinstance(r["lag_bytes"], int) for r in t["replicas"])
    assert t["updated"].startswith("20")
    for n in cluster.nodes:
        wait_until(lambda: n.api_json("/topology")[1]["version"] >= t["version"], 5, interval=0.2,
                   what=f"GET /topology on {n.name}")
    # nothing a router acts on changes: the key is not rewritten every loop
    key = f"/service/{cluster.scope}/topology"
    rev = cluster.etcd.mod_revision(key)
    before = cluster.etcd_get("topology")
    time.sleep(3)
    assert cluster.etcd.mod_revision(key) == rev, (before, cluster.etcd_get("topology"))


def test_query(cluster, tmp_path):
    s = cluster.wait_healthy(timeout=60)
    pw = {"PGPASSWORD": SUPERUSER_PW}
    p = dbctl_env(cluster, "query", "-r", "primary", "-c",
                  "SELECT pg_is_in_recovery() AS recovery, NULL AS nothing", env=pw)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert [c.strip() for c in lines[1].split("|")[1:-1]] == ["recovery", "nothing"]
    assert [c.strip() for c in lines[3].split("|")[1:-1]] == ["f", ""]
    p = dbctl_env(cluster, "query", "-r", "replica", "-o", "json", "-c",
                  "SELECT pg_is_in_recovery() AS recovery", env=pw)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["member"] != s["leader"]
    assert out["rows"] == [{"recovery": "t"}] and out["command"] == "SELECT 1"
    replica = next(n.name for n in cluster.nodes if n.name != s["leader"])
    sql = tmp_path / "q.sql"
    sql.write_text("SELECT current_user AS u, 1 + 1 AS two;\n")
    p = dbctl_env(cluster, "query", "-m", replica, "-f", str(sql), "-o", "json", env=pw)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"member": replica, "command": "SELECT 1",
                                    "rows": [{"u": "postgres", "two": "2"}]}
    # the superuser password from -c CONFIG, a command without rows
    p = subprocess.run([binary("dbctl"), "-c", cluster.nodes[0].config_path, "query", "-c",
                        "CREATE TEMP TABLE t (x int)"], capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if not k.startswith("PG")},
                       timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "CREATE TABLE\n"
    # errors: SQL, authentication, usage
    p = dbctl_env(cluster, "query", "-c", "SELECT nosuch", env=pw)
    assert p.returncode == 1 and 'column "nosuch" does not exist' in p.stderr
    p = dbctl_env(cluster, "query", "-c", "SELECT 1", env={"PGPASSWORD": "wrong"})
    assert p.returncode == 1 and "cannot connect" in p.stderr
    assert "wrong" not in p.stderr
    p = dbctl_env(cluster, "query", "-c", "SELECT pg_sleep(3)", "--timeout", "1", env=pw)
    assert p.returncode == 1 and "statement timeout" in p.stderr
    assert dbctl_env(cluster, "query", "-m", "nosuch", "-c", "SELECT 1", env=pw).returncode == 1
    for bad in (("-c", "SELECT 1", "-f", str(sql)), (), ("-m", replica, "-r", "any", "-c", "x"),
                ("-r", "leader", "-c", "x")):
        assert dbctl_env(cluster, "query", *bad, env=pw).returncode == 2, bad


def test_version_lists_agents(cluster):
    s = cluster.wait_healthy(timeout=60)
    p = cluster.dbctl("version")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("dbctl version ") and lines[1] == ""
    version = lines[0].split()[-1]
    for line, node in zip(lines[2:], sorted(cluster.nodes, key=lambda n: n.name)):
        assert line.startswith(f"{node.name}: dbha {version} PostgreSQL 15."), p.stdout
    # an agent that does not answer within the timeout
    replica = next(n for n in cluster.nodes if n.name != s["leader"])
    os.kill(replica.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        p = cluster.dbctl("-o", "json", "version")
        took = time.monotonic() - t0
    finally:
        os.kill(replica.proc.pid, signal.SIGCONT)
    assert p.returncode == 0, p.stderr
    v = {m["name"]: m for m in json.loads(p.stdout)["members"]}
    assert v[replica.name]["version"] is None
    assert all(m["version"] == version for n, m in v.items() if n != replica.name)
    assert took < 8, took


def test_remove_refused_with_a_leader_then_done_when_stopped(cluster):
    s = cluster.wait_healthy(timeout=60)
    p = cluster.dbctl("remove", cluster.scope)
    assert p.returncode == 1
    assert f'has a leader ("{s["leader"]}")' in p.stderr
    assert cluster.etcd_get("leader") == s["leader"]
    assert cluster.etcd_get("initialize")
    for n in cluster.nodes:
        n.stop(timeout=60)
    wait_until(lambda: cluster.etcd_get("leader") is None, 30, what="the leader key released")
    p = cluster.dbctl("remove", cluster.scope, "--force")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("Removed ")
    for key in ("initialize", "config", "history", "status", "leader"):
        assert cluster.etcd_get(key) is None, key
    s = cluster.status()
    assert s["members"] == [] and s["leader"] is None
