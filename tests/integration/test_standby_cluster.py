"""Patroni's standby cluster (`bootstrap.dcs.standby_cluster`), both clusters
real: a three-node primary cluster "main" behind HAProxy (configs/
haproxy.cfg: its write port reaches main's primary), and a two-node cluster
"dr" with its own etcd whose standby_cluster names that port and a permanent
slot of main (`primary_slot_name`).

- dr bootstraps by cloning main (its `initialize` is main's system
  identifier); its leader is the standby leader, streams from main through
  the slot, and its replica cascades from it. Rows written on main reach
  both. `/standby-leader` answers 200 on the standby leader, `/primary` 503
  on every dr member, dbctl shows "standby_leader".
- main fails over (kill -9 of its primary's agent and PostgreSQL); dr
  follows main's new primary through HAProxy, onto the new timeline.
- dr's standby leader dies the same way: dr's replica becomes the standby
  leader by following main, without a promotion.
- Throughout (sampled every 0.2 s from the start of dr to the end of the
  failovers) no dr member ever runs out of recovery, and writes to dr fail.
- Switchover and failover are refused (dbctl, and 412 from the REST API).
- Promotion is explicit: `dbctl edit-config --set standby_cluster=null`
  promotes dr's leader, which then takes writes; the section set again
  stops that primary, which comes back as a standby.
"""
import json
import os
import subprocess
import tempfile
import threading
import time

import psycopg2
import pytest

from conftest import sanitizer_lines
from lib.cluster import REPL, REPL_PW, DbhaCluster
from lib.haproxy import HAProxy
from lib.pg import PG_OS_USER, as_root, hand_to_pg_user
from lib.procs import Procs, wait_until

pytestmark = pytest.mark.concurrent

SLOT = "dr_standby"


@pytest.fixture(scope="module")
def clusters():
    wd = tempfile.mkdtemp(prefix="dbha-standby-")
    os.chmod(wd, 0o755)
    procs = Procs(wd)
    os.makedirs(os.path.join(wd, "main"))
    os.makedirs(os.path.join(wd, "dr"))
    os.chmod(os.path.join(wd, "main"), 0o755)
    os.chmod(os.path.join(wd, "dr"), 0o755)
    main = DbhaCluster(procs, os.path.join(wd, "main"), n=3, scope="main", ttl=6,
                       slots={SLOT: {"type": "physical"}})
    # main archives its WAL for the archive-only standby cluster
    arch = os.path.join(wd, "arch")
    hand_to_pg_user(arch)
    for n in main.nodes:
        n.parameters.update(archive_mode="on",
                            archive_command=f"test ! -f {arch}/%f && cp %p {arch}/%f")
    main.arch = arch
    hp = HAProxy(procs, wd, main.nodes)
    dr = DbhaCluster(procs, os.path.join(wd, "dr"), n=2, scope="dr", ttl=6,
                     standby_cluster={"host": "127.0.0.1", "port": hp.write_port,
                                      "primary_slot_name": SLOT})
    # dr's callbacks append "ACTION ROLE SCOPE" to cb/NODE.log
    cb = os.path.join(wd, "cb")
    hand_to_pg_user(cb)
    for n in dr.nodes:
        n.postgresql_yaml = ("  callbacks:\n" + "".join(
            f"    {a}: /bin/sh -c 'echo \"$0 $1 $2\" >> {cb}/{n.name}.log'\n"
            for a in ("on_start", "on_stop", "on_role_change")))
    dr.cb_dir = cb
    try:
        main.start()
        main.wait_healthy(timeout=120)
        hp.start()
        # HAProxy takes every server for up until its first checks: only the
        # primary may be reached through the write port when dr clones
        wait_until(lambda: hp.up("pg_primary") == [main.primary().name], 30,
                   what="HAProxy's write port on main's primary only")
        yield main, dr, hp
    finally:
        for c in [dr, main] + getattr(main, "others", []):
            c.stop_all()
        hp.stop()
        logs = sorted({procs.log_path(n) for n, _, _ in procs.procs})
        procs.stop_all()
        found = [f"{p}: {line}" for p in logs for line in sanitizer_lines(p)]
        print(f"\ncluster logs in {wd}")
        assert not found, "sanitizer report(s):\n" + "\n".join(found[:50])


