"""agent/rest over real HTTP: tests/tools/rest_driver serves snapshots read
from JSON files on 127.0.0.1 and these tests hit it with http.client.

Health status codes are cross-checked against rows of tests/unit/test_health.c;
the reply shapes follow Patroni 3.0.2 (GET: the /patroni status JSON, HEAD and
OPTIONS: status line only, 404 for a method nobody handles on that path).
"""
import base64
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from lib.procs import LOOPBACK, free_port, tool, wait_until

MB = 1048576
OPTIME = 0x5000000
USER, PASSWORD = "admin", "s3cret"

PATRONI_LEADER = {
    "state": "running", "postmaster_start_time": "2024-01-01 00:00:00.000000+00:00",
    "role": "master", "server_version": 150005, "xlog": {"location": OPTIME},
    "timeline": 1, "replication": [{"usename": "replicator", "application_name": "n2",
                                    "client_addr": "127.0.0.1", "state": "streaming",
                                    "sync_state": "async", "sync_priority": 0}],
    "tags": {"dc": "east"}, "database_system_identifier": "7300000000000000000",
    "patroni": {"version": "3.0.2", "scope": "demo", "name": "n1"},
}
PATRONI_REPLICA = {
    "state": "running", "role": "replica", "server_version": 150005,
    "xlog": {"received_location": OPTIME, "replayed_location": OPTIME - 10 * MB,
             "replayed_timestamp": None, "paused": False},
    "timeline": 1, "tags": {"dc": "east"},
    "patroni": {"version": "3.0.2", "scope": "demo", "name": "n2"},
}
CLUSTER = {"members": [
    {"name": "n1", "role": "leader", "state": "running", "api_url": "http://127.0.0.1:8008/patroni",
     "host": "127.0.0.1", "port": 5432, "timeline": 1, "tags": {"dc": "east"}},
    {"name": "n2", "role": "replica", "state": "streaming", "host": "127.0.0.1", "port": 5433,
     "timeline": 1, "lag": 10485760, "tags": {"dc": "east"}}], "scope": "demo"}
HISTORY = [[1, 25165984, "no recovery target specified", "2024-01-01T00:00:00+00:00", "n1"]]

LEADER = {
    "node": {"state": "running", "role": "primary", "in_recovery": False, "is_leader": True,
             "leader_optime": OPTIME, "tags": {"dc": "east"}},
    "patroni": PATRONI_LEADER, "cluster": CLUSTER, "history": HISTORY,
    "metrics": "patroni_primary{scope=\"demo\"} 1\n",
}
# A streaming replica 10 MB behind the leader's optime.
REPLICA = {
    "node": {"state": "running", "role": "replica", "in_recovery": True, "is_leader": False,
             "replayed_lsn": OPTIME - 10 * MB, "leader_optime": OPTIME, "tags": {"dc": "east"}},
    "patroni": PATRONI_REPLICA, "cluster": CLUSTER,
}

# (method, path, leader status, replica status), from tests/unit/test_health.c.
HEALTH_ROWS = [
    ("GET", "/", 200, 503),
    ("GET", "/primary", 200, 503),
    ("GET", "/master", 200, 503),
    ("GET", "/read-write", 200, 503),
    ("GET", "/leader", 200, 503),
    ("GET", "/standby-leader", 503, 503),
    ("GET", "/standby_leader", 503, 503),
    ("GET", "/replica", 503, 200),
    ("GET", "/read-only", 200, 200),
    ("GET", "/health", 200, 200),
    ("GET", "/sync", 503, 503),
    ("GET", "/synchronous", 503, 503),
    ("GET", "/async", 503, 200),
    ("GET", "/asynchronous", 503, 200),
    ("GET", "/read-only-sync", 200, 503),
    ("GET", "/liveness", 200, 200),
    ("GET", "/readiness", 200, 200),
    ("GET", "/foo", 503, 503),
    ("GET", "/replica?lag=1MB", 503, 503),
    ("GET", "/replica?lag=100MB", 503, 200),
    ("GET", "/replica?tag_dc=west", 503, 503),
    ("GET", "/read-only?tag_dc=west", 503, 503),
    ("GET", "/read-only?tag_dc=east", 200, 200),
    ("GET", "/primary?tag_dc=west", 200, 503),
    ("HEAD", "/primary", 200, 503),
    ("HEAD", "/replica", 503, 200),
    ("HEAD", "/health", 200, 200),
    ("HEAD", "/liveness", 503, 503),  # HEAD takes the generic check, as in Patroni
    ("HEAD", "/patroni", 503, 503),  # generic check: "patroni" matches no role
    ("OPTIONS", "/primary", 200, 503),
    ("OPTIONS", "/replica", 503, 200),
    ("OPTIONS", "/readiness", 503, 503),
    ("OPTIONS", "/read-only", 200, 200),
]


