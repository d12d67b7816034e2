"""agent/rest over real HTTP: tests/tools/rest_driver serves snapshots read
from JSON files on 127.0.0.1 and these tests hit it with http.client.

Health status codes are cross-checked against rows of tests/unit/test_health.c;
the reply shapes follow Patroni 3.0.2 (GET: the /patroni status JSON, HEAD and
OPTIONS: status line only, 404 for a method nobody handles on that path).

Serial (not concurrent): the tests left here assert durations (a deferred
reply does not hold up health checks, the stale-snapshot wait, the lease and
liveness deadlines). The ones that measure no time are in
test_rest_functional.py, which runs in the concurrent pass and imports the
Driver and the snapshots from here (test_rest_hardening.py does too).
"""
import base64
import http.client
import json
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

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