def roles(c):
    return {m["name"]: (m["role"], m["state"]) for m in c.status()["members"]}


def callbacks(dr, node):
    try:
        with open(os.path.join(dr.cb_dir, f"{node.name}.log")) as f:
            return [line.split() for line in f]
    except FileNotFoundError:
        return []


def in_recovery(node):
    return node.sql("SELECT pg_is_in_recovery()")[0][0]


def standby_healthy(dr):
    """The standby leader's name once it leads and the other member streams."""
    s = dr.status()
    lead = [m for m in s["members"] if m["role"] == "standby_leader" and m["state"] == "running"]
    stream = [m for m in s["members"] if m["role"] == "replica" and m["state"] == "streaming"]
    up = [n for n in dr.nodes if n.proc]
    return lead[0]["name"] if len(lead) == 1 and len(stream) == len(up) - 1 else None


class Sampler(threading.Thread):
    """Every 0.2 s, pg_is_in_recovery() of every dr member that answers: a
    False is a standby cluster taking writes."""

    def __init__(self, nodes):
        super().__init__(daemon=True)
        self.nodes, self.stop_flag = nodes, threading.Event()
        self.samples, self.writable = 0, []

    def run(self):
        for _ in range(20000):  # bounded: 20000 rounds of 0.2 s
            if self.stop_flag.is_set():
                return
            for n in self.nodes:
                try:
                    if not in_recovery(n):
                        self.writable.append((time.monotonic(), n.name))
                    self.samples += 1
                except psycopg2.Error:
                    pass
            time.sleep(0.2)

    def stop(self):
        self.stop_flag.set()
        self.join(10)


def rows_on(node, table):
    try:
        return node.sql(f"SELECT count(*) FROM {table}")[0][0]
    except psycopg2.Error:
        return None