def auth_header(user=USER, password=PASSWORD):
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class Driver:
    def __init__(self, procs, workdir, snapshots, extra_args=(), https_ctx=None, name="rest",
                 env=None):
        self.procs = procs
        self.name = name
        self.files = []
        for i, snap in enumerate(snapshots):
            path = os.path.join(workdir, f"{name}-snapshot{i}.json")
            with open(path, "w") as f:
                json.dump(snap, f)
            self.files.append(path)
        self.port = free_port()
        self.https_ctx = https_ctx
        argv = [tool("rest_driver"), "--listen", f"{LOOPBACK}:{self.port}", *extra_args,
                *self.files]
        self.proc = procs.spawn(name, argv, env=env)
        wait_until(lambda: procs.log_contains(name, "listening on port")
                   or self.proc.poll() is not None, 10, what="rest_driver to listen")
        assert self.proc.poll() is None, open(procs.log_path(name)).read()

    def conn(self, timeout=5):
        if self.https_ctx:
            return http.client.HTTPSConnection(LOOPBACK, self.port, timeout=timeout,
                                               context=self.https_ctx)
        return http.client.HTTPConnection(LOOPBACK, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None):
        c = self.conn()
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def sighup_and_wait(self, n):
        """Send SIGHUP and wait until the driver logged its n-th publication."""
        os.kill(self.proc.pid, signal.SIGHUP)
        wait_until(lambda: open(self.procs.log_path(self.name)).read().count("published ") >= n,
                   5, what=f"publication #{n}")

    def stats(self):
        before = open(self.procs.log_path(self.name)).read().count("stats ")
        os.kill(self.proc.pid, signal.SIGUSR1)
        wait_until(lambda: open(self.procs.log_path(self.name)).read().count("stats ") > before,
                   5, what="stats line")
        lines = [ln for ln in open(self.procs.log_path(self.name)) if ln.startswith("stats ")]
        return json.loads(lines[-1][len("stats "):])

    def stop(self):
        rc = self.procs.stop(self.proc)
        assert rc == 0, open(self.procs.log_path(self.name)).read()[-4000:]


def assert_json_error(status, headers, body, want_status):
    assert status == want_status, body
    assert headers.get("content-type") == "application/json"
    doc = json.loads(body)
    assert isinstance(doc.get("error"), str) and doc["error"], doc
    return doc["error"]


def raw_request(port, data, timeout=5):
    """Send raw bytes, return everything the server sends until it closes."""
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        for _ in range(1000):
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)


@pytest.mark.parametrize("which", ["leader", "replica"])
def test_health_endpoints(procs, workdir, which):
    snap = LEADER if which == "leader" else REPLICA
    d = Driver(procs, workdir, [snap])
    failures = []
    for method, path, want_leader, want_replica in HEALTH_ROWS:
        want = want_leader if which == "leader" else want_replica
        status, headers, body = d.request(method, path)
        if status != want:
            failures.append(f"{which} {method} {path}: {status}, want {want}")
            continue
        generic_get = method == "GET" and path.split("?")[0] not in ("/liveness", "/readiness")
        if generic_get:
            # Patroni: a health GET carries the node's status document.
            assert headers.get("content-type") == "application/json", (method, path)
            assert json.loads(body) == snap["patroni"], (method, path)
        else:
            # Patroni's _write_status_code_only: no body, no Content-Type.
            assert body == b"", (method, path)
            assert "content-type" not in headers, (method, path, headers)
    assert not failures, "\n".join(failures)
    d.stop()


