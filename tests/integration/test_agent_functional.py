"""The functional half of test_agent.py (the agent, part 1), against real
etcd and three real PostgreSQL 15 nodes: bootstrap, member keys,
replication with slots, REST health endpoints and documents, dbctl status,
history, show-config and dsn on one shared cluster; then, each on a cluster
of its own (free ports, its temp dir): an agent restart that keeps the
postmaster, a refused foreign data directory, a failed clone retried, slots
following the members, sd_notify, clonefrom, bootstrap.users and
post_bootstrap. Nothing here measures time (every wait is a bounded poll
with a generous limit), so these run in the concurrent pass; test_agent.py
keeps the tests that do (how soon /health turns 503, a postmaster's death
noticed at once, a fresh probe, loops per second after a SIGHUP, pg_ctl's
start timeout) and the whole-cluster restart, whose same-leader outcome
depends on which agent comes up first."""
import base64
import json
import os
import re
import signal
import time

import psycopg2
import pytest

from conftest import started_cluster
from lib.cluster import SUPERUSER, DbhaCluster
from lib.pg import hand_to_pg_user, run_pg, pg_tool
from lib.procs import wait_until
import test_agent

pytestmark = pytest.mark.concurrent


@pytest.fixture(scope="module")
def cluster():
    """One bootstrapped three-node cluster shared by the read-only tests."""
    with started_cluster("dbha-agent-", n=3) as c:
        yield c


# shared with the timed half: a cluster of the test's own, and the members by name
fresh = test_agent.fresh
members_by_name = test_agent.members_by_name


# ---- bootstrap and what it publishes ----

def test_bootstrap_one_primary_two_streaming_replicas_with_slots(cluster):
    s = cluster.status()
    roles = sorted(m["role"] for m in s["members"])
    assert roles == ["primary", "replica", "replica"], s
    leader = cluster.node(s["leader"])
    # a slot per replica on the primary, in use by its walsender
    slots = dict(leader.sql("SELECT slot_name, active FROM pg_replication_slots "
                            "WHERE slot_type = 'physical'"))
    replicas = [n.name for n in cluster.nodes if n.name != leader.name]
    assert set(slots) == set(replicas), slots
    wait_until(lambda: all(r[1] for r in leader.sql(
        "SELECT slot_name, active FROM pg_replication_slots")), 30, what="slots active")
    rows = leader.sql("SELECT application_name, state FROM pg_stat_replication ORDER BY 1")
    assert rows == [(r, "streaming") for r in sorted(replicas)], rows
    # data checksums on by default (pg_rewind needs them), roles from the config
    assert leader.sql("SHOW data_checksums") == [("on",)]
    roles = dict(leader.sql("SELECT rolname, rolreplication FROM pg_roles "
                            "WHERE rolname IN ('replicator', 'rewinder')"))
    assert roles == {"replicator": True, "rewinder": False}, roles
    assert leader.sql("SELECT has_function_privilege('rewinder', "
                      "'pg_read_binary_file(text)', 'EXECUTE')") == [(True,)]


def test_initialize_holds_the_system_identifier(cluster):
    leader = cluster.primary()
    sysid = leader.sql("SELECT system_identifier FROM pg_control_system()")[0][0]
    assert cluster.etcd_get("initialize") == str(sysid)
    for n in cluster.nodes:
        assert n.sql("SELECT system_identifier FROM pg_control_system()")[0][0] == sysid


def test_member_keys_have_patroni_fields(cluster):
    s = cluster.status()
    for n in cluster.nodes:
        data = json.loads(cluster.etcd_get(f"members/{n.name}"))
        for field in ("conn_url", "api_url", "state", "role", "version", "xlog_location",
                      "timeline"):
            assert field in data, (n.name, data)
        assert data["conn_url"] == f"postgres://127.0.0.1:{n.pg_port}/postgres"
        assert data["api_url"] == f"http://127.0.0.1:{n.api_port}/patroni"
        assert data["state"] == "running"
        assert data["role"] == ("master" if n.name == s["leader"] else "replica")
        assert data["timeline"] == 1
    # the member key lives on the agent's lease: it carries one
    status, body = cluster.etcd.api("kv/range", {"key": __import__("base64").b64encode(
        f"/service/{cluster.scope}/members/node1".encode()).decode()})
    assert int(body["kvs"][0]["lease"]) != 0


