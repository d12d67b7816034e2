"""Shared pieces of the cluster benchmarks (bench/failover, bench/switchover, bench/rest).

A dbha or Patroni 3.0.2 cluster on 127.0.0.1 built from one generated YAML file per
node (`node_config()`, the same text for dbagent and patroni), a fresh single-member
etcd, process-tree helpers that stop everything by PID, a per-node writer thread, idle
resource sampling from /proc, and the version/host records every result file carries.
Imported by the scripts next to it (their directory is on sys.path).
"""
import hashlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import psycopg2  # noqa: E402
import psycopg2.errors  # noqa: E402

from lib.etcd_cluster import EtcdCluster  # noqa: E402
from lib.pg import PG_OS_USER, as_root, hand_to_pg_user, pid_alive  # noqa: E402
from lib.procs import LOOPBACK, Procs, free_port, wait_until  # noqa: E402,F401

PG_BIN = "/usr/lib/postgresql/15/bin"
PATRONI = "/usr/bin/patroni"
PATRONICTL = "/usr/bin/patronictl"
SUPERUSER, SUPERUSER_PW = "postgres", "bench-super"
REPL, REPL_PW = "replicator", "bench-repl"
REWIND, REWIND_PW = "rewinder", "bench-rewind"
CLK_TCK = os.sysconf("SC_CLK_TCK")

def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class HarnessError(Exception):
    """The benchmark could not measure (not a slow result)."""


class NotHealthy(Exception):
    """A cluster did not reach one primary + streaming replicas in time."""


# ---------------------------------------------------------------- processes

def children_of(pid):
    """Direct children of pid (from /proc/<pid>/task/*/children)."""
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def tree_of(pid):
    """pid and all its descendants."""
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo += children_of(p)
    return seen


def kill_pids(pids, sig=signal.SIGKILL):
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def wait_gone(pids, timeout=10):
    deadline = time.monotonic() + timeout
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)


def proc_status_kb(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:  # gone meanwhile
        pass
    return 0


def proc_rss_kb(pid):
    return proc_status_kb(pid, "VmRSS")


def pids_mentioning(path):
    """Live PIDs whose command line contains path (our agents, a dbagent fence, which keeps
    the agent's command line, and postmasters started with -D under path)."""
    out = []
    needle = path.encode()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if needle in f.read():
                    out.append(int(d))
        except OSError:
            pass
    return out


def proc_cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:  # gone meanwhile
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)


# ---------------------------------------------------------------- cluster

def yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return '"' + str(v).replace('\\', '\\\\').replace('"', '\\"') + '"'


def node_config(scope, name, etcd_hosts, api_port, pg_port, node_dir, ttl, loop_wait,
                retry_timeout, log_level="INFO", dcs_extra=None, initdb_extra=None):
    """One node's YAML. The same text is fed to dbagent and to patroni. dcs_extra: more
    scalar keys for bootstrap.dcs ({"synchronous_mode": True, ...}), in the given order;
    initdb_extra: more bootstrap.initdb items (["data-checksums"])."""
    extra = "".join(f"    {k}: {yaml_scalar(v)}\n" for k, v in (dcs_extra or {}).items())
    initdb = "".join(f"    - {x}\n" for x in (initdb_extra or []))
    hba = (f"    - local all all trust\n"
           f"    - host replication {REPL} 127.0.0.1/32 scram-sha-256\n"
           f"    - host all all 127.0.0.1/32 scram-sha-256\n")
    return f"""\
scope: {scope}
namespace: /service/
name: {name}
restapi:
  listen: {LOOPBACK}:{api_port}
  connect_address: {LOOPBACK}:{api_port}
etcd3:
  hosts: {",".join(etcd_hosts)}
bootstrap:
  dcs:
    ttl: {ttl}
    loop_wait: {loop_wait}
    retry_timeout: {retry_timeout}
    maximum_lag_on_failover: 1048576
{extra}    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_connections: 50
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 64MB
  initdb:
    - encoding: UTF8
{initdb}  pg_hba:
{hba}postgresql:
  listen: {LOOPBACK}:{pg_port}
  connect_address: {LOOPBACK}:{pg_port}
  data_dir: {node_dir}/data
  bin_dir: {PG_BIN}
  pgpass: {node_dir}/pgpass
  authentication:
    superuser: {{username: {SUPERUSER}, password: {SUPERUSER_PW}}}
    replication: {{username: {REPL}, password: {REPL_PW}}}
    rewind: {{username: {REWIND}, password: {REWIND_PW}}}
  parameters:
    unix_socket_directories: {node_dir}
    shared_buffers: 16MB
  pg_hba:
{hba}tags:
  nofailover: false
watchdog:
  mode: "off"
log:
  level: {log_level}
"""


