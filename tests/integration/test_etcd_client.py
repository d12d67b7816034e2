"""The etcd client library (lib/etcd*.c) against real etcd 3.4 processes,
through tests/tools/etcd_driver (one JSON object per output line).

Covers lease expiry seen by a watcher, failover when the member in use is
SIGKILLed (puts continue, the watch resumes without losing events), token
auth with re-authentication after the token expires (2 s ttl), deadlines
and time limits, and the keepalive stream.

Serial (not concurrent): these tests time things or lean on short ttls.
Every operation, the create-if-absent race, TLS, connection reuse and
malformed answers measure no time: they are in
test_etcd_client_functional.py, in the concurrent pass, which imports the
driver helpers from here.
"""
import http.server
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from lib.etcd_cluster import EtcdCluster, read_json_lines, wait_for_lines
from lib.procs import free_port, tool, wait_until

DRIVER = tool("etcd_driver")


def drive(endpoints, *args, timeout=30, opts=()):
    """Runs the driver to completion; returns (exit status, parsed JSON lines)."""
    argv = [DRIVER, "--endpoints", ",".join(endpoints), *opts, *args]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    lines = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    assert p.returncode in (0, 1), f"{argv}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p.returncode, lines


def ok1(endpoints, *args, **kw):
    rc, lines = drive(endpoints, *args, **kw)
    assert rc == 0 and len(lines) == 1 and lines[0].get("ok"), (args, rc, lines)
    return lines[0]


def fails(endpoints, *args, **kw):
    rc, lines = drive(endpoints, *args, **kw)
    assert rc == 1 and lines and lines[-1].get("ok") is False, (args, rc, lines)
    return lines[-1]


@pytest.fixture
def etcd(procs, workdir):
    return EtcdCluster(procs, workdir, size=1).start()


def test_leased_key_expires_and_watcher_sees_delete(etcd, procs):
    ep = etcd.endpoints
    # this watcher is driven the way an sd-event loop would: fd + wakeup, then poll(0)
    w = procs.spawn("watch", [DRIVER, "--endpoints", ",".join(ep), "watch", "/exp/",
                              "--count", "2", "--timeout", "15", "--external-loop"])
    wait_for_lines(procs.log_path("watch"), lambda ls: any(x.get("created") for x in ls), 10,
                   "watch created")
    lease = ok1(ep, "lease-grant", "2")
    t0 = time.monotonic()
    ok1(ep, "put", "/exp/k", "v", "--lease", str(lease["id"]))
    lines = wait_for_lines(procs.log_path("watch"),
                           lambda ls: any(x.get("type") == "DELETE" for x in ls), 10,
                           "DELETE event after lease expiry")
    elapsed = time.monotonic() - t0
    events = [x for x in lines if "type" in x]
    assert [(e["type"], e["key"]) for e in events] == [("PUT", "/exp/k"), ("DELETE", "/exp/k")]
    assert events[0]["lease"] == lease["id"]
    assert 1.5 < elapsed < 8, elapsed
    w.wait(timeout=10)
    assert w.returncode == 0
    assert fails(ep, "get", "/exp/k")["error"] == "not-found"


