"""libdbha against real etcd and three real PostgreSQL 15 nodes, through
examples/dbha-example (an application that writes a sequence and reads the
newest row back read-your-writes): the agent-written topology key drives the
library's pool through a kill -9 failover; a replica whose replay is paused
is never used for a read-your-writes read; an acquire fails fast and clearly
when the topology has no primary."""
import datetime
import http.server
import json
import os
import subprocess
import threading
import time

import pytest

from conftest import started_cluster
from lib.cluster import SUPERUSER, SUPERUSER_PW
from lib.etcd_cluster import EtcdCluster, b64
from lib.procs import LOOPBACK, build_dir, free_port, wait_until

TTL = 4
CONNINFO = f"user={SUPERUSER} password={SUPERUSER_PW} dbname=postgres connect_timeout=2"


def example():
    return os.path.join(build_dir(), "examples", "dbha-example")


def events(path):
    """The JSON lines the example printed (its log may hold sanitizer text too)."""
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    return out


def put_key(etcd, key, value):
    status, body = etcd.api("kv/put", {"key": b64(key), "value": b64(value)})
    assert status == 200, body


def promotion_time(c, new_leader):
    """Wall time of the failover, from the last history entry the new leader wrote."""
    hist = json.loads(c.etcd_get("history") or "[]")
    entry = [h for h in hist if len(h) >= 5 and h[4] == new_leader][-1]
    return datetime.datetime.fromisoformat(entry[3]).timestamp()


@pytest.fixture(scope="module")
def cluster():
    with started_cluster("dbha-libdbha-", n=3, ttl=TTL, loop_wait=1, retry_timeout=1) as c:
        yield c


def node_doc(n, version, primary, replicas):
    def one(x, rep):
        d = {"name": x.name, "host": LOOPBACK, "port": x.pg_port}
        return dict(d, state="streaming", lag_bytes=0, sync=False, noloadbalance=False,
                    tags={}) if rep else d
    return json.dumps({"version": version, "scope": "fake", "leader": primary.name,
                       "timeline": 1, "primary": one(primary, False),
                       "replicas": [one(r, True) for r in replicas]})


def check_lost_role(c, workdir):
    """A topology (scope "fake", written by hand over the real nodes) that moves
    the primary role to a node that is really a replica: the pool's idle
    connection to the former primary is never lent again, and the new
    "primary" fails pg_is_in_recovery() so every acquire fails within its
    timeout with that reason."""
    prim = c.primary()
    rep = next(n for n in c.nodes if n is not prim)
    key = "/service/fake/topology"
    # a document is followed only while the leader key names its leader
    put_key(c.etcd, "/service/fake/leader", prim.name)
    put_key(c.etcd, key, node_doc(c, 1, prim, [rep]))
    log = os.path.join(workdir, "lost-role.log")
    with open(log, "wb") as out:
        p = subprocess.Popen([example(), "--etcd", c.etcd.endpoints[0], "--scope", "fake",
                              "--conninfo", CONNINFO, "--acquire", "primary", "--duration", "4",
                              "--interval-ms", "100", "--timeout-ms", "300"],
                             stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: [e for e in events(log) if e["event"] == "acquire" and e["ok"]], 10,
                   what="a first primary acquire")
        # the pool names its connections unless the conninfo does
        assert prim.sql("SELECT count(*) FROM pg_stat_activity "
                        "WHERE application_name = 'libdbha'")[0][0] >= 1
        put_key(c.etcd, key, node_doc(c, 2, rep, [prim]))
        put_key(c.etcd, "/service/fake/leader", rep.name)
        assert p.wait(timeout=30) == 1
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    ev = events(log)
    seen = next(e["ts"] for e in ev if e["event"] == "topology" and e["version"] == 2)
    acq = [e for e in ev if e["event"] == "acquire"]
    before = [e for e in acq if e["ts"] < seen]
    after = [e for e in acq if e["ts"] > seen + 0.35]  # an acquire in flight may end ok
    assert before and all(e["ok"] and e["node"] == prim.name for e in before), before
    assert len(after) >= 5 and not [e for e in after if e["ok"]], after
    assert all(e["errno"] == 110 and e["ms"] < 1000 for e in after), after[:3]
    why = f'node "{rep.name}" is in recovery, not a primary'
    assert len([e for e in after if why in e["error"]]) >= len(after) / 2, after
    summary = [e for e in ev if e["event"] == "summary"][-1]
    assert summary["primary_pool"]["closed"] >= 1, summary
    assert summary["primary_pool"]["in_use"] == 0 and summary["primary_pool"]["idle"] == 0


