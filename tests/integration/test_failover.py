"""The agent, part 2: automatic failover, self-fencing and rejoin, against
real etcd and three real PostgreSQL 15 nodes (ttl 5, loop_wait 1). A writer
probes every node's port directly through each fault; afterwards no two
nodes may have accepted writes in overlapping intervals.

Serial (not concurrent): these tests time failovers, demotions, fencing and
lease renewals. The stale postmaster.pid, the required watchdog without a
device and bootstrap.dcs.pause measure no time: they are in
test_failover_functional.py, in the concurrent pass, which takes TTL and
kill_postgres from here."""
import base64
import contextlib
import json
import os
import signal
import threading
import time

import pytest

from lib.cluster import DbhaCluster
from lib.nodecg import available as cgroups_unavailable
from lib.procs import pid_running, wait_until
from lib.slow_etcd import SlowEtcdProxy
from lib.writer import start_with_writer

TTL = 5


@pytest.fixture
def cluster(procs, workdir):
    c = DbhaCluster(procs, workdir, n=3, ttl=TTL, loop_wait=1, retry_timeout=1)
    yield c
    c.stop_all()


def kill_postgres(node, sig=signal.SIGKILL):
    pid = node.postmaster_pid()
    assert pid
    os.kill(pid, sig)
    return pid


def new_leader(c, old, timeout):
    def other():
        s = c.status()
        return s["leader"] if s["leader"] and s["leader"] != old.name else None
    return c.node(wait_until(other, timeout, interval=0.1, what="a new leader"))


def test_kill_leader_node_fails_over_and_old_leader_rejoins_with_rewind(cluster):
    s, leader, w = start_with_writer(cluster)
    with w:
        t0 = time.monotonic()
        leader.kill()            # the agent ...
        kill_postgres(leader)    # ... and its PostgreSQL together
        first = wait_until(lambda: w.first_ack_after(t0, exclude=leader), TTL + 10,
                           interval=0.05, what="a write acknowledged by a new primary")
        took = first - t0
        print(f"failover: first write acknowledged {took:.2f} s after kill -9 (ttl {TTL})")
        assert took <= TTL + 2
        new = new_leader(cluster, leader, 10)
        # the new leader's topology key, written in the tick of its promotion
        # (a write acknowledged by it is at most a loop later)
        old_tl = {m["name"]: m for m in s["members"]}[leader.name]["timeline"]
        t = json.loads(cluster.etcd_get("topology"))
        assert (t["leader"], t["timeline"], t["primary"]["port"]) == \
            (new.name, old_tl + 1, new.pg_port), t
        other = next(n for n in cluster.nodes if n not in (leader, new))
        # the dead leader's member key went with its lease
        assert [r["name"] for r in t["replicas"]] == [other.name], t
        wait_until(lambda: cluster.status()["members"] and
                   {m["name"]: m for m in cluster.status()["members"]}[other.name]["state"]
                   == "streaming", 30, what="the other replica streams from the new leader")
        leader.start()
        cluster.wait_healthy(timeout=90)
        assert cluster.status()["leader"] == new.name
        wait_until(lambda: all(r["state"] == "streaming" for r in json.loads(
            cluster.etcd_get("topology"))["replicas"]), 10, interval=0.2,
            what="the rejoined member streaming in the topology document")
        assert cluster.procs.log_contains(leader.name, "rewinding against")
        time.sleep(0.5)
    w.assert_no_overlap()
    missing = w.missing_on(new)
    print(f"acknowledged writes missing on the new primary: {len(missing)}")


def test_sigterm_on_leader_hands_over_within_3s(cluster):
    s, leader, w = start_with_writer(cluster)
    with w:
        t0 = time.monotonic()
        leader.stop()  # SIGTERM
        first = wait_until(lambda: w.first_ack_after(t0, exclude=leader), 15, interval=0.05,
                           what="a write on the new primary")
        print(f"handover: new primary took writes {first - t0:.2f} s after SIGTERM")
        assert first - t0 <= 3
        new_leader(cluster, leader, 5)
    w.assert_no_overlap()
    assert w.missing_on(cluster.primary()) == [], "a clean handover loses nothing"


