"""The agent's mutating REST endpoints on a real three-node cluster:
POST /switchover and /failover, DELETE /switchover, PATCH and PUT /config,
POST /reload, with Patroni 3.0.2's status codes; basic auth; bad requests
get a 4xx with a JSON reason and change nothing in etcd."""
import base64
import datetime
import json
import os
import time
import urllib.error
import urllib.request

import pytest

from conftest import started_cluster
from lib.pg import pg_tool, run_pg
from lib.procs import LOOPBACK, wait_until

pytestmark = pytest.mark.concurrent

USER, PASSWORD = "admin", "api-secret"
# Patroni's restapi.http_extra_headers / https_extra_headers (plain HTTP here)
EXTRA_HEADERS = ("  http_extra_headers:\n    X-Frame-Options: DENY\n    X-Both: http\n"
                 "  https_extra_headers:\n    Strict-Transport-Security: max-age=31536000\n"
                 "    X-Both: https\n")


def call(node, method, path, body=None, auth=(USER, PASSWORD), timeout=40, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(f"http://{LOOPBACK}:{node.api_port}{path}", data=data,
                                 method=method)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def error_of(reply, status):
    code, ctype, body = reply
    assert code == status, (code, body)
    assert ctype == "application/json", ctype
    doc = json.loads(body)
    assert isinstance(doc.get("error"), str) and doc["error"], doc
    return doc["error"]


def text_of(reply, status):
    code, _, body = reply
    assert code == status, (code, body)
    return body.decode()


def iso_in(seconds, tz=True):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return t.isoformat() if tz else t.replace(tzinfo=None).isoformat()


@pytest.fixture(scope="module")
def cluster():
    def with_auth(c):
        for n in c.nodes:
            n.rest_auth = (USER, PASSWORD)
            auth = n.rest_auth_yaml
            n.rest_auth_yaml = lambda auth=auth: auth() + EXTRA_HEADERS
    with started_cluster("dbha-rest-api-", with_auth, n=3, ttl=5, loop_wait=1,
                         retry_timeout=1) as c:
        yield c


def etcd_state(cluster):
    return {k: cluster.etcd_get(k) for k in ("leader", "failover", "config")}


def test_http_extra_headers_on_every_response(cluster):
    cluster.wait_healthy(timeout=60)
    n = cluster.nodes[0]
    for path, method in (("/health", "GET"), ("/nosuchpath", "GET"), ("/restart", "POST")):
        req = urllib.request.Request(f"http://{LOOPBACK}:{n.api_port}{path}", method=method)
        try:
            with urllib.request.urlopen(req, timeout=3) as r:
                headers = r.headers
        except urllib.error.HTTPError as e:  # 404, 401: the headers are there too
            headers = e.headers
        assert headers["X-Frame-Options"] == "DENY", (path, dict(headers))
        assert headers["X-Both"] == "http", (path, dict(headers))
        # https_extra_headers only over HTTPS (test_rest_tls_cluster.py)
        assert "Strict-Transport-Security" not in headers, (path, dict(headers))


def test_auth_and_bad_requests_change_nothing(cluster):
    s = cluster.wait_healthy(timeout=60)
    leader = cluster.node(s["leader"])
    replica = next(n for n in cluster.nodes if n is not leader)
    before = etcd_state(cluster)
    body = {"leader": leader.name, "candidate": replica.name}

    assert error_of(call(leader, "POST", "/switchover", body, auth=None), 401) == \
        "no auth header received"
    error_of(call(leader, "POST", "/switchover", body, auth=(USER, "wrong")), 401)
    error_of(call(leader, "PATCH", "/config", {"ttl": 7}, auth=None), 401)
    error_of(call(replica, "POST", "/reload", auth=None), 401)
    assert leader.api("/health")[0] == 200  # health checks never need auth

    assert "malformed JSON" in error_of(call(leader, "POST", "/switchover", raw=b'{"leader":'),
                                        400)
    assert "object" in error_of(call(leader, "POST", "/switchover", raw=b"[1]"), 400)
    assert "too large" in error_of(call(leader, "POST", "/switchover",
                                        raw=b'{"x": "' + b"a" * 70000 + b'"}'), 413)
    assert error_of(call(leader, "POST", "/failover", {"leader": leader.name}), 400) == \
        "Failover could be performed only to a specific candidate"
    assert error_of(call(leader, "POST", "/switchover", {"candidate": replica.name}), 400) == \
        "Switchover could be performed only from a specific leader"
    assert error_of(call(leader, "POST", "/switchover", {"leader": 1}), 400)
    assert error_of(call(leader, "POST", "/switchover",
                         {"leader": leader.name, "candidate": "nosuch"}), 412) == \
        "candidate does not exists"
    assert error_of(call(leader, "POST", "/switchover",
                         {"leader": replica.name, "candidate": leader.name}), 412) == \
        "leader name does not match"
    assert "current leader" in error_of(call(leader, "POST", "/switchover",
                                             {"leader": leader.name,
                                              "candidate": leader.name}), 412)
    assert "timezone" in error_of(call(leader, "POST", "/switchover",
                                       dict(body, scheduled_at=iso_in(60, tz=False))), 422)
    assert error_of(call(leader, "POST", "/switchover",
                         dict(body, scheduled_at=iso_in(-60))), 422) == \
        "Cannot schedule switchover in the past"
    assert "invalid configuration" in error_of(call(leader, "PATCH", "/config", {"ttl": "abc"}),
                                               400)
    assert "invalid configuration" in error_of(call(leader, "PUT", "/config",
                                                    {"loop_wait": -1}), 400)
    assert error_of(call(leader, "DELETE", "/switchover"), 404) == "no switchover is scheduled"
    assert error_of(call(leader, "POST", "/nosuch", {}), 404) == "no handler for POST /nosuch"
    assert "not allowed" in error_of(call(leader, "PATCH", "/switchover", {}), 405)
    # An unknown GET path is a failing health check, as in Patroni (503).
    assert leader.api("/nosuch")[0] == 503

    assert etcd_state(cluster) == before, "no bad request changed etcd"
    for n in cluster.nodes:
        assert n.api("/liveness")[0] == 200, "every agent still runs"


def caught_up(cluster, node):
    """Wait until the member keys show node within 0 bytes of the leader (a
    WAL segment switch, e.g. at the end of a clone, makes a replica look
    16 MB behind for up to a loop)."""
    def lag0():
        m = [m for m in cluster.status()["members"] if m["name"] == node.name]
        return m and m[0].get("lag_bytes") == 0
    wait_until(lag0, 30, what=f"{node.name} caught up")


def test_switchover_and_failover(cluster):
    s = cluster.wait_healthy(timeout=60)
    leader = cluster.node(s["leader"])
    cand = next(n for n in cluster.nodes if n is not leader)
    caught_up(cluster, cand)
    t0 = time.monotonic()
    msg = text_of(call(leader, "POST", "/switchover",
                       {"leader": leader.name, "candidate": cand.name}), 200)
    print(f"POST /switchover answered in {time.monotonic() - t0:.2f} s: {msg}")
    assert msg == f'Successfully switched over to "{cand.name}"'
    assert cluster.wait_healthy(timeout=60)["leader"] == cand.name
    assert cluster.etcd_get("failover") is None

    # Failover while the leader is dead: its key still runs out; the named
    # candidate (asked through its own API) takes over, nobody else.
    dead = cand
    target = next(n for n in cluster.nodes if n is not dead)
    caught_up(cluster, target)
    dead.kill()
    pm = dead.postmaster_pid()
    if pm:
        __import__("os").kill(pm, 9)
    msg = text_of(call(target, "POST", "/failover", {"candidate": target.name}), 200)
    assert msg == f'Successfully failed over to "{target.name}"'
    assert cluster.status()["leader"] == target.name
    dead.start()
    assert cluster.wait_healthy(timeout=120)["leader"] == target.name


def test_scheduled_switchover_then_delete_then_done(cluster):
    s = cluster.wait_healthy(timeout=60)
    leader = cluster.node(s["leader"])
    cand = next(n for n in cluster.nodes if n is not leader)
    body = {"leader": leader.name, "candidate": cand.name}

    assert text_of(call(leader, "POST", "/switchover",
                        dict(body, scheduled_at=iso_in(3600))), 202) == "Switchover scheduled"
    fo = json.loads(cluster.etcd_get("failover"))
    assert fo["member"] == cand.name and fo["leader"] == leader.name and "scheduled_at" in fo
    def scheduled():
        code, doc = leader.api_json("/cluster")
        return code == 200 and doc.get("scheduled_switchover", {}).get("to") == cand.name
    wait_until(scheduled, 5, what="/cluster to show the scheduled switchover")
    assert text_of(call(leader, "DELETE", "/switchover"), 200) == "scheduled switchover deleted"
    assert cluster.etcd_get("failover") is None
    error_of(call(leader, "DELETE", "/switchover"), 404)

    at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=4)
    text_of(call(leader, "POST", "/switchover", dict(body, scheduled_at=at.isoformat())), 202)
    time.sleep(2)
    assert cluster.status()["leader"] == leader.name, "nothing happens before the time"
    wait_until(lambda: cluster.status()["leader"] == cand.name, 30,
               what="the scheduled switchover")
    assert datetime.datetime.now(datetime.timezone.utc) >= at
    assert cluster.wait_healthy(timeout=60)["leader"] == cand.name
    assert cluster.etcd_get("failover") is None