def test_member_killed_client_and_watch_fail_over(procs, workdir):
    """SIGKILL the leader the client is using: puts go on, the watch resumes, nothing lost."""
    cluster = EtcdCluster(procs, workdir, size=3).start()
    leader = wait_until(cluster.leader, 10, what="an etcd leader")
    order = [leader] + [m for m in cluster.members if m is not leader]
    eps = ",".join(m.endpoint for m in order)
    n = 40
    watcher = procs.spawn("watch", [DRIVER, "--endpoints", eps, "watch", "/fo/",
                                    "--stop-key", "/fo/end", "--timeout", "40"])
    wait_for_lines(procs.log_path("watch"), lambda ls: any(x.get("created") for x in ls), 10,
                   "watch created")
    loop = procs.spawn("loop", [DRIVER, "--endpoints", eps, "--deadline-ms", "15000",
                                "loop", "/fo/", str(n), "--interval-ms", "100"])
    first = wait_for_lines(procs.log_path("loop"), lambda ls: len(ls) >= 5, 15, "5 puts")
    assert all(x["endpoint"] == leader.endpoint for x in first[:5])
    cluster.kill(leader)
    loop.wait(timeout=60)
    puts = read_json_lines(procs.log_path("loop"))
    assert loop.returncode == 0, [p for p in puts if not p.get("ok")]
    assert [p["i"] for p in puts] == list(range(n))
    print("put latencies after the kill (ms):", [round(p["ms"]) for p in puts[5:12]])
    after = [p for p in puts[5:] if p["endpoint"] != leader.endpoint]
    assert after, "no put was served by another member"
    assert puts[-1]["endpoint"] != leader.endpoint
    ok1([m.endpoint for m in order[1:]], "put", "/fo/end", "x")
    watcher.wait(timeout=30)
    assert watcher.returncode == 0
    lines = read_json_lines(procs.log_path("watch"))
    events = [x for x in lines if "type" in x]
    created = [x for x in lines if x.get("created")]
    assert len(created) >= 2, "the watch did not reconnect"
    assert created[-1]["endpoint"] != leader.endpoint
    keys = [e["key"] for e in events]
    assert set(keys) == {f"/fo/{i}" for i in range(n)} | {"/fo/end"}
    revs = [e["mod_revision"] for e in events]
    assert revs == sorted(set(revs)), "events repeated or out of order"
    # every revision from the first to the last put is accounted for (only /fo/ keys written)
    assert revs == list(range(revs[0], revs[0] + len(revs)))


def test_auth(procs, workdir):
    cluster = EtcdCluster(procs, workdir, size=1, extra_args=["--auth-token-ttl", "2"]).start()
    cluster.setup_auth("agent", "agentpw", prefix="/svc/")
    ep = cluster.endpoints
    user = ("--user", "agent", "--password", "agentpw")
    put = ok1(ep, "put", "/svc/k", "v", opts=user)
    assert ok1(ep, "get", "/svc/k", opts=user)["kv"]["value"] == "v"
    err = fails(ep, "put", "/svc/k", "v", opts=("--user", "agent", "--password", "WRONGpw"))
    assert err["error"] == "auth" and "WRONGpw" not in json.dumps(err)
    err = fails(ep, "get", "/svc/k")  # no credentials at all
    assert err["error"] == "auth"
    err = fails(ep, "get", "/other", opts=user)
    assert err["error"] == "permission-denied" and err["http_status"] == 403
    # the token expires after 2 s idle; the client authenticates again by itself
    rc, lines = drive(ep, "loop", "/svc/l", "2", "--interval-ms", "4500", opts=user)
    assert rc == 0, lines
    assert [x["authentications"] for x in lines] == [1, 2]
    # a watch with auth
    w = procs.spawn("watch", [DRIVER, "--endpoints", ep[0], *user, "watch", "/svc/",
                              "--count", "1", "--timeout", "15"])
    wait_for_lines(procs.log_path("watch"), lambda ls: any(x.get("created") for x in ls), 10,
                   "watch created")
    ok1(ep, "put", "/svc/w", "1", opts=user)
    w.wait(timeout=15)
    assert w.returncode == 0
    assert put["revision"] > 0


def test_unreachable_endpoints_fail_within_deadline():
    eps = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    t0 = time.monotonic()
    err = fails(eps, "put", "/k", "v", opts=("--deadline-ms", "1200"))
    assert err["error"] == "unavailable"
    assert time.monotonic() - t0 < 5


def test_time_limit_cuts_a_call_short_and_stops_later_ones(etcd):
    """The client's time limit (etcd_client_set_limit(): the agent sets it to its lease's
    renewal time): a call to a member that does not answer ends at the limit, not after its
    request timeout, and a call made after the limit fails unsent (no request counted)."""
    ep = etcd.endpoints
    pid = etcd.members[0].proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        err = fails(ep, "put", "/limit/k", "v", opts=("--request-timeout-ms", "4000",
                                                       "--deadline-ms", "8000",
                                                       "--limit-ms", "300"))
        took = time.monotonic() - t0
    finally:
        os.kill(pid, signal.SIGCONT)
    assert err["error"] == "unavailable" and "time limit" in err["message"], err
    assert took < 3.5, f"the call ran {took:.2f} s: its request timeout (4 s), not the limit"
    lease = ok1(ep, "lease-grant", "60")
    rc, lines = drive(ep, "keepalive", str(lease["id"]), "--count", "3", "--interval-ms",
                      "700", "--keep-going", opts=("--limit-ms", "1000"))
    assert rc == 1 and [x["ok"] for x in lines] == [True, True, False], lines
    assert "time limit had passed" in lines[2]["message"], lines[2]
    assert lines[2]["requests"] == lines[1]["requests"], "the call after the limit was sent"
    print(f"cut at the limit after {took * 1000:.0f} ms (limit 300 ms, request timeout 4000)")


