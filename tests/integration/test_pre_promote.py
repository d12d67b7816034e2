"""Patroni's `postgresql.pre_promote` (a fencing script run after the leader
key is taken and before PostgreSQL is promoted) on three real PostgreSQL 15
nodes with real etcd.

A failing script vetoes the promotion: its member held the key while the
script ran, never left recovery, gave the key back and another member took
over (through its own script); dbha's tie-break does not make the others wait
for the member whose script failed. Then the worst moment: the member's
script is running when it is cut off from etcd; its lease runs out, the
script succeeds, and the member must not promote; healed, it takes the key
again, runs the script again, and leads. Before, pre_promote was refused.
"""
import json
import os
import textwrap
import time

import pytest

from conftest import started_cluster
from lib.pg import hand_to_pg_user
from lib.procs import wait_until

PY = "/usr/bin/python3"
TTL = 10

# pre_promote: NODE CTL_DIR SOCKET_DIR PORT. Reads CTL_DIR/NODE ("ok", "fail",
# "sleep S ok|fail"), records the time and whether its server is in recovery
# in CTL_DIR/NODE.jsonl, then exits accordingly.
SCRIPT = textwrap.dedent("""\
    import json, os, subprocess, sys, time
    node, ctl, sock, port = sys.argv[1:5]
    try:
        words = open(os.path.join(ctl, node)).read().split()
    except FileNotFoundError:
        words = ["ok"]
    rec = subprocess.run(["/usr/lib/postgresql/15/bin/psql", "-h", sock, "-p", port, "-U",
                          "postgres", "-d", "postgres", "-Atc", "SELECT pg_is_in_recovery()"],
                         capture_output=True, text=True, timeout=10).stdout.strip()
    with open(os.path.join(ctl, node + ".jsonl"), "a") as f:
        f.write(json.dumps({"t": time.time(), "in_recovery": rec, "words": words}) + "\\n")
    if words[0] == "sleep":
        time.sleep(float(words[1]))
        words = words[2:]
    sys.exit(0 if words[0] == "ok" else 1)
    """)


@pytest.fixture(scope="module")
def cluster():
    state = {}

    def configure(c):
        ctl = os.path.join(c.workdir, "ctl")
        hand_to_pg_user(ctl)
        script = os.path.join(c.workdir, "pre_promote.py")
        with open(script, "w") as f:
            f.write(SCRIPT)
        os.chmod(script, 0o755)
        state["ctl"] = ctl
        for n in c.nodes:
            n.postgresql_yaml = (f"  pre_promote: {PY} {script} {n.name} {ctl} {n.dir} "
                                 f"{n.pg_port}\n")

    with started_cluster("dbha-pre-promote-", configure, n=3, ttl=TTL, loop_wait=1,
                         retry_timeout=2, etcd_per_node=True) as c:
        c.ctl = state["ctl"]
        yield c


def set_script(cluster, node, words):
    path = os.path.join(cluster.ctl, node.name)
    with open(path, "w") as f:
        f.write(words)
    os.chmod(path, 0o644)


def runs(cluster, node):
    path = os.path.join(cluster.ctl, node.name + ".jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def in_recovery(node):
    try:
        return node.sql("SELECT pg_is_in_recovery()")[0][0]
    except Exception:  # noqa: BLE001 - not answering is not out of recovery
        return None


def test_failing_pre_promote_vetoes_the_promotion(cluster):
    s = cluster.wait_healthy(timeout=60)
    old = cluster.node(s["leader"])
    a, b = sorted((n for n in cluster.nodes if n is not old), key=lambda n: n.name)
    # a wins the tie (same WAL, the smaller name): its script fails after 3 s
    set_script(cluster, a, "sleep 3 fail")
    set_script(cluster, b, "ok")
    a_runs, b_runs = len(runs(cluster, a)), len(runs(cluster, b))
    old.kill_with_postgres()
    held_by_a = False
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        leader = cluster.etcd_get("leader")
        held_by_a = held_by_a or leader == a.name
        assert in_recovery(a) is not False, f"{a.name} was promoted though its pre_promote failed"
        if leader == b.name and in_recovery(b) is False:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"{b.name} did not take over; leader {cluster.etcd_get('leader')}")
    assert held_by_a, f"{a.name} never held the leader key while its script ran"
    assert cluster.procs.log_contains(
        a.name, "pre_promote failed: not promoting; releasing the leader key")
    ra, rb = runs(cluster, a)[a_runs:], runs(cluster, b)[b_runs:]
    assert len(ra) == 1 and ra[0]["in_recovery"] == "t", ra
    # b's script ran before b's promotion, once
    assert len(rb) == 1 and rb[0]["in_recovery"] == "t", rb
    assert rb[0]["t"] > ra[0]["t"] + 3, (ra, rb)
    assert in_recovery(a) is True
    # the old leader comes back as a replica of b; a follows b too
    old.start()
    cluster.wait_healthy(timeout=120)
    assert cluster.status()["leader"] == b.name


def test_no_promotion_when_the_lease_ran_out_during_pre_promote(cluster, partition):
    """Last: the fault at the worst moment, two nodes. The candidate's script
    is running when the candidate is cut off from etcd; the script succeeds
    after its lease has run out: no promotion. Healed, it runs the script
    again and leads."""
    s = cluster.wait_healthy(timeout=60)
    leader = cluster.node(s["leader"])
    rest = [n for n in cluster.nodes if n is not leader]
    rest[1].stop(timeout=60)
    cand = rest[0]
    set_script(cluster, cand, f"sleep {TTL + 5} ok")
    before = len(runs(cluster, cand))
    leader.kill_with_postgres()
    wait_until(lambda: cluster.etcd_get("leader") == cand.name and len(runs(cluster, cand)) > before,
               60, interval=0.1, what=f"{cand.name} holding the key, its script running")
    partition.cut_etcd(cand)
    cut_at = time.monotonic()
    wait_until(lambda: cluster.etcd_get("leader") is None, TTL + 10, interval=0.2,
               what="the cut-off candidate's key expired")
    # the script ends (success) TTL + 5 s after it started; watch well past it
    while time.monotonic() < cut_at + TTL + 12:
        assert in_recovery(cand) is True, f"{cand.name} promoted without the leader key"
        time.sleep(0.2)
    assert cluster.procs.log_contains(cand.name, "pre_promote ended, but the leader key is not ours")
    set_script(cluster, cand, "ok")
    partition.heal()
    wait_until(lambda: cluster.etcd_get("leader") == cand.name and in_recovery(cand) is False, 60,
               interval=0.2, what=f"{cand.name} leading after the heal")
    r = runs(cluster, cand)[before:]
    assert len(r) == 2 and all(x["in_recovery"] == "t" for x in r), r
