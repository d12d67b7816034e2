"""Maintenance mode (issue #17, point 2; docs/pause.md), what it must not
allow and what an operator may still do, on three real nodes with writers:

- after a resume with the leader's agent gone and its key expired
  (patronictl's resume writes the config key without looking), no replica
  takes over while the old primary's PostgreSQL still accepts writes: each
  candidate asks that server itself (it led while the cluster was paused,
  when nothing fences it); dbctl resume refuses a cluster with no leader;
- an operator's switchover, failover and reinitialize work while paused,
  as in Patroni; a failover while the leader's agent does not answer needs
  --force;
- an operator's restart starts a stopped primary while paused, as in
  Patroni, but not as a second primary beside one whose agent is gone.

No assertion measures time: bounded waits only (test_pause.py has the
writer's longest wait)."""
import os
import time

import pytest

from lib.cluster import DbhaCluster
from lib.pg import pg_tool, run_pg
from lib.procs import wait_until
from lib.writer import start_with_writer
from test_pause import TTL, assert_held, in_recovery, set_pause

pytestmark = pytest.mark.concurrent


@pytest.fixture
def cluster(procs, workdir):
    c = DbhaCluster(procs, workdir, n=3, ttl=TTL, loop_wait=1, retry_timeout=2)
    yield c
    c.stop_all()


def test_no_takeover_after_resume_while_the_old_primary_runs(cluster):
    s, leader, w = start_with_writer(cluster)
    replicas = [n for n in cluster.nodes if n is not leader]
    pids = {n.name: n.postmaster_pid() for n in cluster.nodes}
    with w:
        r = cluster.dbctl("pause", "--wait", timeout=60)
        assert r.returncode == 0, r.stderr
        leader.kill()  # its postgresql runs on, unfenced: the cluster is paused
        wait_until(lambda: cluster.status()["leader"] is None, TTL + 10,
                   what="the leader key expired")
        r = cluster.dbctl("resume")
        assert r.returncode == 1 and "has no leader" in r.stderr, r.stdout + r.stderr
        assert cluster.status()["paused"] is True
        set_pause(cluster, False)  # patronictl resume
        t_resume = time.monotonic()
        # the replicas' election opens at once; none may take over
        assert_held(cluster, leader, pids, 8, "resumed with the old primary running")
        for n in replicas:
            assert cluster.procs.log_contains(n.name, "not taking over"), n.name
        assert cluster.status()["leader"] is None
        assert w.first_ack_after(t_resume, node=leader), "the old primary took no write"
        # its agent back: it takes the key, the replicas follow it
        leader.start()
        st = cluster.wait_healthy(timeout=60)
        assert st["leader"] == leader.name
    assert {n.name: n.postmaster_pid() for n in cluster.nodes} == pids
    w.assert_no_overlap()
    assert not w.missing_on(leader)

    # the server unreachable (stopped with its agent): the replicas take over
    r = cluster.dbctl("pause", "--wait", timeout=60)
    assert r.returncode == 0, r.stderr
    leader.kill_with_postgres()
    wait_until(lambda: cluster.status()["leader"] is None, TTL + 10, what="the key expired")
    set_pause(cluster, False)
    new = wait_until(lambda: cluster.status()["leader"], 60, what="a new leader")
    assert new != leader.name


def leader_is(cluster, name):
    return cluster.status()["leader"] == name


def streaming(cluster, name):
    return any(m["name"] == name and m["state"] == "streaming"
               for m in cluster.status()["members"])


