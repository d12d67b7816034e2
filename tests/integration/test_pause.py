"""Maintenance mode as Patroni's (issue #17, point 2), on three real nodes
with a writer on every node: while the cluster is paused no agent stops,
restarts, promotes or demotes PostgreSQL by itself, also when an agent is
stopped (SIGTERM) or killed (SIGKILL) — the fencing process stands down,
the leader key is left to its lease and a restarted agent takes its running
primary back; an operator's restart (leader and replica) works while
paused, as in Patroni. The runbook Patroni documents for upgrading itself (pause,
restart every agent, resume) keeps the primary writable throughout: the
longest wait of the writer on the leader is bounded (1 s), no acknowledged
write is lost, and no postmaster restarts.

What pause must not allow, and an operator's switchover and failover while
paused, are in test_pause_guard.py (no assertion there measures time)."""
import json
import time

import pytest

from lib.cluster import DbhaCluster
from lib.etcd_cluster import b64
from lib.procs import wait_until
from lib.writer import start_with_writer

TTL = 10


@pytest.fixture
def cluster(procs, workdir):
    c = DbhaCluster(procs, workdir, n=3, ttl=TTL, loop_wait=1, retry_timeout=2)
    yield c
    c.stop_all()


def in_recovery(node):
    return node.sql("SELECT pg_is_in_recovery()")[0][0]


def assert_held(cluster, leader, pids, seconds, what):
    """For `seconds`: the leader's and every replica's postmaster stay the
    same processes and no replica leaves recovery."""
    deadline = time.monotonic() + seconds
    for _ in range(int(seconds / 0.5) + 2):
        for n in cluster.nodes:
            assert n.postmaster_pid() == pids[n.name], f"{what}: {n.name}'s postmaster changed"
            if n is not leader:
                assert in_recovery(n), f"{what}: {n.name} left recovery"
        if time.monotonic() >= deadline:
            return
        time.sleep(0.5)


def set_pause(cluster, value):
    """As patronictl pause/resume: the config key's pause, written straight."""
    key = f"/service/{cluster.scope}/config"
    cfg = json.loads(cluster.etcd_get("config") or "{}")
    cfg["pause"] = value
    status, body = cluster.etcd.api("kv/put", {"key": b64(key), "value": b64(json.dumps(cfg))})
    assert status == 200, body


def test_paused_agents_stop_die_and_restart_with_postgresql_untouched(cluster):
    s, leader, w = start_with_writer(cluster)
    replica = next(n for n in cluster.nodes if n is not leader)
    pids = {n.name: n.postmaster_pid() for n in cluster.nodes}
    assert all(pids.values()), pids
    with w:
        r = cluster.dbctl("pause", "--wait", timeout=60)
        assert r.returncode == 0, r.stderr
        t0 = time.monotonic()

        # the leader's agent stopped: postgresql runs on, the key expires, nobody promotes
        leader.stop()
        assert cluster.procs.log_contains(leader.name, "paused: leaving postgresql running")
        assert_held(cluster, leader, pids, TTL + 3, "leader agent stopped")
        assert cluster.status()["leader"] is None
        leader.start()
        wait_until(lambda: cluster.status()["leader"] == leader.name, 30,
                   what=f"{leader.name} takes its key back")

        # killed: the fence stands down, the primary is not killed at the lease's end
        leader.kill()
        assert_held(cluster, leader, pids, TTL + 3, "leader agent killed")
        leader.start()
        wait_until(lambda: cluster.status()["leader"] == leader.name, 30,
                   what=f"{leader.name} takes its key back")

        # a replica's agent stopped and started: its postgresql is left alone
        replica.stop()
        assert_held(cluster, leader, pids, 2, "replica agent stopped")
        replica.start()
        wait_until(lambda: any(m["name"] == replica.name and m["state"] == "streaming"
                               for m in cluster.status()["members"]), 30,
                   what=f"{replica.name} back")

        r = cluster.dbctl("resume", "--wait", timeout=60)
        assert r.returncode == 0, r.stderr
        st = cluster.wait_healthy(timeout=60)
        assert st["leader"] == leader.name
        time.sleep(1)
        t1 = time.monotonic()
    assert {n.name: n.postmaster_pid() for n in cluster.nodes} == pids
    gap, _ = w.longest_gap(leader, t0, t1)
    print(f"paused {t1 - t0:.1f} s with the leader's agent stopped, killed and restarted: "
          f"{len(w.acked(leader))} writes acknowledged, longest wait {gap:.3f} s")
    assert gap <= 1.0, gap
    w.assert_no_overlap()
    assert not w.missing_on(leader)

    # an operator's restart works while paused (Patroni allows it), on a
    # replica and on the leader, which keeps its key
    r = cluster.dbctl("pause", "--wait", timeout=60)
    assert r.returncode == 0, r.stderr
    for n in (replica, leader):
        r = cluster.dbctl("--force", "restart", n.name, timeout=90)
        assert r.returncode == 0, r.stdout + r.stderr
        assert n.postmaster_pid() not in (None, pids[n.name]), n.name
    wait_until(lambda: any(m["name"] == replica.name and m["state"] == "streaming"
                           for m in cluster.status()["members"]), 30,
               what=f"{replica.name} streams again")
    st = cluster.status()
    assert st["leader"] == leader.name and st["paused"] is True
    assert not in_recovery(leader) and in_recovery(replica)