STREAM = ("--stream-keepalives",)


def keepalive_counters(member):
    """(LeaseKeepAlive calls started, messages received) at one member, from its /metrics."""
    import urllib.request
    with urllib.request.urlopen(f"http://{member.endpoint}/metrics", timeout=5) as r:
        text = r.read().decode()
    got = {"grpc_server_started_total": 0.0, "grpc_server_msg_received_total": 0.0}
    for line in text.splitlines():
        name = line.split("{", 1)[0]
        if name in got and 'grpc_method="LeaseKeepAlive"' in line:
            got[name] += float(line.rsplit(" ", 1)[1])
    return int(got["grpc_server_started_total"]), int(got["grpc_server_msg_received_total"])


def test_keepalive_stream(etcd):
    """With --stream-keepalives, six renewals of a 4 s lease over 7.5 s are six messages on
    one LeaseKeepAlive call at etcd (not six calls), each answered and each renewing; a
    revoked lease is a final answer on the stream."""
    ep = etcd.endpoints
    lease = ok1(ep, "lease-grant", "4")
    started0, msgs0 = keepalive_counters(etcd.members[0])
    rc, lines = drive(ep, "keepalive", str(lease["id"]), "--count", "6", "--interval-ms",
                      "1500", opts=STREAM)
    assert rc == 0, lines
    assert [x["ttl"] for x in lines] == [4] * 6
    assert [x["streamed"] for x in lines] == [1, 2, 3, 4, 5, 6], lines
    assert (lines[-1]["requests"], lines[-1]["errors"], lines[-1]["connects"]) == (6, 0, 1)
    started1, msgs1 = keepalive_counters(etcd.members[0])
    assert (started1 - started0, msgs1 - msgs0) == (1, 6)
    # 7.5 s after the grant the 4 s lease is alive: the stream renewed it
    assert ok1(ep, "ttl", str(lease["id"]))["ttl"] > 0
    print("stream renewal latencies (ms):", [round(x["ms"], 2) for x in lines])
    ok1(ep, "revoke", str(lease["id"]))
    rc, lines = drive(ep, "keepalive", str(lease["id"]), opts=STREAM)
    assert rc == 1 and lines[-1]["error"] == "lease-not-found", lines


def test_keepalive_stream_member_killed(procs, workdir):
    """SIGKILL the member the keepalive stream is on: the next renewal is answered by
    another member (a POST), and the ones after it stream again, from that member."""
    cluster = EtcdCluster(procs, workdir, size=3).start()
    leader = wait_until(cluster.leader, 10, what="an etcd leader")
    follower = next(m for m in cluster.members if m is not leader)
    order = [follower] + [m for m in cluster.members if m is not follower]
    eps = [m.endpoint for m in order]
    lease = ok1(eps, "lease-grant", "60")
    ka = procs.spawn("ka", [DRIVER, "--endpoints", ",".join(eps), "--deadline-ms", "15000",
                            *STREAM, "keepalive", str(lease["id"]), "--count", "10",
                            "--interval-ms", "500"])
    first = wait_for_lines(procs.log_path("ka"), lambda ls: len(ls) >= 3, 15, "3 renewals")
    assert all(x["ok"] and x["endpoint"] == follower.endpoint for x in first[:3]), first
    assert first[2]["streamed"] == 3
    cluster.kill(follower)
    ka.wait(timeout=60)
    lines = read_json_lines(procs.log_path("ka"))
    assert ka.returncode == 0, lines
    assert len(lines) == 10 and all(x["ok"] and x["ttl"] == 60 for x in lines), lines
    k = next(i for i, x in enumerate(lines) if x["endpoint"] != follower.endpoint)
    assert lines[k]["streamed"] == lines[k - 1]["streamed"], "the renewal after the kill " \
        "cannot have been answered on the dead member's stream"
    assert lines[-1]["streamed"] > lines[k]["streamed"], "the stream was not opened again"
    assert all(x["endpoint"] == lines[-1]["endpoint"] for x in lines[k:])
    survivor = next(m for m in cluster.members if m.endpoint == lines[-1]["endpoint"])
    assert keepalive_counters(survivor)[0] >= 1