def test_documents_verbatim(procs, workdir):
    d = Driver(procs, workdir, [LEADER])
    for path, want in [("/patroni", PATRONI_LEADER), ("/status", PATRONI_LEADER),
                       ("/cluster", CLUSTER), ("/history", HISTORY)]:
        status, headers, body = d.request("GET", path)
        assert status == 200, (path, body)
        assert headers["content-type"] == "application/json"
        assert json.loads(body) == want, path
    # Python's json.dumps separators, so byte-compatible with Patroni for ASCII.
    status, _, body = d.request("GET", "/history")
    assert body.decode() == json.dumps(HISTORY)

    status, headers, body = d.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert body.decode() == LEADER["metrics"]

    # An absolute-form request target routes by its path, as Patroni's urlparse() does.
    resp = raw_request(d.port, b"GET http://127.0.0.1/patroni?x=1 HTTP/1.1\r\nHost: x\r\n"
                               b"Connection: close\r\n\r\n")
    head, _, body = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and json.loads(body) == PATRONI_LEADER

    # No /config document in this snapshot.
    assert "not available" in assert_json_error(*d.request("GET", "/config"), 503)
    assert_json_error(*d.request("GET", "/failsafe"), 502)
    d.stop()


def test_unknown_method_and_path(procs, workdir):
    d = Driver(procs, workdir, [LEADER], extra_args=["--echo"])
    # Patroni answers 501 "Unsupported method" (no do_<METHOD>_<path>); a bad
    # request gets a 4xx with a JSON reason from us.
    for method, path in [("POST", "/foo"), ("PATCH", "/patroni"), ("DELETE", "/cluster"),
                         ("PUT", "/"), ("POST", "/switchover"), ("BREW", "/pot")]:
        msg = assert_json_error(*d.request(method, path, body=b"{}"), 404)
        assert msg == f"no handler for {method} {path}"
    # A path with handlers for other methods -> 405 with Allow.
    status, headers, body = d.request("PUT", "/echo", body=b"{}")
    assert_json_error(status, headers, body, 405)
    assert headers["allow"] == "POST, DELETE"
    # An unknown GET path is a failing health check, as in Patroni.
    status, headers, body = d.request("GET", "/no/such/path")
    assert status == 503 and json.loads(body) == PATRONI_LEADER
    # GET of a path that only has a POST handler: the health check too.
    status, _, body = d.request("GET", "/echo")
    assert status == 503 and json.loads(body) == PATRONI_LEADER
    d.stop()


def test_basic_auth_and_bodies(procs, workdir):
    d = Driver(procs, workdir, [LEADER],
               extra_args=["--echo", "--user", USER, "--password", PASSWORD])
    status, headers, body = d.request("POST", "/echo", body=b'{"a": 1}')
    assert assert_json_error(status, headers, body, 401) == "no auth header received"
    assert headers["www-authenticate"] == 'Basic realm="dbha"'

    status, headers, body = d.request("POST", "/echo", body=b'{"a": 1}',
                                      headers=auth_header(password="wrong"))
    assert assert_json_error(status, headers, body, 401) == "not authenticated"
    status, headers, body = d.request("POST", "/echo", body=b'{"a": 1}',
                                      headers=auth_header(user="root"))
    assert_json_error(status, headers, body, 401)

    status, headers, body = d.request("POST", "/echo?x=1", body=b'{"a": [1, 2]}',
                                      headers=auth_header())
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"echo": {"a": [1, 2]}, "user": USER, "method": "POST",
                                "query": "x=1"}

    hdr = auth_header()
    assert "malformed JSON" in assert_json_error(*d.request("POST", "/echo", body=b'{"a":',
                                                            headers=hdr), 400)
    assert "object" in assert_json_error(*d.request("POST", "/echo", body=b"[1]",
                                                    headers=hdr), 400)
    assert_json_error(*d.request("POST", "/echo", body=b"", headers=hdr), 400)

    # Body optional on DELETE /echo.
    status, headers, body = d.request("DELETE", "/echo", headers=hdr)
    assert (status, body) == (200, b"deleted")
    assert_json_error(*d.request("DELETE", "/echo"), 401)
    # A handler that fails -> 500 JSON; /fail is not mutating, so no auth needed.
    assert_json_error(*d.request("POST", "/fail"), 500)
    # Health endpoints never need auth.
    assert d.request("GET", "/primary")[0] == 200

    st = d.stats()
    assert st["auth_failed"] == 4
    assert st["requests"] == 11 and st["2xx"] >= 3 and st["5xx"] == 1
    d.stop()


