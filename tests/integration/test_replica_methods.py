"""Patroni's custom replica methods (`postgresql.create_replica_methods` with
a `postgresql.<method>` section each) on a real three-node cluster.

node2 lists a method that fails, a custom one that copies the leader with
pg_basebackup through the connection string it is given, then basebackup:
the failed method's leftovers are removed, the next method runs at once
(no backoff), with Patroni's parameters in Patroni's order, and its replica
streams. node3's method has no_params: its command alone, plus the
section's own keys. Then the disaster Patroni's no_leader is for: every
member stopped, node3's disk lost; node3 comes back with a method that
restores a backup without a leader, starts, and leads the cluster with the
rows the backup holds. Before, any method but basebackup was refused.
"""
import json
import os
import shutil
import subprocess
import textwrap
import time

import pytest

from conftest import started_cluster
from lib.cluster import REPL, REPL_PW
from lib.pg import PG_OS_USER, as_root, hand_to_pg_user
from lib.procs import wait_until

pytestmark = pytest.mark.concurrent

PY = "/usr/bin/python3"

# Records its words and PGPASSFILE's presence, then acts by its first word.
METHOD = textwrap.dedent("""\
    import json, os, subprocess, sys
    out, action = sys.argv[1], sys.argv[2]
    with open(out, "a") as f:
        f.write(json.dumps({"argv": sys.argv[3:], "pgpassfile": os.environ.get("PGPASSFILE")}) + "\\n")
    opts = dict(a[2:].split("=", 1) for a in sys.argv[3:] if a.startswith("--") and "=" in a)
    if action == "fail":
        os.makedirs(opts["datadir"], mode=0o700, exist_ok=True)
        open(os.path.join(opts["datadir"], "half-restored"), "w").close()
        sys.exit(3)
    if action == "copy":
        sys.exit(subprocess.call(["/usr/lib/postgresql/15/bin/pg_basebackup", "-D", opts["datadir"],
                                  "-X", "stream", "-c", "fast", "-w", "-d", opts["connstring"]]))
    if action == "restore":
        src, dst = sys.argv[3], sys.argv[4]
        os.makedirs(dst, mode=0o700, exist_ok=True)
        rc = subprocess.call(["cp", "-a", src + "/.", dst])
        os.chmod(dst, 0o700)  # as a restore tool leaves it; the copy took the backup dir's
        sys.exit(rc)
    sys.exit(2)
    """)


