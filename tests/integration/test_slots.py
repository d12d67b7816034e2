"""Permanent physical slots (`slots`) and `ignore_slots`, Patroni's keys, on a
real three-node cluster.

The cluster is bootstrapped with a permanent slot `archiver` and
`ignore_slots: [{name: barman}]` in bootstrap.dcs. The leader keeps
`archiver`; replicas do not. A slot someone else made is dropped by the
members unless ignore_slots names it (a Barman or pg_receivewal slot the
operator protected stays). A permanent slot added at run time with PATCH
/config appears on the leader, and both are made again on the new leader
after a switchover. What dbha cannot honour is refused with a 400 and a
reason, the config key unchanged; an ignore_slots written straight into etcd
that cannot be read protects every slot rather than none.
"""
import base64
import json
import time
import urllib.error
import urllib.request

import pytest

from conftest import started_cluster
from lib.procs import LOOPBACK, wait_until

pytestmark = pytest.mark.concurrent


@pytest.fixture(scope="module")
def cluster():
    with started_cluster("dbha-slots-", n=3, ttl=10, loop_wait=1, retry_timeout=2,
                         slots={"archiver": {"type": "physical"}},
                         ignore_slots=[{"name": "barman"}]) as c:
        yield c


def slots(node):
    return {r[0] for r in node.sql("SELECT slot_name FROM pg_catalog.pg_replication_slots "
                                   "WHERE slot_type = 'physical'")}


def make_slot(node, name):
    node.sql("SELECT pg_catalog.pg_create_physical_replication_slot(%s, true)", (name,))


def patch_config(node, body):
    req = urllib.request.Request(f"http://{LOOPBACK}:{node.api_port}/config",
                                 data=json.dumps(body).encode(), method="PATCH",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def members(cluster, status):
    leader = cluster.node(status["leader"])
    return leader, [n for n in cluster.nodes if n is not leader]


def test_bootstrap_slots_reach_the_config_key_and_the_leader_only(cluster):
    s = cluster.wait_healthy(timeout=60)
    leader, replicas = members(cluster, s)
    config = json.loads(cluster.etcd_get("config"))
    assert config["slots"] == {"archiver": {"type": "physical"}}, config
    assert config["ignore_slots"] == [{"name": "barman"}], config
    wait_until(lambda: "archiver" in slots(leader), 20, what="permanent slot on the leader")
    for r in replicas:
        assert "archiver" not in slots(r), r.name


def test_ignored_slot_survives_where_a_stray_one_is_dropped(cluster):
    s = cluster.wait_healthy(timeout=60)
    leader, replicas = members(cluster, s)
    for node in (leader, replicas[0]):
        make_slot(node, "barman")
        make_slot(node, "stray")
        # the agent drops the stray slot in the same statement that spares
        # barman: once stray is gone, barman has been through a drop
        wait_until(lambda: "stray" not in slots(node), 20, what=f"stray slot dropped on {node.name}")
        assert "barman" in slots(node), (node.name, slots(node))
    # and it stays over more loops
    time.sleep(3)
    assert "barman" in slots(leader) and "barman" in slots(replicas[0])


def test_patch_adds_a_permanent_slot_and_refuses_what_it_cannot_keep(cluster):
    s = cluster.wait_healthy(timeout=60)
    leader, _ = members(cluster, s)
    before = cluster.etcd_get("config")
    for bad, why in (
            ({"slots": {"cdc": {"type": "logical", "database": "postgres"}}},
             "slots.cdc: a logical slot needs \"database\" and \"plugin\""),
            ({"slots": {"Bad-Name": {"type": "physical"}}}, "slots.Bad-Name: a slot name"),
            ({"ignore_slots": [{"nmae": "barman"}]}, "ignore_slots[0]: unknown field \"nmae\"")):
        code, body = patch_config(leader, bad)
        assert code == 400, (bad, code, body)
        assert why in body["error"], body
    assert cluster.etcd_get("config") == before

    code, body = patch_config(leader, {"slots": {"pgrcv": {"type": "physical"}}})
    assert code == 200, body
    wait_until(lambda: "pgrcv" in slots(leader), 20, what="slot added by PATCH /config")
    assert "archiver" in slots(leader)  # PATCH merges


def test_permanent_slots_follow_a_switchover(cluster):
    s = cluster.wait_healthy(timeout=60)
    leader, replicas = members(cluster, s)
    wait_until(lambda: {"archiver", "pgrcv"} <= slots(leader), 20, what="slots on the leader")
    cand = replicas[0]
    r = cluster.dbctl("switchover", "--candidate", cand.name, "--force", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    s = cluster.wait_healthy(timeout=90)
    assert s["leader"] == cand.name
    wait_until(lambda: {"archiver", "pgrcv"} <= slots(cand), 20,
               what="permanent slots on the new leader")
    # the former leader is a replica now: it keeps no permanent slot, as in
    # Patroni, and still spares barman
    wait_until(lambda: not {"archiver", "pgrcv"} & slots(leader), 30,
               what="permanent slots gone from the former leader")
    assert "barman" in slots(leader)


def test_unreadable_ignore_slots_in_etcd_protects_every_slot(cluster):
    """Written around the API (etcdctl, another tool): an ignore_slots the
    agent cannot read must not leave the slots it meant to protect exposed."""
    s = cluster.wait_healthy(timeout=60)
    leader, _ = members(cluster, s)
    config = json.loads(cluster.etcd_get("config"))
    key = f"/service/{cluster.scope}/config"

    def put(marker):
        config["ignore_slots"] = [{"nmae": "walarchive"}]
        config["slots"] = dict(config.get("slots") or {}, **{marker: {"type": "physical"}})
        status, body = cluster.etcd.api("kv/put", {
            "key": base64.b64encode(key.encode()).decode(),
            "value": base64.b64encode(json.dumps(config).encode()).decode()})
        assert status == 200, body
        # the marker appearing shows the slot statements ran with this config
        wait_until(lambda: marker in slots(leader), 20, what=f"slot sync adding {marker}")

    # the config first: a slot made before it, under the module's earlier
    # ignore_slots, may be dropped (rightly) before the new config arrives
    put("marker")
    make_slot(leader, "walarchive")
    # a later sync, with walarchive there, keeps it
    put("marker2")
    time.sleep(2)
    assert "walarchive" in slots(leader), slots(leader)