def test_history_empty_after_bootstrap_and_status_the_optime(cluster):
    # as Patroni 3.0.2: no line for timeline 1 (its readers take the
    # cluster's timeline as the last line's + 1)
    assert json.loads(cluster.etcd_get("history")) == []
    config = json.loads(cluster.etcd_get("config"))
    assert config["ttl"] == cluster.ttl and config["loop_wait"] == cluster.loop_wait
    status = json.loads(cluster.etcd_get("status"))
    assert isinstance(status["optime"], int) and status["optime"] > 0


def test_leader_key_is_leased_and_names_the_primary(cluster):
    s = cluster.status()
    assert cluster.etcd_get("leader") == s["leader"]
    assert cluster.primary().sql("SELECT pg_is_in_recovery()")[0][0] is False


def prefix_keys(cluster):
    """{key: (value, mod_revision)} of every key of the cluster."""
    prefix = f"/service/{cluster.scope}/"
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    b64 = lambda t: base64.b64encode(t.encode()).decode()  # noqa: E731
    code, body = cluster.etcd.api("kv/range", {"key": b64(prefix), "range_end": b64(end)})
    assert code == 200, body
    return {base64.b64decode(kv["key"]).decode(): (kv.get("value"), int(kv["mod_revision"]))
            for kv in body.get("kvs", [])}


def test_unchanged_keys_are_not_rewritten(cluster):
    """A key is written when its content changes (Patroni 3.0.2 skips an
    unchanged member key and status too): over four loops of an idle cluster,
    a key whose value is the same at both ends kept its mod_revision. The
    member keys used to be rewritten every loop and `status` too."""
    compared = []
    for _ in range(3):  # PostgreSQL's own idle WAL may change every member: look again
        before = prefix_keys(cluster)
        time.sleep(4 * cluster.loop_wait)
        after = prefix_keys(cluster)
        same = [k for k in before if k in after and before[k][0] == after[k][0]]
        moved = [k for k in same if before[k][1] != after[k][1]]
        assert moved == [], f"rewritten with the same value: {moved}"
        compared = [k for k in same if "/members/" in k or k.endswith("/status")]
        if len(compared) >= 3:
            break
    print(f"\nunchanged over four loops, not rewritten: {sorted(compared)}")
    assert len(compared) >= 3, compared


def test_row_written_on_primary_is_read_on_both_replicas(cluster):
    leader = cluster.primary()
    leader.sql("CREATE TABLE IF NOT EXISTS t_repl (id int primary key, v text)")
    leader.sql("INSERT INTO t_repl VALUES (1, 'hello') ON CONFLICT (id) DO UPDATE SET v = 'hello'")
    for n in cluster.nodes:
        if n.name == leader.name:
            continue
        wait_until(lambda n=n: n.sql("SELECT v FROM t_repl WHERE id = 1") == [("hello",)], 15,
                   what=f"row on {n.name}")
        assert n.sql("SELECT pg_is_in_recovery()")[0][0] is True


# ---- dbctl status ----

def test_dbctl_status_json_matches_the_contract(cluster):
    s = cluster.status()
    assert set(s) == {"cluster", "leader", "paused", "members"}
    assert s["cluster"] == cluster.scope and s["paused"] is False
    assert [m["name"] for m in s["members"]] == ["node1", "node2", "node3"]
    for m in s["members"]:
        assert set(m) == {"name", "host", "port", "role", "state", "timeline", "lag_bytes",
                          "lag_seconds", "tags"}
        node = cluster.node(m["name"])
        assert (m["host"], m["port"]) == ("127.0.0.1", node.pg_port)
        if m["name"] == s["leader"]:
            assert (m["role"], m["state"]) == ("primary", "running")
        else:
            assert (m["role"], m["state"]) == ("replica", "streaming")
        assert m["timeline"] == 1 and isinstance(m["lag_bytes"], int)
    table = cluster.dbctl("status")
    assert table.returncode == 0
    for n in cluster.nodes:
        assert n.name in table.stdout


# ---- REST ----

HEALTH = {
    # path: (leader, replica) for GET/HEAD/OPTIONS (Patroni 3.0.2)
    "/": (200, 503), "/primary": (200, 503), "/master": (200, 503),
    "/read-write": (200, 503), "/leader": (200, 503), "/standby-leader": (503, 503),
    "/replica": (503, 200), "/read-only": (200, 200), "/health": (200, 200),
    "/asynchronous": (503, 200), "/async": (503, 200), "/synchronous": (503, 503),
    "/sync": (503, 503), "/read-only-sync": (200, 503), "/replica?lag=1GB": (503, 200),
    "/replica?tag_nofailover=true": (503, 503),
}