class BenchNode:
    def __init__(self, cluster, name):
        self.cluster = cluster
        self.name = name
        self.dir = os.path.join(cluster.workdir, name)
        self.data_dir = os.path.join(self.dir, "data")
        self.pg_port = free_port()
        self.api_port = free_port()
        self.config_path = os.path.join(cluster.workdir, f"{name}.yml")
        self.proc = None
        self.starts = 0

    def config(self):
        c = self.cluster
        return node_config(c.scope, self.name, c.etcd.endpoints, self.api_port, self.pg_port,
                           self.dir, c.ttl, c.loop_wait, c.retry_timeout, c.log_level,
                           c.dcs_extra, c.initdb_extra)

    def start(self):
        hand_to_pg_user(self.dir)
        with open(self.config_path, "w") as f:
            f.write(self.config())
        os.chmod(self.config_path, 0o644)
        c = self.cluster
        if c.system == "dbha":
            argv, env = [c.dbagent, self.config_path], None
        else:
            argv = [PATRONI, self.config_path]
            env = dict(os.environ, HOME="/var/lib/postgresql" if as_root() else
                       os.environ.get("HOME", "/tmp"))
        self.starts += 1
        self.proc = c.procs.spawn(f"{self.name}.{self.starts}", argv, env=env,
                                  user=PG_OS_USER)

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid")) as f:
                pid = abs(int(f.readline()))
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def pids_to_kill(self):
        """The agent and its descendants (helpers such as dbha's fence; Patroni's postmaster),
        the postmaster and its descendants."""
        pids = []
        if self.proc is not None and self.proc.poll() is None:
            pids += tree_of(self.proc.pid)
        pm = self.postmaster_pid()
        if pm:
            pids += [p for p in tree_of(pm) if p not in pids]
        return pids

    def crash(self):
        """SIGKILL the whole node (agent + PostgreSQL); returns the PIDs killed."""
        pids = self.pids_to_kill()
        kill_pids(pids)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.proc = None
        return pids

    def connect(self, timeout=2):
        conn = psycopg2.connect(host=LOOPBACK, port=self.pg_port, user=SUPERUSER,
                                password=SUPERUSER_PW, dbname="postgres",
                                connect_timeout=timeout,
                                options="-c statement_timeout=2000")
        conn.autocommit = True
        return conn

    def sql(self, query, params=None):
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()