def test_postgres_killed_on_leader_restarts_in_place(cluster):
    s, leader, w = start_with_writer(cluster)
    with w:
        t0 = time.monotonic()
        kill_postgres(leader)
        wait_until(lambda: w.first_ack_after(t0 + 0.1, node=leader), 30, interval=0.1,
                   what="writes on the same leader again")
        assert cluster.status()["leader"] == leader.name
        # restarted as the primary it was: crash recovery, no promotion, same timeline
        # (Patroni starts it as a replica and promotes it: a new timeline)
        tl = leader.sql("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")[0][0]
        assert int(tl, 16) == 1, tl
    w.assert_no_overlap()


def test_postgres_killed_with_primary_start_timeout_0_fails_over(procs, workdir):
    c = DbhaCluster(procs, workdir, n=3, ttl=TTL, loop_wait=1, retry_timeout=1,
                    primary_start_timeout=0)
    try:
        s, leader, w = start_with_writer(c)
        with w:
            t0 = time.monotonic()
            kill_postgres(leader)
            new = new_leader(c, leader, 15)
            wait_until(lambda: w.first_ack_after(t0, node=new), 15, what="writes on the new leader")
            c.wait_healthy(timeout=90)  # the old leader rejoins as a replica
        w.assert_no_overlap()
    finally:
        c.stop_all()


def test_etcd_down_leader_demotes_within_ttl_and_recovers(cluster):
    s, leader, w = start_with_writer(cluster)
    etcd = cluster.etcd.members[0]
    with w:
        t0 = time.monotonic()
        cluster.procs.stop(etcd.proc, signal.SIGKILL)
        # the leader must stop accepting writes within ttl of losing etcd
        wait_until(lambda: (w.last_ack(node=leader) or 0) < time.monotonic() - 1, TTL + 3,
                   interval=0.1, what="the leader stops acknowledging writes")
        last = w.last_ack(node=leader)
        print(f"etcd down: last write acknowledged {last - t0:.2f} s after etcd died (ttl {TTL})")
        assert last - t0 <= TTL
        etcd.proc = cluster.procs.spawn(etcd.name, cluster.etcd._argv(etcd))
        wait_until(lambda: cluster.etcd.healthy(etcd), 20, what="etcd back")
        cluster.wait_healthy(timeout=120)
    w.assert_no_overlap()


def test_nofailover_replica_is_never_promoted(cluster):
    for n in cluster.nodes[1:]:
        n.tags = {"nofailover": True}
    cluster.start(nodes=[cluster.nodes[0]])
    cluster.wait_healthy(timeout=120, replicas=0)
    cluster.start(nodes=cluster.nodes[1:])
    cluster.wait_healthy(timeout=120)
    leader = cluster.nodes[0]
    leader.kill()
    kill_postgres(leader)
    time.sleep(TTL + 5)
    s = cluster.status()
    assert s["leader"] is None, s
    for n in cluster.nodes[1:]:
        assert n.sql("SELECT pg_is_in_recovery()") == [(True,)]


@contextlib.contextmanager
def one_replica_left_behind(procs, workdir, max_lag):
    """Leader node1, replicas node2 (its walreceiver SIGSTOPped: it stops
    receiving WAL) and node3; ~13 MB of WAL written on the leader. Yields
    (cluster, leader, lagging, good, the leader's WAL position); the
    walreceiver is continued and the cluster stopped afterwards."""
    c = DbhaCluster(procs, workdir, n=3, ttl=TTL, loop_wait=1, retry_timeout=1,
                    maximum_lag_on_failover=max_lag)
    stopped_walreceiver = None
    try:
        c.start(nodes=[c.nodes[0]])
        c.wait_healthy(timeout=120, replicas=0)
        c.start(nodes=c.nodes[1:])
        c.wait_healthy(timeout=120)
        leader, lagging, good = c.nodes
        stopped_walreceiver = lagging.sql("SELECT pid FROM pg_stat_wal_receiver")[0][0]
        os.kill(stopped_walreceiver, signal.SIGSTOP)
        leader.sql("CREATE TABLE big AS SELECT g, repeat('x', 200) AS pad "
                   "FROM generate_series(1, 50000) g")  # ~13 MB of WAL
        lsn = leader.sql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")[0][0]
        yield c, leader, lagging, good, lsn
    finally:
        if stopped_walreceiver:
            try:
                os.kill(stopped_walreceiver, signal.SIGCONT)
            except ProcessLookupError:
                pass
        c.stop_all()


