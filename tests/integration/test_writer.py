"""The write-probe harness (lib/writer.py) that the fault tests rely on, tested
against bare PostgreSQL 15 servers (lib/pg.py, trust authentication): it
counts acknowledged writes, sees a replica refuse them, finds lost writes,
stays bounded when a server is frozen, and its split-brain check can fail."""
import os
import signal
import time

import pytest

from lib.pg import PgSet
from lib.procs import wait_until
from lib.writer import Attempt, Writer, find_overlaps, spans


@pytest.fixture
def pgs(workdir):
    s = PgSet(workdir)
    yield s
    s.stop_all()


def writer(nodes, **kw):
    return Writer(nodes, password=None, **kw)  # PgSet servers trust 127.0.0.1


def run_for(seconds):
    time.sleep(seconds)


# ---- the overlap rule on made-up attempts ----

def ok(node, seq, t_send, t_ack):
    return Attempt(node, seq, t_send, t_ack, True)


def fail(node, seq, t_send, t_ack, error="refused"):
    return Attempt(node, seq, t_send, t_ack, False, error)


def test_spans_are_runs_of_successes_from_first_send_to_last_ack():
    att = [ok("a", 1, 0.0, 0.1), ok("a", 2, 0.2, 0.3), fail("a", 3, 0.4, 0.5),
           fail("a", None, 0.6, 0.7), ok("a", 4, 0.8, 0.9)]
    s = spans(att)
    assert [(x.start, x.end, x.count, x.first_seq, x.last_seq) for x in s] == [
        (0.0, 0.3, 2, 1, 2), (0.8, 0.9, 1, 4, 4)]


def test_overlap_rule_edges():
    a = {"a": spans([ok("a", 1, 0.0, 0.1), ok("a", 2, 0.2, 1.0)])}
    # b's first send before a's last ack: possible overlap of 0.1 s
    b = {"b": spans([ok("b", 3, 0.9, 1.1), ok("b", 4, 1.2, 1.3)])}
    o = find_overlaps({**a, **b})
    assert len(o) == 1 and o[0]["nodes"] == ("a", "b")
    assert o[0]["seconds"] == pytest.approx(0.1) and not o[0]["certain"]
    assert find_overlaps({**a, **b}, slack=0.2) == []
    # touching spans do not overlap; a failure on a in between splits its spans
    c = {"c": spans([ok("c", 5, 1.0, 1.1)])}
    assert find_overlaps({**a, **c}) == []
    d = {"d": spans([ok("d", 6, 0.0, 0.1), fail("d", 7, 0.2, 0.3), ok("d", 8, 1.5, 1.6)])}
    assert find_overlaps({**d, **b}) == []
    # both provably accepting over a common moment: certain
    e = {"e": spans([ok("e", 9, 0.1, 0.15), ok("e", 10, 0.5, 0.55)])}
    o = find_overlaps({**a, **e})
    assert len(o) == 1 and o[0]["certain"]


# ---- against real servers ----

def test_single_primary_acks_everything(pgs):
    a = pgs.init_primary("a")
    w = writer([a], interval=0.01)
    w.ensure_table(a)
    with w:
        run_for(1.0)
    rep = w.assert_no_overlap()
    r = rep["nodes"]["a"]
    assert r["ok"] >= 20 and r["failed"] == 0, w.format_report(rep)
    assert len(r["spans"]) == 1 and r["spans"][0].count == r["ok"]
    assert w.stuck == []
    assert w.missing_on(a) == []
    # every acknowledged row is there once, seqs unique, the node named
    rows = a.query("SELECT node, seq FROM dbha_writes ORDER BY seq")
    assert [s for _, s in rows] == sorted(x.seq for x in w.acked())
    assert {n for n, _ in rows} == {"a"}
    t_mid = w.acked()[5].t_ack
    assert w.first_ack_after(t_mid) == w.acked()[6].t_ack
    assert w.first_ack_after(t_mid, exclude=a) is None
    assert w.last_ack("a") == r["last_ack"]


def test_two_primaries_at_once_is_reported_as_split_brain(pgs):
    a = pgs.init_primary("a")
    b = pgs.init_primary("b")
    w = writer([a, b])
    w.ensure_table(a).ensure_table(b)
    with w:
        run_for(0.6)
    with pytest.raises(AssertionError, match="accepted writes at the same time"):
        w.assert_no_overlap()
    rep = w.report()
    assert rep["overlap"] and rep["overlaps"][0]["nodes"] == ("a", "b")
    assert rep["overlaps"][0]["certain"] and rep["overlaps"][0]["seconds"] > 0.3
    assert rep["nodes"]["a"]["ok"] > 5 and rep["nodes"]["b"]["ok"] > 5
    # slack does not hide a long split brain
    with pytest.raises(AssertionError):
        w.assert_no_overlap(slack=0.2)