class BenchCluster:
    def __init__(self, system, workdir, ttl, loop_wait, retry_timeout, dbagent, n=3,
                 log_level="INFO", dcs_extra=None, initdb_extra=None):
        self.system = system
        self.dcs_extra = dict(dcs_extra or {})
        self.initdb_extra = list(initdb_extra or [])
        self.log_level = log_level
        self.workdir = workdir
        self.ttl, self.loop_wait, self.retry_timeout = ttl, loop_wait, retry_timeout
        self.dbagent = dbagent
        self.scope = "bench"
        os.makedirs(workdir, exist_ok=True)
        os.chmod(workdir, 0o755)
        self.procs = Procs(workdir)
        self.etcd = EtcdCluster(self.procs, workdir, size=1)
        self.nodes = [BenchNode(self, f"node{i + 1}") for i in range(n)]

    def start(self):
        self.etcd.start()
        for n in self.nodes:
            n.start()
        return self

    def node(self, name):
        return next((n for n in self.nodes if n.name == name), None)

    def leader_name(self):
        try:
            return self.etcd.get(f"/service/{self.scope}/leader")
        except Exception:  # noqa: BLE001 - etcd busy: no answer this time
            return None

    def healthy(self):
        """The leader node if there is one leader key, its PostgreSQL is a primary and every
        other node streams from it; None otherwise."""
        name = self.leader_name()
        leader = self.node(name) if name else None
        if leader is None or leader.proc is None:
            return None
        try:
            rows = leader.sql("SELECT pg_is_in_recovery(), (SELECT count(*) FROM "
                              "pg_stat_replication WHERE state = 'streaming')")
        except psycopg2.Error:
            return None
        in_recovery, streaming = rows[0]
        if in_recovery or streaming < len(self.nodes) - 1:
            return None
        for n in self.nodes:
            if n is not leader and n.postmaster_pid() is None:
                return None
        return leader

    def wait_healthy(self, timeout):
        """The leader once healthy; NotHealthy after timeout s or when an agent exits."""
        deadline = time.monotonic() + timeout
        while True:
            for n in self.nodes:
                if n.proc is not None and n.proc.poll() is not None:
                    raise NotHealthy(f"{self.system} agent {n.name} exited with "
                                     f"{n.proc.returncode}; see "
                                     f"{self.procs.log_path(f'{n.name}.{n.starts}')}")
            leader = self.healthy()
            if leader:
                return leader
            if time.monotonic() >= deadline:
                raise NotHealthy(f"{self.system}: no primary with {len(self.nodes) - 1} "
                                 f"streaming replicas within {timeout:.0f} s")
            time.sleep(0.25)

    def ensure_table(self, leader):
        leader.sql("CREATE TABLE IF NOT EXISTS bench_writes (round int, node text, seq int, "
                   "t timestamptz DEFAULT clock_timestamp())")

        def replicated():
            for n in self.nodes:
                if not n.sql("SELECT to_regclass('bench_writes') IS NOT NULL")[0][0]:
                    return False
            return True
        wait_until(replicated, 20, what="bench_writes on every node")

    def stop(self):
        """Stop everything by PID: agents, postmasters (and their children), etcd."""
        for n in self.nodes:
            pids = n.pids_to_kill()
            kill_pids(pids)
            wait_gone(pids)
            n.proc = None
        self.procs.stop_all()
        for n in self.nodes:  # a postmaster started after the first look
            pm = n.postmaster_pid()
            if pm:
                pids = tree_of(pm)
                kill_pids(pids)
                wait_gone(pids)
        stray = pids_mentioning(self.workdir + "/")  # orphaned helpers of killed agents
        if stray:
            log(f"{self.system}: killing {len(stray)} leftover process(es) {stray}")
            kill_pids(stray)
            wait_gone(stray)


# ---------------------------------------------------------------- writer

class Writer:
    """One thread per node: INSERT every `interval` s over TCP to that node's own port,
    reconnecting on failure; records (t_sent, t_acked, seq) of each acknowledged write
    (monotonic clock)."""

    def __init__(self, nodes, round_no, interval=0.020):
        self.nodes = nodes
        self.interval = interval
        self.round = round_no
        self.acks = {n.name: [] for n in nodes}
        self.errors = {n.name: 0 for n in nodes}
        self.stop_ev = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                        for n in nodes]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout=10)

    def _run(self, node):
        conn, seq, nxt = None, 0, time.monotonic()
        acks = self.acks[node.name]
        while not self.stop_ev.is_set():
            try:
                if conn is None or conn.closed:
                    conn = node.connect(timeout=2)
                seq += 1
                t_sent = time.monotonic()
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO bench_writes (round, node, seq) VALUES (%s, %s, %s)",
                                (self.round, node.name, seq))
                acks.append((t_sent, time.monotonic(), seq))
            except psycopg2.Error as e:
                self.errors[node.name] += 1
                if not isinstance(e, (psycopg2.errors.ReadOnlySqlTransaction,
                                      psycopg2.errors.UndefinedTable)):
                    try:
                        if conn is not None:
                            conn.close()
                    except psycopg2.Error:
                        pass
                    conn = None
            nxt += self.interval
            delay = nxt - time.monotonic()
            if delay > 0:
                self.stop_ev.wait(delay)
            else:
                nxt = time.monotonic()
        if conn is not None:
            try:
                conn.close()
            except psycopg2.Error:
                pass