def test_lagging_replica_is_not_promoted(procs, workdir):
    with one_replica_left_behind(procs, workdir, 1024 * 1024) as (c, leader, lagging, good, lsn):
        wait_until(lambda: json.loads(c.etcd_get("status"))["optime"] >= lsn, 10,
                   what="status optime published")
        good.kill()
        kill_postgres(good)
        leader.kill()
        kill_postgres(leader)
        time.sleep(TTL + 5)
        s = c.status()
        assert s["leader"] is None, s
        assert lagging.sql("SELECT pg_is_in_recovery()") == [(True,)]
        assert c.procs.log_contains(lagging.name, "not a candidate")


def test_the_replica_with_more_wal_wins_when_the_leader_node_dies(procs, workdir):
    """Both replicas open the election at once and ask each other for their
    WAL positions. Each must be answered at once: an agent nobody read lately
    has an expired REST snapshot, and a request waiting for its loop, busy
    asking the other, timed out on both sides, each replica then took itself
    for the best and the lagging one could win (seen: 'did not answer')."""
    # the lag rule lets both run
    with one_replica_left_behind(procs, workdir, 1024 ** 3) as (c, leader, lagging, good, lsn):
        wait_until(lambda: good.sql("SELECT pg_last_wal_receive_lsn() - '0/0'::pg_lsn")[0][0]
                   >= lsn, 10, what="the good replica received the WAL")
        time.sleep(12)  # nobody reads the replicas' REST API: their snapshots expire
        leader.kill()
        kill_postgres(leader)
        new = new_leader(c, leader, TTL + 15)
        assert new is good, (new.name, good.name)
        assert c.procs.log_contains(lagging.name, f'election: peer "{good.name}" answered')
        assert not c.procs.log_contains(lagging.name, f'election: peer "{good.name}" did not')
        assert not c.procs.log_contains(good.name, f'election: peer "{lagging.name}" did not')


def test_sigstopped_leader_agent_is_fenced_before_a_replica_takes_over(cluster):
    s, leader, w = start_with_writer(cluster)
    with w:
        t0 = time.monotonic()
        os.kill(leader.proc.pid, signal.SIGSTOP)
        try:
            new = new_leader(cluster, leader, TTL + 10)
            first_new = w.first_ack_after(t0, node=new) or wait_until(
                lambda: w.first_ack_after(t0, node=new), 10, what="writes on the new leader")
            last_old = w.last_ack(node=leader)
            print(f"SIGSTOP: old primary's last write {last_old - t0:.2f} s, new primary's first "
                  f"{first_new - t0:.2f} s after the stop (ttl {TTL})")
            assert last_old < first_new
            time.sleep(1)
        finally:
            os.kill(leader.proc.pid, signal.SIGCONT)
        cluster.wait_healthy(timeout=120)  # the old node rejoins
    w.assert_no_overlap()


