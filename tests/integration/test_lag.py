"""Replication lag, against real etcd and three real PostgreSQL 15 nodes (ttl
5, loop_wait 1, maximum_lag_on_failover 1 MB). One replica pauses replay
(pg_wal_replay_pause()) while the primary writes 4 MB: its replay lag shows
in its member key, GET /cluster, GET /patroni, /metrics, dbctl status and
dbctl topology, /replica?lag=1MB turns it away, and when the primary dies the
other replica wins even though the paused one has received as much WAL (and
ranks first by name). Left alone, the paused replica is never promoted and
says why, until its replay resumes."""
import json
import re
import time

import pytest

from lib.cluster import DbhaCluster
from lib.procs import wait_until

pytestmark = pytest.mark.concurrent

TTL = 5
LIMIT = 1048576  # maximum_lag_on_failover
WRITE_MB = 4


@pytest.fixture
def cluster(procs, workdir):
    c = DbhaCluster(procs, workdir, n=3, ttl=TTL, loop_wait=1, retry_timeout=1,
                    maximum_lag_on_failover=LIMIT)
    yield c
    c.stop_all()


def members(c):
    return {m["name"]: m for m in c.status()["members"]}




def pause_and_write(c):
    """Starts the cluster, pauses replay on the replica whose name sorts
    first (it would win a tie on WAL received) and writes WRITE_MB on the
    primary. Returns (leader, paused, other) once the lag shows in status."""
    c.start()
    s = c.wait_healthy(timeout=120)
    leader = c.node(s["leader"])
    paused, other = sorted((n for n in c.nodes if n is not leader), key=lambda n: n.name)
    leader.sql("CREATE TABLE ballast (x text)")
    wait_until(lambda: all(n.sql("SELECT to_regclass('ballast') IS NOT NULL")[0][0]
                           for n in (paused, other)), 20, what="the table on both replicas")
    paused.sql("SELECT pg_wal_replay_pause()")
    leader.sql("INSERT INTO ballast SELECT repeat('x', 1000) FROM generate_series(1, %s)",
               (WRITE_MB * 1000,))

    def lag_shows():
        ms = members(c)
        return ms if (ms[paused.name]["lag_bytes"] or 0) > LIMIT and \
            ms[other.name]["lag_bytes"] is not None and \
            ms[other.name]["lag_bytes"] <= LIMIT else None
    wait_until(lag_shows, 20, interval=0.2, what="the paused replica's lag in dbctl status")
    return leader, paused, other


def parse_metrics(text):
    """{(name, frozenset of (label, value))): value}"""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, value = line.rsplit(" ", 1)
        name, _, labels = head.partition("{")
        pairs = frozenset(re.findall(r'(\w+)="([^"]*)"', labels))
        out[(name, pairs)] = float(value)
    return out


def metric(samples, name, **labels):
    found = [v for (n, ls), v in samples.items()
             if n == name and all((k, v) in ls for k, v in labels.items())]
    assert found, f"no sample {name} {labels}"
    return found[0]


