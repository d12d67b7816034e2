"""A promotion that does not finish, against real etcd and three real
PostgreSQL 15 nodes (ttl 10, loop_wait 1, retry_timeout 2): the elected
replica's startup process is SIGSTOPped before the leader dies, so
pg_promote() asks for a promotion that PostgreSQL cannot carry out yet, and
would carry out the moment the process is continued.

The hole this guards against: the agent waited for the promotion for 15 s
in one blocking step, with the fencing process not yet armed and the lease
not renewed; etcd expired the leader key meanwhile, another member was
promoted, and the pending request was still there to make the first node
writable as soon as its startup process ran again. Now the fence is armed
before pg_promote(), the wait never outlasts the lease's renewal, and a
promotion that cannot be shown to be withdrawn is ended by stopping
PostgreSQL (immediate shutdown, verified) before the key is let go or lost:
when the leader key stops being ours (here: cut off from etcd) or when
replay made no progress for 15 s.

A writer probes every node's port directly; no two nodes may accept writes
in overlapping intervals, and the stuck node accepts none at all.
"""
import contextlib
import os
import signal
import time

import pytest

from lib.cluster import DbhaCluster
from lib.procs import pid_running, proc_state, wait_until
from lib.writer import start_with_writer

TTL = 10
STALL = 15  # HA_PROMOTE_STALL_USEC (agent/policy.h)


@pytest.fixture
def cluster(procs, workdir):
    c = DbhaCluster(procs, workdir, n=3, ttl=TTL, loop_wait=1, retry_timeout=2,
                    etcd_per_node=True)
    yield c
    c.stop_all()


def startup_pid(node):
    """The PID of the node's startup (recovery) process."""
    pm = node.postmaster_pid()
    assert pm
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                title = f.read().decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pm and "startup" in title:
            return int(entry)
    raise AssertionError(f"no startup process under postmaster {pm}")


def resume(pid):
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


@contextlib.contextmanager
def stuck_promotion(cluster):
    """Leader dies with one replica (cand) the only candidate (the other's
    agent SIGSTOPped) and cand's startup process SIGSTOPped: cand takes the
    leader key and asks for a promotion that cannot finish. Yields (cand,
    other, the stopped startup PID, writer, time of the leader's death)
    once cand holds the key; everything stopped is continued afterwards."""
    _, leader, w = start_with_writer(cluster)
    cand, other = [n for n in cluster.nodes if n is not leader]
    stopped = startup_pid(cand)
    with w:
        os.kill(other.proc.pid, signal.SIGSTOP)
        os.kill(stopped, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            leader.kill_with_postgres()
            wait_until(lambda: cluster.status()["leader"] == cand.name, TTL + 20, interval=0.2,
                       what=f"{cand.name} holds the leader key")
            assert cand.sql("SELECT pg_is_in_recovery()") == [(True,)]
            yield cand, other, stopped, w, t0
        finally:
            resume(other.proc.pid)
            resume(stopped)
    w.assert_no_overlap()


def other_takes_over(cluster, cand, other, stopped, w, t0, timeout):
    """Waits for `other` to lead and take a write; by then cand's PostgreSQL,
    whose startup process held the request, must be gone. Then continues
    that process (if it still exists) and checks cand takes no write."""
    wait_until(lambda: cluster.status()["leader"] == other.name, timeout, interval=0.2,
               what=f"{other.name} leads")
    first_new = wait_until(lambda: w.first_ack_after(t0, node=other), 15,
                           what=f"a write acknowledged by {other.name}")
    state = proc_state(stopped)
    print(f"{other.name}'s first write {first_new - t0:.1f} s after the leader died; "
          f"{cand.name}'s stopped startup process: {state or 'gone'}")
    assert not pid_running(stopped), \
        f"{cand.name}'s startup process (state {state}) can still finish the promotion"
    resume(stopped)
    time.sleep(3)  # a promotion that could still finish would have by now
    assert w.first_ack_after(t0, node=cand) is None, f"{cand.name} took a write"


def test_promotion_that_makes_no_progress_is_ended_before_the_key_is_released(cluster):
    with stuck_promotion(cluster) as (cand, other, stopped, w, t0):
        t_key = time.monotonic()
        resume(other.proc.pid)  # other may lead once cand lets go
        other_takes_over(cluster, cand, other, stopped, w, t0, STALL + TTL + 30)
        took = time.monotonic() - t_key
        assert cluster.procs.log_contains(cand.name, "made no progress with the promotion")
        print(f"{cand.name} let go of the stuck promotion; {other.name} led "
              f"{took:.1f} s after {cand.name} took the key")
        cluster.wait_healthy(timeout=120)  # cand rejoins as a replica


def test_promotion_pending_when_the_leader_key_is_lost_is_ended_first(cluster, partition):
    with stuck_promotion(cluster) as (cand, other, stopped, w, t0):
        partition.cut_etcd(cand)
        resume(other.proc.pid)
        other_takes_over(cluster, cand, other, stopped, w, t0, TTL + 30)
        # the agent's own rule, or the fencing process when the agent is
        # held up by etcd requests that hang past its heartbeat (the agent
        # says so once those return)
        def said():
            if cluster.procs.log_contains(cand.name, "while postgresql promotes"):
                return "its agent"
            if cluster.procs.log_contains(cand.name, "the fencing process shut postgresql"):
                return "the fencing process"
            return None
        print(f"{cand.name} stopped by " + wait_until(said, 30, what="the stop logged"))
        partition.heal()
        cluster.wait_healthy(timeout=120)


def test_promotion_asked_for_by_someone_else_on_a_replica_is_ended(cluster):
    """An operator (or a tool) runs pg_promote() on a replica whose startup process is
    stopped: the request waits in the data directory (the promote signal file) and would
    make that replica a second primary the moment the process runs again. Its agent, which
    has watched the directory since long before (inotify, not a look every tick), sees the
    file appear, takes it for a promotion it does not hold the key for, and stops
    PostgreSQL before the process is continued; the replica takes no write."""
    _, leader, w = start_with_writer(cluster)
    rep = next(n for n in cluster.nodes if n is not leader)
    time.sleep(3)  # the agent watches the directory well before the file appears
    stopped = startup_pid(rep)
    with w:
        os.kill(stopped, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            assert rep.sql("SELECT pg_promote(false)") == [(True,)]
            assert os.path.exists(os.path.join(rep.data_dir, "promote"))
            wait_until(lambda: not pid_running(stopped), 30, interval=0.1,
                       what=f"{rep.name}'s PostgreSQL stopped with the request pending")
            took = time.monotonic() - t0
            assert cluster.procs.log_contains(rep.name, "while postgresql promotes")
        finally:
            resume(stopped)
        print(f"{rep.name} stopped {took:.1f} s after pg_promote(); startup process "
              f"{proc_state(stopped) or 'gone'}")
        time.sleep(3)  # a promotion that could still finish would have by now
        assert w.first_ack_after(t0, node=rep) is None, f"{rep.name} took a write"
        assert cluster.status()["leader"] == leader.name
        cluster.wait_healthy(timeout=120)  # rep starts again as a replica
    w.assert_no_overlap()