def test_handover_after_the_old_primary_stopped_is_no_overlap(pgs):
    a = pgs.init_primary("a")
    b = pgs.init_primary("b", start=False)
    w = writer([a, b])
    w.ensure_table(a)
    with w:
        run_for(0.4)
        a.stop("fast")
        t_stop = time.monotonic()
        run_for(0.2)
        b.start()
        w.ensure_table(b)
        wait_until(lambda: w.first_ack_after(t_stop, exclude=a), 10, what="b acks")
        run_for(0.2)
    rep = w.assert_no_overlap()
    ra, rb = rep["nodes"]["a"], rep["nodes"]["b"]
    assert ra["ok"] > 5 and rb["ok"] > 5
    assert ra["last_ack"] < t_stop < rb["first_ack"]
    # a refused once stopped; b failed before it ran (refused, then no table yet)
    assert set(ra["errors"]) <= {"refused", "admin_shutdown", "connection_lost",
                                 "shutting_down", "cannot_connect_now"}, ra["errors"]
    assert ra["errors"].get("refused", 0) > 0 and rb["errors"].get("refused", 0) > 0
    t_first = w.first_ack_after(t_stop, exclude="a")
    assert t_first == rb["first_ack"]
    assert w.first_ack_after(t_stop, node="a") is None
    # a handover where b's first send falls before a's last ack is reported
    late = {"a": rep["nodes"]["a"]["spans"],
            "b": spans([ok("b", 0, ra["last_ack"] - 0.001, ra["last_ack"] + 0.01)])}
    assert find_overlaps(late)


def test_a_replica_refuses_writes_as_read_only(pgs):
    a = pgs.init_primary("a")
    r = pgs.make_replica(a, "r")
    w = writer([a, r])
    w.ensure_table(a, wait_for=[r])
    with w:
        run_for(0.6)
    rep = w.assert_no_overlap()
    assert rep["nodes"]["a"]["ok"] > 5
    rr = rep["nodes"]["r"]
    assert rr["ok"] == 0 and rr["spans"] == [] and rr["failed"] > 3
    assert set(rr["errors"]) == {"read_only"}, rr["errors"]
    assert all(x.node == "a" for x in w.acked())
    assert w.first_ack_after(w.t_start, node=r) is None


def test_missing_on_reports_acked_writes_absent_from_a_lagging_node(pgs):
    a = pgs.init_primary("a")
    b = pgs.make_replica(a, "b")
    w = writer([a])
    w.ensure_table(a, wait_for=[b])
    with w:
        run_for(0.3)
        b.execute("SELECT pg_wal_replay_pause()")
        wait_until(lambda: b.query_one("SELECT pg_get_wal_replay_pause_state()") == "paused",
                   10, what="replay paused on b")
        t_paused = time.monotonic()
        run_for(0.3)
    acked = {x.seq for x in w.acked()}
    after = {x.seq for x in w.acked() if x.t_send > t_paused}
    assert len(after) > 5
    missing = w.missing_on(b)
    assert set(missing) >= after and set(missing) <= acked
    assert len(missing) + b.query_one("SELECT count(*) FROM dbha_writes") == len(acked)
    assert w.missing_on(a) == []
    # resumed replay catches up: nothing missing any more
    b.execute("SELECT pg_wal_replay_resume()")
    wait_until(lambda: w.missing_on(b) == [], 10, what="b caught up")


def _postgres_pids(postmaster):
    """The postmaster and its children."""
    pids = [postmaster]
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == postmaster:
                        pids.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return pids


def test_a_frozen_server_times_out_and_stop_is_bounded(pgs):
    a = pgs.init_primary("a")
    w = writer([a], connect_timeout=0.5, statement_timeout_ms=300)
    w.ensure_table(a)
    w.start()
    pids = []
    try:
        run_for(0.3)
        pids = _postgres_pids(a.postmaster_pid())  # with the probe's backend
        for p in pids:
            try:
                os.kill(p, signal.SIGSTOP)
            except ProcessLookupError:  # a backend that just exited
                pass
        t_frozen = time.monotonic()
        run_for(1.5)
        t0 = time.monotonic()
        w.stop()
        assert time.monotonic() - t0 < 3 and w.stuck == []
    finally:
        for p in pids:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass
        w.stop()
    rep = w.assert_no_overlap()
    errs = rep["nodes"]["a"]["errors"]
    assert errs.get("timeout", 0) >= 1, w.format_report(rep)
    assert w.first_ack_after(t_frozen + 0.1) is None