def test_deferred_reply_does_not_block_other_requests(procs, workdir):
    """A handler that hands its work to another thread: the connection waits
    (suspended) while the single MHD thread keeps answering health checks."""
    d = Driver(procs, workdir, [LEADER], extra_args=["--echo", "--threads", "1"])
    result = {}

    def slow():
        t0 = time.monotonic()
        result["reply"] = d.request("POST", "/later?ms=1500")
        result["elapsed"] = time.monotonic() - t0

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.2)
    fast = []
    for _ in range(5):
        t0 = time.monotonic()
        assert d.request("GET", "/health")[0] == 200
        fast.append(time.monotonic() - t0)
    assert "reply" not in result  # still waiting for its thread
    t.join(10)
    status, headers, body = result["reply"]
    assert status == 200 and json.loads(body) == {"later": 1500}
    assert result["elapsed"] >= 1.5
    assert max(fast) < 0.5, fast
    # Replied before the handler even returned: answered at once.
    status, _, body = d.request("POST", "/later?ms=0")
    assert status == 200 and json.loads(body) == {"later": 0}
    assert_json_error(*d.request("POST", "/later?ms=x"), 400)
    d.stop()


def test_deferred_request_answered_at_shutdown(procs, workdir):
    d = Driver(procs, workdir, [LEADER], extra_args=["--echo"])
    replies = []
    threads = [threading.Thread(target=lambda: replies.append(d.request("POST", "/never")))
               for _ in range(3)]
    for t in threads:
        t.start()
    wait_until(lambda: d.request("GET", "/health")[0] == 200 and len(replies) == 0, 5,
               what="driver up")
    time.sleep(0.3)
    assert replies == []
    d.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(10)
    assert len(replies) == 3
    for status, headers, body in replies:
        assert assert_json_error(status, headers, body, 503) == "the agent is stopping"
    assert d.proc.wait(10) == 0


def test_oversized_body(procs, workdir):
    d = Driver(procs, workdir, [LEADER],
               extra_args=["--echo", "--user", USER, "--password", PASSWORD])
    hdr = auth_header()
    big = b'{"a": "' + b"x" * (100 * 1024) + b'"}'
    msg = assert_json_error(*d.request("POST", "/echo", body=big, headers=hdr), 413)
    assert "too large" in msg
    # Exactly at the limit is fine.
    at_limit = b'{"a": "' + b"x" * (64 * 1024 - 10) + b'"}'
    assert d.request("POST", "/echo", body=at_limit, headers=hdr)[0] == 200

    # Chunked, without Content-Length.
    c = d.conn()
    c.request("POST", "/echo", body=iter([big[i:i + 8192] for i in range(0, len(big), 8192)]),
              headers=hdr, encode_chunked=True)
    r = c.getresponse()
    assert r.status == 413
    r.read()
    c.close()

    # A huge announced body is refused without reading it.
    auth = hdr["Authorization"]
    resp = raw_request(d.port, (f"POST /echo HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
                                f"Content-Length: 100000000\r\n\r\n").encode())
    assert resp.startswith(b"HTTP/1.1 413"), resp[:200]

    # The server keeps serving.
    assert d.request("GET", "/primary")[0] == 200
    assert d.stats()["body_too_large"] == 3
    d.stop()


