"""Patroni's other ways of naming etcd: `etcd3.url` (one endpoint as a URL)
and `etcd3.port` (the port of a `hosts` entry written without one), on a
real two-node cluster: node1 reaches etcd through `url`, node2 through a
bare host and `port`; both run, node2 clones from node1's leader and
streams, and dbctl reads the cluster through node2's file. Before, both
keys were warned about and ignored: node1's file had no endpoint at all,
and node2's bare host was an error."""
import json
import subprocess

import pytest

from lib.cluster import DbhaCluster
from lib.procs import binary

pytestmark = pytest.mark.concurrent


def test_url_and_port(procs, workdir):
    c = DbhaCluster(procs, workdir, n=2)
    n1, n2 = c.nodes
    host, port = c.etcd.endpoints[0].rsplit(":", 1)
    n1.etcd_endpoints_yaml = f"  url: http://{host}:{port}\n"
    n2.etcd_endpoints_yaml = f"  hosts: {host}\n  port: {port}\n"
    try:
        c.start()
        s = c.wait_healthy(timeout=120)
        assert sorted(m["name"] for m in s["members"]) == ["node1", "node2"]
        r = subprocess.run([binary("dbctl"), "-c", n2.config_path, "status", "-o", "json"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["leader"] == s["leader"], r.stdout
    finally:
        c.stop_all()
