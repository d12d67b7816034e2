"""Patroni's custom bootstrap (`bootstrap.method` naming a `bootstrap.<name>`
section with `command`, `no_params`, `recovery_conf`,
`keep_existing_recovery_conf`) with real etcd and PostgreSQL 15.

A source cluster archives its WAL; a base backup is taken, then a row is
written before a target time and another after it. A new two-node cluster
bootstraps from that backup by point-in-time recovery: its command copies
the backup into --datadir, `recovery_conf` replays the archive to the target
and promotes. The new leader holds the rows from before the target and not
the one after, on a new timeline, its roles got this config's passwords
(the restored cluster had other ones: the agent reached it through the
trust pg_hba.conf Patroni writes for a custom bootstrap, which is gone
afterwards), and its replica was cloned from it. A failing command aborts
the bootstrap: no data directory is left and `initialize` is released.
Before, any method but initdb was refused.
"""
import json
import os
import subprocess
import textwrap

import psycopg2
import pytest

from conftest import started_cluster
from lib.cluster import REPL, REPL_PW, SUPERUSER, DbhaCluster
from lib.pg import PG_OS_USER, as_root, hand_to_pg_user
from lib.procs import wait_until

pytestmark = pytest.mark.concurrent

PY = "/usr/bin/python3"
NEW_SUPERUSER_PW = "restored-cluster-new-secret"

# restore.py OUT BACKUP [--scope=S --datadir=D]: records its words, copies
# BACKUP into the data directory (from --datadir, else the last word).
RESTORE = textwrap.dedent("""\
    import json, os, subprocess, sys
    out, backup = sys.argv[1], sys.argv[2]
    with open(out, "a") as f:
        f.write(json.dumps(sys.argv[3:]) + "\\n")
    opts = dict(a[2:].split("=", 1) for a in sys.argv[3:] if a.startswith("--") and "=" in a)
    if backup == "fail":
        sys.exit(4)
    dst = opts.get("datadir") or sys.argv[-1]
    os.makedirs(dst, mode=0o700, exist_ok=True)
    rc = subprocess.call(["cp", "-a", backup + "/.", dst])
    os.chmod(dst, 0o700)
    sys.exit(rc)
    """)


@pytest.fixture(scope="module")
def source():
    state = {}

    def configure(c):
        archive = os.path.join(c.workdir, "archive")
        hand_to_pg_user(archive)
        state["archive"] = archive
        for n in c.nodes:
            n.parameters.update({"archive_mode": "on",
                                 "archive_command": f"test ! -f {archive}/%f && cp %p {archive}/%f"})

    with started_cluster("dbha-bootstrap-src-", configure, n=1, scope="src", ttl=10, loop_wait=1,
                         retry_timeout=2) as c:
        c.archive = state["archive"]
        yield c


def sql_pw(node, query):
    """A query as the superuser with the restored cluster's new password."""
    conn = psycopg2.connect(host=node.dir, port=node.pg_port, user=SUPERUSER,
                            password=NEW_SUPERUSER_PW, dbname="postgres", connect_timeout=3)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def restore_script(workdir):
    """restore.py in workdir, and the file it records its words in."""
    script = os.path.join(workdir, "restore.py")
    with open(script, "w") as f:
        f.write(RESTORE)
    os.chmod(script, 0o755)
    out = os.path.join(workdir, "out")
    hand_to_pg_user(out)
    return script, os.path.join(out, "runs.jsonl")


def run_as_pg(argv, **kw):
    run_as = ["runuser", "-u", PG_OS_USER, "--"] if as_root() else []
    return subprocess.run(run_as + argv, capture_output=True, text=True, timeout=120, **kw)