def show(node, name):
    return node.sql(f"SHOW {name}")[0][0]


def test_config_patch_reload_and_restart_parameters(cluster):
    s = cluster.wait_healthy(timeout=60)
    leader = cluster.node(s["leader"])
    replica = next(n for n in cluster.nodes if n is not leader)

    code, _, body = call(replica, "PATCH", "/config",
                         {"postgresql": {"parameters": {"work_mem": "7MB"}}})
    assert code == 200, body
    doc = json.loads(body)
    assert doc["postgresql"]["parameters"]["work_mem"] == "7MB"
    assert doc["ttl"] == 5, "a patch keeps the other keys"
    assert json.loads(cluster.etcd_get("config")) == doc
    wait_until(lambda: all(show(n, "work_mem") == "7MB" for n in cluster.nodes), 15,
               what="work_mem on every node")

    # A parameter that needs a restart: pending_restart everywhere.
    old_max = show(leader, "max_connections")
    text = call(leader, "PATCH", "/config",
                {"postgresql": {"parameters": {"max_connections": int(old_max) + 10}}})
    assert text[0] == 200, text
    wait_until(lambda: all(n.api_json("/patroni")[1].get("pending_restart") is True
                           for n in cluster.nodes), 15, what="pending_restart on every node")
    st = cluster.status()
    assert show(leader, "max_connections") == old_max

    # Restart only where a restart is pending, each member through its API.
    assert error_of(call(leader, "POST", "/restart", {"role": "replica"}), 503) == \
        "restart conditions are not satisfied"
    assert "Unknown filter" in error_of(call(leader, "POST", "/restart", {"nosuch": 1}), 400)
    for n in [m for m in cluster.nodes if m is not leader] + [leader]:
        started = n.api_json("/patroni")[1]["postmaster_start_time"]
        t0 = time.monotonic()
        assert text_of(call(n, "POST", "/restart", {"restart_pending": True}), 200) == \
            "restarted successfully"
        print(f"POST /restart of {n.name} answered in {time.monotonic() - t0:.2f} s")
        assert show(n, "max_connections") == str(int(old_max) + 10)
        doc = n.api_json("/patroni")[1]
        assert doc["postmaster_start_time"] != started and "pending_restart" not in doc
    assert error_of(call(leader, "POST", "/restart", {"restart_pending": True}), 503) == \
        "restart conditions are not satisfied", "nothing is pending any more"
    assert cluster.wait_healthy(timeout=60)["leader"] == leader.name, "a restart keeps the leader"

    # null removes a key (Patroni's patch semantics); PUT replaces the document.
    code, _, body = call(leader, "PATCH", "/config",
                         {"postgresql": {"parameters": {"work_mem": None,
                                                        "max_connections": None}}})
    assert code == 200 and "work_mem" not in json.loads(body)["postgresql"]["parameters"]
    wait_until(lambda: all(show(n, "work_mem") == "4MB" for n in cluster.nodes), 15,
               what="work_mem back to the default")
    full = json.loads(cluster.etcd_get("config"))
    full["maximum_lag_on_failover"] = 2097152
    code, _, body = call(leader, "PUT", "/config", full)
    assert code == 200 and json.loads(body) == full
    assert json.loads(cluster.etcd_get("config"))["maximum_lag_on_failover"] == 2097152
    assert st["leader"] == leader.name

    assert text_of(call(replica, "POST", "/reload"), 202) == "reload scheduled"
    assert replica.api("/health")[0] == 200