def check_lag_everywhere(c, leader, paused, other):
    # the member keys in etcd
    def keys():
        x = json.loads(c.etcd_get(f"members/{paused.name}"))
        lk = json.loads(c.etcd_get(f"members/{leader.name}"))
        rows = {r["name"]: r for r in lk.get("replication", [])}
        # each key is up to a loop old: the paused replica's must already show
        # the WAL it received (CI once read it from before the 4 MB write)
        ok = x.get("replay_paused") is True and paused.name in rows and \
            lk["xlog_location"] - rows[paused.name]["replay_lsn"] > LIMIT and \
            x.get("receive_lsn", 0) - x.get("replay_lsn", 0) > LIMIT
        return (x, lk, rows) if ok else None
    x, lk, rows = wait_until(keys, 10, interval=0.2, what="lag in the member keys")
    print(f"\nmember key of {paused.name}: {json.dumps(x)}")
    print(f"leader's replication rows: {json.dumps(lk['replication'])}")
    assert x["receive_lsn"] - x["replay_lsn"] > LIMIT, x
    assert isinstance(x["lag_seconds"], (int, float)) and x["lag_seconds"] >= 0, x
    assert x["xlog_location"] == max(x["receive_lsn"], x["replay_lsn"]), "Patroni's field kept"
    row = rows[paused.name]
    assert set(row) == {"name", "state", "sync_state", "write_lsn", "flush_lsn", "replay_lsn",
                        "write_lag", "flush_lag", "replay_lag"}, row
    assert row["state"] == "streaming" and row["flush_lsn"] > row["replay_lsn"], row
    # the other replica's key is up to a loop old too (under load CI read it
    # from the loop before it replayed the 4 MB)
    def other_key():
        y = json.loads(c.etcd_get(f"members/{other.name}"))
        return y if y["replay_lsn"] > x["replay_lsn"] else None
    y = wait_until(other_key, 5, interval=0.2, what="the other replica's key past the paused one")
    assert "replay_paused" not in y and y["replay_lsn"] > x["replay_lsn"], y

    # GET /cluster (any member answers from its last view of the same keys)
    def cluster_doc():
        code, cl = other.api_json("/cluster")
        by = {m["name"]: m for m in cl["members"]} if code == 200 else {}
        x, y = by.get(paused.name, {}), by.get(other.name, {})
        return by if x.get("replay_paused") and x.get("lag", 0) > LIMIT and \
            y.get("lag", LIMIT + 1) <= LIMIT else None
    by = wait_until(cluster_doc, 10, interval=0.2, what="the paused replica's lag in /cluster")
    assert by[paused.name]["lag"] > LIMIT and by[paused.name]["replay_paused"] is True, by
    # seconds: the replica's own growing view (now - its last replayed commit)
    # beats the leader's replay_lag, which stands still while replay does
    assert by[paused.name]["lag_seconds"] >= row["replay_lag"] and \
        by[paused.name]["lag_seconds"] > 0, (by[paused.name], row)
    assert by[paused.name]["flush_lag_bytes"] < by[paused.name]["lag"]
    assert by[other.name]["lag"] <= LIMIT and "replay_paused" not in by[other.name]
    assert "lag" not in by[leader.name]

    # GET /patroni of the paused replica, and of the leader
    def patroni_doc():
        code, doc = paused.api_json("/patroni")
        return doc if code == 200 and doc.get("lag_bytes", 0) > LIMIT else None
    doc = wait_until(patroni_doc, 10, interval=0.2, what="lag_bytes in GET /patroni")
    assert doc["xlog"]["paused"] is True, doc
    assert doc["lag_bytes"] > LIMIT and isinstance(doc["lag_seconds"], (int, float)), doc
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?\+00:00",
                        doc["xlog"]["replayed_timestamp"]), doc["xlog"]
    # (each agent's documents are at most a second old: the other replica's
    # may still be from before it caught up with the 4 MB)
    doc = wait_until(lambda: (lambda d: d if d and d.get("lag_bytes", LIMIT + 1) <= LIMIT
                              else None)(other.api_json("/patroni")[1]),
                     10, interval=0.2, what="the other replica's /patroni caught up")
    assert doc["xlog"]["paused"] is False and doc["lag_bytes"] <= LIMIT, doc
    code, doc = leader.api_json("/patroni")
    lrows = {r["application_name"]: r for r in doc["replication"]}
    assert doc["xlog"]["location"] - lrows[paused.name]["replay_lsn"] > LIMIT, lrows
    assert {"write_lsn", "flush_lsn", "write_lag", "flush_lag", "replay_lag", "sync_state"} <= \
        set(lrows[other.name])

    # /metrics
    def leader_metrics():
        m = parse_metrics(leader.api("/metrics")[1].decode())
        return m if metric(m, "dbha_replication_lag_bytes",
                           application_name=other.name) <= LIMIT else None
    m = wait_until(leader_metrics, 10, interval=0.2, what="the leader's /metrics caught up")
    assert metric(m, "dbha_replication_lag_bytes", application_name=paused.name) > LIMIT
    assert metric(m, "dbha_replication_lag_bytes", application_name=other.name) <= LIMIT
    assert metric(m, "dbha_replication_flush_lag_bytes", application_name=paused.name) >= 0
    assert metric(m, "dbha_replication_write_lag_seconds", application_name=other.name) >= 0
    assert metric(m, "dbha_replication_replay_lag_seconds", application_name=paused.name) >= 0
    m = parse_metrics(paused.api("/metrics")[1].decode())
    assert metric(m, "patroni_xlog_paused") == 1.0
    assert metric(m, "dbha_replica_lag_bytes") > LIMIT
    assert metric(m, "dbha_replica_lag_seconds") >= 0
    m = parse_metrics(other.api("/metrics")[1].decode())
    assert metric(m, "patroni_xlog_paused") == 0.0

    # dbctl status and topology
    ms = members(c)
    assert ms[paused.name]["lag_bytes"] > LIMIT and ms[paused.name]["replay_paused"] is True
    assert ms[paused.name]["lag_seconds"] > 0, ms[paused.name]
    assert isinstance(ms[other.name]["lag_seconds"], (int, float)), ms[other.name]
    assert ms[leader.name]["lag_bytes"] == 0
    # the topology document: rewritten when the lag moves to another bucket
    def topology():
        r = c.dbctl("topology", "-o", "json")
        assert r.returncode == 0, r.stderr
        t = json.loads(r.stdout)
        tops = {n["name"]: n for n in t["replicas"]}
        return t if tops[paused.name]["lag_bytes"] > LIMIT and \
            tops[other.name]["lag_bytes"] <= LIMIT else None
    t = wait_until(topology, 10, interval=0.2, what="the paused replica's lag in the topology")
    assert t["leader"] == leader.name
    r = c.dbctl("status")
    assert r.returncode == 0, r.stderr
    print(r.stdout)
    row = next(l for l in r.stdout.splitlines() if f" {paused.name} " in l)
    assert int(row.split("|")[6]) >= WRITE_MB - 1, r.stdout  # "Lag in MB", replay-based

    # /replica?lag=1MB: the paused replica is turned away, the other is not
    assert paused.api("/replica?lag=1MB")[0] == 503
    assert other.api("/replica?lag=1MB")[0] == 200
    assert paused.api("/replica")[0] == 200


