"""Randomized faults (`make chaos ROUNDS=N SEED=S`; a short run is
test_chaos.py in `make check`).

One cluster of three nodes (ttl 6, loop_wait 1, retry_timeout 1) on a
three-member etcd. Each node reaches etcd on its own loopback address (so
that nftables can cut it off from etcd), runs in control groups of its own
(lib/nodecg.py: so that nftables can cut it off from the other members, and
a CPU quota can starve it) and keeps its directory (data, WAL) on a tmpfs of
its own (so that it can be filled). Two writers run on every node
(lib/writer.py: one INSERT per attempt on the node's own port): one holds its
connection until it fails, one opens a new connection for every INSERT.

Each round draws one or two faults, each on the leader (60 %) or a replica:

  kill9-agent      kill -9 of the agent (PostgreSQL keeps running)
  kill9-postgres   kill -9 of the postmaster
  kill9-node       both
  stop-agent       SIGSTOP of the agent
  stop-postgres    SIGSTOP of the postmaster
  stop-node        both (a hung host)
  cut-etcd         the node cut off from etcd (replication, REST, clients
                   untouched)
  cut-members      the node cut off from the other members (PostgreSQL and
                   REST ports both ways; etcd and clients untouched)
  cut-all          both cuts: only the tests' clients still reach it
  etcd-member      kill -9 of one etcd member (restarted at the heal)
  etcd-quorum      kill -9 of two etcd members: no quorum
  starve           the node's control group held to 2 % of a CPU (agent,
                   fencing process and PostgreSQL)
  disk-full        the node's tmpfs filled to the last byte (on a primary,
                   WAL segments switched until a new one must be made)
  ttl              ttl set to 5 or 8 (PATCH /config on the leader)
  loop-wait        loop_wait set to 1 or 2
  sync             synchronous_mode switched on or off
  switchover       dbctl switchover --force to a replica, during the other
                   fault (only drawn second)
  failover         dbctl failover --force to a replica, during the other
                   fault (only drawn second)

holds them 1-8 s, heals everything (SIGCONT, the partitions lifted, the
quota and the filler removed, killed agents and etcd members started again)
and waits for one primary with every replica streaming, at most HEAL_BOUND
s. Checked over the whole history:

- no two nodes took writes in overlapping intervals (each writer's history);
- in synchronous mode no acknowledged write is lost: in a round that began
  with synchronous_mode on and a synchronous standby in place, that did not
  switch it and that asked for no failover to an asynchronous replica (an
  operator's forced failover may lose writes by design, in Patroni too),
  every write sent after the round began and acknowledged before the
  cluster was healthy again is on the primary afterwards;
- the cluster was healthy within HEAL_BOUND s of every heal.

Each round's random generator is seeded with "<seed>-<round>": a round is
replayed with `make chaos SEED=S FIRST=R ROUNDS=1` (its draws; which node
leads by then, and so which node a fault hits, depends on earlier rounds).
`make chaos FAULTS=starve@leader,stop-agent@leader HOLD=10` applies those
faults (a kind, then @leader or @replica, else drawn) in every round and
holds them that long. DBHA_KEEP_LOGS=1 keeps a passing run's logs. Output: one line per
round (faults drawn, time to healthy, writes checked), then totals (rounds,
faults per kind, overlaps, writes acknowledged, protected writes checked
and lost). A failing run keeps its logs and both writers' histories (the
path is printed).
"""
import collections
import json
import os
import random
import signal
import subprocess
import threading
import time
import urllib.request

import pytest

from lib.cluster import DbhaCluster
from lib.nodecg import available as cgroups_unavailable
from lib.procs import LOOPBACK, binary
from lib.writer import Writer

ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "10"))
# "starve@leader,stop-agent@leader": these faults in every round instead of
# drawn ones (a kind, and @leader or @replica for where; else drawn)
FAULTS = os.environ.get("CHAOS_FAULTS", "")
HOLD = os.environ.get("CHAOS_HOLD", "")  # seconds each round holds its faults; else drawn (1-8)
SEED = os.environ.get("CHAOS_SEED") or str(int(time.time()))
FIRST = int(os.environ.get("CHAOS_FIRST", "0"))
HEAL_BOUND = 180  # s from the heal to one primary and every replica streaming
NODE_TMPFS = "768M"
STARVE_QUOTA_US, STARVE_PERIOD_US = 2000, 100000
REQUESTS = ("switchover", "failover")  # only drawn as the second fault
KINDS = ["kill9-agent", "kill9-postgres", "kill9-node", "stop-agent", "stop-postgres",
         "stop-node", "cut-etcd", "cut-members", "cut-all", "etcd-member", "etcd-quorum",
         "starve", "disk-full", "ttl", "loop-wait", "sync", *REQUESTS]