def test_concurrent_requests(procs, workdir):
    d = Driver(procs, workdir, [LEADER], extra_args=["--threads", "2"])
    paths = ["/primary", "/patroni", "/cluster", "/health", "/replica"]
    want = {"/primary": 200, "/patroni": 200, "/cluster": 200, "/health": 200, "/replica": 503}

    def one(i):
        path = paths[i % len(paths)]
        status, _, body = d.request("GET", path)
        return path, status, len(body)

    with ThreadPoolExecutor(max_workers=8) as ex:
        results = list(ex.map(one, range(200), timeout=60))
    assert len(results) == 200
    bad = [(p, s) for p, s, _ in results if s != want[p]]
    assert not bad, bad[:10]

    # Keep-alive: many requests on one connection.
    c = d.conn()
    for _ in range(50):
        c.request("GET", "/primary")
        r = c.getresponse()
        assert r.status == 200
        r.read()
    c.close()
    assert d.stats()["requests"] >= 250
    d.stop()


def test_sighup_switches_snapshot(procs, workdir):
    d = Driver(procs, workdir, [LEADER, REPLICA])
    assert d.request("GET", "/primary")[0] == 200
    assert d.request("GET", "/replica")[0] == 503
    d.sighup_and_wait(2)
    assert d.request("GET", "/primary")[0] == 503
    status, _, body = d.request("GET", "/replica")
    assert status == 200 and json.loads(body) == PATRONI_REPLICA
    d.sighup_and_wait(3)  # back to the leader
    assert d.request("GET", "/primary")[0] == 200
    d.stop()


def test_stale_snapshot_waits_for_a_fresh_one(procs, workdir):
    """--max-age-ms: a request finding the snapshot too old is suspended until the next
    publish (every waiting request, answered from the new snapshot), or until the refresh
    wait passes (answered from the old one); other requests are not held up meanwhile."""
    d = Driver(procs, workdir, [LEADER, REPLICA],
               extra_args=["--max-age-ms", "200", "--refresh-wait-ms", "1500"])
    log = lambda: open(procs.log_path(d.name)).read()  # noqa: E731
    assert d.request("GET", "/primary")[0] == 200  # fresh: answered at once
    time.sleep(0.3)
    with ThreadPoolExecutor(max_workers=4) as ex:
        waiting = [ex.submit(d.request, "GET", "/replica") for _ in range(4)]
        wait_until(lambda: "refresh asked" in log(), 5, what="the refresh request")
        time.sleep(0.2)
        assert not any(f.done() for f in waiting)
        # a POST handler is not held up by the waiting reads (none registered: 404)
        assert d.request("POST", "/echo", body="{}")[0] == 404
        d.sighup_and_wait(2)  # the replica snapshot: every waiter sees it
        for f in waiting:
            status, _, body = f.result(timeout=5)
            assert status == 200 and json.loads(body) == PATRONI_REPLICA
    # nobody publishes: answered after the refresh wait from the snapshot there is
    time.sleep(0.3)
    t0 = time.monotonic()
    status, _, _ = d.request("GET", "/replica")
    took = time.monotonic() - t0
    assert status == 200
    assert 1.3 < took < 3.0, took
    d.stop()


def test_snapshot_switch_under_load(procs, workdir):
    """Readers never see an error or a torn reply while snapshots are swapped."""
    d = Driver(procs, workdir, [LEADER, REPLICA])
    stop = threading.Event()
    errors = []

    def reader():
        for _ in range(2000):
            if stop.is_set():
                return
            try:
                status, _, body = d.request("GET", "/primary")
                doc = json.loads(body)
                if (status, doc) not in ((200, PATRONI_LEADER), (503, PATRONI_REPLICA)):
                    errors.append((status, body[:100]))
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for n in range(2, 12):
        d.sighup_and_wait(n)
    stop.set()
    for t in threads:
        t.join(30)
    assert not errors, errors[:5]
    d.stop()