def test_point_in_time_bootstrap(source, procs, workdir):
    src = source.nodes[0]
    src.sql("CREATE TABLE pitr_t (x int, note text)")
    src.sql("INSERT INTO pitr_t VALUES (1, 'before the backup')")
    backup = os.path.join(workdir, "backup")
    hand_to_pg_user(backup)
    p = run_as_pg(["/usr/lib/postgresql/15/bin/pg_basebackup", "-D", backup, "-X", "stream", "-c",
                   "fast", "-h", "127.0.0.1", "-p", str(src.pg_port), "-U", REPL],
                  env=dict(os.environ, PGPASSWORD=REPL_PW))
    assert p.returncode == 0, p.stderr
    src.sql("INSERT INTO pitr_t VALUES (2, 'before the target')")
    src.sql("SELECT pg_sleep(1.1)")
    target = src.sql("SELECT now()::text")[0][0]
    src.sql("SELECT pg_sleep(1.1)")
    src.sql("INSERT INTO pitr_t VALUES (3, 'after the target')")
    seg = src.sql("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
    wait_until(lambda: os.path.exists(os.path.join(source.archive, seg)), 30, interval=0.2,
               what=f"{seg} archived")

    script, runs = restore_script(workdir)
    c = DbhaCluster(procs, workdir, n=2, scope="dst", ttl=10, loop_wait=1, retry_timeout=2)
    for n in c.nodes:
        n.auth_extra["superuser"] = {"password": NEW_SUPERUSER_PW}
        # no trust: the agent needs the superuser's password (or the
        # bootstrap's own pg_hba.conf)
        n.local_pg_hba = False
        n.postgresql_yaml = ("  pg_hba:\n    - local all all scram-sha-256\n"
                             f"    - host replication {REPL} 127.0.0.1/32 scram-sha-256\n"
                             "    - host all all 127.0.0.1/32 scram-sha-256\n")
        n.bootstrap_yaml = (
            "  method: pitr\n  pitr:\n"
            f"    command: {PY} {script} {runs} {backup}\n"
            "    recovery_conf:\n"
            f"      restore_command: cp {source.archive}/%f %p\n"
            f"      recovery_target_time: '{target}'\n"
            "      recovery_target_action: promote\n")
    try:
        c.start()
        s = c.wait_healthy(timeout=180)
        leader = c.node(s["leader"])
        conn = psycopg2.connect(host=leader.dir, port=leader.pg_port, user=SUPERUSER,
                                password=NEW_SUPERUSER_PW, dbname="postgres", connect_timeout=3)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT x FROM pitr_t ORDER BY x")
            assert cur.fetchall() == [(1,), (2,)]  # not the row written after the target
            cur.execute("SELECT timeline_id FROM pg_control_checkpoint()")
            assert cur.fetchone()[0] >= 2  # promoted at the end of the recovery
            cur.execute("SELECT pg_is_in_recovery()")
            assert cur.fetchone()[0] is False
        conn.close()
        words = [json.loads(line) for line in open(runs)]
        assert words == [["--scope=dst", f"--datadir={leader.data_dir}"]], words
        assert c.procs.log_contains(leader.name, "bootstrapping the cluster with bootstrap.pitr")
        # the bootstrap's trust lines are gone, the configured file is in place
        hba = open(os.path.join(leader.data_dir, "pg_hba.conf")).read()
        assert "trust" not in hba and "local all all scram-sha-256" in hba, hba
        assert not os.path.exists(os.path.join(leader.data_dir, "pg_hba.conf.dbha-bootstrap"))
        # the source's system identifier: the cluster is the source's, restored
        src_sysid = src.sql("SELECT system_identifier::text FROM pg_control_system()")[0][0]
        assert c.etcd_get("initialize") == src_sysid
        replica = next(n for n in c.nodes if n is not leader)
        sql_pw(leader, "INSERT INTO pitr_t VALUES (4, 'after the bootstrap')")
        wait_until(lambda: sql_pw(replica, "SELECT count(*) FROM pitr_t") == [(3,)], 30,
                   interval=0.2, what="the replica following the restored leader")
    finally:
        c.stop_all()


def test_a_failing_bootstrap_command_aborts(procs, workdir):
    script, runs = restore_script(workdir)
    c = DbhaCluster(procs, workdir, n=1, scope="failing", ttl=10, loop_wait=1, retry_timeout=2)
    n = c.nodes[0]
    n.bootstrap_yaml = (f"  method: broken\n  broken:\n    command: {PY} {script} {runs} fail\n"
                        "    no_params: true\n")
    try:
        c.start()
        wait_until(lambda: c.procs.log_contains(n.name, "bootstrap failed"), 60, interval=0.2,
                   what="the failed bootstrap aborted")
        assert open(runs).readline().strip() == "[]"  # no_params: no --scope, --datadir
        assert not os.path.exists(os.path.join(n.data_dir, "PG_VERSION"))
        assert c.etcd_get("leader") is None
        assert c.etcd_get("initialize") in (None, "")
    finally:
        c.stop_all()