# ---------------------------------------------------------------- measurements

def measure_idle(cluster, settle, sample):
    """RSS and CPU of each node's agent while the cluster idles (no client writes): `settle`
    s of rest, then CPU (utime + stime) over `sample` s."""
    log(f"{cluster.system}: idle {settle:.0f} s, then sampling CPU over {sample:.0f} s")
    time.sleep(settle)

    def agent_tree(n):
        # the agent and its helper processes, without PostgreSQL's processes
        pm = n.postmaster_pid()
        pg = set(tree_of(pm)) if pm else set()
        return [p for p in tree_of(n.proc.pid) if p not in pg]

    before = {}
    for n in cluster.nodes:
        tree = agent_tree(n)
        before[n.name] = {p: proc_cpu_ticks(p) for p in tree}
    t_start = time.monotonic()
    time.sleep(sample)
    elapsed = time.monotonic() - t_start
    out = []
    for n in cluster.nodes:
        tree = agent_tree(n)
        main = n.proc.pid
        ticks_main = proc_cpu_ticks(main) - before[n.name].get(main, 0)
        ticks_tree = sum(max(0, proc_cpu_ticks(p) - before[n.name].get(p, 0)) for p in tree)
        out.append({
            "node": n.name,
            "pid": main,
            "helper_pids": [p for p in tree if p != main],
            "rss_kb": proc_rss_kb(main),
            "rss_anon_kb": proc_status_kb(main, "RssAnon"),
            "rss_file_kb": proc_status_kb(main, "RssFile"),
            "tree_rss_kb": sum(proc_rss_kb(p) for p in tree),
            "tree_rss_anon_kb": sum(proc_status_kb(p, "RssAnon") for p in tree),
            "cpu_pct": round(100.0 * ticks_main / CLK_TCK / elapsed, 2),
            "tree_cpu_pct": round(100.0 * ticks_tree / CLK_TCK / elapsed, 2),
            "cpu_ticks": ticks_main,
            "tree_cpu_ticks": ticks_tree,
            "cpu_s_per_idle_hour": round(ticks_main / CLK_TCK / elapsed * 3600, 1),
            "tree_cpu_s_per_idle_hour": round(ticks_tree / CLK_TCK / elapsed * 3600, 1),
        })
        log(f"  {n.name}: RSS {out[-1]['rss_kb'] / 1024:.1f} MB, CPU {out[-1]['cpu_pct']:.2f} %"
            + (f" (with helpers: {out[-1]['tree_rss_kb'] / 1024:.1f} MB, "
               f"{out[-1]['tree_cpu_pct']:.2f} %)" if len(tree) > 1 else ""))
    return {"idle_s": settle, "sample_s": round(elapsed, 2), "clk_tck": CLK_TCK, "nodes": out}


def log_errors(cluster, exclude, limit=5):
    """Distinct ERROR/FATAL/WARNING messages (timestamps stripped) the surviving agents logged,
    most frequent first: why a round did not fail over."""
    counts = {}
    for n in cluster.nodes:
        if n.name == exclude:
            continue
        try:
            with open(cluster.procs.log_path(f"{n.name}.{n.starts}"), errors="replace") as f:
                lines = f.read().splitlines()[-2000:]
        except OSError:
            continue
        for line in lines:
            if not any(w in line for w in (" ERROR", " FATAL", " WARNING", "error", "warn")):
                continue
            if "read-only transaction" in line or "bench_writes" in line:
                continue  # the writer's own probes
            msg = line.split(" ", 2)[-1][:200] if line[:4].isdigit() else line[:200]
            key = f"{n.name}: {msg}"
            counts[key] = counts.get(key, 0) + 1
    return [f"{k} (x{v})" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:limit]]


