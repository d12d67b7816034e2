"""vip-manager (Debian 12's 1.0.2, which reads etcd's v2 API) moves a virtual
IP to the leader, through the leader key that dbagent mirrors into the v2
store (etcd3.mirror_leader_v2). Each database host is a network namespace
with an interface of its own and a vip-manager configured from
configs/vip-manager.yml; a forwarder gives each namespace 127.0.0.1:<etcd
port>, so every address stays loopback. Root only (ip netns)."""
import json
import os
import shutil
import time

import pytest
import yaml

from lib.cluster import DbhaCluster
from lib.etcd_cluster import EtcdCluster
from lib.netns import Netns
from lib.procs import wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "..", "configs", "vip-manager.yml")
VIP = "127.0.0.200/32"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("vip-manager"),
    reason="needs root (ip netns) and vip-manager (scripts/deps.sh test installs it)")


def vip_config(path, node, etcd_port, scope):
    with open(EXAMPLE) as f:
        c = yaml.safe_load(f)
    c.update({"ip": VIP.split("/")[0], "netmask": 32, "interface": "vip0",
              "trigger-key": f"/service/{scope}/leader", "trigger-value": node.name,
              "dcs-endpoints": [f"http://127.0.0.1:{etcd_port}"], "interval": 100})
    with open(path, "w") as f:
        yaml.safe_dump(c, f)


@pytest.fixture
def setup(procs, workdir):
    c = DbhaCluster(procs, workdir, n=3, ttl=4, loop_wait=1, retry_timeout=1)
    c.etcd = EtcdCluster(procs, workdir, extra_args=("--enable-v2",))
    for node in c.nodes:
        base = node.config
        node.config = lambda base=base: base().replace("etcd3:\n", "etcd3:\n  mirror_leader_v2: true\n", 1)
    c.etcd.start()
    port = c.etcd.members[0].client_port
    hosts = {}
    try:
        for i, node in enumerate(c.nodes):
            ns = Netns.create(f"dbha-vip{os.getpid() % 10000}-{node.name}", iface="vip0",
                              address=f"127.0.1.{i + 1}/32")
            hosts[node.name] = ns
            ns.forward(procs, f"fwd-{node.name}", port)
            cfg = os.path.join(workdir, f"vip-{node.name}.yml")
            vip_config(cfg, node, port, c.scope)
            procs.spawn(f"vip-{node.name}", ns.argv("vip-manager", "--config", cfg))
        c.start()
        yield c, hosts
    finally:
        c.stop_all()
        procs.stop_all()
        for ns in hosts.values():
            ns.delete()


def holders(hosts):
    return sorted(name for name, ns in hosts.items() if VIP in ns.addresses("vip0"))


def v2_leader(c):
    import urllib.request
    url = f"http://{c.etcd.endpoints[0]}/v2/keys/service/{c.scope}/leader"
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return json.loads(r.read())["node"]["value"]
    except Exception:  # noqa: BLE001 - absent (404) or etcd busy
        return None


def test_vip_follows_the_leader_through_a_failover(setup):
    c, hosts = setup
    s = c.wait_healthy(timeout=90)
    leader = c.node(s["leader"])
    assert v2_leader(c) == leader.name
    wait_until(lambda: holders(hosts) == [leader.name], 10, interval=0.1,
               what="the VIP on the leader's host only")

    t0 = time.monotonic()
    leader.kill_with_postgres()
    new = wait_until(lambda: (v := v2_leader(c)) and v != leader.name and v, 20, interval=0.05,
                     what="a new leader in the v2 copy")
    t_v2 = time.monotonic() - t0
    wait_until(lambda: holders(hosts) == [new], 5, interval=0.05,
               what="the VIP on the new leader's host only")
    t_vip = time.monotonic() - t0
    assert c.status()["leader"] == new
    print(f"vip-manager: v2 leader copy names {new} {t_v2:.2f} s after kill -9 of "
          f"{leader.name}; the VIP is on its host only {t_vip:.2f} s after the kill")
    # the dead leader's vip-manager still runs and holds no address (it
    # dropped it when the key stopped naming it), also once it rejoins
    leader.start()
    c.wait_healthy(timeout=90)
    assert holders(hosts) == [new]
    assert v2_leader(c) == new

    # a leader that shuts down releases its key, and the v2 copy with it:
    # the VIP leaves at once, not a ttl later
    t0 = time.monotonic()
    c.node(new).stop()
    newer = wait_until(lambda: (v := c.status()["leader"]) and v != new and v, 15,
                       interval=0.05, what="another leader")
    wait_until(lambda: holders(hosts) == [newer], 5, interval=0.05,
               what="the VIP on the next leader's host only")
    print(f"vip-manager: clean stop of {new}: VIP on {newer} after "
          f"{time.monotonic() - t0:.2f} s")
    assert c.procs.log_contains(
        new, "the v2 copy of the leader key (etcd3.mirror_leader_v2) is removed")