def test_paused_replica_shows_lag_and_the_other_replica_wins(cluster):
    leader, paused, other = pause_and_write(cluster)
    check_lag_everywhere(cluster, leader, paused, other)

    t0 = time.monotonic()
    leader.kill_with_postgres()

    def new_leader():
        s = cluster.status()
        return s["leader"] if s["leader"] and s["leader"] != leader.name else None
    won = wait_until(new_leader, TTL + 20, interval=0.2, what="a new leader")
    print(f"new leader {won} {time.monotonic() - t0:.1f} s after kill -9 (ttl {TTL})")
    assert won == other.name
    assert other.sql("SELECT pg_is_in_recovery()")[0][0] is False
    # (the paused replica may have received WAL past the new leader's fork
    # point: then it rewinds, which is the rejoin's business, not ours)
    for _ in range(4):
        assert cluster.status()["leader"] == other.name
        time.sleep(0.5)
    # The paused replica's own verdict ("not a candidate for promotion:
    # replay is paused, ...") is logged only if one of its ticks sees the
    # cluster without a leader; the other replica may take the key before
    # that (CI of 668c458). The verdict is shown where the paused replica is
    # left alone: the next test.


def test_only_the_paused_replica_left_is_not_promoted_until_replay_resumes(cluster):
    leader, paused, other = pause_and_write(cluster)
    other.stop()  # SIGTERM: its agent stops PostgreSQL
    leader.kill_with_postgres()

    # the leader key expires within ttl; then nobody may take it for 2 x ttl
    wait_until(lambda: cluster.status()["leader"] is None, TTL + 5, interval=0.2,
               what="the dead leader's key to expire")
    deadline = time.monotonic() + 2 * TTL
    while time.monotonic() < deadline:
        assert cluster.status()["leader"] is None
        time.sleep(0.5)
    assert paused.sql("SELECT pg_is_in_recovery()")[0][0] is True
    with open(cluster.procs.log_path(paused.name), errors="replace") as f:
        lines = [l for l in f if "not a candidate for promotion" in l]
    assert lines and "replay is paused, " in lines[0] and \
        f"(maximum_lag_on_failover {LIMIT})" in lines[0], lines
    assert len(lines) == 1, f"logged once per verdict, not every loop: {lines}"

    m = members(cluster)[paused.name]
    assert m["failover_blocked"].startswith("replay is paused, "), m
    assert m["lag_bytes"] > LIMIT
    r = cluster.dbctl("status")
    assert r.returncode == 0, r.stderr
    print(r.stdout)
    assert f" {paused.name}: not promoted: replay is paused, " in r.stdout, r.stdout
    code, doc = paused.api_json("/patroni")
    assert doc["failover_blocked"].startswith("replay is paused, "), doc

    t0 = time.monotonic()
    paused.sql("SELECT pg_wal_replay_resume()")
    wait_until(lambda: cluster.status()["leader"] == paused.name, TTL + 15, interval=0.2,
               what="the resumed replica to be promoted")
    print(f"promoted {time.monotonic() - t0:.1f} s after pg_wal_replay_resume()")
    wait_until(lambda: paused.sql("SELECT pg_is_in_recovery()")[0][0] is False, 15,
               what="a writable primary")
    assert "failover_blocked" not in members(cluster)[paused.name]
    assert cluster.procs.log_contains(paused.name, "a candidate for promotion again")