def test_health_endpoints_on_leader_and_replica(cluster):
    s = cluster.status()
    leader = cluster.node(s["leader"])
    replica = next(n for n in cluster.nodes if n.name != s["leader"])
    bad = []
    for path, (on_leader, on_replica) in HEALTH.items():
        for node, want in ((leader, on_leader), (replica, on_replica)):
            for method in ("GET", "HEAD", "OPTIONS"):
                code, _ = node.api(path, method=method)
                if code != want:
                    bad.append(f"{method} {path} on {node.name}: {code}, want {want}")
    # liveness/readiness: GET only has its own handler (HEAD/OPTIONS are 503 as in Patroni)
    for node in (leader, replica):
        for path in ("/liveness", "/readiness"):
            code, _ = node.api(path)
            if code != 200:
                bad.append(f"GET {path} on {node.name}: {code}")
    assert not bad, "\n".join(bad)


def test_patroni_and_cluster_documents(cluster):
    s = cluster.status()
    leader = cluster.node(s["leader"])
    code, doc = leader.api_json("/patroni")
    assert code == 200
    assert doc["state"] == "running" and doc["role"] == "master"
    assert doc["patroni"]["scope"] == cluster.scope and "version" in doc["patroni"]
    assert doc["timeline"] == 1 and "location" in doc["xlog"]
    assert sorted(r["application_name"] for r in doc["replication"]) == \
        sorted(n.name for n in cluster.nodes if n.name != leader.name)
    replica = next(n for n in cluster.nodes if n.name != s["leader"])
    code, doc = replica.api_json("/patroni")
    assert code == 200 and doc["role"] == "replica"
    assert "replayed_location" in doc["xlog"]
    code, cl = replica.api_json("/cluster")
    assert code == 200
    by_name = {m["name"]: m for m in cl["members"]}
    assert by_name[s["leader"]]["role"] == "leader"
    for m in cl["members"]:
        assert m["state"] == "running" and m["api_url"].endswith("/patroni")
        if m["role"] == "replica":
            assert "lag" in m
    code, _ = leader.api("/nonexistent-path")
    assert code == 503  # Patroni answers unknown GET paths with the status check


# ---- restarts ----

def test_agent_restart_keeps_the_running_postgres(fresh):
    fresh.start()
    s = fresh.wait_healthy(timeout=120)
    for node in fresh.nodes:  # the leader and both replicas
        pid = node.postmaster_pid()
        node.kill()  # SIGKILL: the agent cannot stop anything on the way out
        node.start()
        s2 = fresh.wait_healthy(timeout=60)
        assert node.postmaster_pid() == pid, f"{node.name}: postgresql was restarted"
        assert s2["leader"] == s["leader"]


def test_foreign_data_dir_is_refused_and_left_untouched(fresh):
    fresh.start()
    fresh.wait_healthy(timeout=120)
    # a fourth node whose data directory holds another cluster
    from lib.cluster import Node
    node = Node(fresh, "node4")
    fresh.nodes.append(node)
    hand_to_pg_user(node.dir)
    run_pg([pg_tool("initdb"), "-D", node.data_dir, "-U", SUPERUSER])
    before = {}
    for root, _, files in os.walk(node.data_dir):
        for f in files:
            p = os.path.join(root, f)
            st = os.stat(p)
            before[p] = (st.st_size, st.st_mtime_ns)
    node.start()
    wait_until(lambda: fresh.procs.log_contains(node.name, "holds another cluster"), 30,
               what="refusal logged")
    time.sleep(2)
    after = {}
    for root, _, files in os.walk(node.data_dir):
        for f in files:
            p = os.path.join(root, f)
            st = os.stat(p)
            after[p] = (st.st_size, st.st_mtime_ns)
    assert after == before, "the foreign data directory was modified"
    assert node.postmaster_pid() is None
    assert node.proc.poll() is None, "the agent keeps running (and reporting) while it refuses"
    m = members_by_name(fresh.status())
    assert m["node4"]["state"] == "stopped"