# ---------------------------------------------------------------- reporting

def versions(dbagent):
    def out(argv):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
            return (p.stdout or p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None
    return {"dbagent": out([dbagent, "--version"]), "patroni": out([PATRONI, "--version"]),
            "postgres": out([os.path.join(PG_BIN, "postgres"), "--version"]),
            "etcd": out(["etcd", "--version"]), "python": platform.python_version()}


def repo_head():
    try:
        p = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True, timeout=10)
        return p.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def fmt_s(v):
    return "–" if v is None else f"{v:.2f}"




def worktree_changes():
    """Paths with uncommitted changes (git status --porcelain), or None: a result file says
    when the binaries may have been built from code that is not in HEAD."""
    try:
        p = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=10)
        return [line[3:] for line in p.stdout.splitlines()] if p.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def private_copies(paths, workdir):
    """Copy the programs under test into workdir/bin (world-readable, so `postgres` can run
    them), so a rebuild of bin/ during the run cannot change them between rounds. Returns
    {name: {"path", "source", "sha256", "built"}}."""
    d = os.path.join(workdir, "bin")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    out = {}
    for src in paths:
        name = os.path.basename(src)
        dst = os.path.join(d, name)
        shutil.copy2(src, dst)
        os.chmod(dst, 0o755)
        out[name] = {"path": dst, "source": os.path.abspath(src), "sha256": sha256_of(dst),
                     "built": time.strftime("%Y-%m-%dT%H:%M:%S",
                                            time.localtime(os.path.getmtime(src)))}
    return out


def preflight(system_list, dbagent, extra=()):
    """HarnessError naming what is missing. extra: (path or command name, how to get it)."""
    missing = []
    if "dbha" in system_list and not os.access(dbagent, os.X_OK):
        missing.append(f"{dbagent} (run `make`)")
    if "patroni" in system_list and not os.access(PATRONI, os.X_OK):
        missing.append(f"{PATRONI} (apt-get install patroni)")
    if not shutil.which("etcd"):
        missing.append("etcd (apt-get install etcd-server)")
    if not os.access(os.path.join(PG_BIN, "postgres"), os.X_OK):
        missing.append(f"{PG_BIN}/postgres (apt-get install postgresql-15)")
    for what, how in extra:
        if not (os.access(what, os.X_OK) if os.sep in what else shutil.which(what)):
            missing.append(f"{what} ({how})")
    if missing:
        raise HarnessError("missing: " + ", ".join(missing))


def make_workdir(requested, prefix):
    base = requested or tempfile.mkdtemp(prefix=prefix)
    os.makedirs(base, exist_ok=True)
    os.chmod(base, 0o755)
    return base


def interrupt_on_signals():
    """SIGTERM/SIGHUP end the run through the same cleanup as Ctrl-C."""
    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)


def host_info():
    return {"cpus": os.cpu_count(), "kernel": platform.release(),
            "loadavg_start": os.getloadavg()}


def system_name(system):
    return "dbha" if system == "dbha" else "Patroni 3.0.2"


def log_offsets(cluster):
    """{node: size of its current agent log}: where a later log_since() starts reading."""
    out = {}
    for n in cluster.nodes:
        try:
            out[n.name] = os.path.getsize(cluster.procs.log_path(f"{n.name}.{n.starts}"))
        except OSError:
            out[n.name] = 0
    return out


def log_since(cluster, offsets, keep, limit=60):
    """Lines each agent logged after offsets (see log_offsets) for which keep(line) is true,
    at most `limit` per node: {node: [line, ...]}."""
    out = {}
    for n in cluster.nodes:
        try:
            with open(cluster.procs.log_path(f"{n.name}.{n.starts}"), "rb") as f:
                f.seek(offsets.get(n.name, 0))
                text = f.read(4 << 20).decode(errors="replace")
        except OSError:
            continue
        lines = [x for x in text.splitlines() if keep(x)]
        if len(lines) > limit:
            lines = lines[:limit] + [f"... {len(lines) - limit} more"]
        out[n.name] = lines
    return out