def test_reinitialize(cluster):
    s = cluster.wait_healthy(timeout=60)
    leader = cluster.node(s["leader"])
    replica = next(n for n in cluster.nodes if n is not leader)
    assert error_of(call(leader, "POST", "/reinitialize"), 503) == \
        "I am the leader, can not reinitialize"
    assert "force" in error_of(call(replica, "POST", "/reinitialize", {"force": "yes"}), 400)
    leader.sql("CREATE TABLE IF NOT EXISTS reinit_probe (x int)")
    leader.sql("INSERT INTO reinit_probe VALUES (42)")
    parent = os.path.dirname(replica.data_dir)
    before = set(os.listdir(parent))
    assert text_of(call(replica, "POST", "/reinitialize", {"force": True}), 200) == \
        "reinitialize started"
    def streaming():
        m = [m for m in cluster.status()["members"] if m["name"] == replica.name]
        return m and m[0]["state"] == "streaming"

    def aside():
        return [d for d in set(os.listdir(parent)) - before
                if d.startswith(os.path.basename(replica.data_dir))]
    wait_until(aside, 30, what="the old data directory kept aside, not deleted")
    wait_until(streaming, 120, what="the reinitialized replica to stream")
    wait_until(lambda: replica.sql("SELECT x FROM reinit_probe") == [(42,)], 30,
               what="the clone to have the leader's data")
    assert cluster.status()["leader"] == leader.name