def test_failed_clone_is_retried_with_backoff_and_leaves_nothing(fresh):
    node3 = fresh.node("node3")
    node3.repl_password = "wrong-password"
    fresh.start(nodes=fresh.nodes[:2])
    fresh.wait_healthy(timeout=120)
    node3.start()
    log = fresh.procs.log_path("node3")
    wait_until(lambda: open(log).read().count("next clone attempt in") >= 2, 60,
               what="two failed clones")
    text = open(log).read()
    delays = [int(m) for m in re.findall(r"next clone attempt in (\d+) ms", text)]
    assert delays[1] > delays[0], delays  # backoff grows
    # nothing half-written is left where PostgreSQL would look
    assert not os.path.exists(node3.data_dir) or os.listdir(node3.data_dir) == []
    assert not os.path.exists(node3.data_dir + ".dbha-clone")
    # the right password, reloaded: the next attempt clones and streams
    node3.repl_password = fresh.nodes[0].repl_password
    node3.write_config()
    os.kill(node3.proc.pid, signal.SIGHUP)
    fresh.wait_healthy(timeout=120)


def test_slots_follow_the_members(fresh):
    fresh.start()
    s = fresh.wait_healthy(timeout=120)
    leader = fresh.node(s["leader"])
    gone = next(n for n in fresh.nodes if n.name != leader.name)
    slots = lambda: {r[0] for r in leader.sql(  # noqa: E731
        "SELECT slot_name FROM pg_replication_slots")}
    assert gone.name in slots()
    gone.stop()  # SIGTERM: its member key goes with its lease
    wait_until(lambda: gone.name not in slots(), 20, what="slot of the departed member dropped")
    gone.start()
    fresh.wait_healthy(timeout=60)
    wait_until(lambda: gone.name in slots(), 20, what="slot recreated")
    # The agent runs its slot statements only when they would change
    # something; a slot that comes or goes behind its back (same members,
    # same postmaster) still does: the probe counts the slots.
    pm = leader.postmaster_pid()
    leader.sql("SELECT pg_catalog.pg_create_physical_replication_slot('stray')")
    wait_until(lambda: "stray" not in slots(), 20, what="a stray slot dropped")

    def drop():
        leader.sql("SELECT pg_catalog.pg_terminate_backend(active_pid) FROM "
                   "pg_catalog.pg_replication_slots WHERE slot_name = %s AND active", (gone.name,))
        leader.sql("SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM "
                   "pg_catalog.pg_replication_slots WHERE slot_name = %s AND NOT active",
                   (gone.name,))
        return gone.name not in slots()
    wait_until(drop, 20, interval=0.05, what="a member's slot dropped behind the agent's back")
    wait_until(lambda: gone.name in slots(), 20, what="the dropped slot created again")
    assert leader.postmaster_pid() == pm
    fresh.wait_healthy(timeout=60)