def test_keepalive_stream_etcd_stopped(etcd, procs):
    """etcd SIGSTOPped with the stream open (the worst moment: a renewal in flight gets no
    answer): every renewal during the stop fails within the deadline, none is reported as
    done, and after SIGCONT the renewals stream again on a new call."""
    ep = etcd.endpoints
    lease = ok1(ep, "lease-grant", "60")
    ka = procs.spawn("ka", [DRIVER, "--endpoints", ep[0], "--request-timeout-ms", "500",
                            "--deadline-ms", "1000", *STREAM, "keepalive", str(lease["id"]),
                            "--count", "12", "--interval-ms", "300", "--keep-going"])
    wait_for_lines(procs.log_path("ka"), lambda ls: len(ls) >= 2, 15, "2 renewals")
    pid = etcd.members[0].proc.pid
    os.kill(pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        wait_for_lines(procs.log_path("ka"), lambda ls: sum(not x["ok"] for x in ls) >= 2, 15,
                       "2 failed renewals")
    finally:
        os.kill(pid, signal.SIGCONT)
    held = time.monotonic() - stopped_at
    ka.wait(timeout=60)
    lines = read_json_lines(procs.log_path("ka"))
    failed = [x for x in lines if not x["ok"]]
    assert len(lines) == 12 and failed, lines
    assert all(x["error"] == "unavailable" and x["ms"] < 1500 for x in failed), failed
    last_failed = max(x["i"] for x in failed)
    after = [x for x in lines if x["i"] > last_failed]
    assert after and all(x["ok"] for x in after), lines
    assert after[-1]["streamed"] > lines[last_failed]["streamed"], lines
    assert ok1(ep, "ttl", str(lease["id"]))["ttl"] > 50
    print(f"etcd held {held:.1f} s; failed renewals (ms):", [round(x["ms"]) for x in failed])


class NoStreamEtcd(http.server.BaseHTTPRequestHandler):
    """A gateway that cannot stream: it answers a chunked request only after the body ends
    (as Go's server does without Expect: 100-continue), a sized one at once."""
    protocol_version = "HTTP/1.1"
    answer = b'{"result":{"header":{"revision":"7"},"ID":"5","TTL":"10"}}\n'

    def do_POST(self):  # noqa: N802 - http.server's naming
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.server.chunked += 1
            try:
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return  # the client gave up and closed
                    size = int(line.strip(), 16)
                    self.rfile.read(size + 2)
                    if size == 0:
                        break
            except (OSError, ValueError):
                return
        else:
            self.server.sized += 1
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.answer)))
        self.end_headers()
        self.wfile.write(self.answer)

    def log_message(self, *args):
        pass


def test_keepalive_stream_unsupported_falls_back():
    """An endpoint that cannot stream: the first renewal waits one request timeout on the
    stream, then is answered by a POST; the renewals after it go straight to POSTs
    without trying the stream again (it backs off for a minute)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), NoStreamEtcd)
    server.daemon_threads = True
    server.chunked = server.sized = 0
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        ep = [f"127.0.0.1:{server.server_address[1]}"]
        rc, lines = drive(ep, "keepalive", "5", "--count", "4", "--interval-ms", "100",
                          opts=STREAM + ("--request-timeout-ms", "400", "--deadline-ms", "3000"))
    finally:
        server.shutdown()
        server.server_close()
    assert rc == 0 and all(x["ttl"] == 10 for x in lines), lines
    assert [x["streamed"] for x in lines] == [0, 0, 0, 0]
    assert 400 <= lines[0]["ms"] < 2000, lines[0]
    assert all(x["ms"] < 300 for x in lines[1:]), lines
    assert (server.chunked, server.sized) == (1, 4)
