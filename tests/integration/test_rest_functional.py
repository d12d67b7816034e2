"""The functional half of test_rest.py: agent/rest over real HTTP through
tests/tools/rest_driver (status codes, documents, methods, auth, bodies,
concurrency, snapshot switches, HTTPS, bad configs), none of which measures
time, so these run in the concurrent pass. Each test has its own driver on a
free port and its own files. test_rest.py keeps the Driver, the snapshots and
the tests that assert durations (a deferred reply not blocking others, the
stale-snapshot wait, the lease and liveness deadlines)."""
import http.client
import json
import os
import signal
import subprocess
import time
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from lib.procs import LOOPBACK, free_port, tool, wait_until
from test_rest import (CLUSTER, HEALTH_ROWS, HISTORY, LEADER, PASSWORD, PATRONI_LEADER,
                       PATRONI_REPLICA, REPLICA, USER, Driver, assert_json_error, auth_header,
                       raw_request)

pytestmark = pytest.mark.concurrent


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
