"""A running Patroni 3.0.2 cluster taken over by dbha without downtime, and
given back (issue #17, point 4), the way a Patroni operator does it.

Three nodes on loopback, real etcd and PostgreSQL 15, Debian's Patroni
(/usr/bin/patroni, run as `postgres` as its package does) bootstraps the
cluster from one config file per node; a writer inserts on every node's own
port throughout.

There: `patronictl pause --wait`; on each node in turn (the leader first),
Patroni stopped (SIGTERM: while paused it leaves PostgreSQL running and its
keys to their leases) and dbagent started with the same file; `dbctl -c
<patronictl's file> resume --wait`. Back: `dbctl pause --wait`; on each node
(the leader last) dbagent stopped and Patroni started with the same file;
`patronictl resume --wait`. Each way: the writer never waits more than 1 s
on the leader, no acknowledged write is lost, no postmaster restarts (PIDs
unchanged), the leader stays the same member, and a switchover afterwards
(`dbctl switchover`, then `patronictl switchover`) moves the writes to the
candidate with the old primary streaming from it.

What each side leaves behind and the other takes over: the leader key on
the other's lease (dbagent keeps that lease alive and moves the key onto
its own; Patroni puts the key again on its own), the member keys, the
`config` key with `pause`, the replication slots, Patroni's
`postgresql.conf` that includes `postgresql.base.conf`,
`patroni.dynamic.json`, `standby.signal`, and on the replicas
`primary_conninfo` with the passfile it names. Neither agent's file undoes
a setting of the other's that needs a restart (pg_settings.pending_restart;
Patroni's own file for a primary drops the recovery_target* settings, which
it ignores). dbha's `topology` key is not leased and Patroni does not write
it: the way back deletes it, as the README's runbook says.

Found by this test before its fixes (agent/pgctl.c): a replica taken over
kept Patroni's passfile, which names its last leader's host and port only,
so after the first switchover its walreceiver had no password and never
streamed; and dbagent's `cluster_name` (the member name, Patroni's is the
scope) and its dropping Patroni's `recovery_target* = ''` left every server
taken over pending_restart.
"""
import base64
import json
import os
import re
import subprocess
import time

import pytest

from lib.cluster import DbhaCluster
from lib.etcd_cluster import b64
from lib.pg import PG_OS_USER, as_root, hand_to_pg_user
from lib.procs import binary, wait_until
from lib.writer import Writer

TTL = 10
PATRONI = "/usr/bin/patroni"
PATRONICTL = "/usr/bin/patronictl"
MAX_WAIT = 1.0  # the longest the writer may wait on the leader, s

pytestmark = pytest.mark.skipif(not os.access(PATRONI, os.X_OK),
                                reason="needs Debian's patroni package")


@pytest.fixture
def cluster(procs, workdir):
    c = DbhaCluster(procs, workdir, n=3, ttl=TTL, loop_wait=1, retry_timeout=2,
                    log_level="INFO")
    c.ctl_cfg = os.path.join(workdir, "patronictl.yml")
    yield c
    c.stop_all()


# ---------------------------------------------------------------- the two agents

def start_patroni(c, node):
    """Patroni with the node's own config file, as the postgres OS user with
    its home (as Debian's unit runs it)."""
    hand_to_pg_user(node.dir)
    node.write_config()
    env = dict(os.environ, HOME="/var/lib/postgresql" if as_root() else
               os.environ.get("HOME", "/tmp"))
    node.starts = getattr(node, "starts", 0) + 1
    node.proc = c.procs.spawn(f"{node.name}-patroni{node.starts}", [PATRONI, node.config_path],
                              env=env, user=PG_OS_USER)
    node.agent = "patroni"


def start_dbagent(node):
    node.start()  # dbagent, the same file
    node.agent = "dbagent"