def parse_metrics(text):
    """{(name, frozenset(labels)): value}; checks every sample has HELP and TYPE."""
    samples, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if not line or line.startswith("#"):
            continue
        head, value = line.rsplit(" ", 1)
        name, _, labels = head.partition("{")
        pairs = frozenset(tuple(p.split("=", 1)) for p in labels.rstrip("}").split('",')
                          if p) if labels else frozenset()
        base = name[:-4] if name.endswith("_sum") else name[:-6] if name.endswith("_count") \
            else name
        assert base in typed, f"{name} has no TYPE line"
        samples[(name, pairs)] = float(value)
    return samples


def metric(samples, metric_name, **labels):
    found = [v for (n, ls), v in samples.items()
             if n == metric_name and all((k, f'"{v}') in ls or (k, f'"{v}"') in ls
                                  for k, v in labels.items())]
    assert found, f"no sample {metric_name} {labels}"
    return found


def test_metrics(cluster):
    s = cluster.wait_healthy(timeout=60)
    leader = cluster.node(s["leader"])
    replicas = [n for n in cluster.nodes if n is not leader]
    code, ctype, body = call(leader, "GET", "/metrics", auth=None)
    assert code == 200 and ctype.startswith("text/plain; version=0.0.4")

    def all_streaming():  # the leader's probe sees both walsenders (at most 1 s old)
        text = call(leader, "GET", "/metrics", auth=None)[2].decode()
        return all(f'application_name="{r.name}"' in text for r in replicas) and text
    m = parse_metrics(wait_until(all_streaming, 10, what="both replicas in the lag metrics"))
    assert metric(m, "patroni_primary", scope="itest", name=leader.name) == [1.0]
    assert metric(m, "patroni_postgres_running") == [1.0]
    assert metric(m, "patroni_xlog_location")[0] > 0
    assert 0 < metric(m, "dbha_leader_lease_remaining_seconds")[0] <= cluster.ttl
    lags = {r.name: metric(m, "dbha_replication_lag_bytes", application_name=r.name)[0]
            for r in replicas}
    assert all(v >= 0 for v in lags.values()), lags
    assert metric(m, "dbha_etcd_requests_total")[0] > 0
    assert metric(m, "dbha_cluster_promotions")[0] >= 1
    loops = metric(m, "dbha_ha_loops_total")[0]
    time.sleep(cluster.loop_wait * 2 + 0.5)
    m2 = parse_metrics(call(leader, "GET", "/metrics", auth=None)[2].decode())
    assert metric(m2, "dbha_ha_loops_total")[0] > loops
    for r in replicas:
        mr = parse_metrics(call(r, "GET", "/metrics", auth=None)[2].decode())
        assert metric(mr, "patroni_replica") == [1.0] and metric(mr, "patroni_primary") == [0.0]
        assert metric(mr, "patroni_xlog_replayed_location")[0] > 0
        assert metric(mr, "dbha_leader_lease_remaining_seconds") == [0.0]
        assert metric(mr, "dbha_leader_changes_total")[0] >= 1, "at least the first leader was seen"