def records(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def cluster():
    state = {}

    def configure(c):
        script = os.path.join(c.workdir, "method.py")
        with open(script, "w") as f:
            f.write(METHOD)
        os.chmod(script, 0o755)
        outdir = os.path.join(c.workdir, "out")  # the methods' records, written as postgres
        hand_to_pg_user(outdir)
        out = {n.name: os.path.join(outdir, f"{n.name}.jsonl") for n in c.nodes}
        state.update(script=script, out=out)
        n1, n2, n3 = c.nodes
        # node1 bootstraps: the others may not (until the last test)
        n2.tags["nofailover"] = n3.tags["nofailover"] = True
        n2.postgresql_yaml = (
            "  create_replica_methods:\n    - broken\n    - copy\n    - basebackup\n"
            f"  broken:\n    command: {PY} {script} {out['node2']} fail\n"
            f"  copy:\n    command: {PY} {script} {out['node2']} copy\n"
            "    envdir: /etc/wal-e\n    use_iam: yes\n    role: ignored-ours-wins\n")
        n3.postgresql_yaml = (
            "  create_replica_methods: [np]\n"
            f"  np:\n    command: {PY} {script} {out['node3']} copy --datadir={n3.data_dir}"
            f" --connstring='host=127.0.0.1 port={n1.pg_port} user={REPL} dbname=postgres'\n"
            "    no_params: True\n    keep_data: yes\n    threads: 4\n")

    with started_cluster("dbha-replica-methods-", configure, n=3, ttl=10, loop_wait=1,
                         retry_timeout=2) as c:
        c.script, c.out = state["script"], state["out"]
        yield c


def test_methods_in_order_with_patronis_parameters(cluster):
    n1, n2 = cluster.nodes[0], cluster.nodes[1]
    got = records(cluster.out["node2"])
    assert len(got) == 2, got  # broken, then copy; basebackup was not needed
    conn = f"dbname=postgres user={REPL} host=127.0.0.1 port={n1.pg_port}"
    common = [f"--scope={cluster.scope}", "--role=replica", f"--datadir={n2.data_dir}",
              f"--connstring={conn}"]
    assert got[0]["argv"] == common, got[0]
    # the section's keys first, in its order (role keeps its place, with our
    # value, as Python's dict.update), YAML's yes as Python's True
    assert got[1]["argv"] == ["--envdir=/etc/wal-e", "--use_iam=True", "--role=replica",
                              f"--scope={cluster.scope}", f"--datadir={n2.data_dir}",
                              f"--connstring={conn}"], got[1]
    assert got[1]["pgpassfile"], got[1]
    log = open(cluster.procs.log_path("node2")).read()
    assert 'creating the replica with method "broken"' in log
    assert "trying the next of create_replica_methods" in log
    assert 'creating the replica with method "copy"' in log
    assert "next clone attempt" not in log  # the next method ran at once
    assert not os.path.exists(os.path.join(n2.data_dir, "half-restored"))
    n1.sql("CREATE TABLE IF NOT EXISTS methods_t (x int)")
    n1.sql("INSERT INTO methods_t VALUES (1)")
    wait_until(lambda: n2.sql("SELECT count(*) FROM methods_t")[0][0] == 1, 30, interval=0.2,
               what="a row on the leader to reach node2")


def test_no_params_gets_only_the_sections_keys(cluster):
    n3 = cluster.nodes[2]
    got = records(cluster.out["node3"])
    assert len(got) == 1, got
    # its command's own words, then threads; no_params and keep_data are not passed
    assert got[0]["argv"] == [f"--datadir={n3.data_dir}",
                              f"--connstring=host=127.0.0.1 port={cluster.nodes[0].pg_port} "
                              f"user={REPL} dbname=postgres", "--threads=4"], got[0]
    assert n3.sql("SELECT pg_is_in_recovery()") == [(True,)]


def test_no_leader_method_restores_a_lost_cluster(cluster):
    """Last: every member stops; node3's disk is lost and a backup restores it
    with no leader to copy from; it starts and leads, with the backup's rows."""
    n1, n3 = cluster.nodes[0], cluster.nodes[2]
    n1.sql("CREATE TABLE IF NOT EXISTS dr_t (x int)")
    n1.sql("INSERT INTO dr_t SELECT generate_series(1, 100)")
    backup = os.path.join(cluster.workdir, "backup")
    hand_to_pg_user(backup)
    argv = ["/usr/lib/postgresql/15/bin/pg_basebackup", "-D", backup, "-X", "stream", "-c", "fast",
            "-h", "127.0.0.1", "-p", str(n1.pg_port), "-U", REPL]
    env = dict(os.environ, PGPASSWORD=REPL_PW)
    run_as = ["runuser", "-u", PG_OS_USER, "--"] if as_root() else []
    p = subprocess.run(run_as + argv, capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    for n in reversed(cluster.nodes):  # replicas first, the leader last
        n.stop(timeout=60)
    wait_until(lambda: cluster.etcd_get("leader") is None, 30, what="no leader key")
    wait_until(lambda: not any(cluster.etcd_get(f"members/{n.name}") for n in cluster.nodes),
               cluster.ttl + 20, interval=0.5, what="the members' keys expired")
    assert cluster.etcd_get("initialize")
    shutil.rmtree(n3.data_dir)  # the disk is lost
    n3.tags["nofailover"] = False
    n3.postgresql_yaml = (
        "  create_replica_methods: [restore, basebackup]\n"
        f"  restore:\n    command: {PY} {cluster.script} {cluster.out['node3']} restore"
        f" {backup} {n3.data_dir}\n"
        "    no_params: true\n    no_leader: 1\n")
    start = time.monotonic()
    n3.start()
    wait_until(lambda: cluster.etcd_get("leader") == "node3", 120, interval=0.5,
               what="node3 leading from the restored backup")
    print(f"\nnode3 restored without a leader and leads {time.monotonic() - start:.1f} s "
          "after its start")
    assert cluster.procs.log_contains(
        "node3", 'creating the replica with method "restore", without a leader (no_leader)')
    wait_until(lambda: n3.sql("SELECT pg_is_in_recovery()") == [(False,)], 60, interval=0.5,
               what="node3 writable")
    assert n3.sql("SELECT count(*) FROM dr_t") == [(100,)]
    assert records(cluster.out["node3"])[-1]["argv"] == [backup, n3.data_dir]


def test_a_stale_backup_never_leads(cluster):
    """Last: the fault no_leader invites. node3 leads; a backup of it is taken,
    then more is written, and node3 stops. node2's disk is lost and it
    restores that older backup with no leader: it must not lead (it lacks
    what was written after the backup: maximum_lag_on_failover against the
    last leader position in etcd), and follows node3 once node3 is back."""
    n2, n3 = cluster.nodes[1], cluster.nodes[2]
    backup = os.path.join(cluster.workdir, "backup2")
    hand_to_pg_user(backup)
    argv = ["/usr/lib/postgresql/15/bin/pg_basebackup", "-D", backup, "-X", "stream", "-c", "fast",
            "-h", "127.0.0.1", "-p", str(n3.pg_port), "-U", REPL]
    run_as = ["runuser", "-u", PG_OS_USER, "--"] if as_root() else []
    p = subprocess.run(run_as + argv, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PGPASSWORD=REPL_PW))
    assert p.returncode == 0, p.stderr
    n3.sql("CREATE TABLE after_backup AS SELECT generate_series(1, 200000) AS x")
    lsn = n3.sql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")[0][0]
    wait_until(lambda: json.loads(cluster.etcd_get("status") or "{}").get("optime", 0) >= lsn, 30,
               interval=0.2, what="the leader's position after the writes in etcd")
    n3.stop(timeout=60)
    wait_until(lambda: cluster.etcd_get("leader") is None, 30, what="no leader key")
    shutil.rmtree(n2.data_dir, ignore_errors=True)
    n2.tags["nofailover"] = False
    n2.postgresql_yaml = (
        "  create_replica_methods: [restore]\n"
        f"  restore:\n    command: {PY} {cluster.script} {cluster.out['node2']} restore"
        f" {backup} {n2.data_dir}\n"
        "    no_params: true\n    no_master: true\n")
    n2.start()
    wait_until(lambda: cluster.procs.log_contains("node2", "behind the last leader position"), 60,
               interval=0.5, what="node2 restored and refusing to lead: it lags")
    assert cluster.procs.log_contains(
        "node2", 'creating the replica with method "restore", without a leader (no_leader)')
    assert n2.sql("SELECT pg_is_in_recovery()") == [(True,)]
    assert cluster.etcd_get("leader") is None
    n3.start()
    wait_until(lambda: cluster.etcd_get("leader") == "node3", 60, interval=0.5,
               what="node3 (the newest data) leading again")
    wait_until(lambda: n2.sql("SELECT to_regclass('after_backup') IS NOT NULL")[0][0]
               and n2.sql("SELECT count(*) FROM after_backup") == [(200000,)], 60, interval=0.5,
               what="node2 following node3 with everything written after the backup")
    assert n2.sql("SELECT pg_is_in_recovery()") == [(True,)]