def test_leader_lease_runs_out(procs, workdir):
    """A snapshot that is not replaced stops claiming the leader key at its deadline."""
    snap = json.loads(json.dumps(LEADER))
    snap["node"]["leader_deadline_in_sec"] = 1.0
    d = Driver(procs, workdir, [snap])
    wait_until(lambda: d.request("GET", "/primary")[0] == 503, 5, what="lease to run out")
    assert d.request("GET", "/leader")[0] == 503
    assert d.request("GET", "/health")[0] == 200
    d.stop()


def test_liveness_uses_request_time(procs, workdir):
    """/liveness compares the HA loop's schedule with the time of the request, so a
    stuck agent (no new snapshot) turns it to 503."""
    snap = json.loads(json.dumps(LEADER))
    snap["node"]["next_run_ago_sec"] = 0
    snap["node"]["ttl_sec"] = 1
    d = Driver(procs, workdir, [snap])
    wait_until(lambda: d.request("GET", "/liveness")[0] == 503, 5, what="liveness to fail")
    d.stop()


@pytest.fixture
def tls_cert(workdir):
    cert = os.path.join(workdir, "cert.pem")
    key = os.path.join(workdir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    return cert, key


def test_https(procs, workdir, tls_cert):
    cert, key = tls_cert
    ctx = ssl.create_default_context(cafile=cert)
    d = Driver(procs, workdir, [LEADER],
               extra_args=["--certfile", cert, "--keyfile", key, "--echo", "--user", USER,
                           "--password", PASSWORD], https_ctx=ctx)
    status, headers, body = d.request("GET", "/primary")
    assert status == 200 and json.loads(body) == PATRONI_LEADER
    assert d.request("OPTIONS", "/replica")[0] == 503
    assert d.request("POST", "/echo", body=b'{"k": "v"}', headers=auth_header())[0] == 200
    assert d.request("POST", "/echo", body=b'{"k": "v"}')[0] == 401

    # The certificate is checked for real: a context without the CA refuses it.
    strict = ssl.create_default_context()
    c = http.client.HTTPSConnection(LOOPBACK, d.port, timeout=5, context=strict)
    with pytest.raises(ssl.SSLError):
        c.request("GET", "/primary")
    c.close()
    # Plain HTTP to the HTTPS port gets no HTTP answer.
    plain = http.client.HTTPConnection(LOOPBACK, d.port, timeout=5)
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        plain.request("GET", "/primary")
        plain.getresponse().read()
    plain.close()
    # Key in the certificate file (no --keyfile), as Patroni allows.
    both = os.path.join(workdir, "both.pem")
    with open(both, "w") as f:
        f.write(open(cert).read() + open(key).read())
    d2 = Driver(procs, workdir, [LEADER], extra_args=["--certfile", both], https_ctx=ctx,
                name="rest2")
    assert d2.request("GET", "/primary")[0] == 200
    d2.stop()
    d.stop()


def test_bad_config_exits(procs, workdir):
    port = free_port()
    snap = os.path.join(workdir, "s.json")
    with open(snap, "w") as f:
        json.dump(LEADER, f)
    p = procs.spawn("bad", [tool("rest_driver"), "--listen", f"{LOOPBACK}:{port}",
                            "--certfile", os.path.join(workdir, "missing.pem"), snap])
    assert p.wait(timeout=10) == 1
    assert procs.log_contains("bad", "missing.pem")
    # The port is taken by another server.
    d = Driver(procs, workdir, [LEADER])
    p = procs.spawn("busy", [tool("rest_driver"), "--listen", f"{LOOPBACK}:{d.port}", snap])
    assert p.wait(timeout=10) == 1
    assert procs.log_contains("busy", "cannot start the REST API")
    d.stop()
