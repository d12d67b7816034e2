"""A short randomized fault run in `make check` (chaos_rounds.py; `make chaos`
runs as many rounds as asked). A new seed every run, printed with every
round: a failure is replayed with `make chaos SEED=S FIRST=R ROUNDS=1`.
Also: the harness's own cut between members does cut (and nothing else)."""
import os
import subprocess
import sys
import time
import types

import pytest

from chaos_rounds import run_chaos
from lib.nodecg import NodeCgroups
from lib.nodecg import available as cgroups_unavailable
from lib.procs import LOOPBACK, free_port

CHECK_ROUNDS = int(os.environ.get("CHAOS_CHECK_ROUNDS", "6"))

# a listener on two ports, then one connection attempt to each port of the
# peer named on the command line: prints "PORT ok" or "PORT cut"
PROBE = r"""
import socket, sys
mine, peer = [int(x) for x in sys.argv[1:3]], [int(x) for x in sys.argv[3:5]]
ls = []
for p in mine:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", p)); s.listen(16); ls.append(s)
print("listening", flush=True)
for _ in range(10):
    if not sys.stdin.readline():
        break
    for p in peer:
        c = socket.socket(); c.settimeout(1.0)
        try:
            c.connect(("127.0.0.1", p)); print(p, "ok", flush=True)
        except OSError:
            print(p, "cut", flush=True)
        c.close()
"""


def reach(port):
    import socket
    c = socket.socket()
    c.settimeout(1.0)
    try:
        c.connect((LOOPBACK, port))
        return True
    except OSError:
        return False
    finally:
        c.close()


@pytest.mark.skipif(cgroups_unavailable() is not None, reason=str(cgroups_unavailable()))
def test_cut_members_cuts_members_only(partition, workdir):
    nodes = []
    for i in range(2):
        n = types.SimpleNamespace(name=f"n{i}", pg_port=free_port(), api_port=free_port())
        n.cgroup = NodeCgroups(f"dbha-{os.getpid()}-cuttest-{i}")
        nodes.append(n)
    procs = []
    try:
        for i, n in enumerate(nodes):
            peer = nodes[1 - i]
            argv = n.cgroup.wrap([sys.executable, "-c", PROBE, str(n.pg_port), str(n.api_port),
                                  str(peer.pg_port), str(peer.api_port)], user=None)
            p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert p.stdout.readline().strip() == "listening"
            procs.append(p)

        def attempts():
            out = []
            for p in procs:
                p.stdin.write("\n")
                p.stdin.flush()
            for p in procs:
                out += [p.stdout.readline().split()[1] for _ in range(2)]
            return out

        assert attempts() == ["ok"] * 4
        partition.cut_members(nodes[0], nodes)
        assert attempts() == ["cut"] * 4  # both ways, both ports
        partition.heal()
        assert attempts() == ["ok"] * 4
        # the tests' own clients (in no node's group) still reach both nodes
        assert all(reach(port) for n in nodes for port in (n.pg_port, n.api_port))
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=10)
        for n in nodes:
            n.cgroup.delete()


def test_chaos_short(procs, workdir, partition):
    run_chaos(procs, workdir, partition, rounds=CHECK_ROUNDS)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


@pytest.mark.skipif(cgroups_unavailable() is not None, reason=str(cgroups_unavailable()))
def test_starve_holds_a_node_to_its_quota():
    """The chaos suite's CPU starvation: a busy process in a node's groups gets
    about the quota (2 ms per 100 ms) while starved, a whole CPU after."""
    cg = NodeCgroups(f"dbha-{os.getpid()}-starvetest")
    p = subprocess.Popen(cg.wrap([sys.executable, "-c", "while True: pass"], user=None))
    try:
        cg.starve(2000, 100000)
        a = cpu_seconds(p.pid)
        time.sleep(1.0)
        starved = cpu_seconds(p.pid) - a
        cg.feed()
        a = cpu_seconds(p.pid)
        time.sleep(1.0)
        fed = cpu_seconds(p.pid) - a
        print(f"busy loop: {starved:.3f} CPU s in 1 s starved, {fed:.3f} fed")
        assert starved < 0.2 < fed
    finally:
        p.kill()
        p.wait(timeout=10)
        cg.delete()