def test_standby_cluster_follows_main_through_failovers(clusters):
    main, dr, hp = clusters
    sampler = Sampler(dr.nodes)
    sampler.start()
    try:
        dr.start()
        leader = wait_until(lambda: standby_healthy(dr), 120, interval=0.5,
                            what="a standby leader and a streaming replica in dr")
        # the clone of main, not a cluster of its own
        assert dr.etcd_get("initialize") == main.etcd_get("initialize")
        sl = dr.node(leader)
        other = next(n for n in dr.nodes if n.name != leader)
        assert sl.api("/standby-leader")[0] == 200
        assert other.api("/standby-leader")[0] == 503
        for n in dr.nodes:
            assert n.api("/primary")[0] == 503, n.name
        assert other.api("/replica")[0] == 200
        # Patroni's callbacks: the standby leader's role is standby_leader
        wait_until(lambda: ["on_role_change", "standby_leader", "dr"] in callbacks(dr, sl), 30,
                   what=f"on_role_change standby_leader on {sl.name}")
        code, patroni = sl.api_json("/patroni")
        assert code == 200 and patroni["role"] == "standby_leader", patroni
        # the standby leader streams from main's primary through the slot
        mp = main.primary()
        wait_until(lambda: mp.sql("SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                                  (SLOT,)) == [(True,)], 30, what="the slot on main in use")
        conninfo = sl.sql("SHOW primary_conninfo")[0][0]
        assert f"port='{hp.write_port}'" in conninfo and "target_session_attrs=read-write" in conninfo
        assert sl.sql("SHOW primary_slot_name")[0][0] == SLOT
        # dr's replica cascades from the standby leader
        assert f"port='{sl.pg_port}'" in other.sql("SHOW primary_conninfo")[0][0]
        mp.sql("CREATE TABLE t (i int)")
        mp.sql("INSERT INTO t SELECT generate_series(1, 100)")
        for n in dr.nodes:
            wait_until(lambda n=n: rows_on(n, "t") == 100, 30, what=f"rows on {n.name}")
            with pytest.raises(psycopg2.Error, match="read-only"):
                n.sql("INSERT INTO t VALUES (0)")
        dbctl = dr.dbctl("list")
        assert dbctl.returncode == 0 and "Standby Leader" in dbctl.stdout, dbctl.stdout
        # nothing to hand over: refused by dbctl and by the REST API
        r = dr.dbctl("switchover", "--force", "--candidate", other.name)
        assert r.returncode != 0 and "standby cluster" in r.stderr, r.stdout + r.stderr
        r = dr.dbctl("failover", "--force", "--candidate", other.name)
        assert r.returncode != 0 and "standby cluster" in r.stderr, r.stdout + r.stderr
        code, body = sl.api("/switchover", method="POST",
                            data=json.dumps({"leader": sl.name, "candidate": other.name}))
        assert code == 412 and b"standby cluster" in body, (code, body)
        assert dr.etcd_get("failover") is None

        # main fails over: dr follows its new primary through HAProxy
        mp.kill_with_postgres()
        new = wait_until(lambda: (lambda s: s["leader"] if s["leader"] and s["leader"] != mp.name
                                  and any(m["name"] == s["leader"] and m["role"] == "primary"
                                          for m in s["members"]) else None)(main.status()),
                         60, interval=0.5, what="main's new primary")
        np_ = main.node(new)
        wait_until(lambda: np_.sql("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s",
                                   (SLOT,)), 30, what="the permanent slot on main's new primary")
        np_.sql("INSERT INTO t SELECT generate_series(101, 200)")
        tl = np_.sql("SELECT timeline_id FROM pg_control_checkpoint()")[0][0]
        for n in dr.nodes:
            wait_until(lambda n=n: rows_on(n, "t") == 200, 60, what=f"new rows on {n.name}")
        assert sl.sql("SELECT received_tli FROM pg_stat_wal_receiver")[0][0] == tl
        wait_until(lambda: np_.sql("SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                                   (SLOT,)) == [(True,)], 30, what="the slot on the new primary in use")

        # dr's standby leader dies: the replica becomes the standby leader by
        # following main itself, with no promotion
        sl.kill_with_postgres()
        wait_until(lambda: roles(dr).get(other.name) == ("standby_leader", "running"), 60,
                   interval=0.5, what=f"{other.name} the standby leader")
        assert in_recovery(other)
        wait_until(lambda: ["on_role_change", "standby_leader", "dr"] in callbacks(dr, other), 30,
                   what=f"on_role_change standby_leader on {other.name}")
        wait_until(lambda: f"port='{hp.write_port}'" in other.sql("SHOW primary_conninfo")[0][0],
                   30, what=f"{other.name} following main")
        np_.sql("INSERT INTO t SELECT generate_series(201, 300)")
        wait_until(lambda: rows_on(other, "t") == 300, 60, what="rows from main on the new leader")
        # the old standby leader comes back as its replica
        sl.start()
        wait_until(lambda: standby_healthy(dr) == other.name, 90, interval=0.5,
                   what=f"{sl.name} streaming from {other.name}")
        wait_until(lambda: rows_on(sl, "t") == 300, 60, what=f"rows on {sl.name}")
    finally:
        sampler.stop()
    assert sampler.samples > 50, sampler.samples
    for n in dr.nodes:  # main's primary is no member a replica gives up on
        assert not dr.procs.log_contains(n.name, 'not streaming from "the remote primary'), n.name
    assert not sampler.writable, f"a dr member ran out of recovery: {sampler.writable[:5]}"

    # promotion is explicit: the section removed, dr's leader is promoted
    r = dr.dbctl("edit-config", "--force", "--set", "standby_cluster=null")
    assert r.returncode == 0, r.stdout + r.stderr
    wait_until(lambda: not in_recovery(other), 60, what=f"{other.name} promoted")
    other.sql("INSERT INTO t VALUES (301)")
    wait_until(lambda: other.api("/primary")[0] == 200, 30, what=f"/primary on {other.name}")
    wait_until(lambda: roles(dr).get(other.name) == ("primary", "running"), 30,
               what="dr's leader shown as primary")
    wait_until(lambda: rows_on(sl, "t") == 301, 60, what=f"{sl.name} follows dr's own primary")
    assert json.loads(dr.etcd_get("config")).get("standby_cluster") is None

    # and back: standby_cluster added to the running cluster stops its
    # primary, which comes back as a standby (Patroni demotes it too); its
    # writes since the promotion are not on main, so it cannot stream from
    # there, but it takes no more writes
    r = dr.dbctl("edit-config", "--force", "--set", "standby_cluster.host=127.0.0.1",
                 "--set", f"standby_cluster.port={hp.write_port}")
    assert r.returncode == 0, r.stdout + r.stderr

    def demoted():
        try:
            return in_recovery(other)
        except psycopg2.Error:
            return False  # stopped, starting: not yet seen as a standby
    wait_until(demoted, 60, what=f"{other.name} a standby again")
    with pytest.raises(psycopg2.Error, match="read-only"):
        other.sql("INSERT INTO t VALUES (302)")
    for n in dr.nodes:
        assert n.api("/primary")[0] == 503, n.name


RESTORE = """\
import os, subprocess, sys
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, mode=0o700, exist_ok=True)
rc = subprocess.call(["cp", "-a", src + "/.", dst])
os.chmod(dst, 0o700)
sys.exit(rc)
"""


def test_archive_only_standby_cluster(clusters):
    """standby_cluster with restore_command and no host (Patroni's archive-only
    standby cluster, as with pgBackRest or WAL-G): its members are made by
    standby_cluster.create_replica_methods (here a no_leader method restoring
    a base backup of main) when they clone from no standby leader; the standby leader replays main's archive with no
    connection to main, and the other member streams from it."""
    main, _, _ = clusters
    wd = os.path.dirname(main.workdir)
    mp = main.primary()
    mp.sql("CREATE TABLE a (i int)")
    mp.sql("INSERT INTO a SELECT generate_series(1, 10)")
    backup = os.path.join(wd, "base")
    hand_to_pg_user(backup)
    argv = ["/usr/lib/postgresql/15/bin/pg_basebackup", "-D", backup, "-X", "stream", "-c", "fast",
            "-h", "127.0.0.1", "-p", str(mp.pg_port), "-U", REPL]
    run_as = ["runuser", "-u", PG_OS_USER, "--"] if as_root() else []
    p = subprocess.run(run_as + argv, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PGPASSWORD=REPL_PW))
    assert p.returncode == 0, p.stderr
    script = os.path.join(wd, "restore.py")
    with open(script, "w") as f:
        f.write(RESTORE)
    os.chmod(script, 0o755)
    os.makedirs(os.path.join(wd, "archcl"))
    os.chmod(os.path.join(wd, "archcl"), 0o755)
    ac = DbhaCluster(main.procs, os.path.join(wd, "archcl"), n=2, scope="archcl", ttl=6,
                     standby_cluster={"restore_command": f"cp {main.arch}/%f %p",
                                      "create_replica_methods": ["restore_base"]})
    main.others = [ac]
    for n in ac.nodes:
        n.postgresql_yaml = (f"  restore_base:\n    command: /usr/bin/python3 {script} {backup}"
                             f" {n.data_dir}\n    no_params: true\n    no_leader: true\n")
    ac.start()
    leader = wait_until(lambda: standby_healthy(ac), 120, interval=0.5,
                        what="an archive-only standby leader and a streaming replica")
    al = ac.node(leader)
    ar = next(n for n in ac.nodes if n.name != leader)
    assert al.sql("SHOW primary_conninfo") == [("",)]
    assert al.sql("SHOW restore_command") == [(f"cp {main.arch}/%f %p",)]
    assert f"port='{al.pg_port}'" in ar.sql("SHOW primary_conninfo")[0][0]
    assert ac.etcd_get("initialize") == main.etcd_get("initialize")
    assert al.api("/standby-leader")[0] == 200
    # what main writes reaches both through the archive
    mp.sql("INSERT INTO a SELECT generate_series(11, 20)")
    mp.sql("SELECT pg_switch_wal()")
    for n in ac.nodes:
        wait_until(lambda n=n: rows_on(n, "a") == 20, 60, interval=0.5,
                   what=f"archived rows on {n.name}")
        assert in_recovery(n)
    # the standby leader by standby_cluster's method; the other member by it
    # too when it found no standby leader yet, else by its own list (none:
    # basebackup) from the standby leader, as Patroni 3.0.2
    assert ac.procs.log_contains(al.name, 'creating the replica with method "restore_base"')
    assert ac.procs.log_contains(ar.name, 'creating the replica with method "restore_base"') or \
        ac.procs.log_contains(ar.name, f'cloning from "{al.name}"'), ar.name
    for n in ac.nodes:
        # the archive is no member that a replica gives up on
        assert not ac.procs.log_contains(n.name, 'not streaming from "the archive'), n.name