def test_operator_switchover_and_failover_while_paused(cluster):
    """Patroni acts on an operator's switchover and failover while paused:
    the leader hands over, the candidate promotes, the old primary rewinds
    and rejoins, the other replica follows the new leader — the cluster
    stays paused. A failover while the leader's agent does not answer needs
    --force: paused, nothing fences that primary."""
    s, old, w = start_with_writer(cluster)
    first, other = [n for n in cluster.nodes if n is not old]
    with w:
        r = cluster.dbctl("pause", "--wait", timeout=60)
        assert r.returncode == 0, r.stderr
        t0 = time.monotonic()
        r = cluster.dbctl("--force", "switchover", "--candidate", first.name, timeout=90)
        assert r.returncode == 0, r.stdout + r.stderr
        wait_until(lambda: leader_is(cluster, first.name), 30, what=f"{first.name} leads")
        wait_until(lambda: streaming(cluster, old.name), 60,
                   what=f"{old.name} rejoins as a replica")
        # settled: the divergence check may still send it through a pg_rewind
        # (needless after a clean handover; it errs that way), which needs
        # the new leader, killed below
        time.sleep(3)
        wait_until(lambda: streaming(cluster, old.name), 60,
                   what=f"{old.name} streams from {first.name}")
        assert not in_recovery(first) and in_recovery(old) and in_recovery(other)
        wait_until(lambda: w.first_ack_after(t0, node=first), 10,
                   what=f"a write on {first.name}")
        assert cluster.status()["paused"] is True
    w.assert_no_overlap()
    assert not w.missing_on(first)

    # the leader's agent gone: refused without --force, and says why
    first.kill()
    r = cluster.dbctl("failover", "--candidate", old.name, timeout=30)
    assert r.returncode == 1 and "does not answer" in r.stderr, r.stdout + r.stderr
    assert "two primaries" in r.stderr
    assert leader_is(cluster, first.name) and not in_recovery(first)
    # its server stopped too: forced, the candidate takes over once the key expires
    first.kill_with_postgres()
    r = cluster.dbctl("--force", "failover", "--candidate", old.name, "--timeout", "60",
                      timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "does not answer" in r.stderr
    wait_until(lambda: leader_is(cluster, old.name), 30, what=f"{old.name} leads")
    wait_until(lambda: streaming(cluster, other.name), 60, what=f"{other.name} follows")
    assert not in_recovery(old)
    # the former leader's agent back while paused: it rewinds and rejoins
    first.start()
    wait_until(lambda: streaming(cluster, first.name), 90, what=f"{first.name} rejoins")
    assert cluster.status()["paused"] is True
    # an operator's reinitialize while paused, as Patroni: stop, data aside, clone, start
    pid = other.postmaster_pid()
    r = cluster.dbctl("--force", "reinit", other.name, "--wait", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == [f"{other.name}: reinitialize started",
                                     f"{other.name}: reinitialized and running"], r.stdout
    wait_until(lambda: streaming(cluster, other.name), 60, what=f"{other.name} streams again")
    assert other.postmaster_pid() not in (None, pid)
    assert cluster.status()["paused"] is True
    r = cluster.dbctl("resume", "--wait", timeout=60)
    assert r.returncode == 0, r.stderr
    assert cluster.wait_healthy(timeout=60)["leader"] == old.name


def restart(node):
    return node.api("/restart", method="POST", data="{}", timeout=60)


def test_restart_of_a_stopped_primary_while_paused(cluster):
    """Patroni's restart starts a stopped server while paused. A former
    primary starts as the primary under its own key or a free one it takes
    first, never while a member that led while paused still accepts writes
    with its agent gone (nothing fences it while paused): that server is
    asked first."""
    s, leader, w = start_with_writer(cluster)
    first, other = [n for n in cluster.nodes if n is not leader]
    with w:
        r = cluster.dbctl("pause", "--wait", timeout=60)
        assert r.returncode == 0, r.stderr
        # the leader's server stopped by hand: left stopped, under its key
        # (Patroni deletes it; docs/pause.md says why dbha keeps it)
        run_pg([pg_tool("pg_ctl"), "-D", leader.data_dir, "-m", "fast", "-w", "stop"])
        wait_until(lambda: leader.api("/health")[0] == 503, 10, what="the leader seen down")
        time.sleep(3 * cluster.loop_wait)
        assert leader.postmaster_pid() is None and in_recovery(first) and in_recovery(other)
        assert leader_is(cluster, leader.name)
        code, body = restart(leader)
        assert (code, body) == (200, b"restarted successfully"), (code, body)
        assert not in_recovery(leader) and leader_is(cluster, leader.name)
        t0 = time.monotonic()
        wait_until(lambda: w.first_ack_after(t0, node=leader), 20, what="writes again")
        assert cluster.procs.log_contains(leader.name, "holding the leader key, starting")
    w.assert_no_overlap()
    assert not w.missing_on(leader)

    # the leader's agent dead, its primary running on without a key; a
    # stopped former primary (standby.signal gone, as after a stop by hand
    # of a primary) asked to restart must not start as a second primary
    leader.kill()
    wait_until(lambda: cluster.status()["leader"] is None, TTL + 10, what="the key expired")
    run_pg([pg_tool("pg_ctl"), "-D", first.data_dir, "-m", "fast", "-w", "stop"])
    os.unlink(os.path.join(first.data_dir, "standby.signal"))
    code, body = restart(first)
    assert code == 503 and b"still accepts writes" in body, (code, body)
    assert first.postmaster_pid() is None and cluster.status()["leader"] is None
    assert not in_recovery(leader)
    # that server stopped: the restart goes ahead under the free key
    run_pg([pg_tool("pg_ctl"), "-D", leader.data_dir, "-m", "immediate", "-w", "stop"])
    code, body = restart(first)
    assert (code, body) == (200, b"restarted successfully"), (code, body)
    wait_until(lambda: leader_is(cluster, first.name), 10, what=f"{first.name} leads")
    assert not in_recovery(first)
    assert cluster.procs.log_contains(first.name, "taking the free leader key, starting")
    assert cluster.status()["paused"] is True