def patronictl(c, *args, timeout=60):
    r = subprocess.run([PATRONICTL, "-c", c.ctl_cfg, *args], capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, f"patronictl {' '.join(args)}: {r.returncode}\n{r.stdout}{r.stderr}"
    return r.stdout


def dbctl(c, *args, timeout=60):
    """dbctl with patronictl's file (scope, namespace, etcd3.hosts)."""
    r = subprocess.run([binary("dbctl"), "-c", c.ctl_cfg, *args], capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, f"dbctl {' '.join(args)}: {r.returncode}\n{r.stdout}{r.stderr}"
    return r.stdout


# ---------------------------------------------------------------- what etcd holds

def key_lease(c, key):
    """(value, lease id) of /service/<scope>/<key>; (None, 0) when absent."""
    status, body = c.etcd.api("kv/range", {"key": b64(f"/service/{c.scope}/{key}")})
    assert status == 200, body
    kvs = body.get("kvs") or []
    if not kvs:
        return None, 0
    return base64.b64decode(kvs[0].get("value", "")).decode(), int(kvs[0].get("lease", 0))


def cluster_keys(c):
    """[(key below /service/<scope>/, lease id)] of every key of the cluster."""
    prefix = f"/service/{c.scope}/"
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    status, body = c.etcd.api("kv/range", {"key": b64(prefix), "range_end": b64(end),
                                           "keys_only": True})
    assert status == 200, body
    return sorted((base64.b64decode(kv["key"]).decode()[len(prefix):], int(kv.get("lease", 0)))
                  for kv in body.get("kvs") or [])


def leader_name(c):
    return key_lease(c, "leader")[0]


def healthy(c):
    """The leader node once its key names a primary and both others stream from it."""
    for n in c.nodes:
        if n.proc is not None and n.proc.poll() is not None:
            pytest.fail(f"{n.name}'s {n.agent} exited with {n.proc.returncode}")
    name = leader_name(c)
    if not name:
        return None
    leader = c.node(name)
    in_recovery, streaming = leader.sql(
        "SELECT pg_is_in_recovery(), (SELECT count(*) FROM pg_stat_replication "
        "WHERE state = 'streaming')")[0]
    if in_recovery or streaming < len(c.nodes) - 1:
        return None
    return leader


def wait_healthy(c, timeout=90):
    return wait_until(lambda: healthy(c), timeout, interval=0.3,
                      what="one primary, its two replicas streaming")


def postmasters(c):
    pids = {n.name: n.postmaster_pid() for n in c.nodes}
    assert all(pids.values()), pids
    return pids


def paused_everywhere(c):
    """Every agent's GET /patroni says paused."""
    for n in c.nodes:
        code, body = n.api_json("/patroni")
        if code != 200 or not body.get("pause"):
            return False
    return True


# ---------------------------------------------------------------- the hand-over

def swap_agent(c, node, start_new, pids, what):
    """Stop the node's agent (SIGTERM), check its PostgreSQL runs on, start
    the other agent, and wait until it has put the node's member key on a
    lease of its own (and, on the leader, the leader key)."""
    _, old_lease = key_lease(c, f"members/{node.name}")
    was_leader = leader_name(c) == node.name
    t = time.monotonic()
    rc = node.stop()
    assert rc == 0, f"{node.name}: {node.agent} exited with {rc}"
    assert node.postmaster_pid() == pids[node.name], f"{what}: {node.name}'s postmaster changed"
    start_new(node)

    def taken():
        value, lease = key_lease(c, f"members/{node.name}")
        if not value or lease in (0, old_lease):
            return False
        if was_leader:
            holder, _ = key_lease(c, "leader")
            return holder == node.name
        return True
    wait_until(taken, 30, interval=0.2, what=f"{node.name}'s {node.agent} publishes")
    wait_until(lambda: node.api_json("/patroni")[1].get("pause"), 20, interval=0.2,
               what=f"{node.name}'s {node.agent} answers paused")
    print(f"{what}: {node.name} ({'leader' if was_leader else 'replica'}) handed to "
          f"{node.agent} in {time.monotonic() - t:.1f} s")
    assert node.postmaster_pid() == pids[node.name], f"{what}: {node.name}'s postmaster changed"


def migrate(c, w, leader, order, start_new, pause, resume, what, ignore_recovery_targets=False):
    """pause, the agents swapped in `order`, resume; the figures asserted."""
    pids = postmasters(c)
    pause()
    assert paused_everywhere(c)
    t0 = time.monotonic()
    for n in order:
        swap_agent(c, n, start_new, pids, what)
    resume()
    assert wait_healthy(c, timeout=60) is leader, f"{what}: the leader changed"
    time.sleep(1)
    t1 = time.monotonic()
    assert postmasters(c) == pids, f"{what}: a postmaster restarted"
    for n in c.nodes:
        if n is not leader:
            assert n.sql("SELECT pg_is_in_recovery()")[0][0], f"{what}: {n.name} left recovery"
    # neither agent's postgresql.conf undoes the other's: nothing waits for a restart
    for n in c.nodes:
        names = n.sql("SELECT array_agg(name) FROM pg_settings WHERE pending_restart")[0][0]
        if ignore_recovery_targets and names:
            # Patroni's own promotion leaves these: it drops them from the
            # primary's file and ignores them (config.py, reload_config())
            print(f"{what}: {n.name}: pending_restart of {names}, which Patroni ignores")
            names = [x for x in names if not x.startswith("recovery_target")]
        assert not names, f"{what}: {n.name} pending_restart of {names}"
        assert "pending_restart" not in n.api_json("/patroni")[1], f"{what}: {n.name}"
    # the leader's slots are its replicas', each in use, whoever created them
    want = {n.name: True for n in c.nodes if n is not leader}
    wait_until(lambda: dict(leader.sql("SELECT slot_name, active FROM pg_replication_slots")) ==
               want, 20, interval=0.3, what=f"{what}: {leader.name}'s slots {want}")
    # what an operator looks at: patronictl list over the new agents' keys
    listed = {m["Member"]: m for m in json.loads(patronictl(c, "list", "-f", "json"))}
    assert sorted(listed) == sorted(n.name for n in c.nodes), listed
    assert listed[leader.name]["Role"] == "Leader", listed
    assert all(m["State"] == "running" and "Pending restart" not in m
               for m in listed.values()), listed
    print(f"{what}: keys " + ", ".join(f"{k} (lease {l:x})" if l else k
                                       for k, l in cluster_keys(c)))
    gap, acks = w.longest_gap(leader, t0, t1)
    print(f"{what}: {t1 - t0:.1f} s from pause to resumed, {acks} writes acknowledged on "
          f"{leader.name}, longest wait {gap:.3f} s, postmasters {sorted(pids.values())} "
          f"unchanged")
    assert gap <= MAX_WAIT, f"{what}: the writer waited {gap:.3f} s on {leader.name}"
    assert not w.missing_on(leader), f"{what}: acknowledged writes lost"
    return gap, acks


def check_switchover(c, w, old, new, t_asked, what):
    """new leads and takes the writes, old streams from it."""
    assert wait_healthy(c, timeout=60) is new, f"{what}: {new.name} does not lead"
    wait_until(lambda: w.first_ack_after(t_asked, node=new), 10,
               what=f"a write on {new.name}")
    t_first = w.first_ack_after(t_asked, node=new)
    last_old = w.last_ack(node=old)
    assert old.sql("SELECT pg_is_in_recovery()")[0][0], f"{what}: {old.name} is no replica"
    wait_until(lambda: old.sql("SELECT status FROM pg_stat_wal_receiver")[0][0] == "streaming",
               30, interval=0.3, what=f"{old.name} streams")
    port = new.pg_port
    conninfo = old.sql("SELECT conninfo FROM pg_stat_wal_receiver")[0][0]
    assert re.search(rf"\bport='?{port}\b", conninfo), f"{what}: {old.name} follows {conninfo}"
    print(f"{what}: {old.name} -> {new.name}, writes unavailable "
          f"{t_first - last_old:.3f} s, {old.name} streams from {new.name}")
    assert not w.missing_on(new), f"{what}: acknowledged writes lost"


def test_patroni_to_dbha_and_back_without_downtime(cluster):
    c = cluster
    c.etcd.start()
    with open(c.ctl_cfg, "w") as f:
        f.write(f"scope: {c.scope}\nnamespace: /service/\n"
                f"etcd3:\n  hosts: {','.join(c.etcd.endpoints)}\n")
    for n in c.nodes:
        start_patroni(c, n)
    leader = wait_healthy(c, timeout=120)
    others = [n for n in c.nodes if n is not leader]
    w = Writer(c.nodes).ensure_table(leader, wait_for=others)
    with w:
        wait_until(lambda: w.first_ack_after(0, node=leader), 10, what="a first write")
        time.sleep(1)

        # there: Patroni -> dbha, the leader's agent first
        migrate(c, w, leader, [leader, *others], start_dbagent,
                lambda: patronictl(c, "pause", "--wait"),
                lambda: dbctl(c, "resume", "--wait"), "Patroni -> dbha")
        for n in c.nodes:
            assert n.proc.poll() is None and n.agent == "dbagent"

        new = others[0]
        t = time.monotonic()
        dbctl(c, "switchover", "--leader", leader.name, "--candidate", new.name, "--force",
              timeout=90)
        check_switchover(c, w, leader, new, t, "dbctl switchover")
        leader, others = new, [n for n in c.nodes if n is not new]
        time.sleep(1)

        # back: dbha -> Patroni, the leader's agent last
        migrate(c, w, leader, [*others, leader], lambda n: start_patroni(c, n),
                lambda: dbctl(c, "pause", "--wait"),
                lambda: patronictl(c, "resume", "--wait"), "dbha -> Patroni",
                ignore_recovery_targets=True)

        # dbha's topology key (not leased) names the last dbha leader, and
        # Patroni does not write it: the runbook deletes it, so that dbctl
        # builds the document from the member keys as for any Patroni cluster
        topo, lease = key_lease(c, "topology")
        assert json.loads(topo)["leader"] == leader.name and lease == 0, topo
        status, body = c.etcd.api("kv/deleterange",
                                  {"key": b64(f"/service/{c.scope}/topology")})
        assert status == 200 and body.get("deleted") == "1", body

        new = others[0]
        t = time.monotonic()
        patronictl(c, "switchover", c.scope, "--leader", leader.name, "--candidate", new.name,
                   "--force", timeout=90)
        check_switchover(c, w, leader, new, t, "patronictl switchover")
        doc = json.loads(dbctl(c, "topology", "-o", "json"))
        assert doc["leader"] == new.name and doc["version"] == 0, doc
        time.sleep(1)
    w.assert_no_overlap()
    assert not w.missing_on(new)
    for n in c.nodes:
        assert n.proc.poll() is None, f"{n.name}'s {n.agent} exited"
