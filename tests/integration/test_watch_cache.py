"""The watch-fed cache of the cluster keys, against real etcd and three
nodes: on an idle cluster the agents read no key range from etcd over
several loops (etcd's own Range counter, and the agents' metrics), and a
change made by someone else (dbctl pause, PATCH /config of loop_wait, a
member's tags) still reaches every agent's REST and behaviour within a
couple of loops."""
import base64
import json
import os
import re
import signal
import time
import urllib.request

import pytest

from conftest import started_cluster
from lib.procs import LOOPBACK, wait_until

pytestmark = pytest.mark.concurrent

USER, PASSWORD = "admin", "admin-secret"


def configure(c):
    for n in c.nodes:
        n.rest_auth = (USER, PASSWORD)


@pytest.fixture(scope="module")
def cluster():
    with started_cluster("dbha-watch-cache-", configure=configure, n=3, loop_wait=1) as c:
        yield c


def etcd_range_count(c):
    """grpc_server_handled_total of Range, summed over codes."""
    with urllib.request.urlopen(f"http://{c.etcd.endpoints[0]}/metrics", timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("grpc_server_handled_total{") and 'grpc_method="Range"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def agent_metric(node, name):
    code, body = node.api("/metrics")
    assert code == 200, body
    m = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", body.decode(), re.M)
    assert m, f"{name} missing from {node.name}'s /metrics"
    return float(m.group(1))


def loops_logged(c, node):
    with open(c.procs.log_path(node.name)) as f:
        return len(re.findall(r"\] loop \d+: ", f.read()))


def patch_config(node, body):
    req = urllib.request.Request(f"http://{LOOPBACK}:{node.api_port}/config",
                                 data=json.dumps(body).encode(), method="PATCH")
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200, r.read()


def test_idle_cluster_reads_no_range(cluster):
    # dbctl status (wait_healthy) reads ranges itself: let it be over
    time.sleep(3)
    before = etcd_range_count(cluster)
    cached = {n.name: agent_metric(n, "dbha_dcs_cache_reads_total") for n in cluster.nodes}
    direct = {n.name: agent_metric(n, "dbha_dcs_etcd_reads_total") for n in cluster.nodes}
    loops = {n.name: loops_logged(cluster, n) for n in cluster.nodes}
    time.sleep(8)  # eight loops of every agent
    after = etcd_range_count(cluster)
    for n in cluster.nodes:
        ran = loops_logged(cluster, n) - loops[n.name]
        assert ran >= 5, f"{n.name} ran {ran} loops in 8 s with loop_wait 1"
        used = agent_metric(n, "dbha_dcs_cache_reads_total") - cached[n.name]
        read = agent_metric(n, "dbha_dcs_etcd_reads_total") - direct[n.name]
        assert used >= ran - 1, f"{n.name}: {used} views from the cache in {ran} loops"
        assert read == 0, f"{n.name}: {read} views read from etcd while idle"
    assert after == before, f"{after - before} Range requests in 8 idle seconds"


def test_pause_reaches_every_agent(cluster):
    r = cluster.dbctl("pause")
    assert r.returncode == 0, r.stderr
    try:
        # the config key wakes every loop: well within two loops
        for n in cluster.nodes:
            wait_until(lambda n=n: n.api_json("/patroni")[1].get("pause") is True, 3,
                       interval=0.1, what=f"{n.name} reports pause")
    finally:
        r = cluster.dbctl("resume")
        assert r.returncode == 0, r.stderr
    for n in cluster.nodes:
        wait_until(lambda n=n: not n.api_json("/patroni")[1].get("pause"), 3, interval=0.1,
                   what=f"{n.name} reports resume")


def test_patched_loop_wait_changes_every_agents_loop(cluster):
    leader = cluster.primary()
    patch_config(leader, {"loop_wait": 3})
    try:
        for n in cluster.nodes:
            wait_until(lambda n=n: n.api_json("/config")[1].get("loop_wait") == 3, 3,
                       interval=0.1, what=f"{n.name} sees loop_wait 3")
        time.sleep(3.5)  # a loop scheduled with the old loop_wait has run
        loops = {n.name: loops_logged(cluster, n) for n in cluster.nodes}
        time.sleep(9)
        for n in cluster.nodes:
            ran = loops_logged(cluster, n) - loops[n.name]
            assert 2 <= ran <= 5, f"{n.name}: {ran} loops in 9 s with loop_wait 3"
    finally:
        patch_config(leader, {"loop_wait": 1})
    for n in cluster.nodes:
        wait_until(lambda n=n: n.api_json("/config")[1].get("loop_wait") == 1, 5,
                   interval=0.1, what=f"{n.name} sees loop_wait 1 again")


def test_member_tags_reach_every_agent(cluster):
    # A member key does not wake the loop: the next tick reads it from the cache.
    node = cluster.nodes[2]
    node.tags = {"zone": "watch-cache"}
    node.write_config()
    os.kill(node.proc.pid, signal.SIGHUP)

    def tags_seen(n):
        code, doc = n.api_json("/cluster")
        assert code == 200, doc
        m = next((m for m in doc["members"] if m["name"] == node.name), None)
        return m is not None and (m.get("tags") or {}).get("zone") == "watch-cache"

    for n in cluster.nodes:
        wait_until(lambda n=n: tags_seen(n), 5, interval=0.1,
                   what=f"{n.name} sees {node.name}'s new tag")


def etcd_range_count_all(c, members):
    total = 0.0
    for m in members:
        with urllib.request.urlopen(f"http://{m.endpoint}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("grpc_server_handled_total{") and \
                        'grpc_method="Range"' in line:
                    total += float(line.rsplit(" ", 1)[1])
    return total


def test_watch_resumes_on_another_etcd_member_and_the_cache_stays_in_use(procs, workdir):
    """The member every watch streams from dies: each watch resumes on another
    member from its next revision, so the cache needs no reload; a change
    made afterwards reaches every agent, and idle loops still read no range."""
    from lib.cluster import DbhaCluster
    c = DbhaCluster(procs, workdir, n=3, loop_wait=1, etcd_size=3)
    for n in c.nodes:
        n.rest_auth = (USER, PASSWORD)
    try:
        c.start()
        c.wait_healthy(timeout=120)

        def resumes(n):
            with open(c.procs.log_path(n.name)) as f:
                return len(re.findall(r"etcd watch on \S+ from revision", f.read()))

        before = {n.name: resumes(n) for n in c.nodes}
        c.etcd.kill(c.etcd.members[0])  # every client tries the endpoints in order
        for n in c.nodes:
            wait_until(lambda n=n: resumes(n) > before[n.name], 10, interval=0.2,
                       what=f"{n.name}'s watch resumed on another member")
        r = c.dbctl("pause")
        assert r.returncode == 0, r.stderr
        for n in c.nodes:
            wait_until(lambda n=n: n.api_json("/patroni")[1].get("pause") is True, 5,
                       interval=0.1, what=f"{n.name} reports pause")
        time.sleep(3)  # dbctl's own reads are over
        alive = c.etcd.members[1:]
        ranges = etcd_range_count_all(c, alive)
        cached = {n.name: agent_metric(n, "dbha_dcs_cache_reads_total") for n in c.nodes}
        direct = {n.name: agent_metric(n, "dbha_dcs_etcd_reads_total") for n in c.nodes}
        time.sleep(6)
        for n in c.nodes:
            assert agent_metric(n, "dbha_dcs_cache_reads_total") - cached[n.name] >= 4, n.name
            assert agent_metric(n, "dbha_dcs_etcd_reads_total") == direct[n.name], n.name
            # resumed, not reloaded: the stream broke, the watch never ended
            assert c.procs.log_contains(n.name, "broke: "), n.name
            assert not c.procs.log_contains(n.name, "watch ended"), n.name
            assert not c.procs.log_contains(n.name, "the cache missed events"), n.name
        assert etcd_range_count_all(c, alive) == ranges
        r = c.dbctl("resume")
        assert r.returncode == 0, r.stderr
    finally:
        c.stop_all()