def test_dbctl_restart_reload_reinit(cluster):
    s = cluster.wait_healthy(timeout=60)
    leader = cluster.node(s["leader"])
    replicas = sorted((n for n in cluster.nodes if n is not leader), key=lambda n: n.name)
    cfg = ("-c", leader.config_path)  # restapi.authentication for the REST calls

    r = cluster.dbctl("reload", "--force")
    assert r.returncode == 1 and "restapi.authentication" in r.stderr, r.stderr
    r = cluster.dbctl(*cfg, "reload", "--force")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.splitlines()) == [f"{n.name}: reload scheduled"
                                             for n in sorted(cluster.nodes, key=lambda n: n.name)]
    r = cluster.dbctl(*cfg, "reload")  # not a terminal and no --force: refused
    assert r.returncode == 1 and "not confirmed" in r.stderr

    started = {n.name: n.api_json("/patroni")[1]["postmaster_start_time"] for n in cluster.nodes}
    r = cluster.dbctl(*cfg, "restart", "--role", "replica", "--force", timeout=180)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"{n.name}: restarted successfully" for n in replicas]
    after = {n.name: n.api_json("/patroni")[1]["postmaster_start_time"] for n in cluster.nodes}
    assert after[leader.name] == started[leader.name]
    assert all(after[n.name] != started[n.name] for n in replicas)

    r = cluster.dbctl(*cfg, "restart", "--pending", "--force", timeout=300)
    assert r.returncode == 0, r.stderr
    assert all("pending_restart" not in n.api_json("/patroni")[1] for n in cluster.nodes)
    r = cluster.dbctl(*cfg, "restart", "--pending", "--force")
    assert (r.returncode, r.stdout.strip()) == (0, "No member to restart")
    r = cluster.dbctl(*cfg, "restart", "nosuch", "--force")
    assert r.returncode == 1 and "not a member" in r.stderr

    r = cluster.dbctl(*cfg, "reinit", leader.name, "--force")
    assert r.returncode == 1 and "I am the leader" in r.stderr
    r = cluster.dbctl(*cfg, "reinit", replicas[0].name, "--force", "--wait", timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"{replicas[0].name}: reinitialize started",
                                     f"{replicas[0].name}: reinitialized and running"]
    assert cluster.wait_healthy(timeout=120)["leader"] == leader.name


def test_endpoints_on_a_stopped_member_while_paused(cluster):
    """A member whose PostgreSQL is down (held down by maintenance mode):
    health checks fail, nothing starts it by itself, the rest still works;
    an operator's restart starts it and a reinitialize clones it anew, as
    Patroni's (docs/pause.md)."""
    s = cluster.wait_healthy(timeout=60)
    leader = cluster.node(s["leader"])
    stopped = next(n for n in cluster.nodes if n is not leader)
    r = cluster.dbctl("pause", "--wait", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    run_pg([pg_tool("pg_ctl"), "-D", stopped.data_dir, "-m", "fast", "-w", "stop"])
    wait_until(lambda: stopped.api("/health")[0] == 503, 10, what="the stopped member's /health")
    assert stopped.api("/replica")[0] == 503 and stopped.api("/liveness")[0] == 200

    # a running member restarts while paused, as in Patroni (the leader keeps its key)
    pid = leader.postmaster_pid()
    assert text_of(call(leader, "POST", "/restart"), 200) == "restarted successfully"
    assert leader.postmaster_pid() not in (None, pid)
    assert "not running" in error_of(call(stopped, "POST", "/switchover",
                                          {"leader": leader.name, "candidate": stopped.name}), 412)
    assert text_of(call(stopped, "POST", "/reload"), 202) == "reload scheduled"
    code, _, body = call(stopped, "PATCH", "/config", {"postgresql": {"parameters": {
        "log_min_duration_statement": "1s"}}})
    assert code == 200 and json.loads(body)["pause"] is True
    time.sleep(2 * cluster.loop_wait + 0.5)
    assert stopped.postmaster_pid() is None, "paused: nobody started it"
    assert cluster.status()["leader"] == leader.name

    # the operator's restart of the stopped server starts it, as a replica
    assert text_of(call(stopped, "POST", "/restart"), 200) == "restarted successfully"
    assert stopped.postmaster_pid() is not None
    wait_until(lambda: stopped.api("/replica")[0] == 200, 30, what="the restarted replica")
    assert cluster.procs.log_contains(stopped.name, "starting the stopped replica")

    # stopped again: the operator's reinitialize clones it anew
    run_pg([pg_tool("pg_ctl"), "-D", stopped.data_dir, "-m", "fast", "-w", "stop"])
    wait_until(lambda: stopped.api("/health")[0] == 503, 10, what="stopped again")
    assert text_of(call(stopped, "POST", "/reinitialize"), 200) == "reinitialize started"
    wait_until(lambda: stopped.api("/replica")[0] == 200, 120, what="the reinitialized replica")
    assert cluster.procs.log_contains(stopped.name, "moving the data directory aside")
    assert cluster.status()["leader"] == leader.name
    assert cluster.status()["paused"] is True

    r = cluster.dbctl("resume", "--wait", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    assert cluster.wait_healthy(timeout=60)["leader"] == leader.name