def test_sigstopped_leader_agent_and_postmaster_backends_commit_nothing_after_takeover(cluster):
    """The leader's agent and its postmaster SIGSTOPped together (a hung
    host, say) while the writer holds a connection to a backend of the old
    primary: a stopped postmaster cannot act on SIGQUIT, so the fencing
    process must SIGKILL its backends itself. That backend commits nothing
    after the new primary's first write (before: it kept committing 5 s
    after, as long as it was watched)."""
    s, leader, w = start_with_writer(cluster)
    pm = leader.postmaster_pid()
    assert pm
    backends = [r[0] for r in leader.sql(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'dbha-writer'")]
    assert backends, "the writer holds a connection to the old primary"
    with w:
        t0 = time.monotonic()
        os.kill(leader.proc.pid, signal.SIGSTOP)
        os.kill(pm, signal.SIGSTOP)
        try:
            new = new_leader(cluster, leader, TTL + 10)
            first_new = wait_until(lambda: w.first_ack_after(t0, node=new), 10,
                                   what="writes on the new leader")
            time.sleep(2)  # a backend that could still commit would have by now
            last_old = w.last_ack(node=leader)
            print(f"agent and postmaster SIGSTOPped: old primary's last write "
                  f"{last_old - t0:.2f} s, new primary's first {first_new - t0:.2f} s "
                  f"after the stop (ttl {TTL})")
            assert last_old < first_new
            assert w.first_ack_after(first_new, node=leader) is None
            alive = [p for p in backends + [pm] if pid_running(p)]
            assert not alive, f"still running: {alive}"
        finally:
            for pid in (pm, leader.proc.pid):
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        assert cluster.procs.log_contains(leader.name, "(found stopped) and ")
        cluster.wait_healthy(timeout=120)  # the old node rejoins
    w.assert_no_overlap()


def test_killed_leader_agent_alone_is_fenced_and_rejoins(cluster):
    s, leader, w = start_with_writer(cluster)
    with w:
        t0 = time.monotonic()
        leader.kill()  # the agent only: PostgreSQL keeps running until the fence
        new = new_leader(cluster, leader, TTL + 10)
        first_new = wait_until(lambda: w.first_ack_after(t0, node=new), 10,
                               what="writes on the new leader")
        last_old = w.last_ack(node=leader)
        print(f"kill -9 agent: old primary's last write {last_old - t0:.2f} s, new primary's "
              f"first {first_new - t0:.2f} s (ttl {TTL})")
        assert last_old < first_new
        assert leader.postmaster_pid() is None, "the fence stopped the old primary"
        leader.start()
        cluster.wait_healthy(timeout=120)
    w.assert_no_overlap()


def test_etcd_member_in_use_killed_no_failover(procs, workdir):
    c = DbhaCluster(procs, workdir, n=3, ttl=TTL, loop_wait=1, retry_timeout=1, etcd_size=3)
    try:
        s, leader, w = start_with_writer(c)
        with w:
            # the agents try the endpoints in order: the first one is "in use"
            t0 = time.monotonic()
            c.etcd.kill(c.etcd.members[0])
            time.sleep(2 * TTL)
            assert c.status()["leader"] == leader.name
            assert w.first_ack_after(time.monotonic() - 1, node=leader), "the primary still writes"
            gap = max((b - a for a, b in zip(
                [x.t_ack for x in w.acked(leader) if x.t_ack > t0 - 1],
                [x.t_ack for x in w.acked(leader) if x.t_ack > t0 - 1][1:])), default=0)
            print(f"etcd member killed: longest pause between writes on the primary {gap:.2f} s")
        w.assert_no_overlap()
        assert not c.procs.log_contains(leader.name, "fencing")
    finally:
        c.stop_all()


def test_lease_renewed_while_rest_writes_wait_on_etcd(procs, workdir):
    """The one etcd client of the leader's loop against writes that etcd never answers
    (a proxy on the path loses every write of the config key: each waits out its call's
    deadline, 1.7 s at ttl 5), with three clients sending PATCH /config back to back for
    20 s. Before, the queued PATCHes held the loop, the lease renewal waited behind them
    past its deadline and the leader was fenced (a topology write between loops did the
    same in CI, at an etcd election). Now no call but the lease's own runs past the
    renewal's due time: the leader keeps its key and its writes."""
    c = DbhaCluster(procs, workdir, n=2, ttl=TTL, loop_wait=1, retry_timeout=1)
    proxy = SlowEtcdProxy(c.etcd.members[0].endpoint).start()
    for n in c.nodes:
        n.etcd_hosts = [proxy.endpoint]
    try:
        s, leader, w = start_with_writer(c)
        config_key = base64.b64encode(f"/service/{c.scope}/config".encode())
        answers = []
        with w:
            proxy.hold(config_key)
            t0 = time.monotonic()
            until = t0 + 4 * TTL

            def patcher(i):
                body = json.dumps({"postgresql": {"parameters": {"work_mem": f"{4 + i}MB"}}})
                while time.monotonic() < until:
                    try:
                        answers.append(leader.api("/config", method="PATCH", data=body,
                                                  timeout=30)[0])
                    except OSError as e:
                        answers.append(str(e))

            threads = [threading.Thread(target=patcher, args=(i,)) for i in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=4 * TTL + 60)
            proxy.hold()
            assert not any(t.is_alive() for t in threads), "a PATCH did not come back"
            assert c.status()["leader"] == leader.name
            assert not c.procs.log_contains(leader.name, "fencing")
            assert w.first_ack_after(until, node=leader), "the primary no longer writes"
        w.assert_no_overlap()
        assert proxy.held >= 6, f"only {proxy.held} writes were lost: the fault did not bite"
        print(f"{len(answers)} PATCH /config answered ({sorted(set(map(str, answers)))}), "
              f"{proxy.held} config writes lost in {until - t0:.0f} s; leader kept")
        code, body = leader.api("/config", method="PATCH",
                                data=json.dumps({"postgresql": {"parameters": {}}}))
        assert code == 200, body
    finally:
        c.stop_all()
        proxy.stop()


def test_watchdog_whose_timeout_cannot_be_set_is_no_watchdog(cluster, workdir):
    """watchdog.mode required on a device that takes no WDIOC_SETTIMEOUT
    (a FIFO with the default driver): the timeout in force is unknown, so
    it is no watchdog (before, the failed ioctl was ignored and the node led
    with whatever timeout the device kept). The member never leads, leaves
    the device disarmed ('V') and says watchdog_failed in GET /patroni, so
    the other replica takes over when the leader dies (before, it waited
    for the blocked member, which ranked first by name)."""
    fifo = os.path.join(workdir, "watchdog")
    os.mkfifo(fifo)
    os.chmod(fifo, 0o666)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        cluster.nodes[1].watchdog = {"mode": "required", "device": fifo}
        cluster.start(nodes=[cluster.nodes[0]])
        cluster.wait_healthy(timeout=120, replicas=0)
        cluster.start(nodes=cluster.nodes[1:])
        cluster.wait_healthy(timeout=120)
        assert cluster.procs.log_contains(cluster.nodes[1].name,
                                          "cannot be opened with a timeout it reads back")
        got = b""
        try:
            got = os.read(reader, 4096)
        except BlockingIOError:
            pass
        assert got and set(got) == {ord("V")}, got  # opened and closed disarmed, never kicked
        # Patroni 3.0.2's field: the others' election skips this member
        code, doc = cluster.nodes[1].api_json("/patroni")
        assert code == 200 and doc.get("watchdog_failed") is True, doc
        assert "watchdog_failed" not in cluster.nodes[2].api_json("/patroni")[1]
        leader = cluster.nodes[0]
        leader.kill()
        kill_postgres(leader)
        new = new_leader(cluster, leader, TTL + 10)
        assert new is cluster.nodes[2], "only the member without the watchdog may lead"
    finally:
        os.close(reader)


def test_watchdog_device_is_kept_alive_while_leading_and_disarmed_on_stop(cluster, workdir):
    fifo = os.path.join(workdir, "watchdog")
    os.mkfifo(fifo)
    os.chmod(fifo, 0o666)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        node = cluster.nodes[0]
        # Patroni's "testing" driver: the timeout goes to the FIFO as text
        node.watchdog = {"mode": "required", "device": fifo, "safety_margin": 2,
                         "driver": "testing"}
        cluster.start(nodes=[node])
        cluster.wait_healthy(timeout=120, replicas=0)
        got = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                got += os.read(reader, 4096)
            except BlockingIOError:
                pass
            time.sleep(0.1)
        assert b"Ctimeout=3\n" in got, got  # ttl 5 - safety_margin 2, set and taken
        assert got.count(b"1") >= 3, got  # a keepalive every loop while leading
        assert cluster.procs.log_contains(node.name, "armed (timeout 3 s)")
        node.stop()
        tail = b""
        try:
            tail = os.read(reader, 4096)
        except BlockingIOError:
            pass
        assert tail.endswith(b"V"), tail  # the magic close disarms it
    finally:
        os.close(reader)


def test_pause_stops_automatic_actions_and_resume_restores_them(cluster):
    cluster.start()
    s = cluster.wait_healthy(timeout=120)
    leader = cluster.node(s["leader"])
    r = cluster.dbctl("pause", "--wait", timeout=90)
    assert r.returncode == 0 and "Every member reports paused" in r.stdout, r.stdout + r.stderr
    assert cluster.status()["paused"] is True
    # paused: a dead primary is not restarted and nobody takes over
    kill_postgres(leader)
    time.sleep(4 * cluster.loop_wait + 1)
    assert leader.postmaster_pid() is None
    assert cluster.status()["leader"] == leader.name
    for n in cluster.nodes:
        if n is not leader:
            assert n.sql("SELECT pg_is_in_recovery()") == [(True,)]
    r = cluster.dbctl("resume", "--wait", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    s2 = cluster.wait_healthy(timeout=60)  # restarted in place
    assert s2["leader"] == leader.name and s2["paused"] is False
    assert cluster.dbctl("resume").stdout.startswith('Cluster "itest" is not paused')


def _lease_remaining(node):
    code, body = node.api("/metrics")
    if code != 200:
        return None
    for line in body.decode().splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name == "dbha_leader_lease_remaining_seconds":
            return float(line.rsplit(" ", 1)[1])
    return None


def test_etcd_outage_shorter_than_retry_timeout_at_the_renewal_keeps_the_leader(procs, workdir):
    """Patroni's promise for retry_timeout: an etcd outage shorter than it does
    not demote the leader. The lease is renewed retry_timeout before its
    deadline (ttl 10, retry_timeout 4: 5 s after the last renewal, 4 s left
    before the deadline at 9 s), so the worst moment for etcd to stop is just
    before a renewal is due. It stops then, for 3.5 s."""
    ttl, retry = 10, 4
    c = DbhaCluster(procs, workdir, n=3, ttl=ttl, loop_wait=1, retry_timeout=retry)
    try:
        s, leader, w = start_with_writer(c)
        etcd = c.etcd.members[0]
        pm = leader.postmaster_pid()
        with w:
            # the sawtooth of the lease: its low point is the moment a renewal
            # is sent; retry_timeout + the 1 s margin must be left then
            lows, t_end = [], time.monotonic() + 2 * ttl
            prev = None
            for _ in range(4000):
                if time.monotonic() > t_end:
                    break
                left = _lease_remaining(leader)
                if left is not None and prev is not None and left > prev + 0.5:
                    lows.append(prev)
                prev = left if left is not None else prev
                time.sleep(0.02)
            print(f"lease remaining when renewed (ttl {ttl}, retry_timeout {retry}): "
                  f"{[round(x, 2) for x in lows]}")
            assert len(lows) >= 2
            assert min(lows) >= retry + 1 - 0.2, "renewed too late to survive retry_timeout"
            low = min(lows)
            wait_until(lambda: low < (_lease_remaining(leader) or 0) < low + 0.35, 3 * ttl,
                       interval=0.02, what="a renewal about to be due")
            t0 = time.monotonic()
            os.kill(etcd.proc.pid, signal.SIGSTOP)
            try:
                time.sleep(retry - 0.5)
            finally:
                os.kill(etcd.proc.pid, signal.SIGCONT)
            t1 = time.monotonic()
            wait_until(lambda: (_lease_remaining(leader) or 0) > ttl - 3, 10, interval=0.1,
                       what="the lease renewed after etcd came back")
            time.sleep(1)
            acks = [a.t_ack for a in w.acked(leader) if t0 - 1 < a.t_ack]
            gaps = [b - a for a, b in zip(acks, acks[1:])]
            print(f"etcd stopped {t1 - t0:.2f} s just before a renewal: {len(acks)} writes on the "
                  f"leader, longest gap {max(gaps):.2f} s")
        assert c.status()["leader"] == leader.name
        assert leader.postmaster_pid() == pm, "the leader's PostgreSQL was stopped"
        assert max(gaps) < 1.0, "the leader stopped taking writes during the outage"
        w.assert_no_overlap()
    finally:
        c.stop_all()


def agent_children(pid, comm):
    """PIDs of pid's children whose command name is comm."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)
            name = fields[0].split("(", 1)[1]
            ppid = int(fields[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and name == comm:
            out.append(int(d))
    return out


def test_primary_that_stops_right_after_its_restart_is_started_again(cluster):
    """Found by the chaos suite (seed 7, round 78): the leader's PostgreSQL
    was restarted in place, its start job succeeded, and PostgreSQL stopped
    before the agent's next look (there: its fencing process shut it down
    while etcd had no quorum). The agent stayed in starting-primary, holding
    the leader key, and never started it again: the cluster had no primary
    for the 3 minutes until the test ended. Here the agent is SIGSTOPped
    while its restart runs, the restarted server is killed once it answers
    (pg_ctl has succeeded), and the agent continued: it must start it again."""
    s, leader, w = start_with_writer(cluster)
    agent = leader.proc.pid
    with w:
        old_pm = kill_postgres(leader)
        new_pm = wait_until(
            lambda: (lambda p: p if p and p != old_pm else None)(leader.postmaster_pid()), 30,
            interval=0.005, what="the agent's restart of PostgreSQL")
        os.kill(agent, signal.SIGSTOP)
        try:
            # the start job (pg_ctl start -w, the agent's child) ends once the
            # server answers; the stopped agent has not seen it yet
            wait_until(lambda: leader.sql("SELECT 1"), 20, interval=0.05,
                       what="the restarted server answering")
            wait_until(lambda: not any(pid_running(p) for p in agent_children(agent, "pg_ctl")),
                       20, interval=0.05, what="pg_ctl finished")
            os.kill(new_pm, signal.SIGKILL)
            wait_until(lambda: not pid_running(new_pm), 10, interval=0.02,
                       what="the restarted postmaster gone")
        finally:
            os.kill(agent, signal.SIGCONT)
        t0 = time.monotonic()
        wait_until(lambda: w.first_ack_after(t0, node=leader), 30, interval=0.1,
                   what="writes on the same leader again")
        assert cluster.status()["leader"] == leader.name
    w.assert_no_overlap()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_elected_replica_whose_promotion_crashes_on_a_full_disk_promotes_once_it_can(
        procs, workdir):
    """Found by the chaos suite (seed 7, round 80): the replica elected after
    the leader was cut off took the leader key, and PostgreSQL crashed during
    pg_promote on its full disk; the agent started it again as a replica and
    kept the key alive with its member lease for the 3 minutes until the run
    gave up, with no primary. Now a replica that holds the key promotes
    (Patroni: "promoted self to leader because I had the session lock")."""
    c = DbhaCluster(procs, workdir, n=2, ttl=5, loop_wait=1, retry_timeout=1,
                    node_tmpfs="256M")
    try:
        s, leader, w = start_with_writer(c)
        replica = next(n for n in c.nodes if n is not leader)
        filler = os.path.join(replica.dir, "filler")
        with w:
            st = os.statvfs(replica.dir)
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                with contextlib.suppress(OSError):
                    os.posix_fallocate(fd, 0, st.f_bavail * st.f_frsize)
            finally:
                os.close(fd)
            leader.kill_with_postgres()
            # elected, it takes the key; its promotion fails on the full disk
            wait_until(lambda: c.etcd_get("leader") == replica.name, 30, interval=0.1,
                       what="the replica holding the leader key")
            wait_until(lambda: procs.log_contains(replica.name, "did not leave recovery") or
                       procs.log_contains(replica.name, "postgresql stopped"), 30, interval=0.1,
                       what="the promotion failing")
            time.sleep(3)  # a few loops holding the key as a replica
            os.unlink(filler)
            t0 = time.monotonic()
            wait_until(lambda: w.first_ack_after(t0, node=replica), 60, interval=0.1,
                       what="writes on the replica that holds the key")
            assert c.etcd_get("leader") == replica.name
        w.assert_no_overlap()
    finally:
        c.stop_all()


def diverge(partition, c, leader, replica, w, rest=True):
    """Cut the leader off from the other members (rest=False: their
    PostgreSQL ports only) until replication is broken both ways and the
    leader has acknowledged writes after the cut: its WAL goes past what the
    replica has."""
    t_cut = time.monotonic()
    partition.cut_members(leader, c.nodes, rest=rest)
    wait_until(lambda: leader.sql("SELECT count(*) FROM pg_stat_replication")[0][0] == 0
               and replica.sql("SELECT count(*) FROM pg_stat_wal_receiver")[0][0] == 0,
               30, interval=0.2, what="replication broken by the cut")
    wait_until(lambda: w.first_ack_after(time.monotonic() - 0.5, node=leader), 10,
               interval=0.1, what="writes on the leader after the cut")
    assert w.first_ack_after(t_cut + 0.1, node=leader)


@pytest.mark.skipif(cgroups_unavailable() is not None, reason=str(cgroups_unavailable()))
def test_primary_handing_over_unconfirmed_waits_for_the_candidate_and_rewinds(
        procs, workdir, partition):
    """Found by the chaos suite (seed 7, round 23): the leader, cut off from
    the other members, took writes its replica never received; after the
    heal a forced failover to that replica was asked for. The leader stopped
    for the handover, with no walsender of the candidate to confirm its last
    WAL, released the key and, before the candidate took it, started as a
    replica (standby.signal): it then followed the new leader without
    pg_rewind, its WAL past the fork point, and never streamed again. Now it
    waits for the candidate to lead and rewinds against it."""
    c = DbhaCluster(procs, workdir, n=2, ttl=10, loop_wait=1, retry_timeout=2,
                    node_cgroups=True)
    for n in c.nodes:  # the cut breaks replication within seconds, and it stays broken
        n.parameters = {"wal_sender_timeout": "2s", "wal_receiver_timeout": "2s",
                        "wal_retrieve_retry_interval": "20s"}
    try:
        s, leader, w = start_with_writer(c)
        replica = next(n for n in c.nodes if n is not leader)
        with w:
            diverge(partition, c, leader, replica, w)
            # the agents see each other again, replication stays cut through
            # the handover (left to wal_retrieve_retry_interval, it came back
            # in time in one CI run: the handover was confirmed, no rewind)
            partition.cut_members(leader, c.nodes, rest=False, replace=True)
            r = c.dbctl("failover", "--candidate", replica.name, "--force", timeout=60)
            assert r.returncode == 0, r.stdout + r.stderr
            wait_until(lambda: procs.log_contains(leader.name, "waiting for the candidate to lead")
                       or procs.log_contains(leader.name, "rewinding against the new leader"),
                       30, interval=0.1, what="the former leader waiting for the candidate")
            assert not procs.log_contains(leader.name, "delivered to the candidate")
            partition.heal()
            st = c.wait_healthy(timeout=90)
            assert st["leader"] == replica.name
            wait_until(lambda: replica.sql("SELECT count(*) FROM pg_stat_replication "
                                           "WHERE state = 'streaming'")[0][0] == 1, 60,
                       interval=0.5, what="the former leader streaming from the new one")
            assert procs.log_contains(leader.name, "rewinding against the new leader")
        w.assert_no_overlap()
    finally:
        c.stop_all()


@pytest.mark.skipif(cgroups_unavailable() is not None, reason=str(cgroups_unavailable()))
def test_former_primary_started_as_replica_past_the_fork_point_rewinds(procs, workdir, partition):
    """Found by the chaos suite (seed 27, round 3): a fenced former leader
    came back as a replica (standby.signal written while no one led) and
    followed the new leader without pg_rewind, its WAL past the fork point:
    it never streamed again, and as it had never streamed since the agent
    started, nothing judged its timeline. Here the same state is made at its
    worst: the old leader's WAL goes past the fork point (replication cut
    while it takes writes), the node dies whole, and the agent's last act
    before dying is taken to be the standby.signal it writes to start as a
    replica. The agent now judges a replica that never streamed on
    pg_control's timeline, stops it and rewinds it; before, it waited for
    streaming that could never come."""
    c = DbhaCluster(procs, workdir, n=2, ttl=5, loop_wait=1, retry_timeout=1,
                    node_cgroups=True)
    for n in c.nodes:
        n.parameters = {"wal_sender_timeout": "2s", "wal_receiver_timeout": "2s"}
    try:
        s, leader, w = start_with_writer(c)
        replica = next(n for n in c.nodes if n is not leader)
        with w:
            diverge(partition, c, leader, replica, w, rest=False)
            leader.kill_with_postgres()
            new_leader(c, leader, 30)
            signal_file = os.path.join(leader.data_dir, "standby.signal")
            open(signal_file, "w").close()
            partition.heal()
            leader.start()
            wait_until(lambda: replica.sql("SELECT count(*) FROM pg_stat_replication "
                                           "WHERE state = 'streaming'")[0][0] == 1, 90,
                       interval=0.5, what="the former leader streaming from the new one")
            assert procs.log_contains(leader.name, "past the leader's fork point")
            assert procs.log_contains(leader.name, "rewinding against")
            assert c.wait_healthy(timeout=60)["leader"] == replica.name
        w.assert_no_overlap()
    finally:
        c.stop_all()
