"""Planned switchover with dbctl: the old primary checkpoints, stops (its
walsenders deliver all WAL), releases the key; the candidate promotes; the
old primary follows it. No acknowledged write is lost and no two nodes
accept writes at the same time."""
import json
import time

import pytest

from lib.cluster import DbhaCluster
from lib.procs import wait_until
from lib.writer import Writer

pytestmark = pytest.mark.concurrent


@pytest.fixture
def cluster(procs, workdir):
    c = DbhaCluster(procs, workdir, n=3, ttl=5, loop_wait=1, retry_timeout=1)
    yield c
    c.stop_all()


def test_switchover_to_a_named_candidate(cluster):
    cluster.start()
    s = cluster.wait_healthy(timeout=120)
    old = cluster.node(s["leader"])
    cand = next(n for n in cluster.nodes if n is not old)
    w = Writer(cluster.nodes).ensure_table(old, wait_for=[n for n in cluster.nodes if n is not old])
    with w:
        wait_until(lambda: w.first_ack_after(0, node=old), 10, what="writes on the leader")
        t0 = time.monotonic()
        r = cluster.dbctl("switchover", "--candidate", cand.name, "--force", timeout=90)
        assert r.returncode == 0, r.stderr
        assert f'to "{cand.name}"' in r.stdout
        first_new = wait_until(lambda: w.first_ack_after(t0, node=cand), 10,
                               what="writes on the new primary")
        last_old = w.last_ack(node=old)
        print(f"switchover: writes unavailable for {first_new - last_old:.3f} s "
              f"(old primary's last ack to the new primary's first)")
        s2 = cluster.wait_healthy(timeout=60)  # the old primary follows
        assert s2["leader"] == cand.name
        # The key went once the shutdown checkpoint reached the candidate,
        # before the old postmaster had finished exiting.
        assert cluster.procs.log_contains(
            old.name, "shutdown checkpoint written and delivered to the candidate")
        # ... so the old primary follows the new one without pg_rewind
        assert cluster.procs.log_contains(old.name, "restarting as a replica without pg_rewind")
        assert not cluster.procs.log_contains(old.name, "rewinding against")
        time.sleep(0.3)
    w.assert_no_overlap()
    assert w.missing_on(cand) == [], "a switchover loses no acknowledged write"
    assert cluster.etcd_get("failover") is None, "the failover key is cleared"
    history = __import__("json").loads(cluster.etcd_get("history"))
    assert history[-1][4] == cand.name


def test_switchover_refuses_a_bad_candidate(cluster):
    cluster.start()
    s = cluster.wait_healthy(timeout=120)
    r = cluster.dbctl("switchover", "--candidate", s["leader"], "--force")
    assert r.returncode == 1 and "current leader" in r.stderr
    r = cluster.dbctl("switchover", "--candidate", "nosuch", "--force")
    assert r.returncode == 1 and "no such member" in r.stderr
    r = cluster.dbctl("switchover", "--primary", "nosuch", "--force")
    assert r.returncode == 1 and "is not the leader" in r.stderr
    r = cluster.dbctl("switchover", "--scheduled", "2030-13-01T00:00:00", "--force")
    assert r.returncode == 2
    assert cluster.status()["leader"] == s["leader"]
    assert cluster.etcd_get("failover") is None


def test_max_timelines_history_keeps_the_last_lines(procs, workdir):
    """bootstrap.dcs.max_timelines_history: 1 reaches the config key and each
    promotion leaves one line in `history`, as Patroni trims it."""
    c = DbhaCluster(procs, workdir, n=2, ttl=5, loop_wait=1, retry_timeout=1,
                    max_timelines_history=1)
    try:
        c.start()
        s = c.wait_healthy(timeout=120)
        assert json.loads(c.etcd_get("config"))["max_timelines_history"] == 1
        for timeline in (2, 3):
            old = c.node(s["leader"])
            cand = next(n for n in c.nodes if n is not old)
            r = c.dbctl("switchover", "--candidate", cand.name, "--force", timeout=90)
            assert r.returncode == 0, r.stderr
            s = c.wait_healthy(timeout=60)
            assert s["leader"] == cand.name
            history = wait_until(lambda: [h for h in [json.loads(c.etcd_get("history") or "[]")]
                                          if h and h[-1][0] == timeline - 1],
                                 10, what=f"the history line of timeline {timeline - 1}")[0]
            assert len(history) == 1, history
            assert history[0][0] == timeline - 1 and history[0][4] == cand.name, history
    finally:
        c.stop_all()