def test_failover_read_your_writes(cluster):
    c = cluster
    workdir = c.workdir
    # the leader's agent writes the key
    wait_until(lambda: (lambda d: d if d and d["primary"] and len(d["replicas"]) == 2 else None)(
        json.loads(c.etcd_get("topology") or "null")), 10, interval=0.2, what="topology key")
    check_lost_role(c, workdir)
    old = c.primary()
    replicas = sorted(n.name for n in c.nodes if n.name != old.name)
    paused = c.node(replicas[1])
    paused.sql("SELECT pg_wal_replay_pause()")
    wait_until(lambda: paused.sql("SELECT pg_get_wal_replay_pause_state()")[0][0] == "paused",
               10, what="replay paused")

    duration = 17
    log = os.path.join(workdir, "example.log")
    with open(log, "wb") as out:
        p = subprocess.Popen([example(), "--etcd", ",".join(c.etcd.endpoints), "--scope",
                              c.scope, "--conninfo", CONNINFO, "--duration", str(duration),
                              "--interval-ms", "50", "--timeout-ms", "1000", "--threads", "3"],
                             stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # steady state with the paused replica, then the leader dies whole
        time.sleep(5)
        kill_at = time.time()
        old.kill_with_postgres()
        s = wait_until(lambda: (lambda st: st if st["leader"] not in (None, old.name)
                                else None)(c.status()), 30, interval=0.2, what="new leader")
        new_leader = s["leader"]
        promoted_at = wait_until(lambda: promotion_time(c, new_leader) if any(
            len(h) >= 5 and h[4] == new_leader
            for h in json.loads(c.etcd_get("history") or "[]")) else None, 15,
            what="history entry of the failover")
        assert p.wait(timeout=duration + 20) == 0, open(log).read()[-3000:]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    ev = events(log)
    writes = [e for e in ev if e["event"] == "write"]
    reads = [e for e in ev if e["event"] == "read"]
    summary = [e for e in ev if e["event"] == "summary"][-1]
    failed = [e for e in writes if not e["ok"]]
    before = [e for e in writes if e["ts"] < kill_at]
    # steady state: every write and read worked, the paused replica was never read
    assert before and all(e["ok"] for e in before), [e for e in before if not e["ok"]][:3]
    assert {e["thread"] for e in before} == {0, 1, 2}
    reads_before = [e for e in reads if e["ts"] < kill_at]
    assert reads_before and all(e["ok"] for e in reads_before), reads_before[:3]
    assert not [e for e in reads_before if e["node"] == paused.name], \
        "a read-your-writes read used the replica whose replay is paused"
    healthy = replicas[0]
    from_replica = [e for e in reads_before if e["role"] == "replica"]
    assert from_replica and {e["node"] for e in from_replica} == {healthy}, \
        {e["node"] for e in reads_before}
    # errors only inside the failover window
    assert failed, "a kill -9 of the primary went unnoticed"
    assert all(kill_at - 0.2 <= e["ts"] <= promoted_at + 3 for e in failed), \
        [(e["ts"] - kill_at, e.get("error")) for e in failed
         if not kill_at - 0.2 <= e["ts"] <= promoted_at + 3][:5]
    # writes land on the new primary soon after its promotion
    first_new = min(e["ts"] for e in writes if e["ok"] and e["node"] == new_leader)
    lag_after_promotion = first_new - promoted_at
    seen = min(e["ts"] for e in ev if e["event"] == "topology" and e["primary"] == new_leader)
    print(f"\nfailover: first write on {new_leader} {lag_after_promotion:+.3f} s after the "
          f"history timestamp, {first_new - seen:+.3f} s after the example saw the topology "
          f"naming it ({seen - kill_at:.2f} s after the kill); {len(failed)} failed writes over "
          f"{max(e['ts'] for e in failed) - min(e['ts'] for e in failed):.2f} s; "
          f"{len(from_replica)}/{len(reads_before)} steady reads from a replica; "
          f"summary {json.dumps(summary)}")
    assert lag_after_promotion < 1.0  # measured 0.16-0.33 s
    after = [e for e in writes if e["ts"] > promoted_at + 3]
    assert after and all(e["ok"] and e["node"] == new_leader for e in after)
    # read-your-writes: never older than the last acknowledged write, except
    # writes the asynchronous failover lost (acknowledged by the old primary
    # but never replicated)
    rows = {r[0] for r in c.node(new_leader).sql("SELECT seq FROM dbha_example")}
    lost = {e["seq"] for e in writes if e["ok"] and e["seq"] not in rows}
    assert all(e["ts"] < first_new for e in writes if e["seq"] in lost), \
        "a write acknowledged by the new primary was lost"
    stale = [e for e in reads if e["ok"] and e["stale"] and e["want_seq"] not in lost]
    assert not stale, stale[:5]
    print(f"lost writes (asynchronous replication): {len(lost)}; stale reads: 0 of "
          f"{len([e for e in reads if e['ok']])}")
    # the agents' REST API as the source: the dead node's URL is skipped
    urls = ",".join(f"http://{LOOPBACK}:{n.api_port}" for n in [old] + [
        n for n in c.nodes if n is not old])
    r = subprocess.run([example(), "--rest", urls, "--conninfo", CONNINFO, "--acquire",
                        "primary", "--count", "1", "--timeout-ms", "2000"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    acq = [json.loads(x) for x in r.stdout.splitlines() if '"acquire"' in x][-1]
    assert acq["ok"] and acq["node"] == new_leader, acq


NO_PRIMARY = {"version": 3, "scope": "nop", "leader": None, "timeline": None, "primary": None,
              "replicas": [{"name": "node2", "host": LOOPBACK, "port": 1, "state": "stopped",
                            "lag_bytes": None, "sync": False, "noloadbalance": False,
                            "tags": {}}],
              "updated": "2026-11-27T13:00:00.000Z"}


def once_primary(source_args):
    """Runs the example's single primary acquire (500 ms timeout) against a
    topology without a primary; returns its acquire event and the wall time."""
    t0 = time.monotonic()
    r = subprocess.run([example(), *source_args, "--conninfo", CONNINFO, "--acquire", "primary",
                        "--count", "1", "--timeout-ms", "500"],
                       capture_output=True, text=True, timeout=30)
    took = time.monotonic() - t0
    assert r.returncode == 1, r.stdout + r.stderr
    ev = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    acq = [e for e in ev if e["event"] == "acquire"][-1]
    assert not acq["ok"] and acq["errno"] == 110, acq  # ETIMEDOUT
    assert "no primary in topology version 3" in acq["error"], acq
    assert 450 <= acq["ms"] < 2000, acq
    assert took < 10, took
    return acq


def test_acquire_fails_fast_without_primary(procs, workdir):
    """The topology names no primary: an acquire gives up after its timeout
    with an error that says so, rather than waiting."""
    etcd = EtcdCluster(procs, workdir)
    etcd.start()
    put_key(etcd, "/service/nop/topology", json.dumps(NO_PRIMARY))
    once_primary(["--etcd", etcd.endpoints[0], "--scope", "nop"])


def test_client_follows_across_etcd_restart(procs, workdir):
    """The client's watch survives etcd dying (kill -9) and coming back on the
    same port: a version written after the restart reaches the callback."""
    etcd = EtcdCluster(procs, workdir)
    etcd.start()
    put_key(etcd, "/service/nop/topology", json.dumps(NO_PRIMARY))
    log = os.path.join(workdir, "restart.log")
    with open(log, "wb") as out:
        p = subprocess.Popen([example(), "--etcd", etcd.endpoints[0], "--scope", "nop",
                              "--conninfo", CONNINFO, "--acquire", "primary", "--duration", "30",
                              "--interval-ms", "200", "--timeout-ms", "50"],
                             stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def versions():
            return [e["version"] for e in events(log) if e["event"] == "topology"]
        wait_until(lambda: 3 in versions(), 10, what="version 3 seen")
        m = etcd.members[0]
        etcd.kill(m)
        time.sleep(1)
        m.proc = procs.spawn(m.name, etcd._argv(m))
        wait_until(lambda: etcd.healthy(m), 20, interval=0.1, what="etcd back")
        t0 = time.monotonic()
        put_key(etcd, "/service/nop/topology", json.dumps(dict(NO_PRIMARY, version=4)))
        wait_until(lambda: 4 in versions(), 15, what="version 4 seen after the restart")
        print(f"\nversion 4 seen {time.monotonic() - t0:.2f} s after it was written")
        assert versions() == [3, 4]
        assert p.poll() is None
    finally:
        p.kill()
        p.wait()


class TopologyHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        body = json.dumps(NO_PRIMARY if self.path == "/topology" else {"error": "?"}).encode()
        self.send_response(200 if self.path == "/topology" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_rest_source_skips_dead_agent():
    """From agents' REST URLs: a URL where nothing listens is skipped and the
    next one's GET /topology is used."""
    srv = http.server.HTTPServer((LOOPBACK, 0), TopologyHandler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        dead = f"http://{LOOPBACK}:{free_port()}"
        once_primary(["--rest", f"{dead},http://{LOOPBACK}:{srv.server_port}/"])
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)
