"""The functional half of test_etcd_client.py: the etcd client library
(lib/etcd*.c) against real etcd 3.4 processes through
tests/tools/etcd_driver: every operation, a 100-round create-if-absent race
between two clients (one winner a round, whatever the timing), TLS with
client certificates, one connection for many calls, and malformed answers
from a fake endpoint. Each test has its own etcd (free ports, its temp dir)
or fake server; nothing here measures time, so these run in the concurrent
pass. test_etcd_client.py keeps the driver helpers and the tests that time
things: lease expiry, deadlines and time limits, keepalive streams, a
member killed under a client, and token auth with a 2 s token ttl."""
import http.server
import os
import threading

import pytest

from lib.etcd_cluster import EtcdCluster, EtcdTls, now_ms, read_json_lines
from lib.procs import free_port
from test_etcd_client import DRIVER, drive, fails, ok1

pytestmark = pytest.mark.concurrent


@pytest.fixture
def etcd(procs, workdir):
    return EtcdCluster(procs, workdir, size=1).start()


def test_operations(etcd):
    """put/get/range/delete/txn/lease calls and their typed errors on one member."""
    ep = etcd.endpoints
    r1 = ok1(ep, "put", "/t/a", "one")
    r2 = ok1(ep, "put", "/t/a", "two", "--prev-kv")
    assert r2["revision"] == r1["revision"] + 1
    assert r2["prev_kv"]["value"] == "one"
    kv = ok1(ep, "get", "/t/a")["kv"]
    assert (kv["value"], kv["version"], kv["create_revision"], kv["mod_revision"]) == \
        ("two", 2, r1["revision"], r2["revision"])
    assert fails(ep, "get", "/t/missing")["error"] == "not-found"

    ok1(ep, "put", "/t/b", "x")
    ok1(ep, "put", "/t0", "outside the prefix")
    rng = ok1(ep, "get-prefix", "/t/")
    assert [k["key"] for k in rng["kvs"]] == ["/t/a", "/t/b"] and rng["count"] == 2

    # create-if-absent with a lease: first wins, second sees the holder
    lease = ok1(ep, "lease-grant", "30")
    assert lease["ttl"] == 30 and lease["id"] > 0
    won = ok1(ep, "txn-create", "/t/leader", "node1", "--lease", str(lease["id"]))
    assert won["result"] == "won"
    lost = ok1(ep, "txn-create", "/t/leader", "node2")
    assert lost["result"] == "lost" and lost["holder"] == "node1"
    assert lost["holder_lease"] == lease["id"]  # exact even though > 2^53 is likely
    # compare-and-swap on the value
    assert ok1(ep, "txn-cas", "/t/leader", "node1", "node1b",
               "--lease", str(lease["id"]))["result"] == "won"
    cas = ok1(ep, "txn-cas", "/t/leader", "node1", "node1c")
    assert cas["result"] == "lost" and cas["holder"] == "node1b"

    # leases
    assert ok1(ep, "keepalive", str(lease["id"]))["ttl"] == 30
    ttl = ok1(ep, "ttl", str(lease["id"]))
    assert 0 < ttl["ttl"] <= 30 and ttl["granted_ttl"] == 30
    ok1(ep, "revoke", str(lease["id"]))
    assert fails(ep, "get", "/t/leader")["error"] == "not-found"  # revoked with its lease
    assert fails(ep, "keepalive", str(lease["id"]))["error"] == "lease-not-found"
    assert fails(ep, "ttl", str(lease["id"]))["error"] == "lease-not-found"
    err = fails(ep, "revoke", str(lease["id"]))
    assert (err["error"], err["grpc_code"], err["http_status"]) == ("lease-not-found", 5, 404)
    assert fails(ep, "put", "/t/c", "v", "--lease", "12345")["error"] == "lease-not-found"

    # deletes
    d = ok1(ep, "del", "/t/a", "--prev-kv")
    assert d["deleted"] == 1 and d["prev_kvs"][0]["value"] == "two"
    assert ok1(ep, "del", "/t/a")["deleted"] == 0
    assert ok1(ep, "del-prefix", "/t/")["deleted"] == 1
    assert ok1(ep, "get", "/t0")["kv"]["value"] == "outside the prefix"

    # watch replays history from a revision; a compacted revision is a typed error
    rc, lines = drive(ep, "watch", "/t/", "--from", str(r1["revision"]), "--count", "3",
                      "--timeout", "5")
    assert rc == 0 and lines[0]["created"]
    assert [(e["type"], e["key"], e["value"]) for e in lines[1:]] == \
        [("PUT", "/t/a", "one"), ("PUT", "/t/a", "two"), ("PUT", "/t/b", "x")]
    etcd.compact(r2["revision"] + 1)
    rc, lines = drive(ep, "watch", "/t/", "--from", str(r1["revision"]), "--count", "1",
                      "--timeout", "5")
    assert rc == 1 and lines[-1]["error"] == "compacted"
    assert any(line.get("compact_revision") == r2["revision"] + 1 for line in lines)


