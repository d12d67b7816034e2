"""Randomized faults (`make chaos ROUNDS=N SEED=S`; not part of the regular
suite: the file name does not match test_*.py, the Makefile names it).

One cluster of three nodes (ttl 6, loop_wait 1, retry_timeout 1; each node
reaches etcd on its own loopback address so that nftables can cut it off)
and a writer on every node (lib/writer.py: one INSERT per attempt, its
node's own port, a new connection after a failure). Each round draws one or two faults, each on the leader or a replica:

  kill9-agent      kill -9 of the agent (PostgreSQL keeps running)
  kill9-postgres   kill -9 of the postmaster
  kill9-node       both
  stop-agent       SIGSTOP of the agent
  stop-postgres    SIGSTOP of the postmaster
  stop-node        both (a hung host)
  cut-etcd         the node cut off from etcd (nftables; replication and
                   clients untouched)
  ttl              ttl set to 5 or 8 through the leader's REST API
  switchover       dbctl switchover --force to a replica, during the other fault

holds them 1-8 s, heals everything (SIGCONT, the partition lifted, killed
agents started again) and waits for one primary with every replica
streaming, at most HEAL_BOUND s. After all rounds the writer's whole
history is checked: no two nodes took writes in overlapping intervals.

Each round's random generator is seeded with "<seed>-<round>": a round is
replayed with `make chaos SEED=S FIRST=R ROUNDS=1`. Output: one line per
round (faults drawn, time to healthy), then totals (rounds, faults per kind,
overlaps). A failing run keeps its logs (the path is printed).
"""
import collections
import json
import os
import random
import signal
import subprocess
import time
import urllib.request

import pytest

from lib.cluster import DbhaCluster
from lib.procs import LOOPBACK, binary
from lib.writer import Writer

ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "10"))
SEED = os.environ.get("CHAOS_SEED") or str(int(time.time()))
FIRST = int(os.environ.get("CHAOS_FIRST", "0"))
HEAL_BOUND = 180  # s from the heal to one primary and every replica streaming
KINDS = ["kill9-agent", "kill9-postgres", "kill9-node", "stop-agent", "stop-postgres",
         "stop-node", "cut-etcd", "ttl", "switchover"]


def signal_pid(pid, sig):
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, TypeError):
        pass


def patch_ttl(node, ttl):
    req = urllib.request.Request(f"http://{LOOPBACK}:{node.api_port}/config",
                                 data=json.dumps({"ttl": ttl}).encode(), method="PATCH",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except OSError as e:  # the leader may be the node a fault hit
        return str(e)


class Round:
    """The faults of one round, applied and then healed."""

    def __init__(self, cluster, partition, rng):
        self.c, self.part, self.rng = cluster, partition, rng
        self.killed = []   # nodes whose agent must be started again
        self.stopped = []  # PIDs to SIGCONT
        self.cut = False
        self.drawn = []
        self.bg = []       # dbctl requests still running

    def target(self, leader):
        others = [n for n in self.c.nodes if n is not leader]
        return leader if self.rng.random() < 0.6 or not others else self.rng.choice(others)

    def apply(self, kind, leader):
        n = self.target(leader)
        self.drawn.append(f"{kind}@{n.name}{'(leader)' if n is leader else ''}")
        if kind in ("kill9-agent", "kill9-node") and n.proc is not None:
            pm = n.postmaster_pid()
            n.kill()
            self.killed.append(n)
            if kind == "kill9-node":
                signal_pid(pm, signal.SIGKILL)
        elif kind == "kill9-postgres":
            signal_pid(n.postmaster_pid(), signal.SIGKILL)
        elif kind in ("stop-agent", "stop-postgres", "stop-node"):
            pids = []
            if kind != "stop-postgres" and n.proc is not None:
                pids.append(n.proc.pid)
            if kind != "stop-agent" and n.postmaster_pid():
                pids.append(n.postmaster_pid())
            for p in pids:
                signal_pid(p, signal.SIGSTOP)
            self.stopped += pids
        elif kind == "cut-etcd":
            self.part.cut_etcd(n)
            self.cut = True
        elif kind == "ttl":
            patch_ttl(leader, self.rng.choice([5, 8]))
        elif kind == "switchover":
            # in the background: it may wait on the other fault; reaped at the heal
            cands = [x for x in self.c.nodes if x is not leader]
            self.bg.append(subprocess.Popen(
                [binary("dbctl"), "--etcd", ",".join(self.c.etcd.endpoints), "--scope",
                 self.c.scope, "switchover", "--candidate", self.rng.choice(cands).name,
                 "--force"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def heal(self):
        for p in self.stopped:
            signal_pid(p, signal.SIGCONT)
        if self.cut:
            self.part.heal()
        for n in self.killed:
            n.start()
        for p in self.bg:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)


def leader_node(c):
    try:
        name = c.status()["leader"]
    except AssertionError:
        return None
    return c.node(name) if name else None


def test_chaos_rounds(procs, workdir, partition):
    c = DbhaCluster(procs, workdir, n=3, ttl=6, loop_wait=1, retry_timeout=1,
                    etcd_per_node=True, log_level="INFO")
    kinds = collections.Counter()
    heal_times = []
    try:
        c.start()
        first_leader = c.node(c.wait_healthy(timeout=120)["leader"])
        w = Writer(c.nodes, max_duration=ROUNDS * (HEAL_BOUND + 60) + 120)
        w.ensure_table(first_leader, wait_for=[n for n in c.nodes if n is not first_leader])
        w.start()
        with w:
            for rnd in range(FIRST, FIRST + ROUNDS):
                rng = random.Random(f"{SEED}-{rnd}")
                leader = leader_node(c) or c.nodes[0]
                r = Round(c, partition, rng)
                first = rng.choice([k for k in KINDS if k != "switchover"])
                faults = [first]
                if rng.random() < 0.5:
                    faults.append(rng.choice(KINDS))
                t0 = time.monotonic()
                for k in faults:
                    r.apply(k, leader)
                    kinds[k] += 1
                hold = rng.uniform(1, 8)
                time.sleep(hold)
                r.heal()
                t_heal = time.monotonic()
                try:
                    s = c.wait_healthy(timeout=HEAL_BOUND)
                except Exception as e:  # noqa: BLE001 - reported with the seed
                    pytest.fail(f"round {rnd} (seed {SEED}): not healthy {HEAL_BOUND} s after "
                                f"the heal: {e}; faults {r.drawn}")
                healthy = time.monotonic() - t_heal
                heal_times.append(healthy)
                print(f"chaos round {rnd} seed {SEED}: {', '.join(r.drawn)}; held {hold:.1f} s; "
                      f"healthy {healthy:.1f} s after the heal (leader {s['leader']}, "
                      f"{time.monotonic() - t0:.1f} s in all)", flush=True)
        rep = w.report()
        overlaps = rep.get("overlaps", []) if isinstance(rep, dict) else []
        print(f"chaos: {ROUNDS} rounds, seed {SEED}, faults drawn "
              f"{dict(sorted(kinds.items()))}, healthy after the heal within "
              f"{max(heal_times):.1f} s (median {sorted(heal_times)[len(heal_times) // 2]:.1f} s), "
              f"overlaps {len(overlaps)}", flush=True)
        w.assert_no_overlap()
    finally:
        c.stop_all()