NEEDS_CGROUPS = ("cut-members", "cut-all", "starve")


def signal_pid(pid, sig):
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, TypeError):
        pass


def patch_config(node, body):
    req = urllib.request.Request(f"http://{LOOPBACK}:{node.api_port}/config",
                                 data=json.dumps(body).encode(), method="PATCH",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except OSError as e:  # the leader may be the node a fault hit
        return str(e)


class Round:
    """The faults of one round, applied and then healed."""

    def __init__(self, cluster, partition, rng, state):
        self.c, self.part, self.rng, self.state = cluster, partition, rng, state
        self.killed = []   # nodes whose agent must be started again
        self.stopped = []  # PIDs to SIGCONT
        self.cut = False
        self.starved = []
        self.fillers = []
        self.etcd_killed = []
        self.drawn = []
        self.bg = []       # dbctl requests still running
        self.sync_switched = False
        self.requests = []  # (kind, candidate name)
        self.threads = []   # bounded helpers, joined at the heal

    def target(self, leader, on=None):
        others = [n for n in self.c.nodes if n is not leader]
        if on == "leader" or (on is None and (self.rng.random() < 0.6 or not others)):
            return leader
        return self.rng.choice(others)

    def apply(self, kind, leader, on=None):
        n = self.target(leader, on)
        where = f"@{n.name}{'(leader)' if n is leader else ''}"
        detail = ""
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
        elif kind in ("cut-etcd", "cut-members", "cut-all"):
            if kind != "cut-members":
                self.part.cut_etcd(n)
            if kind != "cut-etcd":
                self.part.cut_members(n, self.c.nodes)
            self.cut = True
        elif kind in ("etcd-member", "etcd-quorum"):
            alive = [m for m in self.c.etcd.members if m not in self.etcd_killed]
            for m in self.rng.sample(alive, min(len(alive), 1 if kind == "etcd-member" else 2)):
                self.c.etcd.kill(m)
                self.etcd_killed.append(m)
                detail += f" {m.name}"
            where = ""
        elif kind == "starve":
            n.cgroup.starve(STARVE_QUOTA_US, STARVE_PERIOD_US)
            self.starved.append(n)
        elif kind == "disk-full":
            path = os.path.join(n.dir, f"filler-{len(self.fillers)}")
            st = os.statvfs(n.dir)
            size = st.f_bavail * st.f_frsize
            if size > 0:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
                try:
                    os.posix_fallocate(fd, 0, size)
                except OSError:
                    pass  # as full as it gets
                finally:
                    os.close(fd)
                self.fillers.append(path)
            detail = f" {size >> 20} MB"
            # WAL segments are recycled, so a quiet primary may not need a new
            # file for minutes: switch segments until one has to be made
            t = threading.Thread(target=switch_wal, args=(n, 20), daemon=True)
            t.start()
            self.threads.append(t)
        elif kind == "ttl":
            self.state["ttl"] = self.rng.choice([5, 8])
            detail = f" {self.state['ttl']}: {patch_config(leader, {'ttl': self.state['ttl']})}"
            where = ""
        elif kind == "loop-wait":
            self.state["loop_wait"] = self.rng.choice([1, 2])
            detail = (f" {self.state['loop_wait']}: "
                      f"{patch_config(leader, {'loop_wait': self.state['loop_wait']})}")
            where = ""
        elif kind == "sync":
            want = not self.state["sync"]
            res = patch_config(leader, {"synchronous_mode": want})
            # a refused PATCH may still have reached etcd: read the key back at the heal
            self.sync_switched = True
            detail = f" {'on' if want else 'off'}: {res}"
            where = ""
        elif kind in REQUESTS:
            # in the background: it may wait on the other fault; reaped at the heal
            cands = [x for x in self.c.nodes if x is not leader]
            cand = self.rng.choice(cands)
            self.bg.append(subprocess.Popen(
                [binary("dbctl"), "--etcd", ",".join(self.c.etcd.endpoints), "--scope",
                 self.c.scope, kind, "--candidate", cand.name, "--force"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            self.requests.append((kind, cand.name))
            where = f"->{cand.name}"
        self.drawn.append(f"{kind}{where}{detail}")

    def heal(self):
        for p in self.stopped:
            signal_pid(p, signal.SIGCONT)
        for t in self.threads:  # after SIGCONT: a stopped server holds its statement
            t.join(timeout=30)
        if self.cut:
            self.part.heal()
        for n in self.starved:
            n.cgroup.feed()
        for f in self.fillers:
            os.unlink(f)
        if self.etcd_killed:
            self.c.etcd.restart_all(self.etcd_killed, timeout=30)
        for n in self.killed:
            n.start()
        for p in self.bg:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)


def tmpfs_unavailable(workdir):
    """Why a tmpfs cannot be mounted here (disk-full needs one per node), or None."""
    probe = os.path.join(workdir, "tmpfs-probe")
    os.makedirs(probe, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "dbha-probe", probe],
                       capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        os.rmdir(probe)
        return f"mount -t tmpfs: {r.stderr.strip() or r.returncode}"
    subprocess.run(["umount", probe], capture_output=True, timeout=10)
    os.rmdir(probe)
    return None


def switch_wal(node, times):
    """pg_switch_wal() on node up to `times` times (errors end it: a replica, a
    server that went down); bounded by its count and each connection's timeout."""
    for _ in range(times):
        try:
            node.sql("SELECT pg_switch_wal()")
        except Exception:  # noqa: BLE001 - the fault may already have hit
            return
        time.sleep(0.05)


def round_start(c):
    """The leader node (or None) and the synchronous standbys' names."""
    try:
        st = c.status()
    except AssertionError:
        return None, set()
    sync = {m["name"] for m in st["members"] if m["role"] == "sync_standby"}
    return (c.node(st["leader"]) if st["leader"] else None), sync


def sync_mode_on(c):
    cfg = c.etcd_get("config")
    return bool(cfg and json.loads(cfg).get("synchronous_mode"))


def replication_seen_by(leader):
    """(not in recovery, {application_name: sync_state} of the streaming standbys) as
    the leader's PostgreSQL says, or None when it does not answer."""
    try:
        rec = leader.sql("SELECT pg_is_in_recovery()")[0][0]
        rows = leader.sql("SELECT application_name, sync_state FROM pg_stat_replication "
                          "WHERE state = 'streaming'")
    except Exception:  # noqa: BLE001 - not yet
        return None
    return not rec, dict(rows)


def wait_healthy(c, sync, timeout):
    """One primary and every replica streaming, as dbctl status says (the member
    keys) and as the primary's own PostgreSQL says (a member key may still
    show what was true before the faults); in synchronous mode one replica a
    synchronous standby too. Returns the status."""
    deadline = time.monotonic() + timeout
    why = None
    for _ in range(10000):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s = c.wait_healthy(timeout=left)
        leader = c.node(s["leader"])
        others = {n.name for n in c.nodes if n is not leader}
        seen = replication_seen_by(leader)
        if seen is None:
            why = f"{leader.name}'s PostgreSQL does not answer"
        elif not seen[0]:
            why = f"{leader.name} is in recovery"
        elif not others <= set(seen[1]):
            why = f"{leader.name} sees {sorted(seen[1])} streaming, not {sorted(others)}"
        elif sync and not any(v in ("sync", "quorum") for v in seen[1].values()):
            why = f"no synchronous standby at {leader.name}: {seen[1]}"
        else:
            return s
        time.sleep(0.5)
    raise AssertionError(f"not healthy within {timeout} s: {why}")


def run_chaos(procs, workdir, partition, rounds=ROUNDS, seed=SEED, first=FIRST):
    why = cgroups_unavailable()
    no_tmpfs = tmpfs_unavailable(workdir)
    kinds_here = [k for k in KINDS if not (why and k in NEEDS_CGROUPS)
                  and not (k == "disk-full" and no_tmpfs)]
    if why:
        print(f"chaos: {', '.join(NEEDS_CGROUPS)} left out: {why}")
    if no_tmpfs:
        print(f"chaos: disk-full left out: {no_tmpfs}")
    c = DbhaCluster(procs, workdir, n=3, ttl=6, loop_wait=1, retry_timeout=1,
                    etcd_per_node=True, etcd_size=3, node_cgroups=not why,
                    node_tmpfs=None if no_tmpfs else NODE_TMPFS, log_level="INFO")
    kinds = collections.Counter()
    heal_times = []
    checked = lost = 0
    writers = []
    state = {"ttl": 6, "loop_wait": 1, "sync": False}
    try:
        c.start()
        first_leader = c.node(c.wait_healthy(timeout=120)["leader"])
        bound = rounds * (HEAL_BOUND + 60) + 120
        writers = [Writer(c.nodes, table="dbha_writes", max_duration=bound),
                   Writer(c.nodes, table="dbha_writes_new", max_duration=bound,
                          reconnect_each=True)]
        for w in writers:
            w.ensure_table(first_leader, wait_for=[n for n in c.nodes if n is not first_leader])
            w.start()
        for rnd in range(first, first + rounds):
            rng = random.Random(f"{seed}-{rnd}")
            leader, sync_standbys = round_start(c)
            leader = leader or c.nodes[0]
            r = Round(c, partition, rng, state)
            sync_at_start = state["sync"]
            faults = [(rng.choice([k for k in kinds_here if k not in REQUESTS]), None)]
            if rng.random() < 0.5:
                faults.append((rng.choice(kinds_here), None))
            if FAULTS:
                faults = [tuple(f.split("@", 1)) if "@" in f else (f, None)
                          for f in FAULTS.split(",")]
                assert all(k in kinds_here for k, _ in faults), f"CHAOS_FAULTS {FAULTS}"
            t0 = time.monotonic()
            for k, on in faults:
                r.apply(k, leader, on)
                kinds[k] += 1
            hold = float(HOLD) if HOLD else rng.uniform(1, 8)
            time.sleep(hold)
            r.heal()
            t_heal = time.monotonic()
            try:
                state["sync"] = sync_mode_on(c)
                s = wait_healthy(c, state["sync"], HEAL_BOUND)
            except Exception as e:  # noqa: BLE001 - reported with the seed
                pytest.fail(f"round {rnd} (seed {seed}): not healthy {HEAL_BOUND} s after "
                            f"the heal: {e}; faults {r.drawn}")
            t_ok = time.monotonic()
            heal_times.append(t_ok - t_heal)
            note = ""
            # an operator's forced failover to an asynchronous replica may lose
            # writes by design (Patroni: a failover, unlike a switchover, is
            # not limited to the synchronous standby): such a round is not
            # checked
            forced_async = [cand for kind, cand in r.requests
                            if kind == "failover" and cand not in sync_standbys]
            if sync_at_start and not r.sync_switched and not forced_async:
                new_leader = c.node(s["leader"])
                for w in writers:
                    seqs = w.acked_between(t0, t_ok)
                    miss = w.missing_among(new_leader, seqs)
                    checked += len(seqs)
                    lost += len(miss)
                    assert not miss, (f"round {rnd} (seed {seed}): {len(miss)} of {len(seqs)} "
                                      f"writes acknowledged in synchronous mode are not on "
                                      f"{new_leader.name} ({w.table}: {miss[:20]}); faults "
                                      f"{r.drawn}")
                note = "; synchronous: every acknowledged write on the primary"
            print(f"chaos round {rnd} seed {seed}: {', '.join(r.drawn)}; held {hold:.1f} s; "
                  f"healthy {t_ok - t_heal:.1f} s after the heal (leader {s['leader']}, "
                  f"{t_ok - t0:.1f} s in all){note}", flush=True)
        for w in writers:
            w.stop()
        overlaps = {w.table: w.report()["overlaps"] for w in writers}
        acked = sum(len(w.acked()) for w in writers)
        print(f"chaos: {rounds} rounds, seed {seed}, faults drawn "
              f"{dict(sorted(kinds.items()))}, healthy after the heal within "
              f"{max(heal_times):.1f} s (median {sorted(heal_times)[len(heal_times) // 2]:.1f} s), "
              f"{acked} writes acknowledged, overlaps "
              f"{sum(len(o) for o in overlaps.values())}, {checked} writes acknowledged in "
              f"synchronous mode checked, {lost} lost", flush=True)
        for w in writers:
            w.assert_no_overlap()
    except BaseException:
        for w in writers:
            w.stop()
            w.dump(os.path.join(workdir, f"history-{w.table}.jsonl"))
            print(w.format_report())
        raise
    finally:
        c.stop_all()


def test_chaos_rounds(procs, workdir, partition):
    run_chaos(procs, workdir, partition)
