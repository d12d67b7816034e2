"""The functional half of test_pg_probe.py: agent/pgprobe against a real
PostgreSQL 15 primary and a streaming replica made with pg_basebackup (its
own ports, sockets and data directories in the test's temp dir), probed
through tests/tools/pg_probe: the snapshot of each role, LSNs that advance
after a write, one kept connection reused. Nothing here measures time, so
it runs in the concurrent pass; test_pg_probe.py keeps the helpers and the
tests that bound a probe of a stopped or SIGSTOPped server by its
deadline."""

import pytest

from lib.pg import PgSet
from lib.procs import wait_until
import test_pg_probe
from test_pg_probe import lsn_int, probe

pytestmark = pytest.mark.concurrent


@pytest.fixture
def pgs(workdir):
    s = PgSet(workdir)
    yield s
    s.stop_all()


# the fixture of the timed half: probe sessions killed at the end
sessions = test_pg_probe.sessions


def test_primary_and_replica_snapshots(pgs, sessions):
    n1 = pgs.init_primary("n1")
    n2 = pgs.make_replica(n1, "n2")

    p = probe(n1)
    assert p["reachable"] and p["error"] is None, p
    assert p["in_recovery"] is False
    assert p["timeline"] == 1
    assert p["current_lsn"] is not None and p["receive_lsn"] is None
    assert p["server_version_num"] // 10000 == 15
    assert p["postmaster_pid"] == n1.postmaster_pid() and p["postmaster_alive"] is True
    assert p["wal_receiver"] is None
    rows = {r["application_name"]: r for r in p["replication"]}
    assert rows["n2"]["state"] == "streaming", p
    assert rows["n2"]["sync_state"] == "async"
    assert rows["n2"]["sent_lsn"] is not None
    sysid = n1.query_one("SELECT system_identifier FROM pg_control_system()")
    assert p["system_identifier"] == str(sysid)

    r = probe(n2, via="tcp")
    assert r["reachable"] and r["in_recovery"] is True, r
    assert r["timeline"] == 1
    assert r["current_lsn"] is None
    assert r["receive_lsn"] is not None and r["replay_lsn"] is not None
    assert r["wal_receiver"]["status"] == "streaming"
    assert r["wal_receiver"]["sender_port"] == n1.port
    assert r["wal_receiver"]["sender_host"] == n1.host
    assert r["wal_receiver"]["slot_name"] == "n2"
    assert r["system_identifier"] == p["system_identifier"]
    assert r["postmaster_pid"] == n2.postmaster_pid()
    assert r["replication"] == []

    # A write moves the primary's LSN and the replica replays it.
    before = lsn_int(p["current_lsn"])
    n1.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
    after = probe(n1)
    assert lsn_int(after["current_lsn"]) > before
    wait_until(lambda: lsn_int(probe(n2)["replay_lsn"]) >= lsn_int(after["current_lsn"]), 10,
               what="replica replays the write")
    r2 = probe(n2)
    assert r2["replay_timestamp"] is not None
    assert lsn_int(r2["receive_lsn"]) >= lsn_int(r2["replay_lsn"])
    wait_until(lambda: {x["application_name"]: x for x in probe(n1)["replication"]}["n2"]
               ["replay_lsn"] is not None, 10, what="replay_lsn reported by the primary")

    # One PgProbe keeps and reuses one connection.
    s = sessions(n1)
    first = [s.probe() for _ in range(3)]
    assert all(x["reachable"] for x in first)
    assert [x["connects"] for x in first] == [1, 1, 1]
    assert len({x["backend_pid"] for x in first}) == 1
    s.close()