def test_sd_notify_ready_and_status(fresh, workdir):
    import socket
    path = os.path.join(workdir, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    os.chmod(path, 0o777)
    sock.settimeout(0.5)
    node = fresh.nodes[0]
    node.env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"}
    fresh.start(nodes=[node])
    got = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not ("STATUS=primary" in got and
                                               got.count("WATCHDOG=1") >= 3):
        try:
            got.extend(sock.recv(4096).decode().split("\n"))
        except socket.timeout:
            pass
    sock.close()
    assert "READY=1" in got, got
    assert "STATUS=primary" in got, got
    assert got.count("WATCHDOG=1") >= 3, got  # pinged well within WATCHDOG_USEC


def test_replica_clones_from_a_clonefrom_member(fresh):
    node1, node2, node3 = fresh.nodes
    node2.tags = {"clonefrom": True}
    fresh.start(nodes=[node1])
    fresh.wait_healthy(timeout=120, replicas=0)
    node2.start()
    fresh.wait_healthy(timeout=120, replicas=1)
    node3.start()
    s = fresh.wait_healthy(timeout=120)
    assert s["leader"] == "node1"
    assert fresh.procs.log_contains("node3", 'cloning from "node2"')
    assert fresh.procs.log_contains("node2", 'cloning from "node1"')


def test_dbctl_history_show_config_and_dsn(cluster):
    r = cluster.dbctl("history")
    assert r.returncode == 0 and "TL" in r.stdout, r.stdout + r.stderr
    r = cluster.dbctl("-o", "json", "history")
    assert json.loads(r.stdout) == []
    r = cluster.dbctl("show-config")
    assert r.returncode == 0
    assert f"ttl: {cluster.ttl}" in r.stdout and f"loop_wait: {cluster.loop_wait}" in r.stdout
    r = cluster.dbctl("-o", "json", "show-config")
    assert json.loads(r.stdout)["ttl"] == cluster.ttl
    # a libpq multi-host string that reaches the primary (psycopg2 is libpq)
    r = cluster.dbctl("dsn", "--role", "primary")
    assert r.returncode == 0 and "target_session_attrs=read-write" in r.stdout
    import psycopg2
    from lib.cluster import SUPERUSER, SUPERUSER_PW
    conn = psycopg2.connect(r.stdout.strip() + f" user={SUPERUSER} password={SUPERUSER_PW} "
                            "dbname=postgres connect_timeout=3")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_is_in_recovery()")
            assert cur.fetchone()[0] is False
    finally:
        conn.close()
    assert cluster.dbctl("dsn", "--role", "leader").returncode == 2


def test_bootstrap_users_are_created_with_their_options_and_password(procs, workdir):
    """Patroni's bootstrap.users: each role created once the new primary runs,
    with its options, LOGIN unless they say NOLOGIN, and its password."""
    c = DbhaCluster(procs, workdir, n=1)
    node = c.nodes[0]
    template = node.config
    node.config = lambda: template().replace("  initdb:\n", (
        "  users:\n"
        "    admin:\n"
        "      password: 'adm-pw'\n"
        "      options: [createrole, createdb]\n"
        "    reader:\n"
        "      options: [nologin]\n"
        "  initdb:\n"), 1)
    try:
        c.start()
        wait_until(lambda: c.status()["leader"] == node.name or None, 90, interval=0.5,
                   what="the node leads")
        rows = node.sql("SELECT rolname, rolcreaterole, rolcreatedb, rolcanlogin, rolsuper "
                        "FROM pg_roles WHERE rolname IN ('admin', 'reader') ORDER BY 1")
        assert rows == [("admin", True, True, True, False), ("reader", False, False, False, False)]
        conn = psycopg2.connect(host="127.0.0.1", port=node.pg_port, user="admin",
                                password="adm-pw", dbname="postgres", connect_timeout=3)
        conn.close()
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(host="127.0.0.1", port=node.pg_port, user="admin",
                             password="wrong", dbname="postgres", connect_timeout=3)
    finally:
        c.stop_all()


def test_post_bootstrap_runs_before_the_cluster_is_announced_and_a_failure_starts_over(procs,
                                                                                       workdir):
    """Patroni's bootstrap.post_bootstrap: run once by the bootstrapping node
    with the new primary's connection string, before the leader key is
    taken; here it fails the first time (the bootstrap is abandoned and tried
    again from initdb) and creates a database the second time, which the
    replica cloned later has too."""
    post = os.path.join(workdir, "post")
    hand_to_pg_user(post)
    script = os.path.join(post, "post.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\n"
                f'echo "$@" >> {post}/args\n'
                f'if [ ! -e {post}/failed-once ]; then touch {post}/failed-once; exit 3; fi\n'
                '/usr/lib/postgresql/15/bin/psql "$1" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE app"'
                "\n")
    os.chmod(script, 0o755)
    c = DbhaCluster(procs, workdir, n=2)
    first, second = c.nodes
    template = first.config
    first.config = lambda: template().replace("  initdb:\n", f"  post_bootstrap: '{script}'\n"
                                              "  initdb:\n", 1)
    try:
        c.start(nodes=[first])
        wait_until(lambda: c.status()["leader"] == first.name or None, 120, interval=0.5,
                   what="the first node leads")
        with open(os.path.join(post, "args")) as f:
            runs = f.read().splitlines()
        assert len(runs) == 2, runs  # failed once, then done
        dsn = runs[1]
        assert f"port='{first.pg_port}'" in dsn and "user='postgres'" in dsn and \
            "dbname='postgres'" in dsn and f"passfile='{first.dir}/pgpass'" in dsn, dsn
        assert "password" not in dsn
        with open(procs.log_path(first.name), "rb") as f:
            log = f.read().decode(errors="replace")
        failed = log.index("post_bootstrap failed: abandoning the bootstrap")
        done = log.index("post_bootstrap done: bootstrapped the cluster, leader")
        second_run = log.index("running post_bootstrap (pid", failed)
        assert failed < second_run < done
        assert log.index("acquired the leader key") > second_run, \
            "the leader key is taken after post_bootstrap"
        assert first.sql("SELECT count(*) FROM pg_database WHERE datname = 'app'") == [(1,)]
        c.start(nodes=[second])
        c.wait_healthy(timeout=120)
        assert second.sql("SELECT count(*) FROM pg_database WHERE datname = 'app'") == [(1,)]
    finally:
        c.stop_all()