def test_create_race_exactly_one_winner(etcd, procs, workdir):
    """Two clients race create-if-absent on a fresh key 100 times: one winner each round."""
    rounds, period = 100, 40
    start = now_ms() + 1500
    names = ["alpha", "beta"]
    racers = [procs.spawn(f"race-{n}", [DRIVER, "--endpoints", ",".join(etcd.endpoints),
                                        "race", "/race/", "--rounds", str(rounds),
                                        "--start-ms", str(start), "--period-ms", str(period),
                                        "--name", n]) for n in names]
    for p in racers:
        p.wait(timeout=30)
        assert p.returncode == 0
    results = {n: read_json_lines(procs.log_path(f"race-{n}")) for n in names}
    for n in names:
        assert [r["round"] for r in results[n]] == list(range(rounds)), results[n][:3]
    for i in range(rounds):
        a, b = results["alpha"][i], results["beta"][i]
        outcomes = sorted([a["result"], b["result"]])
        assert outcomes == ["lost", "won"], f"round {i}: {a} {b}"
        winner = "alpha" if a["result"] == "won" else "beta"
        loser = b if winner == "alpha" else a
        assert loser["holder"] == winner, f"round {i}: {loser}"


def test_tls(procs, workdir):
    tls = EtcdTls(os.path.join(workdir, "tls"))
    cluster = EtcdCluster(procs, workdir, size=1, tls=tls).start()
    ep = cluster.endpoints
    certs = ("--protocol", "https", "--cacert", tls.ca, "--cert", tls.client_cert,
             "--key", tls.client_key)
    ok1(ep, "put", "/tls/k", "v", opts=certs)
    assert ok1(ep, "get", "/tls/k", opts=certs)["kv"]["value"] == "v"
    ok1([f"https://{ep[0]}"], "get", "/tls/k", opts=certs[2:])  # scheme in the endpoint
    short = ("--deadline-ms", "1000")
    # no CA: the server cannot be verified
    err = fails(ep, "get", "/tls/k", opts=("--protocol", "https", "--cert", tls.client_cert,
                                           "--key", tls.client_key) + short)
    assert err["error"] == "unavailable"
    # no client certificate: refused at the TLS layer
    err = fails(ep, "get", "/tls/k", opts=("--protocol", "https", "--cacert", tls.ca) + short)
    assert err["error"] == "unavailable"
    # plain http to a TLS port: Go answers 400 in plain text
    assert fails(ep, "get", "/tls/k", opts=short)["error"] in ("unavailable", "invalid")


def test_connection_is_reused(etcd):
    """50 calls from one client open one TCP connection, not one each."""
    rc, lines = drive(etcd.endpoints, "loop", "/reuse/", "50", "--interval-ms", "0")
    assert rc == 0 and len(lines) == 50 and all(l["ok"] for l in lines), lines[-1:]
    assert lines[-1]["requests"] == 50
    assert lines[-1]["connects"] == 1, lines[-1]


class FakeEtcd(http.server.BaseHTTPRequestHandler):
    """Answers every POST with the server's (status, body) of the moment."""
    answer = (200, b"")

    def do_POST(self):  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status, body = self.server.answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_etcd():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), FakeEtcd)
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield server
    server.shutdown()
    server.server_close()


MALFORMED = [
    # (command, status, body, expected kind)
    (["get", "/k"], 200, b'{"header":{"revision":"5"},"kvs":[{"key":"L2s=","value":"dg', "bad-response"),
    (["get", "/k"], 200, b"garbage", "bad-response"),
    (["get", "/k"], 200, b"", "bad-response"),
    (["get", "/k"], 200, b'{"kvs":"not a list"}', "bad-response"),
    (["get", "/k"], 200, b'{"kvs":[{"key":"!!!!"}]}', "bad-response"),
    (["get", "/k"], 200, b'{"kvs":[{"key":"L2s=","mod_revision":"12abc"}]}', "bad-response"),
    (["get", "/k"], 200, b"[1,2,3]", "bad-response"),
    (["get", "/k"], 200, b"{}", "not-found"),  # no fields: an empty range
    (["put", "/k", "v"], 200, b'{"header":', "bad-response"),
    (["txn-create", "/k", "v"], 200, b'{"responses":[{"response_bogus":{}}]}', "bad-response"),
    (["lease-grant", "10"], 200, b"{}", "bad-response"),
    (["keepalive", "5"], 200, b"{}", "bad-response"),
    (["keepalive", "5"], 200, b'{"result":{"ID":"5"}}\n', "lease-not-found"),
    (["watch", "/k"], 200, b'{"result":{"created":true}}\n{"result":{"events":[{"kv":7}]}}\n',
     "bad-response"),
    (["watch", "/k"], 200, b'{"result":{"created":tr', "bad-response"),
    (["get", "/k"], 404, b"404 page not found", "invalid"),
    (["get", "/k"], 401, b'{"error":"etcdserver: invalid auth token","code":16}', "auth"),
]


@pytest.mark.parametrize("cmd,status,body,kind", MALFORMED,
                         ids=[f"{i}-{m[0][0]}-{m[3]}" for i, m in enumerate(MALFORMED)])
def test_malformed_answers(fake_etcd, cmd, status, body, kind):
    fake_etcd.answer = (status, body)
    ep = [f"127.0.0.1:{fake_etcd.server_address[1]}"]
    rc, lines = drive(ep, *cmd, "--timeout", "3", opts=("--deadline-ms", "1500"), timeout=20)
    assert rc == 1, lines
    assert lines[-1]["error"] == kind, lines
